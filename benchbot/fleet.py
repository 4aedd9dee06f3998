"""A controller that holds a fleet: a bound on devices at once (--max-parallel) and progress that stays readable.

Each device runs in its own thread with its own SSH connection; `--max-parallel N` makes the others wait
for a free slot (a waiting device holds no connection). With many devices a line per repetition floods the
terminal, so above a few devices the progress prints one summary line per device when it finishes, and a
fleet line every few seconds; `--progress cells` brings the per-repetition view back.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from benchbot.errors import BenchbotError
from benchbot.progress import ProgressState

#: Devices at once when --max-parallel is not given: every device, up to this many (threads and sockets
#: per device are cheap, see bench/fleet.py, but a file-descriptor limit of 1024 is common).
DEFAULT_MAX_PARALLEL = 128
#: Above this many devices the progress is one line per device (unless --progress cells).
COMPACT_ABOVE = 8


def max_parallel(requested: int | None, devices: int) -> int:
    """How many devices run at once: the request, else all of them up to DEFAULT_MAX_PARALLEL."""
    if requested is None:
        return max(1, min(devices, DEFAULT_MAX_PARALLEL))
    if requested < 1:
        raise BenchbotError(f"--max-parallel must be at least 1, got {requested}")
    return requested


@contextlib.contextmanager
def slot(slots: threading.Semaphore, stop: threading.Event, on_wait: Callable[[], Any]) -> Iterator[bool]:
    """Hold one of the run's device slots; yields False when the run stopped before one was free."""
    got = slots.acquire(blocking=False)
    if not got:
        on_wait()
        while not stop.is_set() and not got:
            got = slots.acquire(timeout=0.2)
    try:
        yield got
    finally:
        if got:
            slots.release()


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


def compact(devices: int, detail: str) -> bool:
    """Whether the progress is one line per device: `--progress devices`, or auto above COMPACT_ABOVE devices."""
    if detail not in ("auto", "devices", "cells"):
        raise BenchbotError(f"--progress takes auto, devices or cells, got '{detail}'")
    return detail == "devices" or (detail == "auto" and devices > COMPACT_ABOVE)
