"""The quantization trade-off, measured: size, accuracy and speed of every variant, per device.

A report section (see `benchbot.report.sections`) with, for each device:

* a table: variant, size, size ratio to the family's baseline ("3.7x smaller"), accuracy on the
  eval set, its change in points, agreement with the baseline's predictions, p50 latency,
  throughput and peak RSS;
* one headline per variant, e.g. "tweet-mobile int8 on pi4: 3.7x smaller, -0.8 pts accuracy,
  412 inferences/s (1.9x faster than fp32)";
* across families of the same task, each smaller model against the largest fp32 one, like
  MobileBERT's student against its teacher: "tweet-mobile int8 vs tweet-large fp32 on local: ...";
* a Pareto plot: p50 latency against accuracy, marker area by model size, the frontier of points
  that no other point beats on both (written as plots/pareto-<device>.png and .svg).

Every number comes from the summary frame or the run's stored accuracy events; nothing is typed in.

Same task: two families are compared only when their accuracy was measured on the same labelled
examples, i.e. the label sequences the agents stored with their accuracy events are identical
(same count, same labels, same order). That holds for one eval set converted for two models (even
with different input encodings, e.g. two tokenizers) and fails for a different or truncated set,
where accuracies are not comparable. The fingerprint is computed from what was measured, so it
survives moved or deleted eval files.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from benchbot import delegation
from benchbot.report import fmt
from benchbot.report.data import speed_tie
from benchbot.report.fmt import missing, sig
from benchbot.report.html import image_tag, render_fragment
from benchbot.report.sections import LazyHtmlSection, Section
from benchbot.vocab import variant_color, variant_key

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from benchbot.report.data import ReportData

TITLE = "Accuracy, size and speed: the quantization trade-off"
CONFIG = ["threads", "xnnpack", "batch"]
#: Cells of one comparison: the same run, device (real or emulated) and configuration.
GROUP = ["run_id", "device", "emulated", *CONFIG]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "h"]


# ----------------------------------------------------------------------------- measured inputs


@dataclass
class Measured:
    """What the agents stored about the eval pass of one cell: a fingerprint of its labels and its predictions."""

    task: str | None
    predictions: list[int] | None


def eval_fingerprint(labels: Sequence[int]) -> str:
    """A short hash of a label sequence: equal for cells measured on the same labelled examples."""
    body = json.dumps([int(v) for v in labels], separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()[:12]


def measured_evals(data: ReportData) -> dict[tuple[str, str], Measured]:
    """(run id, cell key) -> labels fingerprint and predictions, from each cell's stored accuracy event."""
    out: dict[tuple[str, str], Measured] = {}
    for run in data.runs:
        for cell in run.cells:
            attempt = run.best(cell.key)
            event = attempt.first("accuracy") if attempt is not None else None
            if not event or not event.get("labels"):
                continue
            out[(run.run_id, cell.key)] = Measured(eval_fingerprint(event["labels"]), event.get("predictions"))
    return out


def tradeoff_frame(data: ReportData) -> pd.DataFrame:
    """The summary rows the trade-off needs, in report order, with each cell's task fingerprint."""
    wanted = ["run_id", "device", "emulated", "model", "variant", *CONFIG, "key", "baseline", "status", "reason",
              "model_size", "size_ratio", "accuracy", "accuracy_n", "accuracy_delta_pts", "agreement",
              "accuracy_error", "p50_ms", "rep_p50_ms", "throughput", "peak_rss_mb", "energy_per_inference_mj",
              *delegation.KEYS]
    frames = [data.device_rows(d, e) for d, e in data.devices()]
    frame = pd.concat(frames) if frames else data.summary.iloc[0:0]
    frame = frame.copy()
    for column in wanted:
        if column not in frame:
            frame[column] = None
    frame = frame[wanted].reset_index(drop=True)
    evals = measured_evals(data)
    frame["task"] = [evals[(r, k)].task if (r, k) in evals else None for r, k in zip(frame["run_id"], frame["key"])]
    return frame


# ----------------------------------------------------------------------------- Pareto frontier


