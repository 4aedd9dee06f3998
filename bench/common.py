"""Helpers shared by the bench scripts: the host, its load, child processes, statistics, output.

Benchmarks here measure benchbot itself (its observer effect, its agreement with the runtime's own
tool, its repeatability and its overhead), so every figure goes out with the machine it came from and
how busy that machine was while it was measured: the 1-minute load average and the CPU that *other*
processes used during each measurement ("foreign" CPU: the whole machine's busy time from /proc/stat
minus what the measured process tree used itself).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
OUT = Path(os.environ.get("BENCHBOT_BENCH_OUT") or BENCH / "out")  # the smoke test points it elsewhere
AGENT = REPO / "benchbot" / "agent.py"
ZOO = REPO / "benchbot" / "models" / "zoo"
PYTHON = sys.executable
TICKS = os.sysconf("SC_CLK_TCK")

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchbot.protocol import parse_line, standalone_job  # noqa: E402 - after the path fix above

# ----------------------------------------------------------------------------- the host


def loadavg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _runtime_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("ai-edge-litert")
    except Exception:  # noqa: BLE001 - a missing runtime is reported, not fatal here
        return None


def host() -> dict[str, Any]:
    """The machine the figures come from, and how loaded it is right now."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "arch": platform.machine(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "ai_edge_litert": _runtime_version(),
        "load_avg": loadavg(),
    }


def host_line(info: dict[str, Any]) -> str:
    return (f"{info['cpu']}, {info['cores']} cores, {info['arch']}, Linux {info['kernel']}, "
            f"Python {info['python']}, ai-edge-litert {info['ai_edge_litert']}")


def system_busy_ticks() -> int:
    """Busy jiffies of the whole machine (user+nice+system+irq+softirq+steal), from /proc/stat."""
    with open("/proc/stat") as fh:
        fields = [int(v) for v in fh.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields[:8]) - idle


def wait_quiet(max_load: float, max_wait_s: float, label: str = "") -> float:
    """Wait (at most max_wait_s) for the 1-minute load average to fall to max_load; return the load."""
    begin = time.monotonic()
    load = os.getloadavg()[0]
    announced = False
    while load > max_load and time.monotonic() - begin < max_wait_s:
        if not announced:
            log(f"{label}load average {load:.1f} > {max_load:.1f}: waiting up to {max_wait_s:.0f} s")
            announced = True
        time.sleep(2.0)
        load = os.getloadavg()[0]
    return load


def speed_canary(seconds: float = 3.0) -> dict[str, Any]:
    """How steady this machine's speed is: a fixed pure-Python workload timed in 0.1 s blocks.

    A virtual machine can run at two speeds for seconds at a time when the host is busy, with no
    trace in the guest's load average or steal time; every benchmark here then sees two modes.
    Returns the share of blocks within 20 % of the fastest and the slowest/fastest block ratio.
    """
    def work() -> int:
        total = 0
        for i in range(20000):
            total += i * i
        return total

    medians = []
    for _ in range(max(1, int(seconds / 0.1))):
        times = []
        end = time.perf_counter() + 0.1
        while time.perf_counter() < end:
            t0 = time.perf_counter_ns()
            work()
            times.append(time.perf_counter_ns() - t0)
        medians.append(statistics.median(times))
    fastest = min(medians)
    return {"blocks": len(medians), "fast_share": sum(m <= 1.2 * fastest for m in medians) / len(medians),
            "slow_over_fast": max(medians) / fastest, "fastest_us": fastest / 1e3}


# ----------------------------------------------------------------------------- child processes


@dataclass
class Child:
    """A finished child process with what it cost and how busy the rest of the machine was meanwhile."""

    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    cpu_s: float  # user + system of the child and everything it waited for
    max_rss: int  # bytes, the largest of the child and its waited-for descendants
    foreign_cores: float  # average cores busy with other processes while it ran
    load_before: float


