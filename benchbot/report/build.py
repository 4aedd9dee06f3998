"""Build a report's shared data: the runs' summaries with relative columns, notes and the answer.

Its own module so that the answer (which reads ReportData) and the data (which the answer reads)
do not import each other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from benchbot.errors import BenchbotError
from benchbot.report.answer import answers
from benchbot.report.data import LoopSamples, ReportData, add_relative_columns, report_notes
from benchbot.vocab import CELL_KEY

if TYPE_CHECKING:
    from benchbot.summary import Run


def build_report(runs: list[Run], baseline: str = "fastest", max_accuracy_drop: float = 1.0) -> ReportData:
    if not max_accuracy_drop >= 0:
        raise BenchbotError(f"--max-accuracy-drop must be 0 or more points, got {max_accuracy_drop}")
    samples = LoopSamples(runs)  # read by sections only, if at all: built when first read
    frames = [r.summary for r in runs if not r.summary.empty]
    summary = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=CELL_KEY + ["emulated"])
    if "emulated" in summary:
        summary["emulated"] = summary["emulated"].fillna(False).astype(bool)
    summary = add_relative_columns(summary, baseline=baseline)
    data = ReportData(runs, summary, samples, baseline, max_accuracy_drop=max_accuracy_drop)
    data.notes = report_notes(data)
    data.answers = answers(data, max_accuracy_drop)
    return data
