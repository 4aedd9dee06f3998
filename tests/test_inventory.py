"""Ansible inventories as device lists: a real `ansible-inventory` resolves a YAML inventory whose group of two
hosts are loopback sshds; benchbot runs on them with the rest of each device from a base profile."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from benchbot.errors import BenchbotError
from benchbot.inventory import index, inventory_devices
from benchbot.models.catalog import ZOO_DIR, zoo_families
from tests.conftest import run_cli, write_profile
from tests.test_fleet_ssh import Fleet

pytest_plugins = ["tests.sshd"]

HAVE_ANSIBLE = (Path(sys.executable).parent / "ansible-inventory").exists() or shutil.which("ansible-inventory")
needs_ansible = pytest.mark.skipif(not HAVE_ANSIBLE, reason="ansible-core is not installed (pip install -e '.[test]')")
FAST = ["--warmup-runs", "1", "--warmup-seconds", "0", "--min-runs", "5", "--min-seconds", "0", "--max-seconds", "5",
        "--repetitions", "1", "--no-accuracy"]


@pytest.fixture
def fleet(tmp_path: Path, isolated_ssh_home: Path, sshd_server: Any) -> Fleet:
    return Fleet(tmp_path, isolated_ssh_home, sshd_server)


def _inventory(fleet: Fleet, servers: list[Any]) -> Path:
    hosts = {
        f"board-{i}": {"ansible_host": s.host, "ansible_port": s.port, "ansible_user": s.user,
                       "ansible_ssh_private_key_file": str(s.user_key), "ansible_python_interpreter": sys.executable,
                       "benchbot_workdir": str(fleet.tmp / f"work-{i}")}
        for i, s in enumerate(servers, 1)}
    path = fleet.tmp / "hosts.yml"
    # JSON is YAML: a group `boards` of two hosts, and a host outside it
    path.write_text(json.dumps({"all": {"children": {"boards": {"hosts": hosts}},
                                        "hosts": {"elsewhere": {"ansible_host": "192.0.2.1"}}}}))
    return path


@pytest.mark.ssh
@needs_ansible
@pytest.mark.skipif(not zoo_families(), reason="the model zoo is not built")
def test_inventory_group_of_two_loopback_hosts(fleet: Fleet) -> None:
    servers = [fleet.server(), fleet.server()]
    for server in servers:
        server.trust(fleet.known_hosts)
    hosts = _inventory(fleet, servers)
    write_profile(fleet.profiles, "base", 'transport = "ssh"\n[ssh]\nhost = "unused"\nuse_ssh_config = false\n'
                  "connect_retries = 0\n[bench]\nthreads = [1]\n[telemetry]\ninterval_ms = 50\n")

    listed = fleet.cli(["devices", "list", "--inventory", str(hosts), "--devices", "boards", "--profile", "base"])
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("board-1") and lines[1].startswith("board-2")
    assert f"ssh {servers[0].user}@127.0.0.1:{servers[0].port}" in lines[0] and sys.executable in lines[0]

    family = ZOO_DIR / min(zoo_families(), key=lambda f: (ZOO_DIR / f / "fp32.tflite").stat().st_size)
    done = fleet.cli(["run", "--inventory", str(hosts), "--devices", "boards", "--profile", "base",
                      "--models", str(family), "--variants", "fp32", *FAST, "--progress", "devices"])
    assert done.returncode == 0, done.stderr
    assert "[board-1] ok: 1 repetitions" in done.stderr and "[board-2] ok: 1 repetitions" in done.stderr
    run = fleet.load()
    assert run.complete and sorted(run.summary["device"]) == ["board-1", "board-2"]
    assert {d["host"] for d in run.manifest["devices"].values()} == {"127.0.0.1"}
    assert (fleet.tmp / "work-1").is_dir() and (fleet.tmp / "work-2").is_dir()


def test_inventory_groups_nest_and_unknown_names_are_one_sentence() -> None:
    inv = index("hosts.yml", {
        "_meta": {"hostvars": {"a": {"ansible_host": "10.0.0.1", "ansible_port": "2222"}, "b": {}}},
        "all": {"children": ["ungrouped", "lab"]}, "lab": {"children": ["pis"], "hosts": ["b"]},
        "pis": {"hosts": ["a"]}, "ungrouped": {"hosts": []}})
    assert inv.hosts(["lab"]) == ["b", "a"] and inv.hosts(["a", "lab"]) == ["a", "b"] and inv.hosts(None) == ["b", "a"]
    with pytest.raises(BenchbotError, match="'nope' is neither a group nor a host.*groups: lab, pis"):
        inv.hosts(["nope"])


def test_missing_ansible_core_is_one_sentence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    hosts = tmp_path / "hosts.yml"
    hosts.write_text("all: {}\n")
    monkeypatch.setattr("benchbot.inventory.sys.executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BenchbotError, match=r"needs ansible-core: pip install 'benchbot\[ansible\]'"):
        inventory_devices(str(hosts), None, None)


@needs_ansible
@pytest.mark.skipif(not zoo_families(), reason="the model zoo is not built")
def test_a_host_with_ansible_connection_local_is_this_machine(tmp_path: Path, cli_env: dict[str, str],
                                                             profiles_dir: Path) -> None:
    hosts = tmp_path / "hosts.yml"
    hosts.write_text(json.dumps({"all": {"hosts": {
        "controller": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                       "benchbot_workdir": str(tmp_path / "work")},
        "container": {"ansible_connection": "community.docker.docker"}}}}))
    write_profile(profiles_dir, "base", "[bench]\nthreads = [1]\n")
    listed = run_cli(["devices", "list", "--inventory", str(hosts), "--devices", "controller", "--profile", "base"],
                     cli_env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("controller     this machine") and "ssh" not in listed.stdout
    family = ZOO_DIR / min(zoo_families(), key=lambda f: (ZOO_DIR / f / "fp32.tflite").stat().st_size)
    done = run_cli(["run", "--inventory", str(hosts), "--devices", "controller", "--profile", "base",
                    "--models", str(family), "--variants", "fp32", *FAST, "--quiet"], cli_env)
    assert done.returncode == 0, done.stderr
    manifest = json.loads(next((tmp_path / "results").glob("*/manifest.json")).read_text())
    assert manifest["devices"]["controller"]["transport"] == "local"
    refused = run_cli(["devices", "list", "--inventory", str(hosts), "--devices", "container"], cli_env)
    assert refused.returncode == 2 and refused.stderr.strip() == (
        "benchbot: inventory host container: ansible_connection=community.docker.docker is not one benchbot can use "
        "(it reaches devices over paramiko, paramiko_ssh, smart, ssh or local)")
