"""Turn one trained model into a *family* of TFLite variants that benchbot can compare.

A family is a folder with one ``<variant>.tflite`` per quantization scheme, an optional
``eval.npz`` (inputs and labels, so accuracy can be measured on the device) and a
``family.json`` manifest. The manifest records the TensorFlow version that converted the
variants, because the converter decides which op versions a model uses and therefore which
runtimes can load it (TF 2.21 writes FULLY_CONNECTED v12, which tflite-runtime 2.14 refuses).

TensorFlow is an optional extra: it is imported only when a conversion actually runs.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchbot.errors import ConversionError, MissingTensorFlow

VARIANTS: tuple[str, ...] = ("fp32", "fp16", "dynamic", "int8", "int16x8")
"""Every variant name convert_family knows, in the order they are usually reported."""

DEFAULT_VARIANTS: tuple[str, ...] = ("fp32", "fp16", "dynamic", "int8")
CALIBRATION_SAMPLES = 200
"""Representative samples fed to the converter; more rarely changes the ranges it finds."""

_NEEDS_CALIBRATION = ("int8", "int16x8")
_KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


def _import_tf() -> Any:
    """Import TensorFlow on demand so the rest of benchbot runs without it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise MissingTensorFlow("model conversion needs TensorFlow: pip install 'benchbot[convert]'") from exc
    return tf


def _load_array(path: Path, key: str = "x") -> np.ndarray:
    """Read ``key`` (or the first array) from an .npz, or the array in an .npy."""
    if not path.is_file():
        raise ConversionError(f"no such file: {path}")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            if not data.files:
                return np.zeros((0,), dtype=np.float32)
            return np.asarray(data[key] if key in data.files else data[data.files[0]])
    if path.suffix == ".npy":
        return np.asarray(np.load(path, allow_pickle=False))
    raise ConversionError(f"calibration/eval data must be .npz or .npy: {path}")


def load_calibration(calibration: np.ndarray | str | Path | None) -> np.ndarray | None:
    """Return the calibration samples as an array, or None when there are none (or the file is empty)."""
    if calibration is None:
        return None
    arr = _load_array(Path(calibration)) if isinstance(calibration, (str, Path)) else np.asarray(calibration)
    if arr.ndim == 0 or arr.shape[0] == 0:
        return None
    return arr


