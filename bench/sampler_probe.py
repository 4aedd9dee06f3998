#!/usr/bin/env python3
"""What the agent's telemetry Sampler costs: CPU time of its own thread, per reading and per second.

Imports `Sampler` from benchbot/agent.py (by path, as the device would run it) and runs it at the
given interval for a while, its JSON lines going to stdout (a pipe to the caller, as on a device),
while the main thread either sleeps (`--main idle`) or times invoke() in a loop on a model
(`--main invoke`, the real situation). The thread's CPU comes from time.thread_time() inside the
thread, so nothing else in the process is counted. With `--blocks N` the invoke loop runs in N
blocks with the sampler off and on in turn (off on on off ...): the sampler's effect on invoke()
latency within one process, where a change in the machine's load hits both kinds of block alike. Also times read_once() alone and one extra
small /sys read (a thermal zone or cpufreq file that this machine may not have).

With `--tree orin|nano|pi4|pi5` (or a folder holding `sys/` and maybe `bin/`) the sampler reads a
recorded board's sysfs tree from tests/data/sysfs (BENCHBOT_SYSFS) and its fake vcgencmd (PATH): that
board's thermal zones, cpufreq files and power rails on every reading. A subprocess source (the Pi 5's
`vcgencmd pmic_read_adc`, at most once a second) costs CPU in the child, not the thread: that is
measured separately from the children's rusage (`children_core_pct`); the fake vcgencmd is a shell
script, so it overstates the real binary's cost.

The last stdout line is the result, as JSON with "probe": true.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import sys
import time
from pathlib import Path

AGENT = Path(__file__).resolve().parent.parent / "benchbot" / "agent.py"
TREES = Path(__file__).resolve().parent.parent / "tests" / "data" / "sysfs"


def load_agent(path: Path = AGENT):
    spec = importlib.util.spec_from_file_location("benchbot_agent_probe", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--main", choices=["idle", "invoke"], default="invoke")
    parser.add_argument("--model", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--blocks", type=int, default=0, help="with --main invoke: sampler off/on blocks")
    parser.add_argument("--block-seconds", type=float, default=1.0)
    parser.add_argument("--agent", default=str(AGENT), help="the agent.py to take Sampler from (before/after)")
    parser.add_argument("--board-files", action="store_true",
                        help="add a Raspberry Pi 4's files to each reading (1 thermal zone, 4 cpufreq), "
                             "played by a small integer file of this machine")
    parser.add_argument("--tree", default=None, metavar="BOARD",
                        help="read a recorded board's sysfs (and fake vcgencmd): orin, nano, pi4, pi5 or a folder")
    args = parser.parse_args()
    if args.tree:
        root = Path(args.tree) if Path(args.tree).is_dir() else TREES / args.tree
        if not (root / "sys").is_dir():
            parser.error(f"--tree {args.tree}: no sys/ folder in {root}")
        os.environ["BENCHBOT_SYSFS"] = str(root / "sys")
        if (root / "bin").is_dir():
            os.environ["PATH"] = f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    agent = load_agent(Path(args.agent))

    stand_in = next((p for p in ("/sys/class/net/lo/mtu", "/proc/sys/kernel/pid_max") if os.path.exists(p)), None)

    class TimedSampler(agent.Sampler):
        cpu_s = 0.0

        def __init__(self, interval_s: float) -> None:
            agent.Sampler.__init__(self, interval_s)
            if args.board_files and stand_in:
                self.zones = self.zones + [{"path": stand_in, "type": "cpu-thermal"}]
                self.freq_paths = self.freq_paths + [stand_in] * 4

        def run(self) -> None:
            start = time.thread_time()
            try:
                agent.Sampler.run(self)
            finally:
                self.cpu_s = time.thread_time() - start

    invoke = None
    if args.main == "invoke":
        import numpy as np
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=args.model, num_threads=args.threads)
        interpreter.allocate_tensors()
        rng = np.random.default_rng(0)
        for d in interpreter.get_input_details():
            interpreter.set_tensor(d["index"], agent.random_input(np, rng, d, tuple(d["shape"])))
        invoke = interpreter.invoke
        for _ in range(10):
            invoke()

    def timed_loop(seconds: float) -> list[int]:
        clock, latencies = time.perf_counter_ns, []
        end = clock() + int(seconds * 1e9)
        t1 = clock()
        while t1 < end:
            t0 = clock()
            invoke()
            t1 = clock()
            latencies.append(t1 - t0)
        return latencies

    def children_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    if hasattr(agent, "power_meters"):
        agent.power_meters()  # found once per process (a vcgencmd call on a Pi): not part of the per-second cost
    children0 = children_cpu()
    blocks: list[dict] = []
    cpu_s = wall = 0.0
    readings = runs = 0
    if invoke is not None and args.blocks:
        # In-process A/B: the same invoke loop with the sampler off and on in alternating blocks
        # (off on on off off on ...), so a change of load in the machine hits both alike.
        for i in range(args.blocks):
            on = (i % 4) in (1, 2)
            sampler = TimedSampler(args.interval) if on else None
            begin = time.perf_counter()
            if sampler:
                sampler.phase = "loop"
                sampler.start()
            latencies = timed_loop(args.block_seconds)
            if sampler:
                sampler.stop()
                cpu_s += sampler.cpu_s
                readings += sampler.readings
                wall += time.perf_counter() - begin
            runs += len(latencies)
            ordered = sorted(latencies)
            blocks.append({"sampler": on, "n": len(ordered), "median_ns": ordered[len(ordered) // 2],
                           "p99_ns": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]})
    else:
        sampler = TimedSampler(args.interval)
        sampler.phase = "loop"
        begin = time.perf_counter()
        sampler.start()
        if invoke is None:
            time.sleep(args.seconds)
        else:
            runs = len(timed_loop(args.seconds))
        sampler.stop()
        wall = time.perf_counter() - begin
        cpu_s, readings = sampler.cpu_s, sampler.readings
    children_s = children_cpu() - children0
    sampler = TimedSampler(args.interval)  # a fresh one for the back-to-back costs below

    # read_once() alone, many times in a row, on this thread.
    reps = 300
    c0 = time.thread_time()
    for _ in range(reps):
        sampler.read_once()
    read_us = (time.thread_time() - c0) / reps * 1e6
    # one emit() of a typical reading to stdout (the pipe)
    try:
        reading = sampler.read_once(force_power=True)  # with this board's power reading, if it has a source
    except TypeError:  # an agent from before power sources
        reading = sampler.read_once()
    # a subprocess power source (Pi 5 PMIC): CPU per read in this thread and in the child, and the same for
    # exec'ing /bin/cat, a stand-in for the real vcgencmd (a small compiled binary; the fake is a shell script)
    per_call = {}
    meter = getattr(sampler, "power", None)
    if meter is not None and meter.subprocess_read:
        for name, call in (("source", meter.read), ("exec_stand_in", lambda: agent.subprocess.run(
                ["cat", "/proc/loadavg"], capture_output=True, timeout=5))):
            c0, k0 = time.thread_time(), children_cpu()
            for _ in range(50):
                call()
            per_call[name] = {"thread_ms": (time.thread_time() - c0) / 50 * 1e3,
                              "children_ms": (children_cpu() - k0) / 50 * 1e3}
    c0 = time.thread_time()
    for _ in range(reps):
        agent.emit("telemetry", **dict(reading))
    emit_us = (time.thread_time() - c0) / reps * 1e6
    # one small sysfs read, the cost of each thermal zone or cpufreq file a board adds
    path = next((p for p in ("/sys/devices/system/cpu/online", "/sys/kernel/mm/transparent_hugepage/enabled",
                             "/proc/loadavg") if os.path.exists(p)), "/proc/loadavg")
    c0 = time.thread_time()
    for _ in range(reps):
        agent._read_int(path)
    file_us = (time.thread_time() - c0) / reps * 1e6

    result = {
        "probe": True, "interval_s": args.interval, "main": args.main, "wall_s": wall, "readings": readings,
        "thread_cpu_s": cpu_s, "core_pct": 100.0 * cpu_s / wall if wall else None,
        "per_reading_us": cpu_s / readings * 1e6 if readings else None,
        "read_once_us": read_us, "emit_us": emit_us, "extra_file_us": file_us, "extra_file": path,
        "thermal_zones": len(sampler.zones), "freq_files": len(sampler.freq_paths), "board_files": args.board_files,
        "psutil": sampler.stat.psutil is not None, "invoke_runs": runs, "blocks": blocks,
        "tree": args.tree, "power_source": sampler.power.describe() if sampler.power else None,
        "power_reading": {k: v for k, v in reading.items() if k in ("power_w", "rails_w")} or None,
        "children_cpu_s": children_s, "subprocess_per_read_ms": per_call or None, "children_core_pct": 100.0 * children_s / wall if wall else None,
    }
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
