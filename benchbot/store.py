"""The results store: one folder per run, append-only files, loaded into pandas.

Layout of `results/<run-id>/`:
    manifest.json                   plan, settings, benchbot version, host; written once
    log.jsonl                       run events: device fingerprints, cell outcomes, run end
    cells/<cell-key>/rep<r>/<attempt>/
                                    one folder per attempt at repetition r of a cell (one agent
                                    process each; resume adds attempts)
        events.jsonl                every agent line but samples, as it arrived
        samples.csv                 phase,start_ns,latency_ns: every single latency
    summary.csv                     derived; rewritten by `benchbot report`

Format 1 (before repetitions) kept attempts directly in `cells/<cell-key>/<attempt>/`;
they load as repetition 1 of a one-repetition cell. From format 2 every attempt's outcome
records the samples written per phase, so a damaged, cut-short or deleted samples.csv shows.

Everything measured is appended and flushed line by line as it arrives, so a run
killed half-way stays readable; nothing is ever rewritten except derived files.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchbot import __version__
from benchbot.errors import BenchbotError
from benchbot.plan import Cell, Plan, Unit

FORMAT = "benchbot-run"
FORMAT_VERSION = 2


def results_root(path: str | os.PathLike[str] | None = None) -> Path:
    return Path(path or os.environ.get("BENCHBOT_RESULTS") or "results")


def new_run_id() -> str:
    """Sortable by time (UTC, to the second), with a random tail so two runs never collide."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)


def host_info() -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "arch": platform.machine(),
    }


def _append_line(path: Path, line: str) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
        fh.flush()


class RunWriter:
    """Creates a run folder (never reusing one) and appends to it."""

    def __init__(self, folder: Path, manifest: dict[str, Any]) -> None:
        self.folder = folder
        self.manifest = manifest
        self._lock = threading.Lock()

    @classmethod
    def create(cls, root: Path, plan: Plan, argv: list[str] | None = None) -> RunWriter:
        root.mkdir(parents=True, exist_ok=True)
        for _ in range(10):
            run_id = new_run_id()
            folder = root / run_id
            try:
                folder.mkdir()
                break
            except FileExistsError:
                continue
        else:
            raise BenchbotError(f"could not create a new run folder in {root}")
        manifest = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "run_id": run_id,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "benchbot_version": __version__,
            "host": host_info(),
            "argv": argv or [],
            "devices": {p.name: _profile_summary(p) for p in plan.devices},
            "plan": plan.to_json(),
        }
        tmp = folder / "manifest.json.tmp"
        tmp.write_text(json.dumps(manifest, indent=2))
        tmp.replace(folder / "manifest.json")
        (folder / "cells").mkdir()
        return cls(folder, manifest)

    @classmethod
    def reopen(cls, folder: Path) -> RunWriter:
        return cls(folder, read_manifest(folder))

    @property
    def run_id(self) -> str:
        return self.manifest["run_id"]

    def log(self, event: str, **fields: Any) -> None:
        fields = {"event": event, "time": time.time(), **fields}
        with self._lock:
            _append_line(self.folder / "log.jsonl", json.dumps(fields))

    def cell_writer(self, unit: Unit) -> CellWriter:
        """A new attempt folder for one repetition of a cell (never an existing one)."""
        base = self.folder / "cells" / unit.cell.key / f"rep{unit.repetition}"
        base.mkdir(parents=True, exist_ok=True)
        attempt = 1 + max((int(p.name) for p in base.iterdir() if p.name.isdigit()), default=0)
        folder = base / str(attempt)
        folder.mkdir()
        return CellWriter(folder, unit.cell, attempt, unit.repetition)


def _profile_summary(profile: Any) -> dict[str, Any]:
    """What of a profile goes into results: never a password, only where and how."""
    return {
        "transport": profile.transport,
        "description": profile.description,
        "emulated": profile.emulated,
        "host": profile.ssh.host or None,
        "profile": str(profile.path) if profile.path else None,
    }


