"""From a stored run to tidy DataFrames: samples, telemetry, repetitions and the per-cell summary.

This is where the agent's raw events meet `stats`; everything here is derived
and can be recomputed from the store at any time. The store reads and writes and
knows nothing of this module; `Run` adds the frames to a `store.StoredRun`. A cell's
headline latency and its interval come from its repetitions (one agent process each), never from
pooling thousands of samples of one process as if they were independent.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from benchbot import delegation, history, power, stats
from benchbot.store import CellAttempt, SampleRows, StoredRun, open_run
from benchbot.vocab import CELL_KEY

CELL_COLUMNS = CELL_KEY
FLAGS = ("unstable", "throttled", "emulated", "few-samples", "one-repetition", "power-few-readings", "incomplete",
         "damaged", "failed")


class Run(StoredRun):
    """A loaded run: its manifest, every cell attempt, and tidy DataFrames built on demand (and cached)."""

    def _frame(self, name: str, build: Any) -> pd.DataFrame:
        if name not in self._cache:
            self._cache[name] = build(self)
        return self._cache[name]

    @property
    def samples(self) -> pd.DataFrame:
        """Every latency of every repetition, in ms, in the order measured (`samples_frame`)."""
        return self._frame("samples", samples_frame)

    @property
    def telemetry(self) -> pd.DataFrame:
        """The background readings of every repetition, on the clock of its timed loop (`telemetry_frame`)."""
        return self._frame("telemetry", telemetry_frame)

    @property
    def repetition_summary(self) -> pd.DataFrame:
        """One row per repetition (agent process) of every cell: what `summary` aggregates."""
        return self._frame("repetition_summary", repetition_frame)

    @property
    def summary(self) -> pd.DataFrame:
        """One row per planned cell: the headline and next-run interval from its repetitions (`summary_frame`)."""
        return self._frame("summary", summary_frame)


def load_run(run: str | os.PathLike[str] | None = None, results: str | os.PathLike[str] | None = None) -> Run:
    """Load a run (id, id prefix, folder, or None for the latest) for tables, plots or a notebook.

    `run.summary`, `run.samples` and `run.telemetry` are tidy pandas DataFrames.
    """
    return open_run(run, results, cls=Run)


def _cell_columns(run: StoredRun, attempt: CellAttempt) -> dict[str, Any]:
    c = attempt.cell
    return {"run_id": run.run_id, "device": c.device, "model": c.model, "variant": c.variant,
            "threads": c.threads, "xnnpack": c.xnnpack, "batch": c.batch, "repetition": attempt.repetition}


def _attempts(run: StoredRun) -> list[CellAttempt]:
    """The best attempt of every repetition of every cell, in plan order."""
    return [a for cell in run.cells for a in run.repetitions(cell.key).values()]


def samples_frame(run: Run) -> pd.DataFrame:
    """Every latency of every repetition of every cell (its best attempt), in ms, in the order measured.

    The cell columns are expanded once from a per-row owner number, with run_id, device, model and
    variant as categoricals: 2 million samples take ~110 MB instead of ~500 MB at peak, and group faster.
    """
    parts: list[SampleRows] = []
    cells: list[dict[str, Any]] = []
    for attempt in _attempts(run):
        rows = attempt.sample_rows()
        if len(rows):
            parts.append(rows)
            cells.append(_cell_columns(run, attempt))
    columns = CELL_COLUMNS + ["repetition", "phase", "i", "start_ns", "latency_ns", "latency_ms"]
    if not parts:
        return pd.DataFrame(columns=columns)
    counts = [len(p) for p in parts]
    data: dict[str, Any] = {}
    for name in CELL_COLUMNS + ["repetition"]:
        # np.repeat of one value per attempt: a block copy, cheaper than gathering by a per-row owner number
        values = [c[name] for c in cells]
        if name in ("run_id", "device", "model", "variant"):
            labels = pd.Categorical(values)
            data[name] = pd.Categorical.from_codes(np.repeat(labels.codes, counts), labels.categories,
                                                   validate=False)  # codes taken from labels: valid
        else:
            data[name] = np.repeat(np.asarray(values), counts)
    # the phase categories in order of first appearance, as union_categoricals of the attempts' phases gives them
    phases = list(dict.fromkeys(p for rows in parts for p in rows.phases))
    codes = np.empty(sum(counts), np.int8)
    at = 0
    for rows in parts:
        remap = np.array([phases.index(p) for p in rows.phases] + [-1], dtype=np.int8)  # -1 stays -1 (no phase)
        np.take(remap, rows.codes, out=codes[at:at + len(rows)])
        at += len(rows)
    data["phase"] = pd.Categorical.from_codes(codes, phases, validate=False)
    data["i"] = _order_in_phase(codes, counts)
    data["start_ns"] = np.concatenate([p.start_ns for p in parts])
    data["latency_ns"] = np.concatenate([p.latency_ns for p in parts])
    data["latency_ms"] = data["latency_ns"] / 1e6
    return pd.DataFrame(data, columns=columns, copy=False)  # no consolidating copy of 2 x 80 MB


def _order_in_phase(codes: np.ndarray, counts: list[int]) -> np.ndarray:
    """Each sample's position within its phase of its attempt (what groupby([attempt, phase]).cumcount() gives).

    Works on runs of equal phase within an attempt (a few per attempt), so every step over the 2 million rows
    is one vectorised pass; a mask per attempt and phase was a fifth of building the samples frame.
    """
    n = len(codes)
    if n == 0:
        return np.empty(0, np.int64)
    bounds = np.cumsum([0, *counts])
    starts = np.union1d(bounds[:-1][np.asarray(counts) > 0], np.flatnonzero(codes[1:] != codes[:-1]) + 1)
    lengths = np.diff(np.append(starts, n))
    # a run's key: its attempt and its phase; its first sample's position is what earlier runs of that key hold
    key = (np.searchsorted(bounds, starts, side="right") - 1) * 256 + (codes[starts].astype(np.int64) + 1)
    by_key = np.argsort(key, kind="stable")
    sorted_lengths = lengths[by_key]
    before = np.cumsum(sorted_lengths) - sorted_lengths
    first = np.r_[True, key[by_key][1:] != key[by_key][:-1]]
    prior = np.empty(len(starts), np.int64)
    prior[by_key] = before - np.maximum.accumulate(np.where(first, before, 0))
    out = np.arange(n, dtype=np.int64)
    out -= np.repeat(starts - prior, lengths)
    return out


_MIB = 1024 * 1024


def _origin(attempt: CellAttempt) -> int:
    """The telemetry clock's zero: the start of the timed loop, else the first reading."""
    end = attempt.first("cell_end") or {}
    t_ns = attempt.telemetry_columns()["t_ns"]
    return end.get("loop_start_ns") or (t_ns[0] if t_ns else 0)


