#!/usr/bin/env python3
"""Write a tiny stored run with whichever benchbot is importable, to keep old store formats loading.

The fixtures under tests/data/runs/ were made with the store code of their format, never rewritten:
    format 1:  git archive 8b021e0 | tar -x -C /tmp/bb1 && PYTHONPATH=/tmp/bb1 python THIS v1 OUT
    format 2:  PYTHONPATH=<checkout at eabb5c8> python THIS v2 OUT
Each writes OUT/<run-id>/ plus OUT/<run-id>.expected.json: per variant and repetition the loop and
warmup sample counts and latency sums a reader must find (seeded, so the numbers are the same).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path


def main(kind: str, out: Path) -> None:
    from benchbot.plan import Cell, Plan, Settings, cell_key
    from benchbot.profiles import Profile
    from benchbot.store import RunWriter

    rng = random.Random(14)
    device = Profile(name="local", path=None, transport="local")
    reps = 1 if kind == "v1" else 2
    cells = []
    for order, variant in enumerate(("fp32", "int8")):
        extra = {} if kind == "v1" else {"repetitions": reps}
        cells.append(Cell(key=cell_key("local", "tiny", variant, 1, True, 1), device="local", model="tiny",
                          variant=variant, threads=1, xnnpack=True, batch=1, model_path=f"/nowhere/{variant}.tflite",
                          model_sha256="0" * 64, model_size=40_000 if variant == "fp32" else 12_000,
                          eval_path=None, baseline="fp32", order=order, **extra))
    plan = Plan(devices=[device], cells=cells, settings=Settings(min_runs=40, min_seconds=0.01))
    writer = RunWriter.create(out, plan, ["run", "--fixture", kind])
    writer.log("run_start", cells=[c.key for c in cells])
    writer.log("device", device="local", fingerprint={"arch": "x86_64", "cores": 2, "runtime": "ai_edge_litert"})
    expected: dict[str, dict[str, int]] = {}
    for rep in range(1, reps + 1):
        for cell in cells:
            if kind == "v1":
                w = writer.cell_writer(cell)
            else:
                from benchbot.plan import Unit

                w = writer.cell_writer(Unit(cell, rep))
            base = 2_000_000 if cell.variant == "fp32" else 900_000
            clock = 10**12 + rep * 10**10
            w.write_event({"event": "hello", "protocol": 1, "pid": 1, "fingerprint": {"arch": "x86_64", "cores": 2}})
            w.write_event({"event": "cell_start", "cell_id": cell.key, "runtime": "ai_edge_litert",
                           "runtime_version": "2.3.0", "threads": 1, "xnnpack": True, "batch": 1,
                           "model_size": cell.model_size})
            w.write_event({"event": "init", "init_ns": 5_000_000, "first_ns": 3 * base})
            sums = {"warmup": 0, "loop": 0}
            counts = {"warmup": 0, "loop": 0}
            t = clock
            loop_start = None
            for phase, sizes in (("warmup", (5,)), ("loop", (25, 15))):
                for size in sizes:
                    if phase == "loop" and loop_start is None:
                        loop_start = t
                    starts, lats = [], []
                    for _ in range(size):
                        lat = int(base * (1 + rng.random() * 0.1))
                        starts.append(t)
                        lats.append(lat)
                        t += lat + 1000
                    w.write_event({"event": "samples", "phase": phase, "start_ns": starts, "latency_ns": lats})
                    sums[phase] += sum(lats)
                    counts[phase] += size
                    w.write_event({"event": "telemetry", "t_ns": t, "phase": phase, "cpu_pct": 50.0,
                                   "proc_cpu_pct": 99.0, "rss": 50_000_000, "rss_peak": 51_000_000,
                                   "mem_available": 10**9, "temps_c": {"zone0": 50.0 + rep},
                                   "freq_hz": [2_000_000_000, 2_000_000_000]})
            preds = [rng.randrange(3) for _ in range(20)]
            w.write_event({"event": "accuracy", "n": 20, "correct": 18, "accuracy": 0.9, "predictions": preds,
                           "labels": preds, "truncated": False, "eval_ns": 1000})
            w.write_event({"event": "cell_end", "cell_id": cell.key, "warmup_runs": counts["warmup"],
                           "warmup_ns": sums["warmup"], "loop_runs": counts["loop"], "loop_ns": t - loop_start,
                           "loop_start_ns": loop_start, "hit_max_seconds": False, "rss_peak": 51_000_000})
            w.note("outcome", status="ok", reason=None, wall_s=0.5, returncode=0, stderr_tail="")
            w.close()
            writer.log("cell", key=cell.key, status="ok", reason=None)
            expected[f"{cell.variant}/{rep}"] = {"loop": counts["loop"], "warmup": counts["warmup"],
                                                 "loop_sum_ns": sums["loop"], "warmup_sum_ns": sums["warmup"]}
    writer.log("run_end", status="complete")
    (out / f"{writer.run_id}.expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    print(writer.folder)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
