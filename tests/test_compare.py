"""`benchbot compare`: the Mann-Whitney U test against scipy, verdicts on real runs, exit codes for CI."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import benchbot
from benchbot.models.catalog import ZOO_DIR, load_family
from benchbot.report.compare import average_ranks, compare, mann_whitney_u, verdict
from tests.conftest import QUICK, run_cli

MODELS = Path(os.environ.get("BENCHBOT_TEST_ZOO") or ZOO_DIR)
FAMILIES = sorted(p.parent.name for p in MODELS.glob("*/family.json"))
needs_zoo = pytest.mark.skipif(not FAMILIES, reason="the model zoo is not built")

# Back-to-back runs of one 60 µs model on a shared 2-core CI VM were seen to differ by up to ±15 % in median;
# the "same plan" test allows for that. A deliberately slower run must clear the default ×1.05 by far.
NOISE_FACTOR = "1.5"


# ----------------------------------------------------------------------------- the test itself


@pytest.mark.parametrize("case", ["shifted", "same", "ties", "unequal", "tiny"])
def test_mann_whitney_matches_scipy(case: str) -> None:
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(7)
    if case == "shifted":
        x, y = rng.lognormal(0, 0.3, 3000), rng.lognormal(0.02, 0.3, 2500)
    elif case == "same":
        x, y = rng.lognormal(0, 0.3, 4000), rng.lognormal(0, 0.3, 4000)
    elif case == "ties":  # latencies on a coarse clock: heavy ties
        x, y = rng.integers(50, 60, 2000).astype(float), rng.integers(51, 61, 1500).astype(float)
    elif case == "unequal":
        x, y = rng.normal(10, 1, 50), rng.normal(10.3, 1, 5000)
    else:
        x, y = np.array([1.0, 2.0, 2.0, 3.0, 5.0, 8.0]), np.array([2.0, 3.0, 3.0, 4.0, 9.0, 9.0, 10.0])
    ours = mann_whitney_u(x, y)
    ref = mannwhitneyu(x, y, alternative="two-sided", method="asymptotic", use_continuity=True)
    assert ours.u == pytest.approx(ref.statistic, rel=1e-12)
    assert ours.p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)


def test_average_ranks_and_degenerate_samples() -> None:
    from scipy.stats import rankdata

    values = np.array([3.0, 1.0, 3.0, 2.0, 3.0, 1.0])
    ranks, ties = average_ranks(values)
    assert list(ranks) == list(rankdata(values))
    assert sorted(ties) == [1, 2, 3]
    same = mann_whitney_u([5.0] * 10, [5.0] * 12)  # no spread at all: no evidence of a difference
    assert same.p == 1.0 and same.u == 60.0
    huge = mann_whitney_u(np.arange(5000.0), np.arange(5000.0) + 10_000)
    assert huge.p == 0.0 or huge.p < 1e-300
    with pytest.raises(ValueError):
        mann_whitney_u([], [1.0])


def test_verdict_needs_both_significance_and_size() -> None:
    assert verdict(1.30, 1e-9, 1.05) == "slower"
    assert verdict(1.30, 0.02, 1.05) == "not significant"   # big but not significant
    assert verdict(1.03, 1e-20, 1.05) == "not significant"  # significant but within the factor
    assert verdict(0.90, 1e-9, 1.05) == "faster"
    assert verdict(1 / 1.05, 1e-9, 1.05) == "not significant"


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
    """Real runs: A twice (same plan), B with a much bigger model under A's family and variant name, C with more."""
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
                        "--min-seconds", "0.2"], env)
        assert done.returncode == 0, done.stderr
        ids[label] = benchbot.load_run(results=tmp / "results").run_id
    return {"tmp": tmp, "env": env, "ids": ids}


