"""--max-parallel bounds the devices at once, and with many devices the progress is one line per device."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

import benchbot
from benchbot.console import DeviceLines, compact
from benchbot.errors import BenchbotError
from benchbot.fleet import max_parallel, slot
from benchbot.models.catalog import ZOO_DIR, zoo_families
from tests.conftest import run_cli, write_profile


@pytest.mark.skipif(not zoo_families(), reason="the model zoo is not built")
def test_max_parallel_one_runs_devices_one_after_another(profiles_dir: Path, cli_env: dict[str, str],
                                                         tmp_path: Path) -> None:
    for name in ("l1", "l2", "l3"):
        write_profile(profiles_dir, name, f'[device]\nworkdir = "{tmp_path / name}"\n[bench]\nthreads = [1]\n')
    family = ZOO_DIR / min(zoo_families(), key=lambda f: (ZOO_DIR / f / "fp32.tflite").stat().st_size)
    done = run_cli(["run", "--devices", "l1,l2,l3", "--models", str(family), "--variants", "fp32", "--max-parallel",
                    "1", "--repetitions", "1", "--warmup-runs", "1", "--warmup-seconds", "0", "--min-runs", "5",
                    "--min-seconds", "0", "--no-accuracy", "--progress", "devices"], cli_env)
    assert done.returncode == 0, done.stderr
    assert sum(1 for ln in done.stderr.splitlines() if ln.startswith("[l")) == 3  # one line per device
    run = benchbot.load_run(None, results=tmp_path / "results")
    spans = sorted((s["start_ns"].min(), (s["start_ns"] + s["latency_ns"]).max())
                   for _, s in run.samples.groupby("device"))
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:])), f"devices overlapped: {spans}"


def test_defaults_and_slots() -> None:
    assert max_parallel(None, 5) == 5 and max_parallel(None, 1000) == 128 and max_parallel(3, 100) == 3
    with pytest.raises(BenchbotError, match="--max-parallel must be at least 1"):
        max_parallel(0, 3)
    assert compact(9, "auto") and not compact(8, "auto") and compact(1, "devices") and not compact(100, "cells")
    slots, stop, waited = threading.Semaphore(1), threading.Event(), []
    with slot(slots, stop, lambda: waited.append(1)) as first:
        stop.set()
        with slot(slots, stop, lambda: waited.append(2)) as second:
            assert first and not second and waited == [2]


def test_device_lines_one_line_per_device() -> None:
    out = io.StringIO()
    progress = DeviceLines(out, every_s=3600)
    for name in ("a", "b"):
        progress.add_device(name, 2)
    ok = SimpleNamespace(status="ok", reason=None, p50_ms=1.5)
    bad = SimpleNamespace(status="failed", reason="the agent could not start", p50_ms=None)
    progress.cell_done("a", ok)
    progress.cell_done("a", ok)
    progress.cell_done("b", bad)
    progress.update("b", state="done")
    progress.update("a", state="done")
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[a] ok: 2 repetitions") and "p50 1.500 ms" in lines[0]
    assert lines[1] == "[b] interrupted: 1 of 2 repetitions done (0 ok)" and len(lines) == 2
    progress.close()
    assert out.getvalue().splitlines()[-1].startswith("fleet at ")