def pareto_front(latency: Sequence[float], accuracy: Sequence[float],
                 tied: Callable[[int, int], bool] | None = None) -> list[int]:
    """Indices of the non-dominated points, fastest first.

    A point is dominated when another is at least as fast and at least as accurate, and strictly
    better in one of the two. `tied(i, j)` says two latencies differ only within the run-to-run
    noise: then neither is faster, so a tie never puts the less accurate point on the front. Of
    exact duplicates the first listed is kept. NaNs are never on it.
    """
    points = [(float(x), float(y), i) for i, (x, y) in enumerate(zip(latency, accuracy))
              if not (missing(x) or missing(y) or math.isnan(float(x)) or math.isnan(float(y)))]
    points.sort(key=lambda p: (p[0], -p[1], p[2]))  # by latency; at equal latency the most accurate first
    same = tied or (lambda i, j: False)

    def dominates(a: tuple[float, float, int], b: tuple[float, float, int]) -> bool:
        speed_tie = a[0] == b[0] or same(a[2], b[2])
        faster = a[0] < b[0] and not speed_tie
        if not (faster or speed_tie) or a[1] < b[1]:
            return False  # a is slower, or less accurate
        if faster or a[1] > b[1]:
            return True
        # as fast within the noise and as accurate: keep one, the one that reads faster (then listed first)
        return (a[0], a[2]) < (b[0], b[2])

    return [p[2] for p in points if not any(q is not p and dominates(q, p) for q in points)]


# ----------------------------------------------------------------------------- words


def size_text(size: Any) -> str:
    if missing(size):
        return ""
    size = float(size)
    if size >= 1024 * 1024:
        return f"{sig(size / 2**20, 3)} MiB"
    return f"{sig(size / 1024, 3)} KiB"


def ratio_words(ratio: Any) -> str:
    """Baseline size / variant size as words: "3.7x smaller", "1.2x larger", "same size"."""
    if missing(ratio) or not ratio:
        return ""
    ratio = float(ratio)
    if round(ratio, 1) == 1.0 and round(1 / ratio, 1) == 1.0:
        return "same size"
    return f"{ratio:.1f}x smaller" if ratio > 1 else f"{1 / ratio:.1f}x larger"


def points_text(delta: Any) -> str:
    text = f"{float(delta):+.1f}"
    return "+0.0" if text == "-0.0" else text


def speed_words(mine: Any, theirs: Any, other: str = "", tie: bool = False) -> str:
    """Throughput ratio as words: "1.9x faster", "4.4x slower than fp32", "as fast as fp32 within the noise".

    `tie`: the repetitions cannot tell the two apart (`speed_tie`); then no ratio is claimed.
    """
    if missing(mine) or missing(theirs) or not theirs or not mine:
        return ""
    ratio = float(mine) / float(theirs)
    if tie:
        return "as fast" + (f" as {other}" if other else "") + " within the run-to-run noise"
    if 1 / 1.03 <= ratio <= 1.03:
        return "about as fast" + (f" as {other}" if other else "")
    times = ratio if ratio > 1 else 1 / ratio
    text = sig(times, 2) if sig(times, 2) != "1.0" else f"{times:.2f}"
    return f"{text}x {'faster' if ratio > 1 else 'slower'}" + (f" than {other}" if other else "")


def _tie_within(rows: list[Any]) -> Callable[[int, int], bool]:
    """speed_tie over rows by index, for pareto_front."""
    return lambda i, j: speed_tie(rows[i], rows[j])


def percent(value: Any) -> str:
    return "" if missing(value) else f"{100 * float(value):.1f}%"


def _config_label(row: Any, varied: dict[str, bool]) -> str:
    parts = []
    if varied.get("threads"):
        parts.append(f"{int(row['threads'])} thread" + ("" if int(row["threads"]) == 1 else "s"))
    if varied.get("xnnpack"):
        parts.append("XNNPACK" if row["xnnpack"] else "no XNNPACK")
    if varied.get("batch"):
        parts.append(f"batch {int(row['batch'])}")
    return ", ".join(parts)


def _varied(rows: pd.DataFrame) -> dict[str, bool]:
    return {c: rows[c].nunique(dropna=False) > 1 for c in [*CONFIG, "run_id"]}


def _where(device_label: str, row: Any, varied: dict[str, bool]) -> str:
    config = _config_label(row, varied)
    where = f"on {device_label}" + (f", {config}" if config else "")
    return where + (f" (run {row['run_id']})" if varied.get("run_id") else "")


