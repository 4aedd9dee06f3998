"""Plots of a run (matplotlib, PNG and SVG), each readable without the table.

Per device (files in the run's `plots/` folder):
    latency-<device>     latency distribution per model x variant x threads (box: quartiles, whiskers p1-p99)
    throughput-<device>  inferences per second, grouped bars per model, thread count and variant
    scaling-<device>     throughput against threads, a line per variant (only when threads were swept)
    energy-<device>      energy per inference against p50 latency (only where the device measured power)
Per cell (in `plots/cells/`, PNG only by default, rewritten only when the cell's data changed):
    <cell key>-timeline  latency of every inference, temperature, CPU frequency, CPU %, RSS and (where the
                         device has a power source) board power against time, warmup and timed loop marked,
                         time below the top CPU frequency shaded, absent sensors said so

The `*_figure` functions return matplotlib Figures (not managed by pyplot: no GUI backend, nothing to
close) for notebooks; `plot_run`/`write_plots` save them.
"""

from __future__ import annotations

import gc
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator

from benchbot import stats
from benchbot.plan import safe_name
from benchbot.power import forensics
from benchbot.report.fmt import sig
from benchbot.summary import _telemetry_rows as telemetry_rows
from benchbot.summary import _telemetry_values as telemetry_values
from benchbot.vocab import CELL_AXES, variant_color
from benchbot.vocab import variant_key as _variant_key

if TYPE_CHECKING:
    from benchbot.summary import Run

CELL = CELL_AXES
WARMUP_COLOR = "#f2c14e"
LOOP_COLOR = "#7fb77e"
THROTTLE_COLOR = "#d62728"
ABSENT_FACE = "#f2f2f2"
DPI = 110
TITLES = {
    "latency": "{device}: latency distribution of the timed loop",
    "throughput": "{device}: throughput of the timed loop (higher is better)",
    "scaling": "{device}: thread scaling (throughput against threads)",
    "energy": "{device}: energy per inference against latency (lower left is better)",
    "timelines": "{device}: latency of every inference over the timed loop, every cell",
}
# boxplot(vert=False) is deprecated from matplotlib 3.11; orientation= only exists from 3.10
HORIZONTAL: dict[str, Any] = ({"orientation": "horizontal"} if tuple(
    int(p) for p in matplotlib.__version__.split(".")[:2] if p.isdigit()) >= (3, 10) else {"vert": False})


def _series_label(variant: str, xnnpack: Any, batch: Any, varied: tuple[bool, bool]) -> str:
    label = str(variant)
    if varied[0]:
        label += "" if xnnpack else " no-xnn"
    if varied[1]:
        label += f" b{int(batch)}"
    return label


def _varied(frame: pd.DataFrame) -> tuple[bool, bool]:
    return (frame["xnnpack"].nunique() > 1 if "xnnpack" in frame else False,
            frame["batch"].nunique() > 1 if "batch" in frame else False)


def _new_figure(width: float, height: float) -> Figure:
    """A Figure outside pyplot (no GUI backend, nothing to close) that renders with Agg."""
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _plain(value: float) -> str:
    return f"{value:g}"


def _plain_log_axis(axis: Any) -> None:
    """Log-axis tick labels as plain numbers (0.05, 0.1, 1), with 2x, 3x and 5x labels when the range is narrow."""

    def minor(value: float, _pos: Any) -> str:
        lo, hi = sorted(axis.get_view_interval())
        if lo <= 0 or hi / lo > 300 or value <= 0:
            return ""
        lead = round(value / 10 ** math.floor(math.log10(value) + 1e-9))
        return _plain(value) if lead in (2, 3, 5) else ""

    axis.set_major_formatter(FuncFormatter(lambda v, _p: _plain(v)))
    axis.set_minor_locator(LogLocator(subs=(2.0, 3.0, 5.0)))
    axis.set_minor_formatter(FuncFormatter(minor))


def _threads_label(threads: int) -> str:
    return f"{threads} thread" + ("" if threads == 1 else "s")


#: zlib level of the PNGs: 1 instead of Pillow's 6 spends less time compressing, for files ~10 % bigger.
PNG_COMPRESSION = 1


def _finish(fig: Figure, path_stem: Path, formats: Iterable[str]) -> list[Path]:
    out = []
    for ext in formats:
        path = path_stem.with_name(f"{path_stem.name}.{ext}")
        if ext == "png":
            fig.savefig(path, dpi=DPI, pil_kwargs={"compress_level": PNG_COMPRESSION})
        else:
            fig.savefig(path, dpi=DPI)
        out.append(path)
    return out


# ----------------------------------------------------------------------------- latency distribution


