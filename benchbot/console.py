"""Everything benchbot shows on a terminal, in one place, writing to an injectable Environment.

The library (benchbot.api) returns data; this module turns it into lines and rich tables. The
Environment (streams, whether stdout is a terminal, the width) is a value, as in httpie, so tests
and notebooks pass their own streams instead of patching sys.stdout or faking a terminal.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from benchbot.errors import BenchbotError
from benchbot.progress import Progress, ProgressState, QuietProgress


@dataclass
class Environment:
    """Where output goes and what kind of terminal it is; the defaults read the process's own."""

    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    stdout_isatty: bool | None = None
    """None: ask stdout."""
    stderr_isatty: bool | None = None
    """None: ask stderr (a live progress table only on a terminal)."""
    width: int | None = None
    """Columns of rich tables. None: the terminal's, or at least 200 when stdout is a pipe or file."""

    def __post_init__(self) -> None:
        if self.stdout_isatty is None:
            self.stdout_isatty = _isatty(self.stdout)
        if self.stderr_isatty is None:
            self.stderr_isatty = _isatty(self.stderr)


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or file-like stream without a terminal
        return False


class PlainProgress(ProgressState):
    """One line per cell start and end, for CI logs and pipes."""

    def __init__(self, stream: Any = None) -> None:
        super().__init__()
        self.stream = stream or sys.stderr

    def _print(self, text: str) -> None:
        from benchbot.report.fmt import name

        self.stream.write(name(text) + "\n")  # a newline in a model's file name must not split the line
        self.stream.flush()

    def update(self, device: str, **changes: Any) -> None:
        before = self.devices.get(device)
        old_cell = before.cell if before else None
        super().update(device, **changes)
        if changes.get("state") == "running" and before is not None:
            self._print(f"[{device}] {before.done + 1}/{before.total} {before.cell}: running")
        elif changes.get("state") == "failed" and changes.get("cell") and changes.get("cell") != old_cell:
            self._print(f"[{device}] failed: {changes['cell']}")
        elif changes.get("state") == "waiting" and changes.get("cell"):
            self._print(f"[{device}] {changes['cell']}")

    def cell_done(self, device: str, outcome: Any) -> None:
        super().cell_done(device, outcome)
        state = self.devices[device]
        if outcome.status == "ok":
            p50 = f", p50 {outcome.p50_ms:.3f} ms" if outcome.p50_ms is not None else ""
            self._print(f"[{device}] {state.done}/{state.total} {outcome.label()}: ok in {outcome.wall_s:.1f} s{p50}")
        else:
            self._print(f"[{device}] {state.done}/{state.total} {outcome.label()}: {outcome.status}: {outcome.reason}")