# ----------------------------------------------------------------------------- headlines


@dataclass
class Headline:
    """One computed sentence and the numbers in it (for JSON and for checking the sentence)."""

    kind: str                  # "variant" (against its family's baseline) or "family" (against another family)
    device: str
    emulated: bool
    model: str
    variant: str
    text: str
    reference: str | None = None        # "tweet-large fp32" for kind "family"; the baseline variant otherwise
    values: dict[str, Any] = field(default_factory=dict)


def _clean(value: Any) -> Any:
    if missing(value):
        return None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    return value


def energy_clause(row: Any) -> str:
    """", 2.9 mJ per inference" where the device measured power; nothing where it has no source."""
    energy = row.get("energy_per_inference_mj")
    return "" if missing(energy) else f", {sig(energy)} mJ per inference"


def _accuracy_clause(row: Any, delta: Any) -> str:
    if not missing(row.get("accuracy_error")) and row.get("accuracy_error"):
        return f"accuracy not measured ({row['accuracy_error']})"
    if missing(row.get("accuracy")):
        return "no eval set" if missing(row.get("accuracy_n")) else "accuracy not measured"
    if missing(delta):
        return f"{percent(row['accuracy'])} accuracy"
    return f"{points_text(delta)} pts accuracy"


def variant_headlines(rows: pd.DataFrame, device: str, emulated: bool, label: str) -> list[Headline]:
    """Per variant against its own family's baseline, in table order."""
    out = []
    varied = _varied(rows)
    records = rows.to_dict("records")  # the values iterrows gives, without a Series per row
    group_of = ["run_id", "model", *CONFIG]
    # each group's rows by variant (its first row of a variant), found once: a frame per group was most of the time
    by_variant: dict[tuple, dict[str, Any]] = {}
    for row in reversed(records):
        by_variant[tuple(row[c] for c in group_of) + (row["variant"],)] = row
    for row in records:
        base_name = row.get("baseline")
        base = None if missing(base_name) else by_variant.get(tuple(row[c] for c in group_of) + (base_name,))
        subject = f"{row['model']} {row['variant']} {_where(label, row, varied)}"
        values = {k: _clean(row.get(k)) for k in ("size_ratio", "accuracy", "accuracy_delta_pts", "agreement",
                                                   "throughput", "p50_ms", "peak_rss_mb", "model_size",
                                                   "energy_per_inference_mj")}
        if row.get("status") != "ok" or missing(row.get("throughput")):
            reason = row.get("reason")
            text = f"{subject}: {row.get('status') or 'not measured'}" + (f": {reason}" if not missing(reason) and
                                                                          reason else "")
        elif base is None or base["key"] == row["key"]:
            parts = [size_text(row["model_size"])]
            if not missing(row.get("accuracy")):
                parts.append(f"{percent(row['accuracy'])} accuracy")
            else:
                parts.append(_accuracy_clause(row, None))
            parts.append(f"{sig(row['throughput'])} inferences/s" + energy_clause(row))
            text = f"{subject}" + (" (baseline)" if base is not None else "") + ": " + ", ".join(parts)
        else:
            speed = speed_words(row["throughput"], base.get("throughput"), str(base_name), speed_tie(base, row))
            parts = [ratio_words(row.get("size_ratio")) or size_text(row["model_size"]),
                     _accuracy_clause(row, row.get("accuracy_delta_pts")),
                     f"{sig(row['throughput'])} inferences/s" + (f" ({speed})" if speed else "") + energy_clause(row)]
            if not missing(row.get("agreement")):
                parts.append(f"agrees with {base_name} on {percent(row['agreement'])}")
            text = f"{subject}: " + ", ".join(p for p in parts if p)
        out.append(Headline("variant", device, emulated, str(row["model"]), str(row["variant"]), text,
                            None if missing(base_name) else str(base_name), values))
    return out


