"""notebooks/results.ipynb runs headless against a run this test makes, and shows the table and plots."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

import benchbot
from benchbot.models.catalog import ZOO_DIR, load_family
from tests.conftest import QUICK, REPO, run_cli

NOTEBOOK = REPO / "notebooks" / "results.ipynb"
MODELS = Path(os.environ.get("BENCHBOT_TEST_ZOO") or ZOO_DIR)
FAMILIES = sorted(p.parent.name for p in MODELS.glob("*/family.json"))


def test_notebook_is_committed_without_outputs() -> None:
    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    source = "\n".join("".join(c["source"]) for c in code)
    # benchbot's API only: no parsing of result files in the notebook
    for forbidden in ("read_csv", "read_json", "json.load", "open(", "samples.csv", "events.jsonl", "log.jsonl"):
        assert forbidden not in source, forbidden
    assert "benchbot.load_run" in source and "BENCHBOT_RUN" in source


@pytest.mark.skipif(not FAMILIES, reason="the model zoo is not built")
def test_notebook_runs_against_a_fresh_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    family = min((MODELS / f for f in FAMILIES), key=lambda p: sum(v.size for v in load_family(p).variants))
    env = dict(os.environ, BENCHBOT_RESULTS=str(tmp_path / "results"))
    env.pop("BENCHBOT_PROFILES", None)
    done = run_cli(["run", "--models", str(family), "--threads", "1", "--no-accuracy", "--quiet", *QUICK], env)
    assert done.returncode == 0, done.stderr
    run = benchbot.load_run(results=tmp_path / "results")
    # an older run beside it, so "latest" would be the wrong answer: the notebook must follow BENCHBOT_RUN
    assert run_cli(["run", "--models", str(family), "--variants", load_family(family).variants[0].variant,
                    "--threads", "1", "--no-accuracy", "--quiet", *QUICK], env).returncode == 0

    # a kernel on this very interpreter (benchbot importable), whatever kernels the machine has
    spec = tmp_path / "jupyter" / "kernels" / "benchbot-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "benchbot test", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("BENCHBOT_RUN", run.run_id)
    monkeypatch.setenv("BENCHBOT_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("BENCHBOT_COMPARE", raising=False)

    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="benchbot-test",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()  # raises on any error

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert f"run {run.run_id} (complete), {len(run.summary)} cells" in text
    tables = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert tables, "the summary table was not shown"
    table = tables[0]
    assert "p50 ms" in table and "next run 95%" in table and "vs fastest" in table
    for variant in run.summary["variant"]:
        assert f"<td>{variant}</td>" in table
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # latency distribution, throughput, a telemetry timeline
