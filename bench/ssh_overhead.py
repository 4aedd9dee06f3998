#!/usr/bin/env python3
"""What running a cell over SSH costs on top of the measurement itself.

Starts two OpenSSH servers on loopback (the helpers of tests/sshd.py; each one is a "device" whose
Python is this machine's), runs the same small plan on both at once twice through
`benchbot.api.execute`, then the same plan on one SSH device alone and on the local device, and reports
per cell:

    overhead = host wall time of the cell (its `outcome` event's wall_s) - its timed loop (cell_end loop_ns)

as median and max, the part of it outside the agent's own timed phases (model load, first inference,
warmup), and the bytes each run sent (the second run should send none: pushes are content-addressed).

Prints a markdown snippet for a README and writes bench/out/ssh_overhead.json. Takes about a minute.

    python bench/ssh_overhead.py [--models PATH_OR_ZOO_NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchbot.api import RunRequest, execute  # noqa: E402
from benchbot.models.catalog import ZOO_DIR, resolve_models, zoo_families  # noqa: E402
from tests.sshd import SSHD, SSHDServer, keygen  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))
import common  # noqa: E402

OUT = REPO / "bench" / "out" / "ssh_overhead.json"
SETTINGS = dict(warmup_runs=5, warmup_seconds=0.0, min_runs=50, min_seconds=0.2, max_seconds=10.0,
                accuracy=False, threads=[1], quiet=True)


def _profile(folder: Path, name: str, server: SSHDServer | None, workdir: Path) -> None:
    if server is None:
        text = "[bench]\nthreads = [1]\n"
    else:
        text = (
            'transport = "ssh"\n[ssh]\n'
            f'host = "{server.host}"\nport = {server.port}\nuser = "{server.user}"\nkey = "{server.user_key}"\n'
            "use_ssh_config = false\nconnect_retries = 0\n"
            f'[device]\npython = "{sys.executable}"\nworkdir = "{workdir}"\n[bench]\nthreads = [1]\n'
        )
    (folder / f"{name}.toml").write_text(text)


def _row(label: str, run: str, cells: list[dict[str, Any]], bytes_sent: dict[str, int], wall: float
         ) -> dict[str, Any]:
    over = [c["overhead_s"] for c in cells]
    outside = [c["outside_agent_s"] for c in cells]
    return {"setup": label, "run": run, "cells": len(cells), "overhead_median_s": statistics.median(over),
            "overhead_max_s": max(over), "outside_agent_median_s": statistics.median(outside),
            "loop_median_s": statistics.median(c["loop_s"] for c in cells), "bytes_sent": bytes_sent,
            "run_wall_s": wall, "per_cell": cells}


def _bytes(sent: dict[str, int]) -> str:
    return ", ".join(f"{d}: {n / 1024:.0f} KiB" if n else f"{d}: 0" for d, n in sorted(sent.items())) or "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=None, help="a zoo name or a folder of variants (default: smallest zoo)")
    args = parser.parse_args()
    if not os.path.exists(SSHD):
        print(f"bench: {SSHD} is missing; install openssh-server", file=sys.stderr)
        return 2
    if args.models is None:
        if not zoo_families():
            print(f"bench: the model zoo in {ZOO_DIR} is empty; pass --models PATH", file=sys.stderr)
            return 2
        args.models = min(zoo_families(), key=lambda f: (ZOO_DIR / f / "fp32.tflite").stat().st_size)
    family = resolve_models([args.models])[0]

    begin = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="benchbot-ssh-overhead-"))
    home = tmp / "home"
    home.mkdir()
    os.environ.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), BENCHBOT_PROFILES=str(tmp / "profiles"))
    os.environ.pop("SSH_AUTH_SOCK", None)
    (tmp / "profiles").mkdir()
    user_key, host_key = keygen(tmp / "keys" / "user"), keygen(tmp / "keys" / "host")
    servers: list[SSHDServer] = []
    rows: list[dict[str, Any]] = []
    results = tmp / "results"
    try:
        for name in ("a", "b"):
            server = SSHDServer(folder=tmp / f"sshd-{name}", host_key=host_key, authorized_keys=[user_key],
                                user_key=user_key, extra_config=f"SetEnv HOME={home}").start()
            server.trust(home / ".config" / "benchbot" / "known_hosts")
            servers.append(server)
            _profile(tmp / "profiles", name, server, tmp / f"device-{name}")
        _profile(tmp / "profiles", "solo", servers[0], tmp / "device-solo")
        _profile(tmp / "profiles", "local", None, tmp)

        plans = [("ssh a+b, in parallel", ["a", "b"], "1st (cold)"), ("ssh a+b, in parallel", ["a", "b"], "2nd"),
                 ("ssh, one device alone", ["solo"], "1st (cold)"), ("ssh, one device alone", ["solo"], "2nd"),
                 ("local", ["local"], "1st"), ("local", ["local"], "2nd")]
        for label, devices, which in plans:
            started = time.monotonic()
            outcome = execute(RunRequest(devices=devices, models=[str(family.folder or args.models)],
                                         results=str(results), **SETTINGS))
            wall = time.monotonic() - started
            if outcome.failed:
                raise SystemExit(f"{label}: {[(o.cell.key, o.reason) for o in outcome.failed]}")
            rows.append(_row(label, which, common.cell_costs(results, outcome.run_id), outcome.bytes_sent, wall))
            print(f"  {label:24} {which:11} {wall:5.1f} s", file=sys.stderr)
    finally:
        for server in servers:
            server.stop()
    elapsed = time.monotonic() - begin

    variants = ", ".join(v.variant for v in family.variants)
    lines = [
        "### Orchestration overhead over SSH",
        "",
        f"Per cell: host wall time minus the timed loop (`outcome.wall_s - cell_end.loop_ns`); "
        f"{family.name} ({variants}), 1 thread, {SETTINGS['warmup_runs']} warmup runs, "
        f"at least {SETTINGS['min_runs']} runs / {SETTINGS['min_seconds']} s, no accuracy pass. "
        f"SSH devices are OpenSSH servers on loopback of the same {os.cpu_count()}-core "
        f"{platform.machine()} host, so this is benchbot's cost, not the network's. "
        "\"outside agent\" leaves out the agent's own model load, first inference and warmup "
        "(process start, imports, SSH channel, pushes). \"run wall\" adds connecting and the agent's hello.",
        "",
    ]
    lines += common.md_table(
        ["setup", "run", "cells", "overhead median", "overhead max", "outside agent (median)", "run wall", "bytes sent"],
        [[r["setup"], r["run"], r["cells"], f"{r['overhead_median_s']:.2f} s", f"{r['overhead_max_s']:.2f} s",
          f"{r['outside_agent_median_s']:.2f} s", f"{r['run_wall_s']:.1f} s", _bytes(r["bytes_sent"])] for r in rows],
        "llrrrrrl")
    load = os.getloadavg()
    lines += ["", f"Host load average while measuring: {load[0]:.1f} (1 min), {load[1]:.1f} (5 min) on "
              f"{os.cpu_count()} cores; other work on the host inflates every row."]
    print("\n".join(lines))
    print(f"\n(bench took {elapsed:.0f} s)", file=sys.stderr)

    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "benchmark": "ssh_overhead", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": {"machine": platform.machine(), "cores": os.cpu_count(), "python": platform.python_version(),
                 "load_avg": load},
        "model": family.name, "variants": [v.variant for v in family.variants], "settings": SETTINGS,
        "elapsed_s": elapsed, "rows": rows, "markdown": "\n".join(lines),
    }, indent=2))
    print(f"wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
