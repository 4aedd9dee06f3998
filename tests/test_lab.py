"""labgrid places as devices, against a real labgrid coordinator and exporter on loopback (tests/labgrid_lab.py).

Three boards are loopback sshds published as NetworkService resources; places p1 and p2 have the tag
board=pi4, p3 board=jetson. benchbot runs as a subprocess (as a user starts it) under the identity
`<host>/<user>`; "another user" is labgrid-client with LG_USERNAME=alice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import benchbot
from benchbot.models.catalog import ZOO_DIR, zoo_families
from tests.conftest import BENCHBOT, REPO, run_cli, write_profile
from tests.labgrid_lab import Lab, have_labgrid
from tests.sshd import SSHDServer, SSHKeys

pytest_plugins = ["tests.sshd"]
pytestmark = [pytest.mark.ssh, pytest.mark.skipif(not zoo_families(), reason="the model zoo is not built"),
              pytest.mark.skipif(not have_labgrid(), reason="labgrid is not installed (pip install -e '.[test]')")]

FAST = ["--warmup-runs", "1", "--warmup-seconds", "0", "--min-runs", "5", "--min-seconds", "0", "--max-seconds", "5",
        "--repetitions", "1", "--no-accuracy", "--quiet"]


class Farm:
    """The lab, its boards' sshds, and the environment of the benchbot subprocess (all in tmp)."""

    def __init__(self, tmp: Path, lab: Lab, servers: dict[str, SSHDServer], home: Path) -> None:
        self.tmp, self.lab, self.servers, self.home = tmp, lab, servers, home
        self.profiles = tmp / "profiles"
        self.profiles.mkdir(exist_ok=True)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LG_")}
        self.env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), BENCHBOT_PROFILES=str(self.profiles),
                        BENCHBOT_RESULTS=str(tmp / "results"))
        for name in ("SSH_AUTH_SOCK", "COLUMNS", "BENCHBOT_CELL_DEADLINE_S"):
            self.env.pop(name, None)

    def device(self, name: str, *, place: str = "", tags: dict[str, str] | None = None, wait_s: float = 5,
               python: str = sys.executable) -> None:
        key = next(iter(self.servers.values())).user_key
        where = f'place = "{place}"' if place else "tags = { " + ", ".join(f'{k} = "{v}"' for k, v in
                                                                            (tags or {}).items()) + " }"
        write_profile(self.profiles, name, (
            'transport = "labgrid"\n'
            "[labgrid]\n"
            f'coordinator = "{self.lab.address}"\n'
            f"{where}\n"
            f"wait_s = {wait_s}\n"
            "[ssh]\n"
            f"key = {json.dumps(str(key))}\n"
            "use_ssh_config = false\n"
            "connect_timeout_s = 5\n"
            "connect_retries = 0\n"
            "[device]\n"
            f"python = {json.dumps(python)}\n"
            f"workdir = {json.dumps(str(self.tmp / ('work-' + name)))}\n"
            "[bench]\n"
            "threads = [1]\n"
        ))

    def cli(self, args: list[str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return run_cli(args, self.env, timeout=timeout)

    def load(self) -> benchbot.Run:
        return benchbot.load_run(None, results=self.tmp / "results")


@pytest.fixture(scope="module")
def farm(ssh_keys: SSHKeys, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    tmp = tmp_path_factory.mktemp("farm")
    home = tmp / "home"
    home.mkdir()
    servers = {}
    for board in ("b1", "b2", "b3"):
        servers[board] = SSHDServer(folder=tmp / f"sshd-{board}", host_key=ssh_keys.host_key,
                                    authorized_keys=[ssh_keys.user_key], user_key=ssh_keys.user_key,
                                    extra_config=f"SetEnv HOME={home}").start()
    lab = Lab(tmp / "lab")
    try:
        lab.start({b: {"address": "127.0.0.1", "username": s.user, "port": s.port} for b, s in servers.items()},
                  places={"p1": ("b1", {"board": "pi4"}), "p2": ("b2", {"board": "pi4"}),
                          "p3": ("b3", {"board": "jetson"})})
        yield Farm(tmp, lab, servers, home)
    finally:
        lab.stop()
        for server in servers.values():
            server.stop()


@pytest.fixture(scope="module")
def family() -> str:
    return str(ZOO_DIR / min(zoo_families(), key=lambda f: (ZOO_DIR / f / "fp32.tflite").stat().st_size))


def device_records(run: benchbot.Run) -> dict[str, dict[str, Any]]:
    return {e["device"]: e for e in run.log if e.get("event") == "device"}


def test_two_places_by_tags_trusted_run_and_released(farm: Farm, family: str) -> None:
    farm.device("pi-a", tags={"board": "pi4"})
    farm.device("pi-b", tags={"board": "pi4"})
    # `devices trust` on a labgrid device records the host key of every board its tags may give
    trusted = farm.cli(["devices", "trust", "pi-a"])
    assert trusted.returncode == 0, trusted.stderr
    assert "labgrid place p1" in trusted.stdout and "labgrid place p2" in trusted.stdout
    known = (farm.home / ".config" / "benchbot" / "known_hosts").read_text()
    assert f"[127.0.0.1]:{farm.servers['b1'].port}" in known and f"[127.0.0.1]:{farm.servers['b2'].port}" in known

    done = farm.cli(["run", "--devices", "pi-a,pi-b", "--models", family, "--variants", "fp32", *FAST])
    assert done.returncode == 0, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr  # the summary line; no gRPC or labgrid chatter
    run = farm.load()
    assert run.complete and {d["transport"] for d in run.manifest["devices"].values()} == {"labgrid"}
    records = device_records(run)
    places = sorted(records[d]["labgrid"]["place"] for d in ("pi-a", "pi-b"))
    assert places == ["p1", "p2"], records
    for device in ("pi-a", "pi-b"):
        lab = records[device]["labgrid"]
        assert lab["tags"] == {"board": "pi4"} and lab["exporter"] == farm.lab.exporter_name
        assert lab["resource"].startswith(f"{farm.lab.exporter_name}/b") and lab["acquired_by_benchbot"]
    assert farm.lab.holder("p1") is None and farm.lab.holder("p2") is None, "a place was not released"


def test_held_place_fails_only_its_device_and_a_failed_device_releases(farm: Farm, family: str) -> None:
    farm.lab.client("acquire", place="p3", user="alice")
    try:
        farm.device("jet", place="p3", wait_s=2)
        farm.device("pi-ok", place="p1")
        farm.device("pi-broken", place="p2", python="/nonexistent/python3")
        begin = time.monotonic()
        shown = [a for a in FAST if a != "--quiet"] + ["--progress", "devices"]  # the one-line-per-device view
        done = farm.cli(["run", "--devices", "jet,pi-ok,pi-broken", "--models", family, "--variants", "fp32", *shown])
        assert done.returncode == 3, done.stderr
        assert "Traceback" not in done.stderr
        lines = [ln for ln in done.stderr.splitlines() if "failed: jet " in ln]
        assert lines and "labgrid place 'p3' is held by" in lines[0] and "/alice" in lines[0], done.stderr
        assert "gave up after waiting 2 s" in lines[0]
        assert time.monotonic() - begin >= 2
        # the wait was said while it lasted, and the places of the failed devices are recorded
        assert "[jet] waiting up to 2 s for labgrid place 'p3', held by" in done.stderr, done.stderr
        records = device_records(farm.load())
        assert records["pi-broken"]["labgrid"]["place"] == "p2" and records["pi-broken"]["fingerprint"] is None
        summary = farm.load().summary
        status = dict(zip(summary["device"], summary["status"]))
        assert status == {"jet": "failed", "pi-ok": "ok", "pi-broken": "failed"}, status
        # alice's place is still hers; the places benchbot acquired are free again, after success and failure
        assert farm.lab.holder("p3").endswith("/alice")
        assert farm.lab.holder("p1") is None and farm.lab.holder("p2") is None
    finally:
        farm.lab.client("release", place="p3", user="alice")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_releases_the_place_and_cancels_the_wait(farm: Farm, family: str, sig: signal.Signals) -> None:
    """Ctrl-C (or SIGTERM) mid-cell releases the acquired place; a device still waiting for alice's place drops
    its reservation and leaves her place alone."""
    farm.device("pi-slow", place="p1")
    farm.device("jet-wait", place="p3", wait_s=120)
    trusted = farm.cli(["devices", "trust", "pi-slow"])  # on its own too, not only after the first test trusted b1
    assert trusted.returncode == 0, trusted.stderr
    farm.lab.client("acquire", place="p3", user="alice")
    slow = list(FAST)
    slow[slow.index("--min-seconds") + 1] = "60"
    slow[slow.index("--max-seconds") + 1] = "60"
    results = farm.tmp / "results"
    before = set(results.glob("*/cells/pi-slow--*/rep1/*/samples.bin"))
    proc = subprocess.Popen(BENCHBOT + ["run", "--devices", "pi-slow,jet-wait", "--models", family, "--variants",
                                        "fp32", *slow], env=farm.env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end and not set(results.glob("*/cells/pi-slow--*/rep1/*/samples.bin")) - before:
            time.sleep(0.1)
        assert farm.lab.holder("p1") is not None, "the place was not acquired"
        assert "waiting" in farm.lab.client("reservations").stdout  # jet-wait's reservation, queued behind alice
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 2 and "interrupted" in err and "Traceback" not in err, err
        assert farm.lab.holder("p1") is None, f"the place was not released after {sig.name}"
        assert farm.lab.holder("p3").endswith("/alice")
        assert "Reservation" not in farm.lab.client("reservations").stdout, "a reservation was left behind"
    finally:
        if proc.poll() is None:
            proc.kill()
        farm.lab.client("release", place="p3", user="alice")
