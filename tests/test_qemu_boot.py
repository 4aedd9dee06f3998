"""The real thing: build (or reuse) the arm64 image, boot it once, log in over SSH with a pinned host key.

Slow (a cached image boots in about a minute; a fresh build takes 10+ minutes and needs root), so it
runs only when asked: `pytest -m qemu` or BENCHBOT_QEMU=1.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.qemu_fixture import Booted, ssh

pytest_plugins = ["tests.qemu_fixture"]
pytestmark = pytest.mark.qemu

#: Where a tiny model is looked for; BENCHBOT_QEMU_TEST_ZOO points elsewhere (e.g. a zoo being built).
ZOO = Path(os.environ.get("BENCHBOT_QEMU_TEST_ZOO") or Path(__file__).resolve().parents[1] / "benchbot/models/zoo")


def test_status_reports_running(booted: Booted) -> None:
    status = booted.vm.status()
    assert status["running"] and status["port"] == booted.port and status["pid"]
    assert booted.vm.boot_seconds is not None


def test_guest_is_aarch64(booted: Booted) -> None:
    proc = ssh(booted, "uname -m")
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().strip() == "aarch64"


def test_wrong_host_key_is_refused(booted: Booted, tmp_path: Path) -> None:
    """StrictHostKeyChecking really checks: a known_hosts line with another key must fail the login."""
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kind, blob = other.with_suffix(".pub").read_text().split()[:2]
    bad = tmp_path / "known_hosts"
    bad.write_text(f"[127.0.0.1]:{booted.port} {kind} {blob}\n")
    proc = ssh(Booted(booted.image, booted.vm, booted.port, bad), "true", timeout=120)
    assert proc.returncode != 0


def test_runtimes_import(booted: Booted) -> None:
    py = booted.image.guest_python
    proc = ssh(booted, f"{py} -c 'import numpy, tflite_runtime.interpreter; print(numpy.__version__)'")
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().strip().startswith("1.")
    if "ai-edge-litert" in booted.image.manifest.get("installed_wheels", {}):
        proc = ssh(booted, f"{py} -c 'import ai_edge_litert.interpreter'")
        assert proc.returncode == 0, proc.stderr.decode()


def _tiny_model() -> Path | None:
    models = sorted(ZOO.glob("**/*.tflite"), key=lambda p: ("fp32" not in p.name, p.stat().st_size))
    return models[0] if models else None


RUN_MODEL = """
import sys, numpy as np
mod = sys.argv[1]
if mod == "tflite_runtime":
    from tflite_runtime.interpreter import Interpreter
else:
    from ai_edge_litert.interpreter import Interpreter
it = Interpreter(model_path=sys.argv[2], num_threads=2)
it.allocate_tensors()
for d in it.get_input_details():
    it.set_tensor(d["index"], np.zeros(d["shape"], dtype=d["dtype"]))
it.invoke()
out = it.get_output_details()[0]
print("ok", out["shape"].tolist())
"""


def test_runs_a_zoo_model(booted: Booted) -> None:
    model = _tiny_model()
    if model is None:
        pytest.skip(f"no .tflite model under {ZOO} yet")
    proc = ssh(booted, "cat > /tmp/model.tflite", stdin=model.read_bytes())
    assert proc.returncode == 0, proc.stderr.decode()
    proc = ssh(booted, "cat > /tmp/run_model.py", stdin=RUN_MODEL.encode())
    assert proc.returncode == 0, proc.stderr.decode()
    modules = ["tflite_runtime"]
    if "ai-edge-litert" in booted.image.manifest.get("installed_wheels", {}):
        modules.append("ai_edge_litert")
    for module in modules:
        remote = f"{booted.image.guest_python} /tmp/run_model.py {module} /tmp/model.tflite"
        proc = ssh(booted, remote, timeout=600)
        assert proc.returncode == 0, f"{module} on {model.name}: {proc.stderr.decode()[-2000:]}"
        assert proc.stdout.decode().startswith("ok"), proc.stdout.decode()

