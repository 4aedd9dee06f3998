"""From a stored run to tidy DataFrames: samples, telemetry and the per-cell summary.

This is where the agent's raw events meet `stats`; everything here is derived
and can be recomputed from the store at any time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from benchbot import delegation, stats

if TYPE_CHECKING:
    from benchbot.store import CellAttempt, Run

CELL_COLUMNS = ["run_id", "device", "model", "variant", "threads", "xnnpack", "batch"]
FLAGS = ("unstable", "throttled", "emulated", "few-samples", "incomplete", "failed")


def _cell_columns(run: Run, attempt: CellAttempt) -> dict[str, Any]:
    c = attempt.cell
    return {"run_id": run.run_id, "device": c.device, "model": c.model, "variant": c.variant,
            "threads": c.threads, "xnnpack": c.xnnpack, "batch": c.batch}


def samples_frame(run: Run) -> pd.DataFrame:
    """Every latency of the best attempt of every cell, in ms, in the order measured.

    The cell columns are expanded once from a per-row cell number, with run_id, device, model and
    variant as categoricals: 2 million samples take ~110 MB instead of ~500 MB at peak, and group faster.
    """
    parts, owners, order, cells = [], [], [], []
    for cell in run.cells:
        attempt = run.best(cell.key)
        if attempt is None:
            continue
        frame = attempt.samples()
        if frame.empty:
            continue
        parts.append(frame)
        owners.append(np.full(len(frame), len(cells), dtype=np.int32))
        order.append(frame.groupby("phase", observed=True).cumcount().to_numpy())
        cells.append(_cell_columns(run, attempt))
    columns = CELL_COLUMNS + ["phase", "i", "start_ns", "latency_ns", "latency_ms"]
    if not parts:
        return pd.DataFrame(columns=columns)
    owner = np.concatenate(owners)
    del owners
    data: dict[str, Any] = {}
    for name in CELL_COLUMNS:
        values = [c[name] for c in cells]
        if name in ("run_id", "device", "model", "variant"):
            labels = pd.Categorical(values)
            data[name] = pd.Categorical.from_codes(labels.codes[owner], labels.categories)
        else:
            data[name] = np.asarray(values)[owner]
    data["phase"] = union_categoricals([p["phase"].astype("category").array for p in parts])
    data["i"] = np.concatenate(order)
    data["start_ns"] = np.concatenate([p["start_ns"].to_numpy(dtype=np.int64) for p in parts])
    data["latency_ns"] = np.concatenate([p["latency_ns"].to_numpy(dtype=np.int64) for p in parts])
    data["latency_ms"] = data["latency_ns"] / 1e6
    return pd.DataFrame(data, columns=columns, copy=False)  # no consolidating copy of 2 x 80 MB


def _telemetry_rows(attempt: CellAttempt) -> list[dict[str, Any]]:
    end = attempt.first("cell_end") or {}
    readings = attempt.all("telemetry")
    origin = end.get("loop_start_ns") or (readings[0]["t_ns"] if readings else 0)
    rows = []
    for r in readings:
        temps = r.get("temps_c") or {}
        freqs = [f for f in (r.get("freq_hz") or []) if f]
        rows.append({
            "phase": r.get("phase"),
            "t_s": (r["t_ns"] - origin) / 1e9,
            "cpu_pct": r.get("cpu_pct"),
            "proc_cpu_pct": r.get("proc_cpu_pct"),
            "rss_mb": _mb(r.get("rss")),
            "rss_peak_mb": _mb(r.get("rss_peak")),
            "mem_available_mb": _mb(r.get("mem_available")),
            "temp_c": max(temps.values()) if temps else None,
            "freq_min_mhz": min(freqs) / 1e6 if freqs else None,
            "freq_max_mhz": max(freqs) / 1e6 if freqs else None,
            "temps_c": temps or None,
        })
    return rows


def telemetry_frame(run: Run) -> pd.DataFrame:
    """Background telemetry of every cell; t_s is seconds from the start of the timed loop."""
    frames = []
    for cell in run.cells:
        attempt = run.best(cell.key)
        if attempt is None:
            continue
        rows = _telemetry_rows(attempt)
        if rows:
            frames.append(pd.DataFrame(rows).assign(**_cell_columns(run, attempt)))
    columns = CELL_COLUMNS + ["phase", "t_s", "cpu_pct", "proc_cpu_pct", "rss_mb", "rss_peak_mb",
                              "mem_available_mb", "temp_c", "freq_min_mhz", "freq_max_mhz", "temps_c"]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def _mb(value: float | None) -> float | None:
    return None if value is None else value / (1024 * 1024)


def summarize_attempt(attempt: CellAttempt, emulated: bool = False) -> dict[str, Any]:
    """One row of the summary table: statistics, resources and validity flags of a cell attempt."""
    cell = attempt.cell
    samples = attempt.samples()
    loop = samples[samples["phase"] == "loop"]["latency_ns"].to_numpy() / 1e6
    row: dict[str, Any] = {"status": attempt.status, "reason": attempt.reason, "attempt": attempt.attempt}
    summary = stats.latency_summary(loop)
    for key, value in summary.items():
        row[key if key in ("count", "cv") else f"{key}_ms"] = value
    row["drift"] = stats.decile_drift(loop)

    start = attempt.first("cell_start") or {}
    init = attempt.first("init") or {}
    end = attempt.first("cell_end") or {}
    hello = attempt.first("hello") or {}
    fp = hello.get("fingerprint") or {}
    row.update(
        runtime=start.get("runtime") or fp.get("runtime"),
        runtime_version=start.get("runtime_version") or fp.get("runtime_version"),
        arch=fp.get("arch"),
        init_ms=init["init_ns"] / 1e6 if "init_ns" in init else None,
        first_ms=init["first_ns"] / 1e6 if "first_ns" in init else None,
        warmup_runs=end.get("warmup_runs"),
        loop_s=end["loop_ns"] / 1e9 if end.get("loop_ns") else None,
        throughput=stats.throughput(end.get("loop_runs", 0), end.get("loop_ns", 0)),
        samples_per_s=stats.throughput(end.get("loop_runs", 0), end.get("loop_ns", 0), cell.batch),
        hit_max_seconds=end.get("hit_max_seconds"),
        model_size=start.get("model_size") or cell.model_size,
        model_sha256=cell.model_sha256,
    )
    row.update(delegation.from_cell_start(start))  # why a variant is fast or slow: XNNPACK partitions

    telemetry = _telemetry_rows(attempt)
    loop_t = [t for t in telemetry if t["phase"] == "loop"] or [t for t in telemetry if t["phase"] in ("warmup",)]
    measured = [t for t in telemetry if t["phase"] in ("warmup", "loop", "first")]
    rss_peaks = [t["rss_peak_mb"] for t in telemetry if t["rss_peak_mb"] is not None]
    row["peak_rss_mb"] = _mb(end.get("rss_peak")) if end.get("rss_peak") else (max(rss_peaks) if rss_peaks else None)
    cpu = [t["cpu_pct"] for t in measured if t["cpu_pct"] is not None]
    proc = [t["proc_cpu_pct"] for t in measured if t["proc_cpu_pct"] is not None]
    row["cpu_mean"] = float(np.mean(cpu)) if cpu else None
    row["cpu_max"] = float(np.max(cpu)) if cpu else None
    row["proc_cpu_mean"] = float(np.mean(proc)) if proc else None
    temps = [t["temp_c"] for t in telemetry if t["temp_c"] is not None]
    if temps:
        row["temp_start_c"], row["temp_max_c"], row["temp_end_c"] = temps[0], max(temps), temps[-1]
    else:  # a Pi without thermal zones still answers vcgencmd
        vc_start, vc_end = end.get("vc_temp_start_c"), end.get("vc_temp_end_c")
        row["temp_start_c"], row["temp_end_c"] = vc_start, vc_end
        present = [t for t in (vc_start, vc_end) if t is not None]
        row["temp_max_c"] = max(present) if present else None
    lows = [t["freq_min_mhz"] for t in loop_t if t["freq_min_mhz"] is not None]
    row["freq_min_mhz"] = min(lows) if lows else None
    start_max = telemetry[0]["freq_max_mhz"] if telemetry else None

    flags = []
    if stats.is_unstable(row.get("cv"), row["drift"]):
        flags.append("unstable")
    if stats.frequency_dropped(start_max, row["freq_min_mhz"]) or stats.throttle_bits_appeared(
        end.get("throttled_before"), end.get("throttled_after")
    ):
        flags.append("throttled")
    if emulated:
        flags.append("emulated")
    weak = stats.few_samples(len(loop))
    if loop.size and weak:
        flags.append("few-samples")
    if attempt.status in ("incomplete", "failed"):
        flags.append(attempt.status)
    row["few_samples"] = ",".join(f"p{p}" for p in weak) if loop.size else ""
    row["flags"] = ",".join(flags)

    accuracy = attempt.first("accuracy")
    row["accuracy"] = accuracy.get("accuracy") if accuracy else None
    row["accuracy_n"] = accuracy.get("n") if accuracy else None
    # why accuracy is missing when the timing is not: the agent's non-fatal errors (a bad eval set)
    problems = [e.get("message") or e.get("kind") or "error" for e in attempt.all("error") if e.get("fatal") is False]
    row["accuracy_error"] = "; ".join(problems) if problems and not accuracy else None
    return row


def summary_frame(run: Run) -> pd.DataFrame:
    """One row per planned cell (pending ones too), with baseline comparisons filled in."""
    rows = []
    predictions: dict[str, list[int]] = {}
    for cell in run.cells:
        device = run.manifest.get("devices", {}).get(cell.device, {})
        attempt = run.best(cell.key)
        base = {"run_id": run.run_id, "device": cell.device, "model": cell.model, "variant": cell.variant,
                "threads": cell.threads, "xnnpack": cell.xnnpack, "batch": cell.batch, "key": cell.key,
                "baseline": cell.baseline, "order": cell.order}
        if attempt is None:
            rows.append({**base, "status": "pending", "flags": "incomplete", "model_size": cell.model_size,
                         "emulated": bool(device.get("emulated"))})
            continue
        row = summarize_attempt(attempt, emulated=bool(device.get("emulated")))
        row["emulated"] = bool(device.get("emulated"))
        rows.append({**base, **row})
        accuracy = attempt.first("accuracy")
        if accuracy and accuracy.get("predictions") is not None:
            predictions[cell.key] = accuracy["predictions"]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    _add_baseline_columns(frame, predictions)
    return frame


def _add_baseline_columns(frame: pd.DataFrame, predictions: dict[str, list[int]]) -> None:
    """Size ratio, accuracy change (points) and prediction agreement against each family's baseline."""
    frame["size_ratio"] = np.nan
    frame["accuracy_delta_pts"] = np.nan
    frame["agreement"] = np.nan
    group_keys = ["device", "model", "threads", "xnnpack", "batch"]
    for _, group in frame.groupby(group_keys, dropna=False):
        baseline_name = group["baseline"].dropna().iloc[0] if group["baseline"].notna().any() else None
        if baseline_name is None:
            continue
        base_rows = group[group["variant"] == baseline_name]
        if base_rows.empty:
            continue
        base = base_rows.iloc[0]
        base_pred = predictions.get(base["key"])
        for index, row in group.iterrows():
            if row.get("model_size") and base.get("model_size"):
                frame.at[index, "size_ratio"] = base["model_size"] / row["model_size"]
            if pd.notna(row.get("accuracy")) and pd.notna(base.get("accuracy")):
                frame.at[index, "accuracy_delta_pts"] = 100.0 * (row["accuracy"] - base["accuracy"])
            pred = predictions.get(row["key"])
            if pred is not None and base_pred is not None and len(pred) == len(base_pred) and pred:
                frame.at[index, "agreement"] = float(np.mean(np.asarray(pred) == np.asarray(base_pred)))
