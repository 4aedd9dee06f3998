"""Inputs that respect the graph, the user's own inputs, signatures and dynamic shapes (real agent, real models)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchbot import agent
from benchbot.models.catalog import ZOO_DIR
from benchbot.protocol import standalone_job
from tests.conftest import REPO, tflite214_python

AGENT = str(REPO / "benchbot" / "agent.py")
BERT = ZOO_DIR / "tweet-bert3"
DATA = REPO / "tests" / "data"
TFLITE214 = tflite214_python()
RUNTIMES = [sys.executable] + ([TFLITE214] if TFLITE214 else [])
QUICK_JOB = {"warmup_runs": 1, "warmup_seconds": 0, "min_runs": 5, "min_seconds": 0, "max_seconds": 5}
needs_bert = pytest.mark.skipif(not (BERT / "family.json").is_file(), reason="the tweet-bert3 zoo family is missing")


def run_agent(job: dict, python: str = sys.executable) -> list[dict]:
    fields = {**QUICK_JOB, **job}
    done = subprocess.run([python, AGENT, "run"], input=json.dumps(standalone_job(fields.pop("model_path"), **fields)),
                          capture_output=True,
                          text=True, timeout=120)
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def start_of(events: list[dict]) -> dict:
    errors = [e for e in events if e["event"] == "error"]
    assert not errors, errors
    (start,) = [e for e in events if e["event"] == "cell_start"]
    return start


def ranges(start: dict) -> dict[str, tuple[list, str]]:
    return {i["key"]: (i["range"], i["why"]) for i in start["inputs"]}


@needs_bert
@pytest.mark.parametrize("python", RUNTIMES, ids=lambda p: "litert" if p == sys.executable else "tflite214")
@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_bert_inputs_follow_the_graph(python: str, variant: str) -> None:
    events = run_agent({"model_path": str(BERT / f"{variant}.tflite"), "eval_path": str(BERT / "eval.npz")}, python)
    got = ranges(start_of(events))
    assert got == {
        "input_ids": ([0, 1000], "indices of GATHER table with 1000 rows"),
        "token_type_ids": ([0, 2], "indices of GATHER table with 2 rows"),
        "attention_mask": ([0, 2], "mask: only used by MUL"),
    }
    assert events[-1]["event"] == "cell_end"
    (accuracy,) = [e for e in events if e["event"] == "accuracy"]  # the x_NAME eval set, one array per input
    assert accuracy["n"] == 300 and accuracy["accuracy"] > 0.8


@needs_bert
def test_benchmark_model_ranges_break_token_type_ids() -> None:
    """What benchbot did before (int32 in [0, 100) everywhere) fails on the 2-row table, in the runtime's words."""
    events = run_agent({"model_path": str(BERT / "fp32.tflite"),
                        "input_ranges": {"token_type_ids": [0, 100], "input_ids": [0, 100]}})
    error = events[-1]
    assert error["event"] == "error" and error["fatal"]
    assert "gather index out of bounds" in error["message"]
    start = [e for e in events if e["event"] == "cell_start"][0]
    assert ranges(start)["token_type_ids"] == ([0, 100], "given by the user")


def test_graph_ranges_without_a_graph_fall_back_to_benchmark_model() -> None:
    detail = {"name": "serving_default_ids:0", "index": 0, "dtype": np.int32, "quantization": (0.0, 0)}
    assert agent.input_plan(np, None, None, [detail], {}) == [(0, 100, "benchmark_model's default for int32")]
    float_detail = {**detail, "dtype": np.float32}
    assert agent.input_plan(np, None, None, [float_detail], {})[0][:2] == (-0.5, 0.5)


@needs_bert
def test_input_data_file_cycles_samples(tmp_path: Path) -> None:
    data = np.load(BERT / "eval.npz")
    path = tmp_path / "inputs.npz"
    # short names, a full tensor name and an eval-style x_ name all address inputs
    np.savez(path, input_ids=data["x_input_ids"][:3], attention_mask=data["x_attention_mask"][:3],
             x_token_type_ids=data["x_token_type_ids"][:3])
    events = run_agent({"model_path": str(BERT / "dynamic.tflite"), "input_data": str(path)})
    start = start_of(events)
    assert start["input_samples"] == 3
    assert {i["why"] for i in start["inputs"]} == {"from the input data file"}
    assert events[-1]["event"] == "cell_end"
    one = tmp_path / "one.npz"  # one sample in the input's own shape
    np.savez(one, **{k[2:]: data[k][:1] for k in data.files if k.startswith("x_")})
    assert start_of(run_agent({"model_path": str(BERT / "fp32.tflite"), "input_data": str(one)}))["input_samples"] == 1
    # the eval set itself is an input source
    assert start_of(run_agent({"model_path": str(BERT / "fp32.tflite"),
                               "input_data": str(BERT / "eval.npz")}))["input_samples"] == 300


