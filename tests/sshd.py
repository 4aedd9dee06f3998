"""Real OpenSSH servers on loopback, standing in for devices in tests.

Use from a test module with `pytest_plugins = ["tests.sshd"]` (or from a conftest). Fixtures:

- `ssh_keys` (session): a user key and a default host key (ed25519, made once per session).
- `sshd_server` (function): a factory, `sshd_server(**options) -> SSHDServer`; every server it
  started is killed at teardown. Several can run at once (each is one "device").
- `isolated_ssh_home` (function): HOME, XDG_CONFIG_HOME and SSH_AUTH_SOCK pointed away from the
  real user's, so no personal key, agent or ~/.ssh/config leaks into a test.

`SSHDServer.settings(tmp_path)` gives SSHSettings for the server with its host key already trusted
in a tmp known_hosts; `kill()` makes the device vanish mid-test and `freeze()` makes it hang.

PYTEST_DONT_REWRITE (test modules import helpers from here before registering it as a plugin).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from benchbot.transport.ssh import SSHSettings

SSHD = "/usr/sbin/sshd"  # sshd refuses to re-exec itself unless started with an absolute path


@dataclass
class SSHKeys:
    folder: Path
    user_key: Path
    host_key: Path

    def new_key(self, name: str) -> Path:
        """Another ed25519 key pair (for a changed host key or a wrong user key)."""
        return keygen(self.folder / name)


def keygen(path: Path, comment: str = "benchbot-test") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True, stdin=subprocess.DEVNULL, capture_output=True,
    )
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children() -> dict[int, list[int]]:
    """ppid -> pids, from /proc (Linux)."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (parents first)."""
    tree = _children()
    out, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        out.append(p)
        todo.extend(tree.get(p, []))
    return out


