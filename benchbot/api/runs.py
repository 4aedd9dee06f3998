"""Stored runs: list them, and verify that their samples are whole."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["RunEntry", "list_runs"]


@dataclass
class RunEntry:
    """One stored run as `benchbot runs` lists it; `damaged` is None unless verified."""

    run_id: str
    state: str  # StoredRun.state (complete, running, incomplete, damaged), or unreadable
    cells_ok: int
    cells: int
    devices: list[str] = field(default_factory=list)
    damaged: list[Any] | None = None  # store attempts (cell, repetition, damage)
    unreadable: str | None = None  # why the run cannot be read at all (state "unreadable")
    log_damage: str | None = None  # lines of its log.jsonl that do not parse


def list_runs(run: str | None = None, results: str | None = None, verify: bool = False) -> tuple[Path, list[RunEntry]]:
    """(results folder, its runs oldest first, or only RUN); with verify, each run's damaged repetitions."""
    from benchbot.errors import BenchbotError
    from benchbot.store import find_run, results_root
    from benchbot.store import list_runs as stored_runs
    from benchbot.summary import load_run

    root = results_root(results)
    folders = [find_run(run, root)] if run else stored_runs(root)
    entries = []
    for folder in folders:
        try:
            loaded = load_run(folder)
        except BenchbotError as exc:  # one unreadable run is listed as such, never hides the others
            entries.append(RunEntry(folder.name, "unreadable", 0, 0, unreadable=str(exc)))
            continue
        statuses = [loaded.status(c.key) for c in loaded.cells]
        entries.append(RunEntry(loaded.run_id, loaded.state, statuses.count("ok"), len(statuses),
                                sorted(loaded.manifest.get("devices", {})), loaded.damaged() if verify else None,
                                log_damage=loaded.log_damage))
    return root, entries