def _reason(exc: BaseException) -> str:
    """The first line of a converter exception that says what went wrong (they are often 100 lines)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for ln in lines:
        if "error:" in ln:
            return ln.split("error:", 1)[1].strip()[:500] or ln[:500]
    for ln in lines:
        if not ln.startswith(("Traceback", "File ", "<unknown>:0: note")):
            return ln[:500]
    return type(exc).__name__


class _Source:
    """A loaded model: how to make a fresh converter, plus what its inputs look like."""

    def __init__(self, tf: Any, source: Any) -> None:
        self.tf = tf
        if isinstance(source, tf.keras.Model):
            model = source
            self.label = f"keras-model:{model.name}"
            self.make: Callable[[], Any] = lambda: tf.lite.TFLiteConverter.from_keras_model(model)
            self.input_dtypes = [tf.as_dtype(t.dtype) for t in model.inputs]
            return
        if not isinstance(source, (str, Path)):
            raise ConversionError(f"source must be a tf.keras.Model or a path, not {type(source).__name__}")
        path = Path(source)
        self.label = str(path)
        if path.is_dir():
            try:
                loaded = tf.saved_model.load(str(path))
                sig = loaded.signatures["serving_default"]
            except Exception as exc:  # noqa: BLE001 - any loader failure is a conversion failure
                raise ConversionError(f"cannot load SavedModel {path}: {_reason(exc)}") from exc
            specs = sig.structured_input_signature[1]
            self.input_dtypes = [tf.as_dtype(specs[k].dtype) for k in sorted(specs)]
            self.make = lambda: tf.lite.TFLiteConverter.from_saved_model(str(path))
            return
        if path.is_file() and path.suffix.lower() in _KERAS_SUFFIXES:
            try:
                model = tf.keras.models.load_model(str(path), compile=False)
            except Exception as exc:  # noqa: BLE001
                raise ConversionError(f"cannot load Keras model {path}: {_reason(exc)}") from exc
            self.make = lambda: tf.lite.TFLiteConverter.from_keras_model(model)
            self.input_dtypes = [tf.as_dtype(t.dtype) for t in model.inputs]
            return
        if not path.exists():
            raise ConversionError(f"no such model: {path}")
        raise ConversionError(f"expected a SavedModel folder or a .keras/.h5 file: {path}")

    @property
    def float_input(self) -> bool:
        return bool(self.input_dtypes) and all(d.is_floating for d in self.input_dtypes)

    def input_np_dtype(self) -> np.dtype:
        """float32 for float models (TFLite's float I/O), else the model's own integer dtype (token ids)."""
        d = self.input_dtypes[0]
        return np.dtype(np.float32) if d.is_floating else np.dtype(d.as_numpy_dtype)


def _configure(src: _Source, conv: Any, variant: str, calib: np.ndarray | None, int8_io: bool) -> dict:
    """Apply one variant's converter settings (the field notes' table); return them for the manifest."""
    tf = src.tf
    settings: dict[str, Any] = {}
    if variant == "fp32":
        return settings
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    settings["optimizations"] = ["DEFAULT"]
    if variant == "fp16":
        conv.target_spec.supported_types = [tf.float16]
        settings["supported_types"] = ["float16"]
    elif variant in _NEEDS_CALIBRATION:
        if calib is None:
            raise ConversionError(f"{variant} quantization needs --calibration data (representative inputs)")
        if len(src.input_dtypes) != 1:
            raise ConversionError(f"{variant}: calibration data supports single-input models only")
        samples = calib[:CALIBRATION_SAMPLES].astype(src.input_np_dtype(), copy=False)

        def representative() -> Iterator[list[np.ndarray]]:
            for i in range(len(samples)):
                yield [samples[i : i + 1]]

        conv.representative_dataset = representative
        settings["representative_samples"] = int(len(samples))
        if variant == "int8":
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            settings["supported_ops"] = ["TFLITE_BUILTINS_INT8"]
            if int8_io:
                # Token ids must stay int32: only float inputs become int8 (outputs are float scores).
                if src.float_input:
                    conv.inference_input_type = tf.int8
                    settings["inference_input_type"] = "int8"
                conv.inference_output_type = tf.int8
                settings["inference_output_type"] = "int8"
        else:
            ops = "EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8"
            conv.target_spec.supported_ops = [getattr(tf.lite.OpsSet, ops)]
            settings["supported_ops"] = [ops]
    elif variant != "dynamic":
        raise ConversionError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    return settings


def _convert_one(src: _Source, variant: str, calib: np.ndarray | None, int8_io: bool) -> tuple[bytes, dict]:
    conv = src.make()
    settings = _configure(src, conv, variant, calib, int8_io)
    try:
        return bytes(conv.convert()), settings
    except Exception as exc:  # noqa: BLE001 - the converter raises many types; all mean "this variant failed"
        raise ConversionError(_reason(exc)) from exc


def convert_variant(
    source: Any,
    variant: str,
    calibration: np.ndarray | str | Path | None = None,
    int8_io: bool = False,
) -> tuple[bytes, dict]:
    """Convert a single variant and return (flatbuffer bytes, settings); raises ConversionError."""
    tf = _import_tf()
    return _convert_one(_Source(tf, source), variant, load_calibration(calibration), int8_io)


def _describe(tf: Any, content: bytes) -> dict[str, Any]:
    """Inputs, outputs and op versions of a flatbuffer: what a runtime needs to support to load it."""
    info: dict[str, Any] = {}
    try:
        interp = tf.lite.Interpreter(model_content=content)

        def tensors(details: list[dict]) -> list[dict]:
            out = []
            for d in details:
                q = d.get("quantization_parameters", {})
                scales, zps = q.get("scales", []), q.get("zero_points", [])
                out.append(
                    {
                        "name": d["name"],
                        "dtype": np.dtype(d["dtype"]).name,
                        "shape": [int(s) for s in d["shape"]],
                        "shape_signature": [int(s) for s in d.get("shape_signature", d["shape"])],
                        "quantization": [float(scales[0]), int(zps[0])] if len(scales) == 1 else None,
                    }
                )
            return out

        info["inputs"] = tensors(interp.get_input_details())
        info["outputs"] = tensors(interp.get_output_details())
    except Exception:  # noqa: BLE001 - description is best effort; the file is still valid output
        pass
    try:
        from tensorflow.lite.python import schema_py_generated as schema

        names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        model = schema.Model.GetRootAsModel(content, 0)
        ops: dict[str, int] = {}
        for i in range(model.OperatorCodesLength()):
            code = model.OperatorCodes(i)
            op = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            name = names.get(op, str(op))
            if op == schema.BuiltinOperator.CUSTOM and code.CustomCode():
                name = "CUSTOM:" + code.CustomCode().decode()
            ops[name] = max(ops.get(name, 0), int(code.Version()))
        info["ops"] = dict(sorted(ops.items()))
    except Exception:  # noqa: BLE001 - internal schema module; skip the op list if it moves
        pass
    return info


def _write_eval(src: _Source, eval_set: Any, path: Path) -> None:
    """Store inputs in the dtype the fp32 model takes, so a runner can feed them without guessing."""
    if isinstance(eval_set, (str, Path)):
        p = Path(eval_set)
        x, y = _load_array(p, "x"), _load_array(p, "y")
    else:
        x, y = eval_set
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y) or len(x) == 0:
        raise ConversionError(
            f"eval set needs as many labels as inputs (got {len(x)} inputs, {len(y)} labels)"
        )
    np.savez_compressed(path, x=x.astype(src.input_np_dtype(), copy=False), y=y.astype(np.int64))


def convert_family(
    source: Any,
    out_dir: str | Path,
    variants: Sequence[str] = DEFAULT_VARIANTS,
    calibration: np.ndarray | str | Path | None = None,
    int8_io: bool = False,
    name: str | None = None,
    baseline: str = "fp32",
    eval_set: Any = None,
    extra: dict[str, Any] | None = None,
) -> dict:
    """Convert ``source`` into every requested variant under ``out_dir`` and write family.json.

    A variant that fails is listed under "failed" with the converter's reason; the others are
    still written, because one exotic scheme failing should not cost the whole comparison.
    Raises ConversionError only when the source cannot be loaded or no variant converted.
    """
    tf = _import_tf()
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ConversionError(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    src = _Source(tf, source)
    calib = load_calibration(calibration)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    done: dict[str, dict] = {}
    failed: dict[str, str] = {}
    for variant in variants:
        target = out / f"{variant}.tflite"
        try:
            content, settings = _convert_one(src, variant, calib, int8_io)
        except ConversionError as exc:
            failed[variant] = str(exc)
            target.unlink(missing_ok=True)  # never leave a stale file from an earlier run
            continue
        target.write_bytes(content)
        done[variant] = {
            "file": target.name,
            "size": len(content),
            "sha256": hashlib.sha256(content).hexdigest(),
            "settings": settings,
            **_describe(tf, content),
        }
    if not done:
        raise ConversionError("no variant converted: " + "; ".join(f"{k}: {v}" for k, v in failed.items()))

    eval_name = None
    if eval_set is not None:
        _write_eval(src, eval_set, out / "eval.npz")
        eval_name = "eval.npz"

    family: dict[str, Any] = {
        "format": "benchbot-family",
        "version": 1,
        "name": name or out.resolve().name,
        "baseline": baseline,
        "task": "classification",
        "source": src.label,
        "converter": {"tensorflow": tf.__version__},
        "eval": eval_name,
        "variants": done,
        "failed": failed,
        **(extra or {}),
    }
    (out / "family.json").write_text(json.dumps(family, indent=2) + "\n")
    return family
