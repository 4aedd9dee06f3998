"""Run B against run A, cell by cell: ratio of medians with its interval, a Mann-Whitney U test, a verdict.

Cells match on device (real or emulated), model, variant, threads, XNNPACK and
batch. A cell is "slower" only when both hold: the Mann-Whitney U test on the
raw loop latencies gives p < 0.01, and the ratio of medians B/A is beyond the
factor (default 1.05); "faster" symmetrically (B/A below 1/factor). Everything
else is "not significant". The test is implemented here with numpy (average
ranks, tie-corrected normal approximation with continuity correction, the same
as scipy.stats.mannwhitneyu(method="asymptotic")), so benchbot needs no scipy.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from benchbot import stats
from benchbot.errors import BenchbotError
from benchbot.report import fmt
from benchbot.report.data import device_label, fingerprint_line, loop_samples

if TYPE_CHECKING:
    from benchbot.store import Run

ALPHA = 0.01
MATCH = ["device", "emulated", "model", "variant", "threads", "xnnpack", "batch"]
FINGERPRINT_KEYS = ("model", "cpu", "arch", "cores", "os", "python", "runtime", "runtime_version")


# ----------------------------------------------------------------------------- Mann-Whitney U


@dataclass(frozen=True)
class MannWhitney:
    u: float        # U statistic of the first sample (scipy's `statistic`)
    z: float        # standardised, continuity-corrected
    p: float        # two-sided p-value, normal approximation with tie correction


def average_ranks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1-based ranks with ties given their average rank, and the size of every tie group."""
    n = values.size
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    new_group = np.empty(n, dtype=bool)
    new_group[:1] = True
    new_group[1:] = ordered[1:] != ordered[:-1]
    starts = np.flatnonzero(new_group)
    counts = np.diff(np.append(starts, n))
    group_rank = starts + (counts + 1) / 2.0          # mean of ranks start+1 .. start+count
    ranks = np.empty(n, dtype=float)
    ranks[order] = np.repeat(group_rank, counts)
    return ranks, counts


