"""Statistics of benchmark cells: pure functions over arrays, no I/O.

Two levels, kept apart on purpose:

- Within one repetition (one agent process): percentiles (numpy's linear
  interpolation) and a distribution-free interval of the median from order
  statistics. Thousands of latencies from one process are not independent draws
  of what the next run will show (they share its memory layout and its stretch of
  the device's time), so this interval is only ever labelled "within-run".
- Across repetitions: each repetition is summarised by its median, and a cell's
  headline latency, its interval and every comparison between cells or runs are
  computed from those K values (t-based, on the log scale, since latencies are
  positive and ratios are what people read).
- Across runs: a device can sit in one speed state for a whole run (a busy host, a
  warm board), which no statistic of that run can see. Runs of the same cells on
  the same device show it, so `run_to_run_spread` estimates that extra spread from
  them (a random-effects variance component), and the next-run interval and the
  comparison of two runs add it.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

PERCENTILES = (50, 90, 95, 99)

#: Fewest samples for which a two-sided 95 % order-statistic interval of the percentile exists.
MIN_SAMPLES_FOR = {50: 6, 90: 36, 95: 72, 99: 368}

UNSTABLE_CV = 0.10
UNSTABLE_DRIFT = 0.10
#: A cell whose repetitions' medians vary more than this (coefficient of variation) is flagged unstable.
UNSTABLE_REP_CV = 0.10
CONFIDENCE = 0.95


def binomial_cdf(n: int, p: float = 0.5) -> np.ndarray:
    """P(X <= k) for k = 0..n, X ~ Binomial(n, p)."""
    try:  # what scipy.stats.binom.cdf computes, without importing scipy.stats
        from scipy.special._ufuncs import _binom_cdf
    except ImportError:  # pragma: no cover - a scipy that moved it
        from scipy import stats as sps

        return np.asarray(sps.binom.cdf(np.arange(n + 1), n, p), dtype=float)
    return np.asarray(_binom_cdf(np.arange(n + 1, dtype=float), n, p), dtype=float)


#: Standard deviations either side of the mean beyond which a binomial's tail holds < 1e-40: ignored.
_TAIL_SD = 20.0


def _binomial_cdf_window(n: int, p: float) -> tuple[int, np.ndarray]:
    """(k0, P(X <= k) for k = k0..k1): the binomial CDF over the window that can hold a 95 % bound, from
    log-gamma terms in pure Python and numpy. Loading a run needs only these ranks, and importing
    scipy.special for them was a third of a `benchbot.load_run`; tests check the ranks against scipy's."""
    sd = math.sqrt(n * p * (1.0 - p))
    k0 = max(0, int(n * p - _TAIL_SD * sd) - 1)
    k1 = min(n, int(n * p + _TAIL_SD * sd) + 2)
    base = math.lgamma(n + 1)
    lp, lq = math.log(p), math.log1p(-p)
    logs = np.array([base - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * lp + (n - k) * lq
                     for k in range(k0, k1 + 1)])
    return k0, np.cumsum(np.exp(logs))


@functools.lru_cache(maxsize=4096)  # pure, and a run asks for the same n many times (one CDF of n+1 terms each)
def quantile_ci_ranks(n: int, q: float = 0.5, confidence: float = 0.95) -> tuple[int, int] | None:
    """1-based ranks (lo, hi) of the order statistics bounding the q-quantile with `confidence`.

    [x_(lo), x_(hi)] covers the true quantile with probability P(lo <= B < hi),
    B ~ Binomial(n, q); each tail holds at most (1 - confidence) / 2. None when
    n is too small for such an interval.
    """
    if n < 1:
        return None
    alpha = (1.0 - confidence) / 2.0
    if not 0.0 < q < 1.0:
        return None
    k0, cdf = _binomial_cdf_window(n, q)
    # lo: the largest l with P(B <= l - 1) <= alpha; hi: the smallest h with P(B >= h) <= alpha.
    lo = k0 + int(np.searchsorted(cdf, alpha, side="right"))
    hi = k0 + int(np.searchsorted(cdf, 1.0 - alpha - 1e-12, side="left")) + 1
    if lo < 1 or hi > n:
        return None
    return lo, hi


