"""The device session's line stream (what it stores and keeps for the verdict); tests/test_units.py covers classify."""

from __future__ import annotations

import json
from typing import Any

import pytest

from benchbot.progress import QuietProgress
from benchbot.session import CellStream, classify
from benchbot.transport.base import CommandResult


class Sink:
    """Stands in for the store's CellWriter: keeps what would be written."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def write_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)


def stream_of(*events: dict[str, Any], noise: str = "") -> CellStream:
    progress = QuietProgress()
    progress.add_device("pi", 1)
    stream = CellStream(Sink(), progress, "pi", [])  # type: ignore[arg-type]
    for event in events:
        stream(json.dumps(event))
    if noise:
        stream(noise)
    return stream


END = {"event": "cell_end", "loop_ns": 5}


def test_a_non_fatal_error_does_not_fail_the_cell_and_chatter_is_kept() -> None:
    stream = stream_of({"event": "error", "message": "no eval set", "fatal": False}, END, noise="INFO: XNNPACK")
    assert classify(stream, CommandResult(0), 90.0) == ("ok", None, False)
    assert stream.noise == ["INFO: XNNPACK"]
    assert stream.writer.events[-1] == {"event": "stdout", "source": "device", "text": "INFO: XNNPACK"}  # type: ignore[attr-defined]


def test_loop_samples_feed_the_running_median() -> None:
    stream = stream_of({"event": "samples", "phase": "loop", "latency_ns": [1_000_000, 3_000_000, 2_000_000]})
    assert stream.runs == 3 and stream.p50_ms == pytest.approx(2.0)