def _telemetry_rows(attempt: CellAttempt) -> list[dict[str, Any]]:
    """The attempt's telemetry readings as flat rows (cached on the attempt), for benchbot.power and plots."""
    cached = attempt.cache.get("telemetry_rows")
    if cached is None:
        cached = attempt.cache["telemetry_rows"] = _build_telemetry_rows(attempt)
    return cached


def _build_telemetry_rows(attempt: CellAttempt) -> list[dict[str, Any]]:
    cols = _telemetry_values(attempt)
    names = list(cols)
    return [dict(zip(names, values)) for values in zip(*cols.values())]


def _telemetry_values(attempt: CellAttempt) -> dict[str, list[Any]]:
    """The telemetry rows' columns: t_s from the start of the timed loop, memory in MiB, frequencies in MHz."""
    cached = attempt.cache.get("telemetry_values")
    if cached is not None:
        return cached
    raw = attempt.telemetry_columns()
    origin = _origin(attempt)

    def scaled(name: str, by: float) -> list[Any]:
        return [None if v is None else v / by for v in raw[name]]

    cached = attempt.cache["telemetry_values"] = {
        "phase": raw["phase"],
        "t_s": [(t - origin) / 1e9 for t in raw["t_ns"]],
        "cpu_pct": raw["cpu_pct"],
        "proc_cpu_pct": raw["proc_cpu_pct"],
        "rss_mb": scaled("rss", _MIB),
        "rss_peak_mb": scaled("rss_peak", _MIB),
        "mem_available_mb": scaled("mem_available", _MIB),
        "temp_c": raw["temp_c"],
        "freq_min_mhz": scaled("freq_min_hz", 1e6),
        "freq_max_mhz": scaled("freq_max_hz", 1e6),
        "temps_c": raw["temps_c"],
        "power_w": raw["power_w"], "rails_w": raw["rails_w"],  # absent stays None (benchbot/power.py)
        "energy_uj": raw["energy_uj"], "cpu_core_pct": raw["cpu_core_pct"],
    }
    return cached