def latency_figure(samples: pd.DataFrame, device: str, title_extra: str = "") -> Figure | None:
    """Horizontal box plots of the loop latencies on one device: a panel per model (its own axis)."""
    loop = samples[(samples["device"] == device) & (samples["phase"] == "loop")]
    if loop.empty:
        return None
    varied = _varied(loop)
    panels = []
    for model, by_model in loop.groupby("model", sort=True, observed=True):
        boxes = []
        for (variant, threads, xnn, batch), g in by_model.groupby(["variant", "threads", "xnnpack", "batch"],
                                                                    observed=True):
            boxes.append(((threads, not xnn, batch, _variant_key(variant)), variant,
                          f"{_series_label(variant, xnn, batch, varied)} · {_threads_label(threads)}",
                          g["latency_ms"].to_numpy()))
        boxes.sort(key=lambda b: b[0], reverse=True)  # first one at the top
        panels.append((model, boxes))
    heights = [0.34 * len(b) + 0.9 for _, b in panels]
    fig = _new_figure(10, sum(heights) + 1.0)
    axes = fig.subplots(len(panels), 1, squeeze=False, gridspec_kw={"height_ratios": heights})
    variants = {b[1] for _, boxes in panels for b in boxes}
    for ax, (model, boxes) in zip(axes[:, 0], panels):
        data = [b[3] for b in boxes]
        p1 = np.array([np.percentile(d, 1) for d in data])
        p99 = np.array([np.percentile(d, 99) for d in data])
        med = np.array([np.median(d) for d in data])
        art = ax.boxplot(data, **HORIZONTAL, showfliers=False, whis=(1, 99), patch_artist=True, widths=0.6,
                         medianprops={"color": "black", "linewidth": 1.5})
        for patch, box in zip(art["boxes"], boxes):
            patch.set_facecolor(variant_color(box[1], variants))
            patch.set_alpha(0.75)
        ax.set_yticks(range(1, len(boxes) + 1), [b[2] for b in boxes], fontsize=9)
        log = p1.min() > 0 and p99.max() / p1.min() > 10
        if log:
            ax.set_xscale("log")
            _plain_log_axis(ax.xaxis)
            right = p99.max() * 4.0
        else:
            right = p99.max() + 0.35 * (p99.max() - min(0.0, p1.min()))
        ax.set_xlim(right=right)
        if not log:
            ax.set_xlim(left=0)
        ends = [float(np.max(w.get_xdata())) for w in art["whiskers"][1::2]]  # the upper whisker of each box
        for y, (end, m) in enumerate(zip(ends, med), start=1):
            ax.annotate(f"p50 {sig(m)} ms", (end, y), xytext=(4, 0), textcoords="offset points", va="center",
                        fontsize=8, color="#333333")
        ax.set_title(f"{model}", loc="left", fontsize=10, fontweight="bold")
        ax.set_xlabel("latency per inference (ms" + (", log scale)" if log else ")"), fontsize=9)
        ax.grid(axis="x", which="both", alpha=0.25)
    fig.suptitle(TITLES["latency"].format(device=device + title_extra)
                 + "\nbox: quartiles, line: median, whiskers: p1–p99", fontsize=11)
    # a computed layout: tight_layout measures every text first, a third of the figure's cost
    longest = max(len(b[2]) for _, boxes in panels for b in boxes)
    width, height = fig.get_figwidth(), fig.get_figheight()
    fig.subplots_adjust(left=min(0.45, (longest * 9 * 0.56 + 14) / 72 / width), right=0.97,
                        top=1 - 0.95 / height, bottom=0.5 / height,
                        hspace=0.78 / (sum(heights) / len(heights)))
    return fig


# ----------------------------------------------------------------------------- throughput and scaling


def _series_frame(summary: pd.DataFrame, device: str) -> pd.DataFrame:
    frame = summary[(summary["device"] == device) & summary["throughput"].notna()].copy()
    if frame.empty:
        return frame
    varied = _varied(frame)
    frame["series"] = [_series_label(v, x, b, varied) for v, x, b in
                       zip(frame["variant"], frame["xnnpack"], frame["batch"])]
    frame["vkey"] = [_variant_key(v) for v in frame["variant"]]
    return frame.sort_values(["model", "threads", "vkey", "series"])


