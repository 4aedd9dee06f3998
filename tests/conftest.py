"""Shared fixtures: device profiles in a temp folder, the CLI as a real subprocess, quick timing settings."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCHBOT = [sys.executable, "-m", "benchbot.cli"]
# Tiny timing settings: tests check behaviour and values, not speed. Two repetitions keep the run-to-run
# statistics (and their code paths) alive at the smallest cost; tests of repetitions ask for more.
QUICK = ["--warmup-runs", "2", "--warmup-seconds", "0", "--min-runs", "20", "--min-seconds", "0.05",
         "--max-seconds", "5", "--repetitions", "2"]


SSHD_FIXTURES = {"sshd_server"}
"""Fixtures of tests/sshd.py that start an OpenSSH server: a test using one is an `ssh` test."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that starts sshd, however it reaches the fixture, so `-m "not ssh"` leaves them all out."""
    for item in items:
        if SSHD_FIXTURES & set(getattr(item, "fixturenames", ())) and not item.get_closest_marker("ssh"):
            item.add_marker(pytest.mark.ssh)


@pytest.fixture
def profiles_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "profiles"
    folder.mkdir()
    return folder


def write_profile(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


@pytest.fixture
def cli_env(tmp_path: Path, profiles_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["BENCHBOT_RESULTS"] = str(tmp_path / "results")
    env["BENCHBOT_PROFILES"] = str(profiles_dir)
    env.pop("COLUMNS", None)
    return env


def run_cli(args: list[str], env: dict[str, str], timeout: float = 600, cwd: Path | None = None
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(BENCHBOT + args, env=env, cwd=cwd or REPO, capture_output=True, text=True,
                          timeout=timeout)


def md_cells(line: str) -> list[str]:
    """A Markdown table row's cells, stripped; a pipe escaped by an odd number of backslashes stays in its cell."""
    cells, cell, backslashes = [], "", 0
    for ch in line.strip()[1:]:
        if ch == "|" and backslashes % 2 == 0:
            cells.append(cell.strip())
            cell = ""
        else:
            cell += ch
        backslashes = backslashes + 1 if ch == "\\" else 0
    return cells


def md_rows(text: str) -> list[list[str]]:
    """The cells of every table row in Markdown text (headers included, separator lines left out)."""
    return [md_cells(line) for line in text.splitlines()
            if line.startswith("|") and not re.fullmatch(r"\|[\s:|-]+\|", line.strip())]


def tflite214_python() -> str | None:
    """The interpreter of the tflite-runtime 2.14 venv that `make test` creates, if any."""
    path = os.environ.get("BENCHBOT_TFLITE214_PYTHON")
    if path and Path(path).exists():
        return path
    default = REPO / ".venv-tflite214" / "bin" / "python"
    return str(default) if default.exists() else None


def first_run_headline_by_hand(medians: list[float], run_sd: float = 0.03, run_df: float = 4.0
                               ) -> tuple[float, float, float]:
    """Geometric mean and next-run interval of a device's first run in its results folder, written out.

    mean ± t(ν) · sqrt(2 s²/k + 2 σ²) on the logs, where σ is the run-to-run spread assumed until a second
    run measures one (3 % with 4 degrees of freedom) and ν comes from Welch-Satterthwaite; scipy only for t.
    """
    import numpy as np
    from scipy.stats import t as student

    logs = np.log(medians)
    k = len(logs)
    within, between = 2 * logs.var(ddof=1) / k, 2 * run_sd ** 2
    nu = (within + between) ** 2 / (within ** 2 / (k - 1) + between ** 2 / run_df)
    half = student.ppf(0.975, nu) * np.sqrt(within + between)
    return float(np.exp(logs.mean())), float(np.exp(logs.mean() - half)), float(np.exp(logs.mean() + half))


@pytest.fixture
def small_disk(tmp_path: Path) -> Any:
    """A real tmpfs of a given size at tmp/disk (mounting needs root, as in CI); unmounted afterwards."""
    mounted: list[Path] = []

    def mount(size_bytes: int) -> Path:
        where = tmp_path / "disk"
        where.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(where)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", str(where)], check=False)
