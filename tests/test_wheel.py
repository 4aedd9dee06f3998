"""A wheel built from the repository works outside the checkout: `benchbot run` and `benchbot report`
in an empty folder of a fresh venv find the bundled profiles, models, agent and report templates.

The fresh venv gets only the wheel; its dependencies (numpy, the TFLite runtime, pandas, ...) are the
ones already installed for the tests, reached through a path entry, so nothing is downloaded. That path
entry is a plain directory on sys.path: the .pth files in it (the checkout's editable install) are not
run, so `import benchbot` can only find the wheel's copy.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement

from tests.conftest import REPO

pytestmark = pytest.mark.slow

# What a source copy leaves out: virtual environments, results, build output, caches, notebooks.
_IGNORE = shutil.ignore_patterns(".git", ".venv*", "results", "build", "dist", "*.egg-info", "__pycache__",
                                 ".pytest_cache", ".ruff_cache", "bench", "notebooks", "tests")


def _can_build_here() -> bool:
    """The test venv's setuptools meets the build requirement: build without an isolated (downloaded) one."""
    needed = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
    for spec in map(Requirement, needed):
        try:
            if not spec.specifier.contains(importlib.metadata.version(spec.name), prereleases=True):
                return False
        except importlib.metadata.PackageNotFoundError:
            return False
    return True


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src") / "benchbot"
    shutil.copytree(REPO, src, ignore=_IGNORE)
    out = tmp_path_factory.mktemp("wheelhouse")
    argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-index", "-q", "-w", str(out), str(src)]
    if _can_build_here():
        argv.insert(4, "--no-build-isolation")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (path,) = out.glob("benchbot-*.whl")
    return path


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    site = Path(subprocess.run([str(root / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "test-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(root / "bin" / "python"), "install", "-q",
                           "--no-deps", "--no-index", str(wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return root


def _env(venv: Path, home: Path) -> dict[str, str]:
    """A user with nothing set up: no benchbot variables, their own home (and device lock), the venv on PATH."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BENCHBOT_", "XDG_")) and k not in ("PYTHONPATH", "COLUMNS")}
    env["HOME"] = str(home)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_the_wheel_holds_everything_read_at_run_time(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "benchbot/agent.py" in names
    assert {f"benchbot/device_profiles/{n}.toml" for n in ("local", "pi4", "jetson-nano", "qemu-arm64")} <= names
    zoo = {n for n in names if n.startswith("benchbot/models/zoo/")}
    assert {n.split("/")[3] for n in zoo if n.endswith("/family.json")} == {
        p.parent.name for p in (REPO / "benchbot" / "models" / "zoo").glob("*/family.json")}
    assert any(n.endswith("eval.npz") for n in zoo)
    assert any(n.startswith("benchbot/report/templates/") for n in names)


def test_installed_wheel_runs_and_reports_in_an_empty_folder(venv: Path, tmp_path: Path) -> None:
    work, home = tmp_path / "empty", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    env = _env(venv, home)
    python = str(venv / "bin" / "python")
    where = subprocess.run([python, "-c", "import benchbot, sys; print(benchbot.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(venv), f"benchbot imported from {where}, not from the wheel"
    # Every dependency the wheel declares is installed at a version it accepts.
    check = ("import importlib.metadata as m\nfrom packaging.requirements import Requirement\n"
             "for r in map(Requirement, m.requires('benchbot') or []):\n"
             "    if r.marker is None or r.marker.evaluate({'extra': ''}):\n"
             "        assert r.specifier.contains(m.version(r.name), prereleases=True), r\n")
    done = subprocess.run([python, "-c", check], cwd=work, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

    benchbot = str(venv / "bin" / "benchbot")
    done = subprocess.run([benchbot, "run", "--min-runs", "20", "--models", "shapes-cnn", "--threads", "1",
                           "--repetitions", "2", "--warmup-seconds", "0", "--min-seconds", "0.05", "--quiet"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    (run,) = (work / "results").iterdir()
    done = subprocess.run([benchbot, "report"], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "shapes-cnn" in done.stdout and "int8" in done.stdout
    assert list((run / "plots").glob("*.png"))
    done = subprocess.run([benchbot, "report", "--format", "html", "--no-plots"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "shapes-cnn" in (run / "report.html").read_text()

    done = subprocess.run([benchbot, "devices", "init", "myboard", "--from", "pi4"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (work / "device_profiles" / "myboard.toml").is_file()
    done = subprocess.run([benchbot, "devices", "init", "myboard", "--from", "pi4"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "already exists; pass --force" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    listing = subprocess.run([benchbot, "devices", "list"], cwd=work, env=env, capture_output=True, text=True,
                             check=True).stdout
    assert "myboard" in listing and "pi4" in listing