def test_a_genuinely_slower_run_fails_the_gate(runs: dict) -> None:
    ids, env = runs["ids"], runs["env"]
    done = run_cli(["compare", ids["A1"], ids["B"], "--format", "json"], env)
    assert done.returncode == 1, done.stderr
    body = json.loads(done.stdout)
    [cell] = body["cells"]
    assert (cell["model"], cell["variant"], cell["verdict"]) == ("fam", "fp32", "slower")
    assert cell["ratio"] > 1.5 and cell["ratio_ci_lo"] > 1.05 and cell["p_value"] < 1e-6
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


def test_two_real_runs_of_one_plan_are_not_significant(runs: dict) -> None:
    done = run_cli(["compare", runs["ids"]["A1"], runs["ids"]["A2"], "--factor", NOISE_FACTOR, "--format", "json"],
                   runs["env"])
    assert done.returncode == 0, (done.stdout, done.stderr)
    [cell] = json.loads(done.stdout)["cells"]
    assert cell["verdict"] == "not significant" and cell["note"] == ""
    assert 1 / float(NOISE_FACTOR) < cell["ratio"] < float(NOISE_FACTOR)


def _copy_with_scaled_latencies(run_folder: Path, dest: Path, scale: float) -> Path:
    """A copy of a stored run whose loop latencies are multiplied by `scale` (for the verdict logic only)."""
    shutil.copytree(run_folder, dest)
    [samples] = list((dest / "cells").glob("*/*/samples.csv"))
    lines = samples.read_text().splitlines()
    out = [lines[0]]
    for line in lines[1:]:
        phase, start, latency = line.split(",")
        out.append(f"{phase},{start},{round(int(latency) * scale) if phase == 'loop' else latency}")
    samples.write_text("\n".join(out) + "\n")
    return dest


def test_verdicts_on_a_copy_with_scaled_latencies(runs: dict) -> None:
    a = benchbot.load_run(runs["ids"]["A1"], results=runs["tmp"] / "results")
    slow = _copy_with_scaled_latencies(a.folder, runs["tmp"] / "edited" / "slow", 1.3)
    fast = _copy_with_scaled_latencies(a.folder, runs["tmp"] / "edited" / "fast", 0.7)
    small = _copy_with_scaled_latencies(a.folder, runs["tmp"] / "edited" / "small", 1.02)
    env = runs["env"]
    done = run_cli(["compare", str(a.folder), str(slow), "--format", "md"], env)
    assert done.returncode == 1 and "| slower |" in done.stdout
    assert "| 1.30 |" in done.stdout  # the ratio of medians of every latency times 1.3
    done = run_cli(["compare", str(a.folder), str(fast)], env)
    assert done.returncode == 0 and "faster" in done.stdout
    # a real but small shift: significant, yet within the factor
    result = compare(a, benchbot.load_run(small))
    assert result.cells[0].p_value < 0.01 and result.cells[0].verdict == "not significant"
    assert run_cli(["compare", str(a.folder), str(small), "--factor", "1.01"], env).returncode == 1


def test_unmatched_cells_are_listed(runs: dict) -> None:
    done = run_cli(["compare", runs["ids"]["A1"], runs["ids"]["C"], "--factor", NOISE_FACTOR], runs["env"])
    assert done.returncode == 0, done.stderr
    assert f"only in B ({runs['ids']['C']}): local fam/extra t1" in done.stdout
    body = json.loads(run_cli(["compare", runs["ids"]["C"], runs["ids"]["A1"], "--format", "json",
                               "--factor", NOISE_FACTOR], runs["env"]).stdout)
    assert body["only_a"] == ["local fam/extra t1"] and body["only_b"] == [] and len(body["cells"]) == 1


@needs_zoo
def test_bad_input_is_one_line_and_exit_2(runs: dict) -> None:
    for args, message in ((["compare", runs["ids"]["A1"], "nosuchrun"], "no run 'nosuchrun'"),
                          (["compare", runs["ids"]["A1"], runs["ids"]["A2"], "--factor", "0.9"], "--factor")):
        done = run_cli(args, runs["env"])
        assert done.returncode == 2, (done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("benchbot: ") and message in lines[0]