class CellWriter:
    """Persists one attempt at a cell, line by line, as the agent's events arrive."""

    def __init__(self, folder: Path, cell: Cell, attempt: int, repetition: int = 1) -> None:
        self.folder = folder
        self.cell = cell
        self.attempt = attempt
        self.repetition = repetition
        self.events = open(folder / "events.jsonl", "a", encoding="utf-8")
        self.samples = open(folder / "samples.csv", "a", encoding="utf-8")
        self.samples.write("phase,start_ns,latency_ns\n")
        self.samples.flush()
        #: Rows written to samples.csv per phase: the outcome records them, so a reader can tell a whole
        #: file from a truncated, damaged or deleted one.
        self.written: dict[str, int] = {}

    def write_event(self, event: dict[str, Any]) -> None:
        if event.get("event") == "samples":
            phase = event.get("phase", "loop")
            rows = "".join(f"{phase},{s},{d}\n" for s, d in zip(event["start_ns"], event["latency_ns"]))
            self.samples.write(rows)
            self.samples.flush()
            self.written[phase] = self.written.get(phase, 0) + len(event["latency_ns"])
            return
        self.events.write(json.dumps(event, separators=(",", ":")) + "\n")
        self.events.flush()

    def note(self, event: str, **fields: Any) -> None:
        """A host-side event for this cell (outcome, host timing); the outcome carries the sample counts."""
        if event == "outcome":
            fields.setdefault("samples_written", dict(self.written))
        self.write_event({"event": event, "source": "host", **fields})

    def close(self) -> None:
        for fh in (self.events, self.samples):
            if not fh.closed:
                fh.close()


# ----------------------------------------------------------------------------- reading


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise BenchbotError(f"{folder} is not a benchbot run (no manifest.json)") from None
    except ValueError as exc:
        raise BenchbotError(f"{path} is damaged ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise BenchbotError(f"{path} is not a benchbot run manifest")
    if manifest.get("version", 0) > FORMAT_VERSION:
        raise BenchbotError(f"{folder} was written by a newer benchbot (format {manifest['version']}); upgrade benchbot")
    return manifest


def list_runs(root: Path | None = None) -> list[Path]:
    root = results_root(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / "manifest.json").is_file())