class DeviceLines(ProgressState):
    """One line per device when it is finished, and a fleet line every `every_s` seconds (for 10-1000 devices)."""

    def __init__(self, stream: Any = None, every_s: float = 10.0) -> None:
        super().__init__()
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self.started = time.monotonic()
        self.last_line = self.started
        self.reported: set[str] = set()
        self.first_failure: dict[str, str] = {}
        self.p50: dict[str, float] = {}

    def _print(self, text: str) -> None:
        from benchbot.report.fmt import name

        self.stream.write(name(text) + "\n")
        self.stream.flush()

    def update(self, device: str, **changes: Any) -> None:
        super().update(device, **changes)
        if changes.get("state") in ("done", "interrupted"):
            self._device_line(device)
        elif changes.get("state") == "waiting" and changes.get("cell"):
            self._print(f"[{device}] {changes['cell']}")  # someone else's board: worth one line, once
        self._fleet_line()

    def cell_done(self, device: str, outcome: Any) -> None:
        super().cell_done(device, outcome)
        with self.lock:
            if outcome.status != "ok":
                self.first_failure.setdefault(device, str(outcome.reason))
            elif outcome.p50_ms is not None:
                self.p50[device] = outcome.p50_ms
            finished = self.devices[device].done >= self.devices[device].total
        if finished:
            self._device_line(device)

    def _device_line(self, device: str) -> None:
        with self.lock:
            if device in self.reported:
                return
            self.reported.add(device)
            d = self.devices[device]
            ok = d.done - d.failed
            elapsed = time.monotonic() - self.started
            if d.done < d.total:
                text = f"[{device}] interrupted: {d.done} of {d.total} repetitions done ({ok} ok)"
            elif d.failed == 0:
                p50 = f", last p50 {self.p50[device]:.3f} ms" if device in self.p50 else ""
                text = f"[{device}] ok: {d.total} repetitions at {elapsed:.1f} s{p50}"
            elif ok == 0:
                text = f"[{device}] FAILED: {self.first_failure.get(device, 'failed')}"
            else:
                text = (f"[{device}] partial: {ok} of {d.total} repetitions ok; first failure: "
                        f"{self.first_failure.get(device, '')}")
        self._print(text)

    def _fleet_line(self, force: bool = False) -> None:
        now = time.monotonic()
        with self.lock:
            if not force and now - self.last_line < self.every_s:
                return
            self.last_line = now
            states = [d.state for d in self.devices.values()]
            finished = len(self.reported)
            queued = states.count("queued") + states.count("waiting")
            running = len(states) - finished - queued
            done = sum(d.done for d in self.devices.values())
            total = sum(d.total for d in self.devices.values())
            failed = sum(1 for d in self.devices.values() if d.failed)
        self._print(f"fleet at {now - self.started:.0f} s: {finished} of {len(states)} devices finished "
                    f"({failed} with failures), {running} running, {queued} queued; {done} of {total} repetitions")

    def close(self) -> None:
        if self.devices:
            self._fleet_line(force=True)


class RichProgress(ProgressState):
    """A live table: per device its state, current cell, runs and seconds, last p50 and temperature."""

    def __init__(self, stream: Any = None) -> None:
        super().__init__()
        from rich.console import Console
        from rich.live import Live

        self.console = Console(file=stream) if stream is not None else Console(stderr=True)
        self.started = time.monotonic()
        self.live = Live(self._render(), console=self.console, refresh_per_second=4, get_renderable=self._render)
        self.live.start()

    def _render(self) -> Any:
        from rich.table import Table

        table = Table(title=f"benchbot run  {time.monotonic() - getattr(self, 'started', time.monotonic()):.0f} s",
                      title_justify="left", expand=False)
        for column in ("device", "repetitions", "state", "cell", "runs", "s", "cell p50 ms", "temp °C"):
            table.add_column(column, justify="right" if column in ("repetitions", "runs", "s", "cell p50 ms", "temp °C")
                             else "left", no_wrap=column == "cell")
        with self.lock:
            for d in self.devices.values():
                cells = f"{d.done}/{d.total}" + (f" [red]{d.failed} failed[/]" if d.failed else "")
                table.add_row(
                    d.name, cells, d.state + (f" ({d.phase})" if d.phase and d.state == "running" else ""),
                    d.cell, str(d.runs) if d.runs else "", f"{d.seconds:.1f}" if d.state == "running" else "",
                    f"{d.p50_ms:.3f}" if d.p50_ms is not None else "",
                    f"{d.temp_c:.1f}" if d.temp_c is not None else "absent",
                )
        return table

    def cell_done(self, device: str, outcome: Any) -> None:
        super().cell_done(device, outcome)
        if outcome.status != "ok":
            self.console.print(f"[red]{device}: {outcome.label()}: {outcome.reason}[/]")

    def close(self) -> None:
        self.live.stop()


