"""What the user sees while a run is going: a live rich table on a terminal, plain lines elsewhere."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass
class DeviceState:
    name: str
    total: int
    done: int = 0
    failed: int = 0
    state: str = "waiting"
    cell: str = ""
    phase: str = ""
    runs: int = 0
    seconds: float = 0.0
    p50_ms: float | None = None
    temp_c: float | None = None


class Progress(Protocol):
    def add_device(self, name: str, total: int) -> None: ...
    def update(self, device: str, **changes: Any) -> None: ...
    def cell_done(self, device: str, outcome: Any) -> None: ...
    def close(self) -> None: ...


class _Base:
    def __init__(self) -> None:
        self.devices: dict[str, DeviceState] = {}
        self.lock = threading.Lock()

    def add_device(self, name: str, total: int) -> None:
        with self.lock:
            self.devices[name] = DeviceState(name, total)

    def update(self, device: str, **changes: Any) -> None:
        with self.lock:
            state = self.devices.get(device)
            if state is None:
                return
            for key, value in changes.items():
                setattr(state, key, value)

    def cell_done(self, device: str, outcome: Any) -> None:
        with self.lock:
            state = self.devices[device]
            state.done += 1
            if outcome.status != "ok":
                state.failed += 1

    def close(self) -> None:
        pass


class QuietProgress(_Base):
    """For library use and tests: records state, prints nothing."""


class PlainProgress(_Base):
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

    def cell_done(self, device: str, outcome: Any) -> None:
        super().cell_done(device, outcome)
        state = self.devices[device]
        if outcome.status == "ok":
            p50 = f", p50 {outcome.p50_ms:.3f} ms" if outcome.p50_ms is not None else ""
            self._print(f"[{device}] {state.done}/{state.total} {outcome.label()}: ok in {outcome.wall_s:.1f} s{p50}")
        else:
            self._print(f"[{device}] {state.done}/{state.total} {outcome.label()}: {outcome.status}: {outcome.reason}")


class RichProgress(_Base):
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


def make_progress(quiet: bool = False) -> _Base:
    if quiet:
        return QuietProgress()
    if sys.stderr.isatty():
        return RichProgress()
    return PlainProgress()
