"""How the runtime placed a cell's graph (XNNPACK partitions), as the summary, table and trade-off show it.

The agent counts it per cell (`cell_start`: total_ops, delegated_ops, partitions, undelegated_ops,
from the interpreter's node list); this module only reads and words it, so a report explains
why a variant is fast or slow: "int8: 36 XNNPACK partitions; GATHER×13, SHAPE×6 on built-in kernels".
"""

from __future__ import annotations

import math
from typing import Any

KEYS = ("total_ops", "delegated_ops", "partitions", "undelegated_ops")
#: Columns the summary and the JSON/CSV exports carry.
COLUMNS = [*KEYS, "input_ranges"]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def from_cell_start(start: dict[str, Any]) -> dict[str, Any]:
    """The delegation figures and the per-input value ranges of one cell's cell_start event."""
    row = {key: start.get(key) for key in KEYS}
    ranges = {}
    for item in start.get("inputs") or []:
        if "why" in item:
            ranges[item.get("key") or item.get("name")] = {"range": item.get("range"), "why": item.get("why")}
    row["input_ranges"] = ranges or None
    return row


def op_counts(undelegated: Any, top: int | None = None) -> str:
    """"GATHER×13, SHAPE×6" (most frequent first)."""
    if not isinstance(undelegated, dict) or not undelegated:
        return ""
    items = sorted(undelegated.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = items if top is None else items[:top]
    text = ", ".join(f"{name}×{count}" for name, count in shown)
    return text + (f" and {len(items) - len(shown)} more op types" if len(items) > len(shown) else "")


def compact(row: Any) -> str:
    """The table column: delegated/total ops and partitions, e.g. "114/218 in 37"."""
    total, delegated, parts = (row.get(k) for k in ("total_ops", "delegated_ops", "partitions"))
    if _missing(total):
        return ""
    if not parts:
        return f"0/{int(total)}"
    return f"{int(delegated)}/{int(total)} in {int(parts)}"


def sentence(variant: str, row: Any, top: int = 3) -> str:
    """e.g. "int8: 36 XNNPACK partitions; GATHER×13, SHAPE×6 on built-in kernels"."""
    total, delegated, parts = (row.get(k) for k in ("total_ops", "delegated_ops", "partitions"))
    if _missing(total):
        return ""
    ops = op_counts(row.get("undelegated_ops"), top)
    if not parts:
        return f"{variant}: not delegated; all {int(total)} ops on built-in kernels"
    head = f"{variant}: {int(parts)} XNNPACK partition{'s' if parts != 1 else ''} ({int(delegated)} of {int(total)} ops)"
    return f"{head}; {ops} on built-in kernels" if ops else f"{head}; every op delegated"


def lines(rows: Any) -> list[str]:
    """One sentence per cell that has the figures, "MODEL VARIANT: ...", for the trade-off section."""
    out = []
    for _, r in rows.iterrows():
        text = sentence(str(r.get("variant")), r)
        if text:
            config = "" if r.get("xnnpack", True) in (True, None) else " (XNNPACK off)"
            out.append(f"{r.get('model')}{config} {text}")
    return list(dict.fromkeys(out))
