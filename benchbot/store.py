"""The results store: one folder per run, append-only files; it reads and writes, `summary` analyses.

Layout of `results/<run-id>/`:
    manifest.json                   plan, settings, benchbot version, host, store format; written once
    log.jsonl                       run events: device fingerprints, cell outcomes, run end
    cells/<cell-key>/rep<r>/<attempt>/
                                    one folder per attempt at repetition r of a cell (one agent
                                    process each; resume adds attempts)
        events.jsonl                every agent line but samples, as it arrived
        samples.bin                 every single latency, appended one checked chunk at a time
        telemetry.json              derived, written when the attempt ends: its telemetry readings as
                                    columns, with the length and SHA-256 of the events.jsonl they came from
    summary.csv                     derived; rewritten by `benchbot report`

samples.bin (format 3), little-endian, appended and flushed per chunk the agent streams:
    file header, 16 bytes:  b"BBSAMPLE", u16 format (3), u16 header size (16), u32 zero
    per chunk, 24 bytes:    b"BBCK", phase (8 bytes ASCII, NUL-padded), u32 rows, u32 zero,
                            u32 CRC-32 of the header's first 20 bytes and the rows
                            then rows x (i64 start_ns, i64 latency_ns)
A chunk that fails its checksum is dropped and named; the reader finds the next chunk by its magic,
so bytes inserted, overwritten or cut off cost only the rows they touch. The JSON files carry the
manifest's format version.

Older formats still load: format 2 kept the samples as text, `samples.csv` (phase,start_ns,latency_ns)
in the same folders; format 1 (before repetitions) kept attempts directly in `cells/<cell-key>/<attempt>/`,
loaded as repetition 1 of a one-repetition cell. From format 2 every attempt's outcome records the
samples written per phase (and from format 3 the samples format), so a damaged, cut-short or deleted
samples file shows.

Everything measured is appended and flushed as it arrives, so a run killed half-way stays
readable; nothing is ever rewritten except derived files.

telemetry.json exists because turning ~70,000 JSON telemetry lines into rows was most of loading a big
run. It holds what `telemetry_columns` derives from the readings, and is used only while its recorded
length and hash match events.jsonl; otherwise (an attempt cut off before it ended, a run stored before
it existed, any change to events.jsonl) the events are parsed as before.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import secrets
import socket
import struct
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from benchbot.errors import BenchbotError, host_file_error
from benchbot.plan import Cell, Plan, Unit
from benchbot.version import __version__

FORMAT = "benchbot-run"
FORMAT_VERSION = 3

SAMPLES_FILE = "samples.bin"
SAMPLES_CSV = "samples.csv"  # formats 1 and 2
SAMPLES_MAGIC = b"BBSAMPLE"
SAMPLES_HEADER = struct.Struct("<8sHHI")  # magic, format, header size, zero
CHUNK_MAGIC = b"BBCK"
CHUNK_HEADER = struct.Struct("<4s8sIII")  # magic, phase, rows, zero, crc32 of the first 20 bytes + rows
ROW = np.dtype([("start_ns", "<i8"), ("latency_ns", "<i8")])

EVENTS_FILE = "events.jsonl"
TELEMETRY_FILE = "telemetry.json"
TELEMETRY_FORMAT = "benchbot-telemetry-columns"
TELEMETRY_VERSION = 1
#: How the writer starts every telemetry line (json.dumps of the agent's event, "event" first): lines that start
#: so are skipped when telemetry.json holds their columns; a count check catches any other shape.
TELEMETRY_PREFIX = b'{"event":"telemetry",'
#: Per telemetry reading, what analyses read (`telemetry_columns`): raw values, None where absent.
TELEMETRY_COLUMNS = ("t_ns", "phase", "cpu_pct", "proc_cpu_pct", "rss", "rss_peak", "mem_available", "temp_c",
                     "freq_min_hz", "freq_max_hz", "temps_c", "power_w", "rails_w", "energy_uj", "cpu_core_pct")


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


@contextmanager
def _writing(where: Path) -> Iterator[None]:
    """Writes into the results folder: a failure (full disk, quota, read-only) is a StorageError of one
    sentence, which the runner tells from a device's problem."""
    try:
        yield
    except OSError as exc:
        raise host_file_error(exc, "write", where) from None


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
        with _writing(root):
            return cls._create(root, plan, argv)

    @classmethod
    def _create(cls, root: Path, plan: Plan, argv: list[str] | None) -> RunWriter:
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
        with self._lock, _writing(self.folder / "log.jsonl"):
            _append_line(self.folder / "log.jsonl", json.dumps(fields))

    def cell_writer(self, unit: Unit) -> CellWriter:
        """A new attempt folder for one repetition of a cell (never an existing one)."""
        base = self.folder / "cells" / unit.cell.key / f"rep{unit.repetition}"
        with _writing(base):
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
    """Persists one attempt at a cell as the agent's events arrive: events line by line, samples chunk by chunk."""

    def __init__(self, folder: Path, cell: Cell, attempt: int, repetition: int = 1) -> None:
        self.folder = folder
        self.cell = cell
        self.attempt = attempt
        self.repetition = repetition
        self.events = open(folder / EVENTS_FILE, "a", encoding="utf-8")
        self.samples = open(folder / SAMPLES_FILE, "ab")
        if os.fstat(self.samples.fileno()).st_size == 0:
            self.samples.write(SAMPLES_HEADER.pack(SAMPLES_MAGIC, FORMAT_VERSION, SAMPLES_HEADER.size, 0))
            self.samples.flush()
        #: Rows written to the samples file per phase: the outcome records them, so a reader can tell a whole
        #: file from a truncated, damaged or deleted one.
        self.written: dict[str, int] = {}

    def write_event(self, event: dict[str, Any]) -> None:
        with _writing(self.folder):
            self._write_event(event)

    def _write_event(self, event: dict[str, Any]) -> None:
        if event.get("event") == "samples":
            phase = str(event.get("phase", "loop"))
            try:
                chunk, rows = encode_chunk(phase, event["start_ns"], event["latency_ns"])
            except (KeyError, TypeError, ValueError, OverflowError):
                chunk, rows = b"", 0  # not samples this format holds: kept as they came, in events.jsonl
            if rows or chunk:
                self.samples.write(chunk)
                self.samples.flush()
                self.written[phase] = self.written.get(phase, 0) + rows
                return
        self.events.write(json.dumps(event, separators=(",", ":")) + "\n")
        self.events.flush()

    def note(self, event: str, **fields: Any) -> None:
        """A host-side event for this cell (outcome, host timing); the outcome carries the sample counts."""
        if event == "outcome":
            fields.setdefault("samples_written", dict(self.written))
            fields.setdefault("samples_format", FORMAT_VERSION)
        self.write_event({"event": event, "source": "host", **fields})

    def close(self) -> None:
        """Close the files, then write the attempt's telemetry.json (derived: losing it costs only speed)."""
        was_open = not self.events.closed
        with _writing(self.folder):
            for fh in (self.events, self.samples):
                if not fh.closed:
                    fh.close()
        if was_open:
            write_telemetry_columns(self.folder)


