"""The on-device agent itself: fingerprint, input quantization, error sentences, other runtimes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import benchbot
from benchbot import agent
from benchbot.models.catalog import ZOO_DIR, zoo_families
from benchbot.protocol import standalone_job
from tests.conftest import QUICK, REPO, run_cli, tflite214_python, write_profile

AGENT = str(REPO / "benchbot" / "agent.py")
needs_zoo = pytest.mark.skipif(not zoo_families(), reason="the model zoo is not built")


def run_agent(args: list[str], job: dict | None = None, python: str = sys.executable) -> list[dict]:
    done = subprocess.run([python, AGENT, *args], input=json.dumps(job) if job else "", capture_output=True,
                          text=True, timeout=300)
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def zoo_variants() -> list[Path]:
    return sorted(ZOO_DIR.glob("*/*.tflite"))


def test_hello_reports_the_device() -> None:
    (hello,) = run_agent(["hello"])
    fp = hello["fingerprint"]
    assert hello["event"] == "hello" and hello["protocol"] == agent.PROTOCOL
    assert fp["arch"] == os.uname().machine and fp["cores"] == os.cpu_count()
    assert fp["runtime"] == "ai_edge_litert" and fp["runtime_version"]
    assert fp["numpy"] == np.__version__ and fp["python"] == sys.version.split()[0]
    # sources that do not exist are reported as absent, not invented
    assert fp["thermal_zones"] == [p.read_text().strip() for p in sorted(Path("/sys/class/thermal").glob(
        "thermal_zone*/type"), key=lambda p: int(p.parent.name.removeprefix("thermal_zone")))]
    assert fp["vcgencmd"] == (shutil.which("vcgencmd") is not None)


def test_probe_reads_disk_and_memory_where_benchbot_keeps_its_files(tmp_path: Path) -> None:
    """`devices check` asks the agent (not a shell script): free disk at the work folder's nearest parent."""
    (probe,) = run_agent(["probe", str(tmp_path / "not" / "yet")])
    assert probe["event"] == "probe" and probe["protocol"] == agent.PROTOCOL
    assert probe["folder"] == str(tmp_path)
    assert abs(probe["disk_free_bytes"] - shutil.disk_usage(tmp_path).free) < 2**30
    assert 0 < probe["mem_available_bytes"] <= probe["mem_total_bytes"]
    assert probe["arch"] == os.uname().machine and probe["python"] == sys.version.split()[0]
    (old,) = run_agent(["probe"], python=tflite214_python() or sys.executable)  # Python 3.8-era interpreters too
    assert old["disk_free_bytes"] > 0


def test_a_file_that_is_not_a_model_is_one_sentence(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 64)
    events = run_agent(["run"], standalone_job(str(bad), cell_id="c"))
    error = events[-1]
    assert error["event"] == "error" and error["kind"] == "load" and error["fatal"]
    assert "\n" not in error["message"]
    missing = run_agent(["run"], standalone_job(str(tmp_path / "nope.tflite"), cell_id="c"))[-1]
    assert missing["kind"] == "model" and "does not exist on the device" in missing["message"]


@pytest.mark.parametrize(
    ("dtype", "low", "high"), [(np.float32, -0.5, 0.5), (np.int8, -127, 127), (np.uint8, 0, 254), (np.int32, 0, 99)]
)
def test_random_inputs_follow_benchmark_model(dtype: type, low: float, high: float) -> None:
    values = agent.random_input(np, np.random.default_rng(0), {"dtype": dtype, "name": "x"}, (4000,))
    assert values.dtype == dtype and values.min() >= low and values.max() <= high
    assert values.min() < low + (high - low) * 0.05 and values.max() > high - (high - low) * 0.05


def test_quantize_and_dequantize_follow_the_tensor_parameters() -> None:
    detail = {"dtype": np.int8, "quantization": (0.05, -3)}
    x = np.array([-10.0, -0.1, 0.0, 0.026, 1.0, 10.0], dtype=np.float32)
    q = agent.quantize(np, x, detail)
    assert q.dtype == np.int8
    assert q.tolist() == [-128, -5, -3, -2, 17, 127]  # round(x / 0.05) - 3, clipped to int8
    back = agent.dequantize(np, q, detail)
    assert back.tolist() == pytest.approx([(v + 3) * 0.05 for v in q.tolist()])
    ids = np.array([[1, 2, 3]], dtype=np.int32)
    assert agent.quantize(np, ids, {"dtype": np.int32, "quantization": (0.0, 0)}).tolist() == [[1, 2, 3]]


@needs_zoo
def test_integer_io_models_agree_with_their_float_baseline() -> None:
    """The agent's quantize -> invoke -> dequantize path, checked against the fp32 variant's own output."""
    from ai_edge_litert.interpreter import Interpreter

    checked = 0
    for family in zoo_families():
        folder = ZOO_DIR / family
        data = np.load(folder / "eval.npz")
        if "x" not in data.files:  # multi-input families (x_NAME arrays): tests/test_model_inputs.py
            continue
        base = Interpreter(model_path=str(folder / "fp32.tflite"))
        base.allocate_tensors()
        for path in sorted(folder.glob("*.tflite")):
            interp = Interpreter(model_path=str(path))
            interp.allocate_tensors()
            inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
            if inp["dtype"] not in (np.int8, np.uint8) and out["dtype"] not in (np.int8, np.uint8):
                continue
            agree = 0
            for x in data["x"][:50]:
                interp.set_tensor(inp["index"], agent.quantize(np, x[None], inp))
                interp.invoke()
                got = agent.dequantize(np, interp.get_tensor(out["index"]), out)
                base_in = base.get_input_details()[0]
                base.set_tensor(base_in["index"], x[None].astype(base_in["dtype"]))
                base.invoke()
                want = base.get_tensor(base.get_output_details()[0]["index"])
                assert np.abs(got - want).max() < 0.25  # probabilities, int8 output scale is ~1/256
                agree += int(np.argmax(got) == np.argmax(want))
            assert agree >= 45
            checked += 1
    if not checked:
        pytest.skip("no zoo variant has integer input or output")


