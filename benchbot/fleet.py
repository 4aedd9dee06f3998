"""A controller that holds a fleet: a bound on devices at once (--max-parallel).

Each device runs in its own thread with its own SSH connection; `--max-parallel N` makes the others wait
for a free slot (a waiting device holds no connection). How a fleet's progress is shown (one line per
device) is the console's: `benchbot.console.DeviceLines`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from benchbot.errors import BenchbotError

#: Devices at once when --max-parallel is not given: every device, up to this many (threads and sockets
#: per device are cheap, see bench/fleet.py, but a file-descriptor limit of 1024 is common).
DEFAULT_MAX_PARALLEL = 128


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
