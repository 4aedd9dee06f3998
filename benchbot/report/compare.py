"""Run B against run A, cell by cell, on repetition-level evidence: a ratio with its interval, a verdict.

Cells match on device (real or emulated), model, variant, threads, XNNPACK and
batch. Each cell is summarised by its repetitions' medians (one agent process
each); the ratio B/A is the ratio of their geometric means, with a 95 % interval
and p-value from Welch's t-test on the log medians (`stats.ratio_of_repetitions`,
scipy.stats.ttest_ind). A cell is "slower" only when the whole interval lies above
the factor (default 1.05): B is slower by more than the factor beyond reasonable
doubt; "faster" symmetrically (the interval below 1/factor). Everything else is
"not significant". Thousands of samples from one process cannot fake significance
here, so identical code on the same machine stays quiet at the default factor.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from benchbot import history, stats
from benchbot.errors import BenchbotError
from benchbot.report import fmt
from benchbot.report.data import device_label, fingerprint_line, rep_medians
from benchbot.vocab import MATCH_KEY, cell_label

if TYPE_CHECKING:
    from benchbot.summary import Run

CONFIDENCE = 0.95
MATCH = MATCH_KEY
FINGERPRINT_KEYS = ("model", "cpu", "arch", "cores", "os", "python", "runtime", "runtime_version")


# ----------------------------------------------------------------------------- comparing runs


@dataclass
class CellComparison:
    device: str
    emulated: bool
    model: str
    variant: str
    threads: int
    xnnpack: bool
    batch: int
    reps_a: int                  # repetitions (agent processes) behind each side
    reps_b: int
    p50_a_ms: float
    p50_b_ms: float
    ratio: float                 # B / A, ratio of the geometric means of the repetition medians
    ratio_ci_lo: float | None    # 95 % interval (None: a side has one repetition)
    ratio_ci_hi: float | None
    p_value: float | None        # Welch's t on the log repetition medians
    verdict: str                 # slower, faster, not significant
    flags_a: str = ""
    flags_b: str = ""
    note: str = ""
    run_sd: float | None = None  # the device's run-to-run spread added to the interval (two runs only)
    run_sd_runs: int | None = None  # the runs it was learned from; 0: assumed (stats.ASSUMED_RUN_SPREAD)

    def label(self) -> str:
        return _label(tuple(getattr(self, c) for c in MATCH))


@dataclass
class Comparison:
    run_a: str
    run_b: str
    factor: float
    confidence: float
    cells: list[CellComparison] = field(default_factory=list)
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    no_data: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def slower(self) -> list[CellComparison]:
        return [c for c in self.cells if c.verdict == "slower"]

    @property
    def faster(self) -> list[CellComparison]:
        return [c for c in self.cells if c.verdict == "faster"]


def verdict(lo: float | None, hi: float | None, factor: float) -> str:
    """slower: the ratio's whole interval is above the factor; faster: below 1/factor; else not significant."""
    if lo is None or hi is None:
        return "not significant"
    if lo > factor:
        return "slower"
    if hi < 1.0 / factor:
        return "faster"
    return "not significant"


def judge(ma: list[float], mb: list[float], factor: float, confidence: float = CONFIDENCE,
          spread: stats.RunSpread | None = None) -> tuple[stats.RatioEstimate, str, str]:
    """The gate's rule for one cell from its repetition medians: (the ratio B/A, the verdict, a note).

    A side beyond the factor is not called slower or faster when the two sides are one mixture of two
    speed modes at the same speeds (`stats.speed_mix`): then they differ only in how many processes
    landed in each mode, which moves between runs of identical code, and the note says so.
    """
    estimate = stats.ratio_of_repetitions(ma, mb, confidence, spread)
    if estimate is None:
        raise ValueError("a side has no repetition medians")
    called = verdict(estimate.lo, estimate.hi, factor)
    if called == "not significant":
        beyond = estimate.ratio > factor or estimate.ratio < 1.0 / factor
        if beyond and estimate.lo is not None and estimate.hi is not None:
            # not the same as "no change": the estimate is past the factor, the evidence too thin to say so
            return estimate, called, INCONCLUSIVE
        return estimate, called, ""
    mix = stats.speed_mix(ma, mb, factor)
    if mix is None:
        return estimate, called, ""
    decimals = fmt.latency_decimals(mix.fast_ms)
    return estimate, "not significant", (
        f"speed modes {fmt.fixed(mix.fast_ms, decimals)}/{fmt.fixed(mix.slow_ms, decimals)} ms: "
        f"A {mix.fast_a} fast + {mix.slow_a} slow, B {mix.fast_b} + {mix.slow_b}, at the same speeds; only the "
        "share moved")


