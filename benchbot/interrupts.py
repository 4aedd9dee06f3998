"""SIGTERM handled like Ctrl-C while a run goes on.

A service manager, `timeout`, a CI runner or `kill` stops a process with SIGTERM. Python's default
ends the process at once: the agents on the devices keep running, `run_end` is never logged and no
resume hint is printed. Turning SIGTERM into KeyboardInterrupt gives it the very path Ctrl-C takes.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

received: int | None = None
"""The signal (SIGINT or SIGTERM) that interrupted the last run, for the message."""


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    global received
    if received is not None:  # already stopping: a second signal must not abort the clean-up half-way
        return
    received = signum
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt in the main thread (once); outside, as before."""
    global received
    received = None
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def interrupted_by() -> str:
    """' by SIGTERM' when SIGTERM stopped the run, else '' (Ctrl-C needs no explanation)."""
    return " by SIGTERM" if received == signal.SIGTERM else ""
