"""The machine benchbot runs on, reached as a subprocess: no copying, no SSH."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from benchbot.transport.base import CommandResult, Transport, TransportError


class LocalTransport(Transport):
    """Runs commands here; files are used where they are (push copies nothing)."""

    def __init__(self) -> None:
        super().__init__()
        self._proc: subprocess.Popen[bytes] | None = None
        self._interrupted = threading.Event()

    def open(self) -> None:
        self._interrupted.clear()

    def push(self, local: Path, sha256: str) -> str:
        if not local.is_file():
            raise TransportError(f"{local} does not exist")
        return str(local.resolve())

    def run(self, argv: list[str], stdin: bytes, on_line: Callable[[str], None], deadline_s: float) -> CommandResult:
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group: a kill reaches its children too
            )
        except OSError as exc:
            return CommandResult(returncode=127, stderr_tail=f"cannot start {argv[0]}: {exc.strerror}")
        self._proc = proc
        stderr_chunks: list[bytes] = []
        reader = threading.Thread(target=_drain, args=(proc.stderr, stderr_chunks), daemon=True)
        reader.start()
        timed_out = threading.Event()

        def expire() -> None:
            timed_out.set()
            _kill_group(proc)

        timer = threading.Timer(deadline_s, expire)
        timer.daemon = True
        timer.start()
        try:
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(stdin)
                proc.stdin.close()
            except BrokenPipeError:
                pass
            for raw in proc.stdout:
                on_line(raw.decode("utf-8", "replace").rstrip("\r\n"))
            proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:
                _kill_group(proc)
                proc.wait()
            reader.join(timeout=5)
            self._proc = None
        tail = b"".join(stderr_chunks)[-8192:].decode("utf-8", "replace")
        return CommandResult(
            returncode=proc.returncode, stderr_tail=tail,
            timed_out=timed_out.is_set(), interrupted=self._interrupted.is_set(),
        )

    def interrupt(self) -> None:
        self._interrupted.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            _kill_group(proc)

    def close(self) -> None:
        self.interrupt()


def _drain(stream: object, chunks: list[bytes]) -> None:
    total = 0
    for block in iter(lambda: stream.read(4096), b""):  # type: ignore[attr-defined]
        chunks.append(block)
        total += len(block)
        while total > 65536 and len(chunks) > 1:
            total -= len(chunks.pop(0))


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """TERM the process group, then KILL it if it is still there a moment later."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    for _ in range(20):
        if proc.poll() is not None:
            return
        time.sleep(0.05)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
