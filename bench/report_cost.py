#!/usr/bin/env python3
"""Report cost: `benchbot report` and `benchbot.load_run` on a big synthetic run, time and peak memory.

The run is written with the store's own classes (RunWriter, CellWriter), event by event as the
runner writes what an agent prints: 200 cells (5 devices x 5 models x 4 variants x 2 thread counts),
each with a hello and its fingerprint, cell_start, init, 10 warmup and 10,000 loop latencies in
chunks of 1,000, telemetry every 100 ms of a ~10 s loop (4 cores, a thermal zone, 4 cpufreq
readings), an accuracy event with 300 predictions, cell_end and the host's outcome. Latencies are
log-normal around a per-cell base with a few slow outliers.

The default report draws PNG device plots, a timelines plot per device (every cell) and the 12 most telling
cells' full timelines (before the second pass of issue 14: PNG and SVG, and 48 full timelines). Each
measurement runs in a fresh process, `--repeat` times (3 by default; the machine is shared, so
the min and the median are reported); peak RSS is the largest resident set of that process or any
one of its children (the plot workers), from wait4. `--code DIR` times another copy of the package
and writes the run with that copy too (a store format it reads).

    python bench/report_cost.py [--cells 200] [--samples 10000] [--repeat 3] [--code DIR] [--quick] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import PYTHON, log  # noqa: E402

#: Issue 14's targets: (seconds, MiB or None) per measurement label.
TARGETS: dict[str, tuple[float, float | None]] = {
    "load_run": (1.0, 300.0),
    "report --no-plots": (1.5, None),
    "report (default: plots and cell timelines)": (10.0, None),
}

GENERATE_SCRIPT = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import report_cost, common
sys.path[:] = [p for p in sys.path if p != str(common.REPO)]
sys.path.insert(0, sys.argv[2])
for name in [m for m in sys.modules if m == "benchbot" or m.startswith("benchbot.")]:
    del sys.modules[name]
print(json.dumps(report_cost.generate(report_cost.Path(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))))
"""