def median_ci(values: Sequence[float] | np.ndarray, confidence: float = 0.95,
              presorted: bool = False) -> tuple[float, float] | None:
    """Distribution-free confidence interval of the median, or None with too few values.

    `presorted`: the values are already in ascending order (a caller that sorted them for its percentiles),
    so the two order statistics are read directly instead of partitioned out.
    """
    data = np.asarray(values, dtype=float)
    ranks = quantile_ci_ranks(len(data), 0.5, confidence)
    if ranks is None:
        return None
    lo, hi = ranks
    if not presorted:
        data = np.partition(data, (lo - 1, hi - 1))  # the two order statistics, not a whole sort
    return float(data[lo - 1]), float(data[hi - 1])


def few_samples(n: int, shown: Sequence[int] = PERCENTILES) -> list[int]:
    """The percentiles among `shown` that n samples cannot support with a 95 % interval."""
    return [p for p in shown if n < MIN_SAMPLES_FOR.get(p, 0)]


def latency_summary(latency_ms: Sequence[float] | np.ndarray) -> dict[str, float | int | None]:
    """count, mean, std, min, percentiles, max and the median's 95 % CI, all in the input's unit."""
    data = np.asarray(latency_ms, dtype=float)
    n = int(data.size)
    out: dict[str, float | int | None] = {"count": n}
    if n == 0:
        for key in ("mean", "std", "min", *(f"p{p}" for p in PERCENTILES), "max", "p50_ci_lo", "p50_ci_hi", "cv"):
            out[key] = None
        return out
    mean = float(data.mean())
    std = float(data.std(ddof=1)) if n > 1 else 0.0
    out.update(mean=mean, std=std, min=float(data.min()))
    # one sort serves every percentile and the median's interval: they read the same order statistics as
    # np.percentile's and median_ci's partitions of the unsorted data (one loaded run makes hundreds of these)
    ordered = np.sort(data)
    for p, value in zip(PERCENTILES, np.percentile(ordered, PERCENTILES)):
        out[f"p{p}"] = float(value)
    out["max"] = float(data.max())
    ci = median_ci(ordered, presorted=True)
    out["p50_ci_lo"], out["p50_ci_hi"] = ci if ci else (None, None)
    out["cv"] = std / mean if mean > 0 else None
    return out


def decile_drift(latency_in_order: Sequence[float] | np.ndarray) -> float | None:
    """Relative difference between the medians of the loop's first and last tenth.

    Drift (warming, throttling, a background job) shows up here even when the
    overall spread looks fine. None with fewer than 20 samples.
    """
    data = np.asarray(latency_in_order, dtype=float)
    if data.size < 20:
        return None
    tenth = data.size // 10
    first, last = float(np.median(data[:tenth])), float(np.median(data[-tenth:]))
    base = min(first, last)
    return abs(last - first) / base if base > 0 else None


def is_unstable(cv: float | None, drift: float | None) -> bool:
    return (cv is not None and cv > UNSTABLE_CV) or (drift is not None and drift > UNSTABLE_DRIFT)


def throttle_bits_appeared(before: int | None, after: int | None) -> bool:
    """Raspberry Pi get_throttled: any 'now' bit (0-3) set after, or new 'since boot' bits (16-19)."""
    if after is None:
        return False
    if after & 0xF:
        return True
    return before is not None and bool((after & ~before) & 0xF0000)


def frequency_dropped(start_max_hz: float | None, lowest_hz: float | None, tolerance: float = 0.02) -> bool:
    """True when some core ran slower during the loop than the fastest core did at its start."""
    if not start_max_hz or not lowest_hz:
        return False
    return lowest_hz < start_max_hz * (1 - tolerance)


def throughput(runs: int, wall_ns: int, batch: int = 1) -> float | None:
    """Inferences (or samples, when batch > 1) per second over the steady loop's wall time."""
    if not wall_ns or wall_ns <= 0:
        return None
    return runs * batch / (wall_ns / 1e9)


