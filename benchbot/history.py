"""A device's other runs: how far a cell's value moves from one run to the next (issue 10).

One run cannot see a state its device sits in for the whole run (a shared host's other tenants, a
warm board), so a next-run interval built from its repetitions alone is too narrow on such a device.
Runs of the same cells on the same device can: this module collects the repetition medians of a
device's runs from the store, and `stats.run_to_run_spread` turns them into the extra spread that
the summary's next-run interval and `compare` of two runs add.

Reading them is cheap: the host logs every repetition's median in the run log (`cell` events) as the
repetition ends, so no samples are read. Runs stored before that (no medians in the log) are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from benchbot import stats
from benchbot.store import read_jsonl, read_manifest

#: What must match for two runs to count as the same device: its hardware, kernel and runtime.
SAME_DEVICE = ("hostname", "arch", "cpu", "cores", "model", "kernel", "runtime", "runtime_version")
#: The most recent runs used: old enough runs say little about today's device.
MAX_RUNS = 20
#: The most run folders read to find them (runs of other devices, or older ones without medians, are read and
#: skipped), so that a results folder of thousands of runs costs no more than this.
MAX_READ = 60
RUN_ID = re.compile(r"^\d{8}-\d{6}-")

#: A cell across runs: its device, model file and the settings that change its speed.
Identity = tuple[str, str, int, bool, int]


def identity(device: str, model_sha256: str, threads: int, xnnpack: bool, batch: int) -> Identity:
    return (str(device), str(model_sha256), int(threads), bool(xnnpack), int(batch))


@dataclass
class RunMedians:
    """The repetition medians of one run, per cell identity, and the fingerprint of each of its devices."""

    run_id: str
    fingerprints: Mapping[str, Mapping[str, Any]]
    medians: dict[Identity, list[float]] = field(default_factory=dict)

    def add(self, key: Identity, values: Iterable[float]) -> None:
        # two cells of one identity in one run (the same file under two names) are one cell's repetitions
        self.medians.setdefault(key, []).extend(float(v) for v in values)


def same_device(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Two fingerprints of one device: every SAME_DEVICE field agrees (and there is a fingerprint)."""
    return bool(a) and bool(b) and all((a or {}).get(k) == (b or {}).get(k) for k in SAME_DEVICE)


def from_log(folder: Path) -> RunMedians | None:
    """A stored run's repetition medians as the host logged them; None when it logged none (older runs)."""
    try:
        manifest = read_manifest(folder)
        log = read_jsonl(folder / "log.jsonl")
        cells = {c["key"]: c for c in manifest["plan"]["cells"]}
    except Exception:  # noqa: BLE001 - an unreadable neighbour is not this run's problem
        return None
    fingerprints = {e["device"]: e["fingerprint"] for e in log
                    if e.get("event") == "device" and e.get("fingerprint") and e.get("device")}
    latest: dict[tuple[str, int], dict[str, Any]] = {}
    for event in log:  # the last word on each repetition wins (a resumed run measures it again)
        if event.get("event") == "cell" and event.get("key") in cells:
            latest[(event["key"], int(event.get("repetition") or 1))] = event
    out = RunMedians(str(manifest.get("run_id", folder.name)), fingerprints)
    for (key, _), event in sorted(latest.items()):
        if event.get("status") == "ok" and isinstance(event.get("p50_ms"), (int, float)) and event["p50_ms"] > 0:
            c = cells[key]
            out.add(identity(c["device"], c.get("model_sha256", ""), c["threads"], c["xnnpack"], c.get("batch", 1)),
                    [event["p50_ms"]])
    return out if out.medians else None


def from_summary(run: Any) -> RunMedians:
    """A loaded run's repetition medians (`benchbot.summary.Run`: from its samples, not from the log)."""
    out = RunMedians(run.run_id, run.fingerprints)
    summary = run.summary
    if summary.empty or "rep_p50_ms" not in summary.columns:
        return out
    for _, row in summary[summary["status"] == "ok"].iterrows():
        values = row["rep_p50_ms"]
        if isinstance(values, (list, tuple)) and values:
            out.add(identity(row["device"], row.get("model_sha256") or "", row["threads"], row["xnnpack"],
                             row["batch"]), values)
    return out