def generate(root: Path, cells_n: int, samples_n: int, seed: int = 7) -> tuple[str, dict[str, Any]]:
    """Write a complete synthetic run into root with the store's classes; return its id and what it holds."""
    import numpy as np

    from benchbot import agent
    from benchbot.models.catalog import resolve_models
    from benchbot.plan import Cell, Plan, Settings, Unit, cell_key
    from benchbot.profiles import load_profile
    from benchbot.protocol import PROTOCOL
    from benchbot.store import RunWriter

    rng = np.random.default_rng(seed)
    base = load_profile("local")
    devices = [replace(base, name=n, description=f"synthetic {n}", threads=(1, 2))
               for n in ("pi4-a", "pi4-b", "pi5", "jetson-nano", "local")]
    family = resolve_models(["tweet-large"])[0]
    variants = family.variants
    models = [f"model-{i}" for i in range(max(1, cells_n // (len(devices) * len(variants) * 2)))]
    cells: list[Cell] = []
    for d in devices:
        order = 0
        for m in models:
            for t in (1, 2):
                for v in variants:
                    if len(cells) >= cells_n:
                        break
                    cells.append(Cell(key=cell_key(d.name, m, v.variant, t, True, 1), device=d.name, model=m,
                                      variant=v.variant, threads=t, xnnpack=True, batch=1, model_path=str(v.path),
                                      model_sha256=v.sha256, model_size=v.size, eval_path=str(v.eval_path),
                                      baseline=v.baseline, order=order))
                    order += 1
    settings = Settings(min_runs=samples_n, min_seconds=10.0)
    plan = Plan(devices=devices, cells=cells, settings=settings)
    writer = RunWriter.create(root, plan, ["run", "--synthetic"])
    fp = agent.fingerprint()
    fp.update(cores=4, thermal_zones=["cpu-thermal"], cpufreq=True)
    writer.log("run_start", cells=[c.key for c in cells])
    for d in devices:
        writer.log("device", device=d.name, fingerprint=dict(fp, hostname=d.name))

    events = 0
    for cell in cells:
        w = writer.cell_writer(Unit(cell, 1))
        base_ms = float(rng.uniform(0.3, 6.0))  # 10,000 runs fit the default 60 s max
        clock = int(rng.integers(1e12, 2e12))
        w.write_event({"event": "hello", "protocol": PROTOCOL, "pid": 1234, "fingerprint": fp})
        tele_t = clock

        def tele(phase: str, t_ns: int, w: Any = w) -> None:
            w.write_event({"event": "telemetry", "t_ns": t_ns, "phase": phase,
                           "cpu_pct": round(float(rng.uniform(20, 60)), 1),
                           "cpu_core_pct": [round(float(v), 1) for v in rng.uniform(0, 100, 4)],
                           "proc_cpu_pct": round(float(rng.uniform(90, 110)), 1), "rss": 90_000_000,
                           "rss_peak": 95_000_000, "mem_available": 3_000_000_000,
                           "temps_c": {"cpu-thermal": round(float(rng.uniform(45, 70)), 1)},
                           "freq_hz": [1_800_000_000] * 4})

        tele("init", tele_t)
        w.write_event({"event": "cell_start", "cell_id": cell.key, "runtime": "ai_edge_litert",
                       "runtime_version": "2.3.0", "threads": cell.threads, "xnnpack": True, "batch": 1,
                       "model_size": cell.model_size,
                       "inputs": [{"name": "serving_default_token_ids:0", "shape": [1, 32], "shape_signature": [-1, 32],
                                   "dtype": "int32", "scale": 0.0, "zero_point": 0}],
                       "outputs": [{"name": "StatefulPartitionedCall:0", "shape": [1, 3], "shape_signature": [-1, 3],
                                    "dtype": "float32", "scale": 0.0, "zero_point": 0}], "pid": 1234})
        w.write_event({"event": "init", "init_ns": 12_000_000, "first_ns": int(base_ms * 3e6)})

        def latencies(n: int, base_ms: float = base_ms) -> np.ndarray:
            values = base_ms * 1e6 * rng.lognormal(0.0, 0.05, n)
            spikes = rng.random(n) < 0.005
            values[spikes] *= rng.uniform(2, 10, int(spikes.sum()))
            return values.astype(np.int64)

        warm = latencies(10)
        starts = clock + np.cumsum(warm) - warm
        w.write_event({"event": "samples", "phase": "warmup", "start_ns": starts.tolist(), "latency_ns": warm.tolist()})
        loop = latencies(samples_n)
        loop_start = int(starts[-1] + warm[-1] + 1000)
        starts = loop_start + np.cumsum(loop + 2000) - (loop + 2000)
        loop_ns = int(starts[-1] + loop[-1] - loop_start)
        next_tele = loop_start
        for lo in range(0, samples_n, 1000):
            chunk_end = int(starts[min(lo + 1000, samples_n) - 1])
            while next_tele < chunk_end:
                tele("loop", next_tele)
                next_tele += 100_000_000
            w.write_event({"event": "samples", "phase": "loop", "start_ns": starts[lo:lo + 1000].tolist(),
                           "latency_ns": loop[lo:lo + 1000].tolist()})
            events += 1
        tele("done", loop_start + loop_ns + 1000)
        preds = rng.integers(0, 3, 300).tolist()
        labels = [p if rng.random() < 0.8 else int(rng.integers(0, 3)) for p in preds]
        w.write_event({"event": "accuracy", "n": 300, "correct": sum(p == y for p, y in zip(preds, labels)),
                       "accuracy": sum(p == y for p, y in zip(preds, labels)) / 300, "predictions": preds,
                       "labels": labels, "truncated": False, "eval_ns": int(base_ms * 3e8)})
        w.write_event({"event": "cell_end", "cell_id": cell.key, "warmup_runs": 10, "warmup_ns": int(warm.sum()),
                       "loop_runs": samples_n, "loop_ns": loop_ns, "loop_start_ns": loop_start,
                       "hit_max_seconds": False, "rss_peak": 95_000_000, "throttled_before": 0, "throttled_after": 0,
                       "vc_temp_start_c": None, "vc_temp_end_c": None, "telemetry_readings": 100})
        w.note("outcome", status="ok", reason=None, wall_s=loop_ns / 1e9 + 2.0, returncode=0, stderr_tail="")
        w.close()
        writer.log("cell", key=cell.key, status="ok", reason=None)
    writer.log("run_end", status="complete", bytes_sent={})
    size = sum(p.stat().st_size for p in writer.folder.rglob("*") if p.is_file())
    return writer.run_id, {"cells": len(cells), "samples_per_cell": samples_n, "bytes": size}


LOAD_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
import benchbot
t1 = time.perf_counter()
run = benchbot.load_run(sys.argv[1], sys.argv[2])
t2 = time.perf_counter()
summary = run.summary
t3 = time.perf_counter()
samples = run.samples
t4 = time.perf_counter()
telemetry = run.telemetry
t5 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_run_s": t2 - t1, "summary_s": t3 - t2, "samples_s": t4 - t3,
                  "telemetry_s": t5 - t4, "total_s": t5 - t0, "summary_rows": len(summary),
                  "samples_rows": len(samples), "telemetry_rows": len(telemetry),
                  "samples_mb": samples.memory_usage(deep=True).sum() / 2**20}))
