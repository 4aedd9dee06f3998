"""The user's own model inputs: --input-range, --input-data, --input-shape and --signature.

They are parsed and checked here on the host, kept in the plan (manifest "inputs", so --resume
sees them), merged per cell with the model family's own settings (family.json keys
input_ranges, input_data, input_shapes, signature; the command line wins) and sent as job fields.
Input and signature names are checked against every model file on the host before a run is created
(`check_names`); whether a shape or dtype fits is decided by the agent, per cell, in one sentence.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from benchbot.errors import BenchbotError
from benchbot.models.catalog import sha256_file

#: Job fields this module adds (the agent reads them; see agent.input_plan / load_input_data / ModelIO).
JOB_FIELDS = ("input_ranges", "input_data", "input_shapes", "signature")  # plus input_data_label
EVAL = "eval"
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"


def _number(text: str) -> int | float:
    return int(text) if re.fullmatch(r"[-+]?\d+", text) else float(text)


def _items(text: str, option: str, example: str) -> list[tuple[str, str]]:
    out = []
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        name, sep, value = item.rpartition("=")
        if not sep or not name.strip() or not value.strip():
            raise BenchbotError(f"{option} takes NAME=VALUE items, e.g. {example}; got '{item}'")
        out.append((name.strip(), value.strip()))
    if not out:
        raise BenchbotError(f"{option} is empty; give e.g. {example}")
    return out


def parse_ranges(text: str | None) -> dict[str, list[int | float]] | None:
    """"input_ids=0:30522,attention_mask=0:2" -> {name: [lo, hi]} (hi exclusive, like Python's range)."""
    if not text:
        return None
    out: dict[str, list[int | float]] = {}
    for name, value in _items(text, "--input-range", "input_ids=0:1000"):
        match = re.fullmatch(rf"({_NUMBER}):({_NUMBER})", value)
        if not match:
            raise BenchbotError(f"--input-range {name}={value}: expected LO:HI, e.g. {name}=0:1000")
        lo, hi = _number(match.group(1)), _number(match.group(2))
        if not lo < hi:
            raise BenchbotError(f"--input-range {name}={value}: LO must be below HI (HI is exclusive)")
        out[name] = [lo, hi]
    return out


def parse_shapes(text: str | None) -> dict[str, list[int]] | None:
    """"x=1x128" -> {name: [1, 128]}: the shape a dynamic (-1) input is run with."""
    if not text:
        return None
    out = {}
    for name, value in _items(text, "--input-shape", "input_ids=1x128"):
        if not re.fullmatch(r"\d+(x\d+)*", value) or any(int(d) < 1 for d in value.split("x")):
            raise BenchbotError(f"--input-shape {name}={value}: expected dimensions of 1 or more joined by x, "
                                f"e.g. {name}=1x128")
        out[name] = [int(d) for d in value.split("x")]
    return out


def check_data_file(text: str | None) -> str | None:
    """The absolute path of an --input-data .npz (or "eval": each family's eval set)."""
    if not text:
        return None
    if text == EVAL:
        return EVAL
    path = Path(text).expanduser()
    if not path.is_file():
        raise BenchbotError(f"--input-data {text}: no such file")
    with open(path, "rb") as fh:
        if fh.read(2) != b"PK":
            raise BenchbotError(f"--input-data {text} is not an .npz file (arrays named by model input)")
    return str(path.resolve())


def from_options(ranges: str | None, data: str | None, shapes: str | None, signature: str | None
                 ) -> dict[str, Any]:
    """The run-wide input settings (plan meta "inputs"), parsed and checked; {} when none was given."""
    out = {"input_ranges": parse_ranges(ranges), "input_data": check_data_file(data),
           "input_shapes": parse_shapes(shapes), "signature": signature or None}
    return {k: v for k, v in out.items() if v is not None}


def family_settings(model_path: str) -> dict[str, Any]:
    """input_ranges / input_data / input_shapes / signature from the family.json next to a model."""
    manifest = Path(model_path).parent / "family.json"
    if not manifest.is_file():
        return {}
    try:
        info = json.loads(manifest.read_text())
    except ValueError:
        return {}
    out = {k: info[k] for k in JOB_FIELDS if info.get(k)}
    if isinstance(out.get("input_data"), str) and out["input_data"] != EVAL:
        out["input_data"] = str(manifest.parent / out["input_data"])
    return out


def eval_file(model_path: str) -> Path | None:
    """The eval set of a model's family (family.json "eval", else eval.npz), if any."""
    folder = Path(model_path).parent
    name = "eval.npz"
    try:
        name = json.loads((folder / "family.json").read_text()).get("eval") or name
    except (OSError, ValueError):
        pass
    path = folder / name
    return path if path.is_file() else None


def check_eval_sources(settings: dict[str, Any], model_paths: list[str]) -> None:
    """--input-data eval needs an eval set for every model: say which lacks one, before anything runs."""
    if settings.get("input_data") != EVAL:
        return
    lacking = sorted({Path(p).parent.name if Path(p).parent.joinpath("family.json").is_file() else Path(p).name
                      for p in model_paths if eval_file(p) is None})
    if lacking:
        raise BenchbotError(f"--input-data eval: no eval set for {', '.join(lacking)}")


def check_names(settings: dict[str, Any], model_paths: list[str]) -> None:
    """The signature and input names the user gave must exist in every model of the run: one sentence, before
    a run is created (the agent would fail every cell with it). Names are matched as the agent matches them:
    signature input names, tensor names, or tensor names without the converter's prefix and suffix."""
    signature = settings.get("signature")
    options = [("--input-range", list(settings.get("input_ranges") or {})),
               ("--input-shape", list(settings.get("input_shapes") or {}))]
    data = settings.get("input_data")
    if data and data != EVAL:
        import numpy as np

        try:
            with np.load(data, allow_pickle=False) as arrays:
                options.append((f"--input-data {data} has array", list(arrays.files)))
        except (OSError, ValueError) as exc:
            raise BenchbotError(f"--input-data {data} cannot be read as an .npz file ({exc})") from None
    if not signature and not any(names for _, names in options):
        return
    from benchbot.agent import _short_name
    from benchbot.models.inspect import read_model

    for path in sorted(set(model_paths)):
        try:
            info = read_model(Path(path))
        except BenchbotError:  # no schema module on this host, or not readable: the agent says it per cell
            continue
        label = f"{Path(path).parent.name}/{Path(path).name}"
        keys = [s["key"] for s in info["signatures"]]
        if signature and signature not in keys:
            raise BenchbotError(f"--signature {signature}: {label} has no such signature "
                                f"(signatures: {', '.join(keys) or 'none'})")
        chosen = [s for s in info["signatures"] if s["key"] == signature] if signature else info["signatures"]
        tensors = [t["name"] for t in info["inputs"]] + [n for s in chosen for n in s["input_tensors"]]
        known = {n for s in chosen for n in s["inputs"]} | set(tensors) | {_short_name(n) for n in tensors}
        listing = ", ".join(chosen[0]["inputs"] if chosen else [_short_name(n) for n in tensors])
        for option, names in options:
            for name in names:
                if name not in known:
                    what = (f"{option} '{name}', which names no input" if option.endswith("has array")
                            else f"{option} names '{name}', which is not an input")
                    raise BenchbotError(f"{what} of {label} (inputs: {listing})")


def job_fields(settings: dict[str, Any] | None, model_path: str, push: Any) -> dict[str, Any]:
    """The job fields of one cell: the family's settings, overridden by the run's; the data file pushed.

    `push(local_path, sha256) -> remote path` puts a file on the device (content-addressed).
    """
    fields = {**family_settings(model_path), **(settings or {})}
    data = fields.get("input_data")
    if data:
        local = eval_file(model_path) if data == EVAL else Path(data)
        if local is None or not local.is_file():
            fields.pop("input_data")  # the agent then says nothing was given; the host checked "eval" up front
        else:
            fields["input_data"] = push(local, sha256_file(local))
            fields["input_data_label"] = local.name  # the device copy is named by its hash
    return fields