@dataclass(frozen=True)
class RepetitionEstimate:
    """A cell's headline latency from its repetitions, and the interval the next run should fall in."""

    value: float            # geometric mean of the repetitions' medians
    lo: float | None        # 95 % prediction interval of the next run's value (None: fewer than 2 repetitions)
    hi: float | None
    k: int                  # repetitions
    cv: float | None        # spread of the repetitions' medians (sd of their logs ~ coefficient of variation)


def _logs(values: Sequence[float] | np.ndarray) -> np.ndarray:
    data = np.asarray(values, dtype=float)
    data = data[np.isfinite(data)]
    if data.size and data.min() <= 0:
        raise ValueError("latencies must be positive")
    return np.log(data)


@dataclass(frozen=True)
class RunSpread:
    """How much a cell's value moves between runs on one device beyond what its repetitions show.

    `sd` is the standard deviation of the run effect on the log scale (≈ a fraction of the value),
    estimated with `df` degrees of freedom from `runs` runs that share `cells` cell identities.
    """

    sd: float
    df: float
    runs: int
    cells: int
    #: The cell's repetition variance (log scale) pooled over its runs, with its degrees of freedom: a side whose
    #: own few repetitions happened to agree (all in one of a model's two speed modes) is judged with this instead.
    rep_var: float | None = None
    rep_df: float = 0.0


#: The run-to-run spread a device's next-run intervals assume until two of its runs measure one
#: (`benchbot.history`). One run cannot see how far a whole run moves, and without it the interval is the
#: repetitions' spread alone: on this 2-core VM, whose back-to-back runs moved 3.0-3.9 % (median |difference|,
#: bench/gate.py), that covered the next run in 11 of 45 cells at a 2.5 % half-width. 3 % is about what those
#: moves imply (an sd of 3.1-4.1 %) and what CPython's benchmark team sees on dedicated machines (±2.5 %); 4
#: degrees of freedom say it is a guess. A later run replaces it with the measured spread, and the report says
#: which one an interval holds (`run_sd_runs` 0: assumed).
ASSUMED_RUN_SPREAD = RunSpread(sd=0.03, df=4.0, runs=0, cells=0)


def pooled_repetition_variance(runs: Iterable[Sequence[float]]) -> tuple[float, float] | None:
    """(variance, degrees of freedom) of log repetition medians pooled over runs of one cell: sum (K-1) s² / sum (K-1).

    None without a run of two repetitions."""
    total, df = 0.0, 0
    for reps in runs:
        logs = _logs(reps)
        if logs.size >= 2:
            total += float(logs.var(ddof=1)) * (logs.size - 1)
            df += logs.size - 1
    return (total / df, float(df)) if df else None


def _within(logs: np.ndarray, spread: RunSpread | None) -> tuple[float, float]:
    """A side's repetition variance and its degrees of freedom: its own, or the cell's pooled one when larger."""
    own = float(logs.var(ddof=1))
    if spread is not None and spread.rep_var is not None and spread.rep_var > own and spread.rep_df > 0:
        return spread.rep_var, spread.rep_df
    return own, float(logs.size - 1)