def mann_whitney_u(x: np.ndarray | list[float], y: np.ndarray | list[float]) -> MannWhitney:
    """Two-sided Mann-Whitney U test of x against y (large samples: the normal approximation is exact enough)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    n1, n2 = x.size, y.size
    if n1 == 0 or n2 == 0:
        raise ValueError("both samples need at least one value")
    ranks, ties = average_ranks(np.concatenate([x, y]))
    n = n1 + n2
    u1 = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2.0)
    u2 = n1 * n2 - u1
    mu = n1 * n2 / 2.0
    tie_term = float(((ties.astype(float) ** 3) - ties).sum())
    variance = n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1))) if n > 1 else 0.0
    if variance <= 0:  # every value identical: no evidence of any difference
        return MannWhitney(u1, 0.0, 1.0)
    z = (max(u1, u2) - mu - 0.5) / math.sqrt(variance)
    p = min(1.0, max(0.0, math.erfc(z / math.sqrt(2.0))))  # 2 * P(Z > z)
    return MannWhitney(u1, z, p)


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
    n_a: int
    n_b: int
    p50_a_ms: float
    p50_b_ms: float
    ratio: float                 # median B / median A
    ratio_ci_lo: float | None
    ratio_ci_hi: float | None
    u: float
    p_value: float
    verdict: str                 # slower, faster, not significant
    flags_a: str = ""
    flags_b: str = ""
    note: str = ""

    def label(self) -> str:
        extra = ("" if self.xnnpack else " no-xnnpack") + (f" batch {self.batch}" if self.batch != 1 else "")
        return f"{device_label(self.device, self.emulated)} {self.model}/{self.variant} t{self.threads}{extra}"


@dataclass
class Comparison:
    run_a: str
    run_b: str
    factor: float
    alpha: float
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


def verdict(ratio: float, p: float, factor: float, alpha: float = ALPHA) -> str:
    if p < alpha and ratio > factor:
        return "slower"
    if p < alpha and ratio < 1.0 / factor:
        return "faster"
    return "not significant"


def _label(key: tuple) -> str:
    device, emulated, model, variant, threads, xnnpack, batch = key
    extra = ("" if xnnpack else " no-xnnpack") + (f" batch {batch}" if batch != 1 else "")
    return f"{device_label(device, emulated)} {model}/{variant} t{threads}{extra}"


def _rows(run: Run) -> dict[tuple, Any]:
    summary = run.summary
    if summary.empty:
        return {}
    out = {}
    for _, r in summary.iterrows():
        out[tuple(bool(r[c]) if c in ("emulated", "xnnpack") else r[c] for c in MATCH)] = r
    return out


def compare(a: Run, b: Run, factor: float = 1.05, alpha: float = ALPHA) -> Comparison:
    """Match the cells of two runs and judge each one (B against A)."""
    if not (factor >= 1.0 and math.isfinite(factor)):
        raise BenchbotError(f"--factor must be 1 or more (a ratio such as 1.05), got {factor}")
    result = Comparison(a.run_id, b.run_id, factor, alpha)
    rows_a, rows_b = _rows(a), _rows(b)
    samples_a, samples_b = loop_samples([a]), loop_samples([b])  # apart: a copied run may share its run id

    def loop_of(samples: dict[tuple, np.ndarray], row: Any) -> np.ndarray:
        key = (row["run_id"], row["device"], row["model"], row["variant"], row["threads"], row["xnnpack"], row["batch"])
        return samples.get(key, np.empty(0))

    result.only_a = [_label(k) for k in rows_a if k not in rows_b]
    result.only_b = [_label(k) for k in rows_b if k not in rows_a]
    for key, row_a in rows_a.items():
        row_b = rows_b.get(key)
        if row_b is None:
            continue
        xa, xb = loop_of(samples_a, row_a), loop_of(samples_b, row_b)
        if xa.size < 6 or xb.size < 6:
            which = " and ".join(n for n, x in (("A", xa), ("B", xb)) if x.size < 6)
            result.no_data.append(f"{_label(key)}: too few loop samples in {which} to compare")
            continue
        test = mann_whitney_u(xb, xa)
        ma, mb = float(np.median(xa)), float(np.median(xb))
        ratio = mb / ma if ma > 0 else math.inf
        ci = stats.ratio_ci(xa, xb)
        notes = []
        if row_a.get("model_sha256") and row_b.get("model_sha256") and row_a["model_sha256"] != row_b["model_sha256"]:
            notes.append("different model file")
        result.cells.append(CellComparison(
            device=key[0], emulated=key[1], model=key[2], variant=key[3], threads=int(key[4]), xnnpack=key[5],
            batch=int(key[6]), n_a=int(xa.size), n_b=int(xb.size), p50_a_ms=ma, p50_b_ms=mb, ratio=ratio,
            ratio_ci_lo=ci[1] if ci else None, ratio_ci_hi=ci[2] if ci else None, u=test.u, p_value=test.p,
            verdict=verdict(ratio, test.p, factor, alpha),
            flags_a=str(row_a.get("flags") or ""), flags_b=str(row_b.get("flags") or ""), note=", ".join(notes),
        ))
    result.notes = _notes(a, b, result)
    return result


def _notes(a: Run, b: Run, result: Comparison) -> list[str]:
    notes = []
    fa, fb = a.fingerprints, b.fingerprints
    for device in sorted(set(fa) & set(fb)):
        changed = [k for k in FINGERPRINT_KEYS if fa[device].get(k) != fb[device].get(k)]
        if changed:
            notes.append(f"{device} differs between the runs ({', '.join(changed)}): A is {fingerprint_line(fa[device])}"
                         f"; B is {fingerprint_line(fb[device])}")
    if any(c.note for c in result.cells):
        notes.append("Some cells ran a different model file (sha256) under the same name; see the note column.")
    if any(c.emulated for c in result.cells):
        notes.append("Emulated cells compare QEMU on the host with itself: useful for catching regressions in "
                     "benchbot or a model, not for device speed.")
    unstable = [c for c in result.cells if "unstable" in c.flags_a or "unstable" in c.flags_b]
    if unstable:
        notes.append(f"{len(unstable)} compared cell(s) were flagged unstable in A or B; their verdicts deserve a "
                     "second run.")
    return notes


# ----------------------------------------------------------------------------- output

HEADERS = ["cell", "n A", "n B", "p50 A ms", "p50 B ms", "B/A", "B/A 95% CI", "p", "verdict", "note"]


def display_rows(result: Comparison) -> list[list[str]]:
    rows = []
    for c in result.cells:
        decimals = fmt.latency_decimals(min(c.p50_a_ms, c.p50_b_ms))
        ci = "" if c.ratio_ci_lo is None else fmt.interval(c.ratio_ci_lo, c.ratio_ci_hi, fmt.decimals_for(c.ratio))
        flags = ",".join(sorted({f for f in (c.flags_a + "," + c.flags_b).split(",") if f and f != "emulated"}))
        note = "; ".join(x for x in (c.note, f"flags: {flags}" if flags else "") if x)
        rows.append([c.label(), str(c.n_a), str(c.n_b), fmt.fixed(c.p50_a_ms, decimals), fmt.fixed(c.p50_b_ms, decimals),
                     fmt.ratio(c.ratio), ci, fmt.pvalue(c.p_value), c.verdict, note])
    return rows


def _explain(result: Comparison) -> str:
    return (f"B/A: ratio of median latencies (above 1: B is slower). Verdict slower/faster needs p < {result.alpha:g} "
            f"(Mann-Whitney U on every loop latency) and B/A beyond ×{result.factor:g} (or below "
            f"×{1 / result.factor:.3g}); otherwise not significant.")


def _summary_line(result: Comparison) -> str:
    return (f"{len(result.cells)} cells compared: {len(result.slower)} slower, {len(result.faster)} faster, "
            f"{len(result.cells) - len(result.slower) - len(result.faster)} not significant"
            + (f"; {len(result.only_a) + len(result.only_b)} unmatched" if result.only_a or result.only_b else ""))


def _unmatched_lines(result: Comparison) -> list[str]:
    lines = [f"only in A ({result.run_a}): {x}" for x in result.only_a]
    lines += [f"only in B ({result.run_b}): {x}" for x in result.only_b]
    lines += [f"not compared: {x}" for x in result.no_data]
    return lines


def to_markdown(result: Comparison) -> str:
    lines = [f"Comparing B = {result.run_b} against A = {result.run_a}", "",
             "| " + " | ".join(HEADERS) + " |", "|" + "|".join("---" if i in (0, 8, 9) else "---:"
                                                             for i in range(len(HEADERS))) + "|"]
    for row in display_rows(result):
        lines.append("| " + " | ".join(x.replace("|", "\\|") for x in row) + " |")
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
