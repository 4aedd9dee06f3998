"""One emulated arm64 VM per test session, shared by every test that asks for `booted`.

Register with `pytest_plugins = ["tests.qemu_fixture"]`. The VM is named like the bundled
`qemu-arm64` profile and lives under a session XDG_STATE_HOME, so `benchbot run --devices qemu-arm64`
in a subprocess with `booted.env` reuses it instead of booting another one.

PYTEST_DONT_REWRITE
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from benchbot.qemu.doctor import build_checks, install_hint, run_checks
from benchbot.qemu.image import Image, ImageSettings, build_image, cache_key, default_cache_root, fetch_wheels
from benchbot.qemu.vm import VM, EmulateSettings, known_hosts_line


@dataclass
class Booted:
    image: Image
    vm: VM
    port: int
    known_hosts: Path
    state_home: Path = field(default_factory=Path)

    @property
    def env(self) -> dict[str, str]:
        """Environment for a benchbot subprocess that should find this VM running."""
        return dict(os.environ, XDG_STATE_HOME=str(self.state_home))


def _wanted(config: pytest.Config) -> bool:
    markexpr = str(config.getoption("-m") or "")
    return os.environ.get("BENCHBOT_QEMU") == "1" or ("qemu" in markexpr and "not qemu" not in markexpr)


@pytest.fixture(scope="session")
def booted(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Booted]:
    """One boot per test session, on the cached image (built first if missing and we are root)."""
    if not _wanted(request.config):
        pytest.skip("boots an emulated arm64 VM (slow): run with `pytest -m qemu` or BENCHBOT_QEMU=1")
    missing = [c for c in run_checks() if not c.ok]
    if missing:
        pytest.skip(f"missing {', '.join(c.name for c in missing)}: {install_hint(missing)}")
    settings = ImageSettings()
    wheels = fetch_wheels(settings, default_cache_root(), log=print)
    cached = (default_cache_root() / cache_key(settings, [(w.path.name, w.sha256) for w in wheels])).exists()
    if not cached:
        if os.geteuid() != 0:
            pytest.skip("the QEMU image is not cached and building it needs root")
        bad = [c for c in build_checks() if not c.ok]
        if bad:
            pytest.skip(f"cannot build the QEMU image: {install_hint(bad)}")
    image = build_image(settings, log=print)
    state_home = tmp_path_factory.mktemp("state")
    state = state_home / "benchbot" / "vms" / "qemu-arm64"
    vm = VM("qemu-arm64", image, EmulateSettings(), state_dir=state, log=print)
    port = vm.start(timeout_s=600)
    known_hosts = state / "known_hosts"
    known_hosts.write_text(known_hosts_line(image, port) + "\n")
    try:
        yield Booted(image, vm, port, known_hosts, state_home)
    finally:
        vm.stop()


def ssh(b: Booted, remote: str, stdin: bytes = b"", timeout: float = 300) -> subprocess.CompletedProcess:
    """The system ssh client with the baked key and a pinned host key: a wrong key fails, nothing is asked."""
    argv = [
        "ssh", "-p", str(b.port), "-i", str(b.image.user_key),
        "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={b.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "ConnectTimeout=30", "-o", "LogLevel=ERROR",
        f"{b.image.user}@127.0.0.1", remote,
    ]
    return subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout)


