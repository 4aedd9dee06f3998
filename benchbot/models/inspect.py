"""`benchbot models inspect`: what a .tflite file holds and which runtimes can load it.

Read from the FlatBuffer itself (the schema module that ships inside ai-edge-litert), so nothing
is loaded or pushed: inputs and outputs, signatures, op histogram with op versions, custom ops,
size and sha256, and the minimum runtime each op version needs (benchbot.models.op_versions).
`benchbot run` uses the same check to warn up front about devices whose runtime is known to be
too old for a model (a profile with runtime = "tflite_runtime" has at most tflite-runtime 2.14.0).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

from benchbot.errors import BenchbotError
from benchbot.models.catalog import check_tflite
from benchbot.models.op_versions import LITERT_AS_TF, TFLITE_RUNTIME_LAST, min_runtime, version_key


def _schema() -> Any:
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        try:
            from tensorflow.lite.python import schema_py_generated as schema
        except ImportError:
            raise BenchbotError("reading a model needs ai-edge-litert (its FlatBuffer schema module); "
                                "pip install ai-edge-litert") from None
    return schema


def _names(enum: Any) -> dict[int, str]:
    return {v: k for k, v in vars(enum).items() if not k.startswith("_") and isinstance(v, int)}


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")


def _tensor(schema_types: dict[int, str], tensor: Any) -> dict[str, Any]:
    quant = tensor.Quantization()
    scales = list(quant.ScaleAsNumpy()) if quant is not None and quant.ScaleLength() else []
    zeros = list(quant.ZeroPointAsNumpy()) if quant is not None and quant.ZeroPointLength() else []
    shape = [int(d) for d in tensor.ShapeAsNumpy()] if tensor.ShapeLength() else []
    signature = [int(d) for d in tensor.ShapeSignatureAsNumpy()] if tensor.ShapeSignatureLength() else shape
    return {
        "name": _text(tensor.Name()),
        "shape": shape,
        "shape_signature": signature,
        "dtype": schema_types.get(tensor.Type(), str(tensor.Type())).lower(),
        "quantization": ({"scale": float(scales[0]), "zero_point": int(zeros[0]) if zeros else 0}
                         if len(scales) == 1 else ({"scales": len(scales), "per_axis": True} if scales else None)),
    }


def read_model(path: Path) -> dict[str, Any]:
    """Everything `models inspect` prints about one .tflite file, from its bytes."""
    check_tflite(path)
    content = path.read_bytes()
    schema = _schema()
    try:
        model = schema.Model.GetRootAs(content, 0)
        ops_by_code = _names(schema.BuiltinOperator)
        types = _names(schema.TensorType)
        codes = []
        for i in range(model.OperatorCodesLength()):
            code = model.OperatorCodes(i)
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            custom = _text(code.CustomCode()) if code.CustomCode() else None
            name = ops_by_code.get(builtin, str(builtin))
            codes.append((f"CUSTOM:{custom}" if name == "CUSTOM" and custom else name, int(code.Version()), custom))
        counts: Counter[int] = Counter()
        for s in range(model.SubgraphsLength()):
            graph = model.Subgraphs(s)
            for o in range(graph.OperatorsLength()):
                counts[graph.Operators(o).OpcodeIndex()] += 1
        main = model.Subgraphs(0)
        inputs = [_tensor(types, main.Tensors(main.Inputs(i))) for i in range(main.InputsLength())]
        outputs = [_tensor(types, main.Tensors(main.Outputs(i))) for i in range(main.OutputsLength())]
        signatures = []
        for i in range(model.SignatureDefsLength()):
            sig = model.SignatureDefs(i)
            graph = model.Subgraphs(sig.SubgraphIndex())
            signatures.append({
                "key": _text(sig.SignatureKey()), "subgraph": int(sig.SubgraphIndex()),
                "inputs": [_text(sig.Inputs(j).Name()) for j in range(sig.InputsLength())],
                "input_tensors": [_text(graph.Tensors(sig.Inputs(j).TensorIndex()).Name())
                                  for j in range(sig.InputsLength())],
                "outputs": [_text(sig.Outputs(j).Name()) for j in range(sig.OutputsLength())],
            })
        subgraphs = model.SubgraphsLength()
    except Exception as exc:  # noqa: BLE001 - a damaged FlatBuffer raises anything from struct to IndexError
        raise BenchbotError(f"{path} cannot be read as a TFLite FlatBuffer ({type(exc).__name__}: {exc})") from None
    ops = []
    for index, (name, version, custom) in enumerate(codes):
        ops.append({"op": name, "version": version, "count": counts.get(index, 0),
                    "min_runtime": None if custom else min_runtime(name, version), "custom": bool(custom)})
    ops.sort(key=lambda o: (o["op"], o["version"]))
    known = [str(o["min_runtime"]) for o in ops if o["min_runtime"]]
    return {
        "path": str(path), "size": len(content), "sha256": hashlib.sha256(content).hexdigest(),
        "subgraphs": subgraphs, "inputs": inputs, "outputs": outputs, "signatures": signatures, "ops": ops,
        "custom_ops": sorted({str(o["op"]).split(":", 1)[1] for o in ops if o["custom"] and ":" in str(o["op"])}),
        "min_runtime": max(known, key=version_key) if known else None,
        "unknown_ops": [f"{o['op']} v{o['version']}" for o in ops if not o["custom"] and not o["min_runtime"]],
    }


def verdict(info: dict[str, Any], runtime: str, version: str) -> tuple[bool | None, str]:
    """(can it load the model: True/False/None = the table cannot say, one sentence why)."""
    as_tf = LITERT_AS_TF if runtime == "ai_edge_litert" else version
    label = f"{runtime} {version}"
    blocking = [o for o in info["ops"] if o["min_runtime"] and version_key(o["min_runtime"]) > version_key(as_tf)]
    if blocking:
        worst = ", ".join(f"{o['op']} version {o['version']} needs {o['min_runtime']}" for o in blocking)
        return False, f"{label} cannot run it: {worst}"
    if info["custom_ops"]:
        return None, f"{label}: custom ops {', '.join(info['custom_ops'])} must be registered by the runtime"
    if info["unknown_ops"]:
        return None, f"{label}: probably; not in benchbot's table: {', '.join(info['unknown_ops'])}"
    return True, f"{label} can run it (every op version needs {info['min_runtime'] or 'nothing newer'} or older)"


def installed_litert() -> str | None:
    try:
        from importlib.metadata import version

        return version("ai-edge-litert")
    except Exception:  # noqa: BLE001 - not installed
        return None


def runtimes_to_check(profiles: list[Any] | None = None, root: Path | None = None) -> list[tuple[str, str, str]]:
    """(who, runtime, version): tflite-runtime 2.14.0 always, the installed ai-edge-litert, and every
    device profile whose runtime is known (see known_runtime)."""
    out = [("tflite-runtime (Raspberry Pi OS pip)", "tflite_runtime", TFLITE_RUNTIME_LAST)]
    litert = installed_litert()
    if litert:
        out.append(("this machine", "ai_edge_litert", litert))
    profiles = profiles or []
    stored = stored_runtimes(root, profiles)
    for profile in profiles:
        known = known_runtime(profile, stored)
        if known:
            out.append((f"device {profile.name}", *known))
    return out


def stored_runtimes(root: Path | None, profiles: list[Any], limit: int = 30) -> dict[str, tuple[str, str]]:
    """The runtime and version each device reported in the newest stored run that reached it
    (emulated twins and real boards are told apart, since they have different runtimes)."""
    from benchbot.store import list_runs, read_jsonl

    wanted = {p.name: bool(getattr(p, "emulated", False)) for p in profiles}
    found: dict[str, tuple[str, str]] = {}
    for folder in reversed(list_runs(root)[-limit:]):
        try:
            devices = json.loads((folder / "manifest.json").read_text()).get("devices", {})
        except (OSError, ValueError):
            continue
        for event in reversed(read_jsonl(folder / "log.jsonl")):
            name = event.get("device")
            if event.get("event") != "device" or name not in wanted or name in found:
                continue
            if bool(devices.get(name, {}).get("emulated")) != wanted[name]:
                continue
            fp = event.get("fingerprint") or {}
            if fp.get("runtime") and fp.get("runtime_version"):
                found[name] = (fp["runtime"], fp["runtime_version"])
        if len(found) == len(wanted):
            break
    return found


def known_runtime(profile: Any, stored: dict[str, tuple[str, str]] | None = None) -> tuple[str, str] | None:
    """The runtime a device is known to have before anything runs: what its last stored run reported,
    else tflite-runtime 2.14.0 at most for a profile pinned to runtime = "tflite_runtime"."""
    pinned = getattr(profile, "runtime", "auto")
    last = (stored or {}).get(profile.name)
    if last and pinned in ("auto", last[0]):
        return last
    if pinned == "tflite_runtime":
        return "tflite_runtime", TFLITE_RUNTIME_LAST
    return None


def run_warnings(profiles: list[Any], model_paths: list[str], root: Path | None = None) -> list[str]:
    """One sentence per device and model its known runtime cannot load (the cells still run)."""
    out = []
    cache: dict[str, dict[str, Any]] = {}
    stored = stored_runtimes(root, profiles)
    for profile in profiles:
        known = known_runtime(profile, stored)
        if known is None:
            continue
        for path in dict.fromkeys(model_paths):
            try:
                info = cache.setdefault(path, read_model(Path(path)))
            except BenchbotError:
                continue
            ok, why = verdict(info, *known)
            if ok is False:
                out.append(f"{profile.name}: {Path(path).parent.name}/{Path(path).name}: {why}; "
                           "its cells will run and fail in the runtime's own words")
    return out


def describe(info: dict[str, Any], checks: list[tuple[str, str, str]]) -> list[str]:
    """The text `benchbot models inspect` prints for one model."""
    def tensor(t: dict[str, Any]) -> str:
        q = t["quantization"]
        quant = (f", scale {q['scale']:.6g} zero point {q['zero_point']}" if q and "scale" in q else
                 (", per-axis quantized" if q else ""))
        dynamic = f" (signature {t['shape_signature']})" if t["shape_signature"] != t["shape"] else ""
        return f"    {t['name']}: {t['dtype']} {t['shape']}{dynamic}{quant}"

    lines = [f"{info['path']}", f"  size {info['size']:,} bytes, sha256 {info['sha256']}"]
    lines.append("  inputs:")
    lines += [tensor(t) for t in info["inputs"]]
    lines.append("  outputs:")
    lines += [tensor(t) for t in info["outputs"]]
    if info["signatures"]:
        lines.append("  signatures: " + "; ".join(
            f"{s['key']} ({', '.join(s['inputs'])} -> {', '.join(s['outputs'])})" for s in info["signatures"]))
    lines.append(f"  ops ({sum(o['count'] for o in info['ops'])} in {info['subgraphs']} subgraph"
                 f"{'s' if info['subgraphs'] != 1 else ''}), version, minimum runtime:")
    for o in info["ops"]:
        need = "custom" if o["custom"] else (o["min_runtime"] or "not in table")
        lines.append(f"    {o['op']:<28} x{o['count']:<4} v{o['version']:<3} {need}")
    lines.append(f"  custom ops: {', '.join(info['custom_ops']) or 'none'}")
    lines.append(f"  needs at least: {info['min_runtime'] or 'unknown'} (TensorFlow / tflite-runtime version)")
    for who, runtime, version in checks:
        lines.append(f"  {who}: {verdict(info, runtime, version)[1]}")
    return lines


def resolve(target: str) -> list[Path]:
    """A .tflite file, a folder of variants or a zoo name (every variant)."""
    from benchbot.models.catalog import resolve_models

    return [v.path for family in resolve_models([target]) for v in family.variants]
