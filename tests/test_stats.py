"""stats against values computed by hand (or by an independent formula)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from benchbot import stats


def binomial_cdf_by_hand(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


def test_latency_summary_on_known_values() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    s = stats.latency_summary(values)
    assert s["count"] == 10
    assert s["mean"] == pytest.approx(5.5)
    assert s["std"] == pytest.approx(math.sqrt(sum((v - 5.5) ** 2 for v in values) / 9))
    assert s["min"] == 1.0 and s["max"] == 10.0
    # numpy linear interpolation: position (n - 1) * q
    assert s["p50"] == pytest.approx(5.5)
    assert s["p90"] == pytest.approx(9.1)
    assert s["p99"] == pytest.approx(9.91)
    # n = 10: ranks 2 and 9 (P(2 <= B < 9) = 1 - 2 * 11/1024 = 0.9785)
    assert (s["p50_ci_lo"], s["p50_ci_hi"]) == (2.0, 9.0)


def test_median_ci_ranks_match_the_binomial_definition() -> None:
    for n in (6, 7, 10, 25, 36, 99, 250):
        lo, hi = stats.quantile_ci_ranks(n, 0.5, 0.95)
        coverage = binomial_cdf_by_hand(hi - 1, n, 0.5) - binomial_cdf_by_hand(lo - 1, n, 0.5)
        assert coverage >= 0.95
        # each tail at most 2.5 %, and one rank further in would break that
        assert binomial_cdf_by_hand(lo - 1, n, 0.5) <= 0.025 < binomial_cdf_by_hand(lo, n, 0.5)


def test_too_few_samples_for_an_interval() -> None:
    assert stats.quantile_ci_ranks(5, 0.5) is None
    assert stats.quantile_ci_ranks(6, 0.5) == (1, 6)
    assert stats.quantile_ci_ranks(35, 0.9) is None
    assert stats.quantile_ci_ranks(36, 0.9) is not None
    assert stats.few_samples(50) == [95, 99]
    assert stats.few_samples(20) == [90, 95, 99]
    assert stats.few_samples(400) == []
    assert stats.median_ci([1.0, 2.0]) is None


def test_minimum_counts_match_order_statistics() -> None:
    for p, n in stats.MIN_SAMPLES_FOR.items():
        assert stats.quantile_ci_ranks(n, p / 100) is not None
        assert stats.quantile_ci_ranks(n - 1, p / 100) is None


def test_empty_summary_has_no_invented_numbers() -> None:
    s = stats.latency_summary([])
    assert s["count"] == 0 and s["p50"] is None and s["mean"] is None


def test_drift_and_instability() -> None:
    steady = np.full(100, 2.0)
    assert stats.decile_drift(steady) == 0.0
    assert not stats.is_unstable(0.02, 0.0)
    rising = np.concatenate([np.full(50, 1.0), np.full(50, 1.5)])
    assert stats.decile_drift(rising) == pytest.approx(0.5)
    assert stats.is_unstable(0.01, 0.5)
    assert stats.is_unstable(0.2, None)
    assert stats.decile_drift(np.ones(10)) is None


def test_throttle_bits_and_frequency() -> None:
    assert stats.throttle_bits_appeared(0x0, 0x4)            # throttled now
    assert stats.throttle_bits_appeared(0x0, 0x40000)        # throttled since boot, new during the cell
    assert not stats.throttle_bits_appeared(0x40000, 0x40000)
    assert not stats.throttle_bits_appeared(None, None)
    assert stats.frequency_dropped(1800.0, 1500.0)
    assert not stats.frequency_dropped(1800.0, 1800.0)
    assert not stats.frequency_dropped(None, 600.0)


def test_throughput_counts_samples_with_batch() -> None:
    assert stats.throughput(500, 2_000_000_000) == pytest.approx(250.0)
    assert stats.throughput(500, 2_000_000_000, batch=4) == pytest.approx(1000.0)
    assert stats.throughput(0, 0) is None


def test_next_run_interval_by_hand() -> None:
    from scipy.stats import t as student

    medians = [1.00, 1.04, 0.97, 1.02, 0.99]
    got = stats.next_run_interval(medians)
    logs = np.log(medians)
    center, sd = logs.mean(), logs.std(ddof=1)
    half = student.ppf(0.975, 4) * sd * math.sqrt(2 / 5)
    assert got is not None and got.k == 5
    assert got.value == pytest.approx(math.exp(center), rel=1e-12)
    assert (got.lo, got.hi) == pytest.approx((math.exp(center - half), math.exp(center + half)), rel=1e-12)
    assert got.cv == pytest.approx(sd, rel=1e-12)
    single = stats.next_run_interval([2.5])
    assert single is not None and single.value == pytest.approx(2.5) and single.lo is None and single.cv is None
    assert stats.next_run_interval([]) is None
    with pytest.raises(ValueError):
        stats.next_run_interval([1.0, -1.0])


def test_next_run_interval_covers_the_next_run_at_its_level() -> None:
    """Simulated runs of 5 repetitions with log-normal spread: the next run's value lands inside ~95 % of the time,
    and a confidence interval of the mean (the wrong form) would not."""
    rng = np.random.default_rng(3)
    inside = narrow_inside = 0
    trials = 4000
    for _ in range(trials):
        first = np.exp(rng.normal(0.0, 0.05, 5))
        second = np.exp(rng.normal(0.0, 0.05, 5))
        est = stats.next_run_interval(first)
        nxt = stats.next_run_interval(second)
        assert est is not None and nxt is not None and est.lo is not None and est.hi is not None
        inside += est.lo <= nxt.value <= est.hi
        half = math.log(est.hi / est.value) / math.sqrt(2)  # the CI of the mean: sqrt(1/k) instead of sqrt(2/k)
        narrow_inside += abs(math.log(nxt.value / est.value)) <= half
    assert 0.93 <= inside / trials <= 0.97
    assert narrow_inside / trials < 0.90  # ~0.88 in theory (t(4) at 2.78/sqrt 2)


def test_ranks_and_t_quantiles_are_scipys() -> None:
    """quantile_ci_ranks and t_quantile do without scipy (loading a run no longer imports it): the very ranks
    scipy's binomial CDF gives, and the very t quantiles."""
    from scipy import special
    from scipy import stats as sps

    for q in (0.5, 0.9, 0.95, 0.99):
        for n in [*range(1, 400), 1000, 9999, 10_000, 10_001, 123_457]:
            cdf = sps.binom.cdf(np.arange(n + 1), n, q)
            lo = int(np.searchsorted(cdf, 0.025, side="right"))
            hi = int(np.searchsorted(cdf, 1.0 - 0.025 - 1e-12, side="left")) + 1
            assert stats.quantile_ci_ranks(n, q) == (None if lo < 1 or hi > n else (lo, hi)), (n, q)
    for df in range(1, 40):
        assert stats.t_quantile(df, 0.975) == float(special.stdtrit(df, 0.975))
    assert stats.t_quantile(4, 0.995) == float(special.stdtrit(4, 0.995))