def run_to_run_spread(groups: Iterable[Mapping[Any, Sequence[float]]]) -> RunSpread | None:
    """The run-to-run spread from several runs of the same cells: a random-effects estimate.

    `groups` holds, per cell identity (same device, model file and settings), the repetition medians
    of every run that measured it, keyed by run. On the log scale a run's mean of K medians is
    mu + R + e with Var(R) = sd² and Var(e) = s²/K, so for each cell the variance of its run means
    minus the mean of their s²/K estimates sd² (method of moments); the cells' estimates are pooled,
    weighted by their degrees of freedom (runs - 1), and a negative pool is 0 (no spread beyond the
    repetitions').

    The cells of one run can share its effect (a host slow for the whole run) or move on their own;
    shared effects make the cells' evidence correlated, so the degrees of freedom are the pooled
    ones divided by the design effect 1 + (m - 1)·rho (m cells per run, rho the shared part,
    estimated from how far the runs' mean deviations exceed what independent cells would give),
    and never fewer than runs - 1. None when no cell was measured in two runs with two
    repetitions each.
    """
    total, df, cells = 0.0, 0, 0
    within_sum, within_n = 0.0, 0
    deviations: dict[Hashable, list[float]] = {}
    for group in groups:
        per_run = {run: logs for run, logs in ((run, _logs(reps)) for run, reps in group.items()) if logs.size >= 2}
        if len(per_run) < 2:
            continue
        means = {run: float(logs.mean()) for run, logs in per_run.items()}
        center = float(np.mean(list(means.values())))
        within = [float(logs.var(ddof=1)) / logs.size for logs in per_run.values()]
        total += (len(per_run) - 1) * (float(np.var(list(means.values()), ddof=1)) - float(np.mean(within)))
        df += len(per_run) - 1
        cells += 1
        within_sum += sum(within)
        within_n += len(within)
        for run, mean in means.items():
            deviations.setdefault(run, []).append(mean - center)
    if df == 0:
        return None
    variance = max(total / df, 0.0)
    runs = len(deviations)  # at least two: every cell counted was measured in two runs
    if variance == 0.0:
        return RunSpread(0.0, float(df), runs, cells)
    cells_per_run = float(np.mean([len(d) for d in deviations.values()]))
    if cells_per_run > 1:
        run_means = np.array([np.mean(d) for d in deviations.values()])
        seen = float(np.mean(run_means**2)) * runs / (runs - 1)  # ≈ shared + (cell-specific + within) / m
        shared = (seen - (variance + within_sum / within_n) / cells_per_run) / (1.0 - 1.0 / cells_per_run)
        rho = min(max(shared / variance, 0.0), 1.0)
        df_effective = max(df / (1.0 + (cells_per_run - 1.0) * rho), float(runs - 1))
    else:
        df_effective = float(df)
    return RunSpread(math.sqrt(variance), df_effective, runs, cells)


def _t_quantile(df: float, confidence: float) -> float:
    if math.isinf(df):
        from scipy import special

        return float(special.ndtri(0.5 + confidence / 2))
    return t_quantile(df, 0.5 + confidence / 2)


def _satterthwaite(parts: Sequence[tuple[float, float]]) -> float:
    """Degrees of freedom of a sum of variance estimates, each (variance, its df) (Welch-Satterthwaite)."""
    total = sum(v for v, _ in parts)
    denominator = sum(v * v / d for v, d in parts if v > 0 and d > 0)
    return total * total / denominator if denominator > 0 else math.inf


def next_run_interval(rep_medians: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE,
                      spread: RunSpread | None = None) -> RepetitionEstimate | None:
    """Headline and prediction interval from K repetition medians.

    The next run of the same plan reports the geometric mean of K new repetition medians, so the
    interval is the textbook prediction interval for a future mean of K values on the log scale:
    mean ± t · sqrt(2 s²/K + 2 sd²), where sd is the device's run-to-run spread when earlier runs
    showed it (`run_to_run_spread`; both runs carry a run effect), s² the larger of this run's
    repetition variance and the cell's pooled over its runs (`RunSpread.rep_var`), and t's degrees of
    freedom come from Welch-Satterthwaite. Unlike a confidence interval of the mean it does not shrink to nothing as K
    grows: it says where the next run lands, which is what a reader of a benchmark table assumes.
    None without any repetition; no interval with one.
    """
    logs = _logs(rep_medians)
    k = int(logs.size)
    if k == 0:
        return None
    center = float(logs.mean())
    if k < 2:
        return RepetitionEstimate(math.exp(center), None, None, k, None)
    sd = float(logs.std(ddof=1))
    within, within_df = _within(logs, spread)
    parts = [(2.0 * within / k, within_df)]
    if spread is not None:
        parts.append((2.0 * spread.sd * spread.sd, spread.df))
    half = _t_quantile(_satterthwaite(parts) if spread else k - 1, confidence) * math.sqrt(sum(v for v, _ in parts))
    return RepetitionEstimate(math.exp(center), math.exp(center - half), math.exp(center + half), k, sd)


