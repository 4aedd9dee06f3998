"""Power, energy per inference and throttling forensics of one cell, from its stored telemetry.

Pure functions over the telemetry rows of `summary._telemetry_rows` (t_s in seconds from the start
of the timed loop, `power_w`, `rails_w`, RAPL's `energy_uj`, `cpu_core_pct`) and the agent's
`cell_end` event (loop wall time and runs, power source, idle power, time at each CPU frequency
during the loop, cores taken offline, the Pi's throttle bits). Nothing here reads a device.

Energy over the loop is the trapezoid integral of the readings' power, linear between readings and
held at the nearest reading beyond the first or last (so readings on both sides of the loop span it
exactly); a RAPL counter gives the energy directly (its difference between the readings bracketing
the loop, scaled to the loop's length). A loop with fewer than FEW_READINGS power readings inside it
gets the `power-few-readings` flag rather than a silently averaged figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: Power readings inside the timed loop below which its power figures are flagged.
FEW_READINGS = 5
#: Share of a busy policy's time below its top frequency (during the loop) that counts as throttling.
BELOW_TOP_TOLERANCE = 0.02
#: A cpufreq policy counts as running the benchmark when its busiest core averaged this much CPU %.
BUSY_PCT = 50.0
THROTTLE_WORDS = ("under-voltage", "frequency capped", "throttled", "soft temperature limit")

Row = dict[str, Any]


def loop_span(end: dict[str, Any]) -> tuple[float, float] | None:
    """The timed loop on the rows' clock: (0, loop seconds), or None when the loop never ended."""
    loop_ns = end.get("loop_ns")
    return (0.0, loop_ns / 1e9) if loop_ns else None


def integrate(ts: Sequence[float], values: Sequence[float], a: float, b: float) -> float:
    """Integral over [a, b] of the piecewise-linear curve through (ts, values), constant beyond its ends."""
    points = sorted(zip(ts, values))
    if not points or b <= a:
        return 0.0
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]

    def at(t: float) -> float:
        if t <= xs[0]:
            return ys[0]
        if t >= xs[-1]:
            return ys[-1]
        i = next(k for k in range(1, len(xs)) if xs[k] >= t)
        x0, x1 = xs[i - 1], xs[i]
        return ys[i] if x1 == x0 else ys[i - 1] + (ys[i] - ys[i - 1]) * (t - x0) / (x1 - x0)

    grid = [a] + [x for x in xs if a < x < b] + [b]
    curve = [at(t) for t in grid]
    return sum((curve[i] + curve[i + 1]) / 2 * (grid[i + 1] - grid[i]) for i in range(len(grid) - 1))


def rapl_delta(before: int | None, after: int | None, max_range: int | None) -> int | None:
    """Energy (µJ) between two readings of a RAPL counter that wraps at max_energy_range_uj."""
    if before is None or after is None:
        return None
    if after >= before:
        return after - before
    return max_range - before + after if max_range else None


def rapl_energy_j(rows: Sequence[Row], ranges: dict[str, int], a: float, b: float) -> tuple[float, float] | None:
    """(joules, seconds) between the readings that bracket [a, b], summing wrap-aware counter steps."""
    usable = [r for r in rows if r.get("energy_uj")]
    if len(usable) < 2:
        return None
    before = [i for i, r in enumerate(usable) if r["t_s"] <= a]
    after = [i for i, r in enumerate(usable) if r["t_s"] >= b]
    i0 = before[-1] if before else 0
    i1 = after[0] if after else len(usable) - 1
    if i1 <= i0:
        return None
    total = 0
    for r0, r1 in zip(usable[i0:i1], usable[i0 + 1:i1 + 1]):
        for name, value in r1["energy_uj"].items():
            step = rapl_delta(r0["energy_uj"].get(name), value, ranges.get(name))
            if step is None:
                return None
            total += step
    return total / 1e6, usable[i1]["t_s"] - usable[i0]["t_s"]


