"""A fleet over real SSH: every device is an OpenSSH server on loopback (tests/sshd.py) that runs the real
agent with this machine's Python, on real zoo models. benchbot runs as a subprocess, as a user starts it.

Nothing personal takes part: HOME, XDG_CONFIG_HOME (benchbot's known_hosts), the profiles and the results
are tmp folders, and the devices' sessions get the same fake HOME (sshd SetEnv), so `~` on a "device" is a
folder of the test and never the real home.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import benchbot
from benchbot.models.catalog import ZOO_DIR, zoo_families
from tests.conftest import BENCHBOT, REPO, md_rows, run_cli, write_profile
from tests.sshd import SSHDServer, keygen, pid_alive

pytest_plugins = ["tests.sshd"]
pytestmark = [pytest.mark.ssh, pytest.mark.skipif(not zoo_families(), reason="the model zoo is not built")]

# Quick timing: the tests check behaviour, not speed. Each test adds its own --min-seconds.
FAST = ["--warmup-runs", "2", "--warmup-seconds", "0", "--min-runs", "20", "--max-seconds", "10", "--quiet",
        "--repetitions", "2"]


def _toml(value: object) -> str:
    return json.dumps(str(value))  # a TOML basic string for the paths used here


class Fleet:
    """Profiles, known_hosts, results and the environment of the benchbot subprocess, all in tmp."""

    def __init__(self, tmp: Path, home: Path, start_server: Any) -> None:
        self.tmp = tmp
        self.home = home
        self._start = start_server
        self.profiles = tmp / "profiles"
        self.profiles.mkdir()
        self.results = tmp / "results"
        self.known_hosts = home / ".config" / "benchbot" / "known_hosts"
        self.env = dict(os.environ, HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
                        BENCHBOT_PROFILES=str(self.profiles), BENCHBOT_RESULTS=str(self.results))
        for name in ("SSH_AUTH_SOCK", "COLUMNS", "BENCHBOT_CELL_DEADLINE_S"):
            self.env.pop(name, None)

    def server(self) -> SSHDServer:
        return self._start(extra_config=f"SetEnv HOME={self.home}")

    def device(self, name: str, *, trusted: bool = True, key: Path | None = None, python: str = sys.executable,
               server: SSHDServer | None = None) -> SSHDServer:
        server = server or self.server()
        if trusted:
            server.trust(self.known_hosts)
        write_profile(self.profiles, name, (
            f'description = "sshd on loopback port {server.port}"\n'
            'transport = "ssh"\n'
            "[ssh]\n"
            f"host = {_toml(server.host)}\n"
            f"port = {server.port}\n"
            f"user = {_toml(server.user)}\n"
            f"key = {_toml(key or server.user_key)}\n"
            "use_ssh_config = false\n"
            "connect_timeout_s = 5\n"
            "keepalive_s = 5\n"
            "connect_retries = 0\n"
            "[device]\n"
            f"python = {_toml(python)}\n"
            f"workdir = {_toml(self.workdir(name))}\n"
            "[bench]\n"
            "threads = [1]\n"
            "[telemetry]\n"
            "interval_ms = 50\n"
        ))
        return server

    def workdir(self, name: str) -> Path:
        return self.tmp / f"device-{name}"

    def cli(self, args: list[str], timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
        return run_cli(args, dict(self.env, **env), timeout=timeout)

    def popen(self, args: list[str]) -> subprocess.Popen[str]:
        return subprocess.Popen(BENCHBOT + args, env=self.env, cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def load(self, run: str | None = None) -> benchbot.Run:
        return benchbot.load_run(run, results=self.results)


@pytest.fixture
def fleet(tmp_path: Path, isolated_ssh_home: Path, sshd_server: Any) -> Fleet:
    return Fleet(tmp_path, isolated_ssh_home, sshd_server)


@pytest.fixture(scope="module")
def family() -> Path:
    """The zoo family with the smallest fp32 model (real models, eval set and family.json)."""
    return ZOO_DIR / min(zoo_families(), key=lambda f: (ZOO_DIR / f / "fp32.tflite").stat().st_size)


def run_end(run: benchbot.Run) -> dict[str, Any]:
    return [e for e in run.log if e.get("event") == "run_end"][-1]


def _cell_files(results: Path, device: str, name: str) -> list[Path]:
    return sorted(results.glob(f"*/cells/{device}--*/rep*/*/{name}"))


def key_and_repetition(path: Path) -> tuple[str, int]:
    """The cell key and repetition of a file in an attempt folder (cells/KEY/repR/ATTEMPT/FILE)."""
    return path.parent.parent.parent.name, int(path.parent.parent.name[3:])


def attempts_of(run: benchbot.Run, key: str, rep: int) -> list[Any]:
    return [a for a in run.attempts[key] if a.repetition == rep]


def wait_for_loop_samples(results: Path, device: str, timeout: float = 60) -> Path:
    """The samples file of `device` that first holds timed-loop samples (the loop is under way)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for path in _cell_files(results, device, "samples.bin"):
            if b"BBCKloop" in path.read_bytes():  # a chunk of loop samples
                return path
        time.sleep(0.05)
    raise AssertionError(f"no timed samples from {device} within {timeout} s")