#: The note of a cell whose ratio is beyond the factor while its interval still reaches inside it.
INCONCLUSIVE = "inconclusive: B/A is past the factor, its interval not wholly"


def _label(key: tuple) -> str:
    device, emulated, model, variant, threads, xnnpack, batch = key
    return f"{device_label(device, emulated)} {cell_label(model, variant, threads, xnnpack, batch)}"


def _rows(run: Run) -> dict[tuple, Any]:
    summary = run.summary
    if summary.empty:
        return {}
    out = {}
    for _, r in summary.iterrows():
        out[tuple(bool(r[c]) if c in ("emulated", "xnnpack") else r[c] for c in MATCH)] = r
    return out


SpreadFor = Callable[[Any, Any], "stats.RunSpread | None"]


def compare(a: Run, b: Run, factor: float = 1.05, confidence: float = CONFIDENCE) -> Comparison:
    """Match the cells of two runs and judge each one (B against A) on its repetitions.

    Two runs also differ by whatever state the device was in during each (issue 10): a shared host
    running the whole of one run slower reads as a difference in every cell. So each cell's interval
    adds the device's run-to-run spread, learned from the other cells of these two runs and from the
    device's other runs in B's results folder (`benchbot.history`), never from the cell being judged.
    """
    result = Comparison(a.run_id, b.run_id, _checked_factor(factor), confidence)
    spread_for, basis = run_spreads(a, b)
    _judge(result, _rows(a), _rows(b), same_model_expected=True, spread_for=spread_for)
    result.notes = _notes(a, b, result) + basis(result)
    return result


def run_spreads(a: Run, b: Run) -> tuple[SpreadFor, Callable[[Comparison], list[str]]]:
    """(spread of a cell's device without that cell, notes on where the spreads came from)."""
    own = [history.from_summary(a)] + ([] if a.folder.resolve() == b.folder.resolve() else [history.from_summary(b)])
    others = history.neighbours(b.folder, max(a.run_id, b.run_id), exclude={a.run_id, b.run_id})
    runs = own + others
    fingerprints = b.fingerprints

    by_device: dict[str, Any] = {}  # each device's cells across the runs, gathered once for all its cells

    def spread_for(row_a: Any, row_b: Any) -> stats.RunSpread | None:
        device = str(row_b["device"])
        if device not in by_device:
            by_device[device] = history.device_groups(device, fingerprints.get(device), runs)
        groups = by_device[device]
        judged = [history.identity(device, str(r.get("model_sha256") or ""), int(r["threads"]),
                                   bool(r["xnnpack"]), int(r["batch"])) for r in (row_a, row_b)]
        pooled = history.spread(device, fingerprints.get(device), runs, leave_out=judged, groups=groups)
        # the cell's own other runs, when they show it moving more; never A and B themselves (positions 0, 1)
        found = history.cell_spread(device, fingerprints.get(device), runs, judged, pooled, skip_runs=range(len(own)),
                                    groups=groups)
        # nothing to learn from: the spread a device's first run assumes, not none (the report does the same)
        return found if found is not None else stats.ASSUMED_RUN_SPREAD

    def basis(result: Comparison) -> list[str]:
        notes = []
        assumed = f"{100 * stats.ASSUMED_RUN_SPREAD.sd:.1f} %"
        for device in sorted({c.device for c in result.cells}):
            mine = [c for c in result.cells if c.device == device]
            used = sorted(c.run_sd for c in mine if c.run_sd is not None and c.run_sd_runs)
            if not used:
                notes.append(f"{device}: no other cell was measured in two of its runs, so the intervals assume a "
                             f"run-to-run spread of {assumed} (a shift of the whole device between the runs "
                             "reads as noise up to about that size). Compare inside one run (--models OLD,NEW) to "
                             "judge without it.")
                continue
            size = f"{100 * used[0]:.1f} %" + (f" to {100 * used[-1]:.1f} %" if used[-1] - used[0] >= 5e-4 else "")
            missing = sum(1 for c in mine if not c.run_sd_runs)
            where = f"these two runs and {len(others)} other run(s) in the results folder"
            added = (f"the intervals add a run-to-run spread of {size}, learned for each cell from the device's "
                     f"other cells in {where}" if used[-1] >= 5e-4 else
                     "the intervals add no run-to-run spread: the device's other cells moved no more across "
                     f"{where} than their repetitions do")
            notes.append(f"{device}: {added}" + (f"; {missing} cell(s) had none to learn from and assume {assumed}"
                                                 if missing else "") + ".")
        return notes

    return spread_for, basis


