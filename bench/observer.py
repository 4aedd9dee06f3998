#!/usr/bin/env python3
"""Observer effect: does timing a model with benchbot change what is timed?

(a) bench/bare_loop.py: perf_counter_ns around invoke() and nothing else, and
(b) the benchbot agent (`python benchbot/agent.py run`, a JSON job on stdin, stdout a pipe to this
    script as it is to the host), telemetry on at its default 100 ms,
time the same model, threads and inputs, each in a fresh process, alternating over several pairs
(a b, b a, a b, ...: the order flips every pair so a slow drift of the machine cannot favour one).
Reported: the ratio of the two arms' medians (median over processes of each process's median), the
spread of the per-pair ratios, the same for p99, and how busy the rest of the machine was.

Then the sampler's own CPU: bench/sampler_probe.py runs agent.Sampler at the default interval and
reads the CPU time of its thread (time.thread_time), with the main thread idle and timing invoke().

    python bench/observer.py [--model tweet-large/int8] [--pairs 6] [--seconds 3] [--quick]

By default the model is the zoo variant whose invoke() takes closest to 1 ms on one thread here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import BENCH, PYTHON, log, median, percentile, spread  # noqa: E402

TARGET_RATIO = 0.01  # benchbot's median within 1 % of the bare loop's
TARGET_SAMPLER_PCT = 1.0  # sampler under 1 % of a core at the default interval


def _arm_stats(latency_ns: list[int]) -> dict[str, Any]:
    ms = [v / 1e6 for v in latency_ns]
    return {"n": len(ms), "median_ms": median(ms), "mean_ms": sum(ms) / len(ms), "p10_ms": percentile(ms, 10),
            "p90_ms": percentile(ms, 90),
            "p99_ms": percentile(ms, 99), "max_ms": max(ms)}


def run_bare(model: Path, threads: int, args: argparse.Namespace) -> dict[str, Any]:
    child = common.run_child([PYTHON, str(BENCH / "bare_loop.py"), str(model), "--threads", str(threads),
                              "--warmup-runs", str(args.warmup_runs), "--warmup-seconds", str(args.warmup_seconds),
                              "--seconds", str(args.seconds), "--seed", "0"])
    if child.returncode != 0:
        raise SystemExit(f"bare loop failed: {child.stderr.strip()[-800:]}")
    data = json.loads(child.stdout.strip().splitlines()[-1])
    return {"arm": "bare", **_arm_stats(data["latency_ns"]), "wall_s": child.wall_s, "cpu_s": child.cpu_s,
            "foreign_cores": child.foreign_cores, "load_before": child.load_before}


def run_agent(model: Path, threads: int, args: argparse.Namespace) -> dict[str, Any]:
    job = common.agent_job(model, threads, args.seconds, args.warmup_runs, args.warmup_seconds)
    child, events, latencies = common.run_agent_job(job)
    end = next(e for e in events if e.get("event") == "cell_end")
    return {"arm": "benchbot", **_arm_stats(latencies), "wall_s": child.wall_s, "cpu_s": child.cpu_s,
            "foreign_cores": child.foreign_cores, "load_before": child.load_before,
            "telemetry_readings": end.get("telemetry_readings")}


def _ab(blocks: list[dict[str, Any]], block_seconds: float) -> dict[str, Any]:
    """On/off ratios of adjacent blocks (each adjacent pair holds one of each), all and fast-mode only."""
    pairs = []
    for a, b in zip(blocks[0::2], blocks[1::2]):
        if a["sampler"] != b["sampler"]:
            on_b, off_b = (a, b) if a["sampler"] else (b, a)
            pairs.append((on_b, off_b))
    fast = common.fast_mode([b["median_ns"] for b in blocks])
    fast_of = {id(b): f for b, f in zip(blocks, fast)}
    both_fast = [(on_b, off_b) for on_b, off_b in pairs if fast_of[id(on_b)] and fast_of[id(off_b)]]
    out = {"blocks": len(blocks), "block_seconds": block_seconds,
           "pair_ratios": spread([on_b["median_ns"] / off_b["median_ns"] for on_b, off_b in pairs]),
           "fast_pairs": len(both_fast),
           "fast_pair_ratios": spread([on_b["median_ns"] / off_b["median_ns"] for on_b, off_b in both_fast]),
           "p99_ratios": spread([on_b["p99_ns"] / off_b["p99_ns"] for on_b, off_b in (both_fast or pairs)])}
    return out


def sampler_cost(model: Path, seconds: float, blocks: int, block_seconds: float, ab_threads: list[int]
                 ) -> dict[str, Any]:
    """The sampler's CPU with the main thread idle; its CPU and effect in off/on blocks of one invoke loop."""
    out: dict[str, Any] = {"ab": {}}
    runs = [("idle", 1, ["--seconds", str(seconds)])]
    runs += [("invoke", t, ["--blocks", str(blocks), "--block-seconds", str(block_seconds)]) for t in ab_threads]
    for main, threads, extra in runs:
        child = common.run_child([PYTHON, str(BENCH / "sampler_probe.py"), "--interval", "0.1", "--main", main,
                                  "--model", str(model), "--threads", str(threads), *extra])
        if child.returncode != 0:
            raise SystemExit(f"sampler probe failed: {child.stderr.strip()[-800:]}")
        result = json.loads(child.stdout.strip().splitlines()[-1])
        result["foreign_cores"] = child.foreign_cores
        if main == "idle":
            out["idle"] = result
        else:
            out.setdefault("invoke", result)  # the first thread count's run for the CPU table
            out["ab"][threads] = {**_ab(result["blocks"], block_seconds), "core_pct": result["core_pct"],
                                  "foreign_cores": child.foreign_cores}
    return out


