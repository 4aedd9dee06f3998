"""Bad input: one clear line, a non-zero exit, no traceback, and nothing already stored is touched."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli, write_profile

ZOO_MODEL = next(iter(sorted((REPO / "benchbot" / "models" / "zoo").glob("*/fp32.tflite"))), None)


def snapshot(folder: Path) -> dict[str, str]:
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def stored_run(tmp_path: Path, cli_env: dict[str, str]) -> Path:
    """A results folder that already holds something, to prove bad input never touches it."""
    results = Path(cli_env["BENCHBOT_RESULTS"])
    old = results / "20240101-000000-abcd"
    old.mkdir(parents=True)
    (old / "manifest.json").write_text('{"format": "benchbot-run", "version": 1, "run_id": "x"}')
    return results


def make_corrupt(tmp_path: Path) -> Path:
    path = tmp_path / "broken.tflite"
    path.write_bytes(b"this is not a flatbuffer at all")
    return path


CASES = [
    (["run", "--devices", "nosuchboard"], "unknown device 'nosuchboard'"),
    (["run", "--models", "/nonexistent/model.tflite"], "model file /nonexistent/model.tflite does not exist"),
    (["run", "--models", "CORRUPT"], "is not a TFLite model"),
    (["run", "--models", "no-such-zoo-model"], "is neither a .tflite file, a folder of variants nor a zoo model"),
    (["run", "--min-runs", "-3"], "--min-runs must be at least 1"),
    (["run", "--threads", "0"], "--threads takes thread counts of 1 or more"),
    (["run", "--threads", "two"], "--threads takes a comma-separated list"),
    (["run", "--devices", "badprofile"], "badprofile.toml: key 'bench.threads'"),
    (["run", "--variants", "int4"], "no model has variant(s) int4"),
    (["run", "--resume", "nosuchrun"], "no run 'nosuchrun'"),
    (["report", "nosuchrun"], "no run 'nosuchrun'"),
]


@pytest.mark.parametrize(("args", "message"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_is_one_line(args: list[str], message: str, tmp_path: Path, cli_env: dict[str, str],
                               profiles_dir: Path, stored_run: Path) -> None:
    write_profile(profiles_dir, "local", 'transport = "local"\n')
    write_profile(profiles_dir, "badprofile", "[bench]\nthreads = [0]\n")
    args = [str(make_corrupt(tmp_path)) if a == "CORRUPT" else a for a in args]
    before = snapshot(stored_run)
    done = run_cli(args, cli_env, timeout=120)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("benchbot: ") and message in lines[0]
    assert "Traceback" not in done.stderr + done.stdout
    assert snapshot(stored_run) == before
    # no half-created run folder is left behind by a refused run
    assert sorted(p.name for p in stored_run.iterdir()) == ["20240101-000000-abcd"]


def test_report_with_no_runs_says_how_to_start(cli_env: dict[str, str]) -> None:
    done = run_cli(["report"], cli_env)
    assert done.returncode == 2
    assert "start one with `benchbot run`" in done.stderr


def test_help_lists_every_knob(cli_env: dict[str, str]) -> None:
    text = run_cli(["run", "--help"], cli_env).stdout
    for option in ("--devices", "--models", "--threads", "--min-runs", "--min-seconds", "--max-seconds",
                   "--warmup-runs", "--warmup-seconds", "--batch", "--xnnpack", "--resume", "--telemetry-ms"):
        assert option in text