def run_child(argv: Sequence[str], stdin: str | bytes | None = None, env: dict[str, str] | None = None,
              cwd: Path | None = None, timeout: float = 600) -> Child:
    """Run a command to completion (stdout/stderr captured), measuring its CPU, peak RSS and foreign load.

    The child is reaped with wait4, so CPU time and peak RSS are its own (and those of the
    descendants it waited for), not a running total over every child of this process.
    """
    data = stdin.encode() if isinstance(stdin, str) else stdin
    load = os.getloadavg()[0]
    busy0 = system_busy_ticks()
    begin = time.monotonic()
    proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd or REPO)
    chunks: dict[str, bytes] = {}

    def drain(name: str, stream: Any) -> None:
        chunks[name] = stream.read()

    def feed() -> None:
        try:
            proc.stdin.write(data)
            proc.stdin.close()
        except OSError:
            pass

    helpers = [threading.Thread(target=drain, args=(n, s), daemon=True)
               for n, s in (("out", proc.stdout), ("err", proc.stderr))]
    if data is not None:
        helpers.append(threading.Thread(target=feed, daemon=True))
    for h in helpers:
        h.start()
    killer = threading.Timer(timeout, proc.kill)
    killer.daemon = True
    killer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        killer.cancel()
    wall = time.monotonic() - begin
    busy = system_busy_ticks() - busy0
    proc.returncode = os.waitstatus_to_exitcode(status)
    for h in helpers:
        h.join(timeout=30)
    for stream in (proc.stdout, proc.stderr):
        stream.close()
    if wall >= timeout:
        raise RuntimeError(f"{list(argv)[:3]} did not finish within {timeout:.0f} s")
    cpu = usage.ru_utime + usage.ru_stime
    foreign = max(0.0, (busy / TICKS - cpu) / wall) if wall > 0 else 0.0
    return Child(proc.returncode, chunks.get("out", b"").decode(errors="replace"),
                 chunks.get("err", b"").decode(errors="replace"), wall, cpu, usage.ru_maxrss * 1024, foreign, load)


def agent_events(stdout: str) -> list[dict[str, Any]]:
    """The agent's events in its stdout, read by the host's own parser."""
    return [e for e in map(parse_line, stdout.splitlines()) if e is not None]


def agent_loop_ns(events: list[dict[str, Any]]) -> list[int]:
    out: list[int] = []
    for e in events:
        if e.get("event") == "samples" and e.get("phase") == "loop":
            out.extend(e["latency_ns"])
    return out


def agent_error(events: list[dict[str, Any]]) -> str | None:
    errors = [e.get("message") for e in events if e.get("event") == "error" and e.get("fatal", True)]
    return errors[-1] if errors else None


def agent_job(model: Path, threads: int, seconds: float, warmup_runs: int, warmup_seconds: float,
              telemetry_s: float = 0.1) -> dict[str, Any]:
    """A job for `agent.py run`: a loop of `seconds`, telemetry at `telemetry_s`, no eval pass."""
    return standalone_job(str(model), cell_id="bench", threads=threads, warmup_runs=warmup_runs,
                          warmup_seconds=warmup_seconds, min_runs=1, min_seconds=seconds, max_seconds=seconds * 3 + 30,
                          seed=0, telemetry_interval_s=telemetry_s, deadline_s=seconds * 4 + 120)


def run_agent_job(job: dict[str, Any]) -> tuple[Child, list[dict[str, Any]], list[int]]:
    """Run the real agent on one job in a fresh process: (the child, its events, its loop latencies in ns)."""
    child = run_child([PYTHON, str(AGENT), "run"], stdin=json.dumps(job))
    events = agent_events(child.stdout)
    latencies = agent_loop_ns(events)
    if child.returncode != 0 or not latencies:
        raise SystemExit(f"agent failed on {job['model_path']}: "
                         f"{agent_error(events) or child.stderr.strip()[-800:]}")
    return child, events, latencies


def cell_costs(results: Path, run_id: str) -> list[dict[str, Any]]:
    """Per repetition (agent process) of every cell of a stored run: host wall time, timed loop, overhead and
    where it went (seconds).

    overhead_s = wall - loop; init/first/warmup/accuracy are the agent's own phases, `rest` is what is
    left (process start, imports, transport); outside_agent_s leaves out the agent's timed phases.
    """
    from benchbot.summary import load_run

    run = load_run(run_id, results)
    out = []
    for cell, attempt in ((c, a) for c in run.cells for a in run.repetitions(c.key).values()):
        outcome, end, init = attempt.first("outcome"), attempt.first("cell_end"), attempt.first("init")
        if attempt.status != "ok" or not (outcome and end and init):
            raise SystemExit(f"{run_id}: cell {cell.key} did not finish ({attempt.reason})")
        acc = attempt.first("accuracy") or {}
        wall, loop = outcome["wall_s"], end["loop_ns"] / 1e9
        parts = {"init": init["init_ns"] / 1e9, "first": init["first_ns"] / 1e9, "warmup": end["warmup_ns"] / 1e9,
                 "accuracy": acc.get("eval_ns", 0) / 1e9}
        parts["rest"] = wall - loop - sum(parts.values())
        agent = parts["init"] + parts["first"] + parts["warmup"] + loop
        out.append({"key": cell.key, "repetition": attempt.repetition, "device": cell.device, "variant": cell.variant,
                    "wall_s": wall, "loop_s": loop,
                    "overhead_s": wall - loop, "outside_agent_s": wall - agent, **parts})
    return out


