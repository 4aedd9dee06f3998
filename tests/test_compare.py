"""`benchbot compare`: repetition-level statistics against hand-computed Welch, verdicts on real runs, exit codes."""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import benchbot
from benchbot import history, stats
from benchbot.errors import BenchbotError
from benchbot.models.catalog import ZOO_DIR, load_family
from benchbot.report.compare import INCONCLUSIVE, compare, compare_models, judge, run_spreads, verdict
from benchbot.store import SAMPLES_HEADER, encode_chunk, read_samples_bin
from tests.conftest import QUICK, md_rows, run_cli

MODELS = Path(os.environ.get("BENCHBOT_TEST_ZOO") or ZOO_DIR)
FAMILIES = sorted(p.parent.name for p in MODELS.glob("*/family.json"))
needs_zoo = pytest.mark.skipif(not FAMILIES, reason="the model zoo is not built")
#: The gate must be quiet on identical runs with its default factor, so no test here passes --factor to make
#: noise go away. Nine repetitions, not the default five: this VM runs a process of the 50 us model in one of
#: two speed modes ~17 % apart, and when by chance all of one side's repetitions land in one mode and all of
#: the other's in the other, any test on five of them calls it a difference (a simulation of that gives ~0.5 %
#: of A/A pairs at five repetitions, 0.15 % at nine). Such a coin is a flaky test, not a weaker one.
REPS = ["--repetitions", "9"]


# ----------------------------------------------------------------------------- the statistics


def welch_by_hand(a: list[float], b: list[float], confidence: float = 0.95) -> tuple[float, float, float, float]:
    """Welch's t on the logs, written out: ratio, interval and two-sided p (scipy only for t quantiles)."""
    from scipy.stats import t as student

    la, lb = np.log(a), np.log(b)
    va, vb = la.var(ddof=1) / la.size, lb.var(ddof=1) / lb.size
    diff = lb.mean() - la.mean()
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (la.size - 1) + vb**2 / (lb.size - 1))
    q = student.ppf(0.5 + confidence / 2, df)
    p = 2 * student.sf(abs(diff / se), df)
    return math.exp(diff), math.exp(diff - q * se), math.exp(diff + q * se), p


@pytest.mark.parametrize("case", ["shifted", "same", "noisy", "unequal-k"])
def test_ratio_of_repetitions_is_welch_on_log_medians(case: str) -> None:
    rng = np.random.default_rng(11)
    k_a, k_b, shift, noise = {"shifted": (5, 5, 0.15, 0.02), "same": (5, 5, 0.0, 0.03),
                              "noisy": (7, 7, 0.10, 0.12), "unequal-k": (3, 9, 0.05, 0.02)}[case]
    a = list(np.exp(rng.normal(0.0, noise, k_a)))
    b = list(np.exp(rng.normal(shift, noise, k_b)))
    got = stats.ratio_of_repetitions(a, b)
    ratio, lo, hi, p = welch_by_hand(a, b)
    assert got is not None
    assert (got.ratio, got.lo, got.hi, got.p_value) == pytest.approx((ratio, lo, hi, p), rel=1e-9)
    assert got.tie == (lo <= 1.0 <= hi)


def test_ratio_without_repetitions_has_no_interval_and_claims_nothing() -> None:
    one = stats.ratio_of_repetitions([2.0], [3.0, 3.1, 2.9])
    assert one is not None and one.ratio == pytest.approx(3.0 / 2.0, rel=0.01)
    assert one.lo is None and one.p_value is None and not one.tie
    assert stats.ratio_of_repetitions([], [1.0]) is None
    flat = stats.ratio_of_repetitions([2.0, 2.0, 2.0], [2.0, 2.0, 2.0])
    assert flat is not None and flat.p_value == 1.0 and flat.tie


def test_verdict_needs_the_whole_interval_beyond_the_factor() -> None:
    assert verdict(1.10, 1.30, 1.05) == "slower"
    assert verdict(1.02, 1.30, 1.05) == "not significant"   # could be within the factor
    assert verdict(0.80, 0.93, 1.05) == "faster"
    assert verdict(0.80, 0.96, 1.05) == "not significant"   # 0.96 > 1/1.05
    assert verdict(None, None, 1.05) == "not significant"   # one repetition: no evidence