def _grid(n: int, width: float, height: float) -> tuple[Figure, list[Any]]:
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig = _new_figure(width * cols, height * rows + 0.9)
    axes = fig.subplots(rows, cols, squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _title_and_legend(fig: Figure, title: str, frame: pd.DataFrame, kind: str) -> None:
    """Lay out the panels (a computed layout: tight_layout measures every text first, a third of the figure's
    cost), then put the title and one legend for all panels above them, clear of any data."""
    height, width = fig.get_figheight(), fig.get_figwidth()
    axes = [ax for ax in fig.axes if ax.get_visible()]
    cols = len({round(ax.get_position().x0, 3) for ax in axes}) or 1
    rows = max(1, math.ceil(len(axes) / cols))
    panel_w, panel_h = width / cols, (height - 0.9) / rows
    fig.subplots_adjust(left=0.85 / width, right=1 - 0.15 / width, bottom=0.45 / height, top=1 - 1.05 / height,
                        wspace=0.95 / panel_w, hspace=0.75 / panel_h)
    fig.suptitle(title, fontsize=11, y=1 - 0.08 / height, va="top")
    _series_legend(fig, frame, kind)


def _series_legend(fig: Figure, frame: pd.DataFrame, kind: str = "patch") -> None:
    series = list(dict.fromkeys(zip(frame["series"], frame["variant"])))
    variants = set(frame["variant"])
    if kind == "patch":
        handles: list[Any] = [Patch(facecolor=variant_color(v, variants), label=s) for s, v in series]
    else:
        handles = [Line2D([], [], color=variant_color(v, variants), marker="o", label=s) for s, v in series]
    top = 1 - 0.38 / fig.get_figheight()
    fig.legend(handles=handles, loc="upper center", ncol=min(len(handles), 6), frameon=False,
               bbox_to_anchor=(0.5, top), fontsize=9)


def throughput_figure(summary: pd.DataFrame, device: str, title_extra: str = "") -> Figure | None:
    """Grouped bars: a panel per model (own axis), a group per thread count, a bar per variant."""
    frame = _series_frame(summary, device)
    if frame.empty:
        return None
    models = list(dict.fromkeys(frame["model"]))
    series_all = list(dict.fromkeys(frame["series"]))
    fig, axes = _grid(len(models), 4.6, 3.4)
    variants = set(frame["variant"])
    for ax, model in zip(axes, models):
        part = frame[frame["model"] == model]
        threads = sorted(part["threads"].unique())
        series = [s for s in series_all if s in set(part["series"])]
        width = 0.8 / max(1, len(series))
        for i, s in enumerate(series):
            xs, ys = [], []
            for j, t in enumerate(threads):
                match = part[(part["series"] == s) & (part["threads"] == t)]
                if not match.empty:
                    xs.append(j - 0.4 + width * (i + 0.5))
                    ys.append(float(match["throughput"].iloc[0]))
            variant = part[part["series"] == s]["variant"].iloc[0]
            bars = ax.bar(xs, ys, width * 0.92, color=variant_color(variant, variants), label=s)
            ax.bar_label(bars, labels=[sig(y) for y in ys], fontsize=7, padding=1,
                         rotation=90 if len(series) * len(threads) > 6 else 0)
        ax.set_xticks(range(len(threads)), [_threads_label(int(t)) for t in threads], fontsize=9)
        ax.set_ylabel("throughput (inferences/s)", fontsize=9)
        ax.set_ylim(0, ax.get_ylim()[1] * 1.18)
        ax.set_title(model, loc="left", fontsize=10, fontweight="bold")
        ax.grid(axis="y", alpha=0.3)
    _title_and_legend(fig, TITLES["throughput"].format(device=device + title_extra), frame, "patch")
    return fig


def scaling_figure(summary: pd.DataFrame, device: str, title_extra: str = "") -> Figure | None:
    """Throughput against thread count, a line per variant and a panel per model; None without a sweep."""
    frame = _series_frame(summary, device)
    if frame.empty or frame["threads"].nunique() < 2:
        return None
    models = [m for m in dict.fromkeys(frame["model"]) if frame[frame["model"] == m]["threads"].nunique() > 1]
    if not models:
        return None
    fig, axes = _grid(len(models), 4.6, 3.4)
    variants = set(frame["variant"])
    for ax, model in zip(axes, models):
        part = frame[frame["model"] == model]
        for s, g in part.groupby("series", sort=False):
            g = g.sort_values("threads")
            ax.plot(g["threads"], g["throughput"], marker="o", color=variant_color(g["variant"].iloc[0], variants),
                    label=s)
        threads = sorted(part["threads"].unique())
        ax.set_xticks(threads, [str(int(t)) for t in threads])
        ax.set_xlabel("threads", fontsize=9)
        ax.set_ylabel("throughput (inferences/s)", fontsize=9)
        ax.set_ylim(0, ax.get_ylim()[1] * 1.08)
        ax.set_title(model, loc="left", fontsize=10, fontweight="bold")
        ax.grid(alpha=0.3)
    _title_and_legend(fig, TITLES["scaling"].format(device=device + title_extra), frame, "line")
    return fig


# ----------------------------------------------------------------------------- per-cell timeline


@dataclass
class CellTrace:
    """What a timeline needs of one cell, on one clock: seconds from the start of the timed loop."""

    title: str
    samples_t: np.ndarray
    samples_ms: np.ndarray
    samples_phase: np.ndarray
    telemetry: pd.DataFrame
    warmup: tuple[float, float] | None
    loop: tuple[float, float] | None
    firmware_throttled: bool = False
    absent: dict[str, str] = field(default_factory=dict)
    top_mhz: float | None = None     # the top of the cpufreq table (time below it is shaded), when known
    forensics: str = ""              # time below the top frequency, cores offlined, throttle words (power.py)


def cell_trace(run: Run, key: str, samples: pd.DataFrame | None = None, telemetry: pd.DataFrame | None = None
               ) -> CellTrace | None:
    """Gather what the timeline of a cell shows, from its representative attempt (the one its title names)."""
    attempt = run.best(key)
    if attempt is None:
        return None
    cell = attempt.cell
    if samples is None:
        samples = attempt.samples()
    if telemetry is None:
        values = telemetry_values(attempt)
        telemetry = pd.DataFrame({name: pd.Series(values[name]) for name in TIMELINE_TELEMETRY})
    end = attempt.first("cell_end") or {}
    readings = attempt.telemetry_columns()["t_ns"]
    origin = end.get("loop_start_ns") or (readings[0] if readings else None)
    if origin is None:
        origin = int(samples["start_ns"].min()) if len(samples) else 0
    start = samples["start_ns"].to_numpy(dtype=np.int64)
    latency = samples["latency_ns"].to_numpy(dtype=np.int64)
    phase = samples["phase"].astype(str).to_numpy()
    t = (start - origin) / 1e9
    warm, loop = phase == "warmup", phase == "loop"
    warmup_span = (float(t[warm].min()), 0.0 if end.get("loop_start_ns") else float((t + latency / 1e9)[warm].max())) \
        if warm.any() else None
    if end.get("loop_ns"):
        loop_span: tuple[float, float] | None = (0.0, end["loop_ns"] / 1e9)
    elif loop.any():
        loop_span = (float(t[loop].min()), float((t + latency / 1e9)[loop].max()))
    else:
        loop_span = None
    extra = ("" if cell.xnnpack else ", XNNPACK off") + (f", batch {cell.batch}" if cell.batch != 1 else "")
    emulated = " (emulated)" if run.manifest.get("devices", {}).get(cell.device, {}).get("emulated") else ""
    title = (f"{cell.device}{emulated}: {cell.model}/{cell.variant}, {_threads_label(cell.threads)}{extra}"
             f"  (run {run.run_id}, attempt {attempt.attempt}, {attempt.status})")
    absent = {}
    tele = telemetry
    if tele.empty or tele["temp_c"].isna().all():
        vc = [v for v in (end.get("vc_temp_start_c"), end.get("vc_temp_end_c")) if v is not None]
        absent["temp"] = ("absent: no thermal zone readings on this device" if not vc else
                          f"no thermal zones; vcgencmd: {vc[0]:.1f} °C at start, {vc[-1]:.1f} °C at end")
    if tele.empty or tele["freq_max_mhz"].isna().all():
        absent["freq"] = "absent: no cpufreq on this device (frequency not readable)"
    if tele.empty or tele["cpu_pct"].isna().all():
        absent["cpu"] = "absent: no CPU usage readings"
    if tele.empty or tele["rss_mb"].isna().all():
        absent["rss"] = "absent: no memory readings"
    bits = stats.throttle_bits_appeared(end.get("throttled_before"), end.get("throttled_after"))
    tables = [max(s.get("khz") or [0]) for s in (end.get("time_in_state") or {}).values()]
    top = max(tables) / 1e3 if tables and max(tables) > 0 else None
    return CellTrace(title, t, latency / 1e6, phase, tele.sort_values("t_s"), warmup_span, loop_span, bits, absent,
                     top, _forensics_text(forensics(telemetry_rows(attempt), end)))


def _forensics_text(found: dict[str, Any]) -> str:
    parts = []
    if found.get("policies_below_top"):
        parts.append(f"{found['time_below_top_s']:.2f} s of the loop below the top frequency "
                     f"({found['policies_below_top']}, cpufreq time_in_state)")
    if found.get("cores_offlined"):
        parts.append(f"cores offlined during the loop: {found['cores_offlined']}")
    if found.get("throttle_words"):
        parts.append(f"firmware: {found['throttle_words']}")
    return "; ".join(parts)


def _throttled_spans(tele: pd.DataFrame, tolerance: float = 0.02, top_mhz: float | None = None
                     ) -> list[tuple[float, float]]:
    """Where some core ran below the top of the cpufreq table (top_mhz), or, when that is unknown, slower than the
    fastest core did at the first reading (as stats.frequency_dropped)."""
    freq = tele[["t_s", "freq_min_mhz", "freq_max_mhz"]].dropna()
    if freq.empty:
        return []
    reference = float(top_mhz) if top_mhz else float(freq["freq_max_mhz"].iloc[0])
    low = (freq["freq_min_mhz"] < reference * (1 - tolerance)).to_numpy()
    times = freq["t_s"].to_numpy()
    spans, start = [], None
    for i, flag in enumerate(low):
        if flag and start is None:
            start = times[max(i - 1, 0)] if i else times[i]
        if not flag and start is not None:
            spans.append((float(start), float(times[i])))
            start = None
    if start is not None:
        spans.append((float(start), float(times[-1])))
    return spans


def _series_panel(ax: Any, absent: str | None, tele: pd.DataFrame, column: str, color: str,
                  ylabel: str) -> pd.Series | None:
    """One telemetry column over time on `ax` (its readings, for the caller's limits), or why it is absent."""
    if absent is not None:
        _absent(ax, absent)
        return None
    points = tele[["t_s", column]].dropna()
    ax.plot(points["t_s"], points[column], color=color, marker=".", ms=3)
    ax.set_ylabel(ylabel)
    return points[column]


def _absent(ax: Any, text: str) -> None:
    ax.set_facecolor(ABSENT_FACE)
    ax.set_yticks([])
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=9, color="#555555",
            style="italic")