def wait_for_event(results: Path, device: str, kind: str, timeout: float = 60) -> tuple[dict[str, Any], Path]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for path in _cell_files(results, device, "events.jsonl"):
            for line in path.read_text().splitlines():
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("event") == kind:
                    return event, path
        time.sleep(0.02)
    raise AssertionError(f"no {kind} event from {device} within {timeout} s")


def wait_gone(pid: int, timeout: float = 10) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def rows(run: benchbot.Run, device: str) -> Any:
    summary = run.summary
    return summary[summary["device"] == device]


# ------------------------------------------------------------------------------------------- running


def barrier_python(folder: Path, device: str, barrier: Path) -> str:
    """This machine's Python, except that a device's first cell waits (20 s at most) until the first cell of
    the other device has started too. A runner that works through devices one after the other cannot get
    past it in time, so "met" proves the two agents were started side by side; it also lines the devices up
    so that their measurements overlap even on a busy host."""
    barrier.mkdir(exist_ok=True)
    wrapper = folder / f"python-{device}"
    wrapper.write_text(
        "#!/bin/sh\n"
        'if [ "$2" = run ]; then\n'
        f"  touch '{barrier}/{device}'\n"
        "  i=0\n"
        f"  while [ \"$(ls '{barrier}' | wc -l)\" -lt 2 ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done\n"
        f"  if [ $i -lt 200 ]; then echo met; else echo timeout; fi >> '{barrier}.{device}'\n"
        "fi\n"
        f'exec {sys.executable} "$@"\n'
    )
    wrapper.chmod(0o755)
    return str(wrapper)


def test_two_devices_run_in_parallel_store_everything_and_a_rerun_sends_no_model_bytes(
        fleet: Fleet, family: Path) -> None:
    barrier = fleet.tmp / "barrier"
    for device in ("a", "b"):
        fleet.device(device, python=barrier_python(fleet.tmp, device, barrier))
    args = ["run", "--devices", "a,b", "--models", str(family), "--variants", "fp32,int8", "--telemetry-ms", "20",
            *FAST, "--min-seconds", "0.5"]
    done = fleet.cli(args)
    assert done.returncode == 0, done.stderr
    assert "4 of 4 cells ok" in done.stderr

    run = fleet.load()
    assert run.complete
    summary = run.summary
    assert sorted(zip(summary["device"], summary["variant"])) == [("a", "fp32"), ("a", "int8"),
                                                                  ("b", "fp32"), ("b", "int8")]
    assert (summary["status"] == "ok").all(), summary[["key", "reason"]]
    assert (summary["count"] >= 20).all() and (summary["p50_ms"] > 0).all()
    assert summary["accuracy"].notna().all() and (summary["runtime"] == "ai_edge_litert").all()
    assert {d["transport"] for d in run.manifest["devices"].values()} == {"ssh"}
    for device in ("a", "b"):
        fp = run.fingerprints[device]
        assert fp["runtime"] == "ai_edge_litert" and fp["numpy"] and fp["cores"] >= 1
        assert fp["arch"] == platform.machine() and fp["python"] == platform.python_version()
        assert Path(f"{barrier}.{device}").read_text().split()[0] == "met", "the devices did not run side by side"
        # every timed invoke is stored, as on the local device
        for _, row in rows(run, device).iterrows():
            ends = [a.first("cell_end") for a in run.repetitions(row["key"]).values()]
            loop = run.samples[(run.samples["device"] == device) & (run.samples["variant"] == row["variant"])
                               & (run.samples["phase"] == "loop")]
            assert len(ends) == 2 and len(loop) == sum(e["loop_runs"] for e in ends) == row["count"]
        tele = run.telemetry[run.telemetry["device"] == device]
        assert len(tele) >= 4 and (tele["rss_mb"] > 0).all() and tele["cpu_pct"].notna().any()

    # The devices measured at the same time: on this one machine both agents' clocks are CLOCK_MONOTONIC,
    # so their sample time spans can be compared directly.
    spans = {}
    for device in ("a", "b"):
        s = run.samples[run.samples["device"] == device]
        spans[device] = (s["start_ns"].min(), (s["start_ns"] + s["latency_ns"]).max())
    overlap = min(spans["a"][1], spans["b"][1]) - max(spans["a"][0], spans["b"][0])
    assert overlap > 0, f"the devices ran one after the other: {spans}"

    first = run_end(run)["bytes_sent"]
    models = sum((family / f"{v}.tflite").stat().st_size for v in ("fp32", "int8"))
    assert first["a"] > models and first["b"] > models  # agent, both models and the eval set

    shown = fleet.cli(["report", "--format", "md", "--no-plots"])
    assert shown.returncode == 0, shown.stderr
    firsts = [r[0] for r in md_rows(shown.stdout)]
    assert firsts.count("a") == 2 and firsts.count("b") == 2

    again = fleet.cli(args)
    assert again.returncode == 0, again.stderr
    second = fleet.load()
    assert second.run_id != run.run_id and second.complete
    assert run_end(second)["bytes_sent"] == {"a": 0, "b": 0}, "the models were sent again"