def compare_models(run: Run, model_a: str, model_b: str, factor: float = 1.05,
                   confidence: float = CONFIDENCE) -> Comparison:
    """Model B against model A inside one run, cell by cell (same device, variant, threads, XNNPACK, batch).

    The honest A/B: both models' repetitions ran interleaved in the same shuffled rounds on the same
    device, so the machine's slow drift (thermal state, a shared host's other tenants) lands on both
    sides alike, which two runs made at different times cannot promise.
    """
    models = set(run.summary["model"]) if not run.summary.empty else set()
    for name in (model_a, model_b):
        if name not in models:
            known = ", ".join(sorted(str(m) for m in models)) or "none"
            raise BenchbotError(f"run {run.run_id} has no model '{name}' (its models: {known})")
    if model_a == model_b:
        raise BenchbotError(f"compare two different models of run {run.run_id}, not '{model_a}' with itself")
    result = Comparison(f"{run.run_id}:{model_a}", f"{run.run_id}:{model_b}", _checked_factor(factor), confidence)
    pair = f"{model_b} vs {model_a}"

    def rows(model: str) -> dict[tuple, Any]:
        # the model name becomes the pair's name so that the two sides match on everything else
        return {key[:2] + (pair,) + key[3:]: row for key, row in _rows(run).items() if key[2] == model}

    _judge(result, rows(model_a), rows(model_b), same_model_expected=False)
    if any(c.emulated for c in result.cells):
        result.notes.append("Emulated cells compare QEMU on the host with itself: useful for catching regressions "
                            "in a model, not for device speed.")
    result.notes += _verdict_notes(result)
    return result


SPEED_MIX_NOTE = ("Cells noted 'speed modes' are beyond the factor only because their processes ran in one of two "
                  "modes at the same two speeds on both sides, in other shares; the share moves between runs of "
                  "identical code, so they are not called. A change that only sends more processes into the slow "
                  "mode would look the same: compare inside one run (--models OLD,NEW) with more repetitions to "
                  "tell.")


INCONCLUSIVE_NOTE = ("Cells noted 'inconclusive' are not called, but not shown unchanged either: their B/A is past the "
                     "factor while the interval reaches inside it. More repetitions (--repetitions) narrow it, and a "
                     "comparison inside one run (--models OLD,NEW) leaves out the run-to-run spread.")


def _verdict_notes(result: Comparison) -> list[str]:
    """What the 'speed modes' and 'inconclusive' cell notes mean, once each, when a cell has one (`judge`)."""
    return [text for mark, text in (("speed modes", SPEED_MIX_NOTE), (INCONCLUSIVE, INCONCLUSIVE_NOTE))
            if any(mark in c.note for c in result.cells)]