#: The telemetry columns a timeline reads.
TIMELINE_TELEMETRY = ("phase", "t_s", "temp_c", "freq_min_mhz", "freq_max_mhz", "cpu_pct", "proc_cpu_pct", "rss_mb",
                      "power_w")

#: Most latency points a timeline draws: ~1,000 px of width cannot show more, and drawing 10,000+ markers per
#: cell was most of a report's time. Thinned per bucket to its lowest and highest point, so spikes stay.
MAX_POINTS = 3000
MAX_LINE_POINTS = 1500


def thin(values: np.ndarray, limit: int = MAX_POINTS) -> np.ndarray:
    """Indices (in order) of at most ~limit points of a series: each bucket's minimum and maximum."""
    n = len(values)
    if n <= limit:
        return np.arange(n)
    size = math.ceil(n / (limit // 2))
    buckets = n // size
    body = values[: buckets * size].reshape(buckets, size)
    base = np.arange(buckets) * size
    keep = np.concatenate([base + body.argmin(axis=1), base + body.argmax(axis=1), np.arange(buckets * size, n)])
    return np.unique(keep)


def timeline_figure(trace: CellTrace) -> Figure:
    """Panels on one time axis: latency per inference, temperature, CPU frequency, CPU %, RSS, and board power
    where the device has a power source (no panel where it has none)."""
    tele = trace.telemetry
    power = tele[["t_s", "power_w"]].dropna() if "power_w" in tele else pd.DataFrame()
    fig = _new_figure(10, 10.5 + (1.9 if not power.empty else 0.0))
    axes = fig.subplots(5 + (not power.empty), 1, sharex=True,
                        gridspec_kw={"height_ratios": [2.4, 1, 1, 1.2, 1] + ([1.2] if not power.empty else [])})
    ax_lat, ax_temp, ax_freq, ax_cpu, ax_rss = axes[:5]
    throttled = _throttled_spans(tele, top_mhz=trace.top_mhz)

    def shade(ax: Any) -> None:  # phases and throttled spans, on panels that show data
        if trace.warmup:
            ax.axvspan(*trace.warmup, color=WARMUP_COLOR, alpha=0.18, lw=0)
        if trace.loop:
            ax.axvspan(*trace.loop, color=LOOP_COLOR, alpha=0.12, lw=0)
        for a, b in throttled:
            ax.axvspan(a, b, facecolor="none", edgecolor=THROTTLE_COLOR, hatch="///", alpha=0.5, lw=0)

    for ax, part in zip(axes, ("lat", "temp", "freq", "cpu", "rss", "power")):
        if part not in trace.absent and (part != "lat" or trace.samples_ms.size):
            shade(ax)

    # latency of every inference (thinned to what the figure can show, spikes kept), with a running median
    if trace.samples_ms.size:
        warm = np.flatnonzero(trace.samples_phase == "warmup")
        loop = np.flatnonzero(trace.samples_phase == "loop")
        shown_warm, shown_loop = warm[thin(trace.samples_ms[warm])], loop[thin(trace.samples_ms[loop])]
        ax_lat.plot(trace.samples_t[shown_warm], trace.samples_ms[shown_warm], ".", ms=2, color="#b8860b", alpha=0.6,
                    rasterized=True, label="warmup inference")
        ax_lat.plot(trace.samples_t[shown_loop], trace.samples_ms[shown_loop], ".", ms=2, color="#1f77b4",
                    alpha=0.45, rasterized=True, label="timed inference")
        if loop.size >= 20:
            y = pd.Series(trace.samples_ms[loop]).rolling(max(5, int(loop.size) // 50), center=True,
                                                          min_periods=1).median().to_numpy()
            step = max(1, loop.size // MAX_LINE_POINTS)  # a smooth line: every step-th point draws the same
            ax_lat.plot(trace.samples_t[loop][::step], y[::step], color="black", lw=1.2, label="running median")
        positive = trace.samples_ms[trace.samples_ms > 0]
        if positive.size and positive.max() / positive.min() > 10:
            ax_lat.set_yscale("log")
            _plain_log_axis(ax_lat.yaxis)
            ax_lat.set_ylabel("latency (ms, log)")
        else:
            ax_lat.set_ylabel("latency (ms)")
            ax_lat.set_ylim(bottom=0)
        ax_lat.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=4, fontsize=8, frameon=False,
                      handletextpad=0.3, markerscale=4)
    else:
        _absent(ax_lat, "no latency samples stored for this cell")

    # temperature: a margin of at least a degree around its range
    t = _series_panel(ax_temp, trace.absent.get("temp"), tele, "temp_c", "#d62728", "temp (°C)")
    if t is not None:
        lo, hi = float(t.min()), float(t.max())
        ax_temp.set_ylim(lo - max(1.0, 0.1 * (hi - lo)), hi + max(1.0, 0.1 * (hi - lo)))
    # CPU frequency: the slowest and fastest core
    if "freq" in trace.absent:
        _absent(ax_freq, trace.absent["freq"])
    else:
        f = tele[["t_s", "freq_min_mhz", "freq_max_mhz"]].dropna()
        ax_freq.fill_between(f["t_s"], f["freq_min_mhz"], f["freq_max_mhz"], color="#9467bd", alpha=0.25, lw=0)
        ax_freq.plot(f["t_s"], f["freq_max_mhz"], color="#9467bd", lw=1, label="fastest core")
        ax_freq.plot(f["t_s"], f["freq_min_mhz"], color="#9467bd", lw=1, ls="--", label="slowest core")
        ax_freq.set_ylabel("CPU freq (MHz)")
        top = float(f["freq_max_mhz"].max())
        ax_freq.set_ylim(0, top * 1.45)  # headroom: the legend sits above the lines
        ax_freq.legend(loc="upper right", fontsize=7, ncol=2, frameon=True, framealpha=0.8)
    # CPU %
    if "cpu" in trace.absent:
        _absent(ax_cpu, trace.absent["cpu"])
    else:
        c = tele[["t_s", "cpu_pct", "proc_cpu_pct"]]
        ax_cpu.plot(c["t_s"], c["cpu_pct"], color="#2ca02c", marker=".", ms=3, label="whole CPU (100 = all cores)")
        if c["proc_cpu_pct"].notna().any():
            ax_cpu.plot(c["t_s"], c["proc_cpu_pct"], color="#ff7f0e", marker=".", ms=3,
                        label="benchmark process (100 = one core)")
        top = np.nanmax(c[["cpu_pct", "proc_cpu_pct"]].to_numpy(dtype=float))
        ax_cpu.set_ylim(0, max(105.0, top * 1.1) * 1.35)
        ax_cpu.set_ylabel("CPU (%)")
        ax_cpu.legend(loc="upper right", fontsize=7, ncol=2, frameon=True, framealpha=0.8)
    # memory, from zero
    r = _series_panel(ax_rss, trace.absent.get("rss"), tele, "rss_mb", "#8c564b", "RSS (MB)")
    if r is not None:
        ax_rss.set_ylim(0, float(r.max()) * 1.2)
    if not power.empty:
        _power_panel(axes[5], power)
    axes[-1].set_xlabel("time from the start of the timed loop (s)")
    for ax in axes:
        ax.grid(alpha=0.25)
        ax.yaxis.set_label_coords(-0.07, 0.5)

    handles = [Patch(color=WARMUP_COLOR, alpha=0.4, label="warmup"), Patch(color=LOOP_COLOR, alpha=0.3,
                                                                            label="timed loop")]
    if throttled:
        handles.append(Patch(facecolor="none", edgecolor=THROTTLE_COLOR, hatch="///", label="throttled"))
    fig.legend(handles=handles, loc="upper right", ncol=len(handles), fontsize=8, frameon=False,
               bbox_to_anchor=(0.99, 1 - (0.47 + 0.2 * bool(trace.forensics)) / fig.get_figheight()))
    below = "its top frequency" if trace.top_mhz else "its starting maximum"
    subtitle = "phases shaded; " + (f"hatched: CPU frequency below {below} (throttled)"
                                    if "freq" not in trace.absent else "throttling not visible: no cpufreq readings")
    if trace.firmware_throttled:
        subtitle += "; the firmware reported throttling during this cell"
    if trace.forensics:
        subtitle += "\n" + trace.forensics
    fig.suptitle(f"{trace.title}\n{subtitle}", fontsize=10, x=0.01, y=0.995, ha="left")
    # a fixed layout: tight_layout costs more than drawing, and one report may hold hundreds of timelines
    height = fig.get_figheight()
    fig.subplots_adjust(left=0.1, right=0.98, top=1 - (1.05 + 0.2 * bool(trace.forensics)) / height,
                        bottom=0.58 / height, hspace=0.12)
    return fig


def _power_panel(ax: Any, power: pd.DataFrame) -> None:
    """Board power at each reading (a subprocess source such as a Pi 5's PMIC is read about once a second)."""
    ax.plot(power["t_s"], power["power_w"], color="#17becf", marker=".", ms=4, label="board power")
    ax.set_ylabel("power (W)")
    top = float(power["power_w"].max())
    ax.set_ylim(0, max(top * 1.35, 0.1))


# ----------------------------------------------------------------------------- every cell at a glance

#: Points per cell of the overview (its strip is the figure's width).
OVERVIEW_POINTS = 1200
#: Half a strip's height is this factor slower (or faster) than the cell's median; beyond it points sit at the edge.
OVERVIEW_SPAN = 2.0


def overview_figure(run: Run, device: str, title_extra: str = "") -> Figure | None:
    """Every cell of the device in one figure, a strip per cell (its representative repetition): each inference of
    the timed loop against time, as a ratio to the cell's median (log scale; thinned, spikes kept), with a running
    median. Drift, spikes and slow spells of every cell at a glance, whatever `--cell-plots` draws in full; one
    axes, because 40 panels cost ten times as much to draw.
    """
    flags = dict(zip(run.summary["key"], run.summary["flags"].fillna(""))) if "key" in run.summary else {}
    strips = []
    for cell in sorted((c for c in run.cells if c.device == device),
                       key=lambda c: (c.model, c.threads, not c.xnnpack, c.batch, _variant_key(c.variant))):
        attempt = run.best(cell.key)
        if attempt is None:
            continue
        rows = attempt.sample_rows()
        mask = rows.mask("loop")
        ms = rows.latency_ns[mask] / 1e6
        if not ms.size or float(np.median(ms)) <= 0:
            continue
        end = attempt.first("cell_end") or {}
        start = rows.start_ns[mask]
        origin = end.get("loop_start_ns") or int(start.min())
        strips.append((cell, (start - origin) / 1e9, ms, float(np.median(ms)), str(flags.get(cell.key, ""))))
    if not strips:
        return None
    fig = _new_figure(10, 0.28 * len(strips) + 1.5)
    ax = fig.subplots()
    half = 0.42
    bad = ("unstable", "throttled", "incomplete", "failed", "damaged")
    labels = []
    for i, (cell, t, ms, median, flag) in enumerate(strips):
        y0 = len(strips) - 1 - i
        scale = half / math.log(OVERVIEW_SPAN)
        rel = np.clip(np.log(ms / median), -math.log(OVERVIEW_SPAN), math.log(OVERVIEW_SPAN)) * scale
        shown = thin(rel, OVERVIEW_POINTS)
        ax.plot(t[shown], y0 + rel[shown], ".", ms=1.0, color="#1f77b4", alpha=0.45, rasterized=True)
        if ms.size >= 20:
            run_med = pd.Series(rel).rolling(max(5, ms.size // 50), center=True, min_periods=1).median().to_numpy()
            step = max(1, ms.size // 300)
            ax.plot(t[::step], y0 + run_med[::step], color="black", lw=0.7)
        ax.axhline(y0 - 0.5, color="#dddddd", lw=0.5)
        marked = [f for f in flag.split(",") if f in bad]
        label = f"{cell.model}/{cell.variant} t{cell.threads}" + ("" if cell.xnnpack else " no-xnn") + \
            (f" b{cell.batch}" if cell.batch != 1 else "") + f"  p50 {sig(median)} ms" + \
            (f"  [{', '.join(marked)}]" if marked else "")
        labels.append((y0, label, bool(marked)))
    ax.set_yticks([y for y, _, _ in labels], [text for _, text, _ in labels], fontsize=7)
    for tick, (_, _, red) in zip(ax.get_yticklabels(), labels):
        if red:
            tick.set_color(THROTTLE_COLOR)
    ax.set_ylim(-0.5, len(strips) - 0.5)
    ax.set_xlim(left=0)
    ax.set_xlabel("time from the start of the timed loop (s)", fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="x", alpha=0.25)
    height = fig.get_figheight()
    fig.suptitle(TITLES["timelines"].format(device=device + title_extra)
                 + f"\neach strip: a cell's inferences as a ratio to its median (log; strip edges {OVERVIEW_SPAN:g}x "
                 "slower/faster, beyond sits on the edge), line: running median; red: flagged", fontsize=9, x=0.01,
                 ha="left", y=1 - 0.08 / height, va="top")
    width = max(len(text) for _, text, _ in labels) * 7 * 0.55 / 72 + 0.25  # the longest label at 7 pt
    fig.subplots_adjust(left=min(0.5, width / fig.get_figwidth()), right=0.98, top=1 - 0.7 / height,
                        bottom=0.5 / height)
    return fig


# ----------------------------------------------------------------------------- energy against latency


def energy_figure(summary: pd.DataFrame, device: str, title_extra: str = "") -> Figure | None:
    """Energy per inference (mJ) against p50 latency, a point per cell; None where the device measured no power."""
    if "energy_per_inference_mj" not in summary:
        return None
    frame = summary[(summary["device"] == device) & summary["energy_per_inference_mj"].notna()
                    & summary["p50_ms"].notna()]
    if frame.empty:
        return None
    fig = _new_figure(7.5, 5.2)
    ax = fig.subplots()
    variants = set(frame["variant"])
    models = sorted(frame["model"].unique())
    markers = ["o", "s", "^", "D", "v", "P", "X"]
    for _, r in frame.iterrows():
        ax.scatter(float(r["p50_ms"]), float(r["energy_per_inference_mj"]), s=55, color=variant_color(r["variant"],
                   variants), marker=markers[models.index(r["model"]) % len(markers)], edgecolor="black", lw=0.5)
        ax.annotate(f"{r['model']} {r['variant']} t{int(r['threads'])}", (float(r["p50_ms"]),
                    float(r["energy_per_inference_mj"])), xytext=(4, 3), textcoords="offset points", fontsize=7)
    x, y = frame["p50_ms"].astype(float), frame["energy_per_inference_mj"].astype(float)
    for axis, values, setter in ((ax.xaxis, x, ax.set_xscale), (ax.yaxis, y, ax.set_yscale)):
        if values.min() > 0 and values.max() / values.min() > 10:
            setter("log")
            _plain_log_axis(axis)
    ax.set_xlabel("p50 latency (ms)")
    ax.set_ylabel("energy per inference (mJ)")
    ax.grid(alpha=0.3, which="both")
    handles = [Line2D([], [], color=variant_color(v, variants), marker="o", ls="", label=v)
               for v in sorted(variants, key=_variant_key)]
    handles += [Line2D([], [], color="grey", marker=markers[i % len(markers)], ls="", label=m)
                for i, m in enumerate(models)]
    ax.legend(handles=handles, fontsize=8, loc="best")
    source = frame["power_total"].dropna().iloc[0] if "power_total" in frame and frame["power_total"].notna().any() \
        else "board power"
    ax.set_title(TITLES["energy"].format(device=device + title_extra) + f"\nenergy = mean {source} over the "
                 "timed loop × its wall time ÷ inferences", fontsize=10)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- writing


@dataclass
class PlotFile:
    kind: str                    # latency, throughput, scaling, timeline
    title: str
    paths: list[Path]
    run_id: str
    device: str
    key: str | None = None       # the cell, for timelines
    flags: str = ""              # the cell's validity flags, for timelines

    @property
    def flagged(self) -> bool:
        return any(f in self.flags.split(",") for f in ("unstable", "throttled", "incomplete", "failed"))

    def path(self, ext: str) -> Path | None:
        return next((p for p in self.paths if p.suffix == f".{ext}"), None)


#: Part of every plot's input digest: bump it when a figure is drawn differently, so old drawings are redone.
PLOT_VERSION = 3
#: Per plot (its file stem under the plots folder), the digest of what it was drawn from.
INPUTS_FILE = "inputs.json"


def _digest(files: Iterable[Path], *extra: Any, seen: dict[Path, bytes] | None = None) -> str:
    """A content hash of a plot's inputs: the stored files it is drawn from, the drawing code's version and
    the settings (formats, labels) that change the picture. Copying or touching a run does not change it.

    Each file is hashed once per `seen` (one report): a device's plots share its cells' files."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((PLOT_VERSION, matplotlib.__version__, *extra)).encode())
    for path in files:
        h.update(path.name.encode())
        found = seen.get(path) if seen is not None else None
        if found is None:
            try:
                found = hashlib.blake2b(path.read_bytes(), digest_size=16).digest()
            except OSError:
                found = b"\0absent"
            if seen is not None:
                seen[path] = found
        h.update(found)
    return h.hexdigest()


def _load_inputs(out_dir: Path) -> dict[str, str]:
    try:
        found = json.loads((out_dir / INPUTS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _save_inputs(out_dir: Path, digests: dict[str, str]) -> None:
    tmp = out_dir / (INPUTS_FILE + ".tmp")
    tmp.write_text(json.dumps(digests, indent=0, sort_keys=True))
    tmp.replace(out_dir / INPUTS_FILE)


def drawn_unless_unchanged(folder: Path, stem: str, formats: tuple[str, ...], inputs: Any,
                           make: Callable[[], Figure | None]) -> list[Path] | None:
    """A figure of other report sections (the trade-off's Pareto plots), kept when what it is drawn from
    (`inputs`, hashed by its repr) is unchanged since it was drawn; None when there is nothing to draw."""
    paths = [folder / f"{stem}.{ext}" for ext in formats]
    digest = _digest([], stem, formats, repr(inputs))
    known = _load_inputs(folder)
    if formats and known.get(stem) == digest and all(p.is_file() for p in paths):
        return paths
    fig = make()
    if fig is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    written = _finish(fig, folder / stem, formats)
    _save_inputs(folder, {**_load_inputs(folder), stem: digest})
    return written


#: Cell timelines drawn by default; bigger runs get the most telling ones (flagged, then least stable) first. Every
#: cell's latency over time is in its device's overview (timelines-<device>) whatever the limit.
DEFAULT_CELL_LIMIT = 12

#: What the figure functions of a device plot read, set before the worker processes fork (they share it).
_SHARED: dict[str, Any] = {}
_DEVICE_FIGURES = {
    "latency": lambda d, e: latency_figure(_device_loop_samples(_SHARED["run"], d), d, e),
    "throughput": lambda d, e: throughput_figure(_SHARED["summary"], d, e),
    "scaling": lambda d, e: scaling_figure(_SHARED["summary"], d, e),
    "energy": lambda d, e: energy_figure(_SHARED["summary"], d, e),
    "timelines": lambda d, e: overview_figure(_SHARED["run"], d, e) if "run" in _SHARED else None,
}


def plot_run(run: Run, out_dir: Path, formats: Iterable[str] = ("png", "svg"), cells: bool = True,
             cell_formats: Iterable[str] = ("png",), cell_limit: int | None = None) -> list[PlotFile]:
    """Write every plot of a run under out_dir (cell timelines in out_dir/cells); return what was written.

    Plots whose inputs are unchanged since they were drawn (content hash in out_dir/inputs.json) are kept;
    the rest are drawn in parallel processes. cell_limit: draw at most this many cell timelines (None: all),
    flagged and least stable cells first.
    """
    return start_plots(run, out_dir, formats, cells, cell_formats, cell_limit).result()


@dataclass
class PendingPlots:
    """A run's plots while worker processes draw them (`start_plots`); `result()` waits and records their inputs."""

    run_id: str
    out_dir: Path
    formats: tuple[str, ...]
    slots: list[tuple[str, str, Path, str]]   # kind, device, stem, title of every device plot
    fresh: set[int]                           # slots kept from an earlier report
    digests: dict[str, str]
    timelines: list[PlotFile]
    jobs: list[tuple[str, Any, Path, tuple[str, ...]]]
    shared: dict[str, Any]
    futures: list[Any] = field(default_factory=list)
    pool: Any = None

    def cancel(self) -> None:
        """Drop the plots not drawn yet and stop the workers (nothing is recorded as drawn)."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    def result(self) -> list[PlotFile]:
        if self.pool is not None:
            try:
                results = [f.result() for f in self.futures]
            finally:
                self.pool.shutdown()
        else:  # drawn here, now
            _SHARED.update(self.shared)
            try:
                with _quiet_gc():
                    results = [_render(job) for job in self.jobs]
            finally:
                _SHARED.clear()
        drawn = dict(zip((job[2] for job in self.jobs), results))
        written = []
        for i, (kind, device, stem, title) in enumerate(self.slots):
            files = [stem.with_name(f"{stem.name}.{ext}") for ext in self.formats] if i in self.fresh \
                else drawn.get(stem)
            if files:
                written.append(PlotFile(kind, title, files, self.run_id, device))
            elif i not in self.fresh:
                self.digests.pop(stem.name, None)  # nothing to draw (no sweep, no power): decide again next time
        # keep what other sections recorded (drawn_unless_unchanged); forget this function's plots not drawn now
        others = {k: v for k, v in _load_inputs(self.out_dir).items()
                  if not k.startswith("cells/") and k.split("-")[0] not in _DEVICE_FIGURES}
        _save_inputs(self.out_dir, {**others, **self.digests})
        return written + self.timelines


def _device_loop_samples(run: Run, device: str) -> pd.DataFrame:
    """The loop rows of run.samples for one device's cells (every repetition), from the attempts' arrays: no
    filtering of the run-wide frame, which a plot worker would otherwise build or scan."""
    parts, cells = [], []
    for cell in run.cells:
        if cell.device == device:
            for attempt in run.repetitions(cell.key).values():
                loop = attempt.sample_rows().latency("loop")
                if loop.size:
                    parts.append(loop / 1e6)
                    cells.append(cell)
    columns = ["device", "model", "variant", "threads", "xnnpack", "batch", "phase", "latency_ms"]
    if not parts:
        return pd.DataFrame(columns=columns)
    owner = np.repeat(np.arange(len(parts)), [len(p) for p in parts])
    data: dict[str, Any] = {}
    for name in columns[:6]:  # categoricals as in run.samples: grouping them is what the figure does
        values = [getattr(c, name) for c in cells]
        if name in ("device", "model", "variant"):
            labels = pd.Categorical(values)
            data[name] = pd.Categorical.from_codes(labels.codes[owner], labels.categories)
        else:
            data[name] = np.asarray(values)[owner]
    data["phase"] = pd.Categorical.from_codes(np.zeros(len(owner), np.int8), ["loop"])
    data["latency_ms"] = np.concatenate(parts)
    return pd.DataFrame(data, columns=columns)


def start_plots(run: Run, out_dir: Path, formats: Iterable[str] = ("png", "svg"), cells: bool = True,
                cell_formats: Iterable[str] = ("png",), cell_limit: int | None = None) -> PendingPlots:
    """plot_run's work handed to forked worker processes, which draw while the caller goes on (the report's
    tables and sections); with one worker the plots are drawn in `result()`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    formats, cell_formats = tuple(formats), tuple(cell_formats)
    summary = run.summary
    emulated = {d: bool(i.get("emulated")) for d, i in run.manifest.get("devices", {}).items()}
    pending = PendingPlots(run.run_id, out_dir, formats, [], set(), {}, [], [], {})
    if summary.empty:
        return pending
    previous = _load_inputs(out_dir)
    seen: dict[Path, bytes] = {}  # each stored file hashed once
    device_files = _device_sources(run)
    jobs = pending.jobs
    for device in sorted(summary["device"].unique()):
        extra = " (emulated)" if emulated.get(device) else ""
        for kind in _DEVICE_FIGURES:
            if kind == "timelines" and not cells:
                continue
            stem = out_dir / f"{kind}-{safe_name(device)}"
            paths = [stem.with_name(f"{stem.name}.{ext}") for ext in formats]
            digest = _digest(device_files.get(device, []), kind, device, extra, formats, seen=seen)
            pending.digests[stem.name] = digest
            pending.slots.append((kind, device, stem, TITLES[kind].format(device=f"{device}{extra}")))
            if formats and previous.get(stem.name) == digest and all(p.is_file() for p in paths):
                pending.fresh.add(len(pending.slots) - 1)
            else:
                jobs.append((kind, (device, extra), stem, formats))
    if cells:
        pending.timelines = _cell_plots(run, out_dir / "cells", cell_formats, cell_limit, previous, pending.digests,
                                        jobs, seen)
    if any(job[0] in _DEVICE_FIGURES for job in jobs):
        pending.shared.update(summary=summary, run=run)
    workers = _plot_workers(len(jobs))
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        _SHARED.update(pending.shared)  # the workers are forked at the first submit: they get it, and the run
        try:
            with _quiet_gc():
                pending.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
                pending.futures = [pending.pool.submit(_render, job) for job in jobs]
        finally:
            _SHARED.clear()
    return pending


def _device_sources(run: Run) -> dict[str, list[Path]]:
    """Per device, every stored file its plots are drawn from."""
    out: dict[str, list[Path]] = {}
    for cell in run.cells:
        files = out.setdefault(cell.device, [run.folder / "manifest.json"])
        for attempt in run.attempts.get(cell.key, []):
            files += [attempt.samples_path, attempt.folder / "events.jsonl"]
    return out


def _render(job: tuple[str, Any, Path, tuple[str, ...]]) -> list[Path] | None:
    kind, arg, stem, formats = job
    fig = timeline_figure(arg) if kind == "timeline" else _DEVICE_FIGURES[kind](*arg)
    return None if fig is None else _finish(fig, stem, formats)


@contextmanager
def _quiet_gc() -> Iterator[None]:
    """Keep the garbage collector off the run's millions of loaded objects while figures churn (a third faster)."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def select_cells(run: Run, limit: int | None) -> list[Any]:
    """The cells worth a timeline, in plan order: all, or `limit` of them, flagged and least stable first."""
    cells = [c for c in run.cells if run.best(c.key) is not None]
    if limit is None or len(cells) <= limit:
        return cells
    summary = run.summary.set_index("key") if "key" in run.summary else pd.DataFrame()
    bad = ("unstable", "throttled", "incomplete", "failed")

    def priority(cell: Any) -> tuple[int, float]:
        row = summary.loc[cell.key] if cell.key in summary.index else {}
        flags = str(row.get("flags", "") or "").split(",")
        cv = row.get("cv")
        return (0 if any(f in bad for f in flags) else 1, -(float(cv) if cv is not None and cv == cv else 0.0))

    chosen = {c.key for c in sorted(cells, key=priority)[:limit]}
    return [c for c in cells if c.key in chosen]


def _cell_plots(run: Run, out_dir: Path, formats: tuple[str, ...], limit: int | None, previous: dict[str, str],
                digests: dict[str, str], jobs: list[tuple[str, Any, Path, tuple[str, ...]]],
                seen: dict[Path, bytes] | None = None) -> list[PlotFile]:
    """The timelines to show; those whose inputs changed are added to jobs (drawn with the device plots)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = run.summary
    flags = dict(zip(summary["key"], summary["flags"].fillna(""))) if "key" in summary else {}
    written, stale = [], []
    for cell in select_cells(run, limit):
        attempt = run.best(cell.key)
        assert attempt is not None  # select_cells keeps only cells with an attempt
        stem = out_dir / f"{cell.key}-timeline"
        paths = [stem.with_name(f"{stem.name}.{ext}") for ext in formats]
        written.append(PlotFile("timeline", f"{cell.device}: {cell.label()} timeline", paths, run.run_id,
                                cell.device, cell.key, str(flags.get(cell.key, ""))))
        name = f"cells/{stem.name}"
        digests[name] = _digest([run.folder / "manifest.json", attempt.samples_path, attempt.folder / "events.jsonl"],
                                "timeline", attempt.attempt, attempt.status, formats, seen=seen)
        if previous.get(name) != digests[name] or not all(p.is_file() for p in paths):
            stale.append((cell, stem))
    if not stale:
        return written
    # each timeline from its own attempt (the one its title names): its samples and its telemetry rows, not a
    # groupby of the run-wide frames (which mixed the cell's repetitions, each on its own clock)
    for cell, stem in stale:
        attempt = run.best(cell.key)
        assert attempt is not None
        values = telemetry_values(attempt)
        telemetry = pd.DataFrame({name: pd.Series(values[name]) for name in TIMELINE_TELEMETRY})
        trace = cell_trace(run, cell.key, attempt.samples(), telemetry)
        if trace is not None:
            jobs.append(("timeline", trace, stem, formats))
    return written


def _plot_workers(jobs: int) -> int:
    """Processes for cell timelines: $BENCHBOT_PLOT_WORKERS, else up to 8 cores once there are 8+ plots."""
    import os
    import sys
    import threading

    setting = os.environ.get("BENCHBOT_PLOT_WORKERS")
    if setting and setting.isdigit():
        wanted = int(setting)
    else:
        wanted = min(os.cpu_count() or 1, 8) if jobs >= 8 else 1
    # fork only a single-threaded process (the CLI), never a notebook kernel with its I/O threads
    if not sys.platform.startswith("linux") or threading.active_count() > 1:
        return 1
    return max(1, min(wanted, jobs))


def write_plots(run: Run, out_dir: Path, formats: Iterable[str] = ("png", "svg"), cells: bool = True,
                cell_limit: int | None = DEFAULT_CELL_LIMIT) -> list[Path]:
    """Every plot of a run; returns the files written."""
    return [p for f in plot_run(run, out_dir, formats, cells, cell_limit=cell_limit) for p in f.paths]
