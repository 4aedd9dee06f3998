"""The model zoo, inspecting models, and converting your own into variants: data in, data out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchbot.errors import BenchbotError

__all__ = ["ModelInspection", "convert_model", "inspect_models", "list_models"]


def list_models() -> list[Any]:
    """The zoo's model families (benchbot.models.catalog.ModelFamily), by name."""
    from benchbot.models.catalog import ZOO_DIR, load_family, zoo_families

    return [load_family(ZOO_DIR / name) for name in zoo_families()]


@dataclass
class ModelInspection:
    """One model's facts (benchbot.models.inspect.read_model) and the runtimes it was checked against."""

    info: dict[str, Any]
    checks: list[tuple[str, str, str]]

    def as_json(self) -> dict[str, Any]:
        """The facts with a `runtimes` list: who, runtime, version, can_run and why."""
        from benchbot.models.inspect import verdict

        info = dict(self.info)
        info["runtimes"] = [{"who": who, "runtime": r, "version": v, "can_run": verdict(self.info, r, v)[0],
                             "why": verdict(self.info, r, v)[1]} for who, r, v in self.checks]
        return info


def inspect_models(target: str, results: str | None = None) -> list[ModelInspection]:
    """Every model of TARGET (file, folder, zoo name) with the runtimes of known devices and past runs."""
    from benchbot.models.inspect import read_model, resolve, runtimes_to_check
    from benchbot.profiles import available_profiles, parse_profile
    from benchbot.store import results_root

    profiles = []
    for path in available_profiles().values():
        try:
            profiles.append(parse_profile(path))
        except BenchbotError:
            continue  # a broken profile is `devices list`'s business, not inspect's
    checks = runtimes_to_check(profiles, results_root(results))
    return [ModelInspection(read_model(path), checks) for path in resolve(target)]


def _tensorflow_present() -> bool:
    """Whether TensorFlow can be imported, without importing it (that takes seconds)."""
    import importlib.util

    try:
        return importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):  # ValueError: a module set to None in sys.modules (blocked)
        return False


def _read_npz_or_npy(path: Path, what: str) -> dict[str, Any]:
    """The arrays of a .npz (by name) or .npy (as "x"); one BenchbotError line for anything unreadable."""
    import numpy as np

    if not path.is_file():
        raise BenchbotError(f"{what} file {path} does not exist")
    if path.suffix not in (".npz", ".npy"):
        raise BenchbotError(f"{what} file {path} must be .npz or .npy")
    if path.stat().st_size == 0:
        raise BenchbotError(f"{what} file {path} is empty")
    try:
        if path.suffix == ".npy":
            return {"x": np.load(path, allow_pickle=False)}
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except Exception as exc:  # noqa: BLE001 - numpy raises many types for a corrupt file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BenchbotError(f"{what} file {path} cannot be read: {first}") from None


def convert_model(
    source: str | Path,
    out: str | Path,
    variants: list[str] | None = None,
    calibration: str | Path | None = None,
    int8_io: bool = False,
    name: str | None = None,
    eval_set: str | Path | None = None,
) -> dict[str, Any]:
    """Check the inputs, then benchbot.models.convert.convert_family (`benchbot models convert`).

    Returns the family manifest (also written to OUT/family.json); its "failed" maps each
    variant that did not convert to the converter's reason. Bad input and a missing
    TensorFlow are one-line BenchbotErrors, raised before anything is written.
    """
    import numpy as np

    from benchbot.models import convert as conv
    from benchbot.models.catalog import VARIANT_ORDER

    wanted = list(dict.fromkeys(variants or conv.DEFAULT_VARIANTS))
    if not _tensorflow_present():
        raise BenchbotError("model conversion needs TensorFlow: pip install 'benchbot[convert]'")
    unknown = [v for v in wanted if v not in conv.VARIANTS]
    if unknown or not wanted:
        raise BenchbotError(f"unknown variant(s) {', '.join(unknown) or '(none given)'}; "
                            f"choose from {', '.join(conv.VARIANTS)}")
    src = Path(source).expanduser()
    if not src.exists():
        raise BenchbotError(f"no such model: {src} (give a SavedModel folder or a .keras/.h5 file)")
    if src.is_dir() and not any((src / f).is_file() for f in ("saved_model.pb", "saved_model.pbtxt")):
        raise BenchbotError(f"{src} is not a SavedModel folder (no saved_model.pb); give a SavedModel folder or "
                            "a .keras/.h5 file")
    if src.is_file() and src.suffix.lower() not in (".keras", ".h5", ".hdf5"):
        raise BenchbotError(f"{src} is not a Keras model file (.keras, .h5) or a SavedModel folder")
    calib = None
    if calibration is not None:
        path = Path(calibration).expanduser()
        arrays = _read_npz_or_npy(path, "calibration")
        calib = arrays.get("x", next(iter(arrays.values()), None))
        if calib is None or calib.ndim == 0 or calib.shape[0] == 0:
            raise BenchbotError(f"calibration file {path} holds no samples")
    needing = [v for v in wanted if v in ("int8", "int16x8")]
    if needing and calib is None:
        raise BenchbotError(f"{' and '.join(needing)} need{'s' if len(needing) == 1 else ''} --calibration DATA: "
                            "representative inputs (.npy, or .npz with an array x)")
    evaluation = None
    if eval_set is not None:
        path = Path(eval_set).expanduser()
        arrays = _read_npz_or_npy(path, "eval")
        if "x" not in arrays or "y" not in arrays:
            raise BenchbotError(f"eval file {path} needs arrays x (inputs) and y (labels); it has "
                                f"{', '.join(arrays) or 'none'}")
        x, y = arrays["x"], np.asarray(arrays["y"]).reshape(-1)
        if x.ndim == 0 or len(x) == 0 or len(x) != len(y):
            raise BenchbotError(f"eval file {path}: x has {len(x) if x.ndim else 0} samples but y has {len(y)} labels")
        if y.dtype.kind not in "iu":
            raise BenchbotError(f"eval file {path}: labels y must be class indices (integers), not {y.dtype}")
        evaluation = (x, y)
    target = Path(out).expanduser()
    if target.exists() and not target.is_dir():
        raise BenchbotError(f"--out {target} is a file, not a folder")
    baseline = min(wanted, key=lambda v: VARIANT_ORDER.index(v))
    family = conv.convert_family(src, target, wanted, calib, int8_io=int8_io, name=name, baseline=baseline,
                                 eval_set=evaluation)
    if family["baseline"] not in family["variants"]:  # the baseline itself failed: compare with what converted
        family["baseline"] = min(family["variants"], key=lambda v: VARIANT_ORDER.index(v))
        import json

        (target / "family.json").write_text(json.dumps(family, indent=2) + "\n")
    return family