@needs_bert
@pytest.mark.parametrize(
    ("arrays", "expected"),
    [
        ({"input_ids": np.zeros((1, 32), np.int32), "attention_mask": np.zeros((1, 32), np.int32)},
         "has no array for input 'token_type_ids'"),
        ({"input_ids": np.zeros((1, 32), np.int32), "attention_mask": np.zeros((1, 32), np.int32),
          "token_type_ids": np.zeros((1, 32), np.int32), "segment": np.zeros((1, 32), np.int32)},
         "has array 'segment', which names no input of this model"),
        ({"input_ids": np.zeros((1, 16), np.int32), "attention_mask": np.zeros((1, 32), np.int32),
          "token_type_ids": np.zeros((1, 32), np.int32)},
         "'input_ids' has shape [1, 16] but the model input is [1, 32]"),
        ({"input_ids": np.zeros((1, 32), np.float32), "attention_mask": np.zeros((1, 32), np.int32),
          "token_type_ids": np.zeros((1, 32), np.int32)},
         "'input_ids' holds float32 but the model input is int32"),
    ],
    ids=["missing", "unknown", "shape", "dtype"],
)
def test_bad_input_data_is_one_sentence(tmp_path: Path, arrays: dict, expected: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    error = run_agent({"model_path": str(BERT / "fp32.tflite"), "input_data": str(path)})[-1]
    assert error["event"] == "error" and error["kind"] == "input" and error["fatal"]
    assert expected in error["message"] and "\n" not in error["message"]


@needs_bert
def test_bad_input_range_names_the_inputs() -> None:
    error = run_agent({"model_path": str(BERT / "fp32.tflite"), "input_ranges": {"segment_ids": [0, 2]}})[-1]
    assert error["kind"] == "input"
    assert error["message"] == ("--input-range names 'segment_ids', which is not an input of this model "
                                "(inputs: attention_mask, input_ids, token_type_ids)")


@needs_bert
def test_eval_set_missing_an_input_array_is_not_fatal(tmp_path: Path) -> None:
    data = np.load(BERT / "eval.npz")
    path = tmp_path / "eval.npz"
    np.savez(path, x_input_ids=data["x_input_ids"], x_attention_mask=data["x_attention_mask"], y=data["y"])
    events = run_agent({"model_path": str(BERT / "fp32.tflite"), "eval_path": str(path)})
    (error,) = [e for e in events if e["event"] == "error"]
    assert not error["fatal"] and error["kind"] == "eval"
    assert "no array x_token_type_ids for input token_type_ids" in error["message"]
    assert events[-1]["event"] == "cell_end"


@pytest.mark.parametrize("python", RUNTIMES, ids=lambda p: "litert" if p == sys.executable else "tflite214")
def test_dynamic_dimension_needs_an_input_shape(python: str) -> None:
    model = str(DATA / "dynamic_len.tflite")
    error = run_agent({"model_path": model}, python)[-1]
    assert error["kind"] == "input"
    assert error["message"] == "input x has a dynamic shape [1, -1]; give one with --input-shape x=1x128"
    start = start_of(run_agent({"model_path": model, "input_shapes": {"x": [1, 16]}}, python))
    assert start["inputs"][0]["shape"] == [1, 16]
    bad = run_agent({"model_path": model, "input_shapes": {"x": [2, 16, 3]}}, python)[-1]
    assert bad["kind"] == "input" and "does not fit the model's shape [1, -1]" in bad["message"]


@pytest.mark.parametrize("python", RUNTIMES, ids=lambda p: "litert" if p == sys.executable else "tflite214")
def test_named_signature_runs_through_the_signature_runner(python: str) -> None:
    model = str(DATA / "two_signatures.tflite")
    first = start_of(run_agent({"model_path": model}, python))
    assert first["signature"] == "double" and first["signatures"] == ["double", "shift"]
    assert [i["key"] for i in first["inputs"]] == ["x"]
    shift = run_agent({"model_path": model, "signature": "shift"}, python)
    start = start_of(shift)
    assert start["signature"] == "shift" and sorted(i["key"] for i in start["inputs"]) == ["offset", "x"]
    assert shift[-1]["event"] == "cell_end" and shift[-1]["loop_runs"] >= 5
    missing = run_agent({"model_path": model, "signature": "triple"}, python)[-1]
    assert missing["kind"] == "option"
    assert missing["message"] == "the model has no signature 'triple' (signatures: double, shift)"


@pytest.mark.parametrize("python", RUNTIMES, ids=lambda p: "litert" if p == sys.executable else "tflite214")
def test_stateful_model_keeps_working(python: str) -> None:
    """Resource variables (a streaming model's state) run through the plain interpreter path as before."""
    events = run_agent({"model_path": str(DATA / "stateful.tflite")}, python)
    start = start_of(events)
    assert start["inputs"][0]["shape"] == [1, 4] and start["signatures"] == ["serving_default"]
    assert events[-1]["event"] == "cell_end" and events[-1]["loop_runs"] >= 5