def test_run_to_run_spread_by_hand() -> None:
    # two cells: one measured in three runs, one in two; a third seen once says nothing and is skipped
    cell_a = [[1.00, 1.02, 0.99], [1.10, 1.12, 1.09, 1.11], [0.95, 0.97]]
    cell_b = [[2.0, 2.1], [2.3, 2.2, 2.25]]
    alone = [[5.0, 5.1, 5.2]]
    got = stats.run_to_run_spread([dict(enumerate(cell_a)), dict(enumerate(cell_b)), dict(enumerate(alone))])
    pooled, df, runs_minus_one = 0.0, 0, 2
    for cell in (cell_a, cell_b):
        logs = [np.log(r) for r in cell]
        means = [x.mean() for x in logs]
        within = np.mean([x.var(ddof=1) / len(x) for x in logs])
        pooled += (len(cell) - 1) * (np.var(means, ddof=1) - within)
        df += len(cell) - 1
    assert got is not None and (got.runs, got.cells) == (3, 2)
    assert got.sd == pytest.approx(math.sqrt(pooled / df), rel=1e-12)
    assert runs_minus_one <= got.df <= df
    # runs that agree better than their repetitions do: no spread beyond the repetitions', not a negative one
    calm = stats.run_to_run_spread([{"r1": [1.0, 1.2, 0.8], "r2": [1.01, 1.19, 0.81]}])
    assert calm is not None and calm.sd == 0.0
    assert stats.run_to_run_spread([{0: alone[0]}, {0: [1.0], 1: [1.1]}]) is None  # one repetition per run cannot separate them


