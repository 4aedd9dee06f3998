"""`benchbot models inspect` and the up-front runtime warning of `benchbot run`, on real FlatBuffers."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from benchbot.models.catalog import ZOO_DIR
from benchbot.models.inspect import read_model, verdict
from benchbot.models.op_versions import min_runtime
from tests.conftest import QUICK, run_cli, tflite214_python, write_profile

MOBILE = ZOO_DIR / "tweet-mobile"
TFLITE214 = tflite214_python()


def with_op_version(source: Path, target: Path, op: str, version: int) -> Path:
    """A copy of `source` whose operator code for `op` claims `version` (as TF 2.21 writes FULLY_CONNECTED v12)."""
    from ai_edge_litert import schema_py_generated as schema

    data = bytearray(source.read_bytes())
    model = schema.Model.GetRootAs(bytes(data), 0)
    wanted = getattr(schema.BuiltinOperator, op)
    patched = 0
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) == wanted:
            field = code._tab.Offset(8)  # OperatorCode.version (vtable slot 2)
            assert field, "the version is stored (not the default 1), so it can be patched in place"
            struct.pack_into("<i", data, code._tab.Pos + field, version)
            patched += 1
    assert patched
    target.write_bytes(bytes(data))
    return target


@pytest.fixture
def fc12(tmp_path: Path) -> Path:
    return with_op_version(MOBILE / "dynamic.tflite", tmp_path / "tf221-dynamic.tflite", "FULLY_CONNECTED", 12)


def test_op_versions_come_from_the_flatbuffer(fc12: Path) -> None:
    original = {(o["op"], o["version"]) for o in read_model(MOBILE / "dynamic.tflite")["ops"]}
    family = json.loads((MOBILE / "family.json").read_text())
    assert {op: v for op, v in original} == family["variants"]["dynamic"]["ops"]  # what TF's own reader saw
    info = read_model(fc12)
    assert ("FULLY_CONNECTED", 12) in {(o["op"], o["version"]) for o in info["ops"]}
    assert info["min_runtime"] == "2.17.0" == min_runtime("FULLY_CONNECTED", 12)
    ok, why = verdict(info, "tflite_runtime", "2.14.0")
    assert ok is False and why == "tflite_runtime 2.14.0 cannot run it: FULLY_CONNECTED version 12 needs 2.17.0"
    assert verdict(read_model(MOBILE / "dynamic.tflite"), "tflite_runtime", "2.14.0")[0] is True


def test_inspect_names_what_tflite_runtime_214_cannot_run(fc12: Path, cli_env: dict[str, str]) -> None:
    done = run_cli(["models", "inspect", str(fc12)], cli_env)
    assert done.returncode == 0, done.stderr
    assert "FULLY_CONNECTED" in done.stdout and " v12 " in done.stdout
    assert "tflite_runtime 2.14.0 cannot run it: FULLY_CONNECTED version 12 needs 2.17.0" in done.stdout
    data = json.loads(run_cli(["models", "inspect", "--json", str(fc12)], cli_env).stdout)
    assert data["sha256"] and data["size"] == fc12.stat().st_size
    assert [i["dtype"] for i in data["inputs"]] == ["int32"] and data["inputs"][0]["shape_signature"] == [-1, 32]
    assert data["signatures"][0]["key"] == "serving_default"
    verdicts = {r["runtime"]: r["can_run"] for r in data["runtimes"]}
    assert verdicts["tflite_runtime"] is False


def test_inspect_a_zoo_family_lists_every_variant_with_quantization(cli_env: dict[str, str]) -> None:
    lines = run_cli(["models", "inspect", "--json", "shapes-cnn"], cli_env).stdout.splitlines()
    infos = [json.loads(line) for line in lines]
    assert [Path(i["path"]).stem for i in infos] == ["fp32", "fp16", "dynamic", "int8"]
    int8 = infos[-1]
    assert int8["inputs"][0]["dtype"] == "int8" and int8["inputs"][0]["quantization"]["zero_point"] == -128
    assert all(r["can_run"] for r in int8["runtimes"])
    bad = run_cli(["models", "inspect", "no-such-model"], cli_env)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr


@pytest.mark.skipif(TFLITE214 is None, reason="no tflite-runtime 2.14 venv (make test creates it)")
def test_run_warns_up_front_and_the_cell_fails_in_the_runtimes_words(
        fc12: Path, cli_env: dict[str, str], profiles_dir: Path) -> None:
    write_profile(profiles_dir, "pi-like", f'[device]\npython = "{TFLITE214}"\nruntime = "tflite_runtime"\n')
    done = run_cli(["run", "--quiet", "--devices", "pi-like", "--models", str(fc12), "--threads", "1", *QUICK],
                   cli_env)
    assert done.returncode != 0
    lines = done.stderr.splitlines()
    warning = next(i for i, ln in enumerate(lines) if ln.startswith("benchbot: warning: pi-like:"))
    assert "FULLY_CONNECTED version 12 needs 2.17.0" in lines[warning]
    failure = next(i for i, ln in enumerate(lines) if "failed:" in ln)
    assert warning < failure  # said before anything ran
    assert "op FULLY_CONNECTED version 12 is not supported by tflite_runtime 2.14.0" in lines[failure]


@pytest.mark.skipif(TFLITE214 is None, reason="no tflite-runtime 2.14 venv (make test creates it)")
def test_a_device_known_from_its_last_run_is_warned_about(
        fc12: Path, cli_env: dict[str, str], profiles_dir: Path) -> None:
    write_profile(profiles_dir, "old-board", f'[device]\npython = "{TFLITE214}"\n')  # runtime auto
    first = run_cli(["run", "--quiet", "--devices", "old-board", "--models", str(ZOO_DIR / "shapes-cnn"),
                     "--variants", "fp32", "--threads", "1", *QUICK], cli_env)
    assert first.returncode == 0, first.stderr
    assert "warning" not in first.stderr  # nothing known yet, and the model is fine anyway
    inspect = run_cli(["models", "inspect", str(fc12)], cli_env)
    assert ("device old-board: tflite_runtime 2.14.0 cannot run it: FULLY_CONNECTED version 12 needs 2.17.0"
            in inspect.stdout)
    second = run_cli(["run", "--quiet", "--devices", "old-board", "--models", str(fc12), "--threads", "1", *QUICK],
                     cli_env)
    assert second.returncode != 0
    assert second.stderr.startswith("benchbot: warning: old-board: ")
    assert "op FULLY_CONNECTED version 12 is not supported by tflite_runtime 2.14.0" in second.stderr