def _fast_ratio(pairs: list[dict[str, Any]], key: str = "median_ms") -> dict[str, Any]:
    """Ratio of the arms' medians over fast-mode processes only (see common.fast_mode)."""
    fast = common.fast_mode([p[a][key] for p in pairs for a in ("bare", "benchbot")])
    bare = [p["bare"][key] for p, f in zip(pairs, fast[0::2]) if f]
    bot = [p["benchbot"][key] for p, f in zip(pairs, fast[1::2]) if f]
    out: dict[str, Any] = {"bare_fast": len(bare), "benchbot_fast": len(bot), "pairs": len(pairs)}
    if bare and bot:
        out.update(bare_ms=median(bare), benchbot_ms=median(bot), ratio=median(bot) / median(bare))
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="a .tflite file or zoo family/variant (default: closest to 1 ms)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=1.5, help="timed loop per process")
    parser.add_argument("--warmup-runs", type=int, default=10)
    parser.add_argument("--warmup-seconds", type=float, default=0.5)
    parser.add_argument("--sampler-seconds", type=float, default=5.0, help="sampler alone, main thread idle")
    parser.add_argument("--blocks", type=int, default=20, help="sampler off/on blocks of one invoke loop")
    parser.add_argument("--block-seconds", type=float, default=1.0)
    parser.add_argument("--ab-threads", default="1,2", help="thread counts of the in-process sampler off/on test")
    parser.add_argument("--quick", action="store_true", help="one short pair (a smoke test, not a measurement)")
    args = parser.parse_args(argv)
    if args.quick:
        args.pairs, args.seconds, args.warmup_runs, args.warmup_seconds, args.sampler_seconds = 1, 0.1, 2, 0.0, 0.3
        args.blocks, args.block_seconds, args.ab_threads = 4, 0.25, "1"

    probe = None
    if args.quick and not args.model:
        args.model = "shapes-cnn/fp32"  # no probing in a smoke test
    if args.model:
        model = common.model_path(args.model)
    else:
        model, probe = common.closest_to(1.0, threads=args.threads, runs=50 if args.quick else 300)
    log(f"observer: {common.model_label(model)}, {args.threads} thread(s), {args.pairs} pairs of "
        f"{args.seconds:g} s loops; load {common.loadavg()}")

    pairs = []
    for i in range(args.pairs):
        order = ("bare", "benchbot") if i % 2 == 0 else ("benchbot", "bare")
        got = {}
        for arm in order:
            got[arm] = run_bare(model, args.threads, args) if arm == "bare" else run_agent(model, args.threads, args)
        ratio = got["benchbot"]["median_ms"] / got["bare"]["median_ms"]
        pairs.append({"pair": i, "order": list(order), "bare": got["bare"], "benchbot": got["benchbot"],
                      "ratio_median": ratio, "ratio_p99": got["benchbot"]["p99_ms"] / got["bare"]["p99_ms"]})
        log(f"  pair {i + 1}: bare {got['bare']['median_ms']:.4f} ms, benchbot {got['benchbot']['median_ms']:.4f} ms, "
            f"ratio {ratio:.4f}; foreign CPU {got['bare']['foreign_cores']:.2f}/{got['benchbot']['foreign_cores']:.2f} "
            f"cores")

    bare_medians = [p["bare"]["median_ms"] for p in pairs]
    bot_medians = [p["benchbot"]["median_ms"] for p in pairs]
    ratio = median(bot_medians) / median(bare_medians)
    ratios = spread([p["ratio_median"] for p in pairs])
    p99 = median([p["benchbot"]["p99_ms"] for p in pairs]) / median([p["bare"]["p99_ms"] for p in pairs])
    foreign = [p[a]["foreign_cores"] for p in pairs for a in ("bare", "benchbot")]
    sampler = sampler_cost(model, args.sampler_seconds, args.blocks, args.block_seconds,
                           [int(t) for t in args.ab_threads.split(",")])
    p10 = median([p["benchbot"]["p10_ms"] for p in pairs]) / median([p["bare"]["p10_ms"] for p in pairs])

    result = {
        "model": common.model_label(model), "threads": args.threads, "pairs": args.pairs,
        "loop_seconds": args.seconds, "warmup_runs": args.warmup_runs, "warmup_seconds": args.warmup_seconds,
        "probe_ms": probe, "quick": args.quick,
        "bare_median_ms": median(bare_medians), "benchbot_median_ms": median(bot_medians),
        "ratio_of_medians": ratio, "pair_ratios": ratios, "ratio_p99": p99, "ratio_p10": p10,
        "fast_mode": _fast_ratio(pairs),
        "within_target": abs(ratio - 1) <= TARGET_RATIO,
        "foreign_cores": spread(foreign),
        "sampler": sampler,
        "sampler_within_target": all(x["core_pct"] < TARGET_SAMPLER_PCT
                                     for x in [sampler["idle"], *sampler["ab"].values()]),
        "per_pair": pairs,
    }
    result["markdown"] = markdown(result)
    path = common.write_result("observer", result)
    log(f"wrote {path}")
    return result


