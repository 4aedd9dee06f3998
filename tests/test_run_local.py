"""The core path for real: the agent on this machine, real zoo models, the real TFLite runtime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import benchbot
from benchbot.models.catalog import ZOO_DIR, zoo_families
from tests.conftest import QUICK, first_run_headline_by_hand, md_rows, run_cli

pytestmark = pytest.mark.skipif(not zoo_families(), reason="the model zoo is not built")


@pytest.fixture(scope="module")
def zoo_run(tmp_path_factory: pytest.TempPathFactory) -> benchbot.Run:
    """One run of the whole zoo on the local device, shared by the tests of this module."""
    import os

    tmp = tmp_path_factory.mktemp("zoo")
    env = dict(os.environ, BENCHBOT_RESULTS=str(tmp / "results"))
    env.pop("BENCHBOT_PROFILES", None)
    done = run_cli(["run", "--threads", "1", "--telemetry-ms", "20", *QUICK], env)
    assert done.returncode == 0, done.stderr
    return benchbot.load_run(results=tmp / "results")


def test_every_zoo_variant_ran_and_was_stored(zoo_run: benchbot.Run) -> None:
    expected = {(f, p.stem) for f in zoo_families() for p in (ZOO_DIR / f).glob("*.tflite")}
    summary = zoo_run.summary
    assert {(m, v) for m, v in zip(summary["model"], summary["variant"])} == expected
    assert (summary["status"] == "ok").all(), summary[["key", "reason"]]
    assert zoo_run.complete
    fp = zoo_run.fingerprints["local"]
    assert fp["runtime"] == "ai_edge_litert" and fp["arch"] and fp["cores"] >= 1 and fp["numpy"]


def test_every_sample_is_stored_and_the_summary_agrees_with_it(zoo_run: benchbot.Run) -> None:
    samples = zoo_run.samples
    for _, row in zoo_run.summary.iterrows():
        reps = zoo_run.repetitions(row["key"])
        assert sorted(reps) == [1, 2] and row["repetitions"] == row["reps_ok"] == 2
        cell = samples[(samples["model"] == row["model"]) & (samples["variant"] == row["variant"])
                       & (samples["threads"] == row["threads"])]
        medians, runs, loop_ns = [], 0, 0
        for rep, attempt in reps.items():
            end = attempt.first("cell_end")
            mine = cell[cell["repetition"] == rep]
            loop = mine[mine["phase"] == "loop"]["latency_ms"].to_numpy()
            # nothing aggregated away: one stored value per timed invoke, in every repetition
            assert len(loop) == end["loop_runs"] >= 20
            assert end["loop_ns"] / 1e6 >= loop.sum()  # the loop's wall time covers the timed invokes
            assert len(mine[mine["phase"] == "warmup"]) == end["warmup_runs"] >= 2
            assert attempt.first("cell_start")["repetition"] == rep
            medians.append(float(np.median(loop)))
            runs, loop_ns = runs + end["loop_runs"], loop_ns + end["loop_ns"]
        pooled = cell[cell["phase"] == "loop"]["latency_ms"].to_numpy()
        assert row["count"] == len(pooled) == runs
        assert row["p50_ms"] == pytest.approx(float(np.exp(np.mean(np.log(medians)))))
        assert row["p99_ms"] == pytest.approx(np.percentile(pooled, 99))
        assert row["max_ms"] == pytest.approx(pooled.max())
        # the next-run interval of a first run, from the two medians by hand (the assumed run-to-run spread in it)
        assert row["run_sd_runs"] == 0 and row["run_sd"] == 0.03
        assert (row["p50_ci_lo_ms"], row["p50_ci_hi_ms"]) == pytest.approx(
            first_run_headline_by_hand(medians)[1:], rel=1e-9)
        assert row["throughput"] == pytest.approx(runs / (loop_ns / 1e9))
        assert row["init_ms"] > 0 and row["first_ms"] > 0
        assert row["peak_rss_mb"] > 10
        assert row["model_size"] == (ZOO_DIR / row["model"] / f"{row['variant']}.tflite").stat().st_size


def test_telemetry_is_sampled_on_the_latency_clock(zoo_run: benchbot.Run) -> None:
    tele = zoo_run.telemetry
    assert not tele.empty
    phases = ["init", "first", "warmup", "loop", "done"]  # the agent's order
    assert set(tele["phase"]) <= set(phases), set(tele["phase"])
    for key in zoo_run.summary["key"]:
        reps = zoo_run.repetitions(key).values()
        for attempt in reps:  # each reading carries the phase it was taken in, so they come in order
            ranks = [phases.index(t["phase"]) for t in attempt.all("telemetry")]
            assert ranks == sorted(ranks), f"{key}: phases out of order"
        assert any(t["phase"] == "loop" for a in reps for t in a.all("telemetry")), f"{key}: no loop reading"
    assert tele["rss_mb"].notna().all() and (tele["rss_mb"] > 0).all()
    assert tele["cpu_pct"].notna().any()
    # temperature is either read from thermal zones or recorded as absent, never invented
    zones = list(Path("/sys/class/thermal").glob("thermal_zone*/temp"))
    if not zones:
        assert tele["temp_c"].isna().all()
        assert zoo_run.summary["temp_max_c"].isna().all()
    for key in zoo_run.summary["key"]:
        attempt = zoo_run.best(key)
        end = attempt.first("cell_end")
        loop_tel = [t for t in attempt.all("telemetry") if t["phase"] == "loop"]
        for t in loop_tel:
            assert end["loop_start_ns"] <= t["t_ns"] <= end["loop_start_ns"] + end["loop_ns"] + 50_000_000


def test_accuracy_is_measured_against_the_eval_set(zoo_run: benchbot.Run) -> None:
    summary = zoo_run.summary
    for family in zoo_families():
        info = json.loads((ZOO_DIR / family / "family.json").read_text())
        labels = np.load(ZOO_DIR / family / info["eval"])["y"]
        rows = summary[summary["model"] == family]
        for _, row in rows.iterrows():
            accuracy = zoo_run.best(row["key"]).first("accuracy")
            # recompute from the stored predictions, independently of the agent's own count
            assert accuracy["labels"] == [int(v) for v in labels]
            assert row["accuracy"] == pytest.approx(np.mean(np.array(accuracy["predictions"]) == labels))
        baseline = rows[rows["variant"] == info["baseline"]].iloc[0]
        assert baseline["accuracy"] > 1.5 / len(info.get("labels", [0, 0, 0])), "the zoo model is no better than chance"
        assert baseline["size_ratio"] == pytest.approx(1.0) and baseline["agreement"] == pytest.approx(1.0)
        for _, row in rows.iterrows():
            assert row["size_ratio"] == pytest.approx(baseline["model_size"] / row["model_size"])
            assert row["accuracy_delta_pts"] == pytest.approx(100 * (row["accuracy"] - baseline["accuracy"]))


def test_report_table_exports_and_plots(zoo_run: benchbot.Run, tmp_path: Path) -> None:
    import os

    env = dict(os.environ, BENCHBOT_RESULTS=str(zoo_run.folder.parent))
    shown = run_cli(["report"], env)
    assert shown.returncode == 0, shown.stderr
    assert "p50 ms" in shown.stdout and "complete" in shown.stdout
    for family in zoo_families():
        assert family in shown.stdout
    plots = {p.name for p in (zoo_run.folder / "plots").glob("*.png")}
    assert {"latency-local.png", "throughput-local.png"} <= plots
    assert all((zoo_run.folder / "plots" / name).stat().st_size > 5000 for name in plots)
    assert (zoo_run.folder / "summary.csv").is_file()

    out = tmp_path / "table.csv"
    assert run_cli(["report", "--format", "csv", "-o", str(out), "--no-plots"], env).returncode == 0
    frame = pd.read_csv(out)
    assert list(frame["p50_ms"]) == pytest.approx(list(zoo_run.summary["p50_ms"]))
    js = json.loads(run_cli(["report", "--format", "json", "--no-plots"], env).stdout)
    assert js["format"] == "benchbot-summary" and len(js["cells"]) == len(zoo_run.summary)
    md = run_cli(["report", zoo_run.run_id, "--format", "md", "--no-plots"], env).stdout
    firsts = [r[0] for r in md_rows(md)]
    assert md.startswith("## Answer") and firsts[0] == "device" and firsts.count("local") == len(zoo_run.summary)