def test_intervals_with_a_run_spread_by_hand() -> None:
    from scipy.stats import t as student

    medians, other = [1.00, 1.04, 0.97, 1.02, 0.99], [1.08, 1.11, 1.05, 1.09]
    spread = stats.RunSpread(sd=0.04, df=12.0, runs=4, cells=6)
    logs, logs_b = np.log(medians), np.log(other)
    # next run: variance 2 s²/k + 2 sd², Welch-Satterthwaite degrees of freedom
    a, b = 2 * logs.var(ddof=1) / 5, 2 * 0.04**2
    df = (a + b) ** 2 / (a**2 / 4 + b**2 / 12)
    half = student.ppf(0.975, df) * math.sqrt(a + b)
    got = stats.next_run_interval(medians, spread=spread)
    assert got is not None
    assert (got.lo, got.hi) == pytest.approx((math.exp(logs.mean() - half), math.exp(logs.mean() + half)), rel=1e-12)
    plain = stats.next_run_interval(medians)
    assert plain is not None and plain.lo is not None and got.lo < plain.lo and got.hi > plain.hi
    # two runs' cells: s_a²/k_a + s_b²/k_b + 2 sd²
    va, vb = logs.var(ddof=1) / 5, logs_b.var(ddof=1) / 4
    df = (va + vb + b) ** 2 / (va**2 / 4 + vb**2 / 3 + b**2 / 12)
    diff, se = logs_b.mean() - logs.mean(), math.sqrt(va + vb + b)
    q = student.ppf(0.975, df)
    ratio = stats.ratio_of_repetitions(medians, other, spread=spread)
    assert ratio is not None
    assert (ratio.ratio, ratio.lo, ratio.hi) == pytest.approx(
        (math.exp(diff), math.exp(diff - q * se), math.exp(diff + q * se)), rel=1e-12)
    assert ratio.p_value == pytest.approx(2 * student.sf(abs(diff) / se, df), rel=1e-9)
    without = stats.ratio_of_repetitions(medians, other)
    assert without is not None and without.p_value is not None and without.p_value < ratio.p_value


@pytest.mark.parametrize("effect", ["shared", "per-cell"])
def test_a_run_effect_is_covered_only_with_the_learned_spread(effect: str) -> None:
    """Simulated device whose every run moves by 5 % (repetitions 2 %), either as a whole (a host slow for the
    whole run: the cells' evidence is correlated) or cell by cell: the next run lands inside the interval that
    adds the spread learned from four earlier runs of six cells ~95 % of the time, and inside the
    repetitions-only interval far less often."""
    rng = np.random.default_rng(5)

    def run() -> list[np.ndarray]:  # six cells, five repetitions each
        shared = rng.normal(0.0, 0.05)
        return [np.exp(np.log(1.0 + c) + (shared if effect == "shared" else rng.normal(0.0, 0.05))
                       + rng.normal(0.0, 0.02, 5)) for c in range(6)]

    inside = inside_plain = total = 0
    for _ in range(600):
        runs = [run() for _ in range(6)]
        history, this, following = runs[:4], runs[4], runs[5]
        spread = stats.run_to_run_spread([{i: r[c] for i, r in enumerate(history + [this])} for c in range(6)])
        for c in range(6):
            with_spread = stats.next_run_interval(this[c], spread=spread)
            plain = stats.next_run_interval(this[c])
            value = math.exp(np.log(following[c]).mean())
            assert with_spread is not None and plain is not None
            inside += with_spread.lo <= value <= with_spread.hi  # type: ignore[operator]
            inside_plain += plain.lo <= value <= plain.hi  # type: ignore[operator]
            total += 1
    assert 0.92 <= inside / total <= 0.985
    assert inside_plain / total < 0.6


def test_a_side_whose_repetitions_happened_to_agree_is_judged_with_the_cells_pooled_variance() -> None:
    from scipy.stats import t as student

    agreed = [1.00, 1.01, 0.99, 1.00, 1.00]  # five processes that all landed in one speed mode
    earlier = [[1.0, 1.3, 1.0, 1.32, 0.98], [1.29, 1.0, 1.31, 1.3, 1.01]]  # the cell's runs show both modes
    pooled = stats.pooled_repetition_variance(earlier + [agreed])
    logs = [np.log(r) for r in earlier + [agreed]]
    by_hand = sum(x.var(ddof=1) * (len(x) - 1) for x in logs) / sum(len(x) - 1 for x in logs)
    assert pooled == pytest.approx((by_hand, 12.0), rel=1e-12)
    assert stats.pooled_repetition_variance([[1.0], []]) is None
    spread = stats.RunSpread(sd=0.0, df=8.0, runs=3, cells=1, rep_var=pooled[0], rep_df=pooled[1])
    got = stats.next_run_interval(agreed, spread=spread)
    half = student.ppf(0.975, 12) * math.sqrt(2 * by_hand / 5)
    center = np.log(agreed).mean()
    assert got is not None and (got.lo, got.hi) == pytest.approx((math.exp(center - half), math.exp(center + half)),
                                                                 rel=1e-9)
    # a side with more spread of its own keeps it
    noisy = [1.0, 1.5, 0.7, 1.4, 0.8]
    own = stats.next_run_interval(noisy, spread=replace(spread, rep_var=1e-6))
    plain = stats.next_run_interval(noisy)
    assert own is not None and plain is not None and (own.lo, own.hi) == pytest.approx((plain.lo, plain.hi))
    # two runs of the cell: each side's variance is the larger of its own and the pool
    ratio = stats.ratio_of_repetitions(agreed, [x * 1.3 for x in agreed], spread=spread)
    tight = stats.ratio_of_repetitions(agreed, [x * 1.3 for x in agreed], spread=replace(spread, rep_var=None))
    assert ratio is not None and tight is not None and ratio.lo < tight.lo and ratio.hi > tight.hi


