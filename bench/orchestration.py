#!/usr/bin/env python3
"""Orchestration cost on the local device: what a whole `benchbot run` costs beyond its timed loops.

    whole run:  (wall time of the `benchbot run` command - sum of every timed loop) / agent processes
    per process: outcome.wall_s (host side, agent start to exit) - cell_end.loop_ns
                (one agent process per repetition of a cell)

and the per-cell part split by the agent's own events: model load + allocate_tensors (init), first
inference, warmup, the accuracy pass after the loop (accuracy.eval_ns), and the rest (process start,
imports, fingerprint, telemetry thread, the host storing every line). The command-level extra on top
of the cells is CLI start, planning (hashing the models), the agent's hello, and the run log.

Reads the runs bench/repeatability.py stored (bench/out/repeatability.json), or runs the plan once.
SSH is bench/ssh_overhead.py's subject, not this one's.

    python bench/orchestration.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import OUT, log, median  # noqa: E402

PARTS = ("init", "first", "warmup", "accuracy", "rest")


def analyse(results: Path, run: dict[str, Any]) -> dict[str, Any]:
    cells = common.cell_costs(results, run["run_id"])
    loops = sum(c["loop_s"] for c in cells)
    walls = sum(c["wall_s"] for c in cells)
    return {
        "run_id": run["run_id"], "cells": len(cells), "command_wall_s": run["wall_s"], "sum_loop_s": loops,
        "per_cell_s": (run["wall_s"] - loops) / len(cells),
        "loop_share": loops / run["wall_s"],
        "command_extra_s": run["wall_s"] - walls,
        "cell_overhead_median_s": median([c["overhead_s"] for c in cells]),
        "cell_overhead_max_s": max(c["overhead_s"] for c in cells),
        "parts_median_s": {p: median([c[p] for c in cells]) for p in PARTS},
        "foreign_cores": run.get("foreign_cores"),
        "per_cell": cells,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="source", default=str(OUT / "repeatability.json"),
                        help="a bench/repeatability.py result whose runs to read")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    source = Path(args.source)
    if source.is_file():
        data = json.loads(source.read_text())
        results, runs, command = Path(data["results"]), data["runs"], data["command"]
    else:
        from repeatability import QUICK, benchbot_run

        results = Path(tempfile.mkdtemp(prefix="benchbot-bench-orch-"))
        extra = list(QUICK) if args.quick else []
        runs, command = [benchbot_run(results, extra)], "benchbot run " + " ".join(extra)
    log(f"orchestration: {len(runs)} run(s) of `{command.strip()}` in {results}")
    rows = [analyse(results, r) for r in runs]
    ssh = OUT / "ssh_overhead.json"
    ssh_local = None
    if ssh.is_file():
        ssh_local = [r for r in json.loads(ssh.read_text()).get("rows", []) if r.get("setup") == "local"]
    result = {"command": command, "results": str(results), "runs": rows, "ssh_overhead_local_rows": ssh_local,
              "quick": args.quick}
    result["markdown"] = markdown(result)
    path = common.write_result("orchestration", result)
    log(f"wrote {path}")
    return result


def markdown(r: dict[str, Any]) -> str:
    rows = []
    for i, x in enumerate(r["runs"]):
        p = x["parts_median_s"]
        rows.append([f"{'1st' if i == 0 else '2nd'}", x["cells"], f"{x['command_wall_s']:.1f} s",
                     f"{x['sum_loop_s']:.1f} s", f"**{x['per_cell_s']:.2f} s**", f"{100 * x['loop_share']:.0f} %",
                     f"{x['cell_overhead_median_s']:.2f} s", f"{p['init']:.3f}", f"{p['first']:.3f}",
                     f"{p['warmup']:.2f}", f"{p['accuracy']:.2f}", f"{p['rest']:.2f}",
                     f"{x['command_extra_s']:.1f} s"])
    lines = [f"**Orchestration cost, local device** (`{r['command'].strip()}`): (command wall - sum of timed "
             "loops) / agent processes (one per repetition of a cell), and per process `outcome.wall_s - "
             "cell_end.loop_ns` split into the agent's phases (medians, seconds):", ""]
    lines += common.md_table(["run", "processes", "command wall", "sum of loops", "cost per process", "loops' share",
                              "per process (host)", "load", "first", "warmup", "accuracy", "rest (start, imports)",
                              "outside processes"], rows)
    return "\n".join(lines)


if __name__ == "__main__":
    out = main()
    print(out["markdown"])