def find_run(run: str | os.PathLike[str] | None = None, root: Path | None = None) -> Path:
    """A run folder from an id, a unique id prefix, a path, or None for the latest."""
    runs = list_runs(root)
    if run is None or str(run) == "latest":
        if not runs:
            raise BenchbotError(f"no runs in {results_root(root)}; start one with `benchbot run`")
        return runs[-1]
    path = Path(run)
    if (path / "manifest.json").is_file():
        return path
    matches = [p for p in runs if p.name == str(run)] or [p for p in runs if p.name.startswith(str(run))]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise BenchbotError(f"run id '{run}' is ambiguous: {', '.join(p.name for p in matches[:5])}")
    raise BenchbotError(f"no run '{run}' in {results_root(root)} (see `benchbot runs`)")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every complete JSON line; a torn last line (the process died mid-write) is skipped."""
    if not path.is_file():
        return []
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


@dataclass
class CellAttempt:
    """One agent process's record: an attempt at one repetition of a cell."""

    cell: Cell
    attempt: int
    folder: Path
    events: list[dict[str, Any]]
    repetition: int = 1
    _samples: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    _damage: str | None = field(default=None, repr=False, compare=False)

    def first(self, name: str) -> dict[str, Any] | None:
        return next((e for e in self.events if e.get("event") == name), None)

    def all(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == name]

    @property
    def status(self) -> str:
        """ok (the agent finished), damaged (it did, but its stored samples are not what was written),
        failed (an error or an outcome said so), or incomplete (cut off)."""
        outcome = self.first("outcome")
        if outcome:
            status = outcome.get("status", "failed")
            return "damaged" if status == "ok" and self.damage else status
        if self.first("cell_end"):
            return "damaged" if self.damage else "ok"
        if any(e.get("fatal", True) for e in self.all("error")):
            return "failed"
        return "incomplete"

    @property
    def damage(self) -> str | None:
        """What is wrong with this attempt's stored samples, in one sentence, or None when they are whole."""
        self.samples()
        return self._damage

    @property
    def reason(self) -> str | None:
        if self.damage and (self.first("outcome") or {}).get("status", "ok") == "ok":
            return self.damage
        outcome = self.first("outcome")
        if outcome and outcome.get("reason"):
            return outcome["reason"]
        errors = [e for e in self.all("error") if e.get("fatal", True)]
        return errors[-1].get("message") if errors else None

    def samples(self) -> pd.DataFrame:
        """phase, start_ns, latency_ns of this attempt; parsed once per loaded run (treat it as read-only)."""
        if self._samples is None:
            self._samples = self._read_samples()
        return self._samples

    def _read_samples(self) -> pd.DataFrame:
        """Parse samples.csv, keeping every readable row, and note in `_damage` what does not add up."""
        path = self.folder / "samples.csv"
        empty = pd.DataFrame({"phase": pd.Categorical([]), "start_ns": np.empty(0, np.int64),
                              "latency_ns": np.empty(0, np.int64)})
        unreadable = 0
        try:
            frame = pd.read_csv(path, dtype={"phase": "category", "start_ns": "int64", "latency_ns": "int64"},
                                on_bad_lines="skip")
        except FileNotFoundError:
            frame = None
        except pd.errors.EmptyDataError:
            frame = empty
        except (ValueError, pd.errors.ParserError):  # a torn or damaged line: keep every row that still reads
            raw = pd.read_csv(path, dtype=str, on_bad_lines="skip", keep_default_na=False)
            numbers = raw[["start_ns", "latency_ns"]].apply(pd.to_numeric, errors="coerce")
            good = numbers.notna().all(axis=1) & raw["phase"].isin(["warmup", "loop"])
            unreadable = int((~good).sum())
            frame = pd.DataFrame({"phase": raw.loc[good, "phase"].astype("category"),
                                  "start_ns": numbers.loc[good, "start_ns"].astype("int64"),
                                  "latency_ns": numbers.loc[good, "latency_ns"].astype("int64")})
            frame = frame.reset_index(drop=True)
        written = (self.first("outcome") or {}).get("samples_written")
        if frame is None:
            frame = empty
            if written and sum(written.values()):
                self._damage = f"{path} is missing ({sum(written.values())} samples were written)"
            return frame
        if written is not None:  # format 2: the host recorded what it wrote
            counts = frame["phase"].value_counts()
            short = {p: (int(counts.get(p, 0)), n) for p, n in written.items() if int(counts.get(p, 0)) != n}
            if short or unreadable:
                parts = [f"{have} of {n} {p} samples readable" for p, (have, n) in short.items()]
                if unreadable:
                    parts.append(f"{unreadable} unreadable line(s)")
                self._damage = f"{path} is damaged: " + ", ".join(parts)
        elif unreadable > 1:  # format 1 wrote no counts: only more than a torn last line says damage
            self._damage = f"{path} is damaged: {unreadable} unreadable line(s)"
        return frame