class Console:
    """Renders benchbot's results for people: lines to stdout, problems and progress to stderr."""

    def __init__(self, env: Environment | None = None) -> None:
        self.env = env or Environment()

    # ------------------------------------------------------------------ primitives
    def out(self, text: str = "", end: str = "\n") -> None:
        self.env.stdout.write(text + end)
        self.env.stdout.flush()

    def err(self, text: str = "", end: str = "\n") -> None:
        self.env.stderr.write(text + end)
        self.env.stderr.flush()

    def write(self, text: str) -> None:
        """Text as it is (an export body), no newline added."""
        self.out(text, end="")

    def error(self, exc: BaseException | str) -> None:
        """A user's problem: one line, never a traceback."""
        self.err(f"benchbot: {exc}")

    def warning(self, text: str) -> None:
        self.err(f"benchbot: warning: {text}")

    def rich(self) -> Any:
        """A rich console on stdout; wide when it is not a terminal, so exported tables are not wrapped."""
        from rich.console import Console as RichConsole

        width = self.env.width
        if width is None and not self.env.stdout_isatty:
            width = max(200, RichConsole(file=self.env.stdout).width)
        return RichConsole(file=self.env.stdout, width=width)

    def progress(self, quiet: bool = False) -> Progress:
        """The live display of a run: none (quiet), a table on a terminal, else one line per event."""
        if quiet:
            return QuietProgress()
        if self.env.stderr_isatty:
            return RichProgress(None if self.env.stderr is sys.stderr else self.env.stderr)
        return PlainProgress(self.env.stderr)

    def run_progress(self, quiet: bool = False, detail: str = "auto") -> Callable[[int], Progress]:
        """The display of a run of N devices: one line per device for a fleet (--progress), else `progress()`."""
        def make(devices: int) -> Progress:
            if not quiet and compact(devices, detail):
                return DeviceLines(self.env.stderr)
            return self.progress(quiet)

        return make

    # ------------------------------------------------------------------ run
    def run_outcome(self, outcome: Any) -> None:
        """The one-line summary of a run and each failed repetition (stderr: stdout stays for data)."""
        ok = len(outcome.outcomes) - len(outcome.failed)
        planned = max(outcome.planned, len(outcome.outcomes))
        not_run = f"; {planned - len(outcome.outcomes)} not run" if planned > len(outcome.outcomes) else ""
        self.err(f"run {outcome.run_id}: {outcome.cells_ok} of {len(outcome.planned_units)} cells ok ({ok} of "
                 f"{planned} repetitions{not_run}), stored in {outcome.folder}")
        if outcome.interrupted:
            return
        for failure in outcome.failed:
            self.err(f"  failed: {failure.cell.device} {failure.label()}: {failure.reason}")

    def runs(self, root: Path, entries: list[Any]) -> None:
        if not entries:
            self.out(f"no runs in {root}")
        for e in entries:
            if e.unreadable:
                self.out(f"{e.run_id}  unreadable  {e.unreadable}")
                continue
            self.out(f"{e.run_id}  {e.state:10}  {e.cells_ok}/{e.cells} cells ok  devices: {','.join(e.devices)}")
            if e.log_damage:
                self.out(f"  damaged: {e.log_damage}")
            if e.damaged is not None:
                for attempt in e.damaged:
                    self.out(f"  damaged: {attempt.cell.key} repetition {attempt.repetition}: {attempt.damage}")
                if not e.damaged:
                    self.out("  verified: every repetition's samples and events are whole")

    # ------------------------------------------------------------------ report
    def report(self, report: Any) -> None:
        """The terminal report: run states, a table per device, failures, then the sections."""
        from rich.markdown import Markdown
        from rich.text import Text

        from benchbot.report import table

        console = self.rich()
        data = report.data
        for state in data.run_states():
            console.print(Text.assemble((f"run {state['run_id']}", "bold"),
                                        f"  {state['state_words']}  ({state['folder']})"))
        for renderable in table.to_rich(data):
            console.print(renderable)
        for line in table.failures(data.summary):
            console.print(line, style="red", markup=False)
        for section in report.sections:
            console.print()
            console.print(f"[bold]{section.title}[/]")
            console.print(Markdown(section.markdown))

    def plot_summary(self, report: Any) -> None:
        """Where the plots went, and how many cell timelines `--cell-plots all` would add."""
        if report.plot_problem:
            self.warning(f"plots not written: {report.plot_problem}")
            return
        plot_files = report.plot_files
        folders = sorted({str(p.paths[0].parent) for p in plot_files if p.kind != "timeline" and p.paths})
        timelines = sum(1 for p in plot_files if p.kind == "timeline")
        cells = report.cells_with_samples
        line = f"plots: {', '.join(folders)}"
        if timelines:
            line += f" (and {timelines} cell timelines in cells/)"
        if report.cells_wanted and timelines < cells:
            line += f"; {cells - timelines} more timelines with --cell-plots all"
        self.rich().print(line)

    def comparison(self, result: Any) -> None:
        from benchbot.report import compare

        console = self.rich()
        for renderable in compare.to_rich(result):
            console.print(renderable)

    # ------------------------------------------------------------------ devices
    def devices(self, entries: list[Any]) -> None:
        for e in entries:
            if e.error:
                self.out(f"{e.name:14} INVALID: {e.error}")
            else:
                self.out(f"{e.name:14} {e.location:40} {e.profile.description}  ({e.path})")

    def device_checks(self, results: list[Any]) -> None:
        for res in results:
            self.out(f"{res.name}: {'ok' if res.ok else 'FAILED'}")
            for key, value in res.facts:
                self.out(f"  {key:15} {value}")
            for problem in res.problems:
                self.out(f"  problem: {problem.removeprefix(res.name + ': ')}")

    def trusted(self, results: list[Any]) -> None:
        for result in results:
            if result.nothing_to_do:
                self.out(f"{result.name}: {result.nothing_to_do}")
                continue
            if result.place:
                self.out(f"{result.name}: labgrid place {result.place}")
            for line in result.recorded:
                self.out(f"{result.name}: trusted {line}")
            self.out(f"{result.name}: recorded in {result.known_hosts}")

    def inventory(self, profiles: list[Any], inventory: str, base_profile: str | None) -> None:
        """What an Ansible inventory resolves to, one device a line."""
        from benchbot.profiles import location

        for profile in profiles:
            key = f"  key {profile.ssh.key}" if profile.ssh.key else ""
            self.out(f"{profile.name:14} {location(profile):40} python {profile.python or 'python3'}  "
                     f"workdir {profile.workdir}{key}  (from {inventory}, profile {base_profile or 'defaults'})")

    # ------------------------------------------------------------------ models
    def models(self, families: list[Any]) -> None:
        for family in families:
            variants = ", ".join(f"{v.variant} ({v.size / 1024:.0f} KiB)" for v in family.variants)
            self.out(f"{family.name:14} {variants}")
            if family.info.get("description"):
                self.out(f"{'':14} {family.info['description']}")

    def inspections(self, found: list[Any], as_json: bool = False) -> None:
        from benchbot.models.inspect import describe

        for item in found:
            self.out(json.dumps(item.as_json()) if as_json else "\n".join(describe(item.info, item.checks)))

    def converted(self, family: dict[str, Any], out: str) -> None:
        for variant, entry in family["variants"].items():
            self.out(f"{variant:8} {entry['size'] / 1024:9.1f} KiB  {Path(out) / entry['file']}")
        for variant, reason in family["failed"].items():
            self.out(f"{variant:8} FAILED: {reason}")
        self.out(f"family {family['name']} (baseline {family['baseline']}, eval set: {family['eval'] or 'none'}) "
                 f"in {out}; benchmark it with: benchbot run --models {out}")

    # ------------------------------------------------------------------ qemu
    def doctor(self, result: Any) -> None:
        for check in result.checks:
            self.out(f"{'ok' if check.ok else 'MISSING':8} {check.name:24} {check.detail}")
        if not result.ok:
            self.out(f"install with: {result.install_hint}")

    def vm_status(self, name: str, status: dict[str, Any]) -> None:
        if status["running"]:
            self.out(f"{name}: running, pid {status['pid']}, ssh on 127.0.0.1:{status['port']}, "
                     f"up {status['uptime']} s")
        else:
            self.out(f"{name}: not running")


#: Above this many devices the progress is one line per device (unless --progress cells).
COMPACT_ABOVE = 8


def compact(devices: int, detail: str) -> bool:
    """Whether the progress is one line per device: `--progress devices`, or auto above COMPACT_ABOVE devices."""
    if detail not in ("auto", "devices", "cells"):
        raise BenchbotError(f"--progress takes auto, devices or cells, got '{detail}'")
    return detail == "devices" or (detail == "auto" and devices > COMPACT_ABOVE)
