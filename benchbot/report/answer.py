"""The short answer at the top of every report: per device, which variant to ship.

For each model and thread count on a device: the fastest variant, or the variants
tied for fastest when their difference is inside the run-to-run noise (the same
rule as the relative column: `rel_tie`), and the smallest variant whose accuracy is
within a stated budget of the family's baseline. Nothing is ranked on a difference
the repetitions cannot support.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from benchbot.report.data import ReportData, speed_tie  # against the fastest, whatever --baseline says
from benchbot.report.fmt import missing, name

if TYPE_CHECKING:
    import pandas as pd

#: Default accuracy budget, in percentage points below the family's baseline variant.
MAX_ACCURACY_DROP = 1.0


@dataclass
class GroupAnswer:
    """One model at one thread count (and delegate/batch setting) on one device."""

    device: str
    emulated: bool
    run_id: str
    model: str
    threads: int
    fastest: list[str]                 # one variant, or several tied within the noise
    fastest_p50_ms: float | None
    ranked: bool                       # False: no repetition-level evidence (one repetition each)
    smallest_within_budget: str | None
    budget_pts: float
    accuracy_known: bool
    setting: str = ""                  # " no-xnnpack", " batch 4" where those vary
    notes: list[str] = field(default_factory=list)
    left_out: dict[str, str] = field(default_factory=dict)  # variant -> why it is not ranked (its status)

    def sentence(self) -> str:
        where = f"{name(self.model)} t{self.threads}{self.setting}"
        unranked = ", ".join(f"{name(v)} ({why})" for v, why in self.left_out.items())
        if not self.fastest:
            return f"{where}: no variant finished whole" + (f": {unranked}" if unranked else "")
        return self._ranked_sentence(where) + (f"; not ranked: {unranked}" if unranked else "")

    def _ranked_sentence(self, where: str) -> str:
        if len(self.fastest) == 1:
            speed = f"fastest {name(self.fastest[0])}"
        else:
            speed = (f"tied for fastest: {', '.join(name(v) for v in self.fastest)} "
                     "(difference inside the run-to-run noise)")
        if not self.ranked:
            speed += " (one repetition: no run-to-run evidence)"
        if not self.accuracy_known:
            size = "no eval set, so no accuracy budget"
        elif self.smallest_within_budget:
            size = (f"smallest within {self.budget_pts:g} pt of the baseline's accuracy: "
                    f"{name(self.smallest_within_budget)}")
        else:
            size = f"no variant within {self.budget_pts:g} pt of the baseline's accuracy"
        return f"{where}: {speed}; {size}"


def _setting(row: Any, varies: dict[str, bool]) -> str:
    extra = ""
    if varies.get("xnnpack") and not bool(row["xnnpack"]):
        extra += " no-xnnpack"
    if varies.get("batch") and int(row["batch"]) != 1:
        extra += f" batch {int(row['batch'])}"
    return extra


#: The summary columns an answer reads.
_READ = ("run_id", "model", "threads", "xnnpack", "batch", "variant", "status", "p50_ms", "rep_p50_ms", "reps_ok",
         "accuracy_delta_pts", "model_size")


def answers(data: ReportData, max_accuracy_drop: float = MAX_ACCURACY_DROP) -> list[GroupAnswer]:
    """The per-device answer for every model, thread count and setting of the report."""
    summary: pd.DataFrame = data.summary
    if summary.empty or "p50_ms" not in summary:
        return []
    varies = {c: c in summary and summary[c].nunique(dropna=False) > 1 for c in ("xnnpack", "batch")}
    out: list[GroupAnswer] = []
    for device, emulated in data.devices():
        rows = data.device_rows(device, emulated)
        rows = rows[[c for c in _READ if c in rows]]  # filtered per group below: the columns read, not ~90
        for key, group in rows.groupby(["run_id", "model", "threads", "xnnpack", "batch"], sort=False):
            run_id, model, threads = key[0], key[1], key[2]
            finished = (group["status"] == "ok") & group["p50_ms"].notna()
            ok = group[finished]
            answer = GroupAnswer(device=device, emulated=emulated, run_id=str(run_id), model=str(model),
                                 threads=int(threads), fastest=[], fastest_p50_ms=None, ranked=False,
                                 smallest_within_budget=None, budget_pts=max_accuracy_drop, accuracy_known=False,
                                 setting=_setting(group.iloc[0], varies),
                                 left_out={str(v): str(st) for v, st in zip(group.loc[~finished, "variant"],
                                                                            group.loc[~finished, "status"])})
            if not ok.empty:
                best = ok.loc[ok["p50_ms"].astype(float).idxmin()]
                answer.fastest_p50_ms = float(best["p50_ms"])
                # the few columns read, as lists, and masks as arrays: a Series per row (iterrows) and a filtered
                # copy of every column were most of the answer's time on a big report; the values are the same
                variants = ok["variant"].tolist()
                medians = ok["rep_p50_ms"].tolist() if "rep_p50_ms" in ok else [None] * len(ok)
                tied = [v for label, v, m in zip(ok.index, variants, medians)
                        if label == best.name or speed_tie(best, {"rep_p50_ms": m})]
                answer.fastest = [str(v) for v in tied]
                reps_ok = ok["reps_ok"].tolist() if "reps_ok" in ok else [None] * len(ok)
                answer.ranked = all(int(n or 0) >= 2 for n in reps_ok)
                if "accuracy_delta_pts" in ok and ok["accuracy_delta_pts"].notna().any():
                    answer.accuracy_known = True
                    delta = ok["accuracy_delta_pts"].astype(float).to_numpy()
                    within = ~np.isnan(delta) & (delta >= -max_accuracy_drop)
                    if within.any() and "model_size" in ok:
                        sizes = ok["model_size"].astype(float)[within]
                        answer.smallest_within_budget = str(ok.loc[sizes.idxmin(), "variant"])
            out.append(answer)
    return out


def to_markdown(items: list[GroupAnswer], multi_run: bool = False) -> str:
    """A bullet list per device, for the terminal (rich Markdown), --format md and the HTML page."""
    if not items:
        return ""
    lines: list[str] = []
    current = None
    for item in items:
        label = name(f"{item.device} (emulated)" if item.emulated else item.device)
        if multi_run:
            label += f", run {item.run_id}"
        if label != current:
            if current is not None:
                lines.append("")
            lines.append(f"**{label}**")
            lines.append("")
            current = label
        lines.append(f"- {item.sentence()}")
    return "\n".join(lines) + "\n"


def to_json(items: list[GroupAnswer]) -> list[dict[str, Any]]:
    out = []
    for item in items:
        body = asdict(item)
        body["sentence"] = item.sentence()
        if missing(body.get("fastest_p50_ms")):
            body["fastest_p50_ms"] = None
        out.append(body)
    return out
