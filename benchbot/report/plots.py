"""PNG plots of a run, written under the run's folder and readable without the table."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _labels(frame: pd.DataFrame) -> list[str]:
    return [f"{m}/{v} t{t}" for m, v, t in zip(frame["model"], frame["variant"], frame["threads"])]


def latency_plot(samples: pd.DataFrame, device: str, path: Path) -> Path | None:
    """Box plot of every loop latency per model x variant x threads on one device (log axis if spread is wide)."""
    loop = samples[(samples["device"] == device) & (samples["phase"] == "loop")]
    if loop.empty:
        return None
    groups = list(loop.groupby(["model", "variant", "threads"], sort=True, observed=True))
    data = [g["latency_ms"].to_numpy() for _, g in groups]
    names = [f"{m}/{v} t{t}" for (m, v, t), _ in groups]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(names) + 2), 4.8))
    ax.boxplot(data, showfliers=False, whis=(1, 99))
    ax.set_xticks(range(1, len(names) + 1), names, rotation=60, ha="right", fontsize=8)
    lows = [np.percentile(d, 1) for d in data if len(d)]
    highs = [np.percentile(d, 99) for d in data if len(d)]
    if lows and min(lows) > 0 and max(highs) / min(lows) > 50:
        ax.set_yscale("log")
    ax.set_ylabel("latency per inference (ms)")
    ax.set_title(f"{device}: latency distribution (box: quartiles, whiskers: p1–p99)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def throughput_plot(summary: pd.DataFrame, device: str, path: Path) -> Path | None:
    """Grouped bars: inferences per second per model, one bar per variant x threads."""
    frame = summary[(summary["device"] == device) & summary["throughput"].notna()]
    if frame.empty:
        return None
    frame = frame.sort_values(["model", "threads", "variant"])
    models = list(dict.fromkeys(frame["model"]))
    series = list(dict.fromkeys(zip(frame["variant"], frame["threads"])))
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(models) + 3), 4.5))
    x = np.arange(len(models))
    for i, (variant, threads) in enumerate(series):
        values = []
        for model in models:
            match = frame[(frame["model"] == model) & (frame["variant"] == variant) & (frame["threads"] == threads)]
            values.append(float(match["throughput"].iloc[0]) if not match.empty else 0.0)
        ax.bar(x + i * width - 0.4 + width / 2, values, width, label=f"{variant} t{threads}")
    ax.set_xticks(x, models)
    ax.set_ylabel("throughput (inferences/s)")
    ax.set_title(f"{device}: throughput per model and variant")
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_plots(run: object, out_dir: Path) -> list[Path]:
    """Every plot of a run; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary, samples = run.summary, run.samples  # type: ignore[attr-defined]
    written: list[Path] = []
    for device in sorted(summary["device"].unique()):
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in device)
        for maker, name, frame in ((latency_plot, "latency", samples), (throughput_plot, "throughput", summary)):
            path = maker(frame, device, out_dir / f"{name}-{safe}.png")
            if path:
                written.append(path)
    return written
