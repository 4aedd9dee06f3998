"""The comparison table: one row per device x model x variant x threads, for people and tools.

People get formatted strings (significant digits, CI, flags as marks) in the
terminal, Markdown and HTML; tools get full-precision numbers in CSV and JSON.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pandas as pd

from benchbot import delegation, stats
from benchbot.report import answer, fmt
from benchbot.report.data import RELATIVE_COLUMNS, ReportData, device_label, fingerprint_line, rep_medians
from benchbot.vocab import CELL_KEY, cell_label

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
    ("reps", "reps", "n"),
    ("count", "runs", "n"),
    ("p50_ms", "p50 ms", "n"),
    ("p50_ci", "next run 95%", "n"),
    ("rep_cv", "rep CV", "n"),
    ("p90_ms", "p90 ms", "n"),
    ("p99_ms", "p99 ms", "n"),
    ("throughput", "inf/s", "n"),
    ("relative", "vs fastest", "n"),
    ("proc_cpu_mean", "CPU %", "n"),
    ("peak_rss_mb", "peak RSS MB", "n"),
    ("temp", "temp °C", "n"),
    ("power_mean_w", "W", "n"),
    ("energy_per_inference_mj", "mJ/inf", "n"),
    ("accuracy", "acc", "n"),
    ("delegation", "XNNPACK ops", "n"),
    ("flags", "flags", "s"),
]

FLAG_MARKS = {"unstable": "~", "throttled": "T", "emulated": "E", "few-samples": "n", "one-repetition": "1",
              "power-few-readings": "w", "incomplete": "!", "damaged": "D", "failed": "X"}
#: Shown only for devices with a power source (benchbot/power.py); elsewhere the columns are left out.
POWER_COLUMNS = ("power_mean_w", "energy_per_inference_mj")
FLAG_TEXT = {
    "unstable": "unstable: the repetitions' medians vary by more than 10 % (one repetition: its CV or drift over 10 %)",
    "throttled": "throttled: CPU frequency dropped (or time below the top frequency, or a core went offline) or "
                 "the firmware reported throttling during the cell",
    "power-few-readings": "few power readings: under 5 inside the timed loop, so its W and mJ/inf are rough",
    "emulated": "emulated: measured under QEMU; not comparable with real hardware",
    "few-samples": "few samples: too few for a 95 % interval of p90/p99, which are rough",
    "one-repetition": "one repetition: no run-to-run interval, so no ranking either (use --repetitions 3 or more)",
    "incomplete": "incomplete: the cell did not finish",
    "damaged": "damaged: stored samples are not what was written (see the failures; `benchbot runs --verify`, "
               "`benchbot run --resume` measures them again)",
    "failed": "failed: the cell failed",
}
FLAG_LEGEND = "  ".join(f"{mark} {FLAG_TEXT[flag].split(':')[0]}" for flag, mark in FLAG_MARKS.items())
COLUMN_NOTES = [
    "reps: agent processes (repetitions) that finished, of those planned.  p50: geometric mean of the repetitions' "
    "medians.  next run 95%: where the next run's p50 should land (prediction interval from the spread of the "
    "repetitions, plus the device's run-to-run spread, learned from its other runs or assumed; see below).  rep CV: the "
    "repetitions' spread.  runs, p90, p99, inf/s: over the loops of every repetition.",
    "CPU %: the benchmark process, 100 = one full core.  temp: start→max over the cell, or absent (no sensor).",
    "XNNPACK ops: ops the delegate runs / all ops, in N partitions (many partitions: slow hand-offs).",
]
def interval_notes(summary: pd.DataFrame) -> list[str]:
    """Per device, what its next-run intervals hold: its run-to-run spread (from how many runs), or not."""
    if summary.empty or "run_sd_runs" not in summary.columns:
        return []
    lines = []
    for (run_id, device, emulated), rows in summary.groupby(["run_id", "device", "emulated"], sort=False):
        measured = rows[rows["p50_ci_lo_ms"].notna()] if "p50_ci_lo_ms" in rows.columns else rows.iloc[:0]
        if measured.empty:
            continue
        label = device_label(str(device), bool(emulated))
        runs = int(measured["run_sd_runs"].max() or 0)
        if runs >= 2:
            sds = measured["run_sd"].dropna().astype(float)
            sd, top = float(sds.min()), float(sds.max())
            source = f"{runs} of its runs up to {run_id} (same device, model files and settings)"
            more = (f", and up to {100 * top:.1f} % for cells whose own runs moved more" if top - sd >= 0.0005 else "")
            lines.append(f"{label}: next run 95% adds a run-to-run spread of {100 * sd:.1f} %{more}, learned from "
                         f"{source}." if top >= 0.0005 else
                         f"{label}: {source} moved no more than their repetitions do, so next run 95% adds no "
                         "run-to-run spread.")
        else:
            assumed = measured["run_sd"].dropna()
            size = f"{100 * float(assumed.max()):.1f} %" if not assumed.empty else "no"
            lines.append(f"{label}: next run 95% assumes a run-to-run spread of {size} on top of this run's "
                         "repetitions: no earlier run of these cells on this device shows how far a whole run "
                         "moves yet (a later run in this results folder measures it).")
    return lines


def mode_notes(summary: pd.DataFrame) -> list[str]:
    """Per device, the cells whose repetitions split into two speed groups (`stats.speed_modes`): why their
    intervals are wide, in one line."""
    found: dict[str, list[str]] = {}
    for _, r in summary.iterrows():
        modes = stats.speed_modes(rep_medians(r))
        if modes is None:
            continue
        decimals = fmt.latency_decimals(modes.fast_ms)
        label = fmt.name(cell_label(r["model"], r["variant"], r["threads"], r["xnnpack"], r["batch"]))
        found.setdefault(device_label(str(r["device"]), bool(r.get("emulated"))), []).append(
            f"{label} ({modes.fast} at {modes.fast_ms:.{decimals}f}, {modes.slow} at {modes.slow_ms:.{decimals}f} ms)")
    return [f"{device}: repetitions in two speed groups, processes that run in one of two modes, so the interval "
            f"is wide and another run may draw a different share (more repetitions, or an A/B inside one run, "
            f"tell such cells apart): {'; '.join(cells)}." for device, cells in found.items()]


def column_notes(summary: pd.DataFrame) -> list[str]:
    """The notes under the table: the columns, each device's interval basis, and power when there is any."""
    return COLUMN_NOTES + interval_notes(summary) + mode_notes(summary) + ([POWER_NOTE] if has_power(summary)
                                                                           else [])


