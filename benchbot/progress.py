"""The state of a run as it goes, per device; what the scheduler reports to.

The scheduler calls a `Progress`; showing it (a live table on a terminal, plain lines elsewhere) is
benchbot.console's. `QuietProgress` records the state and shows nothing (library use, tests).
"""

from __future__ import annotations

import threading
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


class ProgressState:
    """Keeps every device's state; displays subclass it and draw from `devices`."""

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


class QuietProgress(ProgressState):
    """For library use and tests: records state, prints nothing."""
