"""Stored results prove they are whole: damaged, truncated and deleted samples files are found, named,
reported without a traceback, and measured again by --resume, while the rest of the run reports normally."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

import benchbot
from benchbot.models.catalog import ZOO_DIR, zoo_families
from benchbot.store import CHUNK_HEADER
from tests.conftest import QUICK, run_cli, write_profile

pytestmark = pytest.mark.skipif(not zoo_families(), reason="the model zoo is not built")


def samples_of(run: benchbot.Run, variant: str, rep: int) -> Path:
    key = next(c.key for c in run.cells if c.variant == variant)
    path = run.repetitions(key)[rep].folder / "samples.bin"
    assert path.is_file() and path == run.repetitions(key)[rep].samples_path
    return path


def first_chunk_end(data: bytes) -> int:
    """Where the second chunk of a samples.bin starts (file header 16 bytes, chunk header 24, rows of 16)."""
    assert data[16:20] == b"BBCK"
    return 16 + CHUNK_HEADER.size + 16 * struct.unpack_from("<I", data, 16 + 12)[0]


def test_damaged_samples_are_found_reported_and_measured_again(cli_env: dict[str, str], profiles_dir: Path) -> None:
    write_profile(profiles_dir, "local", "[bench]\nthreads = [1]\n")
    results = Path(cli_env["BENCHBOT_RESULTS"])
    done = run_cli(["run", "--models", str(ZOO_DIR / "shapes-cnn"), "--variants", "fp32,fp16,int8", "--no-accuracy",
                    *QUICK], cli_env)
    assert done.returncode == 0, done.stderr
    run = benchbot.load_run(results=results)
    assert run.damaged() == [] and run.complete

    garbage, truncated, deleted = samples_of(run, "fp32", 1), samples_of(run, "fp32", 2), samples_of(run, "int8", 1)
    written_loop = run.repetitions(next(c.key for c in run.cells if c.variant == "fp32"))[1].first(
        "outcome")["samples_written"]["loop"]
    data = garbage.read_bytes()
    cut = first_chunk_end(data)
    garbage.write_bytes(data[:cut] + b"loop,12x,garbage\n" + data[cut:])  # between two chunks: no row lost
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    deleted.unlink()

    shown = run_cli(["report", "--no-plots"], cli_env)
    assert shown.returncode == 0 and "Traceback" not in shown.stderr + shown.stdout, shown.stderr
    flat = "".join(shown.stdout.split())  # however the terminal wraps it
    assert f"{garbage}isdamaged:17straybyte(s)" in flat
    assert f"DAMAGED(3repetition(s)whosestoredsamplesoreventsarenotwhole;`benchbotrun--resume{run.run_id}`" in flat
    assert "INCOMPLETE" not in shown.stdout, "every cell finished: the run is damaged, not cut short"
    assert "fastestfp16;" in flat and "notranked:fp32(damaged),int8(damaged)" in flat, "damaged cells ranked"
    run = benchbot.load_run(results=results)
    summary = run.summary.set_index("variant")
    assert summary.loc["fp32", "status"] == "damaged" and "damaged" in summary.loc["fp32", "flags"].split(",")
    assert summary.loc["int8", "status"] == "damaged" and "is missing" in summary.loc["int8", "reason"]
    assert summary.loc["fp16", "status"] == "ok"  # the rest reports normally
    assert {"damaged", "incomplete", "failed"}.isdisjoint(summary.loc["fp16", "flags"].split(","))
    reps = run.repetition_summary.set_index(["variant", "repetition"])
    assert reps.loc[("fp32", 1), "count"] == written_loop, "readable rows around the damage were lost"
    assert "of" in run.repetitions(summary.loc["fp32", "key"])[2].damage  # "N of M loop samples readable"
    assert {(a.cell.variant, a.repetition) for a in run.damaged()} == {("fp32", 1), ("fp32", 2), ("int8", 1)}

    verify = run_cli(["runs", "--verify", run.run_id], cli_env)
    assert verify.returncode == 1, verify.stdout
    assert verify.stdout.count("  damaged: ") == 3 and str(deleted) in verify.stdout
    assert verify.stdout.startswith(f"{run.run_id}  damaged ")
    assert f"benchbot run --resume {run.run_id}" in verify.stderr and "Traceback" not in verify.stderr

    resumed = run_cli(["run", "--resume", run.run_id], cli_env)
    assert resumed.returncode == 0, resumed.stderr
    assert "0 of 3 cells ok (3 of 3 repetitions)" not in resumed.stderr  # only the damaged ones ran again
    after = benchbot.load_run(run.run_id, results=results)
    assert after.complete and (after.summary["status"] == "ok").all()
    assert run_cli(["runs", "--verify", run.run_id], cli_env).returncode == 0
    tries = {(a.cell.variant, a.repetition): 0 for c in after.cells for a in after.attempts[c.key]}
    for c in after.cells:
        for a in after.attempts[c.key]:
            tries[(a.cell.variant, a.repetition)] += 1
    assert tries == {("fp32", 1): 2, ("fp32", 2): 2, ("int8", 1): 2, ("int8", 2): 1, ("fp16", 1): 1, ("fp16", 2): 1}
    assert garbage.is_file() and truncated.is_file(), "the damaged attempts themselves were removed"
