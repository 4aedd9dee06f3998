"""The quantization trade-off section, checked against numbers computed here, independently of benchbot.

One real run of the zoo on this machine (real models, the real runtime) is shared by the module.
Accuracy and agreement are recomputed by running the interpreter ourselves on each family's eval
set; sizes come from the files; the headline sentences are parsed back into numbers.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import benchbot
from benchbot.api import report_runs
from benchbot.models.catalog import ZOO_DIR, zoo_families
from benchbot.report.build import build_report
from benchbot.report.tradeoff import (
    eval_fingerprint,
    family_headlines,
    headlines,
    measured_evals,
    pareto_figure,
    pareto_front,
    ratio_words,
    report_section,
    speed_tie,
    speed_words,
    tradeoff_frame,
)
from tests.conftest import QUICK, md_rows, run_cli

FAMILIES = ("shapes-cnn", "tweet-large", "tweet-mobile")
needs_zoo = pytest.mark.skipif(not set(FAMILIES) <= set(zoo_families()), reason="the model zoo is not built")


def _env(results: Path) -> dict[str, str]:
    env = dict(os.environ, BENCHBOT_RESULTS=str(results))
    env.pop("BENCHBOT_PROFILES", None)
    env.pop("COLUMNS", None)
    return env


@pytest.fixture(scope="module")
def zoo_run(tmp_path_factory: pytest.TempPathFactory) -> benchbot.Run:
    tmp = tmp_path_factory.mktemp("tradeoff")
    done = run_cli(["run", "--threads", "1", "--models", ",".join(FAMILIES), *QUICK], _env(tmp / "results"))
    assert done.returncode == 0, done.stderr
    return benchbot.load_run(results=tmp / "results")


# ----------------------------------------------------------------------------- independent computation


def _predict(path: Path, x: np.ndarray) -> list[int]:
    """Top-1 predictions of one .tflite file on an eval set: our own quantization, one sample at a time."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=1)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    scale, zero = inp["quantization"]
    preds = []
    for sample in x:
        feed = sample[None]
        if inp["dtype"] in (np.int8, np.uint8, np.int16) and x.dtype.kind == "f":
            info = np.iinfo(inp["dtype"])
            feed = np.clip(np.round(feed / scale) + zero, info.min, info.max)
        interp.set_tensor(inp["index"], feed.astype(inp["dtype"]))
        interp.invoke()
        raw = interp.get_tensor(out["index"])[0]
        # a quantized output's scale is positive, so the argmax of the raw integers is the argmax of the scores
        preds.append(int(np.argmax(raw.astype(np.float64))))
    return preds


@pytest.fixture(scope="module")
def independent(zoo_run: benchbot.Run) -> dict[tuple[str, str], dict]:
    """(family, variant) -> predictions, labels, accuracy and file size, computed here from the zoo files."""
    out = {}
    for family in FAMILIES:
        folder = ZOO_DIR / family
        info = json.loads((folder / "family.json").read_text())
        with np.load(folder / info["eval"]) as data:
            x, y = data["x"], data["y"].astype(int)
        for variant, meta in info["variants"].items():
            path = folder / meta["file"]
            preds = _predict(path, x)
            out[(family, variant)] = {"pred": preds, "labels": y.tolist(), "size": path.stat().st_size,
                                      "accuracy": float(np.mean(np.asarray(preds) == y)), "baseline": info["baseline"]}
    return out


def _row(summary: pd.DataFrame, model: str, variant: str) -> pd.Series:
    match = summary[(summary["model"] == model) & (summary["variant"] == variant)]
    assert len(match) == 1
    return match.iloc[0]


@needs_zoo
def test_accuracy_and_agreement_equal_an_independent_computation(zoo_run: benchbot.Run, independent: dict) -> None:
    summary = zoo_run.summary
    assert len(summary) == len(independent)
    for (family, variant), mine in independent.items():
        row = _row(summary, family, variant)
        assert row["status"] == "ok"
        assert row["accuracy_n"] == len(mine["labels"])
        assert row["accuracy"] == pytest.approx(mine["accuracy"], abs=1e-12), (family, variant)
        base = independent[(family, mine["baseline"])]
        agreement = float(np.mean(np.asarray(mine["pred"]) == np.asarray(base["pred"])))
        assert row["agreement"] == pytest.approx(agreement, abs=1e-12), (family, variant)
        assert row["accuracy_delta_pts"] == pytest.approx(100 * (mine["accuracy"] - base["accuracy"]), abs=1e-9)
        # size ratio: bytes of the baseline file over bytes of this file
        assert row["model_size"] == mine["size"]
        assert row["size_ratio"] == pytest.approx(base["size"] / mine["size"])
        assert pd.isna(row["accuracy_error"])