def test_unknown_host_key_and_wrong_user_key_fail_only_their_device(fleet: Fleet, family: Path) -> None:
    fleet.device("good")
    stranger = fleet.device("stranger", trusted=False)
    fleet.device("impostor", key=keygen(fleet.tmp / "keys" / "not-authorized"))
    done = fleet.cli(["run", "--devices", "good,stranger,impostor", "--models", str(family),
                      "--variants", "fp32,int8", "--no-accuracy", *FAST, "--min-seconds", "0.05"])
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr and "the run is partial" in done.stderr

    run = fleet.load()
    assert (rows(run, "good")["status"] == "ok").all()
    for _, row in rows(run, "stranger").iterrows():
        assert row["status"] == "failed"
        assert f"host key for {stranger.known_hosts_name} is not known" in row["reason"]
        assert "benchbot devices trust stranger" in row["reason"]
    for _, row in rows(run, "impostor").iterrows():
        assert row["status"] == "failed" and "authentication failed" in row["reason"]
    for device in ("stranger", "impostor"):
        # nothing ran there: no agent output at all, nothing copied
        for key in rows(run, device)["key"]:
            for attempt in run.attempts[key]:
                assert [e["event"] for e in attempt.events] == ["outcome"]
                assert attempt.samples().empty
        assert not fleet.workdir(device).exists()
        assert f"failed: {device} " in done.stderr
    assert stranger.known_hosts_name not in fleet.known_hosts.read_text(), "strict policy recorded a key"


def test_a_device_killed_mid_run_keeps_its_samples_and_the_run_resumes(fleet: Fleet, family: Path) -> None:
    fleet.device("steady")
    victim = fleet.device("victim")
    proc = fleet.popen(["run", "--devices", "steady,victim", "--models", str(family), "--variants", "fp32,int8",
                        "--no-accuracy", *FAST, "--min-seconds", "2"])
    try:
        killed = wait_for_loop_samples(fleet.results, "victim")  # samples are flushed every second
        victim.kill()
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 3, stderr
    assert "Traceback" not in stderr

    run = fleet.load()
    killed_key, killed_rep = key_and_repetition(killed)
    assert (rows(run, "steady")["status"] == "ok").all(), "the other device did not finish"
    victim_reps = run.repetition_summary[run.repetition_summary["device"] == "victim"].set_index(["key", "repetition"])
    assert victim_reps.loc[(killed_key, killed_rep), "status"] == "failed"
    assert "the connection to the device was lost" in victim_reps.loc[(killed_key, killed_rep), "reason"]
    [cut] = attempts_of(run, killed_key, killed_rep)
    measured = len(cut.samples().query("phase == 'loop'"))
    assert measured > 0, "the samples measured before the device vanished were lost"
    later = victim_reps[victim_reps["status"] != "ok"].drop((killed_key, killed_rep))
    assert len(later) >= 1 and all(r.startswith("not run: the connection to the device was lost")
                                   for r in later["reason"])
    assert (rows(run, "victim")["status"] != "ok").all()

    victim.restart()  # the device is back: same port, same host key
    resumed = fleet.cli(["run", "--resume", run.run_id])
    assert resumed.returncode == 0, resumed.stderr
    after = fleet.load(run.run_id)
    assert after.complete and (after.summary["status"] == "ok").all()
    assert [p.name for p in fleet.results.iterdir()] == [run.run_id]
    attempts = attempts_of(after, killed_key, killed_rep)
    assert len(attempts) == 2 and len(attempts[0].samples().query("phase == 'loop'")) == measured
    assert all(len(after.attempts[k]) == 2 for k in rows(run, "steady")["key"]), "resume re-ran finished repetitions"