#: scipy.special.stdtrit(df, 0.975) for df = 1..30, as scipy computes it (tests/test_stats.py checks): the
#: usual 95 % intervals of 2-31 repetitions need no scipy import (~0.3 s of loading a run).
_T975 = (12.706204736174694, 4.302652729749462, 3.1824463052837078, 2.7764451051977934, 2.5705818356363146,
         2.4469118511449786, 2.364624251592784, 2.306004135204166, 2.262157162798205, 2.228138851986274,
         2.200985160091639, 2.1788128296672284, 2.1603686564627913, 2.144786687917804, 2.131449545559776,
         2.1199052992212546, 2.1098155778333156, 2.1009220402410382, 2.0930240544083087, 2.085963447265864,
         2.0796138447276795, 2.0738730679040254, 2.0686576104190486, 2.0638985616280245, 2.0595385527532972,
         2.0555294386428735, 2.0518305164802846, 2.0484071417952454, 2.045229642132703, 2.0422724563012378)


def t_quantile(df: float, p: float) -> float:
    """Student's t quantile (= scipy.stats.t.ppf(p, df), without importing scipy.stats)."""
    if p == 0.975 and float(df).is_integer() and 1 <= df <= len(_T975):
        return _T975[int(df) - 1]
    from scipy import special

    return float(special.stdtrit(df, p))


@dataclass(frozen=True)
class SpeedModes:
    """A cell's repetitions fell into two groups: its processes run in one of two speed modes."""

    fast_ms: float
    slow_ms: float
    fast: int  # repetitions in each group
    slow: int


def speed_modes(rep_medians: Sequence[float] | np.ndarray, gap: float = 0.10) -> SpeedModes | None:
    """Two groups among four or more repetition medians, or None.

    Some models' processes land in one of two speed modes (memory layout, the core they start on), and
    the share of each moves from run to run: five repetitions then give a wide interval, and runs with
    a lopsided draw look different. Saying so explains the width. Two groups: the widest gap between
    neighbouring medians is at least `gap` (relative) and at least twice the spread inside either side.
    """
    logs = np.sort(_logs(rep_medians))
    if logs.size < 4:
        return None
    gaps = np.diff(logs)
    at = int(np.argmax(gaps))
    widest = float(gaps[at])
    low, high = logs[:at + 1], logs[at + 1:]
    if widest < math.log1p(gap) or max(np.ptp(low), np.ptp(high)) > widest / 2:
        return None
    return SpeedModes(math.exp(float(np.median(low))), math.exp(float(np.median(high))), int(low.size),
                      int(high.size))


@dataclass(frozen=True)
class SpeedMix:
    """Two sides whose repetitions fall into the same two speed groups, at the same speeds in every group
    both sides reached: they differ in how many processes landed in each group, not in how fast either is."""

    fast_ms: float
    slow_ms: float
    fast_a: int  # repetitions of each side in each group
    slow_a: int
    fast_b: int
    slow_b: int


def speed_mix(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, factor: float,
              gap: float = 0.10) -> SpeedMix | None:
    """The two sides' repetition medians as one mixture of two speed modes (`speed_modes` on both sides
    together), or None.

    On a device whose processes run in one of two modes, the share of each moves from run to run, so a
    run that drew four fast processes of five and one that drew none differ by Welch's t on the means
    while nothing changed. A real change moves the modes themselves. So this is a mix only when a group
    holds repetitions of both sides and, in every such group, the sides' speeds agree within `factor`;
    sides that share no group (a shift of every process) are not a mix.
    """
    la, lb = _logs(a), _logs(b)
    modes = speed_modes(np.exp(np.concatenate([la, lb])), gap)
    if modes is None:
        return None
    split = math.log(modes.fast_ms) + (math.log(modes.slow_ms) - math.log(modes.fast_ms)) / 2
    shared = 0
    for low in (True, False):
        ga, gb = (la[la < split], lb[lb < split]) if low else (la[la >= split], lb[lb >= split])
        if ga.size and gb.size:
            shared += 1
            if abs(float(np.mean(gb) - np.mean(ga))) > math.log(factor):
                return None
    if not shared:
        return None
    return SpeedMix(modes.fast_ms, modes.slow_ms, int((la < split).sum()), int((la >= split).sum()),
                    int((lb < split).sum()), int((lb >= split).sum()))


