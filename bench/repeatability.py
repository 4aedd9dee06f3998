#!/usr/bin/env python3
"""Repeatability: the same plan, run twice in a row on the same machine with `benchbot run`.

For every cell: does the second run's p50 fall inside the first run's reported interval (the `next run
95%` column: a prediction interval from the spread of the cell's repetitions, each a fresh agent
process), and the other way round; how wide that interval is; and how far apart the two p50s are.
`bench/gate.py` does the same over more runs of issue 10's plan and adds the regression gate.

Both runs are stored in bench/out/runs/ (emptied first) and kept for bench/orchestration.py, which reads
the same runs (whole-command wall time minus the timed loops).

    python bench/repeatability.py [--threads 1,2] [--quick]

Default plan: `benchbot run` with its defaults (the bundled zoo on the local device, threads from
benchbot/device_profiles/local.toml, accuracy pass on), i.e. what `make demo` runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import PYTHON, log, median, spread  # noqa: E402

QUICK = ["--warmup-runs", "2", "--warmup-seconds", "0", "--min-runs", "20", "--min-seconds", "0.05",
         "--max-seconds", "10", "--threads", "1", "--models", "shapes-cnn", "--variants", "fp32,int8"]


def benchbot_run(results: Path, extra: list[str]) -> dict[str, Any]:
    """One whole `benchbot run` as a user types it; returns its run id and the command's wall time."""
    env = dict(os.environ, BENCHBOT_RESULTS=str(results))
    env.pop("BENCHBOT_PROFILES", None)
    before = {p.name for p in results.glob("*")} if results.is_dir() else set()
    child = common.run_child([PYTHON, "-m", "benchbot.cli", "run", "--quiet", *extra], env=env, timeout=900)
    if child.returncode != 0:
        raise SystemExit(f"benchbot run failed ({child.returncode}): {child.stderr.strip()[-800:]}")
    new = sorted(p.name for p in results.glob("*") if p.name not in before and (p / "manifest.json").is_file())
    return {"run_id": new[-1], "wall_s": child.wall_s, "cpu_s": child.cpu_s, "foreign_cores": child.foreign_cores,
            "load_before": child.load_before}


