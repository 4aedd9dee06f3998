"""Report and compare runs: build the report data, draw plots, write exports; return what was made.

The terminal view is not made here: `report_runs` hands the Report to a `show` callable (the CLI
passes benchbot.console's), so scripts and notebooks get data and files, never terminal output.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchbot.errors import BenchbotError, StorageError, host_file_error
from benchbot.store import results_root
from benchbot.summary import Run, load_run

__all__ = ["Report", "compare_runs", "open_report", "report_runs"]

Echo = Callable[[str], Any]
Show = Callable[["Report"], Any]

FORMATS = ("table", "md", "csv", "json", "html")
COMPARE_FORMATS = ("table", "md", "json")


@dataclass
class Report:
    """One report of one or more runs: the data, its sections, and the plot files once drawn."""

    data: Any  # benchbot.report.data.ReportData
    runs: list[Run]
    root: Path
    fmt: str = "table"
    plots: bool = True
    cells_wanted: bool = True
    cell_limit: int | None = None
    sections: list[Any] = field(default_factory=list)  # rendered sections (title, markdown)
    plot_files: list[Any] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    #: Why the plots could not all be written (a full disk), once the tables are out; None when they were.
    plot_problem: str | None = None
    _scratch: tempfile.TemporaryDirectory[str] | None = None
    _pending: Any = None  # the first run's plots, being drawn (start_plots)

    def _folder(self, run: Run) -> Path:
        return run.folder / "plots" if self.plots or self._scratch is None else Path(self._scratch.name) / run.run_id

    def start_plots(self) -> None:
        """Start drawing the first run's plots in worker processes, so they are drawn while the tables are
        built and shown; `draw_plots` collects them."""
        from benchbot.report.plots import start_plots

        if self.runs and self._pending is None:
            run = self.runs[0]
            self._pending = start_plots(run, self._folder(run), self.data.plot_formats, cells=self.cells_wanted,
                                        cell_limit=self.cell_limit)

    def draw_plots(self) -> list[Any]:
        """Draw every run's plots (into <run>/plots, or a scratch folder when only the HTML embeds them)."""
        from benchbot.report.plots import plot_run

        for i, run in enumerate(self.runs):
            try:
                if i == 0 and self._pending is not None:
                    pending, self._pending = self._pending, None
                    self.plot_files.extend(pending.result())
                    continue
                self.plot_files.extend(plot_run(run, self._folder(run), self.data.plot_formats,
                                                cells=self.cells_wanted, cell_limit=self.cell_limit))
            except OSError as exc:  # a full disk: the tables are out already; one sentence, not a traceback
                raise host_file_error(exc, "write", self._folder(run)) from None
        if self.plots:
            self.written.extend(p for f in self.plot_files for p in f.paths)
        return self.plot_files

    @property
    def cells_with_samples(self) -> int:
        """Cells that have a best repetition: those a timeline could be drawn for."""
        return sum(sum(1 for c in r.cells if r.best(c.key) is not None) for r in self.runs)

    def close(self) -> None:
        if self._pending is not None:  # started but never collected (an error on the way): stop the workers
            self._pending.cancel()
            self._pending = None
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    def __enter__(self) -> Report:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_report(
    runs: list[str | None],
    fmt: str = "table",
    output: Path | None = None,
    plots: bool = True,
    results: str | None = None,
    baseline: str = "fastest",
    cell_plots: bool | str = "auto",
    plot_formats: tuple[str, ...] = ("png",),
    max_accuracy_drop: float = 1.0,
) -> Report:
    """Load the runs and build their report data; with plots, write each run's summary.csv too."""
    from benchbot.report import table
    from benchbot.report.build import build_report

    if fmt not in FORMATS:
        raise BenchbotError(f"unknown format '{fmt}' (choose table, md, csv, json or html)")
    if fmt == "table" and output is not None:
        raise BenchbotError("--output writes an export: add --format md, csv, json or html")
    root = results_root(results)
    loaded: list[Run] = []
    for r in runs:
        run = load_run(r, root)
        if all(run.folder.resolve() != other.folder.resolve() for other in loaded):
            loaded.append(run)
    data = build_report(loaded, baseline, max_accuracy_drop)
    if plots:
        try:  # the tables need no file: a full disk (or a read-only results folder) costs the files, not the report
            for run in loaded:
                own = data.summary[data.summary["run_id"] == run.run_id]
                tmp = run.folder / "summary.csv.tmp"  # whole or not at all: a cut-off copy would mislead
                try:
                    tmp.write_text(table.to_csv(own))
                    tmp.replace(run.folder / "summary.csv")
                finally:
                    tmp.unlink(missing_ok=True)
                (run.folder / "plots").mkdir(exist_ok=True)
        except OSError as exc:
            plots = False
            data.notes.append(f"No plots or summary.csv were written: {host_file_error(exc, 'write', run.folder)}.")
    cell_limit: int | None = None
    if cell_plots == "auto" and (plots or fmt == "html"):  # matplotlib is imported only to draw
        from benchbot.report import plots as plotting

        cell_limit = plotting.DEFAULT_CELL_LIMIT
    report = Report(data, loaded, root, fmt, plots, cells_wanted=cell_plots not in (False, "none"),
                    cell_limit=cell_limit)
    if plots or fmt == "html":
        if not plots:  # the HTML report embeds its plots even when no plot files are wanted
            report._scratch = tempfile.TemporaryDirectory(prefix="benchbot-plots-")
        data.plot_dir = loaded[0].folder / "plots" if plots else Path(report._scratch.name)  # type: ignore[union-attr]
        data.plot_formats = tuple(plot_formats) if plots else ("png",)  # sections write their plots alike
        data.plot_dir.mkdir(parents=True, exist_ok=True)
    return report