def telemetry_frame(run: Run) -> pd.DataFrame:
    """Background telemetry of every repetition of every cell; t_s is seconds from the start of its timed loop.

    Built from the raw telemetry columns, the scaled ones divided as arrays: the same values as
    `_telemetry_values` (which plots use), without a Python float per reading per column (~15 MiB and a
    fifth of the time on a 200-cell run).
    """
    columns = CELL_COLUMNS + ["repetition", "phase", "t_s", "cpu_pct", "proc_cpu_pct", "rss_mb", "rss_peak_mb",
                              "mem_available_mb", "temp_c", "freq_min_mhz", "freq_max_mhz", "temps_c", "power_w",
                              "rails_w"]
    found: list[tuple[dict[str, list[Any]], int]] = []
    counts, cells = [], []
    for attempt in _attempts(run):
        raw = attempt.telemetry_columns()
        if raw["t_ns"]:
            found.append((raw, _origin(attempt)))
            counts.append(len(raw["t_ns"]))
            cells.append(_cell_columns(run, attempt))
    if not found:
        return pd.DataFrame(columns=columns)
    # one frame from all rows, the cell columns repeated per owner: not 200 small frames and a concat
    owner = np.repeat(np.arange(len(cells)), counts)
    data: dict[str, Any] = {}
    for name in CELL_COLUMNS + ["repetition"]:
        data[name] = np.asarray([c[name] for c in cells], dtype=object if name in ("run_id", "device", "model",
                                                                              "variant") else None)[owner]
    data["t_s"] = pd.Series(np.concatenate([_seconds(raw["t_ns"], origin) for raw, origin in found]))
    for name in columns[len(CELL_COLUMNS) + 1:]:
        if name in _SCALED:
            source, by = _SCALED[name]
            data[name] = _scaled_series([v for raw, _ in found for v in raw[source]], by)
        elif name != "t_s":
            # inferred as DataFrame(rows) would: None -> NaN, all None stays object
            data[name] = pd.Series([v for raw, _ in found for v in raw[name]])
    return pd.DataFrame(data, columns=columns, copy=False)  # the columns are new: no consolidating copy


#: The telemetry frame's columns that are a raw telemetry column divided: (raw column, divisor), as in
#: `_telemetry_values`.
_SCALED = {"rss_mb": ("rss", _MIB), "rss_peak_mb": ("rss_peak", _MIB), "mem_available_mb": ("mem_available", _MIB),
           "freq_min_mhz": ("freq_min_hz", 1e6), "freq_max_mhz": ("freq_max_hz", 1e6)}
_NUMBERS = {int, float, bool, type(None)}


def _seconds(t_ns: list[Any], origin: Any) -> np.ndarray:
    """(t - origin) / 1e9 per reading: int64 differences (exact, as Python's) divided as float64, else per value."""
    if type(origin) is int and set(map(type, t_ns)) == {int}:
        try:
            return (np.array(t_ns, dtype=np.int64) - np.int64(origin)) / 1e9
        except OverflowError:
            pass
    return np.array([(t - origin) / 1e9 for t in t_ns], dtype=float)


