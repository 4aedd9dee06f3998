"""The one small interface every way of reaching a device implements.

A transport knows how to put files on a device and how to run a command there
while streaming its standard output line by line. Everything else (what to run,
what the lines mean, where they are stored) lives above it, so adding a new way
to reach a board means writing one class.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchbot.errors import DeviceFull, TransportError

__all__ = ["CommandResult", "DeviceFull", "Transport", "TransportError", "human_bytes"]


@dataclass
class CommandResult:
    """How a remote command ended."""

    returncode: int | None
    """Exit status; negative for a signal (as subprocess reports it); None if unknown."""
    stderr_tail: str = ""
    """The last few KiB of standard error, for error messages."""
    timed_out: bool = False
    """True when the deadline passed and the command was killed."""
    interrupted: bool = False
    """True when the host asked the command to stop (Ctrl-C, shutdown)."""


def human_bytes(n: int | None) -> str:
    """1.9 MB, 581 kB: sizes in the units people read on `df -h`, with no false precision."""
    if n is None:
        return "an unknown amount"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


class Transport(abc.ABC):
    """Reaches one device."""

    #: True when the device is an emulation (QEMU) whose timings are not real hardware's.
    emulated: bool = False

    def __init__(self) -> None:
        self.bytes_sent = 0
        #: Called with (state, detail) while `open` waits on something outside benchbot (a labgrid place held
        #: by someone else), so the progress can say so; the scheduler sets it.
        self.on_state: Callable[[str, str], None] = lambda state, detail: None

    @abc.abstractmethod
    def open(self) -> None:
        """Connect (or check the device is usable). Raise TransportError with a clear message."""

    @abc.abstractmethod
    def push(self, local: Path, sha256: str) -> str:
        """Make `local` (whose content hash is `sha256`) available on the device; return its path there.

        Content-addressed: a file already on the device with the same hash is not sent again.
        """

    @abc.abstractmethod
    def run(self, argv: list[str], stdin: bytes, on_line: Callable[[str], None], deadline_s: float) -> CommandResult:
        """Run `argv` on the device, feed it `stdin`, call `on_line` for every stdout line as it arrives.

        Kills the command (its whole process group) when `deadline_s` seconds pass.
        """

    def expand_user(self, path: str) -> str:
        """Resolve a leading ~ to the home folder on the device (remote arguments are quoted, so no shell does)."""
        return os.path.expanduser(path)

    def interrupt(self) -> None:  # noqa: B027 - optional hook
        """Ask a running command to stop (called from another thread on Ctrl-C)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection; safe to call twice."""

    def __enter__(self) -> Transport:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class OverSSH(Transport):
    """A device that something else makes reachable (a VM it boots, a labgrid place it acquires) and that
    is then an SSH device: files and commands go through the inner SSH transport set up by open()."""

    #: set by open(); any object with SSHTransport's push/run/expand_user/interrupt/bytes_sent
    ssh: Any = None
    #: what to say when the device is used before open() set up its SSH transport
    not_connected = "the device is not connected"

    def _connected(self) -> Any:
        if self.ssh is None:
            raise TransportError(self.not_connected)
        return self.ssh

    @property  # read from the inner transport, never set here
    def bytes_sent(self) -> int:
        return int(self.ssh.bytes_sent) if self.ssh is not None else 0

    @bytes_sent.setter
    def bytes_sent(self, value: int) -> None:
        pass  # Transport.__init__ sets 0; the count lives in the inner transport

    def push(self, local: Path, sha256: str) -> str:
        return str(self._connected().push(local, sha256))

    def run(self, argv: list[str], stdin: bytes, on_line: Callable[[str], None], deadline_s: float) -> CommandResult:
        result: CommandResult = self._connected().run(argv, stdin, on_line, deadline_s)
        return result

    def expand_user(self, path: str) -> str:
        return str(self._connected().expand_user(path))

    def interrupt(self) -> None:
        if self.ssh is not None:
            self.ssh.interrupt()
