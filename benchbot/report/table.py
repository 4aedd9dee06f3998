"""The comparison table: one row per device x model x variant x threads, for people and tools."""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

# (column in the summary frame, header, format) for what people read.
COLUMNS: list[tuple[str, str, str]] = [
    ("device", "device", "s"),
    ("model", "model", "s"),
    ("variant", "variant", "s"),
    ("threads", "thr", "d"),
    ("count", "runs", "d"),
    ("p50_ms", "p50 ms", ".3f"),
    ("p50_ci", "p50 95% CI", "s"),
    ("p90_ms", "p90 ms", ".3f"),
    ("p99_ms", "p99 ms", ".3f"),
    ("throughput", "inf/s", ".1f"),
    ("proc_cpu_mean", "CPU %", ".0f"),
    ("peak_rss_mb", "peak RSS MB", ".1f"),
    ("temp", "temp °C", "s"),
    ("accuracy", "acc", ".3f"),
    ("flags", "flags", "s"),
]

FLAG_MARKS = {"unstable": "~", "throttled": "T", "emulated": "E", "few-samples": "n", "incomplete": "!",
              "failed": "X"}
FLAG_LEGEND = ("~ unstable (CV or drift over 10 %)  T throttled  E emulated (not comparable with hardware)  "
               "n few samples for p99  ! incomplete  X failed")

EXPORT_COLUMNS = [
    "run_id", "device", "model", "variant", "threads", "xnnpack", "batch", "status", "reason", "runtime",
    "runtime_version", "arch", "count", "mean_ms", "std_ms", "min_ms", "p50_ms", "p50_ci_lo_ms", "p50_ci_hi_ms",
    "p90_ms", "p95_ms", "p99_ms", "max_ms", "cv", "drift", "throughput", "samples_per_s", "init_ms", "first_ms",
    "peak_rss_mb", "cpu_mean", "cpu_max", "proc_cpu_mean", "temp_start_c", "temp_max_c", "temp_end_c",
    "freq_min_mhz", "model_size", "size_ratio", "accuracy", "accuracy_n", "accuracy_delta_pts", "agreement",
    "model_sha256", "emulated", "flags", "few_samples",
]


def export_frame(summary: pd.DataFrame) -> pd.DataFrame:
    frame = summary.copy()
    for column in EXPORT_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    return frame[EXPORT_COLUMNS]


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _fmt(value: Any, spec: str) -> str:
    if _is_missing(value):
        return ""
    if spec == "s":
        return str(value)
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)


def display_rows(summary: pd.DataFrame) -> list[dict[str, str]]:
    """The table as strings, with derived columns (CI, temperature range, flag marks)."""
    rows = []
    for _, r in summary.iterrows():
        row: dict[str, str] = {}
        for column, _header, spec in COLUMNS:
            if column == "p50_ci":
                lo, hi = r.get("p50_ci_lo_ms"), r.get("p50_ci_hi_ms")
                row[column] = "" if _is_missing(lo) or _is_missing(hi) else f"{lo:.3f}–{hi:.3f}"
            elif column == "temp":
                start, top = r.get("temp_start_c"), r.get("temp_max_c")
                row[column] = "absent" if _is_missing(top) else f"{start:.1f}→{top:.1f}"
            elif column == "flags":
                flags = [f for f in str(r.get("flags") or "").split(",") if f]
                row[column] = "".join(FLAG_MARKS.get(f, "?") for f in flags)
            else:
                row[column] = _fmt(r.get(column), spec)
        rows.append(row)
    return rows


def to_markdown(summary: pd.DataFrame) -> str:
    headers = [h for _, h, _ in COLUMNS]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in display_rows(summary):
        lines.append("| " + " | ".join(row[c] for c, _, _ in COLUMNS) + " |")
    lines.append("")
    lines.append(f"Flags: {FLAG_LEGEND}")
    return "\n".join(lines) + "\n"


def to_csv(summary: pd.DataFrame) -> str:
    return export_frame(summary).to_csv(index=False)


def to_json(summary: pd.DataFrame, runs: list[dict[str, Any]] | None = None) -> str:
    records = json.loads(export_frame(summary).to_json(orient="records"))
    return json.dumps({"format": "benchbot-summary", "version": 1, "runs": runs or [], "cells": records}, indent=2)


def to_rich(summary: pd.DataFrame, title: str = "") -> Any:
    from rich.table import Table

    table = Table(title=title or None, title_justify="left", caption=f"Flags: {FLAG_LEGEND}",
                  caption_justify="left")
    for column, header, spec in COLUMNS:
        table.add_column(header, justify="left" if spec == "s" and column not in ("p50_ci", "temp") else "right",
                         no_wrap=column in ("model", "p50_ci"))
    for row, (_, r) in zip(display_rows(summary), summary.iterrows()):
        style = "red" if r.get("status") == "failed" else ("yellow" if r.get("status") in ("incomplete", "pending")
                                                           else None)
        table.add_row(*(row[c] for c, _, _ in COLUMNS), style=style)
    return table


def failures(summary: pd.DataFrame) -> list[str]:
    """One line per cell that did not finish, with its reason."""
    out = []
    for _, r in summary.iterrows():
        if r.get("status") not in ("ok",):
            reason = r.get("reason")
            out.append(f"{r['device']} {r['model']}/{r['variant']} t{r['threads']}: {r.get('status')}"
                       + (f": {reason}" if not _is_missing(reason) and reason else ""))
    return out
