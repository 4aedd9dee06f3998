"""Remote execution: streamed stdout, deadlines, keepalive watchdog, and killing the whole process group.

Every remote command runs as `exec /bin/sh -c '<print $$>; exec <quoted argv>'`. sshd (OpenSSH and
Dropbear) starts each session with setsid(), so that PID is also the process group of the command
and all its children; killing the group through a second channel stops everything it spawned.
stdout is read while the command runs (waiting for the exit status first deadlocks once the SSH
window fills up).
"""

from __future__ import annotations

import secrets
import select
import shlex
import signal
import threading
import time
from collections.abc import Callable

import paramiko

from benchbot.transport.base import CommandResult, TransportError
from benchbot.transport.ssh.connect import Connection, describe

STDERR_TAIL_BYTES = 8192
_POLL_S = 0.05


class RemoteCommands(Connection):
    """Runs commands on the device; `run` is the Transport method, `_exec` runs benchbot's own helper scripts."""

    kill_grace_s = 1.0
    """Time between SIGTERM and SIGKILL to the remote process group."""

    def _exec(self, script: str, timeout: float, reconnect: bool = True) -> tuple[int | None, str, str]:
        """Run a small POSIX sh script and collect its output (for helpers, not for user commands)."""
        transport: paramiko.Transport | None
        if reconnect:
            transport = self._ensure_open()
        else:
            transport = self._client.get_transport() if self._client else None
            if transport is None or not transport.is_active():
                raise TransportError(f"{self.name}: connection lost")
        try:
            chan = transport.open_session(timeout=self.settings.connect_timeout_s)
            chan.exec_command(f"exec /bin/sh -c {shlex.quote(script)}")
        except (OSError, EOFError, paramiko.SSHException) as e:
            raise TransportError(f"{self.name}: cannot run a command: {describe(e)}") from e
        out, err = bytearray(), bytearray()
        try:
            status = self._pump(chan, b"", out.extend, err.extend, time.monotonic() + timeout, None)
            rc = self._returncode(chan) if status == "done" else None
        finally:
            chan.close()
        if status == "lost":
            raise TransportError(f"{self.name}: connection lost")
        return rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")

    def run(self, argv: list[str], stdin: bytes, on_line: Callable[[str], None], deadline_s: float) -> CommandResult:
        """Run argv (each word shell-quoted) streaming stdout lines; see the module notes for killing."""
        if not argv:
            raise ValueError("empty argv")
        self._interrupt.clear()
        try:
            transport = self._ensure_open()
        except TransportError as e:
            return CommandResult(None, str(e))
        marker = f"__benchbot_pgid_{secrets.token_hex(8)}".encode()
        script = f"printf '%s %s\\n' {marker.decode()} $$; exec " + " ".join(shlex.quote(a) for a in argv)
        try:
            chan = transport.open_session(timeout=self.settings.connect_timeout_s)
            chan.exec_command(f"exec /bin/sh -c {shlex.quote(script)}")
        except (OSError, EOFError, paramiko.SSHException) as e:
            if transport.is_active():
                return CommandResult(None, f"benchbot: could not start the command on {self.name}: {describe(e)}")
            return CommandResult(None, self._lost_text("before the command started", e))

        pgid: int | None = None
        pending = b""
        err = bytearray()

        def on_out(data: bytes) -> None:
            nonlocal pending, pgid
            lines = (pending + data).split(b"\n")
            pending = lines.pop()
            for raw in lines:
                if pgid is None:
                    # Anything before our marker is shell start-up noise (rc files), not command output.
                    if marker in raw:
                        pgid = int(raw.split(marker, 1)[1].split()[0])
                    continue
                on_line(raw.rstrip(b"\r").decode("utf-8", "replace"))

        def on_err(data: bytes) -> None:
            err.extend(data)
            if len(err) > 2 * STDERR_TAIL_BYTES:
                del err[:-STDERR_TAIL_BYTES]

        result = CommandResult(None)
        lost = False
        try:
            status = self._pump(chan, stdin, on_out, on_err, time.monotonic() + deadline_s, self._interrupt,
                                watchdog=True)
            if status in ("deadline", "interrupted"):
                if pgid is None:  # the marker is the first thing printed; give it a moment
                    self._pump(chan, b"", on_out, on_err, time.monotonic() + 2, None, until_pgid=lambda: pgid)
                if pgid is not None and self._kill_group(pgid):
                    status2 = self._pump(chan, b"", on_out, on_err,
                                         time.monotonic() + self.kill_grace_s + 2, None)
                    if status2 == "done":
                        result.returncode = self._returncode(chan)
                elif not transport.is_active():
                    lost = True
                else:
                    on_err(b"\nbenchbot: the command never reported its process id; it may still run\n")
                result.timed_out = status == "deadline"
                result.interrupted = status == "interrupted"
            elif status == "done":
                result.returncode = self._returncode(chan)
        except BaseException:
            if pgid is not None:  # on_line raised (or Ctrl-C in this thread): do not leave it running
                try:
                    self._kill_group(pgid)
                except Exception:  # noqa: BLE001
                    pass
            chan.close()
            raise
        chan.close()
        if pgid is not None and pending:
            on_line(pending.rstrip(b"\r").decode("utf-8", "replace"))
        tail = err[-STDERR_TAIL_BYTES:].decode("utf-8", "replace")
        if lost or status == "lost":
            tail = (tail + "\n" if tail else "") + self._lost_text("while the command was running")
        elif result.returncode is None and status == "done":
            tail = (tail + "\n" if tail else "") + f"benchbot: {self.name} ended the command without an exit status"
        result.stderr_tail = tail
        return result

    def _lost_text(self, when: str, e: BaseException | None = None) -> str:
        where = self._endpoint.where if self._endpoint else self.settings.host
        detail = f" ({describe(e)})" if e is not None else ""
        return f"benchbot: connection lost to {self.name} ({where}) {when}{detail}; the outcome is unknown"

    def interrupt(self) -> None:
        """Stop the running command (thread-safe): run() kills its process group and returns."""
        self._interrupt.set()

    def _returncode(self, chan: paramiko.Channel) -> int | None:
        sig = self._exit_signals.pop(chan.get_id(), None)
        if sig is not None:
            try:
                return -signal.Signals["SIG" + sig].value
            except KeyError:
                return None
        status = chan.exit_status
        return None if status == -1 else status

    def _kill_group(self, pgid: int) -> bool:
        """SIGTERM the remote process group, SIGKILL it after kill_grace_s; False if unreachable."""
        steps = max(1, int(self.kill_grace_s / 0.1))
        script = (
            f"kill -TERM -{pgid} 2>/dev/null || kill -TERM {pgid} 2>/dev/null; i=0; "
            f"while kill -0 -{pgid} 2>/dev/null && [ $i -lt {steps} ]; do sleep 0.1; i=$((i+1)); done; "
            f"kill -KILL -{pgid} 2>/dev/null; exit 0"
        )
        try:
            self._exec(script, timeout=self.kill_grace_s + 10, reconnect=False)
        except TransportError:
            return False
        return True

    def _pump(
        self,
        chan: paramiko.Channel,
        stdin: bytes,
        on_out: Callable[[bytes], None],
        on_err: Callable[[bytes], None],
        deadline: float,
        stop: threading.Event | None,
        watchdog: bool = False,
        until_pgid: Callable[[], int | None] | None = None,
    ) -> str:
        """Move data until the command ends: returns done | deadline | interrupted | lost."""
        transport = chan.get_transport()
        offset = 0
        if not stdin:
            chan.shutdown_write()
        ka = self.settings.keepalive_s
        next_ping = time.monotonic() + ka
        ping: _Ping | None = None
        while True:
            busy = False
            if chan.recv_ready():
                data = chan.recv(65536)
                if data:
                    on_out(data)
                    busy = True
            if chan.recv_stderr_ready():
                data = chan.recv_stderr(65536)
                if data:
                    on_err(data)
                    busy = True
            if offset < len(stdin) and chan.send_ready():
                try:
                    offset += chan.send(stdin[offset:offset + 32768])
                except OSError:  # the command closed its stdin; keep reading its output
                    offset = len(stdin)
                if offset >= len(stdin):
                    chan.shutdown_write()
                busy = True
            if until_pgid is not None and until_pgid() is not None:
                return "done"
            if stop is not None and stop.is_set():
                return "interrupted"
            now = time.monotonic()
            if now >= deadline:
                return "deadline"
            if busy:
                continue
            if chan.closed or (chan.eof_received and chan.exit_status_ready()):
                if chan.recv_ready() or chan.recv_stderr_ready():
                    continue
                if transport is not None and not transport.is_active() and self._returncode_unknown(chan):
                    return "lost"
                return "done"
            if transport is None or not transport.is_active():
                return "lost"
            if watchdog and ka > 0:
                if ping is not None and ping.overdue(3 * ka):
                    transport.close()  # silent peer (device hung or network gone): stop waiting on it
                    return "lost"
                if now >= next_ping and (ping is None or ping.done.is_set()):
                    ping = _Ping(transport)
                    next_ping = now + ka
            if chan.eof_received:
                time.sleep(_POLL_S)  # the wake-up pipe stays set after EOF; select would spin
            else:
                select.select([chan], [], [], _POLL_S)

    def _returncode_unknown(self, chan: paramiko.Channel) -> bool:
        return chan.exit_status == -1 and chan.get_id() not in self._exit_signals


class _Ping:
    """One keepalive@openssh.com request with a reply; tells whether the peer is still answering."""

    def __init__(self, transport: paramiko.Transport) -> None:
        self.sent = time.monotonic()
        self.done = threading.Event()
        threading.Thread(target=self._run, args=(transport,), daemon=True).start()

    def _run(self, transport: paramiko.Transport) -> None:
        try:
            transport.global_request("keepalive@openssh.com", wait=True)  # any reply (even failure) counts
        except Exception:  # noqa: BLE001 - a dead transport is detected by the caller
            pass
        self.done.set()

    def overdue(self, after_s: float) -> bool:
        return not self.done.is_set() and time.monotonic() - self.sent > after_s