# ----------------------------------------------------------------------------- headlines


NUMBER = r"([0-9]+(?:\.[0-9]+)?)"


def _parse(text: str) -> dict[str, float]:
    """The numbers of a headline sentence, back from the words."""
    found: dict[str, float] = {}
    if m := re.search(NUMBER + r"x smaller", text):
        found["size_ratio"] = float(m.group(1))
    elif m := re.search(NUMBER + r"x larger", text):
        found["size_ratio"] = 1 / float(m.group(1))
    elif "same size" in text:
        found["size_ratio"] = 1.0
    if m := re.search(r"([+-][0-9]+\.[0-9]) pts accuracy", text):
        found["accuracy_delta_pts"] = float(m.group(1))
    if m := re.search(NUMBER + r"% accuracy", text):
        found["accuracy"] = float(m.group(1)) / 100
    if m := re.search(NUMBER + r" inferences/s", text):
        found["throughput"] = float(m.group(1))
    if m := re.search(r"on " + NUMBER + "%$", text):
        found["agreement"] = float(m.group(1)) / 100
    if m := re.search(NUMBER + r"x (faster|slower)", text):
        found["speed"] = float(m.group(1)) if m.group(2) == "faster" else 1 / float(m.group(1))
    return found


@needs_zoo
def test_headline_numbers_parse_back_to_the_summary(zoo_run: benchbot.Run, independent: dict) -> None:
    data = build_report([zoo_run])
    lines = [h for h in headlines(data) if h.kind == "variant"]
    assert len(lines) == len(zoo_run.summary)
    summary = zoo_run.summary
    for h in lines:
        row = _row(summary, h.model, h.variant)
        got = _parse(h.text)
        assert h.text.startswith(f"{h.model} {h.variant} on local"), h.text
        assert got["throughput"] == pytest.approx(row["throughput"], rel=0.005, abs=0.5), h.text
        if h.variant == row["baseline"]:
            assert "(baseline)" in h.text and got["accuracy"] == pytest.approx(row["accuracy"], abs=0.0005)
            continue
        assert got["size_ratio"] == pytest.approx(row["size_ratio"], abs=0.051), h.text
        assert got["accuracy_delta_pts"] == pytest.approx(row["accuracy_delta_pts"], abs=0.051), h.text
        assert got["agreement"] == pytest.approx(row["agreement"], abs=0.00051), h.text
        base = _row(summary, h.model, row["baseline"])
        if speed_tie(base, row):  # the repetitions cannot tell them apart: no ratio is claimed
            assert f"as fast as {row['baseline']} within the run-to-run noise" in h.text and "speed" not in got
        elif "speed" in got:
            assert got["speed"] == pytest.approx(row["throughput"] / base["throughput"], rel=0.06), h.text
        else:
            assert f"about as fast as {row['baseline']}" in h.text


@needs_zoo
def test_the_student_is_compared_with_the_largest_fp32_model_of_its_task(zoo_run: benchbot.Run,
                                                                         independent: dict) -> None:
    data = build_report([zoo_run])
    cross = [h for h in headlines(data) if h.kind == "family"]
    # same task = the same labelled examples: the two tweet families, never the image CNN
    labels = {f: independent[(f, "fp32")]["labels"] for f in FAMILIES}
    assert labels["tweet-large"] == labels["tweet-mobile"] and labels["shapes-cnn"] != labels["tweet-large"]
    sizes = {f: independent[(f, "fp32")]["size"] for f in ("tweet-large", "tweet-mobile")}
    teacher = max(sizes, key=sizes.get)
    student = min(sizes, key=sizes.get)
    assert {h.reference for h in cross} == {f"{teacher} fp32"}
    assert sorted(h.variant for h in cross) == sorted(v for f, v in independent if f == student)
    ref = independent[(teacher, "fp32")]
    summary = zoo_run.summary
    for h in cross:
        mine = independent[(student, h.variant)]
        assert h.text.startswith(f"{student} {h.variant} vs {teacher} fp32 on local: ")
        got = _parse(h.text)
        assert got["size_ratio"] == pytest.approx(ref["size"] / mine["size"], abs=0.051)
        assert got["accuracy_delta_pts"] == pytest.approx(100 * (mine["accuracy"] - ref["accuracy"]), abs=0.051)
        agreement = float(np.mean(np.asarray(mine["pred"]) == np.asarray(ref["pred"])))
        assert h.values["agreement"] == pytest.approx(agreement, abs=1e-12)
        assert got["agreement"] == pytest.approx(agreement, abs=0.00051)
        row, ref_row = _row(summary, student, h.variant), _row(summary, teacher, "fp32")
        assert got["throughput"] == pytest.approx(row["throughput"], rel=0.005)
        if speed_tie(ref_row, row):
            assert "within the run-to-run noise" in h.text and "speed" not in got
        else:
            assert got["speed"] == pytest.approx(row["throughput"] / ref_row["throughput"], rel=0.06)
    # the fingerprint is of the measured labels, as stored by the agent
    evals = measured_evals(data)
    tasks = {evals[(zoo_run.run_id, k)].task for k in zoo_run.summary[zoo_run.summary["model"] != "shapes-cnn"]["key"]}
    assert tasks == {eval_fingerprint(labels["tweet-large"])}