def family_references(rows: pd.DataFrame) -> dict[tuple, Any]:
    """Per comparison group and task: the largest baseline-variant cell (fp32 for converted families) with accuracy."""
    refs: dict[tuple, Any] = {}
    usable = rows[rows["task"].notna() & rows["accuracy"].notna() & (rows["variant"] == rows["baseline"])
                  & rows["model_size"].notna()]
    # every row's group and task as a tuple, matched in Python as `rows[c] == v` would (a missing value matches
    # nothing): six frame filters per group were most of the time of this section on a big report
    keys = list(zip(*(rows[c].tolist() for c in [*GROUP, "task"])))
    models = rows["model"].tolist()
    for key, group in usable.groupby([*GROUP, "task"], sort=False, dropna=False):
        families = {m for k, m in zip(keys, models)
                    if not pd.isna(m) and all(not pd.isna(x) and x == v for x, v in zip(k, key))}
        if len(families) < 2:
            continue  # one family: nothing to compare across
        fp32 = group[group["variant"] == "fp32"]
        pool = fp32 if not fp32.empty else group
        refs[key] = pool.loc[pool["model_size"].astype(float).idxmax()]
    return refs


def family_headlines(rows: pd.DataFrame, evals: dict[tuple[str, str], Measured], device: str, emulated: bool,
                     label: str) -> list[Headline]:
    """Every variant of a smaller family against the largest fp32 model of the same task (teacher vs student)."""
    out = []
    varied = _varied(rows)
    for key, ref in family_references(rows).items():
        cands = rows[(rows["task"] == key[-1]) & (rows["model"] != ref["model"])]
        for c, v in zip(GROUP, key[:-1]):
            cands = cands[cands[c] == v]
        ref_pred = evals.get((ref["run_id"], ref["key"]), Measured(None, None)).predictions
        reference = f"{ref['model']} {ref['variant']}"
        for _, row in cands.iterrows():
            if row.get("status") != "ok" or missing(row.get("throughput")) or missing(row.get("accuracy")):
                continue
            size_ratio = float(ref["model_size"]) / float(row["model_size"])
            delta = 100.0 * (float(row["accuracy"]) - float(ref["accuracy"]))
            pred = evals.get((row["run_id"], row["key"]), Measured(None, None)).predictions
            agreement = None
            if pred and ref_pred and len(pred) == len(ref_pred):
                agreement = float(np.mean(np.asarray(pred) == np.asarray(ref_pred)))
            speed = speed_words(row["throughput"], ref.get("throughput"), tie=speed_tie(ref, row))
            parts = [ratio_words(size_ratio), f"{points_text(delta)} pts accuracy",
                     f"{sig(row['throughput'])} inferences/s" + (f" ({speed})" if speed else "") + energy_clause(row)]
            if agreement is not None:
                parts.append(f"agrees with {reference} on {percent(agreement)}")
            text = f"{row['model']} {row['variant']} vs {reference} {_where(label, row, varied)}: " + ", ".join(parts)
            values = {"size_ratio": size_ratio, "accuracy": _clean(row["accuracy"]),
                      "reference_accuracy": _clean(ref["accuracy"]), "accuracy_delta_pts": delta,
                      "agreement": agreement, "throughput": _clean(row["throughput"]),
                      "reference_throughput": _clean(ref.get("throughput")), "p50_ms": _clean(row.get("p50_ms")),
                      "model_size": _clean(row["model_size"]), "reference_size": _clean(ref["model_size"]),
                      "energy_per_inference_mj": _clean(row.get("energy_per_inference_mj"))}
            out.append(Headline("family", device, emulated, str(row["model"]), str(row["variant"]), text, reference,
                                values))
    return out


def headlines(data: ReportData) -> list[Headline]:
    """Every headline of a report: per device, the variants against their baselines, then across families."""
    from benchbot.report.data import device_label

    frame = tradeoff_frame(data)
    evals = measured_evals(data)
    out: list[Headline] = []
    for device, emulated in data.devices():
        rows = frame[(frame["device"] == device) & (frame["emulated"].fillna(False).astype(bool) == emulated)]
        label = device_label(device, emulated)
        out.extend(variant_headlines(rows, device, emulated, label))
        out.extend(family_headlines(rows, evals, device, emulated, label))
    return out


# ----------------------------------------------------------------------------- table


TABLE_HEADERS = ["model", "variant", "size", "vs baseline", "accuracy", "Δ pts", "agreement", "p50 ms", "inf/s",
                 "peak RSS MB"]


