"""`benchbot models convert` end to end: a Keras model -> five variants -> `benchbot run --models DIR`.

TensorFlow (1.6 GB, the optional `convert` extra) and the benchmark runtime (ai-edge-litert) live in
different venvs here, so every step is a subprocess with the interpreter that has what it needs:

* conversion: this interpreter when it imports TensorFlow, else $BENCHBOT_TF_PYTHON;
* benchmark and report: this interpreter when it imports ai_edge_litert, else $BENCHBOT_MAIN_PYTHON.

Whatever is missing skips with the reason. The no-TensorFlow error is checked in any venv: for real
where TensorFlow is absent, with TensorFlow blocked (sys.modules) where it is installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import QUICK, REPO

ALL = ("fp32", "fp16", "dynamic", "int8", "int16x8")
NO_TF = "benchbot: model conversion needs TensorFlow: pip install 'benchbot[convert]'"


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _python(module: str, variable: str) -> str | None:
    if _has(module):
        return sys.executable
    path = os.environ.get(variable)
    return path if path and Path(path).exists() else None


TF_PYTHON = _python("tensorflow", "BENCHBOT_TF_PYTHON")
RUN_PYTHON = _python("ai_edge_litert", "BENCHBOT_MAIN_PYTHON")
needs_tf = pytest.mark.skipif(TF_PYTHON is None, reason="TensorFlow (the optional 'convert' extra) is not installed "
                              "here and $BENCHBOT_TF_PYTHON names no interpreter that has it")
needs_runtime = pytest.mark.skipif(RUN_PYTHON is None, reason="ai_edge_litert is not installed here and "
                                   "$BENCHBOT_MAIN_PYTHON names no interpreter that has it")


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2", **extra)
    env.pop("BENCHBOT_PROFILES", None)
    env.pop("COLUMNS", None)
    return env


def benchbot(python: str, args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([python, "-m", "benchbot.cli", *args], cwd=cwd, env=_env(**env), capture_output=True,
                          text=True, timeout=600)


# A small Keras classifier trained on a learnable rule (which of three feature groups sums highest), big
# enough (32x64 and 64x64 kernels) that dynamic-range and int8 quantization really quantize its weights,
# and a SavedModel with SIN, which has no 16x8 kernel, to make one variant fail for real.
BUILD = r'''
import json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np
import tensorflow as tf

out = sys.argv[1]
tf.keras.utils.set_random_seed(7)
rng = np.random.default_rng(7)
x = rng.normal(size=(1400, 32)).astype(np.float32)
y = np.argmax(np.stack([x[:, 0:4].sum(1), x[:, 4:8].sum(1), x[:, 8:12].sum(1)], axis=1), axis=1)
inp = tf.keras.Input(shape=(32,), dtype=tf.float32, name="features")
h = tf.keras.layers.Dense(64, activation="relu")(inp)
h = tf.keras.layers.Dense(64, activation="relu")(h)
model = tf.keras.Model(inp, tf.keras.layers.Dense(3, activation="softmax")(h))
model.compile(tf.keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x[:1000], y[:1000], epochs=12, batch_size=64, verbose=0)
model.save(os.path.join(out, "model.keras"))
np.save(os.path.join(out, "calibration.npy"), x[:200])
np.savez(os.path.join(out, "eval.npz"), x=x[1000:], y=y[1000:])
keras_acc = float(np.mean(np.argmax(model.predict(x[1000:], verbose=0), axis=1) == y[1000:]))

sin_in = tf.keras.Input(shape=(8,), dtype=tf.float32)
sin_h = tf.keras.layers.Lambda(lambda t: tf.math.sin(t))(tf.keras.layers.Dense(16)(sin_in))
tf.keras.Model(sin_in, tf.keras.layers.Dense(3, activation="softmax")(sin_h)).save(os.path.join(out, "sin_model"))
np.save(os.path.join(out, "sin_calibration.npy"), rng.normal(size=(50, 8)).astype(np.float32))
json.dump({"keras_accuracy": keras_acc, "tensorflow": tf.__version__}, open(os.path.join(out, "built.json"), "w"))
'''


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("convert-src")
    done = subprocess.run([TF_PYTHON, "-c", BUILD, str(folder)], env=_env(), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder


@pytest.fixture(scope="module")
def converted(sources: Path) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = sources / "tiny-family"
    done = benchbot(TF_PYTHON, ["models", "convert", str(sources / "model.keras"), "--variants", ",".join(ALL),
                                "--calibration", str(sources / "calibration.npy"), "--eval",
                                str(sources / "eval.npz"), "--out", str(out), "--int8-io", "--name", "tiny"],
                    cwd=sources)
    return out, done


# ----------------------------------------------------------------------------- without TensorFlow


def test_without_tensorflow_it_is_one_line(tmp_path: Path) -> None:
    args = ["models", "convert", str(tmp_path / "model.keras"), "--out", str(tmp_path / "out")]
    if _has("tensorflow"):  # this venv has it: block the import, as if it were absent
        code = "import sys; sys.modules['tensorflow'] = None; from benchbot.cli import main; main()"
        done = subprocess.run([sys.executable, "-c", code, *args], cwd=tmp_path, env=_env(), capture_output=True,
                              text=True, timeout=120)
    else:
        done = benchbot(sys.executable, args, tmp_path)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [NO_TF] and done.stdout == ""
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- bad input


@needs_tf
@pytest.mark.parametrize(("setup", "args", "expected"), [
    (None, ["missing.keras"], "benchbot: no such model: missing.keras (give a SavedModel folder or a .keras/.h5 "
                              "file)"),
    ("dir", ["plain_dir"], "is not a SavedModel folder (no saved_model.pb)"),
    ("keras", ["m.keras", "--variants", "fp32,int4"],
     "benchbot: unknown variant(s) int4; choose from fp32, fp16, dynamic, int8, int16x8"),
    ("keras", ["m.keras", "--variants", "int8", "--calibration", "empty.npy"], "calibration file empty.npy is empty"),
    ("keras", ["m.keras", "--variants", "int8", "--calibration", "none.npz"], "calibration file none.npz holds no "
                                                                              "samples"),
    ("keras", ["m.keras", "--variants", "int8", "--calibration", "zero.npy"], "calibration file zero.npy holds no "
                                                                              "samples"),
    ("keras", ["m.keras", "--variants", "int8", "--calibration", "garbage.npy"], "calibration file garbage.npy "
                                                                                 "cannot be read"),
    ("keras", ["m.keras", "--variants", "fp32,int8,int16x8"], "int8 and int16x8 need --calibration DATA"),
    ("keras", ["m.keras", "--variants", "fp32", "--eval", "zero.npy"], "eval file zero.npy needs arrays x (inputs) and y (labels)"),
    ("keras", ["m.keras", "--variants", "fp32", "--eval", "short.npz"], "eval file short.npz: x has 4 samples but y has 3 labels"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, setup: str | None, args: list[str],
                                                  expected: str) -> None:
    if setup == "dir":
        (tmp_path / "plain_dir").mkdir()
    if setup == "keras":
        (tmp_path / "m.keras").write_bytes(b"")  # never opened: the inputs are checked before TensorFlow loads
    (tmp_path / "empty.npy").write_bytes(b"")
    (tmp_path / "garbage.npy").write_bytes(b"not numpy at all")
    np.savez(tmp_path / "none.npz")
    np.save(tmp_path / "zero.npy", np.zeros((0, 32), np.float32))
    np.savez(tmp_path / "short.npz", x=np.zeros((4, 32), np.float32), y=np.zeros(3, np.int64))
    done = benchbot(TF_PYTHON, ["models", "convert", *args, "--out", "out"], tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("benchbot: ") and expected in lines[0], done.stderr
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- conversion and benchmark


@needs_tf
def test_all_five_variants_convert_into_a_family_folder(converted: tuple[Path, subprocess.CompletedProcess[str]],
                                                        sources: Path) -> None:
    out, done = converted
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # the converter's own chatter is hidden when nothing went wrong
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines[:5]] == list(ALL)
    assert lines[-1] == (f"family tiny (baseline fp32, eval set: eval.npz) in {out}; benchmark it with: "
                         f"benchbot run --models {out}")
    family = json.loads((out / "family.json").read_text())
    assert family["name"] == "tiny" and family["baseline"] == "fp32" and family["failed"] == {}
    assert set(family["variants"]) == set(ALL) and family["eval"] == "eval.npz"
    for variant, entry in family["variants"].items():
        assert (out / entry["file"]).stat().st_size == entry["size"]
        assert f"{variant:8} {entry['size'] / 1024:9.1f} KiB" in done.stdout
    assert family["variants"]["int8"]["inputs"][0]["dtype"] == "int8"  # --int8-io
    assert family["variants"]["int16x8"]["inputs"][0]["dtype"] == "float32"
    sizes = {v: e["size"] for v, e in family["variants"].items()}
    assert sizes["fp32"] > sizes["fp16"] > sizes["int8"] and sizes["fp32"] > 2.5 * sizes["dynamic"]
    with np.load(out / "eval.npz") as copied, np.load(sources / "eval.npz") as original:
        assert np.array_equal(copied["x"], original["x"]) and np.array_equal(copied["y"], original["y"])


@needs_tf
@needs_runtime
def test_the_converted_folder_is_benchmarked_with_accuracy_and_latency(
        converted: tuple[Path, subprocess.CompletedProcess[str]], sources: Path, tmp_path: Path) -> None:
    out, done = converted
    assert done.returncode == 0, done.stderr
    results = tmp_path / "results"
    ran = benchbot(RUN_PYTHON, ["run", "--models", str(out), "--threads", "1", *QUICK], tmp_path,
                   BENCHBOT_RESULTS=str(results))
    assert ran.returncode == 0, ran.stderr
    report = benchbot(RUN_PYTHON, ["report", "--no-plots", "--format", "json"], tmp_path,
                      BENCHBOT_RESULTS=str(results))
    assert report.returncode == 0, report.stderr
    body = json.loads(report.stdout)
    cells = {c["variant"]: c for c in body["cells"]}
    assert set(cells) == set(ALL)
    family = json.loads((out / "family.json").read_text())
    keras_accuracy = json.loads((sources / "built.json").read_text())["keras_accuracy"]
    for variant, cell in cells.items():
        assert cell["status"] == "ok" and cell["model"] == "tiny"
        assert cell["count"] >= 20 and cell["p50_ms"] > 0 and cell["throughput"] > 0
        assert cell["accuracy_n"] == 400 and cell["model_size"] == family["variants"][variant]["size"]
        # quantization costs little on this model; the float variants match Keras to a sample or two
        assert abs(cell["accuracy"] - cells["fp32"]["accuracy"]) <= 0.03, variant
        assert cell["size_ratio"] == pytest.approx(cells["fp32"]["model_size"] / cell["model_size"])
    assert keras_accuracy > 0.85
    assert abs(cells["fp32"]["accuracy"] - keras_accuracy) <= 2 / 400
    section = body["sections"]["tradeoff"]["devices"][0]
    texts = [h["text"] for h in section["headlines"]]
    assert len(texts) == 5 and texts[0].startswith("tiny fp32 on local (baseline): ")
    assert any(t.startswith("tiny int8 on local: ") and "x smaller" in t for t in texts)


@needs_tf
def test_a_variant_that_fails_is_reported_and_the_others_written(sources: Path, tmp_path: Path) -> None:
    out = tmp_path / "sin-family"
    done = benchbot(TF_PYTHON, ["models", "convert", str(sources / "sin_model"), "--variants", "dynamic,int16x8",
                                "--calibration", str(sources / "sin_calibration.npy"), "--out", str(out)], tmp_path)
    assert done.returncode == 3, done.stderr
    assert "int16x8  FAILED: Quantization to 16x8-bit not yet supported for op: 'SIN'." in done.stdout
    assert done.stderr.splitlines() == ["benchbot: 1 of 2 variants failed to convert: int16x8"]
    family = json.loads((out / "family.json").read_text())
    assert list(family["variants"]) == ["dynamic"] and family["baseline"] == "dynamic"  # fp32 was not asked for
    assert "SIN" in family["failed"]["int16x8"]
    assert (out / "dynamic.tflite").is_file() and not (out / "int16x8.tflite").exists()
