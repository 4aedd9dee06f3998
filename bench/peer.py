#!/usr/bin/env python3
"""Agreement with the runtime's own tool: benchbot against `litert-benchmark` (ai-edge-litert's console script).

For each model and thread count, in fresh processes and rotating order over several rounds:

  benchbot   the agent (`python benchbot/agent.py run`), Interpreter.invoke(), telemetry on;
  peer       litert-benchmark's own run_benchmark() through bench/peer_tool.py: its CompiledModel
             path and timed loop unchanged, its results unrounded, and (for int32 token-id models,
             where the tool's own random ids crash GATHER) benchbot's inputs;
  compiled   bench/bare_loop.py --api compiled: a bare loop around CompiledModel.run_by_name with
             benchbot's inputs, the tool's API path without the tool.

benchbot/peer is the headline; benchbot/compiled and compiled/peer split it into "Interpreter vs
CompiledModel" and "the tool's loop and inputs". The stock CLI also runs once per model as a check
(rounded to 0.01 ms; on token-id models it fails, and the error is recorded).

    python bench/peer.py [--rounds 5] [--seconds 1.5] [--configs tweet-large/fp32:1,...] [--quick]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import BENCH, PYTHON, log, median, percentile, spread  # noqa: E402

ARMS = ("benchbot", "peer", "compiled")


def _int_inputs(model: Path) -> bool:
    """True when a model takes int32/int64 inputs (token ids), which the tool fills with negative values."""
    code = ("import sys,numpy as np\nfrom ai_edge_litert.interpreter import Interpreter\n"
            "d=Interpreter(model_path=sys.argv[1]).get_input_details()\n"
            "print(any(x['dtype'] in (np.int32,np.int64) for x in d))")
    child = common.run_child([PYTHON, "-c", code, str(model)])
    return child.stdout.strip().endswith("True")


def run_arm(arm: str, model: Path, threads: int, runs: int, args: argparse.Namespace, inputs: str
            ) -> dict[str, Any]:
    if arm == "benchbot":
        job = common.agent_job(model, threads, args.seconds, args.warmup_runs, args.warmup_seconds)
        child, _events, ns = common.run_agent_job(job)
        ms = [v / 1e6 for v in ns]
        stats = {"median_ms": median(ms), "mean_ms": sum(ms) / len(ms), "p5_ms": percentile(ms, 5), "n": len(ms)}
    elif arm == "peer":
        warm = max(args.warmup_runs, int(args.warmup_seconds * 1000 / max(args.probe_ms, 1e-3)))
        child = common.run_child([PYTHON, str(BENCH / "peer_tool.py"), "--model", str(model), "--num_threads",
                                  str(threads), "--num_runs", str(runs), "--warmup_runs", str(warm),
                                  "--inputs", inputs])
        if child.returncode != 0:
            raise SystemExit(f"litert-benchmark failed on {model}: {child.stderr.strip()[-800:]}")
        lat = json.loads(child.stdout.strip().splitlines()[-1])["latency"]
        stats = {"median_ms": lat["median_ms"], "mean_ms": lat["avg_ms"], "p5_ms": lat["p5_ms"], "n": lat["num_runs"]}
    else:
        child = common.run_child([PYTHON, str(BENCH / "bare_loop.py"), str(model), "--api", "compiled",
                                  "--threads", str(threads), "--warmup-runs", str(args.warmup_runs),
                                  "--warmup-seconds", str(args.warmup_seconds), "--seconds", str(args.seconds)])
        if child.returncode != 0:
            raise SystemExit(f"CompiledModel loop failed on {model}: {child.stderr.strip()[-800:]}")
        ns = json.loads(child.stdout.strip().splitlines()[-1])["latency_ns"]
        ms = [v / 1e6 for v in ns]
        stats = {"median_ms": median(ms), "mean_ms": sum(ms) / len(ms), "p5_ms": percentile(ms, 5), "n": len(ms)}
    return {**stats, "wall_s": child.wall_s, "foreign_cores": child.foreign_cores, "load_before": child.load_before}


def stock_cli(model: Path, threads: int, runs: int) -> dict[str, Any]:
    """The unmodified console script once: its rounded median, or the error it stops with."""
    exe = shutil.which("litert-benchmark") or str(Path(PYTHON).parent / "litert-benchmark")
    out = common.OUT / "peer-stock.json"
    out.unlink(missing_ok=True)
    child = common.run_child([exe, "--model", str(model), "--num_threads", str(threads), "--num_runs", str(runs),
                              "--result_json", str(out)])
    if child.returncode == 0 and out.is_file():
        lat = json.loads(out.read_text())["latency"]
        out.unlink()
        return {"ok": True, "median_ms": lat["median_ms"], "mean_ms": lat["avg_ms"]}
    errors = [ln.strip() for ln in child.stderr.splitlines()
              if ln.startswith("ERROR") or ln.startswith("RuntimeError")]
    return {"ok": False, "error": "; ".join(errors[:3])[:400]}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--warmup-runs", type=int, default=10)
    parser.add_argument("--warmup-seconds", type=float, default=0.5)
    parser.add_argument("--configs", default=None,
                        help="model:threads,... (default: shapes-cnn/fp32:1 and the model closest to 1 ms "
                             "at 1 and 2 threads)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds, args.warmup_runs, args.warmup_seconds = 1, 0.1, 2, 0.0

    if args.quick:  # a smoke test: one small model, no probing
        probe = {"shapes-cnn/fp32": 0.05}
        configs = [(common.model_path("shapes-cnn/fp32"), 1)]
    else:
        near, probe = common.closest_to(1.0, runs=200)
    if args.configs:
        configs = [(common.model_path(c.rsplit(":", 1)[0]), int(c.rsplit(":", 1)[1])) for c in args.configs.split(",")]
    elif not args.quick:
        configs = [(common.model_path("shapes-cnn/fp32"), 1), (near, 1), (near, 2)]
        configs = list(dict.fromkeys(configs))
    log(f"peer: {[(common.model_label(m), t) for m, t in configs]}, {args.rounds} rounds of {args.seconds:g} s; "
        f"load {common.loadavg()}")

    results = []
    for model, threads in configs:
        label = common.model_label(model)
        args.probe_ms = probe.get(label, 1.0)
        runs = max(100, int(args.seconds * 1000 / max(args.probe_ms, 1e-3)))
        inputs = "benchbot" if _int_inputs(model) else "tool"
        rounds = []
        for i in range(args.rounds):
            order = ARMS[i % 3:] + ARMS[:i % 3]
            got = {arm: run_arm(arm, model, threads, runs, args, inputs) for arm in order}
            rounds.append({"order": list(order), **got})
            log(f"  {label} t{threads} round {i + 1}: " + ", ".join(
                f"{a} {got[a]['median_ms']:.4f} ms" for a in ARMS) + f"; foreign {got['benchbot']['foreign_cores']:.2f}")
        med = {a: median([r[a]["median_ms"] for r in rounds]) for a in ARMS}
        mean = {a: median([r[a]["mean_ms"] for r in rounds]) for a in ARMS}
        p5 = {a: median([r[a]["p5_ms"] for r in rounds]) for a in ARMS}
        # full-speed processes only (common.fast_mode over every process of this row)
        flags = common.fast_mode([r[a]["median_ms"] for r in rounds for a in ARMS])
        fast = {a: [r[a]["median_ms"] for r, f in zip(rounds, flags[i::3]) if f] for i, a in enumerate(ARMS)}
        fast_ratio = (median(fast["benchbot"]) / median(fast["peer"])) if fast["benchbot"] and fast["peer"] else None
        results.append({
            "model": label, "threads": threads, "peer_inputs": inputs, "peer_runs": runs,
            "median_ms": med, "mean_ms": mean, "p5_ms": p5, "benchbot_over_peer_p5": p5["benchbot"] / p5["peer"],
            "fast_counts": {a: len(v) for a, v in fast.items()}, "benchbot_over_peer_fast": fast_ratio,
            "fast_median_ms": {a: median(v) if v else None for a, v in fast.items()},
            "benchbot_over_peer": med["benchbot"] / med["peer"],
            "benchbot_over_peer_rounds": spread([r["benchbot"]["median_ms"] / r["peer"]["median_ms"] for r in rounds]),
            "benchbot_over_peer_mean": mean["benchbot"] / mean["peer"],
            "benchbot_over_compiled": med["benchbot"] / med["compiled"],
            "compiled_over_peer": med["compiled"] / med["peer"],
            "foreign_cores": spread([r[a]["foreign_cores"] for r in rounds for a in ARMS]),
            "stock_cli": stock_cli(model, threads, min(runs, 500)),
            "rounds": rounds,
        })
    result = {"rounds": args.rounds, "seconds": args.seconds, "warmup_runs": args.warmup_runs,
              "warmup_seconds": args.warmup_seconds, "probe_ms": probe, "quick": args.quick, "configs": results}
    result["markdown"] = markdown(result)
    path = common.write_result("peer", result)
    log(f"wrote {path}")
    return result


def markdown(r: dict[str, Any]) -> str:
    rows = []
    for c in r["configs"]:
        s = c["benchbot_over_peer_rounds"]
        if c["stock_cli"]["ok"]:
            stock = f"{c['stock_cli']['median_ms']:.2f} ms"
        elif "gather index out of bounds" in c["stock_cli"]["error"]:
            stock = "fails: gather index out of bounds"
        else:
            stock = "fails: " + c["stock_cli"]["error"][:60]
        rows.append([
            c["model"], c["threads"], f"{c['median_ms']['benchbot']:.4f}", f"{c['median_ms']['peer']:.4f}",
            f"**{c['benchbot_over_peer']:.3f}** ({s['median']:.3f}; {s['min']:.3f} to {s['max']:.3f})",
            (f"{c['benchbot_over_peer_fast']:.3f} ({c['fast_counts']['benchbot']}/{c['fast_counts']['peer']})"
             if c["benchbot_over_peer_fast"] else "-"),
            f"{c['benchbot_over_peer_p5']:.3f}", f"{c['benchbot_over_peer_mean']:.3f}",
            f"{c['median_ms']['compiled']:.4f}",
            f"{c['benchbot_over_compiled']:.3f}", f"{c['compiled_over_peer']:.3f}",
            c["peer_inputs"], stock, f"{c['foreign_cores']['median']:.2f}",
        ])
    lines = [f"**Agreement with litert-benchmark** ({r['rounds']} rounds per row, arms rotating, fresh processes, "
             f"{r['seconds']:g} s of runs each; ratio of the medians over rounds, in brackets the median and range of the "
             "per-round ratios; \"full-speed rounds only\" compares the processes that ran while the machine was at full "
             "speed (how many of benchbot's/the peer's); p5s are the 5th percentiles, which a slow spell moves least):",
             ""]
    lines += common.md_table(["model", "thr", "benchbot ms", "litert-benchmark ms", "benchbot / peer",
                              "full-speed rounds only", "ratio of p5s", "ratio of means", "CompiledModel loop ms",
                              "benchbot / CompiledModel", "CompiledModel / peer", "peer inputs", "stock CLI median",
                              "foreign cores"], rows, align="lrrrrrrrrrrllr")
    return "\n".join(lines)


if __name__ == "__main__":
    out = main()
    print(out["markdown"])
