"""Faults on the local device: a crashing runtime, a killed run, Ctrl-C, resume. Nothing measured is lost."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import benchbot
from benchbot.models.catalog import ZOO_DIR, zoo_families
from benchbot.protocol import standalone_job
from tests.conftest import BENCHBOT, QUICK, REPO, run_cli, write_profile

pytestmark = pytest.mark.skipif(not zoo_families(), reason="the model zoo is not built")


@pytest.fixture
def family(tmp_path: Path) -> Path:
    """A two-variant family copied from the zoo (fp32 and int8 of the smallest model)."""
    source = ZOO_DIR / min(zoo_families(), key=lambda f: (ZOO_DIR / f / "fp32.tflite").stat().st_size)
    folder = tmp_path / "fam"
    folder.mkdir()
    for variant in ("fp32", "int8"):
        shutil.copy(source / f"{variant}.tflite", folder / f"{variant}.tflite")
    return folder


def test_a_crashing_runtime_fails_only_its_cell(tmp_path: Path, cli_env: dict[str, str], profiles_dir: Path,
                                                family: Path) -> None:
    # The device's "python" really runs the agent, except that a job for int8 dies by SIGSEGV,
    # as tflite-runtime does on some full-int8 models.
    wrapper = tmp_path / "python-that-crashes"
    wrapper.write_text(
        "#!/bin/sh\n"
        'if [ "$2" = run ]; then\n'
        "  job=$(cat)\n"
        '  case "$job" in *int8.tflite*) exec ' + sys.executable
        + " -c 'import os, signal; os.kill(os.getpid(), signal.SIGSEGV)';; esac\n"
        '  printf "%s" "$job" | ' + sys.executable + ' "$@"\n'
        "  exit $?\n"
        "fi\n"
        "exec " + sys.executable + ' "$@"\n'
    )
    wrapper.chmod(0o755)
    write_profile(profiles_dir, "crashy", f'[device]\npython = "{wrapper}"\n[bench]\nthreads = [1, 2]\n')
    done = run_cli(["run", "--devices", "crashy", "--models", str(family), *QUICK], cli_env)
    assert done.returncode == 3, done.stderr
    assert "the run is partial" in done.stderr and "Traceback" not in done.stderr
    run = benchbot.load_run(results=cli_env["BENCHBOT_RESULTS"])
    summary = run.summary.set_index(["variant", "threads"])
    for threads in (1, 2):
        assert summary.loc[("fp32", threads), "status"] == "ok"
        assert summary.loc[("int8", threads), "status"] == "failed"
        assert "SIGSEGV" in summary.loc[("int8", threads), "reason"]
    assert len(run.samples[run.samples["variant"] == "fp32"]) > 0


def _wait_for_samples(results: Path, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        files = list(results.glob("*/cells/*/rep*/*/samples.bin"))
        if any(f.stat().st_size > 16 + 24 + 16 * 5 for f in files):  # more than 5 samples stored
            return
        time.sleep(0.1)
    raise AssertionError("no samples appeared")


@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT"])
def test_a_killed_run_keeps_what_it_measured_and_resumes(how: str, cli_env: dict[str, str], profiles_dir: Path,
                                                         family: Path) -> None:
    write_profile(profiles_dir, "local", "[bench]\nthreads = [1]\n")
    results = Path(cli_env["BENCHBOT_RESULTS"])
    slow = ["--warmup-runs", "1", "--warmup-seconds", "0", "--min-runs", "10", "--min-seconds", "3",
            "--repetitions", "2"]
    proc = subprocess.Popen(BENCHBOT + ["run", "--models", str(family), *slow], env=cli_env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_samples(results)
    proc.send_signal(getattr(signal, how))
    _, stderr = proc.communicate(timeout=60)
    if how == "SIGINT":
        assert proc.returncode == 2 and "continue with: benchbot run --resume" in stderr
        assert "Traceback" not in stderr

    run = benchbot.load_run(results=results)
    assert not run.complete
    reps = run.repetition_summary
    cut = reps[reps["status"].isin(["incomplete", "failed"])]
    assert len(cut) == 1 and cut["count"].iloc[0] > 0, "samples taken before the kill were lost"
    key, rep = cut["key"].iloc[0], int(cut["repetition"].iloc[0])
    assert run.status(key) in ("incomplete", "failed")
    shown = run_cli(["report", "--no-plots"], cli_env)
    assert shown.returncode == 0 and "INCOMPLETE" in shown.stdout

    resumed = run_cli(["run", "--resume", run.run_id], cli_env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    after = benchbot.load_run(run.run_id, results=results)
    assert after.complete and (after.summary["status"] == "ok").all()
    # the interrupted attempt is still on disk next to the successful one
    assert len([a for a in after.attempts[key] if a.repetition == rep]) == 2
    assert sorted(p.name for p in results.iterdir()) == [run.run_id]
    again = run_cli(["run", "--resume", run.run_id], cli_env)
    assert again.returncode == 2 and "nothing to resume" in again.stderr


def test_resume_refuses_a_model_file_that_changed_since_the_run_measured_it(
        cli_env: dict[str, str], profiles_dir: Path, family: Path) -> None:
    write_profile(profiles_dir, "local", "[bench]\nthreads = [1]\n")
    results = Path(cli_env["BENCHBOT_RESULTS"])
    done = run_cli(["run", "--models", str(family), "--variants", "fp32", "--no-accuracy", *QUICK], cli_env)
    assert done.returncode == 0, done.stderr
    run = benchbot.load_run(results=results)
    [cell] = run.cells
    shutil.rmtree(run.repetitions(cell.key)[2].folder.parent)  # repetition 2 is to be measured again
    original = (family / "fp32.tflite").read_bytes()
    shutil.copy(family / "int8.tflite", family / "fp32.tflite")  # another model under the same name
    refused = run_cli(["run", "--resume", run.run_id], cli_env)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.startswith(f"benchbot: cannot resume: model file {family / 'fp32.tflite'} changed since "
                                     f"run {run.run_id} measured it (sha256 {cell.model_sha256[:12]}"), refused.stderr
    assert 2 not in benchbot.load_run(run.run_id, results=results).repetitions(cell.key), "it measured the new file"
    (family / "fp32.tflite").write_bytes(original)
    resumed = run_cli(["run", "--resume", run.run_id], cli_env)
    assert resumed.returncode == 0 and benchbot.load_run(run.run_id, results=results).complete, resumed.stderr


def test_agent_exits_by_itself_past_its_deadline(family: Path) -> None:
    job = json.dumps(standalone_job(str(family / "fp32.tflite"), cell_id="c", min_runs=100000000, min_seconds=100,
                                    max_seconds=100, warmup_runs=0, warmup_seconds=0, deadline_s=1.5))
    begin = time.monotonic()
    done = subprocess.run([sys.executable, str(REPO / "benchbot" / "agent.py"), "run"], input=job,
                          capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert time.monotonic() - begin < 20
    assert done.returncode == 124
    assert '"kind":"deadline"' in done.stdout and '"event":"samples"' in done.stdout
