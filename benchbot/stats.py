"""Statistics of one benchmark cell: pure functions over arrays, no I/O.

Percentiles use numpy's default linear interpolation. The median's confidence
interval is distribution-free (order statistics of a Binomial(n, 1/2)), since
latencies are skewed and rarely normal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

PERCENTILES = (50, 90, 95, 99)

#: Fewest samples for which a two-sided 95 % order-statistic interval of the percentile exists.
MIN_SAMPLES_FOR = {50: 6, 90: 36, 95: 72, 99: 368}

UNSTABLE_CV = 0.10
UNSTABLE_DRIFT = 0.10


def binomial_cdf(n: int, p: float = 0.5) -> np.ndarray:
    """P(X <= k) for k = 0..n, X ~ Binomial(n, p), built from log-space pmf ratios (exact, O(n))."""
    k = np.arange(1, n + 1, dtype=float)
    log_pmf = np.empty(n + 1)
    log_pmf[0] = n * math.log1p(-p)
    log_pmf[1:] = log_pmf[0] + np.cumsum(np.log((n - k + 1) / k)) + k * math.log(p / (1 - p))
    return np.minimum(np.cumsum(np.exp(log_pmf)), 1.0)


def quantile_ci_ranks(n: int, q: float = 0.5, confidence: float = 0.95) -> tuple[int, int] | None:
    """1-based ranks (lo, hi) of the order statistics bounding the q-quantile with `confidence`.

    [x_(lo), x_(hi)] covers the true quantile with probability P(lo <= B < hi),
    B ~ Binomial(n, q); each tail holds at most (1 - confidence) / 2. None when
    n is too small for such an interval.
    """
    if n < 1:
        return None
    alpha = (1.0 - confidence) / 2.0
    cdf = binomial_cdf(n, q)
    # lo: the largest l with P(B <= l - 1) <= alpha; hi: the smallest h with P(B >= h) <= alpha.
    lo = int(np.searchsorted(cdf, alpha, side="right"))
    hi = int(np.searchsorted(cdf, 1.0 - alpha - 1e-12, side="left")) + 1
    if lo < 1 or hi > n:
        return None
    return lo, hi


def median_ci(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> tuple[float, float] | None:
    """Distribution-free confidence interval of the median, or None with too few values."""
    data = np.sort(np.asarray(values, dtype=float))
    ranks = quantile_ci_ranks(len(data), 0.5, confidence)
    if ranks is None:
        return None
    lo, hi = ranks
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
    for p, value in zip(PERCENTILES, np.percentile(data, PERCENTILES)):
        out[f"p{p}"] = float(value)
    out["max"] = float(data.max())
    ci = median_ci(data)
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


def ratio_ci(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
) -> tuple[float, float, float] | None:
    """Ratio of medians b/a with a conservative interval from the two median intervals."""
    ca, cb = median_ci(a, confidence), median_ci(b, confidence)
    ma, mb = float(np.median(a)), float(np.median(b))
    if ca is None or cb is None or ma <= 0 or ca[0] <= 0:
        return None
    return mb / ma, cb[0] / ca[1], cb[1] / ca[0]