def _scaled_series(values: list[Any], by: float) -> pd.Series:
    """pd.Series of v / by (None stays missing), as from the list of quotients: float64 with NaN, or object when
    every value is None. Numbers are divided as float64 arrays: an int converts to the same double Python's
    division uses, and dividing by 2**20 is exact scaling."""
    kinds = set(map(type, values))
    if values and kinds <= _NUMBERS and kinds != {type(None)}:
        return pd.Series(np.array(values, dtype=float) / by)
    return pd.Series([None if v is None else v / by for v in values])


def _mb(value: float | None) -> float | None:
    return None if value is None else value / (1024 * 1024)


def _loop_ms(attempt: CellAttempt) -> np.ndarray:
    return attempt.sample_rows().latency("loop") / 1e6


def summarize_attempt(attempt: CellAttempt, emulated: bool = False) -> dict[str, Any]:
    """Statistics, resources and validity flags of one repetition (one agent process) of a cell.

    Its p50 interval (`p50_ci_*`) is within-run: about this process's samples only.
    """
    cell = attempt.cell
    loop = _loop_ms(attempt)
    row: dict[str, Any] = {"status": attempt.status, "reason": attempt.reason, "attempt": attempt.attempt,
                           "repetition": attempt.repetition}
    summary = stats.latency_summary(loop)
    row["_latency"] = summary  # the same samples pooled alone give the same figures (summary_frame reuses them)
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

    # the raw columns, not rows: ~350 readings per repetition. Scaled once here (a min or max divided, not every
    # reading: division by a positive constant keeps the order, so the figures are the same) rather than through
    # _telemetry_values, which only the telemetry frame and plots need
    tele = attempt.telemetry_columns()
    phases = tele["phase"]
    in_loop = [ph == "loop" for ph in phases]
    if not any(in_loop):
        in_loop = [ph == "warmup" for ph in phases]
    timed = [ph in ("warmup", "loop", "first") for ph in phases]
    rss_peaks = [v for v in tele["rss_peak"] if v is not None]
    row["peak_rss_mb"] = _mb(end.get("rss_peak")) if end.get("rss_peak") else (max(rss_peaks) / _MIB if rss_peaks
                                                                                 else None)
    cpu = [v for v, m in zip(tele["cpu_pct"], timed) if m and v is not None]
    proc = [v for v, m in zip(tele["proc_cpu_pct"], timed) if m and v is not None]
    row["cpu_mean"] = float(np.mean(cpu)) if cpu else None
    row["cpu_max"] = float(np.max(cpu)) if cpu else None
    row["proc_cpu_mean"] = float(np.mean(proc)) if proc else None
    temps = [v for v in tele["temp_c"] if v is not None]
    if temps:
        row["temp_start_c"], row["temp_max_c"], row["temp_end_c"] = temps[0], max(temps), temps[-1]
    else:  # a Pi without thermal zones still answers vcgencmd
        vc_start, vc_end = end.get("vc_temp_start_c"), end.get("vc_temp_end_c")
        row["temp_start_c"], row["temp_end_c"] = vc_start, vc_end
        present = [t for t in (vc_start, vc_end) if t is not None]
        row["temp_max_c"] = max(present) if present else None
    lows = [v for v, m in zip(tele["freq_min_hz"], in_loop) if m and v is not None]
    row["freq_min_mhz"] = min(lows) / 1e6 if lows else None
    first_max = tele["freq_max_hz"][0] if phases else None
    start_max = None if first_max is None else first_max / 1e6
    source = next(iter(fp.get("power_sources") or []), None)
    # power.py reads the rows only for a power source or cpufreq time_in_state; otherwise its figures are the same
    # without them, and building ~350 row dicts per repetition is skipped
    wanted = bool(end.get("power") or source or end.get("time_in_state"))
    row.update(power.cell_figures(_telemetry_rows(attempt) if wanted else [], end, source))

    flags = []
    if stats.is_unstable(row.get("cv"), row["drift"]):
        flags.append("unstable")
    if stats.frequency_dropped(start_max, row["freq_min_mhz"]) or stats.throttle_bits_appeared(
        end.get("throttled_before"), end.get("throttled_after")
    ) or row["throttled_forensics"]:
        flags.append("throttled")
    if emulated:
        flags.append("emulated")
    weak = stats.few_samples(len(loop))
    if loop.size and weak:
        flags.append("few-samples")
    if row["power_few_readings"]:
        flags.append("power-few-readings")
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


