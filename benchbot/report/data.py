"""What every report output shares: the runs, their summary with relative columns, notes, fingerprints.

Built once per `benchbot report` (or notebook cell) and handed to the table, the
exports, the HTML page and the optional sections, so each statistic is computed
in one place. Loop samples are split per cell with a single groupby, never by
filtering the whole sample frame once per cell.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from benchbot import stats
from benchbot.errors import BenchbotError
from benchbot.report.fmt import missing
from benchbot.vocab import CELL_KEY, variant_key

if TYPE_CHECKING:
    from benchbot.summary import Run

#: Variants compared by the relative column share all of these: one run, one device (real or emulated), one model,
#: one thread count, the same delegate and batch. Emulated cells are never ranked against real hardware.
RELATIVE_GROUP = ["run_id", "device", "emulated", "model", "threads", "xnnpack", "batch"]
RELATIVE_COLUMNS = ["rel_baseline", "rel_ratio", "rel_ci_lo", "rel_ci_hi", "rel_p", "rel_tie"]
#: The columns that order a device's rows (`ReportData.device_rows`).
_ROW_ORDER = ["model", "threads", "xnnpack", "batch", "run_id", "variant"]


def cell_id(row: Any) -> tuple:
    return tuple(row[c] for c in CELL_KEY)


def loop_samples(runs: list[Run]) -> dict[tuple, np.ndarray]:
    """Loop-phase latencies (ms) of every cell of every run (all its repetitions, in repetition order),
    keyed by CELL_KEY values. For distributions; statistics across runs use the repetitions' medians.

    Built from each attempt's own (cached) samples rather than by grouping the run-wide frame,
    which halves the peak memory of a report on a large run.
    """
    out: dict[tuple, np.ndarray] = {}
    for run in runs:
        for cell in run.cells:
            parts = [attempt.sample_rows().latency("loop") for attempt in run.repetitions(cell.key).values()]
            loop = np.concatenate(parts) if parts else np.empty(0)
            if loop.size:
                values = {"run_id": run.run_id, "device": cell.device, "model": cell.model, "variant": cell.variant,
                          "threads": cell.threads, "xnnpack": cell.xnnpack, "batch": cell.batch}
                out[tuple(values[k] for k in CELL_KEY)] = loop / 1e6
    return out


class LoopSamples(Mapping[tuple, np.ndarray]):
    """`loop_samples(runs)`, built on first use: no report output reads it (sections may), and building it
    was ~0.1 s and 16 MiB of a 200-cell `benchbot report`."""

    def __init__(self, runs: list[Run]) -> None:
        self._runs = runs
        self._data: dict[tuple, np.ndarray] | None = None

    def _built(self) -> dict[tuple, np.ndarray]:
        if self._data is None:
            self._data = loop_samples(self._runs)
        return self._data

    def __getitem__(self, key: tuple) -> np.ndarray:
        return self._built()[key]

    def __iter__(self) -> Iterator[tuple]:
        return iter(self._built())

    def __len__(self) -> int:
        return len(self._built())


def _choose_baseline(group: pd.DataFrame, baseline: str) -> Any:
    usable = group[group["p50_ms"].notna()] if "p50_ms" in group else group.iloc[0:0]
    usable = usable[usable["status"] == "ok"]  # a failed or cut-short cell is no reference
    if usable.empty:
        return None
    if baseline == "fastest":
        return usable.loc[usable["p50_ms"].astype(float).idxmin()]
    match = usable[usable["variant"] == baseline]
    return match.iloc[0] if not match.empty else None


def rep_medians(row: Any) -> list[float]:
    """A summary row's per-repetition medians (ms); empty when it has none."""
    values = row.get("rep_p50_ms") if hasattr(row, "get") else None
    return list(values) if isinstance(values, (list, tuple, np.ndarray)) else []


def speed_tie(a: Any, b: Any) -> bool:
    """Whether two summary rows' latencies differ only within the noise of their repetitions: the interval
    of the ratio (stats.ratio_of_repetitions) holds 1. False when either has fewer than two repetitions:
    nothing is known then, and callers say so instead of calling it a tie."""
    estimate = stats.ratio_of_repetitions(rep_medians(a), rep_medians(b))
    return estimate is not None and estimate.tie


