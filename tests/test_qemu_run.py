"""benchbot through the emulated arm64 device, end to end: push, agent, telemetry, store, report.

Shares the session's one booted VM (tests/qemu_fixture.py); the rehearsal boots the twins it needs.
"""

from __future__ import annotations

import pytest

import benchbot
from tests.conftest import run_cli
from tests.qemu_fixture import Booted

pytest_plugins = ["tests.qemu_fixture"]
pytestmark = pytest.mark.qemu

# Emulation is hundreds of times slower: a few runs are enough to prove the path.
EMULATED = ["--warmup-runs", "1", "--warmup-seconds", "0", "--min-runs", "5", "--min-seconds", "0",
            "--max-seconds", "60", "--threads", "1"]


def test_run_on_the_emulated_device(booted: Booted, tmp_path) -> None:
    env = dict(booted.env, BENCHBOT_RESULTS=str(tmp_path / "results"))
    env.pop("BENCHBOT_PROFILES", None)
    done = run_cli(["run", "--devices", "qemu-arm64", "--models", "tweet-mobile", "--variants", "dynamic,int8",
                    *EMULATED], env, timeout=1800)
    assert done.returncode == 0, done.stderr
    run = benchbot.load_run(results=tmp_path / "results")
    fp = run.fingerprints["qemu-arm64"]
    assert fp["arch"] == "aarch64" and fp["runtime"] in ("ai_edge_litert", "tflite_runtime") and fp["runtime_version"]
    assert fp["virtualization"] == "qemu" and fp["thermal_zones"] == [] and fp["cpufreq"] is False
    summary = run.summary
    assert (summary["status"] == "ok").all() and (summary["emulated"]).all()
    assert all("emulated" in flags.split(",") for flags in summary["flags"])
    assert (summary["arch"] == "aarch64").all()
    assert (summary["count"] >= 5).all() and summary["accuracy"].notna().all()
    assert not run.telemetry.empty and run.telemetry["temp_c"].isna().all()  # absent, not invented
    assert booted.vm.status()["running"], "a VM the run did not start must be left running"
    shown = run_cli(["report", "--no-plots"], env)
    assert shown.returncode == 0 and "E" in shown.stdout


def test_fleet_rehearsal_with_qemu_twins(booted: Booted, tmp_path) -> None:
    env = dict(booted.env, BENCHBOT_RESULTS=str(tmp_path / "results"))
    env.pop("BENCHBOT_PROFILES", None)
    done = run_cli(["run", "--local", "--devices", "pi4,jetson-nano", "--models", "tweet-mobile",
                    "--variants", "int8", *EMULATED], env, timeout=2400)
    assert done.returncode == 0, done.stderr
    run = benchbot.load_run(results=tmp_path / "results")
    assert set(run.fingerprints) == {"pi4", "jetson-nano"}
    for fp in run.fingerprints.values():
        assert fp["arch"] == "aarch64"
    assert (run.summary["status"] == "ok").all() and run.summary["emulated"].all()
    assert {d: i["emulated"] for d, i in run.manifest["devices"].items()} == {"pi4": True, "jetson-nano": True}
    # the twins were booted for the run and stopped after it
    from benchbot.qemu.vm import VM

    for name in ("pi4", "jetson-nano"):
        state = booted.state_home / "benchbot" / "vms" / name
        assert not VM(name, booted.image, state_dir=state).status()["running"]


def test_a_bert_style_three_input_model_runs_on_the_emulated_device(booted: Booted, tmp_path) -> None:
    """The study's model shape (input_ids, attention_mask, token_type_ids with a 2-row table) on arm64."""
    env = dict(booted.env, BENCHBOT_RESULTS=str(tmp_path / "results"))
    env.pop("BENCHBOT_PROFILES", None)
    done = run_cli(["run", "--devices", "qemu-arm64", "--models", "tweet-bert3", "--variants", "fp32",
                    "--no-accuracy", "--repetitions", "1", *EMULATED], env, timeout=1800)
    assert done.returncode == 0, done.stderr
    run = benchbot.load_run(results=tmp_path / "results")
    (row,) = [r for _, r in run.summary.iterrows()]
    assert row["status"] == "ok" and row["arch"] == "aarch64" and row["count"] >= 5
    start = run.best(row["key"]).first("cell_start")
    ranges = {i["key"]: i["range"] for i in start["inputs"]}
    assert ranges["token_type_ids"] == [0, 2] and ranges["attention_mask"] == [0, 2]
