"""Fast unit tests (no agent process, no device): how a finished agent process is classified, how torn lines
are recovered, which flags a cell's summary row gets, and the shared vocabulary of tables and plots."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from benchbot import protocol
from benchbot.session import classify
from benchbot.store import read_jsonl
from benchbot.summary import _aggregate
from benchbot.transport.base import CommandResult
from benchbot.vocab import PALETTE, VARIANT_ORDER, cell_label, variant_color, variant_key

# ----------------------------------------------------------------------------- outcome classification


def _stream(fatal: str | None = None, ended: bool = False) -> Any:
    return SimpleNamespace(fatal_error=fatal, ended={"event": "cell_end"} if ended else None)


@pytest.mark.parametrize(("stream", "result", "expected"), [
    (_stream(ended=True), CommandResult(0), ("ok", None, False)),
    (_stream(ended=True), CommandResult(0, interrupted=True), ("incomplete", "interrupted", False)),
    (_stream("model failed to load", ended=True), CommandResult(1), ("failed", "model failed to load", False)),
    (_stream(), CommandResult(None, timed_out=True),
     ("failed", "the cell exceeded its deadline of 30 s and was stopped", False)),
    (_stream(), CommandResult(None, "Connection reset by peer\n\n"),
     ("failed", "the connection to the device was lost (Connection reset by peer)", True)),
    (_stream(), CommandResult(-11), ("failed", "the agent died with SIGSEGV (the runtime crashed)", False)),
    (_stream(), CommandResult(127, "sh: 1: /nope/python: not found"),
     ("failed", "the agent could not start: sh: 1: /nope/python: not found", False)),
    (_stream(), CommandResult(1, "Traceback (most recent call last):\nImportError: no numpy\n"),
     ("failed", "the agent exited with status 1 before finishing: ImportError: no numpy", False)),
    (_stream(), CommandResult(0), ("failed", "the agent exited with status 0 before finishing", False)),
])
def test_outcome_classification(stream: Any, result: CommandResult, expected: tuple) -> None:
    assert classify(stream, result, 30.0) == expected


def test_a_kill_from_outside_is_not_called_a_crash() -> None:
    status, reason, lost = classify(_stream(), CommandResult(-9), 30.0)
    assert (status, lost) == ("failed", False)
    assert reason is not None and "killed by signal 9 (SIGKILL) from outside benchbot" in reason
    assert "out-of-memory" in reason and "crashed" not in reason


# ----------------------------------------------------------------------------- torn lines


def test_a_torn_last_event_line_is_skipped_and_the_rest_kept(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    events = [{"event": "hello", "protocol": 1}, {"event": "samples", "latency_ns": [1, 2, 3]}]
    path.write_text("".join(json.dumps(e) + "\n" for e in events) + '\n{"event": "cell_end", "loop_')
    assert read_jsonl(path) == events
    assert read_jsonl(tmp_path / "missing.jsonl") == []


@pytest.mark.parametrize(("line", "event"), [
    ('{"event": "cell_end", "loop_ns": 5}\n', {"event": "cell_end", "loop_ns": 5}),
    ('{"event": "cell_end", "loop_', None),           # torn by a dying agent or a lost connection
    ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.", None),  # a library's chatter
    ('{"no_event": 1}', None),
    ('["event"]', None),
    ("", None),
])
def test_agent_lines_are_events_or_nothing(line: str, event: dict | None) -> None:
    assert protocol.parse_line(line) == event


# ----------------------------------------------------------------------------- summary flags


def _reps(medians: list[float], status: str = "ok", flags: str = "") -> list[dict[str, Any]]:
    return [{"status": status, "p50_ms": m, "repetition": i + 1, "count": 400, "loop_s": 0.4, "flags": flags}
            for i, m in enumerate(medians)]


def _flags(reps: list[dict[str, Any]], samples: int = 2000, planned: int | None = None) -> list[str]:
    return _aggregate(reps, planned or len(reps), np.full(samples, 1.0), 1)["_flags"]


def test_steady_repetitions_raise_no_flag() -> None:
    assert _flags(_reps([1.00, 1.02, 0.99, 1.01, 1.00])) == []


def test_repetitions_that_disagree_by_more_than_ten_percent_are_unstable() -> None:
    assert _flags(_reps([1.0, 1.3, 0.8, 1.2, 0.9])) == ["unstable"]


def test_one_repetition_says_so_and_keeps_its_own_instability() -> None:
    assert _flags(_reps([1.0])) == ["one-repetition"]
    assert _flags(_reps([1.0], flags="unstable")) == ["unstable", "one-repetition"]


def test_a_throttled_repetition_flags_the_cell() -> None:
    reps = _reps([1.0, 1.01, 0.99])
    reps[1]["flags"] = "throttled"
    assert _flags(reps) == ["throttled"]


def test_too_few_pooled_samples_for_p99() -> None:
    row = _aggregate(_reps([1.0, 1.01]), 2, np.full(100, 1.0), 1)
    assert "few-samples" in row["_flags"] and "p99" in row["few_samples"]
    assert "few-samples" not in _flags(_reps([1.0, 1.01]), samples=5000)


def test_failed_repetitions_are_not_measured() -> None:
    reps = _reps([1.0, 1.01]) + _reps([9.0], status="failed")
    reps[2]["repetition"] = 3
    row = _aggregate(reps, 3, np.full(2000, 1.0), 1)
    assert row["reps_ok"] == 2 and row["rep_p50_ms"] == [1.0, 1.01] and "unstable" not in row["_flags"]


# ----------------------------------------------------------------------------- vocabulary


def test_variants_sort_known_first_then_by_name() -> None:
    assert sorted(["zz", "int8", "aa", "fp32", "dynamic"], key=variant_key) == ["fp32", "dynamic", "int8", "aa", "zz"]


def test_variant_colours_are_tab10_in_variant_order() -> None:
    import matplotlib
    from matplotlib.colors import to_hex

    assert [to_hex(c) for c in matplotlib.colormaps["tab10"].colors] == list(PALETTE)
    assert [variant_color(v) for v in VARIANT_ORDER] == list(PALETTE[:len(VARIANT_ORDER)])
    others = {"b-custom", "a-custom"}
    assert variant_color("a-custom", others) == PALETTE[len(VARIANT_ORDER)]
    assert variant_color("b-custom", others) == PALETTE[len(VARIANT_ORDER) + 1]


def test_cell_label_names_only_what_differs_from_the_defaults() -> None:
    assert cell_label("m", "int8", 4) == "m/int8 t4"
    assert cell_label("m", "int8", 1, xnnpack=False, batch=8) == "m/int8 t1 no-xnnpack batch 8"


# ----------------------------------------------------------------------------- exports of hostile names

HOSTILE = {"run_id": "r1", "device": "dev<b>", "model": '<script>alert("x")</script>|a\nb\\', "variant": "fp32",
           "threads": 1, "xnnpack": True, "batch": 1, "status": "ok", "p50_ms": 1.0, "flags": "unstable", "key": "k"}


def test_html_escapes_every_name() -> None:
    import html as std_html

    import pandas as pd

    from benchbot.report import html, table

    page = html.render(table._as_data(pd.DataFrame([HOSTILE])))
    assert "<script" not in page and "<b>" not in page.replace("<b>Note:</b>", "")
    assert std_html.escape(HOSTILE["device"]) in page and "&lt;script&gt;" in page
    assert 'data-cell="r1|dev&lt;b&gt;|&lt;script&gt;' in page  # inside an attribute too
    assert "{{" not in page and "{%" not in page


def test_the_trade_off_section_escapes_every_name() -> None:
    from benchbot.report.html import render_fragment

    evil = HOSTILE["model"]
    device = {"label": "dev<b>", "headers": ["model", "size"], "rows": [[("model", evil), ("size", "1 KiB")]],
              "notes": [evil], "lines": [evil], "placed": [evil], "cross": [(evil, [evil])], "image": None,
              "caption": ""}
    page = str(render_fragment("tradeoff.html.j2", intro="in<b>tro", numeric={"size"}, devices=[device]))
    assert "<script" not in page and "<b>" not in page
    assert page.count("&lt;script&gt;") == 6 and "dev&lt;b&gt;" in page  # table, note, headline, delegation, cross
    assert '<td class="num">1 KiB</td>' in page and '<td class="txt">&lt;script&gt;' in page


def test_csv_cells_defuse_formulas_and_keep_one_record_per_line() -> None:
    import csv
    import io

    import pandas as pd

    from benchbot.report import table

    rows = [dict(HOSTILE, model=name, key=str(i)) for i, name in enumerate(
        ['=HYPERLINK("http://x","y")', "+1", "-2", "@SUM(A1)", "\tx", "plain-name", HOSTILE["model"]])]
    text = table.to_csv(pd.DataFrame(rows))
    read = list(csv.DictReader(io.StringIO(text)))
    assert len(text.splitlines()) == len(rows) + 1, "a name split a record"
    assert [r["model"] for r in read] == ["'=HYPERLINK(\"http://x\",\"y\")", "'+1", "'-2", "'@SUM(A1)", "\\tx",
                                          "plain-name", '<script>alert("x")</script>|a\\nb\\']
    assert [r["device"] for r in read] == ["dev<b>"] * len(rows) and read[0]["p50_ms"] == "1.0"  # numbers as they are


def test_markdown_cells_keep_a_hostile_name_on_one_row() -> None:
    from benchbot.report.fmt import markdown_table
    from tests.conftest import md_rows

    lines = markdown_table(["model", "p50 ms"], [[HOSTILE["model"], "1.00"]], {"p50 ms"})
    assert len(lines) == 3 and lines[1].endswith("--:|")
    assert md_rows("\n".join(lines)) == [["model", "p50 ms"], ['<script>alert("x")</script>\\|a\\\\nb\\\\', "1.00"]]


def test_positions_within_a_phase_count_per_attempt_and_phase_as_a_loop_would() -> None:
    """summary._order_in_phase works on runs of equal phase; checked against the plain count on random attempts
    whose phases come in order (as the agent writes them) or interleaved (as a damaged or odd file may)."""
    from benchbot.summary import _order_in_phase

    rng = np.random.default_rng(1)
    for _ in range(500):
        counts = [int(rng.integers(1, 30)) for _ in range(int(rng.integers(1, 5)))]
        codes = np.concatenate([np.sort(rng.integers(-1, 3, c)) if rng.random() < 0.5 else rng.integers(-1, 3, c)
                                for c in counts]).astype(np.int8)
        expected, at = [], 0
        for count in counts:
            seen: dict[int, int] = {}
            for code in codes[at:at + count].tolist():
                expected.append(seen.get(code, 0))
                seen[code] = seen.get(code, 0) + 1
            at += count
        assert _order_in_phase(codes, counts).tolist() == expected
    assert _order_in_phase(np.empty(0, np.int8), []).tolist() == []