def test_an_agent_killed_on_the_device_fails_only_its_cell(fleet: Fleet, family: Path) -> None:
    fleet.device("a")
    proc = fleet.popen(["run", "--devices", "a", "--models", str(family), "--variants", "fp32,int8",
                        "--no-accuracy", *FAST, "--min-seconds", "1.5"])
    try:
        start, events = wait_for_event(fleet.results, "a", "cell_start")
        os.kill(start["pid"], signal.SIGKILL)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 3, stderr
    run = fleet.load()
    summary = run.summary.set_index("key")
    killed_key, killed_rep = key_and_repetition(events)
    assert summary.loc[killed_key, "status"] in ("failed", "incomplete")  # its other repetition may have run
    assert summary.loc[killed_key, "reason"].startswith("the agent was killed by signal 9 (SIGKILL) from outside")
    reps = run.repetition_summary.set_index(["key", "repetition"])
    assert reps.loc[(killed_key, killed_rep), "status"] == "failed"
    assert (reps.drop((killed_key, killed_rep))["status"] == "ok").all(), "another repetition failed with it"
    others = summary.drop(killed_key)
    assert len(others) == 1 and (others["status"] == "ok").all() and (others["count"] >= 20).all()


def test_a_hanging_cell_is_stopped_at_its_deadline(fleet: Fleet, family: Path, tmp_path: Path) -> None:
    # The device's "python" answers hello normally but hangs (with a child) when asked to run a cell.
    pids = tmp_path / "pids"
    pids.mkdir()
    wrapper = tmp_path / "python-that-hangs"
    wrapper.write_text(
        "#!/bin/sh\n"
        'if [ "$2" = run ]; then\n'
        f"  echo $$ > '{pids}/shell'\n"
        "  sleep 300 &\n"
        f"  echo $! > '{pids}/child'\n"
        "  wait\n"
        "  exit 0\n"
        "fi\n"
        f'exec {sys.executable} "$@"\n'
    )
    wrapper.chmod(0o755)
    fleet.device("hangs", python=str(wrapper))
    begin = time.monotonic()
    done = fleet.cli(["run", "--devices", "hangs", "--models", str(family), "--variants", "fp32", "--no-accuracy",
                      *FAST, "--min-seconds", "0.05"], BENCHBOT_CELL_DEADLINE_S="2")
    assert time.monotonic() - begin < 30
    assert done.returncode == 4, done.stderr  # its only cell failed: the run failed
    row = fleet.load().summary.iloc[0]
    assert row["status"] == "failed"
    assert row["reason"] == "the cell exceeded its deadline of 2 s and was stopped"
    shell, child = (int((pids / n).read_text()) for n in ("shell", "child"))
    assert wait_gone(shell, 5) and wait_gone(child, 5), "the remote process group is still running"

    bad = fleet.cli(["run", "--devices", "hangs", "--models", str(family)], BENCHBOT_CELL_DEADLINE_S="soon")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "BENCHBOT_CELL_DEADLINE_S must be a number of seconds" in bad.stderr


