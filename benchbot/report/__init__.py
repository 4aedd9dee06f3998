"""Outputs built from stored runs, one module per output.

data      what every output shares: runs, summary with relative columns, notes, fingerprints
table     the terminal table (rich, a section per device) and the md/csv/json exports
plots     matplotlib figures: latency distribution, throughput, thread scaling, per-cell timelines
html      one self-contained HTML file with tables, legend, fingerprints and embedded plots
compare   run B against run A: ratio of medians, Mann-Whitney U test, verdicts (`benchbot compare`)
sections  optional extra sections (e.g. the accuracy/size trade-off in `tradeoff`) shown in every format
fmt       number formatting with significant digits
"""