def test_the_gate_does_not_call_a_cell_whose_processes_only_changed_speed_mode_shares() -> None:
    fast_then_slow = [0.190, 0.191, 0.189, 0.190, 0.260], [0.260, 0.261, 0.259, 0.262, 0.258]
    estimate, called, note = judge(*fast_then_slow, 1.05)
    assert verdict(estimate.lo, estimate.hi, 1.05) == "slower"   # Welch alone calls it
    assert called == "not significant"
    assert note == ("speed modes 0.190/0.260 ms: A 4 fast + 1 slow, B 0 + 5, at the same speeds; "
                    "only the share moved")
    # a cell whose processes agree, made ~15 % slower in every process, is still called, without the note
    fast = [0.190, 0.191, 0.189, 0.190, 0.192]
    assert judge(fast, [x * 1.15 for x in fast], 1.05)[1:] == ("slower", "")
    assert judge([1.0, 1.01, 0.99], [1.0, 1.02, 0.98], 1.05)[1:] == ("not significant", "")


def test_a_ratio_past_the_factor_with_a_wide_interval_is_inconclusive_not_unchanged() -> None:
    # the gate's deeper CNN across two runs (2026-12-03): one of B's five repetitions ran 16 % slower than the rest
    estimate, called, note = judge([1.543, 1.582, 1.544, 1.633, 1.583], [1.986, 1.713, 1.750, 1.700, 1.709], 1.05)
    assert estimate.ratio > 1.05 and estimate.lo is not None and estimate.lo < 1.05
    assert (called, note) == ("not significant", "inconclusive: B/A is past the factor, its interval not wholly")
    # past 1/factor the other way is inconclusive too; one repetition a side has no interval, so no such note
    assert judge([1.709, 1.713, 1.750, 1.700], [1.543, 1.582, 1.544, 1.633, 1.2], 1.05)[2].startswith("inconclusive")
    assert judge([1.0], [1.3], 1.05)[1:] == ("not significant", "")


# ----------------------------------------------------------------------------- real runs


