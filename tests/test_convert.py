"""convert.py against a real TensorFlow; skipped where TensorFlow (the optional convert extra) is absent."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

tf = pytest.importorskip(
    "tensorflow", reason="TensorFlow is the optional 'convert' extra; not installed here"
)

from benchbot.models.convert import (  # noqa: E402 - after the skip on purpose
    ConversionError,
    convert_family,
    convert_variant,
)

ALL = ("fp32", "fp16", "dynamic", "int8", "int16x8")


def _tiny_model() -> tf.keras.Model:
    tf.keras.utils.set_random_seed(0)
    inp = tf.keras.Input(shape=(8,), dtype=tf.float32)
    h = tf.keras.layers.Dense(16, activation="relu")(inp)
    out = tf.keras.layers.Dense(3, activation="softmax")(h)
    return tf.keras.Model(inp, out)


def _calib() -> np.ndarray:
    return np.random.default_rng(0).uniform(-1, 1, size=(50, 8)).astype(np.float32)


def _check_listed(family: dict, out, names) -> None:
    manifest = json.loads((out / "family.json").read_text())
    assert manifest == json.loads(json.dumps(family))
    assert set(manifest["variants"]) == set(names)
    for variant, entry in manifest["variants"].items():
        data = (out / f"{variant}.tflite").read_bytes()
        assert entry["file"] == f"{variant}.tflite"
        assert entry["size"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()


def test_all_variants(tmp_path):
    x = _calib()
    y = np.arange(len(x)) % 3
    family = convert_family(
        _tiny_model(),
        tmp_path,
        variants=ALL,
        calibration=x,
        int8_io=True,
        eval_set=(x, y),
        name="tiny",
        extra={"labels": ["a", "b", "c"]},
    )
    _check_listed(family, tmp_path, ALL)
    assert family["format"] == "benchbot-family" and family["version"] == 1
    assert family["name"] == "tiny" and family["baseline"] == "fp32" and family["failed"] == {}
    assert family["converter"]["tensorflow"] == tf.__version__
    assert family["labels"] == ["a", "b", "c"]
    assert family["eval"] == "eval.npz"
    with np.load(tmp_path / "eval.npz") as ev:
        assert ev["x"].dtype == np.float32 and ev["x"].shape == (50, 8)
        assert ev["y"].tolist() == y.tolist()
    int8 = family["variants"]["int8"]
    assert int8["settings"]["inference_input_type"] == "int8"
    assert int8["inputs"][0]["dtype"] == "int8" and int8["outputs"][0]["dtype"] == "int8"
    assert family["variants"]["dynamic"]["inputs"][0]["dtype"] == "float32"

    # The variants must actually run and agree roughly with the float model.
    sample = x[:1]
    ref = None
    for variant in ALL:
        interp = tf.lite.Interpreter(model_path=str(tmp_path / f"{variant}.tflite"))
        interp.allocate_tensors()
        inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
        feed = sample
        if inp["dtype"] == np.int8:
            scale, zp = inp["quantization"]
            feed = np.clip(np.round(sample / scale) + zp, -128, 127).astype(np.int8)
        interp.set_tensor(inp["index"], feed)
        interp.invoke()
        res = interp.get_tensor(out["index"]).astype(np.float32)
        if out["dtype"] == np.int8:
            scale, zp = out["quantization"]
            res = (res - zp) * scale
        ref = res if ref is None else ref
        assert np.allclose(res, ref, atol=0.1), variant


def test_int8_without_calibration_fails_alone(tmp_path):
    # A stale file from an earlier run must not survive a failed variant.
    (tmp_path / "int8.tflite").write_bytes(b"old")
    family = convert_family(_tiny_model(), tmp_path, variants=("fp32", "dynamic", "int8"))
    _check_listed(family, tmp_path, ("fp32", "dynamic"))
    assert "needs --calibration data" in family["failed"]["int8"]
    assert not (tmp_path / "int8.tflite").exists()
    assert family["eval"] is None


def test_empty_calibration_file_is_no_calibration(tmp_path):
    empty = tmp_path / "calib.npz"
    np.savez(empty, x=np.zeros((0, 8), dtype=np.float32))
    with pytest.raises(ConversionError, match="needs --calibration data"):
        convert_variant(_tiny_model(), "int16x8", calibration=empty)


def test_sources_from_disk_and_token_ids(tmp_path):
    inp = tf.keras.Input(shape=(6,), dtype=tf.int32)
    h = tf.keras.layers.Embedding(20, 4)(inp)
    out = tf.keras.layers.Dense(2, activation="softmax")(tf.keras.layers.GlobalAveragePooling1D()(h))
    model = tf.keras.Model(inp, out)
    model.save(tmp_path / "m.keras")
    tf.saved_model.save(model, str(tmp_path / "saved"))
    ids = np.random.default_rng(1).integers(0, 20, size=(30, 6))
    for src in (tmp_path / "m.keras", tmp_path / "saved"):
        out_dir = tmp_path / f"out-{src.stem}"
        family = convert_family(src, out_dir, variants=("fp32", "int8"), calibration=ids, int8_io=True)
        int8 = family["variants"]["int8"]
        assert int8["inputs"][0]["dtype"] == "int32", src  # token ids stay int32 with int8_io
        assert "inference_input_type" not in int8["settings"]
        assert family["source"] == str(src)


def test_bad_source_and_variant(tmp_path):
    with pytest.raises(ConversionError, match="no such model"):
        convert_family(tmp_path / "missing.keras", tmp_path / "o")
    with pytest.raises(ConversionError, match="unknown variant"):
        convert_family(_tiny_model(), tmp_path / "o", variants=("fp8",))