def _checked_factor(factor: float) -> float:
    if not (factor >= 1.0 and math.isfinite(factor)):
        raise BenchbotError(f"--factor must be 1 or more (a ratio such as 1.05), got {factor}")
    return factor


def _judge(result: Comparison, rows_a: dict[tuple, Any], rows_b: dict[tuple, Any], same_model_expected: bool,
           spread_for: SpreadFor | None = None) -> None:
    """Fill `result` with a verdict for every cell both sides have, and name the cells only one side has.

    `spread_for(row_a, row_b)` gives the run-to-run spread to add when the sides are two runs; cells of
    one run share its state and are judged without it."""
    result.only_a = [_label(k) for k in rows_a if k not in rows_b]
    result.only_b = [_label(k) for k in rows_b if k not in rows_a]
    for key, row_a in rows_a.items():
        row_b = rows_b.get(key)
        if row_b is None:
            continue
        ma, mb = rep_medians(row_a), rep_medians(row_b)
        if not ma or not mb:
            which = " and ".join(n for n, m in (("A", ma), ("B", mb)) if not m)
            result.no_data.append(f"{_label(key)}: no finished repetition in {which} to compare")
            continue
        spread = spread_for(row_a, row_b) if spread_for else None
        estimate, called, mixed = judge(ma, mb, result.factor, result.confidence, spread)
        notes = [mixed] if mixed else []
        if (same_model_expected and row_a.get("model_sha256") and row_b.get("model_sha256")
                and row_a["model_sha256"] != row_b["model_sha256"]):
            notes.append("different model file")
        if len(ma) < 2 or len(mb) < 2:
            notes.append("one repetition: no run-to-run evidence")
        result.cells.append(CellComparison(
            device=key[0], emulated=key[1], model=key[2], variant=key[3], threads=int(key[4]), xnnpack=key[5],
            batch=int(key[6]), reps_a=len(ma), reps_b=len(mb), p50_a_ms=float(row_a["p50_ms"]),
            p50_b_ms=float(row_b["p50_ms"]), ratio=estimate.ratio, ratio_ci_lo=estimate.lo, ratio_ci_hi=estimate.hi,
            p_value=estimate.p_value, verdict=called,
            flags_a=str(row_a.get("flags") or ""), flags_b=str(row_b.get("flags") or ""), note=", ".join(notes),
            run_sd=spread.sd if spread else None, run_sd_runs=spread.runs if spread else None,
        ))


def _notes(a: Run, b: Run, result: Comparison) -> list[str]:
    notes = []
    fa, fb = a.fingerprints, b.fingerprints
    for device in sorted(set(fa) & set(fb)):
        changed = [k for k in FINGERPRINT_KEYS if fa[device].get(k) != fb[device].get(k)]
        if changed:
            notes.append(f"{device} differs between the runs ({', '.join(changed)}): A is {fingerprint_line(fa[device])}"
                         f"; B is {fingerprint_line(fb[device])}")
    if any("different model file" in c.note for c in result.cells):
        notes.append("Some cells ran a different model file (sha256) under the same name; see the note column.")
    notes += _verdict_notes(result)
    if any(c.emulated for c in result.cells):
        notes.append("Emulated cells compare QEMU on the host with itself: useful for catching regressions in "
                     "benchbot or a model, not for device speed.")
    unstable = [c for c in result.cells if "unstable" in c.flags_a or "unstable" in c.flags_b]
    if unstable:
        notes.append(f"{len(unstable)} compared cell(s) were flagged unstable in A or B; their verdicts deserve a "
                     "second run.")
    return notes


# ----------------------------------------------------------------------------- output

HEADERS = ["cell", "reps A", "reps B", "p50 A ms", "p50 B ms", "B/A", "B/A 95% CI", "p", "verdict", "note"]