def test_hostile_model_file_names_are_benchmarked_like_any_other(fleet: Fleet, family: Path,
                                                                 tmp_path: Path) -> None:
    fleet.device("a")
    canary = fleet.home / "canary"
    canary.write_text("still here")
    models = tmp_path / "models"
    models.mkdir()
    names = ["my model; rm -rf ~", "it's a \"quoted\" $(touch PWNED) `touch PWNED` model"]
    for name in names:
        shutil.copy(family / "fp32.tflite", models / f"{name}.tflite")
    done = fleet.cli(["run", "--devices", "a", "--models", ",".join(str(models / f"{n}.tflite") for n in names),
                      "--no-accuracy", *FAST, "--min-seconds", "0.05"])
    assert done.returncode == 0, done.stderr
    summary = fleet.load().summary
    assert sorted(summary["model"]) == sorted(names)
    assert (summary["status"] == "ok").all() and (summary["count"] >= 20).all()
    assert canary.read_text() == "still here"
    for folder in (fleet.home, fleet.workdir("a"), REPO, tmp_path):
        assert not (folder / "PWNED").exists()


def test_ctrl_c_stops_the_remote_agent_and_the_run_resumes(fleet: Fleet, family: Path) -> None:
    fleet.device("a")
    proc = fleet.popen(["run", "--devices", "a", "--models", str(family), "--variants", "fp32,int8",
                        "--no-accuracy", *FAST, "--min-seconds", "1.5"])
    try:
        start, _ = wait_for_event(fleet.results, "a", "cell_start")
        assert pid_alive(start["pid"])
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 2, stderr
    assert "interrupted; continue with: benchbot run --resume" in stderr and "Traceback" not in stderr
    assert wait_gone(start["pid"], 5), "the agent still runs on the device"

    run = fleet.load()
    assert not run.complete
    assert "incomplete" in set(run.summary["status"])
    resumed = fleet.cli(["run", "--resume", run.run_id])
    assert resumed.returncode == 0, resumed.stderr
    assert fleet.load(run.run_id).complete


# ------------------------------------------------------------------------------------------- devices


def _sections(text: str) -> dict[str, str]:
    """`benchbot devices check` output split per device."""
    out: dict[str, str] = {}
    name = ""
    for line in text.splitlines():
        if line and not line.startswith(" "):
            name = line.split(":", 1)[0]
            out[name] = line + "\n"
        elif name:
            out[name] += line + "\n"
    return out


def test_devices_check_shows_each_device_and_fails_only_the_broken_one(fleet: Fleet) -> None:
    fleet.device("a")
    fleet.device("broken", python="/nonexistent/venv/bin/python")
    write_profile(fleet.profiles, "here", "[bench]\nthreads = [1]\n")
    done = fleet.cli(["devices", "check", "a", "broken", "here"])
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "1 of 3 device(s) failed the check: broken" in done.stderr
    sections = _sections(done.stdout)
    assert list(sections) == ["a", "broken", "here"]
    from importlib.metadata import version

    import numpy
    import psutil

    for name in ("a", "here"):
        text = sections[name]
        assert text.startswith(f"{name}: ok")
        assert f"arch            {platform.machine()}" in text
        assert f"python          {platform.python_version()} ({sys.executable})" in text
        assert f"numpy           {numpy.__version__}" in text
        assert f"tflite runtime  ai_edge_litert {version('ai-edge-litert')}" in text
        assert f"psutil          {psutil.__version__}" in text
        for fact in ("os", "thermal", "cpufreq", "vcgencmd", "disk free", "memory"):
            assert f"\n  {fact} " in text
        assert " GiB available of " in text
    assert "ssh " in sections["a"] and "this machine" in sections["here"]
    assert sections["broken"].startswith("broken: FAILED")
    assert "benchbot devices setup broken" in sections["broken"]


def test_devices_trust_records_the_key_and_a_changed_key_needs_replace(fleet: Fleet, tmp_path: Path) -> None:
    server = fleet.device("c", trusted=False)
    fingerprint = subprocess.run(["ssh-keygen", "-l", "-f", f"{server.host_key}.pub"], check=True,
                                 capture_output=True, text=True).stdout.split()[1]
    trusted = fleet.cli(["devices", "trust", "c"])
    assert trusted.returncode == 0, trusted.stderr
    assert f"c: trusted {server.known_hosts_name} ED25519 {fingerprint}" in trusted.stdout
    assert fleet.known_hosts.read_text() == f"{server.known_hosts_name} {server.host_public_key}\n"

    old_key = server.host_public_key
    server.host_key = keygen(tmp_path / "reinstalled_host_key")  # the device is reinstalled
    server.restart()
    kept = fleet.cli(["devices", "trust", "c"])
    assert kept.returncode == 2 and "Traceback" not in kept.stderr
    assert kept.stderr.count("\n") == 1 and "benchbot devices trust c --replace" in kept.stderr
    assert fleet.known_hosts.read_text() == f"{server.known_hosts_name} {old_key}\n"
    replaced = fleet.cli(["devices", "trust", "c", "--replace"])
    assert replaced.returncode == 0, replaced.stderr
    assert fleet.known_hosts.read_text() == f"{server.known_hosts_name} {server.host_public_key}\n"
    check = fleet.cli(["devices", "check", "c"])
    assert check.returncode == 0 and check.stdout.startswith("c: ok"), check.stdout + check.stderr

    write_profile(fleet.profiles, "here", "")
    local = fleet.cli(["devices", "trust", "here"])
    assert local.returncode == 0 and "nothing to trust" in local.stdout