@dataclass
class Run:
    """A loaded run: its manifest, every cell attempt, and tidy DataFrames built on demand."""

    folder: Path
    manifest: dict[str, Any]
    attempts: dict[str, list[CellAttempt]]
    log: list[dict[str, Any]]
    _cache: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    @property
    def run_id(self) -> str:
        return self.manifest["run_id"]

    @cached_property
    def cells(self) -> list[Cell]:
        from benchbot.plan import cell_from_json

        return [cell_from_json(c) for c in self.manifest["plan"]["cells"]]

    @cached_property
    def _planned(self) -> dict[str, int]:
        return {c.key: c.repetitions for c in self.cells}

    @property
    def complete(self) -> bool:
        ended = any(e.get("event") == "run_end" for e in self.log)
        return ended and all(self.status(c.key) == "ok" for c in self.cells)

    @property
    def fingerprints(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for event in self.log:
            if event.get("event") == "device" and event.get("fingerprint"):
                out[event["device"]] = event["fingerprint"]
        return out

    def repetitions(self, key: str) -> dict[int, CellAttempt]:
        """Per repetition of a cell that was attempted: its latest successful attempt, else its latest."""
        out: dict[int, CellAttempt] = {}
        for rep in sorted({a.repetition for a in self.attempts.get(key, [])}):
            attempts = [a for a in self.attempts[key] if a.repetition == rep]
            ok = [a for a in attempts if a.status == "ok"]
            out[rep] = (ok or attempts)[-1]
        return out

    def best(self, key: str) -> CellAttempt | None:
        """The cell's representative attempt (accuracy, timelines): its first successful repetition, else
        its latest attempt."""
        reps = self.repetitions(key)
        ok = [a for a in reps.values() if a.status == "ok"]
        if ok:
            return ok[0]
        attempts = self.attempts.get(key, [])
        return attempts[-1] if attempts else None

    def status(self, key: str) -> str:
        """ok (every planned repetition ok), failed (none ok, one failed), incomplete or pending."""
        planned = self._planned.get(key, 1)
        statuses = [a.status for rep, a in self.repetitions(key).items() if rep <= planned]
        if not statuses:
            return "pending"
        if len(statuses) >= planned and all(s == "ok" for s in statuses):
            return "ok"
        if "damaged" in statuses:
            return "damaged"
        if "ok" not in statuses and "failed" in statuses:
            return "failed"
        return "incomplete"

    def damaged(self) -> list[CellAttempt]:
        """The latest attempt of every repetition whose stored samples are not what was written."""
        return [a for c in self.cells for a in self.repetitions(c.key).values() if a.status == "damaged"]

    def units_todo(self) -> list[Unit]:
        """Every planned repetition without a successful, whole attempt: what `--resume` runs."""
        todo = []
        for cell in self.cells:
            reps = self.repetitions(cell.key)
            todo += [Unit(cell, r) for r in range(1, cell.repetitions + 1)
                     if r not in reps or reps[r].status != "ok"]
        return todo

    @property
    def samples(self) -> pd.DataFrame:
        if "samples" not in self._cache:
            from benchbot.summary import samples_frame

            self._cache["samples"] = samples_frame(self)
        return self._cache["samples"]

    @property
    def telemetry(self) -> pd.DataFrame:
        if "telemetry" not in self._cache:
            from benchbot.summary import telemetry_frame

            self._cache["telemetry"] = telemetry_frame(self)
        return self._cache["telemetry"]

    @property
    def repetition_summary(self) -> pd.DataFrame:
        """One row per repetition (agent process) of every cell: what `summary` aggregates."""
        if "repetition_summary" not in self._cache:
            from benchbot.summary import repetition_frame

            self._cache["repetition_summary"] = repetition_frame(self)
        return self._cache["repetition_summary"]

    @property
    def summary(self) -> pd.DataFrame:
        if "summary" not in self._cache:
            from benchbot.summary import summary_frame

            self._cache["summary"] = summary_frame(self)
        return self._cache["summary"]


def load_run(run: str | os.PathLike[str] | None = None, results: str | os.PathLike[str] | None = None) -> Run:
    """Load a run (id, id prefix, folder, or None for the latest) for tables, plots or a notebook.

    `run.summary`, `run.samples` and `run.telemetry` are tidy pandas DataFrames.
    """
    folder = find_run(run, results_root(results))
    manifest = read_manifest(folder)
    from benchbot.plan import cell_from_json

    attempts: dict[str, list[CellAttempt]] = {}
    for data in manifest["plan"]["cells"]:
        cell = cell_from_json(data)
        base = folder / "cells" / cell.key
        found = []
        if base.is_dir():
            for rep, rep_folder in _repetition_folders(base):
                for sub in sorted((p for p in rep_folder.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)):
                    found.append(CellAttempt(cell, int(sub.name), sub, read_jsonl(sub / "events.jsonl"), rep))
        attempts[cell.key] = found
    return Run(folder, manifest, attempts, read_jsonl(folder / "log.jsonl"))


def _repetition_folders(base: Path) -> list[tuple[int, Path]]:
    """(repetition, folder holding its attempts) of a cell folder; format 1 kept attempts in the cell folder."""
    reps = [(int(p.name[3:]), p) for p in base.iterdir() if p.name.startswith("rep") and p.name[3:].isdigit()]
    if any(p.name.isdigit() for p in base.iterdir()):
        reps.append((1, base))
    return sorted(reps, key=lambda item: item[0])