def add_relative_columns(summary: pd.DataFrame, samples: dict[tuple, np.ndarray] | None = None,
                         baseline: str = "fastest") -> pd.DataFrame:
    """rel_ratio = p50 of the cell / p50 of the baseline cell of its group, from their repetitions.

    The interval and p-value are `stats.ratio_of_repetitions` (Welch's t on the log repetition
    medians); `rel_tie` is true where that interval holds 1 (None without an interval), so a
    difference inside the noise is called a tie, never a ranking. Failed and incomplete cells get
    no ratio. `baseline` is "fastest" (the lowest p50 in each group) or a variant name; groups
    without that variant get no relative value.
    """
    frame = summary.copy()
    for column in RELATIVE_COLUMNS:
        frame[column] = np.nan if column not in ("rel_baseline", "rel_tie") else None
    frame["rel_baseline"] = frame["rel_baseline"].astype(object)
    frame["rel_tie"] = frame["rel_tie"].astype(object)
    if frame.empty:
        return frame
    if baseline != "fastest" and baseline not in set(frame["variant"]):
        known = ", ".join(sorted(set(frame["variant"])))
        raise BenchbotError(f"--baseline {baseline}: no such variant in this report (variants: {known}; "
                            "or use --baseline fastest)")
    # grouped, chosen and walked on the few columns read: filtering and iterating ~90 columns per group was most
    # of this function's time on a big report
    narrow = frame[RELATIVE_GROUP + [c for c in ("p50_ms", "status", "variant", "rep_p50_ms") if c in frame]]
    for _, group in narrow.groupby(RELATIVE_GROUP, sort=False, dropna=False):
        base = _choose_baseline(group, baseline)
        if base is None:
            continue
        for index, row in group.iterrows():
            if missing(row.get("p50_ms")) or row.get("status") != "ok":  # failed/incomplete: no ratio
                continue
            frame.at[index, "rel_baseline"] = base["variant"]
            if index == base.name:
                frame.at[index, "rel_ratio"] = frame.at[index, "rel_ci_lo"] = frame.at[index, "rel_ci_hi"] = 1.0
                continue
            estimate = stats.ratio_of_repetitions(rep_medians(base), rep_medians(row))
            frame.at[index, "rel_ratio"] = (estimate.ratio if estimate
                                            else float(row["p50_ms"]) / float(base["p50_ms"]))
            frame.at[index, "rel_tie"] = estimate.tie if estimate else None
            if estimate is not None and estimate.lo is not None:
                frame.at[index, "rel_ci_lo"], frame.at[index, "rel_ci_hi"] = estimate.lo, estimate.hi
                frame.at[index, "rel_p"] = estimate.p_value
    return frame


def device_label(device: str, emulated: bool) -> str:
    return f"{device} (emulated)" if emulated else device


def fingerprint_line(fp: dict[str, Any]) -> str:
    """One line describing a device as its agent reported it."""
    parts = [str(fp.get("model") or fp.get("cpu") or "unknown CPU")]
    if fp.get("arch"):
        parts[0] += f" {fp['arch']}"
    if fp.get("cores"):
        parts.append(f"{fp['cores']} cores")
    if fp.get("os"):
        parts.append(str(fp["os"]))
    if fp.get("python"):
        parts.append(f"Python {fp['python']}")
    if fp.get("runtime"):
        parts.append(f"{fp['runtime']} {fp.get('runtime_version') or ''}".strip())
    sources = fp.get("power_sources") or []
    if sources:  # the one the sampler reads is first
        parts.append(f"power: {sources[0].get('total')} ({sources[0].get('kind')})")
    return ", ".join(parts)