@needs_zoo
def test_report_shows_the_tradeoff_in_every_format_and_writes_the_pareto_plot(zoo_run: benchbot.Run,
                                                                               tmp_path: Path) -> None:
    env = _env(zoo_run.folder.parent)
    done = run_cli(["report", "--no-cell-plots", "--plot-format", "both"], env)
    assert done.returncode == 0, done.stderr
    assert "Accuracy, size and speed: the quantization trade-off" in done.stdout
    data = build_report([zoo_run])
    for h in headlines(data):
        assert h.text in " ".join(done.stdout.split()), h.text  # rich may wrap a long line
    for ext in ("png", "svg"):
        plot = zoo_run.folder / "plots" / f"pareto-local.{ext}"
        assert plot.is_file() and plot.stat().st_size > 10_000
    assert (zoo_run.folder / "plots" / "pareto-local.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the exports, in-process (the CLI above already proved the command)
    results = str(zoo_run.folder.parent)
    md: list[str] = []
    report_runs([zoo_run.run_id], fmt="md", plots=False, results=results, echo=md.append)
    assert "## Accuracy, size and speed" in md[0]
    assert any(r[:4] == ["model", "variant", "size", "vs baseline"] for r in md_rows(md[0]))
    out: list[str] = []
    report_runs([zoo_run.run_id], fmt="json", plots=False, results=results, echo=out.append)
    section = json.loads(out[0])["sections"]["tradeoff"]["devices"][0]
    assert section["device"] == "local" and len(section["rows"]) == len(zoo_run.summary)
    html = tmp_path / "r.html"
    report_runs([zoo_run.run_id], fmt="html", output=html, plots=False, cell_plots=False, results=results,
                echo=out.append)
    page = html.read_text()
    assert "quantization trade-off</h2>" in page and 'alt="local: accuracy against p50 latency' in page

    # an emulated device's headlines say so (the same measurements, the manifest marks the device emulated)
    copy = tmp_path / "results" / zoo_run.run_id
    shutil.copytree(zoo_run.folder, copy, ignore=shutil.ignore_patterns("plots"))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["devices"]["local"]["emulated"] = True
    (copy / "manifest.json").write_text(json.dumps(manifest))
    emulated = build_report([benchbot.load_run(copy)])
    texts = [h.text for h in headlines(emulated)]
    assert texts and all(" on local (emulated)" in t for t in texts)
    assert all(h.emulated for h in headlines(emulated))


@needs_zoo
def test_size_ratio_words_match_the_files(zoo_run: benchbot.Run, independent: dict) -> None:
    frame = tradeoff_frame(build_report([zoo_run]))
    for (family, variant), mine in independent.items():
        row = frame[(frame["model"] == family) & (frame["variant"] == variant)].iloc[0]
        ratio = independent[(family, mine["baseline"])]["size"] / mine["size"]
        assert ratio_words(row["size_ratio"]) == (f"{ratio:.1f}x smaller" if ratio > 1.05 else "same size")


# ----------------------------------------------------------------------------- bad eval sets


def _bad_family(zoo_family: str, name: str, folder: Path, x: np.ndarray, y: np.ndarray) -> Path:
    target = folder / name
    target.mkdir(parents=True)
    info = json.loads((ZOO_DIR / zoo_family / "family.json").read_text())
    info["name"] = name
    info["variants"] = {k: v for k, v in info["variants"].items() if k in ("fp32", "int8")}
    for meta in info["variants"].values():
        shutil.copy(ZOO_DIR / zoo_family / meta["file"], target / meta["file"])
    np.savez(target / "eval.npz", x=x, y=y)
    (target / "family.json").write_text(json.dumps(info))
    return target


@pytest.mark.skipif("shapes-cnn" not in zoo_families(), reason="the model zoo is not built")
def test_a_bad_eval_set_keeps_the_timing_and_says_why_accuracy_is_missing(tmp_path: Path) -> None:
    with np.load(ZOO_DIR / "shapes-cnn" / "eval.npz") as data:
        x, y = data["x"], data["y"]
    folders = [
        _bad_family("shapes-cnn", "wrong-shape", tmp_path, x[:, :31], y),
        _bad_family("shapes-cnn", "wrong-labels", tmp_path, x, np.full(len(y), 9)),
        _bad_family("shapes-cnn", "wrong-dtype", tmp_path, (x * 255).astype(np.int32), y),
    ]
    env = _env(tmp_path / "results")
    done = run_cli(["run", "--threads", "1", "--models", ",".join(map(str, folders)) + ",shapes-cnn",
                    "--variants", "fp32,int8", *QUICK], env)
    assert done.returncode == 0, done.stderr  # the whole plan ran: a bad eval set costs accuracy, not the cell
    run = benchbot.load_run(results=tmp_path / "results")
    summary = run.summary.set_index(["model", "variant"])
    assert (summary["status"] == "ok").all() and (summary["count"] >= 20).all()
    reasons = {
        ("wrong-shape", "fp32"): "eval set inputs have shape [31, 32, 3] per sample but the model expects [32, 32, 3]",
        ("wrong-shape", "int8"): "eval set inputs have shape [31, 32, 3] per sample but the model expects [32, 32, 3]",
        ("wrong-labels", "fp32"): "eval labels must be in 0..3 for this model, found 9",
        ("wrong-labels", "int8"): "eval labels must be in 0..3 for this model, found 9",
        ("wrong-dtype", "fp32"): "eval set holds integers but the model input is float32",
    }
    for cell, reason in reasons.items():
        assert pd.isna(summary.loc[cell, "accuracy"]) and summary.loc[cell, "accuracy_error"] == reason
    assert summary.loc[("shapes-cnn", "fp32"), "accuracy"] > 0.9
    assert summary.loc[("shapes-cnn", "int8"), "accuracy"] > 0.9
    assert pd.isna(summary.loc[("shapes-cnn", "int8"), "accuracy_error"])

    report = run_cli(["report", "--no-plots"], env)
    assert report.returncode == 0, report.stderr
    flat = " ".join(report.stdout.split())
    for (model, variant), reason in reasons.items():
        assert f"{model} {variant} on local" in flat and f"accuracy not measured ({reason})" in flat
    assert "accuracy not measured for wrong-labels fp32, wrong-labels int8: eval labels must be in 0..3" in flat
    section = report_section(build_report([run]))
    rows = {(r["model"], r["variant"]): r for r in section.data["devices"][0]["rows"]}
    assert rows[("wrong-shape", "int8")]["accuracy_error"] == reasons[("wrong-shape", "int8")]
    assert rows[("wrong-shape", "int8")]["p50_ms"] > 0


# ----------------------------------------------------------------------------- Pareto frontier


def test_pareto_front_on_hand_made_points() -> None:
    #            fast+bad  slow+good  dominated  middle  same as #0 but worse  nan
    latency = [1.0, 10.0, 5.0, 3.0, 1.0, float("nan")]
    accuracy = [0.70, 0.95, 0.80, 0.85, 0.60, 0.99]
    assert pareto_front(latency, accuracy) == [0, 3, 1]
    # a tie on both: the first listed stays, the copy is not "better in one"
    assert pareto_front([2.0, 2.0], [0.9, 0.9]) == [0]
    # equal accuracy: only the fastest is on the frontier
    assert pareto_front([3.0, 1.0, 2.0], [0.9, 0.9, 0.9]) == [1]
    # equal latency: only the most accurate
    assert pareto_front([1.0, 1.0], [0.5, 0.7]) == [1]
    # strictly better on both every step: all of them, fastest first
    assert pareto_front([4.0, 3.0, 2.0, 1.0], [0.9, 0.8, 0.7, 0.6]) == [3, 2, 1, 0]
    assert pareto_front([], []) == []
    # brute force on random points: on the frontier exactly when nothing dominates it
    rng = np.random.default_rng(5)
    for _ in range(50):
        xs, ys = rng.integers(1, 6, 12).astype(float), rng.integers(1, 6, 12).astype(float)
        front = pareto_front(xs, ys)
        for i in range(12):
            dominated = any(xs[j] <= xs[i] and ys[j] >= ys[i] and (xs[j] < xs[i] or ys[j] > ys[i]) for j in range(12))
            duplicate_before = any(xs[j] == xs[i] and ys[j] == ys[i] for j in range(i))
            assert (i in front) == (not dominated and not duplicate_before)
        assert [xs[i] for i in front] == sorted(xs[i] for i in front)


def test_pareto_figure_draws_every_point_and_the_frontier() -> None:
    rows = pd.DataFrame({
        "run_id": "r", "device": "pi4", "emulated": False, "threads": 1, "xnnpack": True, "batch": 1,
        "model": ["big", "big", "small", "small"], "variant": ["fp32", "int8", "fp32", "int8"],
        "p50_ms": [10.0, 4.0, 2.0, 1.0], "accuracy": [0.92, 0.91, 0.88, 0.80], "accuracy_n": 300,
        "model_size": [4_000_000, 1_000_000, 400_000, 100_000], "task": "t1",
    })
    fig = pareto_figure(rows, "pi4: accuracy against latency (p50)")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"  # 1 to 10 ms
    texts = {t.get_text() for t in ax.texts}
    assert texts == {"big fp32", "big int8", "small fp32", "small int8"}
    bold = {t.get_text() for t in ax.texts if t.get_fontweight() == "bold"}
    assert bold == {"big fp32", "big int8", "small fp32", "small int8"}  # each is faster or more accurate
    (step,) = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert list(step.get_ydata()[:4]) == pytest.approx([80.0, 88.0, 91.0, 92.0])
    sizes = sorted(float(c.get_sizes()[0]) for c in ax.collections)
    assert sizes[-1] == pytest.approx(700.0) and sizes[-2] == pytest.approx(175.0)  # area ∝ bytes
    assert fig.axes[0].get_ylim()[1] <= 100.0


def test_words() -> None:
    assert ratio_words(3.71) == "3.7x smaller" and ratio_words(0.5) == "2.0x larger" and ratio_words(1.01) == "same size"
    assert speed_words(200, 100) == "2.0x faster" and speed_words(100, 440) == "4.4x slower"
    assert speed_words(101, 100) == "about as fast" and speed_words(104, 100) == "1.04x faster"
    assert speed_words(100, 101, "fp32") == "about as fast as fp32" and speed_words(50, 100, "fp32") == "2.0x slower than fp32"
    assert math.isclose(float(re.search(NUMBER, "14.6x smaller").group(1)), 14.6)


def test_no_section_without_families_or_accuracy() -> None:
    summary = pd.DataFrame({"run_id": ["r"], "device": ["local"], "emulated": [False], "model": ["m"],
                            "variant": ["model"], "threads": [1], "xnnpack": [True], "batch": [1], "key": ["k"],
                            "baseline": [None], "status": ["ok"], "p50_ms": [1.0], "throughput": [900.0],
                            "model_size": [1000], "size_ratio": [np.nan], "accuracy": [np.nan],
                            "accuracy_error": [None]})
    from benchbot.report.data import ReportData

    assert report_section(ReportData(runs=[], summary=summary, samples={})) is None
    assert family_headlines(tradeoff_frame(ReportData(runs=[], summary=summary, samples={})), {}, "local", False,
                            "local") == []


def test_a_speed_tie_never_puts_the_less_accurate_point_on_the_front() -> None:
    """B reads 5 % faster than A but their repetitions overlap: a tie, so only A (more accurate) is on the front."""
    latency, accuracy = [1.00, 0.95, 3.0], [0.92, 0.90, 0.95]
    assert pareto_front(latency, accuracy) == [1, 0, 2]
    tied = {(0, 1), (1, 0)}
    assert pareto_front(latency, accuracy, lambda i, j: (i, j) in tied) == [0, 2]
    # tied and equally accurate: one of them is kept, the one that reads faster
    assert pareto_front([1.0, 0.95], [0.9, 0.9], lambda i, j: True) == [1]
