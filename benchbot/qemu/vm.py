"""Run a built image as a QEMU TCG virtual machine, reachable by SSH on a port of 127.0.0.1.

The VM daemonizes, so it outlives the process that started it (start in one command, benchmark in
the next); its state (pid, port, overlay, console log) lives in a folder per VM name, and every
reader re-checks that the pid really is that VM's qemu before trusting it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchbot.errors import VMError
from benchbot.qemu.image import Image

QEMU_BINARY = "qemu-system-aarch64"
SSH_BANNER = b"SSH-2.0-"


@dataclass(frozen=True)
class EmulateSettings:
    """The emulated board: CPU model, cores and memory."""

    cpu: str = "cortex-a72"
    """cortex-a72 has no pointer authentication, which TCG emulates very slowly."""
    cores: int = 4
    memory_mib: int = 4096
    extra_args: tuple[str, ...] = ()

    def cpu_arg(self) -> str:
        if self.cpu == "max":
            return "max,pauth-impdef=on"  # the cheap-to-emulate pauth algorithm
        return self.cpu


def default_state_root() -> Path:
    """`${XDG_STATE_HOME:-~/.local/state}/benchbot/vms`."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "benchbot" / "vms"


def _opt(value: Path | str) -> str:
    """QEMU option values split on commas; a literal comma is written twice."""
    return str(value).replace(",", ",,")


def qemu_command(
    image: Image,
    overlay: Path,
    emulate: EmulateSettings,
    ssh_port: int,
    console_log: Path,
    pidfile: Path,
) -> list[str]:
    """The qemu-system-aarch64 command line: direct kernel boot, virtio disk and NIC, SSH on loopback only."""
    return [
        QEMU_BINARY,
        "-M", "virt",
        "-cpu", emulate.cpu_arg(),
        "-smp", str(emulate.cores),
        "-m", str(emulate.memory_mib),
        "-accel", "tcg,thread=multi",
        "-display", "none",
        "-monitor", "none",
        "-serial", f"file:{_opt(console_log)}",
        "-no-reboot",
        "-kernel", str(image.kernel),
        "-initrd", str(image.initrd),
        "-append", image.kernel_cmdline,
        "-drive", f"if=none,file={_opt(overlay)},id=hd0,format=qcow2,cache=unsafe",
        "-device", "virtio-blk-device,drive=hd0",
        "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{ssh_port}-:22",
        "-device", "virtio-net-device,netdev=n0",
        "-object", "rng-random,filename=/dev/urandom,id=rng0",
        "-device", "virtio-rng-device,rng=rng0",
        "-pidfile", str(pidfile),
        "-daemonize",
        *emulate.extra_args,
    ]


def create_overlay(base: Path, overlay: Path) -> None:
    """A fresh copy-on-write layer over the cached base: the base is never written, each boot starts clean."""
    overlay.unlink(missing_ok=True)
    proc = subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base), "-F", "qcow2", str(overlay)],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise VMError(f"qemu-img could not create the overlay {overlay}: {proc.stderr.strip()}")


def free_port() -> int:
    """A port on 127.0.0.1 nobody listens on right now (qemu binds it a moment later; start() retries)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def is_our_qemu(pid: int, overlay: Path) -> bool:
    """True only if `pid` is alive AND is a qemu-system-aarch64 running on this overlay.

    A pid file can outlive its process and the pid be reused by anything: never signal on trust.
    """
    if pid <= 0:
        return False
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    args = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
    if not args or Path(args[0]).name != QEMU_BINARY:
        return False
    return any(str(overlay) in a or _opt(overlay) in a for a in args)


def read_ssh_banner(port: int, timeout_s: float = 5.0) -> bytes:
    """The first bytes the server sends; empty when nothing (QEMU accepts before the guest's sshd listens)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
            sock.settimeout(timeout_s)
            data = b""
            while b"\n" not in data and len(data) < 256:
                chunk = sock.recv(256)
                if not chunk:
                    break
                data += chunk
            return data
    except OSError:
        return b""


def known_hosts_line(image: Image, port: int) -> str:
    """The known_hosts entry pinning the image's baked host key for this port (no prompt, no TOFU)."""
    parts = image.host_pubkey.read_text().split()
    return f"[127.0.0.1]:{port} {parts[0]} {parts[1]}"


def tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no console log)"
    return "\n".join(text.replace("\r", "").splitlines()[-lines:])


