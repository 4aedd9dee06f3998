"""The wire format between the host and the device agent: one home for the job and the events.

The agent (`benchbot/agent.py`) is a self-contained file for Python 3.8 and cannot
import this module, so it keeps its own copy of `PROTOCOL` and reads every job field
it needs by name, with no fallbacks: a job that lacks a field is an error there, so
the host's defaults below are the only defaults. The host checks the protocol the
agent announces in its `hello` before it sends any work.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from benchbot.errors import BenchbotError

#: Version of the job and event format. Bump it, and the agent's copy, on any incompatible change.
PROTOCOL = 2

#: Events the agent prints, one JSON object per line, each with an "event" key.
EVENTS = ("hello", "cell_start", "init", "samples", "telemetry", "accuracy", "cell_end", "error", "temp", "probe")


@dataclass(frozen=True)
class Job:
    """One repetition of one cell, as the agent receives it on stdin."""

    cell_id: str
    repetition: int
    model_path: str
    eval_path: str | None
    threads: int
    xnnpack: bool
    batch: int
    runtime: str
    warmup_runs: int
    warmup_seconds: float
    min_runs: int
    min_seconds: float
    max_seconds: float
    seed: int
    telemetry_interval_s: float
    eval_max_seconds: float
    deadline_s: float
    chunk: int = 1000          # samples per `samples` event at most
    flush_seconds: float = 1.0  # and at least one event per this many seconds of loop
    protocol: int = PROTOCOL
    # the user's inputs (benchbot.model_inputs): ranges and shapes by input name, a data file on the device
    input_ranges: dict[str, list[int]] | None = None
    input_shapes: dict[str, list[int]] | None = None
    input_data: str | None = None
    input_data_label: str | None = None  # the file's own name, for messages (the device copy is named by hash)
    signature: str | None = None

    def to_wire(self) -> bytes:
        return json.dumps(asdict(self)).encode()


class ProtocolError(BenchbotError):
    """The agent on a device speaks another version of the protocol."""


def parse_line(line: str) -> dict[str, Any] | None:
    """One agent event from a line of its stdout, or None for anything else (a library's chatter)."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict) or not isinstance(event.get("event"), str):
        return None
    return event


def first_event(lines: list[str], kind: str) -> dict[str, Any] | None:
    """The first event of a kind among an agent's output lines."""
    for line in lines:
        event = parse_line(line)
        if event is not None and event["event"] == kind:
            return event
    return None


def check_hello(hello: dict[str, Any], where: str) -> None:
    """Refuse an agent that speaks another protocol: its events would be misread.

    Every answer that stands alone (`hello`, `probe`) carries the protocol, so each is checked the same way.
    """
    found = hello.get("protocol")
    if found != PROTOCOL:
        raise ProtocolError(f"{where}: the agent speaks protocol {found}, this benchbot speaks {PROTOCOL}; "
                            "the agent file on the device does not match this benchbot")


def standalone_job(model_path: str, **changes: Any) -> dict[str, Any]:
    """A complete job for running the agent by hand (tests, bench/): the host's defaults, then `changes`."""
    from benchbot.plan import Settings

    s = Settings()
    job = asdict(Job(
        cell_id="cell", repetition=1, model_path=model_path, eval_path=None, threads=1, xnnpack=True, batch=1,
        runtime="auto", warmup_runs=s.warmup_runs, warmup_seconds=s.warmup_seconds, min_runs=s.min_runs,
        min_seconds=s.min_seconds, max_seconds=s.max_seconds, seed=s.seed, telemetry_interval_s=0.1,
        eval_max_seconds=s.max_seconds, deadline_s=s.max_seconds * 3 + 60,
    ))
    unknown = sorted(set(changes) - set(job))
    if unknown:
        raise ValueError(f"not job fields: {', '.join(unknown)}")
    job.update(changes)
    return job