# ----------------------------------------------------------------------------- models


def zoo_models() -> list[Path]:
    return sorted(ZOO.glob("*/*.tflite"))


def model_label(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def model_path(label: str) -> Path:
    path = Path(label)
    if path.suffix == ".tflite":
        return path.resolve()
    family, _, variant = label.partition("/")
    return ZOO / family / f"{variant or 'fp32'}.tflite"


def closest_to(target_ms: float, threads: int = 1, runs: int = 200) -> tuple[Path, dict[str, float]]:
    """The zoo model whose median invoke() time is closest to target_ms (probed in a child process)."""
    code = (
        "import json,sys,time,numpy as np\n"
        "from ai_edge_litert.interpreter import Interpreter\n"
        "out={}\n"
        "for p in sys.argv[3:]:\n"
        "  it=Interpreter(model_path=p,num_threads=int(sys.argv[1]));it.allocate_tensors()\n"
        "  for d in it.get_input_details():\n"
        "    it.set_tensor(d['index'],np.ones(d['shape'],d['dtype']))\n"
        "  for _ in range(10): it.invoke()\n"
        "  ts=[]\n"
        "  for _ in range(int(sys.argv[2])):\n"
        "    a=time.perf_counter_ns();it.invoke();ts.append(time.perf_counter_ns()-a)\n"
        "  out[p]=float(np.median(ts))/1e6\n"
        "print(json.dumps(out))\n"
    )
    child = run_child([PYTHON, "-c", code, str(threads), str(runs), *map(str, zoo_models())])
    if child.returncode != 0:
        raise RuntimeError(f"probing the zoo failed: {child.stderr.strip()[-500:]}")
    times = json.loads(child.stdout.strip().splitlines()[-1])
    best = min(times, key=lambda p: abs(times[p] - target_ms))
    return Path(best), {model_label(Path(p)): round(v, 4) for p, v in times.items()}


# ----------------------------------------------------------------------------- statistics


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def spread(values: Sequence[float]) -> dict[str, float]:
    """median, min, max and the interquartile range of a handful of values (e.g. per-pair ratios)."""
    data = sorted(values)
    if not data:
        return {}
    q = statistics.quantiles(data, n=4, method="inclusive") if len(data) > 1 else [data[0]] * 3
    return {"median": data[len(data) // 2] if len(data) % 2 else median(data), "min": data[0], "max": data[-1],
            "q1": q[0], "q3": q[2], "n": len(data)}


def fast_mode(values: Sequence[float], tolerance: float = 1.15) -> list[bool]:
    """Which measurements ran while the machine was at full speed: within `tolerance` of the fastest.

    On a host that slows this VM down for seconds at a time (see speed_canary), whole processes
    land in the slow mode; comparing only fast-mode measurements of each arm compares like with
    like. The arms alternate, so which arm meets a slow spell is down to chance, and the counts per
    arm are reported so that an arm which itself caused slow spells would show.
    """
    fastest = min(values) if values else 0.0
    return [v <= tolerance * fastest for v in values]


def percentile(values: Sequence[float], p: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=float), p))


def pct(ratio: float) -> str:
    """A ratio as a signed percentage difference: 1.0123 -> '+1.23 %'."""
    return f"{(ratio - 1) * 100:+.2f} %"


# ----------------------------------------------------------------------------- output


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def write_result(name: str, payload: dict[str, Any]) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    body = {"benchmark": name, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "host": host(), **payload}
    path.write_text(json.dumps(body, indent=2, default=str))
    return path


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> list[str]:
    """A Markdown table; `align` has one l or r per column (default: first left, the rest right)."""
    from benchbot.report.fmt import markdown_table

    align = align or "l" + "r" * (len(header) - 1)
    return markdown_table(header, rows, {h for h, a in zip(header, align) if a == "r"})