def compare(results: Path, first: str, second: str) -> dict[str, Any]:
    from benchbot.summary import load_run

    run_a, run_b = load_run(first, results), load_run(second, results)
    a, b = run_a.summary, run_b.summary
    merged = a.merge(b, on="key", suffixes=("_1", "_2"))
    cells = []

    def p10(run: Any, key: str) -> float:
        s = run.best(key).samples()
        return float(s.loc[s["phase"] == "loop", "latency_ns"].quantile(0.10)) / 1e6

    for _, row in merged.iterrows():
        lo1, hi1, m1 = row["p50_ci_lo_ms_1"], row["p50_ci_hi_ms_1"], row["p50_ms_1"]
        lo2, hi2, m2 = row["p50_ci_lo_ms_2"], row["p50_ci_hi_ms_2"], row["p50_ms_2"]
        cells.append({
            "key": row["key"], "threads": int(row["threads_1"]), "p50_ms_1": m1, "ci_1": [lo1, hi1], "p50_ms_2": m2, "ci_2": [lo2, hi2],
            "n_1": int(row["count_1"]), "n_2": int(row["count_2"]),
            "second_in_first_ci": bool(lo1 <= m2 <= hi1), "first_in_second_ci": bool(lo2 <= m1 <= hi2),
            "cis_overlap": bool(lo1 <= hi2 and lo2 <= hi1), "ci_halfwidth_pct": 50.0 * (hi1 - lo1) / m1,
            "rel_diff": m2 / m1 - 1, "flags_1": row.get("flags_1") or "", "flags_2": row.get("flags_2") or "",
            "p10_rel_diff": p10(run_b, row["key"]) / p10(run_a, row["key"]) - 1,
        })
    return {"cells": cells, "n": len(cells),
            "second_in_first_ci": sum(c["second_in_first_ci"] for c in cells),
            "first_in_second_ci": sum(c["first_in_second_ci"] for c in cells),
            "cis_overlap": sum(c["cis_overlap"] for c in cells),
            "abs_rel_diff": spread([abs(c["rel_diff"]) for c in cells]),
            "within_1pct": sum(abs(c["rel_diff"]) <= 0.01 for c in cells),
            "within_5pct": sum(abs(c["rel_diff"]) <= 0.05 for c in cells),
            "ci_halfwidth_pct": spread([c["ci_halfwidth_pct"] for c in cells]),
            "abs_p10_rel_diff": spread([abs(c["p10_rel_diff"]) for c in cells]),
            "p10_within_1pct": sum(abs(c["p10_rel_diff"]) <= 0.01 for c in cells),
            "unstable_flagged": sum("unstable" in (c["flags_1"] + c["flags_2"]) for c in cells),
            "by_threads": {t: {"n": len(group), "second_in_first_ci": sum(c["second_in_first_ci"] for c in group),
                               "within_5pct": sum(abs(c["rel_diff"]) <= 0.05 for c in group),
                               "abs_rel_diff_median": median([abs(c["rel_diff"]) for c in group])}
                           for t in sorted({c["threads"] for c in cells})
                           for group in [[c for c in cells if c["threads"] == t]]}}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default=None, help="results folder for the two runs (default: bench/out/runs)")
    parser.add_argument("--threads", default=None, help="override the profile's threads, e.g. 1")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("extra", nargs="*", help="more `benchbot run` options (after --)")
    args = parser.parse_args(argv)
    extra = list(QUICK) if args.quick else []
    if args.threads and not args.quick:
        extra += ["--threads", args.threads]
    extra += args.extra
    if args.results:
        results = Path(args.results)
    else:  # bench/out/runs, emptied first: it holds the two runs of the latest measurement only
        results = common.OUT / "runs"
        shutil.rmtree(results, ignore_errors=True)
    log(f"repeatability: `benchbot run {' '.join(extra)}` twice into {results}; load {common.loadavg()}")
    runs = []
    for which in ("first", "second"):
        runs.append(benchbot_run(results, extra))
        log(f"  {which} run {runs[-1]['run_id']}: {runs[-1]['wall_s']:.1f} s, foreign CPU "
            f"{runs[-1]['foreign_cores']:.2f} cores")
    cmp = compare(results, runs[0]["run_id"], runs[1]["run_id"])
    result = {"command": "benchbot run " + " ".join(extra), "results": str(results), "runs": runs,
              "quick": args.quick, **cmp}
    result["markdown"] = markdown(result)
    path = common.write_result("repeatability", result)
    log(f"wrote {path}")
    return result


def markdown(r: dict[str, Any]) -> str:
    d, w = r["abs_rel_diff"], r["ci_halfwidth_pct"]
    foreign = median([x["foreign_cores"] for x in r["runs"]])
    return (
        f"**Repeatability** (`{r['command'].strip()}` twice, {r['n']} cells): the second run's median falls inside "
        f"the first run's 95 % CI in **{r['second_in_first_ci']} of {r['n']}** cells (the first inside the "
        f"second's: {r['first_in_second_ci']}; the two intervals overlap in {r['cis_overlap']}). The CIs are "
        f"narrow (half-width median {w['median']:.2f} %, max {w['max']:.2f} % of the median) while the medians "
        f"moved by {100 * d['median']:.2f} % (median over cells; max {100 * d['max']:.1f} %): "
        f"{r['within_1pct']} cells within 1 %, {r['within_5pct']} within 5 %. The 10th percentiles, which a slow "
        f"spell of the machine moves least, moved by {100 * r['abs_p10_rel_diff']['median']:.2f} % (median; "
        f"{r['p10_within_1pct']} cells within 1 %). {r['unstable_flagged']} cells were flagged unstable (`~`) in "
        f"either run. Foreign CPU while running: {foreign:.2f} cores. By thread count: "
        + "; ".join(f"{t} thread{'s' if int(t) > 1 else ''}: {g['second_in_first_ci']} of {g['n']} inside the CI, "
                    f"{g['within_5pct']} within 5 %, medians moved {100 * g['abs_rel_diff_median']:.1f} % (median)"
                    for t, g in r["by_threads"].items()) + "."
    )


if __name__ == "__main__":
    out = main()
    print(out["markdown"])
