"""Runs that cannot collide: one writer per run folder, one benchbot per device.

Two `benchbot run --resume R` started at once would both rerun every missing cell into the same
folder, and two benchbot processes on one device would disturb each other's timings; both would
report success. So:

- A run folder has a writer lock: `flock` on `<run>/.writer.lock`, which also records who holds
  it. The kernel drops the lock when its process dies however it dies, so a stale lock (dead PID)
  is simply taken over; the file is never deleted (deleting a flock file lets two writers in).
- A device has a lock folder `<workdir>/device.lock` made with `mkdir` (atomic on every POSIX
  filesystem, and on the device only a POSIX shell is needed), holding an `owner` line: host, pid,
  process start time, since, token. A holder on this host whose process is gone is taken over
  under a second `mkdir` guard, and only if the owner line is still the stale one; a holder on
  another host cannot be checked from here, so the message says who it is and how to clear it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchbot.errors import BenchbotError, host_file_error
from benchbot.transport.base import Transport, TransportError

RUN_LOCK_NAME = ".writer.lock"
DEVICE_LOCK_NAME = "device.lock"
LOCK_COMMAND_DEADLINE_S = 60.0


class RunLocked(BenchbotError):
    """Another process writes this run."""


# ---------------------------------------------------------------------- the run folder


def _process_start(pid: int) -> str:
    """The start time of `pid` in clock ticks since boot (Linux), so a reused PID is not taken for its holder."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _alive(pid: int, start: str = "") -> bool:
    """Whether process `pid` of this host still runs (and is the same process when its start time is known)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not start or not _process_start(pid) or _process_start(pid) == start


def _me() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": _process_start(os.getpid()),
            "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


@contextlib.contextmanager
def run_lock(folder: Path) -> Iterator[Path]:
    """Hold the writer lock of a run folder for the block; refuse with one sentence if another process holds it."""
    path = Path(folder) / RUN_LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise RunLocked(f"cannot open the writer lock {path} ({exc.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                _check_recorded_holder(fd, path)  # a filesystem without flock: go by the recorded PID
            else:
                raise RunLocked(_run_busy(folder, _read_holder(fd))) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(_me()) + "\n").encode(), 0)
        except OSError as exc:  # a full disk: say which file, as every other write into the results folder does
            raise host_file_error(exc, "write", path) from None
        yield path
        os.ftruncate(fd, 0)  # released: a holder left in the file would only mislead
    finally:
        os.close(fd)  # closing drops the flock


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode("utf-8", "replace") or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def run_writer(folder: Path) -> dict[str, Any] | None:
    """Who writes this run now (host, pid, since), from its lock file, when that process runs on this host;
    None when nobody does (or it is on another host, where this one cannot tell). Only reads: a reader never
    takes the lock, so it cannot keep a writer out."""
    try:
        fd = os.open(Path(folder) / RUN_LOCK_NAME, os.O_RDONLY)
    except OSError:
        return None
    try:
        holder = _read_holder(fd)
    finally:
        os.close(fd)
    pid = holder.get("pid")
    if isinstance(pid, int) and holder.get("host") == socket.gethostname() and _alive(pid, str(holder.get("start") or "")):
        return holder
    return None


def _check_recorded_holder(fd: int, path: Path) -> None:
    holder = _read_holder(fd)
    pid = holder.get("pid")
    if isinstance(pid, int) and holder.get("host") == socket.gethostname() and pid != os.getpid() \
            and _alive(pid, str(holder.get("start") or "")):
        raise RunLocked(_run_busy(path.parent, holder))


def _run_busy(folder: Path, holder: dict[str, Any]) -> str:
    who = f"pid {holder['pid']}" if holder.get("pid") else "a process that has not recorded its pid yet"
    where = f" on {holder['host']}" if holder.get("host") and holder.get("host") != socket.gethostname() else ""
    since = f" since {holder['since']}" if holder.get("since") else ""
    return (f"run {Path(folder).name} is being written by another benchbot ({who}{where}{since}); "
            "wait for it to finish or stop it, then run the command again")


# ---------------------------------------------------------------------- the device

# $1 action, $2 lock folder, $3 our owner line, $4 the stale owner line to replace (takeover).
# Every answer is one line starting with "benchbot-lock ".
_DEVICE_SCRIPT = r"""
d=$2; me=$3; old=$4
owner() { cat -- "$d/owner" 2>/dev/null | head -n 1; }
take() {
  if mkdir -- "$d" 2>/dev/null; then printf '%s\n' "$me" > "$d/owner"; echo "benchbot-lock acquired"; return 0; fi
  echo "benchbot-lock held $(owner)"
}
case $1 in
acquire)
  mkdir -p -- "${d%/*}" || exit 3
  take;;
