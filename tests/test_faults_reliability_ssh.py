"""Issue 15 over real SSH (OpenSSH on loopback): a device frozen while files go to it, and the device lock
between two benchbot processes."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import benchbot
from benchbot.models.catalog import sha256_file, zoo_families
from benchbot.session import AGENT_PATH as AGENT
from benchbot.transport.base import TransportError
from benchbot.transport.ssh import SSHTransport
from tests.test_fleet_ssh import (  # noqa: F401 - family and fleet are fixtures
    FAST,
    Fleet,
    attempts_of,
    family,
    fleet,
    key_and_repetition,
    wait_for_event,
    wait_for_loop_samples,
    wait_gone,
)

pytest_plugins = ["tests.sshd"]  # family and fleet (imported above) are fixtures
pytestmark = [pytest.mark.ssh, pytest.mark.skipif(not zoo_families(), reason="the model zoo is not built")]


def test_a_device_frozen_during_an_upload_says_it_did_not_answer(tmp_path: Path, sshd_server: Any,
                                                                 isolated_ssh_home: Path) -> None:
    server = sshd_server(extra_config=f"SetEnv HOME={isolated_ssh_home}")
    transport = SSHTransport(server.settings(tmp_path))
    transport.answer_timeout_s = 2
    small = tmp_path / "small.bin"
    small.write_bytes(b"x" * 1000)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(64 << 20))
    failure: list[BaseException] = []

    def upload() -> None:
        try:
            transport.push(big, sha256_file(big))
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            failure.append(exc)

    try:
        transport.open()
        assert transport.push(small, sha256_file(small)).endswith(".bin")  # the device works
        worker = threading.Thread(target=upload, daemon=True)
        worker.start()
        end = time.monotonic() + 30
        while transport.bytes_sent < (1 << 20) and worker.is_alive() and time.monotonic() < end:
            time.sleep(0.005)
        server.freeze()  # mid-upload: TCP stays up, nothing answers
        worker.join(timeout=60)
        assert not worker.is_alive(), "the upload hangs on a frozen device"
    finally:
        server.stop()
        transport.close()
    assert failure and isinstance(failure[0], TransportError), failure
    message = str(failure[0])
    assert message.startswith("dev: no answer from the device within 2 s while copying"), message
    assert str(big) in message


def test_a_checksum_that_never_answers_is_named_as_such(tmp_path: Path, sshd_server: Any,
                                                        isolated_ssh_home: Path) -> None:
    fake = tmp_path / "fakebin"
    fake.mkdir()
    (fake / "sha256sum").write_text("#!/bin/sh\nexec sleep 30\n")
    (fake / "sha256sum").chmod(0o755)
    server = sshd_server(extra_config=f"SetEnv HOME={isolated_ssh_home} PATH={fake}:/usr/bin:/bin")
    transport = SSHTransport(server.settings(tmp_path, connect_timeout_s=2))
    transport.answer_timeout_s = 2
    model = tmp_path / "m.tflite"
    model.write_bytes(b"y" * 5000)
    try:
        with pytest.raises(TransportError) as caught:
            transport.push(model, sha256_file(model))
    finally:
        transport.close()
    message = str(caught.value)
    assert message.startswith("dev: no answer from the device within 2 s while computing the sha256 of"), message
    assert "exit status None" not in message


def test_two_benchbots_never_share_a_device_over_ssh(fleet: Fleet, family: Path) -> None:  # noqa: F811
    fleet.device("pi")
    first = fleet.popen(["run", "--devices", "pi", "--models", str(family), "--variants", "fp32,int8",
                         "--no-accuracy", *FAST, "--min-seconds", "2"])
    try:
        wait_for_event(fleet.results, "pi", "cell_start")
        second = fleet.cli(["run", "--devices", "pi", "--models", str(family), "--variants", "fp32",
                            "--no-accuracy", *FAST, "--min-seconds", "0.05"])
        _, first_err = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 0, first_err
    assert second.returncode == 4, second.stderr
    lock = fleet.workdir("pi") / "device.lock"
    assert (f"pi: the device is busy: another benchbot (host {os.uname().nodename}, pid {first.pid}, since"
            in second.stderr), second.stderr
    assert f"holds its lock {lock}" in second.stderr
    assert not lock.exists(), "the first run did not give the device back"
    runs = [p.name for p in benchbot.list_runs(fleet.results)]  # started in the same second, in start order
    busy = benchbot.load_run(runs[1], results=fleet.results)
    assert (busy.summary["status"] == "failed").all() and busy.samples.empty
    assert (benchbot.load_run(runs[0], results=fleet.results).summary["status"] == "ok").all()


def test_sigterm_stops_the_remote_agent_and_the_run_resumes(fleet: Fleet, family: Path) -> None:  # noqa: F811
    fleet.device("a")
    proc = fleet.popen(["run", "--devices", "a", "--models", str(family), "--variants", "fp32,int8",
                        "--no-accuracy", *FAST, "--min-seconds", "3"])
    try:
        start, events = wait_for_event(fleet.results, "a", "cell_start")
        wait_for_loop_samples(fleet.results, "a")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 2, stderr
    assert "interrupted by SIGTERM; continue with: benchbot run --resume" in stderr and "Traceback" not in stderr
    assert re.search(r"0 of 2 cells ok \(0 of \d+ repetitions; \d+ not run\)", stderr), stderr
    assert wait_gone(start["pid"], 5), "the agent still runs on the device"
    assert not (fleet.workdir("a") / "device.lock").exists()
    run = fleet.load()
    kinds = [(e["event"], e.get("status")) for e in run.log if e["event"] in ("cell", "run_end")]
    assert kinds == [("cell", "incomplete"), ("run_end", "interrupted")], "the run ended before its device stopped"
    key, rep = key_and_repetition(events)
    [cut] = attempts_of(run, key, rep)
    measured = len(cut.samples())
    assert measured > 0, "the samples measured before SIGTERM were lost"
    resumed = fleet.cli(["run", "--resume", run.run_id])
    assert resumed.returncode == 0, resumed.stderr
    after = fleet.load(run.run_id)
    attempts = attempts_of(after, key, rep)
    assert after.complete and len(attempts) == 2 and len(attempts[0].samples()) == measured


def _pages(size: int) -> int:
    return -(-size // 4096) * 4096


def _small_disk_device(fleet: Fleet, family: Path, small_disk: Any,  # noqa: F811
                      path: str | None = None) -> Path:
    """Device "pi" whose work folder is a tmpfs with room for the agent and the int8 model, not the fp32 one."""
    fp32, int8 = (family / "fp32.tflite").stat().st_size, (family / "int8.tflite").stat().st_size
    slack = 48 * 1024  # room for the lock file and folders; less than the fp32 model needs
    assert _pages(fp32) > slack + 4096
    disk = small_disk(_pages(AGENT.stat().st_size) + _pages(int8) + slack)
    env = f"SetEnv HOME={fleet.home}" + (f" PATH={path}" if path else "")
    fleet.device("pi", server=fleet._start(extra_config=env))
    profile = fleet.profiles / "pi.toml"
    profile.write_text(profile.read_text().replace(str(fleet.workdir("pi")), str(disk / "bb")))
    return disk / "bb"


def _failed_reason(run: benchbot.Run) -> str:
    [reason] = {e.get("reason") for e in run.log if e.get("event") == "cell" and e.get("status") == "failed"}
    return str(reason)


def test_a_full_device_disk_runs_the_cells_whose_files_fit(fleet: Fleet, family: Path,  # noqa: F811
                                                           small_disk: Any) -> None:
    workdir = _small_disk_device(fleet, family, small_disk)
    proc = fleet.cli(["run", "--devices", "pi", "--models", str(family), "--variants", "fp32,int8",
                      "--no-accuracy", *FAST])
    assert proc.returncode == 3, proc.stderr  # partial: the int8 cell ran, the fp32 cell could not
    assert "Traceback" not in proc.stderr and "size mismatch" not in proc.stderr, proc.stderr
    run = fleet.load()
    status = run.summary.set_index("variant")["status"]
    assert status["int8"] == "ok" and status["fp32"] == "failed"
    reason = _failed_reason(run)
    assert reason.startswith("pi: not enough space on the device for fp32.tflite: "), reason
    assert f"free in {workdir / 'blobs'}" in reason and f"{family.name}/fp32 is not measured" in reason
    assert re.search(r": \d+\.\d kB free in .*, \d+\.\d kB needed", reason), reason
    assert "not enough space on the device for fp32.tflite" in proc.stderr


def test_an_upload_that_fills_the_disk_is_named_as_a_full_disk(fleet: Fleet, family: Path,  # noqa: F811
                                                               small_disk: Any) -> None:
    # df says "plenty" twice (the agent's and the model's check), so the upload itself runs into the full disk
    fake = fleet.tmp / "fakebin"
    fake.mkdir()
    (fake / "df").write_text(
        f'#!/bin/sh\nn=$(cat {fake}/n 2>/dev/null || echo 0); echo $((n + 1)) > {fake}/n\n'
        'if [ "$n" -lt 2 ]; then printf "Filesystem 1024-blocks Used Available Capacity Mounted\\n'
        'x 99999999 0 99999999 0%% /\\n"; exit 0; fi\nexec /bin/df "$@"\n')
    (fake / "df").chmod(0o755)
    workdir = _small_disk_device(fleet, family, small_disk, path=f"{fake}:/usr/bin:/bin")
    proc = fleet.cli(["run", "--devices", "pi", "--models", str(family), "--variants", "fp32",
                      "--no-accuracy", *FAST])
    assert proc.returncode == 4, proc.stderr
    assert (fake / "n").read_text().strip() == "3", "the upload did not go through the lying free-space check"
    assert "Traceback" not in proc.stderr and "size mismatch" not in proc.stderr, proc.stderr
    reason = _failed_reason(fleet.load())
    assert reason.startswith("pi: not enough space on the device for fp32.tflite: "), reason
    assert not list((workdir / "blobs").glob("*.part-*")), "a half-written upload was left on the device"