def repetition_frame(run: Run) -> pd.DataFrame:
    """One row per repetition of every cell (its best attempt): what `summary_frame` aggregates.

    Latency columns here are about one agent process; `p50_ci_lo_ms`/`p50_ci_hi_ms` are its
    within-run interval, which says nothing about the next run.
    """
    rows = []
    for attempt in _attempts(run):
        device = run.manifest.get("devices", {}).get(attempt.cell.device, {})
        row = summarize_attempt(attempt, emulated=bool(device.get("emulated")))
        row.pop("_latency")
        rows.append({**_cell_columns(run, attempt), "key": attempt.cell.key, **row})
    return pd.DataFrame(rows)


#: Columns of a repetition that the cell reports as the median over its repetitions.
_MEDIAN_OVER_REPS = ("init_ms", "first_ms", "warmup_runs", "cpu_mean", "proc_cpu_mean")


def _measured(cell_reps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The repetitions a cell's headline comes from: those that finished, else whatever has a median."""
    measured = [r for r in cell_reps if r["status"] == "ok" and r.get("p50_ms") is not None]
    return measured or [r for r in cell_reps if r.get("p50_ms") is not None]


def _aggregate(cell_reps: list[dict[str, Any]], planned: int, pooled_loop_ms: np.ndarray | None, batch: int,
               spread: stats.RunSpread | None = None, pooled: dict[str, Any] | None = None) -> dict[str, Any]:
    """A cell's row from its repetitions' rows: headline and interval across repetitions, pooled percentiles.

    `spread` is the device's run-to-run spread learned from its other runs (benchbot.history), which
    the next-run interval adds to the repetitions' own; `pooled` is stats.latency_summary of pooled_loop_ms
    when the caller has it (pooled_loop_ms may then be None: only its count, pooled["count"], is read).
    """
    measured = _measured(cell_reps)
    first = min(cell_reps, key=lambda r: r["repetition"])
    row: dict[str, Any] = {"repetitions": planned, "reps_ok": sum(1 for r in cell_reps if r["status"] == "ok")}
    if pooled is None:
        pooled = stats.latency_summary(np.empty(0) if pooled_loop_ms is None else pooled_loop_ms)
    pooled_n = int(pooled["count"] or 0) if pooled_loop_ms is None else int(pooled_loop_ms.size)
    for key, value in pooled.items():  # every percentile but the headline is over the pooled loop samples
        if key not in ("p50_ci_lo", "p50_ci_hi"):
            row[key if key in ("count", "cv") else f"{key}_ms"] = value
    estimate = stats.next_run_interval([r["p50_ms"] for r in measured], spread=spread)
    row["rep_p50_ms"] = [float(r["p50_ms"]) for r in sorted(measured, key=lambda r: r["repetition"])]
    row["p50_ms"] = estimate.value if estimate else None
    row["p50_ci_lo_ms"] = estimate.lo if estimate else None
    row["p50_ci_hi_ms"] = estimate.hi if estimate else None
    row["rep_cv"] = estimate.cv if estimate else None
    row["run_sd"] = spread.sd if spread else None
    row["run_sd_runs"] = spread.runs if spread else 0
    drifts = [r["drift"] for r in measured if r.get("drift") is not None]
    row["drift"] = max(drifts) if drifts else None
    for key in _MEDIAN_OVER_REPS:
        values = [r[key] for r in measured if r.get(key) is not None]
        row[key] = float(np.median(values)) if values else None
    for key in ("runtime", "runtime_version", "arch", "model_size", "model_sha256", *delegation.COLUMNS):
        row[key] = next((r[key] for r in measured if r.get(key) is not None), first.get(key))
    runs = sum(int(r.get("count") or 0) for r in measured)
    loop_s = sum(float(r.get("loop_s") or 0.0) for r in measured)
    row["loop_s"] = loop_s or None
    row["throughput"] = stats.throughput(runs, int(loop_s * 1e9))
    row["samples_per_s"] = stats.throughput(runs, int(loop_s * 1e9), batch)
    row["hit_max_seconds"] = any(bool(r.get("hit_max_seconds")) for r in measured)
    for key, pick in (("peak_rss_mb", max), ("cpu_max", max), ("temp_max_c", max), ("freq_min_mhz", min)):
        values = [r[key] for r in measured if r.get(key) is not None]
        row[key] = pick(values) if values else None
    row.update(_power_over_repetitions(measured))
    by_time = sorted(measured, key=lambda r: r["repetition"])  # round r runs repetition r
    starts = [r["temp_start_c"] for r in by_time if r.get("temp_start_c") is not None]
    ends = [r["temp_end_c"] for r in by_time if r.get("temp_end_c") is not None]
    row["temp_start_c"] = starts[0] if starts else None
    row["temp_end_c"] = ends[-1] if ends else None

    flags = []
    if estimate and estimate.k >= 2:
        if estimate.cv is not None and estimate.cv > stats.UNSTABLE_REP_CV:
            flags.append("unstable")
    elif measured and "unstable" in str(measured[0].get("flags", "")):
        flags.append("unstable")  # one repetition: only its own spread and drift can say so
    if any("throttled" in str(r.get("flags", "")) for r in measured):
        flags.append("throttled")
    if row["power_few_readings"]:
        flags.append("power-few-readings")
    weak = stats.few_samples(pooled_n)
    if pooled_n and weak:
        flags.append("few-samples")
    if estimate and estimate.k == 1 and planned >= 1:
        flags.append("one-repetition")
    row["few_samples"] = ",".join(f"p{p}" for p in weak) if pooled_n else ""
    row["_flags"] = flags
    return row


def _joined(values: list[Any], sep: str = ",") -> str | None:
    """The distinct items of several repetitions' lists, in order of first appearance."""
    seen = dict.fromkeys(p.strip() for v in values if v for p in str(v).split(sep.strip()) if p.strip())
    return sep.join(seen) or None


def _power_over_repetitions(reps: list[dict[str, Any]]) -> dict[str, Any]:
    """The cell's power, energy and thermal forensics from its repetitions (benchbot.power per repetition).

    Energy per inference is the energy of every repetition's loop over all their inferences, and mean power
    that energy over their loop time, so short repetitions weigh what they measured. Few readings is judged
    on the readings of all repetitions together.
    """
    powered = [r for r in reps if r.get("energy_loop_j") is not None]
    out: dict[str, Any] = {
        "power_source": next((r["power_source"] for r in reps if r.get("power_source")), None),
        "power_total": next((r["power_total"] for r in reps if r.get("power_total")), None),
        "power_mean_w": None, "power_peak_w": None, "energy_loop_j": None, "energy_per_inference_mj": None,
        "rails_mean_w": next((r["rails_mean_w"] for r in reps if r.get("rails_mean_w")), None),
        "power_readings": sum(int(r.get("power_readings") or 0) for r in reps) if powered else None,
    }
    idle = [r["idle_power_w"] for r in reps if r.get("idle_power_w") is not None]
    out["idle_power_w"] = float(np.median(idle)) if idle else None
    if powered:
        energy = sum(float(r["energy_loop_j"]) for r in powered)
        seconds = sum(float(r.get("loop_s") or 0.0) for r in powered)
        runs = sum(int(r.get("count") or 0) for r in powered)
        out["energy_loop_j"] = energy
        out["power_mean_w"] = energy / seconds if seconds > 0 else None
        out["power_peak_w"] = max(float(r["power_peak_w"]) for r in powered if r.get("power_peak_w") is not None)
        out["energy_per_inference_mj"] = 1000.0 * energy / runs if runs else None
    out["power_few_readings"] = bool(powered) and (out["power_readings"] or 0) < power.FEW_READINGS
    below = [r["time_below_top_s"] for r in reps if r.get("time_below_top_s") is not None]
    loop_s = sum(float(r.get("loop_s") or 0.0) for r in reps)
    out["time_below_top_s"] = sum(below) if below else None
    out["time_below_top_frac"] = sum(below) / loop_s if below and loop_s > 0 else None
    for key, sep in (("policies_below_top", ","), ("cores_offlined", ","), ("throttle_words", ", ")):
        out[key] = _joined([r.get(key) for r in reps], sep)
    out["throttled_forensics"] = any(bool(r.get("throttled_forensics")) for r in reps)
    return out


def summary_frame(run: Run) -> pd.DataFrame:
    """One row per planned cell (pending ones too): the headline from its repetitions, baselines filled in.

    `p50_ms` is the geometric mean of the repetitions' medians and `p50_ci_lo_ms`..`p50_ci_hi_ms`
    the 95 % interval where the next run's p50 should land (`stats.next_run_interval`); `rep_cv` is
    the spread of the repetitions; the other percentiles pool the loop samples of all repetitions.
    """
    rows: list[dict[str, Any]] = []
    predictions: dict[str, list[int]] = {}
    # first every cell's repetitions (the device's run-to-run spread needs them all), then the rows in plan order
    gathered: list[tuple[int, Any, dict[str, Any], bool, list[dict[str, Any]], list[CellAttempt]]] = []
    known: dict[int, dict[str, Any]] = {}
    for cell in run.cells:
        device = run.manifest.get("devices", {}).get(cell.device, {})
        emulated = bool(device.get("emulated"))
        base = {"run_id": run.run_id, "device": cell.device, "model": cell.model, "variant": cell.variant,
                "threads": cell.threads, "xnnpack": cell.xnnpack, "batch": cell.batch, "key": cell.key,
                "baseline": cell.baseline, "order": cell.order, "emulated": emulated}
        reps = run.repetitions(cell.key)
        if not reps:
            rows.append({**base, "status": "pending", "flags": "incomplete", "model_size": cell.model_size,
                         "repetitions": cell.repetitions, "reps_ok": 0})
            continue
        rep_rows, pooled, latency = [], [], []
        for attempt in reps.values():
            rep_rows.append(summarize_attempt(attempt, emulated=emulated))
            if attempt.status == "ok":
                pooled.append(attempt)
                latency.append(rep_rows[-1]["_latency"])
        for r in rep_rows:
            r.pop("_latency")
        if len(latency) == 1:  # one repetition pooled alone is its own samples: its figures are already known
            known[len(rows)] = latency[0]
        gathered.append((len(rows), cell, base, emulated, rep_rows, pooled))
        rows.append(base)
    spreads = _run_spreads(run, [(cell, rep_rows) for _, cell, _, _, rep_rows, _ in gathered])
    for index, cell, base, emulated, rep_rows, pooled in gathered:
        reps = run.repetitions(cell.key)
        # the pooled loop samples, built one cell at a time and only when not already summarised: holding every
        # cell's copy until the end left ~16 MiB of holes in the heap of a 200-cell run
        loop_ms = None if index in known else (
            np.concatenate([_loop_ms(a) for a in pooled]) if len(pooled) > 1
            else _loop_ms(pooled[0]) if pooled else np.empty(0))
        row = _aggregate(rep_rows, cell.repetitions, loop_ms, cell.batch, spreads.get(cell.key), known.get(index))
        status = run.status(cell.key)
        failures = [r["reason"] for r in sorted(rep_rows, key=lambda r: r["repetition"])
                    if r["status"] != "ok" and r.get("reason")]
        flags = row.pop("_flags")
        if emulated:
            flags.append("emulated")
        if status in ("incomplete", "failed", "damaged"):
            flags.append(status)
        row.update(status=status, reason=failures[0] if failures else None, flags=",".join(flags),
                   attempt=max(a.attempt for a in reps.values()))
        best = run.best(cell.key)
        accuracy = best.first("accuracy") if best else None
        row["accuracy"] = accuracy.get("accuracy") if accuracy else None
        row["accuracy_n"] = accuracy.get("n") if accuracy else None
        errors = [r.get("accuracy_error") for r in rep_rows if r.get("accuracy_error")]
        row["accuracy_error"] = errors[0] if errors and not accuracy else None
        rows[index] = {**base, **row}
        if accuracy and accuracy.get("predictions") is not None:
            predictions[cell.key] = accuracy["predictions"]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    _add_baseline_columns(frame, predictions)
    return frame


def _run_spreads(run: Run, cells: list[tuple[Any, list[dict[str, Any]]]]) -> dict[str, stats.RunSpread]:
    """Each cell's run-to-run spread (by cell key), from this run and the device's earlier runs in the same
    results folder: the device's pooled spread, or the cell's own when its runs show a larger one; before a
    device has two runs of any cell, `stats.ASSUMED_RUN_SPREAD`."""
    own = history.RunMedians(run.run_id, run.fingerprints)
    identities = {}
    for cell, rep_rows in cells:
        identities[cell.key] = history.identity(cell.device, cell.model_sha256, cell.threads, cell.xnnpack, cell.batch)
        medians = [r["p50_ms"] for r in _measured(rep_rows) if r["status"] == "ok"]
        if medians:
            own.add(identities[cell.key], medians)
    runs = [own, *history.neighbours(run.folder, run.run_id, exclude=[run.run_id])]
    devices = {cell.device for cell, _ in cells}
    pooled = {device: history.spread(device, run.fingerprints.get(device), runs) for device in devices}
    groups = {device: history.device_groups(device, run.fingerprints.get(device), runs) for device in devices}
    out = {}
    for cell, _ in cells:
        found = history.cell_spread(cell.device, run.fingerprints.get(cell.device), runs, [identities[cell.key]],
                                    pooled[cell.device], groups=groups[cell.device])
        out[cell.key] = found if found is not None else stats.ASSUMED_RUN_SPREAD
    return out


def _add_baseline_columns(frame: pd.DataFrame, predictions: dict[str, list[int]]) -> None:
    """Size ratio, accuracy change (points) and prediction agreement against each family's baseline.

    Plain lists rather than a groupby with iterrows: this was a fifth of loading a 200-cell run.
    """
    n = len(frame)
    size_ratio, delta, agreement = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    group_keys = ["device", "model", "threads", "xnnpack", "batch"]
    columns = {c: frame[c].tolist() for c in ("baseline", "variant", "key", "model_size", "accuracy")}
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, ident in enumerate(zip(*(frame[c].tolist() for c in group_keys))):
        groups.setdefault(tuple("\0nan" if pd.isna(v) else v for v in ident), []).append(i)
    for members in groups.values():
        baseline_name = next((columns["baseline"][i] for i in members if pd.notna(columns["baseline"][i])), None)
        if baseline_name is None:
            continue
        base = next((i for i in members if columns["variant"][i] == baseline_name), None)
        if base is None:
            continue
        base_size, base_accuracy = columns["model_size"][base], columns["accuracy"][base]
        base_pred = predictions.get(columns["key"][base])
        for i in members:
            size, accuracy = columns["model_size"][i], columns["accuracy"][i]
            if size and base_size:
                size_ratio[i] = base_size / size
            if pd.notna(accuracy) and pd.notna(base_accuracy):
                delta[i] = 100.0 * (accuracy - base_accuracy)
            pred = predictions.get(columns["key"][i])
            if pred is not None and base_pred is not None and len(pred) == len(base_pred) and pred:
                agreement[i] = float(np.mean(np.asarray(pred) == np.asarray(base_pred)))
    frame["size_ratio"] = size_ratio
    frame["accuracy_delta_pts"] = delta
    frame["agreement"] = agreement