def power_figures(rows: Sequence[Row], end: dict[str, Any], source: dict[str, Any] | None = None) -> dict[str, Any]:
    """Mean and peak power over the timed loop, its energy, energy per inference (mJ), idle power, per-rail means.

    Absent stays absent: without a source (or readings) every figure is None, never 0.
    """
    source = end.get("power") or source
    out: dict[str, Any] = {
        "power_source": source.get("kind") if source else None,
        "power_total": source.get("total") if source else None,
        "power_mean_w": None, "power_peak_w": None, "energy_loop_j": None, "energy_per_inference_mj": None,
        "idle_power_w": end.get("idle_power_w"), "power_readings": None, "power_few_readings": False,
        "rails_mean_w": None,
    }
    span = loop_span(end)
    readings = [r for r in rows if r.get("power_w") is not None or r.get("energy_uj")]
    if not source or span is None or not readings:
        return out
    a, b = span
    inside = [r for r in readings if a <= r["t_s"] <= b]
    out["power_readings"] = len(inside)
    out["power_few_readings"] = len(inside) < FEW_READINGS
    powered = [r for r in readings if r.get("power_w") is not None]
    ranges = source.get("max_energy_range_uj") or {}
    measured = rapl_energy_j(readings, ranges, a, b) if source.get("kind") == "rapl" else None
    if measured is not None and measured[1] > 0:
        mean = measured[0] / measured[1]
        energy = mean * (b - a)
    elif powered:
        energy = integrate([r["t_s"] for r in powered], [r["power_w"] for r in powered], a, b)
        mean = energy / (b - a) if b > a else powered[0]["power_w"]
    else:
        return out
    peaks = [r["power_w"] for r in powered if a <= r["t_s"] <= b] or [mean]
    out.update(power_mean_w=mean, power_peak_w=max(max(peaks), mean), energy_loop_j=energy)
    runs = end.get("loop_runs")
    if runs:
        out["energy_per_inference_mj"] = 1000.0 * energy / runs
    rails: dict[str, list[tuple[float, float]]] = {}
    for r in powered:
        for name, watts in (r.get("rails_w") or {}).items():
            if watts is not None:
                rails.setdefault(name, []).append((r["t_s"], watts))
    if rails and b > a:
        out["rails_mean_w"] = {name: integrate([p[0] for p in pts], [p[1] for p in pts], a, b) / (b - a)
                               for name, pts in rails.items()}
    return out


def throttle_words(bits: int | None) -> dict[str, list[str]] | None:
    """A Pi's get_throttled bits in words: bits 0-3 now, bits 16-19 the same since boot."""
    if bits is None:
        return None
    return {"now": [w for i, w in enumerate(THROTTLE_WORDS) if bits >> i & 1],
            "since_boot": [w for i, w in enumerate(THROTTLE_WORDS) if bits >> (i + 16) & 1]}


def _busy(cpus: Sequence[int], rows: Sequence[Row]) -> bool:
    """Whether the policy's cores ran the benchmark: the busiest averaged BUSY_PCT (unknown counts as busy)."""
    peaks = []
    for r in rows:
        cores = r.get("cpu_core_pct") or []
        values = [cores[c] for c in cpus if c < len(cores) and cores[c] is not None]
        if values:
            peaks.append(max(values))
    return not peaks or sum(peaks) / len(peaks) >= BUSY_PCT


def forensics(rows: Sequence[Row], end: dict[str, Any]) -> dict[str, Any]:
    """What the loop's time at each frequency, offlined cores and throttle bits say about throttling.

    `throttled_forensics` is true when a busy cpufreq policy spent more than BELOW_TOP_TOLERANCE of the
    loop below its top frequency, a core went offline during the loop, or throttle bits appeared.
    """
    span = loop_span(end)
    loop_rows = [r for r in rows if span and span[0] <= r["t_s"] <= span[1]] or \
        [r for r in rows if r.get("phase") == "loop"]
    below_s, below_frac, policies = None, None, []
    for name, state in (end.get("time_in_state") or {}).items():
        khz, secs = state.get("khz") or [], state.get("s") or []
        total = sum(secs)
        if not khz or total <= 0 or not _busy(state.get("cpus") or [], loop_rows):
            continue
        top = max(khz)
        below = sum(s for k, s in zip(khz, secs) if k < top)
        if below_s is None or below > below_s:
            below_s, below_frac = below, below / total
        if below / total > BELOW_TOP_TOLERANCE:
            policies.append(name)
    offlined = list(end.get("cores_offlined") or [])
    before, after = end.get("throttled_before"), end.get("throttled_after")
    words_after = throttle_words(after)
    appeared: list[str] = []
    if words_after:
        appeared += words_after["now"]
        old = set((throttle_words(before) or {}).get("since_boot", []))
        appeared += [f"{w} since boot" for w in words_after["since_boot"] if w not in old]
    return {
        "time_below_top_s": below_s,
        "time_below_top_frac": below_frac,
        "policies_below_top": ",".join(policies) or None,
        "cores_offlined": ",".join(str(c) for c in offlined) or None,
        "throttle_words": ", ".join(appeared) or None,
        "throttled_forensics": bool(policies or offlined or appeared),
    }


def cell_figures(rows: Sequence[Row], end: dict[str, Any], source: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything this module adds to a summary row (summary.summarize_attempt calls it)."""
    return {**power_figures(rows, end, source), **forensics(rows, end)}