def table_rows(rows: pd.DataFrame) -> tuple[list[str], list[list[str]], list[str]]:
    """Headers, formatted rows and numbered footnotes (why accuracy is missing) of one device's table."""
    varied = _varied(rows)
    headers = list(TABLE_HEADERS)
    config = any(varied[c] for c in CONFIG) or varied["run_id"]
    if config:
        headers.insert(2, "config")
    body: list[list[str]] = []
    reasons: dict[str, list[str]] = {}
    for _, r in rows.iterrows():
        if r.get("status") != "ok" and missing(r.get("p50_ms")):
            acc = r.get("status") or ""
        elif not missing(r.get("accuracy")):
            acc = percent(r["accuracy"])
        elif not missing(r.get("accuracy_error")) and r.get("accuracy_error"):
            message = str(r["accuracy_error"])
            if message not in reasons:
                reasons[message] = []
            reasons[message].append(f"{r['model']} {r['variant']}")
            acc = f"error [{list(reasons).index(message) + 1}]"
        else:
            acc = "—" if missing(r.get("accuracy_n")) else "not measured"
        is_base = not missing(r.get("baseline")) and r["variant"] == r["baseline"]
        line = [str(r["model"]), str(r["variant"]), size_text(r.get("model_size")),
                "baseline" if is_base else ratio_words(r.get("size_ratio")), acc,
                "" if missing(r.get("accuracy_delta_pts")) or is_base else points_text(r["accuracy_delta_pts"]),
                "" if is_base else percent(r.get("agreement")),
                sig(r.get("p50_ms"), 3), sig(r.get("throughput"), 3), sig(r.get("peak_rss_mb"), 3)]
        if config:
            cfg = _config_label(r, varied) + (f" run {r['run_id']}" if varied["run_id"] else "")
            line.insert(2, cfg.strip())
        body.append(line)
    notes = [f"{', '.join(cells)}: {message}" for message, cells in reasons.items()]
    return headers, body, notes


_NUMERIC = {"size", "vs baseline", "accuracy", "Δ pts", "agreement", "p50 ms", "inf/s", "peak RSS MB"}


def _md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    return fmt.markdown_table(headers, rows, _NUMERIC)


# ----------------------------------------------------------------------------- Pareto plot


def _marker_area(size: float, biggest: float) -> float:
    """Marker area (points²) proportional to the model's size; the biggest model gets 700."""
    return max(36.0, 700.0 * size / biggest)


def task_groups(rows: pd.DataFrame) -> list[tuple[list[str], pd.DataFrame]]:
    """Plottable cells (timed, with accuracy) split by task: one panel per set of families measured alike."""
    usable = rows[rows["p50_ms"].notna() & rows["accuracy"].notna()]
    family_task: dict[str, str] = {}
    for model, group in usable.groupby("model", sort=False):
        tasks = group["task"].dropna()
        family_task[model] = tasks.mode().iloc[0] if not tasks.empty else f"model:{model}"
    panels: dict[str, list[str]] = {}
    for model, task in family_task.items():
        panels.setdefault(task, []).append(model)
    return [(models, usable[usable["model"].isin(models)]) for models in panels.values()]