POWER_NOTE = ("W: mean board power over the timed loop; mJ/inf: its energy ÷ inferences (absent: no power "
              "source on the device).")

EXPORT_COLUMNS = [
    *CELL_KEY, "status", "reason", "runtime",
    "runtime_version", "arch", "repetitions", "reps_ok", "rep_p50_ms", "rep_cv", "run_sd", "run_sd_runs", "count",
    "mean_ms", "std_ms",
    "min_ms", "p50_ms", "p50_ci_lo_ms", "p50_ci_hi_ms",
    "p90_ms", "p95_ms", "p99_ms", "max_ms", "cv", "drift", "throughput", "samples_per_s", "init_ms", "first_ms",
    "peak_rss_mb", "cpu_mean", "cpu_max", "proc_cpu_mean", "temp_start_c", "temp_max_c", "temp_end_c",
    "freq_min_mhz", "model_size", "size_ratio", "accuracy", "accuracy_n", "accuracy_delta_pts", "agreement",
    "model_sha256", "emulated", "flags", "few_samples", *RELATIVE_COLUMNS,
    "power_source", "power_total", "power_mean_w", "power_peak_w", "energy_per_inference_mj", "idle_power_w",
    "power_readings", "time_below_top_s", "cores_offlined", "throttle_words",
    *delegation.COLUMNS,
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
        if column in POWER_COLUMNS and not has_power(summary):
            continue
        if column == "delegation" and ("total_ops" not in summary or summary["total_ops"].isna().all()):
            continue
        out.append(column)
    return out


def has_power(rows: pd.DataFrame) -> bool:
    """Whether any of these cells measured power (a device with a source)."""
    return "power_mean_w" in rows and bool(pd.to_numeric(rows["power_mean_w"], errors="coerce").notna().any())


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
        "run_id": fmt.name(r.get("run_id") or ""),
        "device": fmt.name(device_label(str(r.get("device")), bool(r.get("emulated"))) if r.get("emulated") else
                           r.get("device")),
        "model": fmt.name(r.get("model")),
        "variant": fmt.name(r.get("variant")),
        "threads": _int(r.get("threads")),
        "xnnpack": "" if fmt.missing(r.get("xnnpack")) else ("on" if r.get("xnnpack") else "off"),
        "batch": _int(r.get("batch")),
        "reps": _reps(r),
        "count": _int(r.get("count")),
        "p50_ms": fmt.fixed(r.get("p50_ms"), decimals),
        "p50_ci": (fmt.interval(r.get("p50_ci_lo_ms"), r.get("p50_ci_hi_ms"), decimals)
                   if not fmt.missing(r.get("p50_ci_lo_ms")) else ("none (1 rep)" if _one_rep(r) else "")),
        "rep_cv": "" if fmt.missing(r.get("rep_cv")) else f"{100 * float(r['rep_cv']):.1f}%",
        "p90_ms": fmt.sig(r.get("p90_ms"), 3),
        "p99_ms": fmt.sig(r.get("p99_ms"), 3),
        "throughput": fmt.sig(r.get("throughput"), 3),
        "proc_cpu_mean": fmt.fixed(r.get("proc_cpu_mean"), 0),
        "peak_rss_mb": fmt.sig(r.get("peak_rss_mb"), 3),
        "accuracy": fmt.fixed(r.get("accuracy"), 3),
        "power_mean_w": _absent_or(r, fmt.sig(r.get("power_mean_w"), 3)),
        "energy_per_inference_mj": _absent_or(r, fmt.sig(r.get("energy_per_inference_mj"), 3)),
        "delegation": delegation.compact(r),
    }
    ratio = r.get("rel_ratio")
    if fmt.missing(ratio):
        row["relative"] = ""
    elif r.get("rel_baseline") == r.get("variant"):
        row["relative"] = "ref"
    else:
        lo, hi = r.get("rel_ci_lo"), r.get("rel_ci_hi")
        ci = " (1 rep)" if fmt.missing(lo) else f" ({fmt.interval(lo, hi, fmt.decimals_for(float(ratio)))})"
        tie = "tie " if r.get("rel_tie") is True and not fmt.missing(lo) else ""
        row["relative"] = f"{tie}{fmt.ratio(ratio)}×{ci}"
    start, top = r.get("temp_start_c"), r.get("temp_max_c")
    if fmt.missing(top):
        row["temp"] = "absent" if r.get("status") not in ("pending",) else ""
    else:
        row["temp"] = f"{fmt.fixed(start, 1) if not fmt.missing(start) else '?'}→{float(top):.1f}"
    flags = [f for f in str(r.get("flags") or "").split(",") if f]
    row["flags"] = "".join(FLAG_MARKS.get(f, "?") for f in flags)
    return row