@dataclass(frozen=True)
class RatioEstimate:
    """b / a from the repetition medians of two cells: Welch's t on their logs."""

    ratio: float            # ratio of geometric means
    lo: float | None        # confidence interval of the ratio (None: a side has fewer than 2 repetitions)
    hi: float | None
    p_value: float | None   # two-sided, H0: same typical latency

    @property
    def tie(self) -> bool:
        """The interval holds 1: the difference is inside the run-to-run noise. False without an interval
        (one repetition): then nothing is known either way, which callers say separately."""
        return self.lo is not None and self.hi is not None and self.lo <= 1.0 <= self.hi


def ratio_of_repetitions(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray,
                         confidence: float = CONFIDENCE, spread: RunSpread | None = None) -> RatioEstimate | None:
    """Ratio b/a of two cells from their per-repetition medians, with an interval and a p-value.

    Welch's two-sample t-test (scipy.stats.ttest_ind, unequal variances) on the log medians:
    the difference of the log means is the log of the ratio of geometric means. Repetitions, not
    samples, are the unit, so thousands of correlated samples cannot fake significance. Cells of two
    different runs also differ by the runs' effects: with the device's run-to-run `spread`, its
    variance (2 sd², one effect per run) joins the two sides' and the degrees of freedom follow
    Welch-Satterthwaite. Cells of one run share its effect, so they are compared without it.
    """
    la, lb = _logs(a), _logs(b)
    if la.size == 0 or lb.size == 0:
        return None
    ratio = math.exp(float(lb.mean() - la.mean()))
    if la.size < 2 or lb.size < 2:
        return RatioEstimate(ratio, None, None, None)
    if spread is not None:
        return _ratio_with_run_spread(la, lb, ratio, confidence, spread)
    if float(la.std(ddof=1)) == 0.0 and float(lb.std(ddof=1)) == 0.0:  # no spread at all: t is undefined
        same = math.isclose(ratio, 1.0)
        return RatioEstimate(ratio, ratio, ratio, 1.0 if same else 0.0)
    from scipy import stats as sps  # only comparisons need it: loading a run does without its import

    with warnings.catch_warnings():  # near-identical values: scipy warns about precision, the result stands
        warnings.simplefilter("ignore", RuntimeWarning)
        test = sps.ttest_ind(lb, la, equal_var=False)
        ci = test.confidence_interval(confidence)
    return RatioEstimate(ratio, math.exp(float(ci.low)), math.exp(float(ci.high)), float(test.pvalue))


def _ratio_with_run_spread(la: np.ndarray, lb: np.ndarray, ratio: float, confidence: float, spread: RunSpread
                           ) -> RatioEstimate:
    """Welch's t on the log medians with the run effects' variance added (see `ratio_of_repetitions`)."""
    (va, dfa), (vb, dfb) = _within(la, spread), _within(lb, spread)
    parts = [(va / la.size, dfa), (vb / lb.size, dfb), (2.0 * spread.sd * spread.sd, spread.df)]
    variance = sum(v for v, _ in parts)
    diff = math.log(ratio)
    if variance == 0.0:
        return RatioEstimate(ratio, ratio, ratio, 1.0 if math.isclose(ratio, 1.0) else 0.0)
    df = _satterthwaite(parts)
    se = math.sqrt(variance)
    half = _t_quantile(df, confidence) * se
    z = -abs(diff) / se
    from scipy import special  # only comparisons with a run spread need it: loading a run does without

    p_value = 2.0 * float(special.ndtr(z) if math.isinf(df) else special.stdtr(df, z))
    return RatioEstimate(ratio, math.exp(diff - half), math.exp(diff + half), p_value)