@needs_zoo
def test_eval_set_problems_are_one_error_and_timing_survives(tmp_path: Path) -> None:
    model = sorted(ZOO_DIR.glob("*/fp32.tflite"))[0]
    x = np.load(model.parent / "eval.npz")["x"]
    wrong_shape = tmp_path / "shape.npz"
    np.savez(wrong_shape, x=x[:, :-1] if x.ndim == 2 else x[:, :-1, ...], y=np.zeros(len(x), dtype=np.int64))
    wrong_labels = tmp_path / "labels.npz"
    np.savez(wrong_labels, x=x, y=np.full(len(x), 99))
    for eval_path, fragment in ((wrong_shape, "per sample but the model expects"),
                                (wrong_labels, "eval labels must be in 0..")):
        events = run_agent(["run"], standalone_job(str(model), cell_id="c", eval_path=str(eval_path), min_runs=5,
                                                   min_seconds=0, warmup_runs=1, warmup_seconds=0))
        errors = [e for e in events if e["event"] == "error"]
        assert len(errors) == 1 and not errors[0]["fatal"] and fragment in errors[0]["message"]
        assert events[-1]["event"] == "cell_end" and events[-1]["loop_runs"] >= 5
        assert not any(e["event"] == "accuracy" for e in events)


def bump_op_version(source: Path, target: Path, version: int = 12) -> str:
    """Rewrite a model so its FULLY_CONNECTED op claims a newer version (as TensorFlow 2.21 writes it)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(source.read_bytes(), 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    bumped = None
    for code in model.operatorCodes:
        if names.get(max(code.builtinCode, code.deprecatedBuiltinCode)) == "FULLY_CONNECTED":
            code.version = version
            bumped = "FULLY_CONNECTED"
    assert bumped, "the model has no FULLY_CONNECTED op"
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    target.write_bytes(builder.Output())
    return bumped


TFLITE214 = tflite214_python()
needs_214 = pytest.mark.skipif(TFLITE214 is None, reason="no tflite-runtime 2.14 venv (make test creates it)")


@needs_zoo
@needs_214
def test_newer_op_versions_are_a_clear_error_for_tflite_runtime(tmp_path: Path) -> None:
    model = tmp_path / "v12.tflite"
    bump_op_version(sorted(ZOO_DIR.glob("*/dynamic.tflite"))[0], model)
    job = standalone_job(str(model), cell_id="c", min_runs=3, min_seconds=0, warmup_runs=0)
    error = run_agent(["run"], job, python=TFLITE214)[-1]
    assert error["event"] == "error" and error["kind"] == "load"
    assert error["message"].startswith("op FULLY_CONNECTED version 12 is not supported by tflite_runtime 2.14.0")
    # the maintained runtime knows version 12
    assert run_agent(["run"], job)[-1]["event"] == "cell_end"


@needs_zoo
@needs_214
def test_the_zoo_runs_on_tflite_runtime_214_without_psutil(tmp_path: Path, cli_env: dict[str, str],
                                                            profiles_dir: Path) -> None:
    """What Raspberry Pi OS users install: every zoo variant must load and run, and /proc telemetry works."""
    assert subprocess.run([TFLITE214, "-c", "import psutil"], capture_output=True).returncode != 0
    write_profile(profiles_dir, "pi-like", f'[device]\npython = "{TFLITE214}"\n')
    done = run_cli(["run", "--devices", "pi-like", *QUICK], cli_env)
    assert done.returncode == 0, done.stderr
    run = benchbot.load_run(results=cli_env["BENCHBOT_RESULTS"])
    assert run.fingerprints["pi-like"]["runtime"] == "tflite_runtime"
    assert run.fingerprints["pi-like"]["runtime_version"] == "2.14.0"
    assert run.fingerprints["pi-like"]["psutil"] is None
    assert (run.summary["status"] == "ok").all() and len(run.summary) == len(zoo_variants())
    assert (run.summary["runtime"] == "tflite_runtime").all()
    assert run.telemetry["cpu_pct"].notna().any() and run.telemetry["proc_cpu_pct"].notna().any()
    assert run.summary["accuracy"].notna().all()


def test_the_agent_stays_a_self_contained_python38_file() -> None:
    """It travels alone to boards we do not control: Python 3.8 syntax, no benchbot imports."""
    import ast

    source = Path(AGENT).read_text()
    tree = ast.parse(source, feature_version=(3, 8))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert "benchbot" not in imported
    allowed = {"glob", "json", "os", "platform", "re", "shutil", "subprocess", "sys", "threading", "time",
               "numpy", "psutil", "resource", "importlib", "ai_edge_litert", "tflite_runtime", "tensorflow"}
    assert imported <= allowed, imported - allowed
