"""The HTML report: ONE self-contained file (CSS inline, plots embedded as base64 PNG, no external URL).

It reads like the terminal report: notes first, then per device its fingerprint,
table and plots, the flags legend, optional sections, and the cell timelines
(flagged cells first) folded under <details>. Mail it as an attachment.
"""

from __future__ import annotations

import base64
import html
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from benchbot import __version__
from benchbot.report import table
from benchbot.report.data import ReportData, cell_id, device_label, fingerprint_line

if TYPE_CHECKING:
    from benchbot.report.plots import PlotFile
    from benchbot.report.sections import Section

CSS = """
body { font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: #1d1d1f;
       margin: 24px auto; max-width: 1400px; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ddd; }
h3 { font-size: 15px; margin-top: 20px; }
.meta, .fp { color: #555; } .fp { font-size: 13px; margin: 2px 0; }
.note { background: #fff6d6; border-left: 4px solid #e0a800; padding: 8px 12px; margin: 8px 0; }
table.cells { border-collapse: collapse; margin: 10px 0; font-size: 13px; }
table.cells th, table.cells td { padding: 3px 8px; border-bottom: 1px solid #e5e5e5; white-space: nowrap; }
table.cells th { background: #f4f4f6; text-align: left; position: sticky; top: 0; }
table.cells td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.cells tr.group td { border-top: 2px solid #c8c8cc; }
table.cells tr.failed td { color: #b00020; } table.cells tr.incomplete td, table.cells tr.pending td { color: #8a6d00; }
abbr { text-decoration: none; border-bottom: 1px dotted #888; cursor: help; }
.legend dt { font-weight: bold; float: left; width: 1.6em; } .legend dd { margin: 0 0 2px 2em; }
figure { margin: 12px 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 12px; }
details { margin: 4px 0; } summary { cursor: pointer; }
.small { font-size: 12px; color: #666; } pre { background: #f7f7f9; padding: 8px; overflow-x: auto; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def image_tag(path: Path, alt: str) -> str:
    """An <img> with the file embedded as a data URI (PNG) or the SVG text base64-encoded."""
    mime = "image/svg+xml" if path.suffix == ".svg" else "image/png"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:{mime};base64,{data}">'


def _figure(plot: PlotFile, with_run: bool = False) -> str:
    path = plot.path("png") or plot.paths[0]
    caption = plot.title + (f" (run {plot.run_id})" if with_run else "")
    return f"<figure>{image_tag(path, caption)}<figcaption>{_e(caption)}</figcaption></figure>"


def cells_table(data: ReportData, rows_frame, columns: list[str]) -> str:
    """An HTML table; every row carries its cell identity and every value its column, for tools and tests."""
    out = ['<table class="cells"><thead><tr>']
    for column, header in zip(columns, table.headers(columns, data.baseline)):
        out.append(f'<th data-col="{_e(column)}">{_e(header)}</th>')
    out.append("</tr></thead><tbody>")
    previous = None
    for (_, r), row in zip(rows_frame.iterrows(), table.display_rows(rows_frame)):
        group = (r.get("model"), r.get("threads"), r.get("run_id"))
        classes = [str(r.get("status") or "")]
        if previous is not None and group != previous:
            classes.append("group")
        previous = group
        ident = "|".join(str(v) for v in cell_id(r))
        out.append(f'<tr class="{_e(" ".join(c for c in classes if c))}" data-cell="{_e(ident)}">')
        for column in columns:
            kind = "num" if table.column_kind(column) == "n" else "txt"
            text = row[column]
            if column == "flags" and text:
                flags = [f for f in str(r.get("flags") or "").split(",") if f]
                inner = "".join(f'<abbr title="{_e(table.FLAG_TEXT.get(f, f))}">{_e(table.FLAG_MARKS.get(f, "?"))}'
                                "</abbr>" for f in flags)
            else:
                inner = _e(text)
            out.append(f'<td class="{kind}" data-col="{_e(column)}">{inner}</td>')
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def render(data: ReportData, plots: Iterable[PlotFile] = (), sections: Iterable[Section] = (),
           max_timelines: int = 32) -> str:
    plots = list(plots)
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>benchbot report: {_e(', '.join(r.run_id for r in data.runs))}</title>",
             f"<style>{CSS}</style></head><body>", "<h1>benchbot report</h1>"]
    for state in data.run_states():
        done = "complete" if state["complete"] else "INCOMPLETE (some cells did not finish)"
        parts.append(f'<p class="meta">run <b>{_e(state["run_id"])}</b>, {_e(done)}, created '
                     f'{_e(state.get("created") or "?")}</p>')
    for note in data.notes:
        parts.append(f'<div class="note"><b>Note:</b> {_e(note)}</div>')
    if data.answers:
        parts.append("<h2>Answer</h2><ul>")
        for item in data.answers:
            where = device_label(item.device, item.emulated) + (f", run {item.run_id}" if data.multi_run else "")
            parts.append(f"<li><b>{_e(where)}</b>: {_e(item.sentence())}</li>")
        parts.append(f"</ul><p>Ties: differences inside the run-to-run noise. Accuracy budget: "
                     f"{_e(f'{data.max_accuracy_drop:g}')} point(s) below the family's baseline.</p>")

    columns = table.visible_columns(data.summary, data.multi_run, device=False)
    for device, emulated in data.devices():
        label = device_label(device, emulated)
        parts.append(f"<h2>{_e(label)}" + (" — emulated, not comparable with hardware" if emulated else "") + "</h2>")
        for run_id, fp in data.fingerprints(device, emulated):
            parts.append(f'<p class="fp">{_e(run_id)}: {_e(fingerprint_line(fp))}</p>')
        rows = data.device_rows(device, emulated)
        parts.append(cells_table(data, rows, [c for c in columns if c not in table.POWER_COLUMNS
                                              or table.has_power(rows)]))
        for plot in plots:
            run_emulated = _run_emulated(data, plot.run_id, plot.device)
            if plot.kind != "timeline" and plot.device == device and run_emulated == emulated:
                parts.append(_figure(plot, data.multi_run))

    parts.append("<h2>How to read the table</h2>")
    parts.append(f"<p>{_e(table.relative_header(data.baseline))}: {_e(table.relative_words(data.baseline))} "
                 "ref marks the baseline.</p>")
    for line in table.COLUMN_NOTES + ([table.POWER_NOTE] if table.has_power(data.summary) else []):
        parts.append(f"<p>{_e(line)}</p>")
    parts.append('<dl class="legend">')
    for mark, text in table.legend_items():
        parts.append(f"<dt>{_e(mark)}</dt><dd>{_e(text)}</dd>")
    parts.append("</dl>")
    problems = table.failures(data.summary)
    if problems:
        parts.append("<h3>Cells that did not finish</h3><ul>")
        parts.extend(f"<li>{_e(p)}</li>" for p in problems)
        parts.append("</ul>")

    for section in sections:
        parts.append(f"<h2>{_e(section.title)}</h2>")
        parts.append(section.html if section.html is not None else f"<pre>{_e(section.markdown)}</pre>")
        for image in section.images:
            parts.append(f"<figure>{image_tag(Path(image), section.title)}</figure>")

    timelines = sorted((p for p in plots if p.kind == "timeline"), key=lambda p: (not p.flagged, p.run_id, p.key))
    if timelines:
        parts.append("<h2>Cell timelines</h2>")
        parts.append('<p class="small">Latency of every inference, temperature, CPU frequency, CPU % and memory '
                     "against time; warmup and timed loop shaded. Flagged cells first.</p>")
        for plot in timelines[:max_timelines]:
            run = f" (run {plot.run_id})" if data.multi_run else ""
            flags = f" — {plot.flags.replace(',', ', ')}" if plot.flags else ""
            parts.append(f"<details><summary>{_e(plot.title + run + flags)}</summary>"
                         f"{_figure(plot, data.multi_run)}</details>")
        if len(timelines) > max_timelines:
            rest = len(timelines) - max_timelines
            parts.append(f'<p class="small">{rest} more timelines are in each run\'s plots/cells folder.</p>')

    parts.append(f'<p class="small">benchbot {_e(__version__)}, '
                 f'{_e(time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))}</p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _run_emulated(data: ReportData, run_id: str, device: str) -> bool:
    for run in data.runs:
        if run.run_id == run_id:
            return bool(run.manifest.get("devices", {}).get(device, {}).get("emulated"))
    return False