def test_speed_modes_are_two_groups_apart_not_spread() -> None:
    modes = stats.speed_modes([0.186, 0.261, 0.264, 0.187, 0.258])
    assert modes is not None and (modes.fast, modes.slow) == (2, 3)
    assert modes.fast_ms == pytest.approx(math.sqrt(0.186 * 0.187), rel=1e-12)
    assert modes.slow_ms == pytest.approx(0.261, rel=1e-12)
    assert stats.speed_modes([1.0, 1.02, 0.99, 1.01, 1.03]) is None          # one group
    assert stats.speed_modes([1.0, 1.05, 1.10, 1.15, 1.20]) is None          # spread evenly: no gap stands out
    assert stats.speed_modes([1.0, 1.08, 1.0, 1.08]) is None                 # 8 %: under the 10 % gap
    assert stats.speed_modes([1.0, 1.3, 1.0]) is None                        # three repetitions say too little
    one_slow = stats.speed_modes([1.0, 1.01, 0.99, 1.0, 1.4])               # one process in a slow spell counts
    assert one_slow is not None and (one_slow.fast, one_slow.slow) == (4, 1)


def test_a_speed_mix_is_the_same_two_speeds_in_other_shares() -> None:
    # run 1 of the gate drew four fast tweet-mobile int8 processes of five, a later run none (0.19 / 0.26 ms)
    mix = stats.speed_mix([0.190, 0.191, 0.189, 0.190, 0.260], [0.260, 0.261, 0.259, 0.262, 0.258], 1.05)
    assert mix is not None and (mix.fast_a, mix.slow_a, mix.fast_b, mix.slow_b) == (4, 1, 0, 5)
    assert mix.fast_ms == pytest.approx(0.190, rel=1e-12) and mix.slow_ms == pytest.approx(0.260, rel=1e-12)
    # every process 15 % slower: the sides share no group, a shift and not a mix
    assert stats.speed_mix([1.0, 1.01, 0.99, 1.0, 1.0], [1.15, 1.16, 1.14, 1.15, 1.15], 1.05) is None
    # both modes moved 15 % (one more layer): no clean two groups across the sides
    assert stats.speed_mix([0.19, 0.19, 0.19, 0.26, 0.26], [0.22, 0.22, 0.22, 0.30, 0.30], 1.05) is None
    # the slow mode moved by 8 % while the fast one stayed: a group both reach disagrees beyond the factor
    assert stats.speed_mix([0.19, 0.19, 0.19, 0.26, 0.26], [0.19, 0.19, 0.19, 0.28, 0.28], 1.05) is None
    assert stats.speed_mix([0.19, 0.19, 0.19, 0.26, 0.26], [0.19, 0.19, 0.19, 0.28, 0.28], 1.10) is not None
    # every side in one mode, each in another: nothing shows the speeds agree
    assert stats.speed_mix([0.19, 0.19, 0.19, 0.19], [0.26, 0.26, 0.26, 0.26], 1.05) is None


def test_the_report_names_cells_whose_repetitions_split_into_two_speed_groups() -> None:
    import pandas as pd

    from benchbot.report.table import mode_notes

    rows = pd.DataFrame([
        {"device": "pi", "emulated": False, "model": "m", "variant": "int8", "threads": 1, "xnnpack": True,
         "batch": 1, "rep_p50_ms": [0.186, 0.261, 0.264, 0.187, 0.258]},
        {"device": "pi", "emulated": False, "model": "m", "variant": "fp32", "threads": 1, "xnnpack": True,
         "batch": 1, "rep_p50_ms": [1.0, 1.01, 0.99, 1.0, 1.02]},
        {"device": "pi", "emulated": False, "model": "m", "variant": "fp16", "threads": 1, "xnnpack": True,
         "batch": 1, "rep_p50_ms": [1.0, 1.3]}])
    [line] = mode_notes(rows)
    assert line.startswith("pi: repetitions in two speed groups") and line.endswith(
        ": m/int8 t1 (2 at 0.186, 3 at 0.261 ms).")
