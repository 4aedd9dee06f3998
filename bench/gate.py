#!/usr/bin/env python3
"""Honest intervals and a quiet regression gate: the same plan run several times, then compared.

The plan is issue 10's: `benchbot run --models tweet-mobile,shapes-cnn,<conv> --threads 1` with every
other setting at its default (5 repetitions per cell on the local device), where <conv> is a ~2 ms
CNN (`bench/models/gate/base/convnet`, built by `bench/make_gate_models.py`). It runs `--runs N`
times (A1..AN) and once more with the same CNN made one layer deeper (~15 % slower, same family and
variant name, `bench/models/gate/slower/convnet`). Then:

* **Coverage**: for every ordered pair of A runs and every cell, does the second run's p50 fall inside
  the first run's reported interval (`next run 95%`); and the interval's half-width in % of p50.
* **False alarms**: `benchbot compare` of every pair of A runs at its default factor (1.05): cells called
  slower or faster, and the exit status.
* **Detection of a real change**: `benchbot compare A1 SLOWER`: is the deeper CNN called slower (exit 1)?
* **Detection of injected slowdowns**: for every A/A pair and cell, B's repetition medians multiplied by
  1.05, 1.10 and 1.20 (real noise, a known shift) and judged by the gate's own rule
  (`benchbot.report.compare.judge`: `stats.ratio_of_repetitions`, the factor, speed modes): the share called slower.

* **A/B inside one run** (`--in-run N`, default 3): N runs that each hold the CNN three times, named with
  `NAME=PATH`: `base` and `twin` (the same file) and `slower` (one layer deeper). Their repetitions run
  interleaved in the same shuffled rounds, so the machine's drift lands on both sides of a comparison;
  `compare_models(base, twin)` is the A/A and `compare_models(base, slower)` the real change.

    python bench/gate.py [--runs 3] [--in-run 3] [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import PYTHON, log, median, spread  # noqa: E402

HERE = Path(__file__).resolve().parent
BASE = HERE / "models" / "gate" / "base" / "convnet"
SLOWER = HERE / "models" / "gate" / "slower" / "convnet"
PLAN = ["--threads", "1"]
QUICK = ["--warmup-runs", "2", "--warmup-seconds", "0", "--min-runs", "20", "--min-seconds", "0.05",
         "--repetitions", "3", "--variants", "fp32,int8"]
INJECTED = (1.05, 1.10, 1.20)


def models(conv: Path, quick: bool) -> list[str]:
    return ["--models", ("shapes-cnn," if quick else "tweet-mobile,shapes-cnn,") + str(conv)]


def benchbot(args: list[str], results: Path, timeout: float = 1800) -> common.Child:
    env = dict(os.environ, BENCHBOT_RESULTS=str(results))
    env.pop("BENCHBOT_PROFILES", None)
    return common.run_child([PYTHON, "-m", "benchbot.cli", *args], env=env, timeout=timeout)


def one_run(results: Path, conv: Path, quick: bool) -> dict[str, Any]:
    before = {p.name for p in results.glob("*")} if results.is_dir() else set()
    child = benchbot(["run", "--quiet", *PLAN, *models(conv, quick), *(QUICK if quick else [])], results)
    if child.returncode != 0:
        raise SystemExit(f"benchbot run failed ({child.returncode}): {child.stderr.strip()[-800:]}")
    new = sorted(p.name for p in results.glob("*") if p.name not in before and (p / "manifest.json").is_file())
    return {"run_id": new[-1], "wall_s": child.wall_s, "foreign_cores": child.foreign_cores}


def gate(results: Path, a: str, b: str) -> dict[str, Any]:
    child = benchbot(["compare", a, b, "--format", "json"], results, timeout=300)
    body = json.loads(child.stdout)
    return {"a": a, "b": b, "exit": child.returncode, "slower": body["slower"], "faster": body["faster"],
            "cells": len(body["cells"]),
            "called": [f"{c['model']}/{c['variant']}: {c['verdict']} ({c['ratio']:.3f}, "
                       f"{c['ratio_ci_lo']:.3f}-{c['ratio_ci_hi']:.3f})"
                       for c in body["cells"] if c["verdict"] != "not significant"]}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from benchbot.report.compare import judge, run_spreads
    from benchbot.summary import load_run

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of the same plan (A/A pairs: every pair)")
    parser.add_argument("--in-run", type=int, default=3, help="runs holding base, twin and slower CNNs (A/B in one run)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    n_runs = 2 if args.quick else max(2, args.runs)
    results = common.OUT / "gate-runs"
    shutil.rmtree(results, ignore_errors=True)
    log(f"gate: {n_runs} runs of the plan and one with the deeper CNN into {results}; load {common.loadavg()}")
    runs = []
    for i in range(n_runs):
        runs.append(one_run(results, BASE, args.quick))
        log(f"  A{i + 1} {runs[-1]['run_id']}: {runs[-1]['wall_s']:.1f} s")
    slower = one_run(results, SLOWER, args.quick)
    log(f"  SLOWER {slower['run_id']}: {slower['wall_s']:.1f} s")

    loaded = {r["run_id"]: load_run(r["run_id"], results) for r in runs + [slower]}
    order = [r["run_id"] for r in runs]
    coverage, widths, widths_history = [], [], []
    for first, second in itertools.permutations(order, 2):
        s1 = loaded[first].summary.set_index("key")
        s2 = loaded[second].summary.set_index("key")
        for key in s1.index:
            lo, hi, p50 = s1.at[key, "p50_ci_lo_ms"], s1.at[key, "p50_ci_hi_ms"], s1.at[key, "p50_ms"]
            coverage.append({"first": first, "second": second, "key": key, "inside": bool(lo <= s2.at[key, "p50_ms"] <= hi),
                             "rel_diff": float(s2.at[key, "p50_ms"] / p50 - 1),
                             "forward": order.index(second) > order.index(first),
                             "history": int(s1.at[key, "run_sd_runs"] or 0) >= 2})
    for run_id in order:
        s = loaded[run_id].summary
        for lo, h, p, n in zip(s["p50_ci_lo_ms"], s["p50_ci_hi_ms"], s["p50_ms"], s["run_sd_runs"]):
            (widths_history if int(n or 0) >= 2 else widths).append(float(50.0 * (h - lo) / p))
    aa = [gate(results, a["run_id"], b["run_id"]) for a, b in itertools.combinations(runs, 2)]
    real = gate(results, runs[0]["run_id"], slower["run_id"])
    real_conv = [c for c in real["called"] if c.startswith("convnet/")]

    injected: dict[str, Any] = {}
    # the gate's own rule, run-to-run spread included (each cell judged with the spread of the others)
    spreads = {(a["run_id"], b["run_id"]): run_spreads(loaded[a["run_id"]], loaded[b["run_id"]])[0]
               for a, b in itertools.combinations(runs, 2)}
    for factor in INJECTED:
        called = total = 0
        for a, b in itertools.combinations(runs, 2):
            sa, sb = loaded[a["run_id"]].summary.set_index("key"), loaded[b["run_id"]].summary.set_index("key")
            for key in sa.index:
                ma, mb = list(sa.at[key, "rep_p50_ms"]), [m * factor for m in sb.at[key, "rep_p50_ms"]]
                total += 1
                if ma and mb:
                    run_sd = spreads[(a["run_id"], b["run_id"])](sa.loc[key], sb.loc[key])
                    called += judge(ma, mb, 1.05, spread=run_sd)[1] == "slower"
        injected[f"{factor:.2f}"] = {"called_slower": called, "cells": total}

    result = {
        "plan": "benchbot run " + " ".join(PLAN + models(BASE, args.quick) + (QUICK if args.quick else [])),
        "runs": runs, "slower_run": slower, "quick": args.quick,
        "coverage": {"inside": sum(c["inside"] for c in coverage), "pairs": len(coverage), "cells": coverage,
                     "abs_rel_diff": spread([abs(c["rel_diff"]) for c in coverage]),
                     **{f"{name}_{what}": f(c["inside"] for c in coverage if pick(c))
                        for name, pick in (("forward_history", lambda c: c["forward"] and c["history"]),
                                           ("no_history", lambda c: not c["history"]))
                        for what, f in (("inside", sum), ("pairs", lambda xs: len(list(xs))))}},
        "halfwidth_pct": {"median": median(widths + widths_history), **spread(widths + widths_history)},
        "halfwidth_pct_no_history": {"median": median(widths), **spread(widths)} if widths else None,
        "halfwidth_pct_history": {"median": median(widths_history), **spread(widths_history)} if widths_history else None,
        "aa": aa, "aa_cells": sum(g["cells"] for g in aa), "aa_called": sum(g["slower"] + g["faster"] for g in aa),
        "aa_exit_1": sum(g["exit"] == 1 for g in aa),
        "real": real, "real_detected": any("slower" in c for c in real_conv), "injected": injected,
    }
    result["in_run"] = in_run(results, 1 if args.quick else args.in_run, args.quick)
    result["markdown"] = markdown(result)
    path = common.write_result("gate", result)
    log(f"wrote {path}")
    return result


def in_run(results: Path, n_runs: int, quick: bool) -> dict[str, Any]:
    """A/A and A/B between models of one run, whose repetitions shared the same shuffled rounds."""
    from benchbot.report.compare import compare_models
    from benchbot.summary import load_run

    spec = f"base={BASE},twin={BASE},slower={SLOWER}"
    quick_args = QUICK[:QUICK.index("--variants")]  # the CNN has only fp32
    out: dict[str, Any] = {"plan": "benchbot run " + " ".join(PLAN + ["--models", "base=CONV,twin=CONV,slower=DEEPER"]
                                                                + (quick_args if quick else [])), "runs": []}
    for i in range(n_runs):
        before = {p.name for p in results.glob("*")}
        child = benchbot(["run", "--quiet", *PLAN, "--models", spec, *(quick_args if quick else [])], results)
        if child.returncode != 0:
            raise SystemExit(f"benchbot run failed ({child.returncode}): {child.stderr.strip()[-800:]}")
        run_id = sorted(p.name for p in results.glob("*") if p.name not in before)[-1]
        run = load_run(run_id, results)
        entry: dict[str, Any] = {"run_id": run_id, "wall_s": child.wall_s}
        for label, b in (("aa", "twin"), ("ab", "slower")):
            cmp = compare_models(run, "base", b)
            entry[label] = [{"variant": c.variant, "ratio": c.ratio, "lo": c.ratio_ci_lo, "hi": c.ratio_ci_hi,
                             "verdict": c.verdict} for c in cmp.cells]
        out["runs"].append(entry)
        log(f"  in-run {i + 1} {run_id}: A/A {entry['aa']}; A/B {entry['ab']}")
    cells = [c for r in out["runs"] for c in r["aa"]]
    out["aa_called"], out["aa_cells"] = sum(c["verdict"] != "not significant" for c in cells), len(cells)
    cells = [c for r in out["runs"] for c in r["ab"]]
    out["ab_detected"], out["ab_cells"] = sum(c["verdict"] == "slower" for c in cells), len(cells)
    return out


def markdown(r: dict[str, Any]) -> str:
    cov = r["coverage"]
    inj = ", ".join(f"{float(k) * 100 - 100:.0f} %: {v['called_slower']}/{v['cells']}" for k, v in r["injected"].items())
    walls = ", ".join(f"{x['wall_s']:.0f} s" for x in r["runs"])
    lines = [
        f"Plan `{r['plan']}`, {len(r['runs'])} runs ({walls}).",
        f"- next run's p50 inside the previous run's interval: **{cov['inside']} of {cov['pairs']}** "
        f"({100 * cov['inside'] / max(1, cov['pairs']):.0f} %); median half-width **{r['halfwidth_pct']['median']:.1f} %** "
        f"of p50; medians moved {100 * cov['abs_rel_diff']['median']:.1f} % (median over cells and pairs)",
        f"- of those, intervals of a run with no earlier run (the repetitions' spread and the assumed run-to-run spread, `stats.ASSUMED_RUN_SPREAD`): "
        f"**{cov['no_history_inside']} of {cov['no_history_pairs']}**, median half-width "
        f"{(r['halfwidth_pct_no_history'] or {}).get('median', float('nan')):.1f} %; intervals with the run-to-run "
        f"spread of the earlier runs, against later runs: **{cov['forward_history_inside']} of "
        f"{cov['forward_history_pairs']}**, median half-width "
        f"{(r['halfwidth_pct_history'] or {}).get('median', float('nan')):.1f} %",
        f"- A/A `benchbot compare` at the default factor: **{r['aa_called']} of {r['aa_cells']}** cells called "
        f"slower or faster; exit 1 in {r['aa_exit_1']} of {len(r['aa'])} comparisons",
        f"- one more conv layer (real model): compare A1 SLOWER exit **{r['real']['exit']}**; "
        + ("; ".join(c for c in r["real"]["called"]) or "nothing called"),
        f"- injected slowdowns called slower (A/A pairs, B's repetitions scaled): {inj}",
    ]
    if r.get("in_run"):
        ir = r["in_run"]
        ratios = "; ".join(f"{c['ratio']:.3f} ({c['lo']:.3f}-{c['hi']:.3f})" for x in ir["runs"] for c in x["ab"])
        lines += [
            f"- **A/B inside one run** (`{ir['plan']}`, {len(ir['runs'])} runs): A/A (`base` vs `twin`, the same "
            f"file) called **{ir['aa_called']} of {ir['aa_cells']}**; one more conv layer called slower in "
            f"**{ir['ab_detected']} of {ir['ab_cells']}** (ratios {ratios})",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