def _label_points(fig: Figure, ax: Any, xs: list[float], ys: list[float], areas: list[float], texts: list[str],
                  bold: frozenset[int] | set[int] = frozenset()) -> None:
    """Put each label next to its marker where it overlaps no other label or marker; a leader line when far."""
    from matplotlib.transforms import Bbox

    # no fig.canvas.draw() first: the limits and the layout are set, and text extents need only the renderer
    # (a draw per panel was most of a report's Pareto plots)
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]  # the Agg canvas has one
    px_per_pt = fig.dpi / 72.0
    centres = ax.transData.transform(np.column_stack([xs, ys]))
    radii = [math.sqrt(a) / 2 * px_per_pt for a in areas]
    obstacles = [Bbox.from_bounds(cx - r, cy - r, 2 * r, 2 * r) for (cx, cy), r in zip(centres, radii)]
    frame = ax.get_window_extent(renderer)
    placed: list[Any] = []

    def style(i: int) -> dict[str, Any]:  # a white backing keeps the frontier line from striking labels through
        return {"fontweight": "bold" if i in bold else "normal",
                "bbox": {"boxstyle": "round,pad=0.12", "facecolor": "white", "edgecolor": "none", "alpha": 0.85}}

    order = sorted(range(len(xs)), key=lambda i: (-ys[i], xs[i]))
    for i in order:
        r_pt = math.sqrt(areas[i]) / 2
        candidates = []
        for gap in (3, 12, 24, 38, 56, 78):
            d = r_pt + gap
            candidates += [(d, 0, "left", "center"), (-d, 0, "right", "center"), (0, d, "center", "bottom"),
                           (0, -d, "center", "top"), (d * 0.8, d * 0.8, "left", "bottom"),
                           (-d * 0.8, d * 0.8, "right", "bottom"), (d * 0.8, -d * 0.8, "left", "top"),
                           (-d * 0.8, -d * 0.8, "right", "top")]
        chosen = None
        for dx, dy, ha, va in candidates:
            far = math.hypot(dx, dy) > r_pt + 14
            text = ax.annotate(texts[i], (xs[i], ys[i]), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                               fontsize=8, color="#222222", zorder=5, **style(i),
                               arrowprops={"arrowstyle": "-", "color": "#999999", "lw": 0.6} if far else None)
            box = text.get_window_extent(renderer).expanded(1.04, 1.15)
            inside = (box.x0 >= frame.x0 and box.x1 <= frame.x1 and box.y0 >= frame.y0 and box.y1 <= frame.y1)
            clash = any(box.overlaps(b) for b in placed) or any(
                box.overlaps(o) for j, o in enumerate(obstacles) if j != i)
            if inside and not clash:
                chosen = box
                break
            text.remove()
        if chosen is None:  # crowded: the first spot that stays inside the axes, overlap or not
            dx, dy, ha, va = candidates[0]
            text = ax.annotate(texts[i], (xs[i], ys[i]), xytext=(dx, dy), textcoords="offset points", ha=ha,
                               va=va, fontsize=8, color="#222222", zorder=5, **style(i))
            chosen = text.get_window_extent(renderer)
        placed.append(chosen)