takeover)
  g="$d.takeover"
  if [ -n "$(find "$g" -maxdepth 0 -mmin +2 2>/dev/null)" ]; then rmdir -- "$g" 2>/dev/null; fi
  if ! mkdir -- "$g" 2>/dev/null; then echo "benchbot-lock held $(owner)"; exit 0; fi
  if [ "$(owner)" = "$old" ]; then rm -rf -- "$d"; fi
  take
  rmdir -- "$g";;
release)
  if [ "$(owner)" = "$me" ]; then rm -rf -- "$d"; fi
  echo "benchbot-lock released";;
esac
exit 0
"""


@dataclass
class DeviceLock:
    device: str
    path: str
    owner: str
    owned: bool = True
    """False when another device of this same process holds it (two profiles naming one machine)."""


def device_workdir(profile: Any, transport: Transport) -> str:
    """The device's work folder, absolute (the SSH transport resolves ~ on the device)."""
    for candidate in (transport, getattr(transport, "ssh", None)):
        if candidate is not None and hasattr(type(candidate), "remote_workdir"):
            return str(candidate.remote_workdir)  # type: ignore[union-attr]  # checked by hasattr
    workdir = str(getattr(profile, "workdir", "") or "~/.cache/benchbot").rstrip("/") or "/"
    if not workdir.startswith(("/", "~")):
        workdir = "~/" + workdir
    return transport.expand_user(workdir)


def _owner_line() -> str:
    me = _me()
    return (f"host={me['host']} pid={me['pid']} start={me['start'] or '-'} since={me['since']} "
            f"token={secrets.token_hex(4)}")


def _parse_owner(line: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in line.split() if "=" in part)


def _lock_command(transport: Transport, action: str, path: str, owner: str, old: str = "") -> str:
    """Run one action of the lock script on the device; its answer after `benchbot-lock `, or raise."""
    lines: list[str] = []
    result = transport.run(["/bin/sh", "-c", _DEVICE_SCRIPT, "benchbot-lock", action, path, owner, old], b"",
                           lines.append, deadline_s=LOCK_COMMAND_DEADLINE_S)
    answer = next((ln[len("benchbot-lock "):] for ln in lines if ln.startswith("benchbot-lock ")), None)
    if answer is None:
        if result.timed_out:
            raise TransportError(f"no answer from the device within {LOCK_COMMAND_DEADLINE_S:.0f} s while "
                                 f"taking its lock {path}")
        tail = next((ln for ln in reversed(result.stderr_tail.strip().splitlines()) if ln.strip()), "")
        raise TransportError(f"cannot take the device lock {path} (exit status {result.returncode}"
                             + (f": {tail.strip()}" if tail else "") + ")")
    return answer


def lock_device(profile: Any, transport: Transport) -> DeviceLock:
    """Take the device's lock for its cells; TransportError (one sentence: who holds it) when another has it."""
    name = getattr(profile, "name", "device")
    path = f"{device_workdir(profile, transport).rstrip('/')}/{DEVICE_LOCK_NAME}"
    owner = _owner_line()
    answer = _lock_command(transport, "acquire", path, owner)
    for attempt in range(3):
        if answer == "acquired":
            return DeviceLock(name, path, owner)
        holder_line = answer[len("held"):].strip()
        holder = _parse_owner(holder_line)
        here = holder.get("host") == socket.gethostname()
        pid = int(holder["pid"]) if holder.get("pid", "").isdigit() else 0
        if here and pid == os.getpid():
            return DeviceLock(name, path, holder_line, owned=False)
        if not (here and pid and not _alive(pid, holder.get("start", "").strip("-"))):
            raise TransportError(_device_busy(name, path, holder))
        time.sleep(0.2 * attempt)
        answer = _lock_command(transport, "takeover", path, owner, holder_line)  # its holder is gone
    raise TransportError(_device_busy(name, path, _parse_owner(answer[len("held"):].strip())))


def release_device(transport: Transport, lock: DeviceLock | None) -> None:
    """Give the device's lock back (only if it is still ours); never raises: the cells are done either way."""
    if lock is None or not lock.owned:
        return
    with contextlib.suppress(Exception):
        _lock_command(transport, "release", lock.path, lock.owner)


def _device_busy(name: str, path: str, holder: dict[str, str]) -> str:
    if not holder.get("pid"):
        who = "another benchbot process (it has not recorded who it is yet)"
    else:
        who = f"another benchbot (host {holder.get('host', '?')}, pid {holder['pid']}, since {holder.get('since', '?')})"
    return (f"{name}: the device is busy: {who} holds its lock {path}; wait for it to finish, or if that "
            f"process is gone, remove {path} on the device")