class VM:
    """One named VM over an image; start() boots it and returns the SSH port once sshd answers."""

    def __init__(
        self,
        name: str,
        image: Image,
        emulate: EmulateSettings | None = None,
        state_dir: Path | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"bad VM name {name!r}")
        self.name = name
        self.image = image
        self.emulate = emulate or EmulateSettings()
        self.state_dir = Path(state_dir) if state_dir is not None else default_state_root() / name
        #: the VM's files, all in its state folder: its disk overlay, qemu's pid, the console and boot state
        self.overlay = self.state_dir / "overlay.qcow2"
        self.pidfile = self.state_dir / "qemu.pid"
        self.console_log = self.state_dir / "console.log"
        self.state_file = self.state_dir / "state.json"
        self.log = log
        self.boot_seconds: float | None = None

    def _state(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.state_file.read_text()))
        except (OSError, ValueError):
            return {}

    def _pid(self) -> int | None:
        """The qemu pid, only if the pid file names a live qemu on our overlay (stale files are ignored)."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if is_our_qemu(pid, self.overlay) else None

    def status(self) -> dict[str, Any]:
        """running, pid, port, uptime (seconds), boot_seconds; a stale pid file reads as not running."""
        pid = self._pid()
        state = self._state()
        if pid is None:
            return {"running": False, "pid": None, "port": None, "uptime": None, "boot_seconds": None}
        started = state.get("started_at")
        return {
            "running": True,
            "pid": pid,
            "port": state.get("port"),
            "uptime": round(time.time() - started, 1) if started else None,
            "boot_seconds": state.get("boot_seconds"),
        }

    def start(self, timeout_s: float = 600.0) -> int:
        """Boot (on a fresh overlay) and wait until sshd's banner is read; return the SSH port.

        35-45 s on a quiet 2-core host, several minutes when the host is busy: keep the deadline generous.
        Already running: returns its port. On failure the VM is stopped and the error ends with the console.
        """
        current = self.status()
        if current["running"] and current["port"]:
            self.log(f"VM {self.name} already running (pid {current['pid']}, port {current['port']})")
            self.boot_seconds = current["boot_seconds"]
            return int(current["port"])
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.pidfile.unlink(missing_ok=True)
        self.state_file.unlink(missing_ok=True)
        create_overlay(self.image.disk, self.overlay)
        started = time.monotonic()
        port = self._launch()
        state = {"port": port, "started_at": time.time(), "image": self.image.key,
                 "emulate": asdict(self.emulate)}
        self.state_file.write_text(json.dumps(state))
        self.log(f"VM {self.name}: qemu started (pid {self._pid()}), waiting for sshd on 127.0.0.1:{port}")
        deadline = started + timeout_s
        while True:
            if self._pid() is None:
                self._fail(f"qemu exited during boot of VM {self.name}")
            if read_ssh_banner(port, timeout_s=min(5.0, max(0.5, deadline - time.monotonic()))).startswith(
                SSH_BANNER
            ):
                break
            if time.monotonic() >= deadline:
                self._fail(f"VM {self.name}: no SSH banner on 127.0.0.1:{port} within {timeout_s:.0f} s")
            time.sleep(1.0)
        self.boot_seconds = round(time.monotonic() - started, 1)
        state = self._state()
        state["boot_seconds"] = self.boot_seconds
        self.state_file.write_text(json.dumps(state))
        self.log(f"VM {self.name}: sshd up after {self.boot_seconds} s on 127.0.0.1:{port}")
        return port

    def _launch(self) -> int:
        """Start the daemonized qemu; retry with another port if someone took ours in between."""
        last = ""
        for _ in range(5):
            port = free_port()
            self.console_log.write_text("")
            argv = qemu_command(self.image, self.overlay, self.emulate, port, self.console_log, self.pidfile)
            try:
                proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            except FileNotFoundError:
                raise VMError(f"{QEMU_BINARY} not found: apt-get install qemu-system-arm") from None
            except subprocess.TimeoutExpired:
                self._fail(f"{QEMU_BINARY} did not daemonize within 60 s")
            if proc.returncode == 0:
                return port
            last = proc.stderr.strip()
            if "hostfwd" not in last and "forwarding" not in last:
                break
        raise VMError(f"{QEMU_BINARY} failed to start VM {self.name}: {last}")

    def _fail(self, message: str) -> None:
        self.stop()
        raise VMError(f"{message}; last console lines ({self.console_log}):\n{tail(self.console_log)}")

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Kill the VM (its overlay is throwaway, so no guest shutdown is needed); True if it was running."""
        pid = self._pid()
        was_running = pid is not None
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while is_our_qemu(pid, self.overlay) and time.monotonic() < deadline:
                time.sleep(0.1)
            if is_our_qemu(pid, self.overlay):
                os.kill(pid, signal.SIGKILL)
        self.pidfile.unlink(missing_ok=True)
        self.state_file.unlink(missing_ok=True)
        return was_running
