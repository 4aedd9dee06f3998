"""Outputs built from stored runs: one module per output (table, exports, plots)."""
