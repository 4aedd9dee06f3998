"""The comparison table: one row per device x model x variant x threads, for people and tools.

People get formatted strings (significant digits, CI, flags as marks) in the
terminal, Markdown and HTML; tools get full-precision numbers in CSV and JSON.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pandas as pd

from benchbot import delegation
from benchbot.report import fmt
from benchbot.report.data import RELATIVE_COLUMNS, ReportData, device_label, fingerprint_line

if TYPE_CHECKING:
    from benchbot.report.sections import Section

# (column, header, kind) for what people read; kind "s" = text, "n" = number (right-aligned).
COLUMNS: list[tuple[str, str, str]] = [
    ("run_id", "run", "s"),
    ("device", "device", "s"),
    ("model", "model", "s"),
    ("variant", "variant", "s"),
    ("threads", "thr", "n"),
    ("xnnpack", "xnnpack", "s"),
    ("batch", "batch", "n"),
    ("count", "runs", "n"),
    ("p50_ms", "p50 ms", "n"),
    ("p50_ci", "p50 95% CI", "n"),
    ("p90_ms", "p90 ms", "n"),
    ("p99_ms", "p99 ms", "n"),
    ("throughput", "inf/s", "n"),
    ("relative", "vs fastest", "n"),
    ("proc_cpu_mean", "CPU %", "n"),
    ("peak_rss_mb", "peak RSS MB", "n"),
    ("temp", "temp °C", "n"),
    ("accuracy", "acc", "n"),
    ("delegation", "XNNPACK ops", "n"),
    ("flags", "flags", "s"),
]

FLAG_MARKS = {"unstable": "~", "throttled": "T", "emulated": "E", "few-samples": "n", "incomplete": "!",
              "failed": "X"}
FLAG_TEXT = {
    "unstable": "unstable: CV or drift between the first and last tenth of the loop over 10 %",
    "throttled": "throttled: CPU frequency dropped or the firmware reported throttling during the cell",
    "emulated": "emulated: measured under QEMU; not comparable with real hardware",
    "few-samples": "few samples: too few for a 95 % interval of p90/p99, which are rough",
    "incomplete": "incomplete: the cell did not finish",
    "failed": "failed: the cell failed",
}
FLAG_LEGEND = "  ".join(f"{mark} {FLAG_TEXT[flag].split(':')[0]}" for flag, mark in FLAG_MARKS.items())
COLUMN_NOTES = [
    "p50 95% CI: distribution-free confidence interval of the median latency.",
    "CPU %: the benchmark process, 100 = one full core.  temp: start→max over the cell, or absent (no sensor).",
    "XNNPACK ops: ops the delegate runs / all ops, in N partitions (many partitions: slow hand-offs).",
]

EXPORT_COLUMNS = [
    "run_id", "device", "model", "variant", "threads", "xnnpack", "batch", "status", "reason", "runtime",
    "runtime_version", "arch", "count", "mean_ms", "std_ms", "min_ms", "p50_ms", "p50_ci_lo_ms", "p50_ci_hi_ms",
    "p90_ms", "p95_ms", "p99_ms", "max_ms", "cv", "drift", "throughput", "samples_per_s", "init_ms", "first_ms",
    "peak_rss_mb", "cpu_mean", "cpu_max", "proc_cpu_mean", "temp_start_c", "temp_max_c", "temp_end_c",
    "freq_min_mhz", "model_size", "size_ratio", "accuracy", "accuracy_n", "accuracy_delta_pts", "agreement",
    "model_sha256", "emulated", "flags", "few_samples", *RELATIVE_COLUMNS, *delegation.COLUMNS,
]


def export_frame(summary: pd.DataFrame) -> pd.DataFrame:
    frame = summary.copy()
    for column in EXPORT_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    return frame[EXPORT_COLUMNS]


def relative_header(baseline: str) -> str:
    return f"vs {baseline}"


def visible_columns(summary: pd.DataFrame, multi_run: bool = False, device: bool = True) -> list[str]:
    """The columns worth showing: run only for several runs, xnnpack/batch only when they vary."""
    out = []
    for column, _, _ in COLUMNS:
        if column == "run_id" and not multi_run:
            continue
        if column == "device" and not device:
            continue
        if column == "xnnpack" and ("xnnpack" not in summary or summary["xnnpack"].fillna(True).astype(bool).all()):
            continue
        if column == "batch" and ("batch" not in summary or (summary["batch"].fillna(1) == 1).all()):
            continue
        if column == "accuracy" and ("accuracy" not in summary or summary["accuracy"].isna().all()):
            continue
        if column == "delegation" and ("total_ops" not in summary or summary["total_ops"].isna().all()):
            continue
        out.append(column)
    return out


def headers(columns: list[str], baseline: str = "fastest") -> list[str]:
    names = {c: h for c, h, _ in COLUMNS}
    names["relative"] = relative_header(baseline)
    return [names[c] for c in columns]


def _int(value: Any) -> str:
    return "" if fmt.missing(value) else str(int(value))


def display_row(r: Any) -> dict[str, str]:
    """One summary row as strings: p50 to 3 significant digits and its CI to the same decimals (more when the
    two ends would print alike), p90/p99 to 3 significant digits, ratio with its interval, flags as marks."""
    decimals = fmt.latency_decimals(r.get("p50_ms"))
    row: dict[str, str] = {
        "run_id": str(r.get("run_id") or ""),
        "device": device_label(str(r.get("device")), bool(r.get("emulated"))) if r.get("emulated") else
        str(r.get("device")),
        "model": str(r.get("model")),
        "variant": str(r.get("variant")),
        "threads": _int(r.get("threads")),
        "xnnpack": "" if fmt.missing(r.get("xnnpack")) else ("on" if r.get("xnnpack") else "off"),
        "batch": _int(r.get("batch")),
        "count": _int(r.get("count")),
        "p50_ms": fmt.fixed(r.get("p50_ms"), decimals),
        "p50_ci": fmt.interval(r.get("p50_ci_lo_ms"), r.get("p50_ci_hi_ms"), decimals),
        "p90_ms": fmt.sig(r.get("p90_ms"), 3),
        "p99_ms": fmt.sig(r.get("p99_ms"), 3),
        "throughput": fmt.sig(r.get("throughput"), 3),
        "proc_cpu_mean": fmt.fixed(r.get("proc_cpu_mean"), 0),
        "peak_rss_mb": fmt.sig(r.get("peak_rss_mb"), 3),
        "accuracy": fmt.fixed(r.get("accuracy"), 3),
        "delegation": delegation.compact(r),
    }
    ratio = r.get("rel_ratio")
    if fmt.missing(ratio):
        row["relative"] = ""
    elif r.get("rel_baseline") == r.get("variant"):
        row["relative"] = "ref"
    else:
        lo, hi = r.get("rel_ci_lo"), r.get("rel_ci_hi")
        ci = "" if fmt.missing(lo) else f" ({fmt.interval(lo, hi, fmt.decimals_for(float(ratio)))})"
        row["relative"] = f"{fmt.ratio(ratio)}×{ci}"
    start, top = r.get("temp_start_c"), r.get("temp_max_c")
    if fmt.missing(top):
        row["temp"] = "absent" if r.get("status") not in ("pending",) else ""
    else:
        row["temp"] = f"{fmt.fixed(start, 1) if not fmt.missing(start) else '?'}→{float(top):.1f}"
    flags = [f for f in str(r.get("flags") or "").split(",") if f]
    row["flags"] = "".join(FLAG_MARKS.get(f, "?") for f in flags)
    return row


def display_rows(summary: pd.DataFrame) -> list[dict[str, str]]:
    return [display_row(r) for _, r in summary.iterrows()]


def legend_items() -> list[tuple[str, str]]:
    """(mark, explanation) of every validity flag."""
    return [(mark, FLAG_TEXT[flag]) for flag, mark in FLAG_MARKS.items()]


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(data: ReportData | pd.DataFrame, sections: list[Section] | None = None) -> str:
    """One Markdown table (rows grouped by device), then fingerprints, notes, flags legend and sections."""
    data = _as_data(data)
    summary = _ordered(data)
    columns = visible_columns(summary, data.multi_run)
    lines = ["| " + " | ".join(headers(columns, data.baseline)) + " |",
             "|" + "|".join("---:" if column_kind(c) == "n" else "---" for c in columns) + "|"]
    for row in display_rows(summary):
        lines.append("| " + " | ".join(_md_cell(row[c]) for c in columns) + " |")
    lines.append("")
    devices = [(device_label(d, e), fp) for d, e in data.devices() for fp in data.fingerprints(d, e)]
    if devices:
        lines.append("Devices:")
        lines.extend(f"- {label} (run {run_id}): {fingerprint_line(fp)}" for label, (run_id, fp) in devices)
        lines.append("")
    lines.append(f"Relative column: ratio of median latencies to the {baseline_words(data.baseline)} of the same "
                 "device, model and thread count (and run), with a conservative 95 % interval.")
    lines.extend(COLUMN_NOTES)
    lines.append("")
    for note in data.notes:
        lines.append(f"> Note: {note}")
    if data.notes:
        lines.append("")
    lines.append("Flags:")
    lines.extend(f"- `{mark}` {text}" for mark, text in legend_items())
    for failure in failures(summary):
        lines.append(f"- failure: {failure}")
    for section in sections or []:
        lines.extend(["", f"## {section.title}", "", section.markdown.rstrip()])
    return "\n".join(lines) + "\n"


def baseline_words(baseline: str) -> str:
    return "fastest variant" if baseline == "fastest" else f"{baseline} variant"


def column_kind(column: str) -> str:
    return next((k for c, _, k in COLUMNS if c == column), "s")


def to_csv(data: ReportData | pd.DataFrame) -> str:
    return export_frame(_as_data(data).summary).to_csv(index=False)


def to_json(data: ReportData | pd.DataFrame, runs: list[dict[str, Any]] | None = None,
            sections: list[Section] | None = None) -> str:
    data = _as_data(data)
    records = json.loads(export_frame(data.summary).to_json(orient="records"))
    body = {
        "format": "benchbot-summary", "version": 1,
        "runs": runs if runs is not None else data.run_states(),
        "baseline": data.baseline, "notes": data.notes,
        "cells": records,
        "sections": {(s.name or s.title): s.data for s in sections or [] if s.data is not None},
    }
    return json.dumps(body, indent=2, default=str)


def to_rich(data: ReportData | pd.DataFrame, title: str = "") -> list[Any]:
    """Rich renderables: one table per device (real hardware first), then notes and the flags legend."""
    from rich.table import Table
    from rich.text import Text

    data = _as_data(data)
    out: list[Any] = []
    for device, emulated in data.devices():
        rows = data.device_rows(device, emulated)
        columns = visible_columns(data.summary, data.multi_run, device=False)
        label = device_label(device, emulated)
        fps = data.fingerprints(device, emulated)
        caption = "\n".join(f"{run_id if data.multi_run else ''}{': ' if data.multi_run else ''}"
                            f"{fingerprint_line(fp)}" for run_id, fp in fps) or None
        table = Table(title=f"[bold]{label}[/]" + (" — emulated, not comparable with hardware" if emulated else ""),
                      title_justify="left", caption=caption, caption_justify="left")
        for column, header in zip(columns, headers(columns, data.baseline)):
            table.add_column(header, justify="right" if column_kind(column) == "n" else "left",
                             no_wrap=column in ("model", "p50_ci", "relative", "run_id", "temp"))
        previous = None
        for (_, r), row in zip(rows.iterrows(), display_rows(rows)):
            group = (r.get("model"), r.get("threads"), r.get("run_id"))
            if previous is not None and group != previous:
                table.add_section()
            previous = group
            status = r.get("status")
            style = "red" if status == "failed" else ("yellow" if status in ("incomplete", "pending") else None)
            table.add_row(*(row[c] for c in columns), style=style)
        out.append(table)
    for note in data.notes:
        out.append(Text(f"Note: {note}", style="yellow"))
    out.append(Text(f"{relative_header(data.baseline)}: ratio of median latencies to the "
                    f"{baseline_words(data.baseline)} of the same device, model and threads, with a 95 % interval.",
                    style="dim"))
    for line in COLUMN_NOTES:
        out.append(Text(line, style="dim"))
    out.append(Text("Flags: " + FLAG_LEGEND, style="dim"))
    return out


def failures(summary: pd.DataFrame) -> list[str]:
    """One line per cell that did not finish, with its reason."""
    out = []
    for _, r in summary.iterrows():
        if r.get("status") not in ("ok",):
            reason = r.get("reason")
            out.append(f"{r['device']} {r['model']}/{r['variant']} t{r['threads']}: {r.get('status')}"
                       + (f": {reason}" if not fmt.missing(reason) and reason else ""))
    return out


def _ordered(data: ReportData) -> pd.DataFrame:
    frames = [data.device_rows(d, e) for d, e in data.devices()]
    return pd.concat(frames) if frames else data.summary


def _as_data(data: ReportData | pd.DataFrame) -> ReportData:
    """Accept a bare summary frame (relative columns as they are) for scripts that built one themselves."""
    if isinstance(data, ReportData):
        return data
    summary = data.copy()
    for column in RELATIVE_COLUMNS:
        if column not in summary:
            summary[column] = None
    if "emulated" not in summary:
        summary["emulated"] = False
    return ReportData(runs=[], summary=summary, samples={})


def display_frame(data: ReportData | pd.DataFrame, device: str | None = None) -> pd.DataFrame:
    """The table people read, as a DataFrame of formatted strings (for notebooks): grouped by device."""
    data = _as_data(data)
    summary = _ordered(data)
    if device is not None:
        summary = summary[summary["device"] == device]
    columns = visible_columns(data.summary, data.multi_run)
    rows = display_rows(summary)
    return pd.DataFrame([[row[c] for c in columns] for row in rows], columns=headers(columns, data.baseline))