"""


def measure(results: Path, run_id: str, with_plots: bool, code: Path = common.REPO) -> dict[str, Any]:
    """Time each command in a fresh process run from the scratch folder, importing benchbot from `code`."""
    env = dict(os.environ, BENCHBOT_RESULTS=str(results), COLUMNS="200", PYTHONPATH=str(code))
    out: dict[str, Any] = {}
    m = common.run_child([PYTHON, "-c", LOAD_SCRIPT, run_id, str(results)], env=env, cwd=results, timeout=900)
    if m.returncode != 0:
        raise SystemExit(f"load_run failed: {m.stderr.strip()[-800:]}")
    out["load_run"] = {**json.loads(m.stdout.strip().splitlines()[-1]), "wall_s": m.wall_s, "cpu_s": m.cpu_s,
                       "peak_rss_mb": m.max_rss / 2**20, "foreign_cores": m.foreign_cores}
    commands = [("report --no-plots", ["--no-plots"]), ("report --format md --no-plots", ["--format", "md", "--no-plots"])]
    if with_plots:
        commands += [("report (default: plots and cell timelines)", []),
                     ("report again (plots unchanged: kept)", [])]
    for label, extra in commands:
        if label.startswith("report (default"):
            shutil.rmtree(results / run_id / "plots", ignore_errors=True)
        m = common.run_child([PYTHON, "-m", "benchbot.cli", "report", run_id, *extra], env=env, cwd=results,
                             timeout=900)
        if m.returncode != 0:
            raise SystemExit(f"benchbot {label} failed: {m.stderr.strip()[-800:]}")
        out[label] = {"wall_s": m.wall_s, "cpu_s": m.cpu_s, "peak_rss_mb": m.max_rss / 2**20,
                      "foreign_cores": m.foreign_cores, "stdout_lines": len(m.stdout.splitlines())}
    return out


def generate_with(code: Path, root: Path, cells: int, samples: int) -> tuple[str, dict[str, Any]]:
    """generate() in a child process importing benchbot from `code`: the run is in the format that copy writes."""
    if code.resolve() == common.REPO.resolve():
        return generate(root, cells, samples)
    done = common.run_child([PYTHON, "-c", GENERATE_SCRIPT, str(common.BENCH), str(code), str(root), str(cells),
                             str(samples)], timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"generating the run with {code} failed: {done.stderr.strip()[-800:]}")
    run_id, shape = json.loads(done.stdout.strip().splitlines()[-1])
    return run_id, shape


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per measurement: min and median over the rounds of wall time, CPU time and peak RSS, and every round."""
    out: dict[str, Any] = {}
    for label in rounds[0]:
        values = [r[label] for r in rounds]
        row: dict[str, Any] = {"rounds": values}
        for key in ("wall_s", "cpu_s", "peak_rss_mb", "foreign_cores"):
            row[f"{key}_min"] = min(v[key] for v in values)
            row[f"{key}_median"] = statistics.median(v[key] for v in values)
        target = TARGETS.get(label)
        if target:
            row["target_s"], row["target_mb"] = target
            row["met"] = row["wall_s_median"] <= target[0] and (target[1] is None or row["peak_rss_mb_median"] <= target[1])
        out[label] = row
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=200)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of every measurement (min and median shown)")
    parser.add_argument("--no-plots", action="store_true", help="skip timing the default report (plots)")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic run (its path is printed)")
    parser.add_argument("--code", default=str(common.REPO),
                        help="folder holding the benchbot package to time (e.g. a copy from before a change)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.cells, args.samples, args.no_plots, args.repeat = 8, 1000, True, 1
    scratch = Path(tempfile.mkdtemp(prefix="benchbot-bench-report-"))
    try:
        begin = time.monotonic()
        run_id, shape = generate_with(Path(args.code), scratch, args.cells, args.samples)
        gen_s = time.monotonic() - begin
        log(f"report cost: wrote {shape['cells']} cells x {shape['samples_per_cell']} samples "
            f"({shape['bytes'] / 2**20:.0f} MiB) in {gen_s:.1f} s; load {common.loadavg()}")
        rounds = []
        for i in range(args.repeat):
            rounds.append(measure(scratch, run_id, with_plots=not args.no_plots, code=Path(args.code)))
            for label, t in rounds[-1].items():
                log(f"  round {i + 1}: {label}: {t['wall_s']:.2f} s (CPU {t['cpu_s']:.2f} s), "
                    f"peak RSS {t['peak_rss_mb']:.0f} MiB")
    finally:
        if args.keep:
            log(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    timings = summarize(rounds)
    result = {"shape": shape, "generate_s": gen_s, "timings": timings, "quick": args.quick, "code": args.code,
              "repeat": args.repeat, "targets": TARGETS,
              "within_target": all(t.get("met", True) for t in timings.values())}
    result["markdown"] = markdown(result)
    path = common.write_result("report_cost", result)
    log(f"wrote {path}")
    return result


def markdown(r: dict[str, Any]) -> str:
    s = r["shape"]
    rows = []
    for label, t in r["timings"].items():
        name = "`benchbot.load_run` + .summary/.samples/.telemetry" if label == "load_run" else f"`benchbot {label}`"
        target = "—"
        if "target_s" in t:
            target = f"≤ {t['target_s']:g} s" + (f", ≤ {t['target_mb']:g} MiB" if t["target_mb"] else "")
            target += ": met" if t["met"] else ": **missed**"
        rows.append([name, f"**{t['wall_s_min']:.2f}** / {t['wall_s_median']:.2f} s",
                     f"{t['cpu_s_min']:.2f} / {t['cpu_s_median']:.2f} s",
                     f"**{t['peak_rss_mb_min']:.0f}** / {t['peak_rss_mb_median']:.0f} MiB",
                     f"{t['foreign_cores_median']:.2f}", target])
    lines = [f"**Report cost** (synthetic run: {s['cells']} cells x {s['samples_per_cell']:,} samples with telemetry, "
             f"{s['bytes'] / 2**20:.0f} MiB on disk; each in a fresh process, {r['repeat']} rounds, min / median):",
             ""]
    lines += common.md_table(["what", "wall time", "CPU time", "peak RSS", "foreign cores", "target"], rows)
    lr = r["timings"]["load_run"]["rounds"][0]
    lines += ["", f"Inside load_run (round 1): import {lr['import_s']:.2f} s, load_run() {lr['load_run_s']:.2f} s, "
              f".summary {lr['summary_s']:.2f} s, .samples {lr['samples_s']:.2f} s ({lr['samples_rows']:,} rows, "
              f"{lr['samples_mb']:.0f} MiB), .telemetry {lr['telemetry_s']:.2f} s."]
    return "\n".join(lines)


if __name__ == "__main__":
    out = main()
    print(out["markdown"])