def _html_path(loaded: list[Run], root: Path) -> Path:
    if len(loaded) == 1:
        return loaded[0].folder / "report.html"
    ids = [r.run_id for r in loaded]
    name = "--".join(ids[:3]) + (f"-and-{len(ids) - 3}-more" if len(ids) > 3 else "")
    return root / f"report-{name}.html"


def export_report(report: Report, output: Path | None, echo: Echo) -> list[Path]:
    """Write the md, csv, json or html export (to `output`, else the default file or `echo`); plots drawn first."""
    from benchbot.report import table

    data = report.data
    shown = report.sections
    if report.fmt == "html":
        from benchbot.report import html

        target = output or _html_path(report.runs, report.root)
        target.write_text(html.render(data, report.plot_files, shown), encoding="utf-8")
        echo(f"report: {target}\n")
        report.written.append(target)
        return report.written
    if report.fmt == "json":
        body = table.to_json(data, sections=shown)
    elif report.fmt == "md":
        body = table.to_markdown(data, shown)
    else:
        body = table.to_csv(data)
    if output:
        output.write_text(body)
        report.written.append(output)
    else:
        echo(body)
    return report.written


def _default_echo(text: str) -> None:
    import sys

    sys.stdout.write(text)


def report_runs(
    runs: list[str | None],
    fmt: str = "table",
    output: Path | None = None,
    plots: bool = True,
    results: str | None = None,
    echo: Echo | None = None,
    baseline: str = "fastest",
    sections: list[Any] | None = None,
    cell_plots: bool | str = "auto",
    plot_formats: tuple[str, ...] = ("png",),
    max_accuracy_drop: float = 1.0,
    show: Show | None = None,
    show_plots: Show | None = None,
) -> list[Path]:
    """Export the summary of one or more runs, or hand it to `show`; write plots under each run's folder.

    fmt: table (given to `show`, by default benchbot.console's terminal view), md, csv, json or html
    (one self-contained file; default <run>/report.html). baseline: "fastest" or a variant name for the
    relative column. sections: extra report sections (callables taking the ReportData, see
    benchbot.report.sections); None means the default ones. cell_plots: "auto" (timelines of up to 12
    cells per run, the most telling first), "all"/True, or "none"/False. Exports go to `output`, else
    to `echo` (default: stdout). Returns files written.
    """
    from benchbot.report.sections import render_sections

    report = open_report(runs, fmt, output, plots, results, baseline, cell_plots, plot_formats, max_accuracy_drop)
    with report:
        if fmt == "table":  # the table first: plots of a big run take a while, drawn meanwhile by worker processes
            plots = report.plots  # False when the run folder cannot take them (open_report says why in a note)
            if plots:
                report.start_plots()
            report.sections = render_sections(report.data, sections)
            if show is None or show_plots is None:
                from benchbot.console import Console

                show, show_plots = show or Console().report, show_plots or Console().plot_summary
            show(report)
            if plots:
                try:
                    report.draw_plots()
                except StorageError as exc:  # the tables are out: the plots are what is missing, and it says so
                    report.plot_problem = str(exc)
                show_plots(report)
            return report.written
        if report.data.plot_dir is not None:
            report.draw_plots()
        report.sections = render_sections(report.data, sections)
        return export_report(report, output, echo or _default_echo)


def compare_runs(
    run_a: str,
    run_b: str | None,
    factor: float = 1.05,
    fmt: str = "table",
    output: Path | None = None,
    results: str | None = None,
    echo: Echo | None = None,
    models: tuple[str, str] | None = None,
) -> Any:
    """Compare run B against run A cell by cell (see benchbot.report.compare); write md/json if asked.

    With `models` (A, B) and no run B: model B against model A inside run A, whose repetitions ran
    interleaved (`compare.compare_models`), the comparison that one machine's drift cannot fake.

    Returns the Comparison (its `.slower` cells are what a CI gate fails on); with fmt "table" and no
    output nothing is written: show it with benchbot.console.Console().comparison.
    """
    from benchbot.report import compare

    if fmt not in COMPARE_FORMATS:
        raise BenchbotError(f"unknown format '{fmt}' (choose table, md or json)")
    root = results_root(results)
    if models is not None:
        if run_b is not None:
            raise BenchbotError("--models compares two models of one run: give one run, not two")
        result = compare.compare_models(load_run(run_a, root), models[0], models[1], factor=factor)
    elif run_b is None:
        raise BenchbotError("give two runs to compare (RUN_A RUN_B), or one run and --models OLD,NEW")
    else:
        result = compare.compare(load_run(run_a, root), load_run(run_b, root), factor=factor)
    if fmt == "table" and output is None:
        return result
    body = compare.to_json(result) if fmt == "json" else compare.to_markdown(result)
    if output:
        output.write_text(body)
    else:
        (echo or _default_echo)(body)
    return result
