"""Which model files a run benchmarks: zoo names, folders of variants, or single files.

A model *family* is one model in several variants (fp32, fp16, dynamic, int8, ...)
with a baseline variant that accuracy and size are compared against. A folder
with a `family.json` (written by `benchbot models convert` and the zoo build)
describes one; a plain folder of .tflite files is read as one family too.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from benchbot.errors import BenchbotError
from benchbot.models.verify import DamagedModel, verify_tflite
from benchbot.vocab import VARIANT_ORDER as VARIANT_ORDER  # re-exported: its home is benchbot.vocab
from benchbot.vocab import variant_key

ZOO_DIR = Path(__file__).resolve().parent / "zoo"


class ModelError(BenchbotError):
    """A model argument names nothing usable."""


@dataclass(frozen=True)
class ModelVariant:
    family: str
    variant: str
    path: Path
    sha256: str
    size: int
    eval_path: Path | None = None
    baseline: str | None = None


@dataclass
class ModelFamily:
    name: str
    folder: Path | None
    baseline: str | None
    variants: list[ModelVariant] = field(default_factory=list)
    info: dict = field(default_factory=dict)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_tflite(path: Path) -> None:
    """Refuse missing, non-TFLite or damaged files before anything runs (the FlatBuffer is walked, not run)."""
    if not path.exists():
        raise ModelError(f"model file {path} does not exist")
    if not path.is_file():
        raise ModelError(f"{path} is not a file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise ModelError(f"model file {path} cannot be read ({exc.strerror})") from None
    if len(head) < 8 or head[4:8] != b"TFL3":
        raise ModelError(f"{path} is not a TFLite model (no TFL3 FlatBuffer identifier); pass a .tflite file")
    try:
        verify_tflite(path)  # the whole FlatBuffer: a truncated file must not make a run that fails everywhere
    except DamagedModel as exc:
        raise ModelError(f"model file {path} is damaged or truncated: {exc}; replace it with a good copy") from None
    except OSError as exc:
        raise ModelError(f"model file {path} cannot be read ({exc.strerror})") from None


def zoo_families() -> list[str]:
    return sorted(p.parent.name for p in ZOO_DIR.glob("*/family.json"))


def load_family(folder: Path) -> ModelFamily:
    """A folder of variants, described by family.json when present."""
    manifest = folder / "family.json"
    if manifest.is_file():
        try:
            info = json.loads(manifest.read_text())
        except ValueError as exc:
            raise ModelError(f"{manifest} is not valid JSON ({exc})") from None
        name = info.get("name") or folder.name
        baseline = info.get("baseline")
        eval_name = info.get("eval")
        eval_path = folder / eval_name if eval_name else None
        if eval_path is not None and not eval_path.is_file():
            raise ModelError(f"{manifest} names eval set {eval_name}, which is missing")
        family = ModelFamily(name, folder, baseline, info=info)
        for variant, meta in sorted(info.get("variants", {}).items(), key=lambda kv: variant_key(kv[0])):
            path = folder / meta["file"]
            check_tflite(path)
            family.variants.append(
                ModelVariant(name, variant, path, meta.get("sha256") or sha256_file(path),
                             path.stat().st_size, eval_path, baseline)
            )
        if not family.variants:
            raise ModelError(f"{manifest} lists no variants")
        return family
    files = sorted(folder.glob("*.tflite"), key=lambda p: variant_key(p.stem))
    if not files:
        raise ModelError(f"folder {folder} holds no .tflite files")
    eval_path = folder / "eval.npz" if (folder / "eval.npz").is_file() else None
    baseline = "fp32" if any(p.stem == "fp32" for p in files) else files[0].stem
    family = ModelFamily(folder.name, folder, baseline)
    for path in files:
        check_tflite(path)
        family.variants.append(
            ModelVariant(folder.name, path.stem, path, sha256_file(path), path.stat().st_size, eval_path, baseline)
        )
    return family


def resolve_models(specs: list[str] | None, variants: list[str] | None = None) -> list[ModelFamily]:
    """Turn --models arguments (files, folders, zoo names; none = the whole zoo) into families."""
    if not specs:
        specs = zoo_families()
        if not specs:
            raise ModelError(f"the model zoo in {ZOO_DIR} is empty; pass --models PATH.tflite")
    families: list[ModelFamily] = []
    for spec in specs:
        label, spec = _split_label(spec)
        families.append(_renamed(_resolve_one(spec), label) if label else _resolve_one(spec))
    names = [f.name for f in families]
    for name in set(names):
        if names.count(name) > 1:
            raise ModelError(f"two models are both called '{name}'; name them with NAME=PATH (e.g. --models "
                             f"old={name}-old-folder,new={name}-new-folder) or rename one folder or file")
    if variants:
        wanted = set(variants)
        known = {v.variant for f in families for v in f.variants}
        unknown = wanted - known
        if unknown:
            raise ModelError(f"no model has variant(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")
        for family in families:
            family.variants = [v for v in family.variants if v.variant in wanted]
        families = [f for f in families if f.variants]
    return families


def _resolve_one(spec: str) -> ModelFamily:
    path = Path(spec).expanduser()
    if path.is_dir():
        return load_family(path)
    if path.suffix == ".tflite" or path.exists():
        check_tflite(path)
        return ModelFamily(path.stem, None, None,
                           [ModelVariant(path.stem, "model", path, sha256_file(path), path.stat().st_size)])
    if (ZOO_DIR / spec / "family.json").is_file():
        return load_family(ZOO_DIR / spec)
    zoo = ", ".join(zoo_families()) or "none"
    raise ModelError(f"'{spec}' is neither a .tflite file, a folder of variants nor a zoo model (zoo: {zoo})")


def _split_label(spec: str) -> tuple[str | None, str]:
    """`NAME=PATH` names a model, so two builds of one model (old and new) can share a run and be compared.

    A spec that exists as a file or folder is a path even when it holds '='.
    """
    if "=" not in spec or Path(spec).expanduser().exists():
        return None, spec
    label, _, target = spec.partition("=")
    label = label.strip()
    if not label or "/" in label or not label.isprintable():
        raise ModelError(f"'{spec}': a model name before '=' must be a non-empty printable name without '/'")
    if not target:
        raise ModelError(f"'{spec}' names no model after '='")
    return label, target


def _renamed(family: ModelFamily, name: str) -> ModelFamily:
    variants = [replace(v, family=name) for v in family.variants]
    return replace(family, name=name, variants=variants)