def telemetry_columns(readings: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The telemetry readings as columns of TELEMETRY_COLUMNS: what `benchbot.summary` turns into rows and frames.

    temp_c is the hottest zone, freq_min_hz/freq_max_hz the slowest and fastest core that reported a frequency.
    """
    cols: dict[str, list[Any]] = {name: [] for name in TELEMETRY_COLUMNS}
    (t_ns, phase, cpu, proc, rss, peak, avail, temp, fmin, fmax, temps_c, power_w, rails, energy, cores) = (
        cols[name] for name in TELEMETRY_COLUMNS)
    for r in readings:  # ~350 per repetition: the loop is kept lean
        get = r.get
        temps = get("temps_c") or None
        freqs = [f for f in (get("freq_hz") or ()) if f]
        t_ns.append(r["t_ns"])
        phase.append(get("phase"))
        cpu.append(get("cpu_pct"))
        proc.append(get("proc_cpu_pct"))
        rss.append(get("rss"))
        peak.append(get("rss_peak"))
        avail.append(get("mem_available"))
        temp.append(max(temps.values()) if temps else None)
        fmin.append(min(freqs) if freqs else None)
        fmax.append(max(freqs) if freqs else None)
        temps_c.append(temps)
        power_w.append(get("power_w"))
        rails.append(get("rails_w"))
        energy.append(get("energy_uj"))
        cores.append(get("cpu_core_pct"))
    return cols


def write_telemetry_columns(folder: Path) -> Path | None:
    """Write folder/telemetry.json from folder/events.jsonl as it is now; None when it cannot stand for it
    exactly (no file, readings without a time, values JSON cannot hold) or cannot be written."""
    try:
        data = (folder / EVENTS_FILE).read_bytes()
        events = _parse_jsonl(data)
        readings = [e for e in events if e.get("event") == "telemetry"]
        body = {"format": TELEMETRY_FORMAT, "version": TELEMETRY_VERSION, "source": EVENTS_FILE, "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(), "readings": len(readings),
                "columns": telemetry_columns(readings)}
        text = json.dumps(body, separators=(",", ":"), allow_nan=False)
        tmp = folder / (TELEMETRY_FILE + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(folder / TELEMETRY_FILE)
        return folder / TELEMETRY_FILE
    except (OSError, KeyError, TypeError, ValueError, AttributeError):
        return None


def _read_attempt_events(folder: Path, bad: list[int]) -> tuple[list[dict[str, Any]], dict[str, list[Any]] | None]:
    """An attempt's events, and its telemetry columns from telemetry.json when that file matches events.jsonl
    byte for byte; then the telemetry lines are not parsed (their events are read again only if asked for).
    The numbers of damaged lines go into `bad`."""
    try:
        data = (folder / EVENTS_FILE).read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return [], None
    try:
        index = _loads((folder / TELEMETRY_FILE).read_bytes())
    except (OSError, ValueError):
        index = None
    if (isinstance(index, dict) and index.get("format") == TELEMETRY_FORMAT
            and index.get("version") == TELEMETRY_VERSION and index.get("bytes") == len(data)
            and index.get("sha256") == hashlib.sha256(data).hexdigest()):
        lines = data.splitlines()
        others = [line for line in lines if not line.startswith(TELEMETRY_PREFIX)]
        columns = index.get("columns")
        if (len(lines) - len(others) == index.get("readings") and isinstance(columns, dict)
                and all(len(columns.get(c, ())) == index["readings"] for c in TELEMETRY_COLUMNS)):
            events = _parse_lines(others, bad)  # its line numbers count only the non-telemetry lines
            if not any(e.get("event") == "telemetry" for e in events):
                # one string object per phase name, not one per reading: the parser's copies (~3.5 MiB over a
                # 200-cell run) are freed while the next attempt is parsed, which reuses their memory
                columns["phase"] = [sys.intern(p) if type(p) is str else p for p in columns["phase"]]
                return events, columns
            bad.clear()
    return _parse_jsonl(data, bad), None


def encode_chunk(phase: str, start_ns: Any, latency_ns: Any) -> tuple[bytes, int]:
    """One checked chunk of samples.bin and its row count: header, then (start_ns, latency_ns) rows as
    little-endian int64 (as many rows as both lists have). ValueError for a phase name of more than 8
    ASCII characters or values that are not integers."""
    name = phase.encode("ascii")  # UnicodeEncodeError is a ValueError
    if len(name) > 8:
        raise ValueError(f"sample phase {phase!r} is longer than 8 characters")
    n = min(len(start_ns), len(latency_ns))
    rows = np.empty(n, ROW)
    rows["start_ns"] = np.asarray(start_ns[:n], dtype=np.int64)
    rows["latency_ns"] = np.asarray(latency_ns[:n], dtype=np.int64)
    payload = rows.tobytes()
    head = struct.pack("<4s8sII", CHUNK_MAGIC, name, n, 0)
    return head + struct.pack("<I", zlib.crc32(payload, zlib.crc32(head))) + payload, n


# ----------------------------------------------------------------------------- reading


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        if _looks_like_run(folder):
            raise BenchbotError(f"{folder} is damaged: its manifest.json (the run's plan and settings) is missing; "
                                f"what was measured is still in {folder / 'cells'}") from None
        raise BenchbotError(f"{folder} is not a benchbot run (no manifest.json)") from None
    except ValueError as exc:
        raise BenchbotError(f"{path} is damaged ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise BenchbotError(f"{path} is not a benchbot run manifest")
    if manifest.get("version", 0) > FORMAT_VERSION:
        raise BenchbotError(f"{folder} was written by a newer benchbot (format {manifest['version']}); upgrade benchbot")
    return manifest


def _looks_like_run(folder: Path) -> bool:
    """A run folder, whole or not: a manifest, or the log and cells only a run writes."""
    return (folder / "manifest.json").is_file() or (folder / "log.jsonl").is_file() or (folder / "cells").is_dir()


def list_runs(root: Path | None = None) -> list[Path]:
    """Every run folder in the results folder, oldest first, including damaged ones (reading them says what
    is wrong)."""
    root = results_root(root)
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.is_dir() and _looks_like_run(p)), key=_creation_order)


def _creation_order(folder: Path) -> tuple[str, int, str]:
    """Run ids sort by the second they were made in; two runs of one second (two benchbots started together)
    by when their manifest was written, so "the latest run" is the one started last, not the larger random tail."""
    try:
        written = (folder / "manifest.json").stat().st_mtime_ns
    except OSError:
        written = 0
    return folder.name[:15], written, folder.name


def find_run(run: str | os.PathLike[str] | None = None, root: Path | None = None) -> Path:
    """A run folder from an id, a unique id prefix, a path, or None for the latest."""
    runs = list_runs(root)
    if run is None or str(run) == "latest":
        if not runs:
            raise BenchbotError(f"no runs in {results_root(root)}; start one with `benchbot run`")
        return runs[-1]
    path = Path(run)
    if path.is_dir() and _looks_like_run(path):
        return path
    matches = [p for p in runs if p.name == str(run)] or [p for p in runs if p.name.startswith(str(run))]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise BenchbotError(f"run id '{run}' is ambiguous: {', '.join(p.name for p in matches[:5])}")
    raise BenchbotError(f"no run '{run}' in {results_root(root)} (see `benchbot runs`)")


def read_jsonl(path: Path, bad: list[int] | None = None) -> list[dict[str, Any]]:
    """Every complete JSON line; a torn last line (the process died mid-write) is skipped. Any other line
    that does not parse is damage: its number (from 1) goes into `bad` when given.

    The whole file is parsed in one call (a list of its lines) and only a file that does not parse
    is read line by line: 200 cells of telemetry are ~70,000 lines, and one call per line is most of
    a load.
    """
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return []
    return _parse_jsonl(data, bad)


def _parse_jsonl(data: bytes, bad: list[int] | None = None) -> list[dict[str, Any]]:
    return _parse_lines(data.splitlines(), bad)


def _parse_lines(raw: list[bytes], bad: list[int] | None = None) -> list[dict[str, Any]]:
    """The JSON objects among these lines, in one parser call unless one of them is torn (see read_jsonl);
    the numbers of lines that are not JSON objects, a torn last line excepted, go into `bad`."""
    lines = [line for line in raw if line.strip()]
    if not lines:
        return []
    try:
        parsed = _loads(b"[" + b",".join(lines) + b"]")
        if all(type(e) is dict for e in parsed):
            return parsed
    except ValueError:
        pass
    out = []
    last = max(i for i, line in enumerate(raw) if line.strip())
    for number, line in enumerate(raw):
        if not line.strip():
            continue
        try:
            event = _loads(line)
        except ValueError:
            event = None
        if isinstance(event, dict):
            out.append(event)
        elif bad is not None and number != last:
            bad.append(number + 1)
    return out


def _unreadable(path: Path, bad: list[int]) -> str | None:
    """One sentence for the lines of a JSON-lines file that do not parse, or None when there are none."""
    if not bad:
        return None
    where = ", ".join(map(str, bad[:5])) + (" ..." if len(bad) > 5 else "")
    return f"{path} is damaged: {len(bad)} unreadable line(s) (line {where})"


_loads: Callable[[bytes], Any] = json.loads
try:  # ~3x faster than json on the telemetry lines; optional: json reads the same files
    from orjson import loads as _orjson_loads

    _loads = _orjson_loads
except ImportError:  # pragma: no cover
    pass


@dataclass(frozen=True)
class SampleRows:
    """An attempt's samples as arrays, in the order stored: what the analyses read (no DataFrame per attempt)."""

    phases: tuple[str, ...]   # phase names, sorted
    codes: np.ndarray         # int8 per row: its index in phases
    start_ns: np.ndarray      # int64
    latency_ns: np.ndarray    # int64

    def __len__(self) -> int:
        return len(self.codes)

    def mask(self, phase: str) -> np.ndarray:
        if phase not in self.phases:
            return np.zeros(len(self.codes), bool)
        return self.codes == self.phases.index(phase)

    def latency(self, phase: str) -> np.ndarray:
        """The latencies (ns) of one phase, in order."""
        return self.latency_ns[self.mask(phase)]

    def counts(self) -> dict[str, int]:
        found = np.bincount(self.codes[self.codes >= 0], minlength=len(self.phases))
        return {p: int(n) for p, n in zip(self.phases, found)}

    def frame(self) -> pd.DataFrame:
        """phase (categorical), start_ns, latency_ns."""
        return pd.DataFrame({"phase": pd.Categorical.from_codes(self.codes, list(self.phases)),
                             "start_ns": self.start_ns, "latency_ns": self.latency_ns}, copy=False)

    @classmethod
    def of_frame(cls, frame: pd.DataFrame) -> SampleRows:
        """From a samples.csv frame (formats 1 and 2); its phase categories kept as they are (-1: no phase)."""
        phase = frame["phase"].astype("category").array
        return cls(tuple(str(c) for c in phase.categories), np.asarray(phase.codes, dtype=np.int8),
                   frame["start_ns"].to_numpy(dtype=np.int64), frame["latency_ns"].to_numpy(dtype=np.int64))


NO_SAMPLES = SampleRows((), np.empty(0, np.int8), np.empty(0, np.int64), np.empty(0, np.int64))


@dataclass
class CellAttempt:
    """One agent process's record: an attempt at one repetition of a cell."""

    cell: Cell
    attempt: int
    folder: Path
    _events: list[dict[str, Any]]
    repetition: int = 1
    #: The telemetry readings as columns (`telemetry_columns`) when telemetry.json stood for them; `_events` then
    #: holds every other event, and `events` reads the whole file when asked.
    _telemetry: dict[str, list[Any]] | None = field(default=None, repr=False, compare=False)
    _rows: SampleRows | None = field(default=None, repr=False, compare=False)
    _samples: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    _damage: str | None = field(default=None, repr=False, compare=False)
    #: What is wrong with events.jsonl (lines that do not parse), found when it was read.
    events_damage: str | None = field(default=None, repr=False, compare=False)
    #: What an analysis derived from this attempt once per load (benchbot.summary keeps its telemetry rows here).
    cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event of events.jsonl, in order."""
        if self._telemetry is not None and not self.cache.get("all_events"):
            self._events = read_jsonl(self.folder / EVENTS_FILE)
            self.cache["all_events"] = True
            self.cache.pop("events", None)
        return self._events

    def telemetry_columns(self) -> dict[str, list[Any]]:
        """The telemetry readings as columns (`telemetry_columns`): from telemetry.json, else from the events."""
        if self._telemetry is None:
            self._telemetry = telemetry_columns(self.all("telemetry"))
            self.cache["all_events"] = True  # _events still holds every event
        return self._telemetry

    def _index(self) -> dict[str, list[dict[str, Any]]]:
        index = self.cache.get("events")
        if index is None:
            index = self.cache["events"] = {}
            for e in self._events:
                index.setdefault(e.get("event"), []).append(e)
        return index

    def first(self, name: str) -> dict[str, Any] | None:
        if name == "telemetry":
            self.events  # noqa: B018 - reads the telemetry events when they were skipped
        found = self._index().get(name)
        return found[0] if found else None

    def all(self, name: str) -> list[dict[str, Any]]:
        if name == "telemetry":
            self.events  # noqa: B018
        return list(self._index().get(name, ()))

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
        """What is wrong with this attempt's stored samples or events, in one sentence, or None when they are
        whole."""
        self.sample_rows()
        if self._damage and self.events_damage:
            return f"{self._damage}; {self.events_damage}"
        return self._damage or self.events_damage

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
            self._samples = self.sample_rows().frame()
        return self._samples

    def sample_rows(self) -> SampleRows:
        """This attempt's samples as arrays; read once per loaded run (treat them as read-only)."""
        if self._rows is None:
            self._rows = self._read_samples()
        return self._rows

    @property
    def samples_path(self) -> Path:
        """This attempt's samples file: samples.bin from format 3, samples.csv before (or the one expected)."""
        binary = self.folder / SAMPLES_FILE
        if binary.is_file():
            return binary
        csv = self.folder / SAMPLES_CSV
        if csv.is_file() or not (self.first("outcome") or {}).get("samples_format"):
            return csv
        return binary

    def _read_samples(self) -> SampleRows:
        """Read the samples file, keeping every readable row, and note in `_damage` what does not add up."""
        path = self.samples_path
        problems: list[str] = []
        unreadable = 0
        rows: SampleRows | None
        try:
            if path.suffix == ".bin":
                rows, problems = read_sample_rows(path)
            else:
                frame, unreadable = read_samples_csv(path)
                rows = SampleRows.of_frame(frame)
                if unreadable:
                    problems = [f"{unreadable} unreadable line(s)"]
        except FileNotFoundError:
            rows = None
        written = (self.first("outcome") or {}).get("samples_written")
        if rows is None:
            if written and sum(written.values()):
                self._damage = f"{path} is missing ({sum(written.values())} samples were written)"
            return NO_SAMPLES
        if written is not None:  # from format 2 the host recorded what it wrote
            counts = rows.counts()
            short = {p: (int(counts.get(p, 0)), n) for p, n in written.items() if int(counts.get(p, 0)) != n}
            parts = [f"{have} of {n} {p} samples readable" for p, (have, n) in short.items()] + problems
            if parts:
                self._damage = f"{path} is damaged: " + ", ".join(parts)
        elif problems and (path.suffix == ".bin" or unreadable > 1):
            # format 1 wrote no counts: only more than a torn last line says damage
            self._damage = f"{path} is damaged: " + ", ".join(problems)
        return rows


def _empty_samples() -> pd.DataFrame:
    return pd.DataFrame({"phase": pd.Categorical([]), "start_ns": np.empty(0, np.int64),
                         "latency_ns": np.empty(0, np.int64)})


def read_samples_bin(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """Every row of a samples.bin whose chunk checks out (and the whole rows of a torn last chunk), and what
    is wrong with the rest: chunks failing their checksum, stray bytes, a damaged header.

    Raises FileNotFoundError when the file is missing.
    """
    rows, problems = read_sample_rows(path)
    return (rows.frame() if len(rows) else _empty_samples()), problems


def read_sample_rows(path: Path) -> tuple[SampleRows, list[str]]:
    """read_samples_bin as arrays.

    A whole chunk is read as 2 x rows int64 values and the columns split once per file: a structured-array
    concatenation per chunk and a search for the next chunk's magic (needed only when a chunk does not check
    out) were half of reading a big run's samples.
    """
    data = path.read_bytes()
    problems: list[str] = []
    pos = 0
    if len(data) >= SAMPLES_HEADER.size and data[:8] == SAMPLES_MAGIC:
        _, version, size, _ = SAMPLES_HEADER.unpack_from(data)
        if version > FORMAT_VERSION:
            return NO_SAMPLES, [f"samples format {version} is newer than this benchbot reads; upgrade benchbot"]
        pos = size
    elif data:
        problems.append("its file header is damaged")
    names: list[str] = []
    pieces: list[np.ndarray] = []
    lengths: list[int] = []
    codes: list[int] = []
    bad: list[str] = []
    stray = 0
    end = len(data)
    crc32 = zlib.crc32
    while pos < end:
        if data[pos:pos + 4] != CHUNK_MAGIC:
            found = data.find(CHUNK_MAGIC, pos)
            nxt = end if found < 0 else found
            stray += nxt - pos
            pos = nxt
            continue
        if pos + CHUNK_HEADER.size > end:  # a header cut off: the writer died in it, or the file was cut
            stray += end - pos
            break
        _, raw_phase, rows, _, crc = CHUNK_HEADER.unpack_from(data, pos)
        body = pos + CHUNK_HEADER.size
        stop = body + 16 * rows
        if stop <= end and crc32(data[body:stop], crc32(data[pos:pos + 20])) == crc:
            if rows:
                pieces.append(np.frombuffer(data, _I8, 2 * rows, body))
                lengths.append(rows)
                codes.append(_code(names, raw_phase.rstrip(b"\0").decode("ascii", "replace")))
            pos = stop
            continue
        phase = raw_phase.rstrip(b"\0").decode("ascii", "replace")
        following = data.find(CHUNK_MAGIC, body)
        if stop > end and following < 0:  # the last chunk, cut short: its whole rows are as written
            whole = (end - body) // 16
            if whole:
                pieces.append(np.frombuffer(data, _I8, 2 * whole, body))
                lengths.append(whole)
                codes.append(_code(names, phase))
            stray += (end - body) % 16
            break
        nxt = end if following < 0 else following
        bad.append(f"{rows} {phase} rows at byte {pos}")
        pos = nxt
    if bad:
        problems.append(f"{len(bad)} chunk(s) failing their checksum, dropped ({'; '.join(bad[:3])}"
                        + ("; …" if len(bad) > 3 else "") + ")")
    if stray:
        problems.append(f"{stray} stray byte(s)")
    if not pieces:
        return NO_SAMPLES, problems
    flat = np.concatenate(pieces) if len(pieces) > 1 else pieces[0]
    order = sorted(range(len(names)), key=lambda i: names[i])  # categories sorted, as the CSV reader had them
    remap = np.empty(len(names), np.int8)
    remap[order] = np.arange(len(names), dtype=np.int8)
    phase_codes = np.repeat(remap[np.asarray(codes, dtype=np.intp)], lengths)
    return SampleRows(tuple(names[i] for i in order), phase_codes,
                      np.ascontiguousarray(flat[0::2], dtype=np.int64),
                      np.ascontiguousarray(flat[1::2], dtype=np.int64)), problems


#: One little-endian int64: a samples.bin row is two of them (start_ns, latency_ns), as ROW spells out.
_I8 = np.dtype("<i8")


def _code(names: list[str], phase: str) -> int:
    if phase not in names:
        names.append(phase)
    return names.index(phase)


def read_samples_csv(path: Path) -> tuple[pd.DataFrame, int]:
    """Formats 1 and 2: every readable row of a samples.csv and the number of unreadable lines.

    Raises FileNotFoundError when the file is missing.
    """
    unreadable = 0
    try:
        frame = pd.read_csv(path, dtype={"phase": "category", "start_ns": "int64", "latency_ns": "int64"},
                            on_bad_lines="skip")
    except pd.errors.EmptyDataError:
        frame = _empty_samples()
    except (ValueError, pd.errors.ParserError):  # a torn or damaged line: keep every row that still reads
        raw = pd.read_csv(path, dtype=str, on_bad_lines="skip", keep_default_na=False)
        numbers = raw[["start_ns", "latency_ns"]].apply(pd.to_numeric, errors="coerce")
        good = numbers.notna().all(axis=1) & raw["phase"].isin(["warmup", "loop"])
        unreadable = int((~good).sum())
        frame = pd.DataFrame({"phase": raw.loc[good, "phase"].astype("category"),
                              "start_ns": numbers.loc[good, "start_ns"].astype("int64"),
                              "latency_ns": numbers.loc[good, "latency_ns"].astype("int64")})
        frame = frame.reset_index(drop=True)
    return frame, unreadable


@dataclass
class StoredRun:
    """A run as stored: its manifest, every cell attempt and the run log, and what each status is.

    `benchbot.summary.Run` (what `benchbot.load_run` returns) adds the tidy DataFrames.
    """

    folder: Path
    manifest: dict[str, Any]
    attempts: dict[str, list[CellAttempt]]
    log: list[dict[str, Any]]
    log_damage: str | None = None  # lines of log.jsonl that do not parse (a torn last line is not damage)
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
        return self.state == "complete"

    @cached_property
    def writer(self) -> dict[str, Any] | None:
        """The benchbot process writing this run right now (host, pid, since), or None (`benchbot.locks`)."""
        from benchbot.locks import run_writer

        return run_writer(self.folder)

    @property
    def state(self) -> str:
        """complete; running (a benchbot writes it now); incomplete (it ended early, or a cell did not finish);
        or damaged (every cell finished, but some stored samples, events or log lines are not what was
        written)."""
        if self.writer is not None:
            return "running"
        ended = any(e.get("event") == "run_end" for e in self.log)
        statuses = {self.status(c.key) for c in self.cells}
        if ended and statuses <= {"ok"} and not self.log_damage:
            return "complete"
        return "incomplete" if not ended or statuses - {"ok", "damaged"} else "damaged"

    def state_words(self) -> str:
        """The run's state in the words a report header uses, damage counted (it can come with a cut-off run)."""
        state = self.state
        if state == "complete":
            return state
        if self.writer is not None:
            return (f"RUNNING (being written by benchbot pid {self.writer.get('pid')} since "
                    f"{self.writer.get('since')}: this shows what is stored so far)")
        words = ["INCOMPLETE (some cells did not finish)"] if state == "incomplete" else []
        if damaged := len(self.damaged()):
            words.append(f"DAMAGED ({damaged} repetition(s) whose stored samples or events are not whole; "
                         f"`benchbot run --resume {self.run_id}` measures them again)")
        if self.log_damage:
            words.append(f"DAMAGED ({self.log_damage}: what those lines said is lost)")
        return ", ".join(words)

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


R = TypeVar("R", bound=StoredRun)


def open_run(run: str | os.PathLike[str] | None = None, results: str | os.PathLike[str] | None = None,
             cls: type[R] = StoredRun) -> R:  # type: ignore[assignment]
    """Read a run (id, id prefix, folder, or None for the latest): its manifest, log and every attempt's events.

    Samples are read when first asked for. `benchbot.load_run` wraps this with the analysis on top.
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
                    bad: list[int] = []
                    events, telemetry = _read_attempt_events(sub, bad)
                    found.append(CellAttempt(cell, int(sub.name), sub, events, rep, telemetry,
                                             events_damage=_unreadable(sub / EVENTS_FILE, bad)))
        attempts[cell.key] = found
    bad = []
    log = read_jsonl(folder / "log.jsonl", bad)
    return cls(folder, manifest, attempts, log, _unreadable(folder / "log.jsonl", bad))


def _repetition_folders(base: Path) -> list[tuple[int, Path]]:
    """(repetition, folder holding its attempts) of a cell folder; format 1 kept attempts in the cell folder."""
    reps = [(int(p.name[3:]), p) for p in base.iterdir() if p.name.startswith("rep") and p.name[3:].isdigit()]
    if any(p.name.isdigit() for p in base.iterdir()):
        reps.append((1, base))
    return sorted(reps, key=lambda item: item[0])
