"""bench/ still runs: every script imports, and `run_all.py --quick` goes through all of them end to end.

A smoke test only: --quick uses tiny settings, and nothing here asserts a timing (benchmarks are not
tests). Output goes to a temp folder ($BENCHBOT_BENCH_OUT), never over bench/out/.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchbot.models.catalog import zoo_families

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
SCRIPTS = ["common", "bare_loop", "sampler_probe", "peer_tool", "observer", "peer", "repeatability",
           "orchestration", "gate", "report_cost", "run_all", "fleet"]


def test_every_bench_script_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    for name in SCRIPTS:
        module = importlib.import_module(name)
        assert module.__doc__, f"bench/{name}.py has no docstring"


@pytest.mark.skipif(not zoo_families(), reason="the model zoo is not built")
def test_run_all_quick(tmp_path: Path) -> None:
    env = dict(os.environ, BENCHBOT_BENCH_OUT=str(tmp_path / "out"))
    env.pop("BENCHBOT_PROFILES", None)
    env.pop("BENCHBOT_RESULTS", None)
    done = subprocess.run([sys.executable, str(BENCH / "run_all.py"), "--quick", "--skip-ssh"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert set(summary["results"]) == {"observer", "peer", "repeatability", "orchestration", "gate",
                                          "report_cost"}
    for name in summary["results"]:
        assert (tmp_path / "out" / f"{name}.json").is_file()
    assert "Observer effect" in done.stdout and "Report cost" in done.stdout and "A/A `benchbot compare`" in done.stdout
    assert not (REPO / "bench" / "out" / "runs").is_symlink()
