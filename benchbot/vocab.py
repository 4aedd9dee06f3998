"""benchbot's shared vocabulary, each defined once: the order of variants, their colours, the columns that
identify a cell, and how a cell is named in messages. Tables, plots, the catalog, the summary and compare
import these, so a new variant or a new cell axis is added in one place.

Deliberately free of heavy imports (no pandas, no matplotlib): the catalog loads it for every command.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

VARIANT_ORDER = ("fp32", "fp16", "dynamic", "int8", "int16x8")
"""Known variants, largest (the usual baseline) first; unknown ones sort after them by name."""

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")
"""matplotlib's tab10, spelled out so choosing a colour does not import matplotlib."""

CELL_AXES = ["device", "model", "variant", "threads", "xnnpack", "batch"]
"""What makes a cell within one run."""
CELL_KEY = ["run_id", *CELL_AXES]
"""A cell across runs (report rows, samples, telemetry)."""
MATCH_KEY = ["device", "emulated", "model", "variant", "threads", "xnnpack", "batch"]
"""How `compare` pairs cells of two runs: the same cell, and never an emulated one with real hardware."""


def variant_key(variant: str) -> tuple[int, str]:
    """Sort key: known variants in VARIANT_ORDER, then the others by name."""
    return (VARIANT_ORDER.index(variant) if variant in VARIANT_ORDER else len(VARIANT_ORDER), variant)


def variant_color(variant: str, others: Iterable[str] = ()) -> str:
    """The same colour for a variant in every plot: known variants by their fixed order, `others` after them."""
    if variant in VARIANT_ORDER:
        return PALETTE[VARIANT_ORDER.index(variant)]
    extra = sorted(v for v in set(others) | {variant} if v not in VARIANT_ORDER)
    return PALETTE[(len(VARIANT_ORDER) + extra.index(variant)) % len(PALETTE)]


def cell_label(model: Any, variant: Any, threads: Any, xnnpack: Any = True, batch: Any = 1) -> str:
    """`model/variant t4`, plus ` no-xnnpack` and ` batch N` only where they differ from the defaults."""
    extra = ("" if xnnpack else " no-xnnpack") + (f" batch {batch}" if batch != 1 else "")
    return f"{model}/{variant} t{threads}{extra}"
