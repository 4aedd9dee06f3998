"""The HTML report: ONE self-contained file (CSS inline, plots embedded as base64 PNG, no external URL).

It reads like the terminal report: notes first, then per device its fingerprint,
table and plots, the flags legend, optional sections, and the cell timelines
(flagged cells first) folded under <details>. Mail it as an attachment.

The page is a Jinja2 template with autoescape on (templates/report.html.j2, package data): every
value is text unless this module marks it as markup (embedded images, a section's own HTML).
"""

from __future__ import annotations

import base64
import functools
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from benchbot.report import table
from benchbot.report.data import ReportData, cell_id, device_label, fingerprint_line
from benchbot.version import __version__

if TYPE_CHECKING:
    import jinja2
    import pandas as pd

    from benchbot.report.plots import PlotFile
    from benchbot.report.sections import Section

TEMPLATES = Path(__file__).resolve().parent / "templates"


@functools.cache
def _environment() -> jinja2.Environment:
    """Autoescape everything: a model or device name is text, whatever characters it holds. (jinja2 is imported
    here: the terminal report imports this module but renders no HTML.)"""
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, trim_blocks=True,
                              lstrip_blocks=True, undefined=jinja2.StrictUndefined)


def render_fragment(template: str, **context: Any) -> Markup:
    """A piece of the page (a report section) from its own template, autoescaped like the page."""
    return Markup(_environment().get_template(template).render(**context))


def image_tag(path: Path, alt: str) -> Markup:
    """An <img> with the file embedded as a data URI (PNG) or the SVG text base64-encoded."""
    mime = "image/svg+xml" if path.suffix == ".svg" else "image/png"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return Markup('<img alt="{}" src="data:{};base64,{}">').format(alt, mime, data)


def _figure(plot: PlotFile, with_run: bool = False) -> Markup:
    path = plot.path("png") or plot.paths[0]
    caption = plot.title + (f" (run {plot.run_id})" if with_run else "")
    return Markup("<figure>{}<figcaption>{}</figcaption></figure>").format(image_tag(path, caption), caption)


def table_rows(rows_frame: pd.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
    """The cells table as data: every row carries its cell identity and every value its column (for tools)."""
    out: list[dict[str, Any]] = []
    previous = None
    for (_, r), row in zip(rows_frame.iterrows(), table.display_rows(rows_frame)):
        group = (r.get("model"), r.get("threads"), r.get("run_id"))
        classes = [str(r.get("status") or "")]
        if previous is not None and group != previous:
            classes.append("group")
        previous = group
        cells = []
        for column in columns:
            flags: list[tuple[str, str]] = []
            if column == "flags" and row[column]:
                flags = [(table.FLAG_MARKS.get(f, "?"), table.FLAG_TEXT.get(f, f))
                         for f in str(r.get("flags") or "").split(",") if f]
            cells.append({"column": column, "kind": "num" if table.column_kind(column) == "n" else "txt",
                          "text": row[column], "flags": flags})
        out.append({"classes": " ".join(c for c in classes if c),
                    "ident": "|".join(str(v) for v in cell_id(r)), "cells": cells})
    return out


def render(data: ReportData, plots: Iterable[PlotFile] = (), sections: Iterable[Section] = (),
           max_timelines: int = 32) -> str:
    plots = list(plots)
    columns = table.visible_columns(data.summary, data.multi_run, device=False)
    devices = []
    for device, emulated in data.devices():
        rows = data.device_rows(device, emulated)
        shown = [c for c in columns if c not in table.POWER_COLUMNS or table.has_power(rows)]
        devices.append({
            "label": device_label(device, emulated), "emulated": emulated,
            "fingerprints": [(run_id, fingerprint_line(fp)) for run_id, fp in data.fingerprints(device, emulated)],
            "headers": list(zip(shown, table.headers(shown, data.baseline))),
            "rows": table_rows(rows, shown),
            "figures": [_figure(p, data.multi_run) for p in plots if p.kind != "timeline" and p.device == device
                        and _run_emulated(data, p.run_id, p.device) == emulated],
        })
    timelines = sorted((p for p in plots if p.kind == "timeline"), key=lambda p: (not p.flagged, p.run_id, p.key))
    timeline_items = []
    for plot in timelines[:max_timelines]:
        run = f" (run {plot.run_id})" if data.multi_run else ""
        flags = f" — {plot.flags.replace(',', ', ')}" if plot.flags else ""
        timeline_items.append((plot.title + run + flags, _figure(plot, data.multi_run)))
    return _environment().get_template("report.html.j2").render(
        run_ids=[r.run_id for r in data.runs],
        states=[{"run_id": s["run_id"], "created": s.get("created") or "?",
                 "done": s["state_words"]}
                for s in data.run_states()],
        notes=data.notes,
        answers=[(device_label(a.device, a.emulated) + (f", run {a.run_id}" if data.multi_run else ""), a.sentence())
                 for a in data.answers],
        budget=f"{data.max_accuracy_drop:g}",
        devices=devices,
        relative_header=table.relative_header(data.baseline),
        relative_words=table.relative_words(data.baseline),
        column_notes=table.column_notes(data.summary),
        legend=table.legend_items(),
        problems=table.failures(data.summary),
        # A section's HTML comes from benchbot's own renderers, which escape what they insert.
        sections=[{"title": s.title, "html": None if s.html is None else Markup(s.html), "markdown": s.markdown,
                   "images": [image_tag(Path(i), s.title) for i in s.images]} for s in sections],
        timelines=timeline_items,
        more_timelines=max(0, len(timelines) - max_timelines),
        version=__version__,
        generated=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    )


def _run_emulated(data: ReportData, run_id: str, device: str) -> bool:
    for run in data.runs:
        if run.run_id == run_id:
            return bool(run.manifest.get("devices", {}).get(device, {}).get("emulated"))
    return False