def markdown(r: dict[str, Any]) -> str:
    s, fm = r["pair_ratios"], r["fast_mode"]
    fast = (f"Only the processes that ran while the machine was at full speed (bare {fm['bare_fast']} of "
            f"{fm['pairs']}, benchbot {fm['benchbot_fast']} of {fm['pairs']}): "
            f"{fm['bare_ms']:.4f} vs {fm['benchbot_ms']:.4f} ms, ratio **{fm['ratio']:.4f}**."
            if "ratio" in fm else "No process of one arm ran at full speed.")
    lines = [
        f"**Observer effect** ({r['model']}, {r['threads']} thread, {r['pairs']} alternating pairs of fresh "
        f"processes, {r['loop_seconds']:g} s loops): bare loop median {r['bare_median_ms']:.4f} ms, benchbot agent "
        f"(telemetry every 100 ms) {r['benchbot_median_ms']:.4f} ms: ratio of medians **{r['ratio_of_medians']:.4f}** "
        f"({common.pct(r['ratio_of_medians'])}; per-pair ratios: median {s['median']:.4f}, IQR {s['q1']:.3f} to "
        f"{s['q3']:.3f}, range {s['min']:.3f} to {s['max']:.3f}); p10 ratio {r['ratio_p10']:.4f}, p99 ratio "
        f"{r['ratio_p99']:.3f}. {fast} Target ±1 %: {'met' if r['within_target'] else 'MISSED'} (all pairs). "
        f"Other processes used {r['foreign_cores']['median']:.2f} cores (median) while measuring.",
        "",
    ]
    ab_rows = []
    for threads, ab in r["sampler"]["ab"].items():
        fp = ab["fast_pair_ratios"]
        ab_rows.append([threads, ab["blocks"], f"{ab['pair_ratios']['median']:.4f}",
                        f"{ab['pair_ratios']['q1']:.3f} to {ab['pair_ratios']['q3']:.3f}",
                        f"**{fp['median']:.4f}** ({ab['fast_pairs']} pairs)" if fp else "-",
                        f"{ab['p99_ratios']['median']:.3f}", f"{ab['core_pct']:.2f} %"])
    lines += [f"In one process: the same invoke() loop in blocks of {ab['block_seconds']:g} s with the sampler "
              "off and on in turn (off on on off ...); on/off ratio of adjacent blocks' medians:", ""]
    lines += common.md_table(["threads", "blocks", "on/off median", "IQR", "both blocks at full speed",
                              "p99 on/off", "sampler CPU"], ab_rows)
    rows = []
    for key, label in (("idle", "main thread idle"), ("invoke", "main thread timing invoke()")):
        x = r["sampler"][key]
        per = f"{x['per_reading_us']:.0f} µs" if x["per_reading_us"] else "-"
        rows.append([label, x["readings"], per, f"{x['read_once_us']:.0f} µs", f"**{x['core_pct']:.2f} %**",
                     f"{x['foreign_cores']:.2f}"])
    lines += [""]
    lines += common.md_table(["sampler at 100 ms", "readings", "CPU per reading (its thread)",
                              "read_once() back to back", "share of one core", "foreign cores"], rows)
    extra = r["sampler"]["invoke"]
    lines += ["", f"This machine has {extra['thermal_zones']} thermal zones and {extra['freq_files']} cpufreq files; "
              f"each one a board adds costs about {extra['extra_file_us']:.0f} µs per reading here "
              f"({extra['extra_file_us'] / 1e3:.3f} % of a core at 100 ms). Target < 1 % of a core: "
              f"{'met' if r['sampler_within_target'] else 'MISSED'}."]
    return "\n".join(lines)


if __name__ == "__main__":
    out = main()
    print(out["markdown"])