def test_devices_commands_refuse_bad_input_in_one_sentence(fleet: Fleet) -> None:
    write_profile(fleet.profiles, "here", "")
    write_profile(fleet.profiles, "bare", '[device]\npython = "python3"\n')
    occupied = fleet.tmp / "not-a-venv"  # like /usr for python = "/usr/bin/python3", but harmless here
    (occupied / "bin").mkdir(parents=True)
    (occupied / "precious").write_text("keep me")
    write_profile(fleet.profiles, "occupied", f'[device]\npython = "{occupied}/bin/python"\n')
    cases = [
        (["devices", "check", "nowhere"], "unknown device 'nowhere'"),
        (["devices", "setup", "here", "--runtime", "tensorflow"], "--runtime takes ai-edge-litert or tflite-runtime"),
        (["devices", "setup", "here", "here"], "device 'here' is named twice"),
        (["devices", "setup", "here"], "benchbot's own Python"),
        (["devices", "setup", "bare"], "is not inside a venv"),
        (["devices", "setup", "occupied", "--offline"], "exists and is not a venv, so setup will not touch it"),
    ]
    from click.testing import CliRunner

    from benchbot.cli import main

    runner = CliRunner(env={"BENCHBOT_PROFILES": str(fleet.profiles)})
    for args, message in cases:  # in-process: the same `friendly` path as the real command, without start-up
        done = runner.invoke(main, args)
        assert done.exit_code == 2, (args, done.output, done.exception)
        assert isinstance(done.exception, SystemExit), (args, done.exception)  # no traceback
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("benchbot: ") and message in lines[0], (args, done.output)
    assert sorted(p.name for p in occupied.iterdir()) == ["bin", "precious"]
    assert not any((occupied / "bin").iterdir())


def _pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
        return True
    except OSError:
        return False


def test_offline_setup_installs_tflite_runtime_214_and_check_shows_it(fleet: Fleet, family: Path, tmp_path: Path,
                                                                      request: pytest.FixtureRequest) -> None:
    # wheels are downloaded once, then reused from pytest's cache folder
    provider = getattr(request.config, "cache", None)
    cache = provider.mkdir("benchbot-wheels") if provider else tmp_path / "wheels"
    if not list(cache.rglob("tflite_runtime-2.14.0-*.whl")) and not _pypi_reachable():
        pytest.skip("no cached wheels and no route to pypi.org")
    venv = tmp_path / "device venv"  # a space: every remote argument must be quoted
    fleet.device("t", python=str(venv / "bin" / "python"))
    done = fleet.cli(["devices", "setup", "t", "--offline", "--runtime", "tflite-runtime==2.14.0",
                      "--base-python", "/usr/bin/python3"], timeout=600, XDG_CACHE_HOME=str(cache))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "MiB pushed)" in done.stdout and "from the pushed wheels" in done.stdout
    assert "t: ready: tflite_runtime 2.14.0, numpy 1." in done.stdout
    assert list(cache.rglob("numpy-1.*-cp311-*.whl")), "numpy<2 was not honoured"

    check = fleet.cli(["devices", "check", "t"])
    assert check.returncode == 0, check.stdout + check.stderr
    assert "tflite runtime  tflite_runtime 2.14.0" in check.stdout
    assert f"({venv}/bin/python)" in check.stdout

    bench = fleet.cli(["run", "--devices", "t", "--models", str(family), "--variants", "fp32", "--no-accuracy",
                       *FAST, "--min-seconds", "0.05"])
    assert bench.returncode == 0, bench.stderr
    row = fleet.load().summary.iloc[0]
    assert (row["status"], row["runtime"], row["runtime_version"]) == ("ok", "tflite_runtime", "2.14.0")