@dataclass
class ReportData:
    runs: list[Run]
    summary: pd.DataFrame
    #: Loop latencies (ms) per cell, keyed by CELL_KEY values (`loop_samples`; a LoopSamples builds them when read).
    samples: Mapping[tuple, np.ndarray]
    baseline: str = "fastest"
    notes: list[str] = field(default_factory=list)
    #: Where plots of this report go (sections may write their images here); None when plots are off.
    plot_dir: Path | None = None
    #: The file formats of those plots ("png", "svg").
    plot_formats: tuple[str, ...] = ("png", "svg")
    #: The short answer per device (benchbot.report.answer), shown at the top of every report.
    answers: list[Any] = field(default_factory=list)
    #: The accuracy budget of that answer, in points below the family's baseline.
    max_accuracy_drop: float = 1.0

    @property
    def multi_run(self) -> bool:
        if "run_id" in self.summary and not self.summary.empty:
            return self.summary["run_id"].nunique() > 1
        return len(self.runs) > 1

    def devices(self) -> list[tuple[str, bool]]:
        """(device, emulated) pairs in report order: real hardware first, then by name."""
        if self.summary.empty:
            return []
        pairs = {(d, bool(e)) for d, e in zip(self.summary["device"], self.summary["emulated"].fillna(False))}
        return sorted(pairs, key=lambda p: (p[1], p[0]))

    def device_rows(self, device: str, emulated: bool) -> pd.DataFrame:
        """The device's rows in table order. The order is found on the key columns alone and the whole rows
        taken once: filtering, sorting and dropping ~90 columns each time was most of its cost (it runs
        once per device for the answer, the table and the trade-off section)."""
        s = self.summary
        where = np.flatnonzero(((s["device"] == device) & (s["emulated"].fillna(False).astype(bool) == emulated))
                               .to_numpy(dtype=bool))
        keys = s[_ROW_ORDER].iloc[where]
        keys = keys.assign(_variant_rank=[variant_key(str(v))[0] for v in keys["variant"]], _at=where)
        keys = keys.sort_values(["model", "threads", "xnnpack", "batch", "run_id", "_variant_rank", "variant"],
                                ascending=[True, True, False, True, True, True, True], kind="stable")
        return s.take(keys["_at"].to_numpy())

    def fingerprints(self, device: str, emulated: bool) -> list[tuple[str, dict[str, Any]]]:
        """(run id, fingerprint) of this device in every run that has it."""
        out = []
        for run in self.runs:
            info = run.manifest.get("devices", {}).get(device)
            if info is None or bool(info.get("emulated")) != emulated:
                continue
            fp = run.fingerprints.get(device)
            if fp:
                out.append((run.run_id, fp))
        return out

    def run_states(self) -> list[dict[str, Any]]:
        return [{"run_id": r.run_id, "complete": r.complete, "state": r.state, "state_words": r.state_words(),
                 "folder": str(r.folder), "created": r.manifest.get("created"), "devices": r.fingerprints}
                for r in self.runs]


def report_notes(data: ReportData) -> list[str]:
    notes = []
    devices = data.devices()
    emulated = sorted({d for d, e in devices if e})
    real = sorted({d for d, e in devices if not e})
    if emulated and real:
        notes.append(
            f"This report mixes emulated devices ({', '.join(emulated)}) with real hardware ({', '.join(real)}). "
            "Emulated latencies measure QEMU on the host, not the device: they are never ranked against real "
            "hardware, and relative columns compare variants only within one device."
        )
    elif emulated:
        notes.append(f"Every device here is emulated ({', '.join(emulated)}): latencies measure QEMU on the host "
                     "and say nothing about real hardware speed; compare variants only with each other.")
    if data.multi_run:
        seen: dict[tuple[str, bool], list[str]] = {}
        for run_id, device, emu in data.summary[["run_id", "device", "emulated"]].drop_duplicates().itertuples(
                index=False):
            seen.setdefault((device, bool(emu)), []).append(run_id)
        for (device, emu), run_ids in sorted(seen.items()):
            if len(run_ids) > 1:
                notes.append(f"{device_label(device, emu)} appears in runs {', '.join(run_ids)}; rows keep their run "
                             "id and relative columns compare variants within one run.")
    for run in data.runs:
        if run.state == "running":
            notes.append(f"Run {run.run_id} is still being written (benchbot pid {(run.writer or {}).get('pid')}): "
                         "its figures are those stored so far, and cells still to come show as not finished.")
        if run.state == "incomplete":
            notes.append(f"Run {run.run_id} is incomplete: some cells did not finish (see the failures below).")
        if damaged := len(run.damaged()):
            notes.append(f"Run {run.run_id} has {damaged} repetition(s) whose stored samples or events are not what "
                         f"was written (flag D, see below); their cells are not ranked. `benchbot run --resume "
                         f"{run.run_id}` measures them again.")
        if run.log_damage:
            notes.append(f"Run {run.run_id}: {run.log_damage}; what those lines said (a device's fingerprint, a "
                         "repetition's median, the run's end) is lost.")
    if data.baseline != "fastest" and "p50_ms" in data.summary:
        lacking = data.summary[data.summary["rel_baseline"].isna() & data.summary["p50_ms"].notna()]
        if not lacking.empty:
            groups = sorted({f"{d} {m} t{t}" for d, m, t in zip(lacking["device"], lacking["model"],
                                                                 lacking["threads"])})
            notes.append(f"No {data.baseline} variant to compare against for: {', '.join(groups[:8])}"
                         + (" ..." if len(groups) > 8 else ""))
    return notes
