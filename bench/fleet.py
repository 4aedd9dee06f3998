#!/usr/bin/env python3
"""What the controller costs per device when it holds a fleet: 10, 50 and 100 SSH devices at once.

Every device is an SSH device on loopback: the devices share a few OpenSSH servers (tests/sshd.py; at most
50 devices per server) and each has its own work folder, so each one is a separate connection, agent
push, lock and store stream, exactly as a board would be. The agents are real (this machine's Python);
each device runs one small cell twice (`--repetitions 2`, one agent process per repetition) with
`--max-parallel N` (all at once). `benchbot run` is a subprocess of this script, which measures:

- peak RSS of the controller (`wait4` ru_maxrss) and its CPU time (user + system) per repetition;
- peak threads, open TCP connections and file descriptors (psutil, sampled every 50 ms);
- the device side's CPU per repetition: the sshds' own time plus everything their sessions ran and reaped
  (sessions, wrappers, agents), i.e. what boards would spend on themselves;
- time per repetition outside the agents: per device, (its last repetition's end - the run's start -
  the wall time of its own agent processes) / its repetitions, as median and max over devices. The
  device's `python` is a bash wrapper that stamps each agent process's start and end ($EPOCHREALTIME,
  no fork). This includes connecting, pushing, the device lock and waiting for a CPU while the other
  devices' agents run on the same 2 cores, so it is an upper bound of what the controller adds.

    python bench/fleet.py [--sizes 10,50,100] [--quick]

Writes bench/out/fleet.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource  # noqa: F401 - documents that ru_maxrss comes from wait4
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import common  # noqa: E402
import psutil  # noqa: E402

from benchbot.models.catalog import ZOO_DIR, zoo_families  # noqa: E402

PER_SERVER = 50
FLAGS = ["--variants", "fp32", "--repetitions", "2", "--warmup-runs", "1", "--warmup-seconds", "0", "--min-runs", "5",
         "--min-seconds", "0", "--max-seconds", "5", "--no-accuracy", "--progress", "devices"]


def _servers(count: int, tmp: Path, home: Path) -> list[Any]:
    from tests.sshd import SSHD, SSHDServer, keygen

    if not os.path.exists(SSHD):
        raise SystemExit("bench/fleet.py needs OpenSSH's sshd at /usr/sbin/sshd")
    keys = tmp / "keys"
    user, host = keygen(keys / "user"), keygen(keys / "host")
    return [SSHDServer(folder=tmp / f"sshd{i}", host_key=host, authorized_keys=[user], user_key=user,
                       extra_config=f"SetEnv HOME={home}").start() for i in range(count)]


def _recorded(model: Path, tmp: Path) -> Path:
    """A real agent's output for `hello` and for one `run` of the bench's cell, recorded once on this machine."""
    from benchbot.protocol import standalone_job
    from benchbot.runner import AGENT_PATH

    folder = tmp / "recorded"
    folder.mkdir()
    hello = subprocess.run([sys.executable, str(AGENT_PATH), "hello", "auto"], capture_output=True, text=True,
                           check=True)
    (folder / "hello.jsonl").write_text(hello.stdout)
    job = standalone_job(str(model / "fp32.tflite"), warmup_runs=1, warmup_seconds=0.0, min_runs=5, min_seconds=0.0,
                         max_seconds=5.0)
    run = subprocess.run([sys.executable, str(AGENT_PATH), "run"], input=json.dumps(job), capture_output=True,
                         text=True, check=True)
    (folder / "run.jsonl").write_text(run.stdout)
    return folder


def _replayer(tmp: Path, recorded: Path) -> Path:
    """A device "python" that answers `hello` and `run` with the recorded output (other verbs: real Python)."""
    path = tmp / "python-replay"
    path.write_text("#!/bin/bash\n"
                    'case "$2" in\n'
                    f'  hello) exec cat "{recorded}/hello.jsonl" ;;\n'
                    f'  run) cat > /dev/null; exec cat "{recorded}/run.jsonl" ;;\n'
                    f'  *) exec "{sys.executable}" "$@" ;;\n'
                    "esac\n")
    path.chmod(0o755)
    return path


def _wrapper(tmp: Path, stamps: Path, python: str) -> Path:
    path = tmp / "python-stamped"
    path.write_text("#!/bin/bash\n"
                    "s=$EPOCHREALTIME\n"
                    f'"{python}" "$@"\n'
                    "rc=$?\n"
                    f'echo "$s $EPOCHREALTIME $2" >> "{stamps}/$BENCHBOT_DEVICE"\n'
                    "exit $rc\n")
    path.chmod(0o755)
    return path


def measure(size: int, model: Path, tmp: Path, agents: str = "real") -> dict[str, Any]:
    home = tmp / "home"
    (home / ".config" / "benchbot").mkdir(parents=True)
    stamps = tmp / "stamps"
    stamps.mkdir()
    profiles = tmp / "profiles"
    profiles.mkdir()
    servers = _servers((size + PER_SERVER - 1) // PER_SERVER, tmp, home)
    try:
        known = home / ".config" / "benchbot" / "known_hosts"
        for server in servers:
            server.trust(known)
        real = sys.executable if agents == "real" else str(_replayer(tmp, _recorded(model, tmp)))
        python = _wrapper(tmp, stamps, real)
        names = []
        for i in range(size):
            server = servers[i % len(servers)]
            name = f"d{i:03d}"
            names.append(name)
            # each device's wrapper learns its name from its own copy (the device's python path)
            own = tmp / f"python-{name}"
            own.write_text(f"#!/bin/bash\nexport BENCHBOT_DEVICE={name}\nexec {python} \"$@\"\n")
            own.chmod(0o755)
            (profiles / f"{name}.toml").write_text(
                'transport = "ssh"\n[ssh]\n'
                f'host = "{server.host}"\nport = {server.port}\nuser = "{server.user}"\nkey = "{server.user_key}"\n'
                "use_ssh_config = false\nconnect_retries = 2\nconnect_timeout_s = 30\n"
                f'[device]\npython = "{own}"\nworkdir = "{tmp / "work" / name}"\n[bench]\nthreads = [1]\n')
        env = {k: v for k, v in os.environ.items() if k not in ("SSH_AUTH_SOCK", "COLUMNS")}
        env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), BENCHBOT_PROFILES=str(profiles),
                   BENCHBOT_RESULTS=str(tmp / "results"))
        argv = [sys.executable, "-m", "benchbot.cli", "run", "--devices", ",".join(names), "--models", str(model),
                "--max-parallel", str(size), *FLAGS]
        begin = time.time()
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        watched = psutil.Process(proc.pid)
        peak = {"threads": 0, "tcp": 0, "fds": 0}
        usage = None
        while usage is None:  # never Popen.poll(): it would reap the child before wait4 reads its rusage
            try:
                with watched.oneshot():
                    peak["threads"] = max(peak["threads"], watched.num_threads())
                    peak["fds"] = max(peak["fds"], watched.num_fds())
                peak["tcp"] = max(peak["tcp"], len(watched.net_connections(kind="tcp")))
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                pass
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode, usage = os.waitstatus_to_exitcode(status), rusage
                break
            time.sleep(0.05)
        wall = time.time() - begin
        stderr = proc.stderr.read() if proc.stderr else ""
        if proc.returncode != 0:
            raise SystemExit(f"benchbot run over {size} devices failed ({proc.returncode}): {stderr[-2000:]}")
        run_folder = max((tmp / "results").iterdir(), key=lambda p: p.stat().st_mtime)
        log = [json.loads(line) for line in (run_folder / "log.jsonl").read_text().splitlines() if line.strip()]
        start = next(e["time"] for e in log if e["event"] == "run_start")
        last_cell: dict[str, float] = {}
        ready: dict[str, float] = {}
        reps: dict[str, int] = {}
        for e in log:
            if e["event"] == "cell":
                device = e["key"].split("--")[0]
                last_cell[device] = max(last_cell.get(device, 0.0), e["time"])
                reps[device] = reps.get(device, 0) + 1
            elif e["event"] == "device":
                ready[e["device"]] = e["time"]
        outside, setup = [], []
        for device, end in last_cell.items():
            spent = {"hello": 0.0, "run": 0.0}
            for line in (stamps / device).read_text().splitlines():
                s, e, verb = (line.split() + [""])[:3]
                spent["run" if verb == "run" else "hello"] += float(e) - float(s)
            # setup: connect, lock, push the agent and the hello, outside the hello agent itself
            setup.append(max(0.0, ready[device] - start - spent["hello"]))
            outside.append(max(0.0, end - ready[device] - spent["run"]) / reps[device])
        cpu = usage.ru_utime + usage.ru_stime
        device_cpu = 0.0  # sshd, its sessions and everything they ran (agents), reaped into the listener's times
        for server in servers:
            t = psutil.Process(server.proc.pid).cpu_times()
            device_cpu += t.user + t.system + t.children_user + t.children_system
        total_reps = sum(reps.values())
        return {"agents": agents, "devices": size, "servers": len(servers), "repetitions": total_reps, "wall_s": round(wall, 1),
                "peak_rss_mib": round(usage.ru_maxrss / 1024, 1), "peak_threads": peak["threads"],
                "peak_tcp": peak["tcp"], "peak_fds": peak["fds"],
                "cpu_s_per_rep": round(cpu / total_reps, 3),
                "device_cpu_s_per_rep": round(device_cpu / total_reps, 3),
                "outside_s_per_rep_median": round(statistics.median(outside), 3),
                "outside_s_per_rep_max": round(max(outside), 3),
                "setup_s_per_device_median": round(statistics.median(setup), 3),
                "setup_s_per_device_max": round(max(setup), 3)}
    finally:
        for server in servers:
            server.stop()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,50,100")
    parser.add_argument("--quick", action="store_true", help="3 devices only (smoke test)")
    parser.add_argument("--agents", choices=["real", "replay", "both"], default="both",
                        help="real agents, or their recorded output replayed (the controller's cost without the "
                             "agents' CPU on this host)")
    args = parser.parse_args(argv)
    if not zoo_families():
        raise SystemExit("the model zoo is not built")
    model = ZOO_DIR / min(zoo_families(), key=lambda f: (ZOO_DIR / f / "fp32.tflite").stat().st_size)
    sizes = [3] if args.quick else [int(s) for s in args.sizes.split(",")]
    rows = []
    for agents in (["real", "replay"] if args.agents == "both" else [args.agents]):
        for size in sizes:
            with tempfile.TemporaryDirectory(prefix=f"benchbot-fleet{size}-") as tmp:
                common.log(f"fleet: {size} devices, {agents} agents")
                rows.append(measure(size, model, Path(tmp), agents))
                common.log(f"fleet: {rows[-1]}")
    table = common.md_table(
        ["agents", "devices", "sshds", "repetitions", "run wall s", "peak RSS MiB", "peak threads", "peak TCP conns",
         "peak fds", "controller CPU s / rep", "device side CPU s / rep", "outside agents s / rep (median, max)",
         "device setup s (median, max)"],
        [[r["agents"], r["devices"], r["servers"], r["repetitions"], r["wall_s"], r["peak_rss_mib"], r["peak_threads"],
          r["peak_tcp"], r["peak_fds"], r["cpu_s_per_rep"], r["device_cpu_s_per_rep"],
          f"{r['outside_s_per_rep_median']:.3f}, {r['outside_s_per_rep_max']:.3f}",
          f"{r['setup_s_per_device_median']:.2f}, {r['setup_s_per_device_max']:.2f}"] for r in rows])
    markdown = "\n".join([
        f"**Fleet controller cost** ({common.host_line(common.host())}; `python bench/fleet.py "
        f"--sizes {','.join(map(str, sizes))} --agents {args.agents}`; model {model.name}/fp32, 2 repetitions per device, "
        "all devices at once):", "", *table])
    common.write_result("fleet", {"rows": rows, "markdown": markdown})
    print(markdown)
    return {"rows": rows, "markdown": markdown}


if __name__ == "__main__":
    main()