def display_rows(result: Comparison) -> list[list[str]]:
    rows = []
    for c in result.cells:
        decimals = fmt.latency_decimals(min(c.p50_a_ms, c.p50_b_ms))
        ci = "" if c.ratio_ci_lo is None else fmt.interval(c.ratio_ci_lo, c.ratio_ci_hi, fmt.decimals_for(c.ratio))
        flags = ",".join(sorted({f for f in (c.flags_a + "," + c.flags_b).split(",") if f and f != "emulated"}))
        note = "; ".join(x for x in (c.note, f"flags: {flags}" if flags else "") if x)
        rows.append([c.label(), str(c.reps_a), str(c.reps_b), fmt.fixed(c.p50_a_ms, decimals),
                     fmt.fixed(c.p50_b_ms, decimals), fmt.ratio(c.ratio), ci,
                     "" if c.p_value is None else fmt.pvalue(c.p_value), c.verdict, note])
    return rows


def _explain(result: Comparison) -> str:
    spread = " (plus the device's run-to-run spread, see the notes)" if any(c.run_sd is not None
                                                                              for c in result.cells) else ""
    return (f"B/A: ratio of p50s (above 1: B is slower), from each cell's repetitions: geometric means of their "
            f"medians, {100 * result.confidence:g} % interval and p from Welch's t on the log medians{spread}. "
            "Slower: the "
            f"whole interval above ×{result.factor:g}; faster: below ×{1 / result.factor:.3g}; otherwise not "
            "significant.")


def _summary_line(result: Comparison) -> str:
    inconclusive = sum(1 for c in result.cells if INCONCLUSIVE in c.note)
    return (f"{len(result.cells)} cells compared: {len(result.slower)} slower, {len(result.faster)} faster, "
            f"{len(result.cells) - len(result.slower) - len(result.faster)} not significant"
            + (f" ({inconclusive} inconclusive)" if inconclusive else "")
            + (f"; {len(result.only_a) + len(result.only_b)} unmatched" if result.only_a or result.only_b else ""))


def _unmatched_lines(result: Comparison) -> list[str]:
    lines = [f"only in A ({result.run_a}): {x}" for x in result.only_a]
    lines += [f"only in B ({result.run_b}): {x}" for x in result.only_b]
    lines += [f"not compared: {x}" for x in result.no_data]
    return lines


def to_markdown(result: Comparison) -> str:
    numeric = {h for i, h in enumerate(HEADERS) if i not in (0, 8, 9)}
    lines = [f"Comparing B = {result.run_b} against A = {result.run_a}", "",
             *fmt.markdown_table(HEADERS, display_rows(result), numeric)]
    lines += ["", _summary_line(result), "", _explain(result)]
    unmatched = _unmatched_lines(result)
    if unmatched:
        lines += ["", "Unmatched cells:"] + [f"- {x}" for x in unmatched]
    lines += [f"> Note: {n}" for n in result.notes]
    return "\n".join(lines) + "\n"


def to_json(result: Comparison) -> str:
    body = asdict(result)
    body.update(format="benchbot-compare", version=1, slower=len(result.slower), faster=len(result.faster))

    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, np.generic):
            return value.item()
        return value

    return json.dumps(clean(body), indent=2)


def to_rich(result: Comparison) -> list[Any]:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"[bold]B = {result.run_b}[/] against [bold]A = {result.run_a}[/]", title_justify="left")
    for i, header in enumerate(HEADERS):
        table.add_column(header, justify="left" if i in (0, 8, 9) else "right", no_wrap=i in (0, 6))
    styles = {"slower": "bold red", "faster": "green"}
    for c, row in zip(result.cells, display_rows(result)):
        table.add_row(*row, style=styles.get(c.verdict))
    out: list[Any] = [table, Text(_summary_line(result)), Text(_explain(result), style="dim")]
    out += [Text(line, style="yellow") for line in _unmatched_lines(result)]
    out += [Text(f"Note: {n}", style="yellow") for n in result.notes]
    return out