def _by_fp32_size() -> list[Path]:
    sized = []
    for name in FAMILIES:
        family = load_family(MODELS / name)
        base = next((v for v in family.variants if v.variant == family.baseline), family.variants[0])
        sized.append((base.size, base.path))
    return [p for _, p in sorted(sized)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Real runs of 5 repetitions: A twice (same plan), B with a much bigger model under A's family and variant
    name, C with one more variant."""
    if not FAMILIES:
        pytest.skip("the model zoo is not built")
    tmp = tmp_path_factory.mktemp("compare")
    small, big = _by_fp32_size()[0], _by_fp32_size()[-1]
    assert big.stat().st_size > 4 * small.stat().st_size, "the zoo needs a clearly bigger model"
    folders = {}
    for name, files in (("A", {"fp32": small}), ("B", {"fp32": big}),
                        ("C", {"fp32": small, "extra": _by_fp32_size()[len(FAMILIES) // 2]})):
        folder = tmp / name / "fam"  # the same family name "fam" in every run
        folder.mkdir(parents=True)
        for variant, source in files.items():
            shutil.copy(source, folder / f"{variant}.tflite")
        folders[name] = folder
    env = dict(os.environ, BENCHBOT_RESULTS=str(tmp / "results"))
    env.pop("BENCHBOT_PROFILES", None)
    env.pop("COLUMNS", None)
    ids = {}
    for label, folder in (("A1", folders["A"]), ("A2", folders["A"]), ("B", folders["B"]), ("C", folders["C"])):
        done = run_cli(["run", "--models", str(folder), "--threads", "1", "--no-accuracy", "--quiet", *QUICK,
                        "--min-seconds", "0.2", *REPS], env)
        assert done.returncode == 0, done.stderr
        ids[label] = benchbot.load_run(results=tmp / "results").run_id
    # D: one run holding two builds of the same family (named with NAME=PATH), plus the first build again
    done = run_cli(["run", "--models", f"old={folders['A']},new={folders['B']},twin={folders['A']}", "--threads",
                    "1", "--no-accuracy", "--quiet", *QUICK, "--min-seconds", "0.2", *REPS], env)
    assert done.returncode == 0, done.stderr
    ids["D"] = benchbot.load_run(results=tmp / "results").run_id
    return {"tmp": tmp, "env": env, "ids": ids}


def test_a_genuinely_slower_run_fails_the_gate(runs: dict) -> None:
    ids, env = runs["ids"], runs["env"]
    done = run_cli(["compare", ids["A1"], ids["B"], "--format", "json"], env)
    assert done.returncode == 1, done.stderr
    body = json.loads(done.stdout)
    [cell] = body["cells"]
    assert (cell["model"], cell["variant"], cell["verdict"]) == ("fam", "fp32", "slower")
    assert cell["ratio"] > 1.5 and cell["ratio_ci_lo"] > 1.05 and cell["p_value"] < 1e-3
    assert (cell["reps_a"], cell["reps_b"]) == (9, 9)
    assert cell["note"] == "different model file"
    assert body["slower"] == 1 and "significantly slower" in done.stderr
    # the other way round it is faster, which passes the gate
    back = run_cli(["compare", ids["B"], ids["A1"], "--format", "json"], env)
    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout)["cells"][0]["verdict"] == "faster"


def test_a_run_against_itself_is_not_significant(runs: dict) -> None:
    done = run_cli(["compare", runs["ids"]["A1"], runs["ids"]["A1"]], runs["env"])
    assert done.returncode == 0, done.stderr
    assert "not significant" in done.stdout and "1 cells compared: 0 slower, 0 faster, 1 not significant" in done.stdout
    result = compare(benchbot.load_run(runs["ids"]["A1"], results=runs["tmp"] / "results"),
                     benchbot.load_run(runs["ids"]["A1"], results=runs["tmp"] / "results"))
    assert result.cells[0].p_value == 1.0 and result.cells[0].ratio == 1.0


def test_two_real_runs_of_one_plan_are_not_significant_at_the_default_factor(runs: dict) -> None:
    done = run_cli(["compare", runs["ids"]["A1"], runs["ids"]["A2"], "--format", "json"], runs["env"])
    assert done.returncode == 0, (done.stdout, done.stderr)
    [cell] = json.loads(done.stdout)["cells"]
    assert cell["verdict"] == "not significant" and cell["note"] in ("", INCONCLUSIVE)  # the same file: no other note
    assert cell["ratio_ci_lo"] <= 1.05 and cell["ratio_ci_hi"] >= 1 / 1.05


def _copy_with_scaled_latencies(run_folder: Path, dest: Path, scale: float, models: set[str] | None = None) -> Path:
    """A copy of a stored run whose loop latencies (of `models`, or all) are multiplied by `scale`, in the samples
    and in the medians the run log keeps for later runs (for the verdict logic only)."""
    shutil.copytree(run_folder, dest)
    manifest = json.loads((dest / "manifest.json").read_text())
    scaled = {c["key"] for c in manifest["plan"]["cells"] if models is None or c["model"] in models}
    every = [f for key in sorted(scaled) for f in (dest / "cells" / key).glob("rep*/*/samples.bin")]
    assert every
    for samples in every:
        frame, problems = read_samples_bin(samples)
        assert not problems
        loop = (frame["phase"] == "loop").to_numpy()
        latency = frame["latency_ns"].to_numpy()
        latency = np.where(loop, np.round(latency * scale).astype(np.int64), latency)
        header = samples.read_bytes()[:SAMPLES_HEADER.size]
        chunks = [encode_chunk(p, frame["start_ns"].to_numpy()[m], latency[m])[0]
                  for p in ("warmup", "loop") for m in [(frame["phase"] == p).to_numpy()] if m.any()]
        samples.write_bytes(header + b"".join(chunks))
    events = [json.loads(line) for line in (dest / "log.jsonl").read_text().splitlines() if line.strip()]
    for event in events:
        if event.get("event") == "cell" and event.get("key") in scaled and event.get("p50_ms"):
            event["p50_ms"] *= scale
    (dest / "log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return dest


def test_verdicts_on_a_copy_with_scaled_latencies(runs: dict) -> None:
    a = benchbot.load_run(runs["ids"]["A1"], results=runs["tmp"] / "results")
    # twice as slow (and half): far beyond any noise this shared machine shows between repetitions
    slow = _copy_with_scaled_latencies(a.folder, runs["tmp"] / "edited" / "slow", 2.0)
    assert len(list(slow.glob("cells/*/rep*/*/samples.bin"))) == 9
    fast = _copy_with_scaled_latencies(a.folder, runs["tmp"] / "edited" / "fast", 0.5)
    env = runs["env"]
    done = run_cli(["compare", str(a.folder), str(slow), "--format", "md"], env)
    rows = md_rows(done.stdout)
    assert done.returncode == 1 and any("slower" in r for r in rows)
    assert any("2.00" in r for r in rows)  # every repetition's median times 2
    done = run_cli(["compare", str(a.folder), str(fast)], env)
    assert done.returncode == 0 and "faster" in done.stdout
    # the same shift with a factor above it: the interval is not wholly beyond 2.5, so not significant
    result = compare(a, benchbot.load_run(slow), factor=2.5)
    assert result.cells[0].ratio == pytest.approx(2.0, rel=1e-3) and result.cells[0].verdict == "not significant"


def test_unmatched_cells_are_listed(runs: dict) -> None:
    done = run_cli(["compare", runs["ids"]["A1"], runs["ids"]["C"]], runs["env"])
    assert done.returncode == 0, done.stderr
    assert f"only in B ({runs['ids']['C']}): local fam/extra t1" in done.stdout
    body = json.loads(run_cli(["compare", runs["ids"]["C"], runs["ids"]["A1"], "--format", "json"],
                              runs["env"]).stdout)
    assert body["only_a"] == ["local fam/extra t1"] and body["only_b"] == [] and len(body["cells"]) == 1


@needs_zoo
def test_bad_input_is_one_line_and_exit_2(runs: dict) -> None:
    for args, message in ((["compare", runs["ids"]["A1"], "nosuchrun"], "no run 'nosuchrun'"),
                          (["compare", runs["ids"]["A1"], runs["ids"]["A2"], "--factor", "0.9"], "--factor")):
        done = run_cli(args, runs["env"])
        assert done.returncode == 2, (done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("benchbot: ") and message in lines[0]


def test_two_models_in_one_run_compare_on_their_interleaved_repetitions(runs: dict) -> None:
    run = benchbot.load_run(runs["ids"]["D"], results=runs["tmp"] / "results")
    assert sorted(set(run.summary["model"])) == ["new", "old", "twin"]
    slower = compare_models(run, "old", "new")
    [cell] = slower.cells
    assert (cell.model, cell.variant, cell.verdict, cell.reps_a, cell.reps_b) == ("new vs old", "fp32", "slower", 9, 9)
    by_model = run.summary.set_index("model")
    assert cell.p50_a_ms == by_model.loc["old", "p50_ms"] and cell.p50_b_ms == by_model.loc["new", "p50_ms"]
    assert cell.ratio > 1.5 and cell.note == ""  # a different file is the point here, not a warning
    assert (slower.run_a, slower.run_b) == (f"{run.run_id}:old", f"{run.run_id}:new")
    same = compare_models(run, "old", "twin")
    assert [c.verdict for c in same.cells] == ["not significant"]
    assert same.cells[0].ratio_ci_lo <= 1.05 and same.cells[0].ratio_ci_hi >= 1 / 1.05
    with pytest.raises(BenchbotError, match="has no model 'nope' \\(its models: new, old, twin\\)"):
        compare_models(run, "old", "nope")
    with pytest.raises(BenchbotError, match="not 'old' with itself"):
        compare_models(run, "old", "old")


def test_compare_models_from_the_command_line_gates_like_two_runs(runs: dict) -> None:
    env, run_id = runs["env"], runs["ids"]["D"]
    done = run_cli(["compare", run_id, "--models", "old,new", "--format", "json"], env)
    assert done.returncode == 1, done.stderr
    [cell] = json.loads(done.stdout)["cells"]
    assert (cell["model"], cell["verdict"]) == ("new vs old", "slower")
    assert f"significantly slower in {run_id}:new than in {run_id}:old" in done.stderr
    quiet = run_cli(["compare", run_id, "--models", "old,twin"], env)
    assert quiet.returncode == 0 and "1 cells compared: 0 slower, 0 faster, 1 not significant" in quiet.stdout
    for args, message in ((["--models", "old"], "--models takes two model names, OLD,NEW, got 'old'"),
                          (["--models", "old,nope"], "has no model 'nope'"),
                          ([runs["ids"]["A1"], "--models", "old,new"], "give one run, not two"),
                          ([], "give two runs to compare")):
        bad = run_cli(["compare", run_id, *args], env)
        lines = bad.stderr.strip().splitlines()
        assert bad.returncode == 2 and len(lines) == 1 and message in lines[0], (args, bad.stderr)


# ----------------------------------------------------------------------------- the device's other runs


def test_each_repetition_median_is_logged_for_the_next_runs(runs: dict) -> None:
    """The run log carries every repetition's loop median (what benchbot.history reads instead of samples), and
    it is the median the summary computes from the stored samples."""
    run = benchbot.load_run(runs["ids"]["A2"], results=runs["tmp"] / "results")
    logged = history.from_log(run.folder)
    assert logged is not None and logged.run_id == run.run_id
    [row] = [r for _, r in run.summary.iterrows()]
    key = history.identity(row["device"], row["model_sha256"], row["threads"], row["xnnpack"], row["batch"])
    assert logged.medians == {key: pytest.approx(row["rep_p50_ms"], rel=1e-9)}
    from_samples = history.from_summary(run).medians
    assert from_samples.keys() == logged.medians.keys()
    assert from_samples[key] == pytest.approx(logged.medians[key], rel=1e-9)  # np.median vs np.percentile


def test_the_next_run_interval_learns_the_run_to_run_spread_from_earlier_runs_only(runs: dict) -> None:
    results = runs["tmp"] / "results"
    first = benchbot.load_run(runs["ids"]["A1"], results=results).summary.iloc[0]
    second = benchbot.load_run(runs["ids"]["A2"], results=results).summary.iloc[0]
    # A1 came first: later runs (A2, C, D hold the same file) do not change what it reported
    assert first["run_sd_runs"] == 0 and first["run_sd"] == stats.ASSUMED_RUN_SPREAD.sd == 0.03
    assert second["run_sd_runs"] == 2 and second["run_sd"] >= 0
    a1 = history.from_log(results / runs["ids"]["A1"])
    a2 = history.from_log(results / runs["ids"]["A2"])
    assert a1 is not None and a2 is not None
    learned = stats.run_to_run_spread([{0: a1.medians[k], 1: a2.medians[k]} for k in a1.medians])
    [key] = a1.medians
    within = stats.pooled_repetition_variance([a1.medians[key], a2.medians[key]])
    assert learned is not None and within is not None
    expected = stats.next_run_interval(second["rep_p50_ms"], spread=replace(learned, rep_var=within[0],
                                                                             rep_df=within[1]))
    assert expected is not None and (second["p50_ci_lo_ms"], second["p50_ci_hi_ms"]) == pytest.approx(
        (expected.lo, expected.hi), rel=1e-9)
    report = run_cli(["report", runs["ids"]["A2"], "--format", "md", "--no-plots"], runs["env"])
    assert "local: next run 95% adds a run-to-run spread of" in report.stdout or \
        "moved no more than their repetitions do" in report.stdout
    report = run_cli(["report", runs["ids"]["A1"], "--format", "md", "--no-plots"], runs["env"])
    assert "local: next run 95% assumes a run-to-run spread of 3.0 % on top of this run's repetitions" in report.stdout


def test_two_runs_are_judged_with_the_spread_of_the_other_cells_never_their_own(runs: dict, tmp_path: Path) -> None:
    results = runs["tmp"] / "results"
    a, c = (benchbot.load_run(runs["ids"][k], results=results) for k in ("A1", "C"))
    spread_for, _ = run_spreads(a, c)
    rows_a, rows_c = a.summary.set_index("variant"), c.summary.set_index("variant")
    # fp32 is the same file in both, so it is left out of its own spread: none of the other cells (the extra
    # variant, in C only) was measured twice, and the other runs of that file are its own cell too: so it is
    # judged with the spread a first run assumes, as the report's intervals are
    assert spread_for(rows_a.loc["fp32"], rows_c.loc["fp32"]) == stats.ASSUMED_RUN_SPREAD
    body = json.loads(run_cli(["compare", runs["ids"]["A1"], runs["ids"]["C"], "--format", "json"],
                              runs["env"]).stdout)
    assert [(c["run_sd"], c["run_sd_runs"]) for c in body["cells"]] == [(0.03, 0)]
    assert any("no other cell was measured in two of its runs, so the intervals assume a run-to-run spread of 3.0 %"
               in n for n in body["notes"])
    # a device with another cell measured in both runs: copies of D, whose `new` model then says how far
    # the device moves between the two, and `old` is judged with that spread (and not its own)
    d = benchbot.load_run(runs["ids"]["D"], results=results)
    one, two = tmp_path / "r" / "one", tmp_path / "r" / "two"
    shutil.copytree(d.folder, one)
    _copy_with_scaled_latencies(d.folder, two, 1.5, models={"new"})
    x, y = benchbot.load_run(one), benchbot.load_run(two)
    spread_for, basis = run_spreads(x, y)
    sx, sy = x.summary.set_index("model"), y.summary.set_index("model")
    moved = spread_for(sx.loc["old"], sy.loc["old"])
    assert moved is not None and moved.runs == 2 and moved.cells == 1 and moved.sd > 0.2  # new moved by x1.5
    # new is judged with the spread of old and twin (one file, one cell), which did not move at all
    steady = spread_for(sx.loc["new"], sy.loc["new"])
    assert steady is not None and steady.sd == 0.0
    result = compare(x, y)
    judged = {c.model: c for c in result.cells}
    assert judged["new"].verdict == "slower" and judged["new"].ratio == pytest.approx(1.5, rel=1e-3)
    assert judged["old"].verdict == "not significant" and judged["old"].run_sd == pytest.approx(moved.sd)
    assert any("the intervals add a run-to-run spread of 0.0 % to" in n for n in result.notes)
    three = tmp_path / "r" / "three"  # an exact copy: every cell moved by nothing, and the note says so in words
    shutil.copytree(d.folder, three)
    same = compare(x, benchbot.load_run(three))
    assert [c.verdict for c in same.cells] == ["not significant"] * len(same.cells)
    assert any("the intervals add no run-to-run spread: the device's other cells moved no more across these two "
               "runs" in n for n in same.notes), same.notes


def test_a_cell_that_moves_more_than_the_others_is_judged_with_its_own_spread() -> None:
    fp = {"hostname": "h", "cpu": "c", "cores": 2}
    steady, moody = history.identity("d", "aa", 1, True, 1), history.identity("d", "bb", 1, True, 1)
    runs = []
    for i, shift in enumerate((1.0, 1.3, 1.0, 1.35)):  # the moody cell's process mode changes from run to run
        run = history.RunMedians(f"r{i}", {"d": fp})
        run.add(steady, [1.00 + 0.01 * i, 1.01, 0.99])
        run.add(moody, [2.0 * shift, 2.02 * shift, 1.98 * shift])
        runs.append(run)
    pooled = history.spread("d", fp, runs, leave_out=[moody])
    assert pooled is not None and pooled.sd < 0.01
    own = history.cell_spread("d", fp, runs, [moody], pooled)
    expected = stats.run_to_run_spread([{i: r.medians[moody] for i, r in enumerate(runs)}])
    assert own is not None and expected is not None and (own.sd, own.df) == (expected.sd, expected.df)
    assert own.sd > 0.1 and own.rep_var == stats.pooled_repetition_variance([r.medians[moody] for r in runs])[0]
    steady_spread = history.cell_spread("d", fp, runs, [steady], pooled)
    assert steady_spread is not None and steady_spread.sd == pooled.sd  # its own runs moved less: the pool
    # the judged runs are not evidence of their own spread: without runs 0 and 1 only two runs remain
    skipped = history.cell_spread("d", fp, runs, [moody], pooled, skip_runs=[0, 1])
    two = stats.run_to_run_spread([{2: runs[2].medians[moody], 3: runs[3].medians[moody]}])
    assert skipped is not None and two is not None and (skipped.sd, skipped.df) == (two.sd, two.df)
    # another device's fingerprint shares nothing
    assert history.cell_spread("d", {"hostname": "other"}, runs, [moody], None) is None