def _one_rep(r: Any) -> bool:
    return "one-repetition" in str(r.get("flags") or "")


def _reps(r: Any) -> str:
    planned, done = r.get("repetitions"), r.get("reps_ok")
    if fmt.missing(planned):
        return ""
    return str(int(planned)) if done == planned else f"{0 if fmt.missing(done) else int(done)}/{int(planned)}"


def _absent_or(r: Any, text: str) -> str:
    """A measured figure, or `absent` for a finished cell that has none (never 0)."""
    return text if text else ("absent" if r.get("status") == "ok" else "")


def display_rows(summary: pd.DataFrame) -> list[dict[str, str]]:
    """display_row of every row, the rows read as dicts: the values iterrows gives a mixed frame's rows, without a
    Series per row and a slow lookup per field."""
    return [display_row(r) for r in summary.to_dict("records")]


def legend_items() -> list[tuple[str, str]]:
    """(mark, explanation) of every validity flag."""
    return [(mark, FLAG_TEXT[flag]) for flag, mark in FLAG_MARKS.items()]


def to_markdown(data: ReportData | pd.DataFrame, sections: list[Section] | None = None) -> str:
    """One Markdown table (rows grouped by device), then fingerprints, notes, flags legend and sections."""
    data = _as_data(data)
    summary = _ordered(data)
    columns = visible_columns(summary, data.multi_run)
    lines = []
    if data.answers:
        lines += ["## Answer", "", answer_markdown(data).rstrip(), ""]
    numeric = {h for c, h in zip(columns, headers(columns, data.baseline)) if column_kind(c) == "n"}
    lines += fmt.markdown_table(headers(columns, data.baseline), [[row[c] for c in columns]
                                                                  for row in display_rows(summary)], numeric)
    lines.append("")
    devices = [(device_label(d, e), fp) for d, e in data.devices() for fp in data.fingerprints(d, e)]
    if devices:
        lines.append("Devices:")
        lines.extend(f"- {label} (run {run_id}): {fingerprint_line(fp)}" for label, (run_id, fp) in devices)
        lines.append("")
    lines.append(f"Relative column: {relative_words(data.baseline)}")
    lines.extend(COLUMN_NOTES + interval_notes(summary) + mode_notes(summary))
    if "power_mean_w" in columns:
        lines.append(POWER_NOTE)
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


