"""--input-range, --input-data, --input-shape and --signature through `benchbot run` and into the report."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

import benchbot
from benchbot.models.catalog import ZOO_DIR
from tests.conftest import QUICK, REPO, md_rows, run_cli

BERT = ZOO_DIR / "tweet-bert3"
DATA = REPO / "tests" / "data"
pytestmark = pytest.mark.skipif(not (BERT / "family.json").is_file(), reason="the tweet-bert3 zoo family is missing")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    out = dict(os.environ, BENCHBOT_RESULTS=str(tmp_path / "results"))
    out.pop("BENCHBOT_PROFILES", None)
    out.pop("COLUMNS", None)
    return out


def starts(env: dict[str, str]) -> dict[str, dict]:
    run = benchbot.load_run(results=Path(env["BENCHBOT_RESULTS"]))
    return {c.variant: run.best(c.key).first("cell_start") for c in run.cells}


def test_bert_runs_with_default_inputs_and_the_report_explains_delegation(env: dict[str, str]) -> None:
    done = run_cli(["run", "--quiet", "--models", "tweet-bert3", "--threads", "1", *QUICK], env)
    assert done.returncode == 0, done.stderr
    ranges = {i["key"]: i["range"] for i in starts(env)["fp32"]["inputs"]}
    assert ranges == {"input_ids": [0, 1000], "attention_mask": [0, 2], "token_type_ids": [0, 2]}
    report = run_cli(["report", "--format", "json", "--no-plots"], env)
    assert report.returncode == 0, report.stderr
    cells = {c["variant"]: c for c in json.loads(report.stdout)["cells"]}
    for variant, cell in cells.items():
        start = starts(env)[variant]
        assert [cell[k] for k in ("total_ops", "delegated_ops", "partitions", "undelegated_ops")] == [
            start[k] for k in ("total_ops", "delegated_ops", "partitions", "undelegated_ops")]
        assert cell["accuracy"] > 0.8  # the three-input eval set (x_NAME arrays)
    assert cells["int8"]["partitions"] > cells["fp32"]["partitions"] > 0
    assert cells["fp32"]["input_ranges"]["token_type_ids"]["why"] == \
        "indices of GATHER table with 2 rows"
    md = run_cli(["report", "--format", "md", "--no-plots"], env).stdout
    int8 = cells["int8"]
    top = sorted(int8["undelegated_ops"].items(), key=lambda kv: (-kv[1], kv[0]))[0]
    assert (f"tweet-bert3 int8: {int8['partitions']} XNNPACK partitions ({int8['delegated_ops']} of "
            f"{int8['total_ops']} ops); {top[0]}×{top[1]}") in md
    assert f"{int8['delegated_ops']}/{int8['total_ops']} in {int8['partitions']}" in {c for r in md_rows(md) for c in r}


def test_input_range_reaches_the_agent_and_fails_in_the_runtimes_words(env: dict[str, str]) -> None:
    done = run_cli(["run", "--quiet", "--models", "tweet-bert3", "--variants", "fp32", "--threads", "1",
                    "--input-range", "token_type_ids=0:100", *QUICK], env)
    assert done.returncode != 0
    assert "gather index out of bounds" in done.stderr
    (start,) = starts(env).values()
    assert {i["key"]: i["why"] for i in start["inputs"]}["token_type_ids"] == "given by the user"


def test_input_data_eval_and_file(env: dict[str, str], tmp_path: Path) -> None:
    done = run_cli(["run", "--quiet", "--models", "tweet-bert3", "--variants", "dynamic", "--threads", "1",
                    "--input-data", "eval", "--no-accuracy", *QUICK], env)
    assert done.returncode == 0, done.stderr
    assert starts(env)["dynamic"]["input_samples"] == 300
    bad = tmp_path / "bad.npz"
    import numpy as np

    np.savez(bad, input_ids=np.zeros((1, 32), np.int32))
    env2 = dict(env, BENCHBOT_RESULTS=str(tmp_path / "r2"))
    done = run_cli(["run", "--quiet", "--models", "tweet-bert3", "--variants", "fp32,int8", "--threads", "1",
                    "--input-data", str(bad), *QUICK], env2)
    assert done.returncode != 0
    failures = [ln for ln in done.stderr.splitlines() if ln.startswith("  failed:")]
    assert len(failures) == 4  # one sentence per cell and repetition (2 cells x 2)
    assert all(ln.endswith("--input-data bad.npz has no array for input 'attention_mask' (inputs: "
                           "attention_mask, input_ids, token_type_ids)") for ln in failures), failures
    # the run's repetitions must all see the same data: a file changed before --resume is refused
    run = benchbot.load_run(results=tmp_path / "r2")
    np.savez(bad, input_ids=np.ones((1, 32), np.int32))
    again = run_cli(["run", "--quiet", "--resume", run.run_id], env2)
    assert again.returncode == 2 and again.stderr.strip() == (
        f"benchbot: cannot resume: the --input-data file {bad} changed since run {run.run_id} used it; put the "
        "original back, or start a new run for the new data")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input-range", "token_type_ids=0-2"], "--input-range token_type_ids=0-2: expected LO:HI"),
        (["--input-range", "token_type_ids=2:0"], "LO must be below HI"),
        (["--input-range", "0:2"], "--input-range takes NAME=VALUE items"),
        (["--input-shape", "x=1x0"], "--input-shape x=1x0: expected dimensions of 1 or more"),
        (["--input-data", "/nonexistent/in.npz"], "--input-data /nonexistent/in.npz: no such file"),
        (["--input-data", "eval", "--models", str(DATA / "full_delegate.tflite")],
         "--input-data eval: no eval set for full_delegate.tflite"),
        # names are checked on the host against every model file, before a run folder exists
        (["--input-range", "segment_ids=0:2"], "benchbot: --input-range names 'segment_ids', which is not an input "
         "of tweet-bert3/dynamic.tflite (inputs: attention_mask, input_ids, token_type_ids)"),
        (["--input-shape", "x=1x8"], "--input-shape names 'x', which is not an input of tweet-bert3/"),
        (["--signature", "triple", "--models", str(DATA / "two_signatures.tflite")],
         "--signature triple: data/two_signatures.tflite has no such signature (signatures: double, shift)"),
        (["--input-range", "x=0:1", "--models", f"{DATA / 'two_signatures.tflite'},tweet-mobile"],
         "--input-range names 'x', which is not an input of tweet-mobile/"),  # x is the other model's input
    ],
)
def test_bad_options_are_one_sentence(env: dict[str, str], args: list[str], message: str) -> None:
    models = [] if "--models" in args else ["--models", "tweet-bert3"]
    done = run_cli(["run", "--quiet", *models, *args, *QUICK], env)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert message in done.stderr
    assert len([ln for ln in done.stderr.splitlines() if ln.strip()]) == 1
    assert not Path(env["BENCHBOT_RESULTS"]).exists(), "a run was created for options that cannot run"


def test_family_json_settings_apply_and_the_command_line_wins(env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "bert"
    folder.mkdir()
    shutil.copy(BERT / "fp32.tflite", folder)
    shutil.copy(BERT / "eval.npz", folder)
    info = json.loads((BERT / "family.json").read_text())
    info["variants"] = {"fp32": info["variants"]["fp32"]}
    info["input_ranges"] = {"input_ids": [0, 10]}
    (folder / "family.json").write_text(json.dumps(info))
    done = run_cli(["run", "--quiet", "--models", str(folder), "--threads", "1", "--no-accuracy", *QUICK], env)
    assert done.returncode == 0, done.stderr
    assert {i["key"]: i["range"] for i in starts(env)["fp32"]["inputs"]}["input_ids"] == [0, 10]
    env2 = dict(env, BENCHBOT_RESULTS=str(tmp_path / "r2"))
    done = run_cli(["run", "--quiet", "--models", str(folder), "--threads", "1", "--no-accuracy",
                    "--input-range", "input_ids=5:6", *QUICK], env2)
    assert done.returncode == 0, done.stderr
    assert {i["key"]: i["range"] for i in starts(env2)["fp32"]["inputs"]}["input_ids"] == [5, 6]


def test_dynamic_shape_and_signature_options(env: dict[str, str], tmp_path: Path) -> None:
    done = run_cli(["run", "--quiet", "--models", str(DATA / "dynamic_len.tflite"), "--threads", "1", *QUICK], env)
    assert done.returncode != 0
    assert "input x has a dynamic shape [1, -1]; give one with --input-shape x=1x128" in done.stderr
    env2 = dict(env, BENCHBOT_RESULTS=str(tmp_path / "r2"))
    done = run_cli(["run", "--quiet", "--models", str(DATA / "dynamic_len.tflite"), "--threads", "1",
                    "--input-shape", "x=1x64", *QUICK], env2)
    assert done.returncode == 0, done.stderr
    assert starts(env2)["model"]["inputs"][0]["shape"] == [1, 64]
    env3 = dict(env, BENCHBOT_RESULTS=str(tmp_path / "r3"))
    done = run_cli(["run", "--quiet", "--models", str(DATA / "two_signatures.tflite"), "--threads", "1",
                    "--signature", "shift", *QUICK], env3)
    assert done.returncode == 0, done.stderr
    assert starts(env3)["model"]["signature"] == "shift"


def test_resume_keeps_the_runs_input_settings(env: dict[str, str]) -> None:
    done = run_cli(["run", "--quiet", "--models", "tweet-bert3", "--variants", "fp32", "--threads", "1",
                    "--input-range", "token_type_ids=0:100", *QUICK], env)
    assert done.returncode != 0
    run = benchbot.load_run(results=Path(env["BENCHBOT_RESULTS"]))
    assert run.manifest["plan"]["inputs"] == {"input_ranges": {"token_type_ids": [0, 100]}}
    again = run_cli(["run", "--quiet", "--resume", run.run_id], env)
    assert again.returncode != 0 and "gather index out of bounds" in again.stderr
    run = benchbot.load_run(results=Path(env["BENCHBOT_RESULTS"]))
    (cell,) = run.cells
    attempts = run.attempts[cell.key]
    assert len(attempts) == 2 * cell.repetitions  # every repetition tried again by the resume
    assert {i["key"]: i["range"] for i in attempts[-1].first("cell_start")["inputs"]}["token_type_ids"] == [0, 100]
