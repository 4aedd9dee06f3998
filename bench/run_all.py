#!/usr/bin/env python3
"""Run every benchbot benchmark in one go and print a markdown summary (what `make bench` does).

    python bench/run_all.py [--quick] [--skip-ssh] [--only observer,peer,...] [--max-load 1.5 --wait 60]

In order: observer (observer effect, sampler CPU), peer (agreement with litert-benchmark),
repeatability (the same plan twice), orchestration (cost per agent process, from those two runs),
gate (honest intervals and the regression gate over several runs of one plan), report_cost (report and load_run on 200 cells x 10,000 samples), ssh_overhead (another
engineer's script, run as is when sshd exists), fleet (the controller's cost at 10/50/100 SSH devices; a few minutes). Each writes bench/out/<name>.json; this script
writes bench/out/summary.json and bench/out/summary.md. About 6-8 minutes on a 2-core machine.

The machine, its load average before and after each benchmark, and the CPU other processes used
during each measurement go out with the figures. --max-load/--wait make each benchmark wait (up to
--wait seconds) for the 1-minute load average to drop first; by default nothing waits, the load is
only recorded. --quick runs every script with tiny settings: a smoke test, not a measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import BENCH, OUT, PYTHON, log  # noqa: E402

ORDER = ("observer", "peer", "repeatability", "orchestration", "gate", "report_cost", "ssh_overhead", "fleet")


def _run_module(name: str, quick: bool) -> dict[str, Any]:
    module = __import__(name)
    return module.main(["--quick"] if quick else [])


def _run_ssh(quick: bool) -> dict[str, Any]:
    if quick:
        return {"skipped": "not in --quick (it takes about a minute and starts sshd)"}
    if not (BENCH / "ssh_overhead.py").is_file():
        return {"skipped": "bench/ssh_overhead.py is missing"}
    env = dict(os.environ)
    env["PYTHONPATH"] = str(common.REPO) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([PYTHON, str(BENCH / "ssh_overhead.py")], cwd=common.REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    if done.returncode == 2:
        return {"skipped": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "exit 2"}
    if done.returncode != 0:
        return {"failed": done.stderr.strip()[-800:]}
    data = json.loads((OUT / "ssh_overhead.json").read_text())
    return {"markdown": data.get("markdown", done.stdout.strip())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings everywhere (smoke test)")
    parser.add_argument("--skip-ssh", action="store_true")
    parser.add_argument("--only", default=None, help=f"comma-separated subset of {','.join(ORDER)}")
    parser.add_argument("--max-load", type=float, default=None, help="wait for the 1-min load average to drop to this")
    parser.add_argument("--wait", type=float, default=60.0, help="longest wait per benchmark for --max-load (s)")
    args = parser.parse_args(argv)
    names = [n for n in ORDER if not args.only or n in args.only.split(",")]
    for needs_sshd in ("ssh_overhead", "fleet"):
        if args.skip_ssh and needs_sshd in names:
            names.remove(needs_sshd)

    begin = time.monotonic()
    info = common.host()
    canary = {"start": common.speed_canary(1.0 if args.quick else 3.0)}
    log(f"host: {common.host_line(info)}; load average {info['load_avg']}; speed canary: fast "
        f"{100 * canary['start']['fast_share']:.0f} % of the time, slow/fast {canary['start']['slow_over_fast']:.2f}")
    done: dict[str, Any] = {}
    loads: dict[str, Any] = {}
    for name in names:
        if args.max_load is not None:
            common.wait_quiet(args.max_load, args.wait, f"{name}: ")
        started, before = time.monotonic(), common.loadavg()
        try:
            done[name] = _run_ssh(args.quick) if name == "ssh_overhead" else _run_module(name, args.quick)
        except SystemExit as exc:  # a benchmark that cannot run says why; the others still run
            done[name] = {"failed": str(exc)}
        loads[name] = {"before": before, "after": common.loadavg(), "seconds": round(time.monotonic() - started, 1)}
        log(f"{name}: {loads[name]['seconds']:.0f} s, load {before[0]:.1f} -> {loads[name]['after'][0]:.1f}")
    canary["end"] = common.speed_canary(1.0 if args.quick else 3.0)
    elapsed = time.monotonic() - begin

    lines = [f"Machine: {common.host_line(info)}. Command: `make bench` (`python bench/run_all.py"
             f"{' --quick' if args.quick else ''}`), {time.strftime('%Y-%m-%d', time.gmtime())}, "
             f"{elapsed / 60:.1f} min. 1-minute load average at the start {info['load_avg'][0]:.1f} "
             f"on {info['cores']} cores. Speed canary (a fixed pure-Python loop timed in 0.1 s blocks, "
             "3 s at the start and at the end): "
             + "; ".join(f"{when}: fastest block {c['fastest_us']:.0f} µs, {100 * c['fast_share']:.0f} % of blocks "
                         f"within 20 % of it, slowest {c['slow_over_fast']:.2f}x" for when, c in canary.items())
             + ". A virtual machine's host can slow it down like this with no trace in the guest's load average."]
    if args.quick:
        lines.append("**--quick: tiny settings, a smoke test; these numbers measure nothing.**")
    for name in names:
        result = done[name]
        lines.append("")
        if "markdown" in result:
            lines.append(result["markdown"])
        else:
            status = f"skipped: {result['skipped']}" if "skipped" in result else f"FAILED: {result.get('failed')}"
            lines.append(f"**{name}**: {status}")
        load = loads[name]
        lines.append(f"_(load average {load['before'][0]:.1f} before, {load['after'][0]:.1f} after; "
                     f"{load['seconds']:.0f} s)_")
    text = "\n".join(lines)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "summary.md").write_text(text + "\n")
    summary = {"host": info, "elapsed_s": elapsed, "quick": args.quick, "loads": loads, "speed_canary": canary,
               "results": {n: {k: v for k, v in r.items() if k != "markdown"} for n, r in done.items()},
               "markdown": text}
    (OUT / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(text)
    log(f"all benchmarks: {elapsed:.0f} s; wrote {OUT / 'summary.md'} and {OUT / 'summary.json'}")
    failed = [n for n, r in done.items() if "failed" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