def pid_alive(pid: int) -> bool:
    """True if pid exists and is not a zombie (zombies may linger when PID 1 does not reap)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@dataclass
class SSHDServer:
    """One sshd -D on 127.0.0.1; stands for one device."""

    folder: Path
    host_key: Path
    authorized_keys: list[Path]
    user_key: Path
    extra_config: str = ""
    host: str = "127.0.0.1"
    port: int = 0
    user: str = field(default_factory=lambda: pwd.getpwuid(os.getuid()).pw_name)
    proc: subprocess.Popen | None = None

    @property
    def config_path(self) -> Path:
        return self.folder / "sshd_config"

    @property
    def log_path(self) -> Path:
        return self.folder / "sshd.log"

    @property
    def host_public_key(self) -> str:
        """`ssh-ed25519 AAAA...` of the server's host key."""
        return " ".join(Path(f"{self.host_key}.pub").read_text().split()[:2])

    @property
    def known_hosts_name(self) -> str:
        return f"[{self.host}]:{self.port}"

    def start(self, timeout: float = 10.0, port: int | None = None) -> SSHDServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        auth = self.folder / "authorized_keys"
        auth.write_text("".join(Path(f"{k}.pub").read_text() for k in self.authorized_keys))
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation chroot
        last_error = ""
        for _ in range(5 if port is None else 1):  # the free port may be taken between probing and binding
            self.port = port or _free_port()
            self.config_path.write_text(self._config(auth))
            log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            )
            log.close()
            if self._wait_banner(timeout):
                return self
            last_error = self.log_path.read_text(errors="replace")
            self.stop()
            if "Address already in use" not in last_error and "Cannot bind" not in last_error:
                break
        raise RuntimeError(f"sshd did not start:\n{last_error}")

    def _config(self, auth: Path) -> str:
        return (
            f"Port {self.port}\n"
            f"ListenAddress {self.host}\n"
            f"HostKey {self.host_key}\n"
            f"PidFile {self.folder / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {auth}\n"
            "UsePAM no\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "PubkeyAuthentication yes\n"
            "PermitRootLogin prohibit-password\n"
            "StrictModes no\n"
            "Subsystem sftp internal-sftp\n"
            "AllowTcpForwarding yes\n"
            "PermitUserRC no\n"
            "PrintMotd no\n"
            "PrintLastLog no\n"
            "UseDNS no\n"
            "X11Forwarding no\n"
            "MaxStartups 100:30:200\n"
            "MaxSessions 64\n"
            "LogLevel INFO\n"
            f"{self.extra_config}\n"
        )

    def _wait_banner(self, timeout: float) -> bool:
        """Ready means the SSH banner is readable, not merely the port open."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc is None or self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as s:
                    if s.recv(64).startswith(b"SSH-"):
                        return True
            except OSError:
                pass
            time.sleep(0.02)
        return False

    def _signal_tree(self, sig: int) -> list[int]:
        if self.proc is None:
            return []
        pids = process_tree(self.proc.pid)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        return pids

    def kill(self) -> None:
        """The device vanishes: sshd, every connection and every command it runs get SIGKILL."""
        if self.proc is None:
            return
        seen: set[int] = set()
        while True:  # freeze first so nothing forks or gets re-parented between listing and killing
            pids = set(self._signal_tree(signal.SIGSTOP))
            if pids <= seen:
                break
            seen |= pids
        for pid in seen:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=10)
        self.proc = None

    def restart(self, timeout: float = 10.0) -> SSHDServer:
        """The device comes back (after kill()): same port, same host key."""
        self.stop()
        return self.start(timeout, port=self.port)

    def freeze(self) -> None:
        """The device hangs (TCP stays up, nothing answers): SIGSTOP sshd and its children."""
        self._signal_tree(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal_tree(signal.SIGCONT)

    def stop(self) -> None:
        """Kill everything, frozen or not (SIGKILL works on stopped processes; no thaw, no races)."""
        self.kill()

    def trust(self, known_hosts: Path, public_key: str | None = None) -> Path:
        """Record the server's host key (or `public_key`, to fake a changed key) in `known_hosts`."""
        known_hosts.parent.mkdir(parents=True, exist_ok=True)
        with open(known_hosts, "a") as f:
            f.write(f"{self.known_hosts_name} {public_key or self.host_public_key}\n")
        return known_hosts

    def settings(self, tmp_path: Path, trusted: bool = True, **overrides: Any) -> SSHSettings:
        """SSHSettings for this server: its host key trusted in tmp_path/known_hosts, a tmp workdir."""
        known_hosts = Path(overrides.pop("known_hosts", tmp_path / "known_hosts"))
        if trusted:
            self.trust(known_hosts)
        values: dict[str, Any] = dict(
            host=self.host, port=self.port, user=self.user, key=str(self.user_key), use_ssh_config=False,
            known_hosts=known_hosts, workdir=str(tmp_path / "device-work"), connect_timeout_s=5,
            keepalive_s=15, connect_retries=0, device_name="dev",
        )
        values.update(overrides)
        return SSHSettings(**values)


@pytest.fixture(scope="session")
def ssh_keys(tmp_path_factory: pytest.TempPathFactory) -> SSHKeys:
    if not os.path.exists(SSHD) or shutil.which("ssh-keygen") is None:
        pytest.skip("install openssh-server (and openssh-client) to run the SSH tests")
    folder = tmp_path_factory.mktemp("ssh-keys")
    return SSHKeys(folder, keygen(folder / "user_ed25519"), keygen(folder / "host_ed25519"))


@pytest.fixture
def sshd_server(ssh_keys: SSHKeys, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., SSHDServer]]:
    """Factory: `sshd_server(host_key=None, authorized_keys=None, extra_config="")` -> a started server."""
    started: list[SSHDServer] = []

    def start(host_key: Path | None = None, authorized_keys: list[Path] | None = None,
              extra_config: str = "") -> SSHDServer:
        server = SSHDServer(
            folder=tmp_path_factory.mktemp("sshd"),
            host_key=host_key or ssh_keys.host_key,
            authorized_keys=authorized_keys or [ssh_keys.user_key],
            user_key=ssh_keys.user_key,
            extra_config=extra_config,
        )
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def isolated_ssh_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake HOME for the client side: no personal ~/.ssh keys, config, known_hosts or agent."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return home