def pareto_figure(rows: pd.DataFrame, title: str) -> Figure | None:
    """p50 latency (x) against accuracy (y) for one device: a panel per task, marker area by model size,
    every model x variant labelled, the frontier as a step line. None when no cell has both numbers."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    groups = task_groups(rows)
    if not groups:
        return None
    varied = _varied(rows)
    panel_h = 4.6
    fig = Figure(figsize=(11, panel_h * len(groups) + 1.0), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(groups), 1, squeeze=False)[:, 0]
    top = 1 - 0.75 / fig.get_figheight()
    fig.subplots_adjust(left=0.08, right=0.74, top=top, bottom=0.55 / fig.get_figheight(), hspace=0.35)
    fig.suptitle(title + "\nup and to the left is better; marker area ∝ model size", fontsize=11,
                 y=1 - 0.08 / fig.get_figheight(), va="top")
    biggest = float(rows["model_size"].dropna().astype(float).max() or 1.0)
    variants = set(rows["variant"])
    all_models = list(dict.fromkeys(m for models, _ in groups for m in models))
    shape = {m: MARKERS[i % len(MARKERS)] for i, m in enumerate(all_models)}
    for ax, (models, part) in zip(axes, groups):
        xs = part["p50_ms"].astype(float).tolist()
        ys = (100 * part["accuracy"].astype(float)).tolist()
        areas = [_marker_area(float(s), biggest) if not missing(s) else 40.0 for s in part["model_size"]]
        drawn = sorted(zip(xs, ys, areas, (r for _, r in part.iterrows())), key=lambda p: -p[2])
        for x, y, a, r in drawn:  # the biggest first, so a small marker on the same spot stays visible
            ax.scatter([x], [y], s=a, marker=shape[r["model"]], color=variant_color(r["variant"], variants),
                       alpha=0.8, edgecolor="black", linewidth=0.6, zorder=3)
        lo, hi = min(xs), max(xs)
        log = lo > 0 and hi / lo > 5
        if log:
            ax.set_xscale("log")
            ax.set_xlim(lo / 1.6, hi * 1.6)
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}"))
            ax.xaxis.set_minor_locator(LogLocator(subs=(2.0, 3.0, 5.0)))
            ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _p: f"{v:g}") if hi / lo < 300 else NullFormatter())
        else:
            span = (hi - lo) or hi * 0.2 or 1.0
            ax.set_xlim(max(0.0, lo - 0.25 * span), hi + 0.3 * span)
        ylo, yhi = min(ys), max(ys)
        pad = max(1.0, 0.15 * (yhi - ylo))
        ax.set_ylim(ylo - pad, min(yhi + pad, 100.0 + 0.05 * pad))  # nothing above 100 %
        front = pareto_front(xs, ys, _tie_within([r for _, r in part.iterrows()]))
        fx = [xs[i] for i in front] + [ax.get_xlim()[1]]
        fy = [ys[i] for i in front] + [ys[front[-1]]]
        ax.step(fx, fy, where="post", color="#444444", linestyle="--", linewidth=1.1, zorder=2)
        ax.grid(which="major", alpha=0.3)
        ax.set_xlabel("p50 latency per inference (ms" + (", log scale)" if log else ")"), fontsize=9)
        ax.set_ylabel("accuracy on the eval set (%)", fontsize=9)
        n = part["accuracy_n"].dropna()
        ax.set_title(f"{', '.join(models)}" + (f"  (eval set: {int(n.max())} samples)" if not n.empty else ""),
                     loc="left", fontsize=10, fontweight="bold")
        labels = []
        for _, r in part.iterrows():
            label = f"{r['model']} {r['variant']}" if len(models) > 1 else str(r["variant"])
            config = _config_label(r, varied)
            labels.append(label + (f" ({config})" if config else ""))
        _label_points(fig, ax, xs, ys, areas, labels, set(front))
    handles = [Line2D([], [], linestyle="--", color="#444444", label="Pareto frontier\n(bold labels): no other\n"
                      "point is both faster\nand more accurate")]
    handles += [Line2D([], [], linestyle="", marker="o", markersize=8, markerfacecolor=variant_color(v, variants),
                       markeredgecolor="black", label=v) for v in sorted(variants, key=variant_key)]
    handles += [Line2D([], [], linestyle="", marker=shape[m], markersize=8, markerfacecolor="white",
                       markeredgecolor="black", label=m) for m in all_models]
    for size in _size_refs(biggest):
        handles.append(Line2D([], [], linestyle="", marker="o", markerfacecolor="#dddddd", markeredgecolor="black",
                              markersize=math.sqrt(_marker_area(size, biggest)),
                              label=f"{size / 2**20:g} MiB" if size >= 2**20 else f"{size / 1024:g} KiB"))
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.76, top), frameon=False, fontsize=9,
               labelspacing=1.1, borderpad=0.2)
    return fig


def _size_refs(biggest: float) -> list[float]:
    """Up to three round sizes (10 KiB, 50 KiB, 1 MiB, ...) for the marker-size legend, the largest near the
    biggest model and the others about 5x and 25x smaller."""
    steps = [m * 1024 * 10**e for e in range(0, 6) for m in (1, 2, 5)]
    steps += [m * 2**20 * 10**e for e in range(0, 4) for m in (1, 2, 5)]
    steps = sorted(set(steps))
    fitting = [s for s in steps if s <= biggest * 1.05]
    if not fitting:
        return [biggest]
    top = fitting[-1]
    refs = [top]
    for factor in (5, 25):
        smaller = [s for s in fitting if s <= top / factor]
        if smaller and smaller[-1] not in refs:
            refs.append(smaller[-1])
    return sorted(refs)


def write_pareto_plots(data: ReportData, frame: pd.DataFrame, formats: Sequence[str] = ("png", "svg")
                       ) -> dict[tuple[str, bool], list[Path]]:
    """pareto-<device>[-emulated].<ext> under data.plot_dir, per device that has accuracy and latency."""
    out: dict[tuple[str, bool], list[Path]] = {}
    if data.plot_dir is None:  # before importing matplotlib (~1 s): `report --no-plots` draws nothing
        return out
    from benchbot.plan import safe_name
    from benchbot.report.data import device_label
    from benchbot.report.plots import drawn_unless_unchanged

    folder = Path(data.plot_dir)
    for device, emulated in data.devices():
        rows = frame[(frame["device"] == device) & (frame["emulated"].fillna(False).astype(bool) == emulated)]
        title = f"{device_label(device, emulated)}: accuracy against latency (p50)"
        stem = f"pareto-{safe_name(device)}" + ("-emulated" if emulated else "")
        paths = drawn_unless_unchanged(folder, stem, tuple(formats), (rows.to_csv(), title),
                                       functools.partial(pareto_figure, rows, title))
        if paths:
            out[(device, emulated)] = paths
    return out


# ----------------------------------------------------------------------------- the section


def report_section(data: ReportData) -> Section | None:
    """The trade-off section of `benchbot report`; None when no run has variants or accuracy to compare."""
    from benchbot.report.data import device_label

    frame = tradeoff_frame(data)
    if frame.empty:
        return None
    compared = frame["size_ratio"].notna() & (frame["variant"] != frame["baseline"])
    if not compared.any() and frame["accuracy"].isna().all() and frame["accuracy_error"].isna().all():
        return None
    formats = tuple(getattr(data, "plot_formats", None) or ("png", "svg"))
    plots = write_pareto_plots(data, frame, formats)
    evals = measured_evals(data)
    md: list[str] = []
    parts: list[dict[str, Any]] = []  # per device, what templates/tradeoff.html.j2 shows
    exported: list[dict[str, Any]] = []
    for device, emulated in data.devices():
        rows = frame[(frame["device"] == device) & (frame["emulated"].fillna(False).astype(bool) == emulated)]
        if rows.empty:
            continue
        label = device_label(device, emulated)
        headers, body, notes = table_rows(rows)
        lines = variant_headlines(rows, device, emulated, label)
        cross = family_headlines(rows, evals, device, emulated, label)
        md += [f"### {label}", "", *_md_table(headers, body), ""]
        md += [f"- [{i}] accuracy not measured for {fmt.name(note)}" for i, note in enumerate(notes, start=1)]
        md += [""] if notes else []
        md += [f"- {fmt.name(h.text)}" for h in lines]
        placed = delegation.lines(rows)  # why fast or slow: how XNNPACK split each variant's graph
        md += ["", "Delegation (ops XNNPACK runs, partitions, what stays on built-in kernels):", ""] if placed else []
        md += [f"- {fmt.name(text)}" for text in placed]
        references = list(dict.fromkeys(h.reference for h in cross))
        for reference in references:
            md += ["", f"Across families of the same task, against the largest fp32 model ({fmt.name(reference)}):", ""]
            md += [f"- {fmt.name(h.text)}" for h in cross if h.reference == reference]
        paths = plots.get((device, emulated), [])
        if paths:
            md += ["", "Pareto plot: " + ", ".join(str(p) for p in paths)]
        md.append("")
        shown = next((p for p in paths if p.suffix == ".png"), paths[0]) if paths else None
        caption = f"{label}: accuracy against p50 latency, Pareto frontier dashed"
        parts.append({"label": label, "headers": headers, "rows": [list(zip(headers, row)) for row in body],
                      "notes": notes, "lines": [h.text for h in lines], "placed": placed,
                      "cross": [(str(r), [h.text for h in cross if h.reference == r]) for r in references],
                      "image": image_tag(shown, caption) if shown else None, "caption": caption})
        exported.append({
            "device": device, "emulated": emulated,
            "rows": [{k: _clean(v) for k, v in r.items() if k != "key"} for r in rows.to_dict("records")],
            "headlines": [{"kind": h.kind, "model": h.model, "variant": h.variant, "reference": h.reference,
                           "text": h.text, "values": h.values} for h in lines + cross],
            "plots": [str(p) for p in paths],
        })
    intro = ("Size against the family's baseline (bytes of the .tflite file), top-1 accuracy on the family's eval "
             "set measured on the device after the timed loop, its change in points and how often the variant "
             "predicts what the baseline predicts; p50 and inferences/s from the timed loop.")
    return LazyHtmlSection(
        lambda: str(render_fragment("tradeoff.html.j2", intro=intro, devices=parts, numeric=_NUMERIC)),
        title=TITLE,
        markdown="\n".join([intro, "", *md]).rstrip() + "\n",
        images=[],
        data={"devices": exported},
        name="tradeoff",
    )