def neighbours(folder: Path, up_to: str | None, exclude: Iterable[str] = ()) -> list[RunMedians]:
    """The runs stored next to `folder` (its results folder) up to run id `up_to`, newest MAX_RUNS first.

    Run ids begin with their start time, so they sort in time; `folder` itself and runs in `exclude`
    are left out (a copy of a run under another folder name keeps its run id and is left out too).
    """
    skip = set(exclude)
    try:
        siblings = sorted((p for p in folder.parent.iterdir() if p.is_dir() and p.resolve() != folder.resolve()),
                          key=lambda p: p.name, reverse=True)
    except OSError:
        return []
    out: list[RunMedians] = []
    read = 0
    for sibling in siblings:
        if len(out) >= MAX_RUNS or read >= MAX_READ:
            break
        if up_to is not None and RUN_ID.match(sibling.name) and sibling.name[:len(up_to)] > up_to:
            continue  # later than the run in question: its interval does not change as runs are added
        if not (sibling / "manifest.json").is_file():
            continue
        read += 1
        medians = from_log(sibling)
        if medians is None or medians.run_id in skip or (up_to is not None and medians.run_id > up_to):
            continue
        out.append(medians)
    return out


def spread(device: str, fingerprint: Mapping[str, Any] | None, runs: Sequence[RunMedians],
           leave_out: Iterable[Identity] = (), groups: Mapping[Identity, Mapping[int, list[float]]] | None = None
           ) -> stats.RunSpread | None:
    """The run-to-run spread of `device` from the runs that measured it with this fingerprint, pooled over cells.

    `leave_out` drops cell identities from the estimate: `compare` judges a cell against a spread
    learned from the others, so a change in that cell cannot hide itself by inflating the spread.
    """
    left_out = set(leave_out)
    if groups is None:
        groups = device_groups(device, fingerprint, runs)
    return stats.run_to_run_spread(g for key, g in groups.items() if key not in left_out)


def cell_spread(device: str, fingerprint: Mapping[str, Any] | None, runs: Sequence[RunMedians],
                cells: Iterable[Identity], pooled: stats.RunSpread | None, skip_runs: Iterable[int] = (),
                groups: Mapping[Identity, Mapping[int, list[float]]] | None = None) -> stats.RunSpread | None:
    """The spread one cell is judged with: the device's pooled spread, or the cell's own when it is larger,
    and the cell's repetition variance pooled over its runs (`RunSpread.rep_var`).

    Cells do not all move alike between runs: a model whose process lands in one of two speed modes
    (seen here: an int8 model at 0.19 or 0.26 ms per process) moves with the share of each, far more
    than the device's other cells. Its own runs show that, so when they give a larger spread than
    the pool, that one counts. `skip_runs` (positions in `runs`) are left out of the cell's own
    estimate: the two runs `compare` judges must not vouch for their own difference. `groups` is
    `device_groups(device, fingerprint, runs)` when the caller judges many cells of one device.
    """
    skip = set(skip_runs)
    if groups is None:
        groups = device_groups(device, fingerprint, runs)
    best = pooled
    for key in set(cells):
        own = stats.run_to_run_spread([{i: v for i, v in groups.get(key, {}).items() if i not in skip}])
        if own is not None and (best is None or own.sd > best.sd):
            best = own
    if best is None:
        return None
    # and how far its repetitions spread within a run, over all its runs (the judged ones too: that is no
    # evidence of their difference): a side whose five repetitions happened to agree is not believed alone
    within = [w for w in (stats.pooled_repetition_variance(groups.get(key, {}).values()) for key in set(cells)) if w]
    if within:
        variance, df = max(within)
        best = replace(best, rep_var=variance, rep_df=df)
    return best


def device_groups(device: str, fingerprint: Mapping[str, Any] | None, runs: Sequence[RunMedians]
            ) -> dict[Identity, dict[int, list[float]]]:
    """Per cell identity of `device`, the repetition medians of every run (by position) that measured it."""
    groups: dict[Identity, dict[int, list[float]]] = {}
    for index, run in enumerate(runs):  # by position: a copy of a run keeps its run id
        if not same_device(fingerprint, run.fingerprints.get(device)):
            continue
        for key, values in run.medians.items():
            if key[0] == device:
                groups.setdefault(key, {})[index] = values
    return groups