def answer_markdown(data: ReportData) -> str:
    """The per-device answer, with the rule it follows."""
    return (answer.to_markdown(data.answers, data.multi_run)
            + f"\nTies: differences inside the run-to-run noise (95 % interval from the repetitions holds 1). "
            f"Accuracy budget: {data.max_accuracy_drop:g} point(s) below the family's baseline variant "
            "(--max-accuracy-drop).\n")


def relative_words(baseline: str) -> str:
    return (f"ratio of p50 to the {baseline_words(baseline)} of the same device, model and thread count (and run), "
            "with a 95 % interval from the repetitions (Welch's t on their log medians); \"tie\" where that interval "
            "holds 1: the difference is inside the run-to-run noise.")


def baseline_words(baseline: str) -> str:
    return "fastest variant" if baseline == "fastest" else f"{baseline} variant"


def column_kind(column: str) -> str:
    return next((k for c, _, k in COLUMNS if c == column), "s")


#: What a spreadsheet reads as the start of a formula (OWASP's list for CSV injection; its tab and carriage
#: return never lead a cell here, since `fmt.name` escapes control characters first).
_FORMULA_START = ("=", "+", "-", "@")


def _csv_text(value: str) -> str:
    """A name or reason as a CSV cell: control characters escaped, and a leading formula character quoted with
    ' so that a spreadsheet shows a model named `=HYPERLINK(...)` instead of running it."""
    text = fmt.name(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def to_csv(data: ReportData | pd.DataFrame) -> str:
    """One record per line: text (names, reasons) with control characters escaped and formulas defused (JSON
    keeps them exact)."""
    frame = export_frame(_as_data(data).summary)
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):  # object or categorical text
            frame[column] = frame[column].astype(object).map(lambda v: _csv_text(v) if isinstance(v, str) else v)
    return frame.to_csv(index=False)


def to_json(data: ReportData | pd.DataFrame, runs: list[dict[str, Any]] | None = None,
            sections: list[Section] | None = None) -> str:
    data = _as_data(data)
    records = json.loads(export_frame(data.summary).to_json(orient="records", double_precision=15))
    body = {
        "format": "benchbot-summary", "version": 1,
        "runs": runs if runs is not None else data.run_states(),
        "baseline": data.baseline, "notes": data.notes,
        "answers": answer.to_json(data.answers), "max_accuracy_drop": data.max_accuracy_drop,
        "cells": records,
        "sections": {(s.name or s.title): s.data for s in sections or [] if s.data is not None},
    }
    return json.dumps(body, indent=2, default=str)


def to_rich(data: ReportData | pd.DataFrame, title: str = "") -> list[Any]:
    """Rich renderables: one table per device (real hardware first), then notes and the flags legend."""
    from rich.markdown import Markdown
    from rich.table import Table
    from rich.text import Text

    data = _as_data(data)
    out: list[Any] = []
    if data.answers:
        out += [Text("Answer", style="bold"), Markdown(answer_markdown(data))]
    for device, emulated in data.devices():
        rows = data.device_rows(device, emulated)
        columns = [c for c in visible_columns(data.summary, data.multi_run, device=False)
                   if c not in POWER_COLUMNS or has_power(rows)]  # power only where the device has a source
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
        # the four columns read, as lists (the values iterrows gave), not a Series per row of ~90 columns
        model, threads, run_id, statuses = (rows[c].tolist() if c in rows else [None] * len(rows)
                                            for c in ("model", "threads", "run_id", "status"))
        for group, status, row in zip(zip(model, threads, run_id), statuses, display_rows(rows)):
            if previous is not None and group != previous:
                table.add_section()
            previous = group
            style = "red" if status == "failed" else ("yellow" if status in ("incomplete", "pending") else None)
            table.add_row(*(Text(row[c]) for c in columns), style=style)  # a name is text, not rich markup
        out.append(table)
    for note in data.notes:
        out.append(Text(f"Note: {note}", style="yellow"))
    out.append(Text(f"{relative_header(data.baseline)}: {relative_words(data.baseline)}", style="dim"))
    for line in column_notes(data.summary):
        out.append(Text(line, style="dim"))
    out.append(Text("Flags: " + FLAG_LEGEND, style="dim"))
    return out


def failures(summary: pd.DataFrame) -> list[str]:
    """One line per cell that did not finish, with its reason."""
    out = []
    for r in summary.to_dict("records"):  # the values iterrows gives, without a Series per row
        if r.get("status") not in ("ok",):
            reason = r.get("reason")
            out.append(f"{fmt.name(r['device'])} {fmt.name(r['model'])}/{fmt.name(r['variant'])} t{r['threads']}: "
                       f"{r.get('status')}" + (f": {fmt.name(reason)}" if not fmt.missing(reason) and reason else ""))
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
