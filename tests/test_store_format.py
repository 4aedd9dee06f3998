"""The store's formats: samples.bin (format 3) round-trips and names its own damage on real files; runs stored
by formats 1 and 2 (fixtures made by that code, tests/data/runs) still load and report; no module pair of
benchbot imports each other."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import benchbot
from benchbot.plan import Cell, Plan, Settings, Unit, cell_key
from benchbot.profiles import Profile
from benchbot.store import CHUNK_HEADER, SAMPLES_HEADER, RunWriter, read_samples_bin
from tests.conftest import REPO, run_cli

FIXTURES = REPO / "tests" / "data" / "runs"
CHUNK = CHUNK_HEADER.size


def _fixture(fmt: int, tmp_path: Path) -> Path:
    """A copy of the format's fixture run (a report writes into its run folder)."""
    [src] = [p for p in (FIXTURES / f"format{fmt}").iterdir() if p.is_dir()]
    dest = tmp_path / "results" / src.name
    shutil.copytree(src, dest)
    shutil.copy(src.with_name(src.name + ".expected.json"), tmp_path)
    return dest


@pytest.mark.parametrize("fmt", [1, 2])
def test_runs_of_older_formats_load_and_report(fmt: int, tmp_path: Path) -> None:
    folder = _fixture(fmt, tmp_path)
    expected = json.loads((tmp_path / f"{folder.name}.expected.json").read_text())
    run = benchbot.load_run(folder)
    assert run.manifest["version"] == fmt and run.complete and run.damaged() == []
    got = run.samples.groupby(["variant", "repetition", "phase"], observed=True)["latency_ns"].agg(["count", "sum"])
    for label, want in expected.items():
        variant, rep = label.split("/")
        for phase in ("loop", "warmup"):
            assert tuple(got.loc[(variant, int(rep), phase)]) == (want[phase], want[f"{phase}_sum_ns"])
    summary = run.summary.set_index("variant")
    assert (summary["status"] == "ok").all() and summary.loc["fp32", "reps_ok"] == (1 if fmt == 1 else 2)
    assert summary.loc["int8", "size_ratio"] == pytest.approx(40_000 / 12_000)
    assert not run.telemetry.empty
    env = {"BENCHBOT_RESULTS": str(tmp_path / "results"), "PATH": "/usr/bin:/bin"}
    shown = run_cli(["report", "--no-plots", folder.name], env)
    assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr
    assert "tiny" in shown.stdout and "int8" in shown.stdout
    verify = run_cli(["runs", "--verify", folder.name], env)
    assert verify.returncode == 0, verify.stdout + verify.stderr


# ----------------------------------------------------------------------------- format 3 on disk


def _write_run(root: Path, chunks: list[tuple[str, int]], outcome: bool = True) -> tuple[Path, np.ndarray]:
    """One cell, one repetition, written by the store's own writer; returns the samples file and every row."""
    cell = Cell(key=cell_key("local", "m", "fp32", 1, True, 1), device="local", model="m", variant="fp32", threads=1,
                xnnpack=True, batch=1, model_path="/x.tflite", model_sha256="0" * 64, model_size=1, eval_path=None,
                baseline=None, repetitions=1)
    writer = RunWriter.create(root, Plan([Profile("local", None)], [cell], Settings()))
    w = writer.cell_writer(Unit(cell, 1))
    rows, t = [], 10**12
    for phase, n in chunks:
        lat = np.arange(n, dtype=np.int64) * 7 + 1_000_003
        start = t + np.arange(n, dtype=np.int64) * 2_000_000
        t += n * 2_000_000
        w.write_event({"event": "samples", "phase": phase, "start_ns": start.tolist(), "latency_ns": lat.tolist()})
        rows += list(zip([phase] * n, start.tolist(), lat.tolist()))
    w.write_event({"event": "cell_end", "loop_runs": sum(n for p, n in chunks if p == "loop"), "loop_ns": 10**9})
    if outcome:
        w.note("outcome", status="ok", reason=None)
    w.close()
    return w.folder / "samples.bin", np.array(rows, dtype=object)


def _load_one(path: Path) -> benchbot.Run:
    return benchbot.load_run(path.parents[4])


def test_samples_round_trip_bit_exact(tmp_path: Path) -> None:
    path, rows = _write_run(tmp_path, [("warmup", 3), ("loop", 1000), ("loop", 1000), ("loop", 17)])
    assert path.read_bytes()[:8] == b"BBSAMPLE"
    assert path.stat().st_size == SAMPLES_HEADER.size + 4 * CHUNK + 16 * 2020
    run = _load_one(path)
    [attempt] = run.attempts[run.cells[0].key]
    assert attempt.status == "ok" and attempt.damage is None
    assert attempt.first("outcome")["samples_written"] == {"warmup": 3, "loop": 2017}
    frame = attempt.samples()
    assert list(frame["phase"].astype(str)) == list(rows[:, 0])
    assert frame["start_ns"].tolist() == list(rows[:, 1]) and frame["latency_ns"].tolist() == list(rows[:, 2])
    assert run.samples["i"].tolist() == list(range(3)) + list(range(2017))
    assert run.manifest["version"] == 3 and run.summary.loc[0, "count"] == 2017


def _chunk_offset(k: int, sizes: list[int]) -> int:
    return SAMPLES_HEADER.size + sum(CHUNK + 16 * n for n in sizes[:k])


def test_overwritten_bytes_drop_only_their_chunk_and_are_named(tmp_path: Path) -> None:
    sizes = [500, 500, 500]
    path, _ = _write_run(tmp_path, [("loop", n) for n in sizes])
    data = bytearray(path.read_bytes())
    at = _chunk_offset(1, sizes) + CHUNK + 16 * 100 + 3  # inside row 100 of the second chunk
    data[at:at + 5] = b"\xff" * 5
    path.write_bytes(bytes(data))
    [attempt] = _load_one(path).attempts["local--m--fp32--t1"]
    assert attempt.status == "damaged" and len(attempt.samples()) == 1000
    assert attempt.damage == (f"{path} is damaged: 1000 of 1500 loop samples readable, 1 chunk(s) failing their "
                              f"checksum, dropped (500 loop rows at byte {_chunk_offset(1, sizes)})")


def test_inserted_garbage_between_chunks_keeps_every_row(tmp_path: Path) -> None:
    sizes = [300, 300]
    path, rows = _write_run(tmp_path, [("loop", n) for n in sizes])
    data = path.read_bytes()
    cut = _chunk_offset(1, sizes)
    path.write_bytes(data[:cut] + b"loop,12x,garbage\n" + data[cut:])
    run = _load_one(path)
    [attempt] = run.attempts["local--m--fp32--t1"]
    assert attempt.samples()["latency_ns"].tolist() == list(rows[:, 2])
    assert attempt.damage == f"{path} is damaged: 17 stray byte(s)"
    assert [u.cell.key for u in run.units_todo()] == ["local--m--fp32--t1"]  # --resume measures it again
    assert run.summary.loc[0, "status"] == "damaged" and "damaged" in run.summary.loc[0, "flags"]


def test_truncated_file_keeps_rows_before_the_cut(tmp_path: Path) -> None:
    sizes = [10, 400, 400]
    path, rows = _write_run(tmp_path, [("warmup", 10), ("loop", 400), ("loop", 400)])
    data = path.read_bytes()
    path.write_bytes(data[:_chunk_offset(2, sizes) + CHUNK + 16 * 123 + 5])
    [attempt] = _load_one(path).attempts["local--m--fp32--t1"]
    assert attempt.samples()["latency_ns"].tolist() == list(rows[:10 + 400 + 123, 2])
    assert attempt.damage == f"{path} is damaged: 523 of 800 loop samples readable, 5 stray byte(s)"


def test_deleted_and_headless_files(tmp_path: Path) -> None:
    path, _ = _write_run(tmp_path / "a", [("loop", 50)])
    path.unlink()
    [attempt] = _load_one(path).attempts["local--m--fp32--t1"]
    assert attempt.status == "damaged" and attempt.damage == f"{path} is missing (50 samples were written)"
    path, _ = _write_run(tmp_path / "b", [("loop", 50)])
    path.write_bytes(b"\0" * 16 + path.read_bytes()[16:])
    [attempt] = _load_one(path).attempts["local--m--fp32--t1"]
    assert len(attempt.samples()) == 50 and attempt.damage == (f"{path} is damaged: its file header is damaged, "
                                                               "16 stray byte(s)")


def test_a_run_killed_mid_chunk_is_incomplete_not_damaged(tmp_path: Path) -> None:
    path, _ = _write_run(tmp_path, [("loop", 200), ("loop", 200)], outcome=False)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) - 16 * 50 - 9])  # the writer died inside its last write
    frame, problems = read_samples_bin(path)
    assert len(frame) == 349 and problems == ["7 stray byte(s)"]
    events = path.with_name("events.jsonl")
    events.write_text("".join(line + "\n" for line in events.read_text().splitlines() if "cell_end" not in line))
    [attempt] = _load_one(path).attempts["local--m--fp32--t1"]
    assert attempt.status == "incomplete" and len(attempt.samples()) == 349


# ----------------------------------------------------------------------------- layering


def _imports(path: Path, package: Path) -> set[str]:
    """Every benchbot module a file imports, anywhere in it (function bodies and TYPE_CHECKING blocks too)."""
    tree = ast.parse(path.read_text())
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = parts[:len(parts) - node.level] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.add(module)
            found |= {f"{module}.{a.name}" for a in node.names}
    return {m for m in found if m.split(".")[0] == "benchbot"}


def _import_pairs() -> tuple[dict[str, set[str]], list[tuple[str, ...]]]:
    """The import graph of benchbot/ (the package facade, benchbot/__init__.py with its lazy attributes, aside)
    and every pair of modules that import each other."""
    package = REPO / "benchbot"
    modules = {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): p
               for p in package.rglob("*.py") if p != package / "__init__.py"}
    graph = {name: {m for m in _imports(path, package) if m in modules and m != name} for name, path in modules.items()}
    pairs = sorted({tuple(sorted((a, b))) for a, deps in graph.items() for b in deps if a in graph.get(b, ())})
    return graph, pairs


def test_the_store_does_not_import_the_analysis() -> None:
    graph, pairs = _import_pairs()
    assert "benchbot.summary" not in graph["benchbot.store"] and "benchbot.store" in graph["benchbot.summary"]
    assert not [p for p in pairs if "benchbot.store" in p or "benchbot.summary" in p], pairs


def test_no_two_modules_import_each_other() -> None:
    _, pairs = _import_pairs()
    assert pairs == [], pairs


def test_samples_the_format_cannot_hold_are_kept_in_the_events(tmp_path: Path) -> None:
    path, _ = _write_run(tmp_path, [("loop", 10)])
    from benchbot.store import CellWriter

    writer = CellWriter(path.parent, _load_one(path).cells[0], 1)
    writer.write_event({"event": "samples", "phase": "a-long-phase", "start_ns": [1], "latency_ns": [2]})
    writer.write_event({"event": "samples", "phase": "loop", "start_ns": [1, 2], "latency_ns": ["x", None]})
    writer.write_event({"event": "samples", "phase": "loop", "start_ns": [5, 6, 7], "latency_ns": [8, 9]})
    writer.close()
    assert writer.written == {"loop": 2}
    [attempt] = _load_one(path).attempts["local--m--fp32--t1"]
    kept = attempt.all("samples")
    assert [e["phase"] for e in kept] == ["a-long-phase", "loop"] and kept[1]["latency_ns"] == ["x", None]
    assert attempt.samples()["latency_ns"].tolist()[-2:] == [8, 9] and len(attempt.samples()) == 12
    assert "12 of 10 loop" in str(attempt.damage)  # the outcome said 10: the file holds more than it recorded


# ----------------------------------------------------------------------------- telemetry.json (derived)


def _write_with_telemetry(root: Path) -> Path:
    """One repetition with telemetry of every shape the sampler sends (power, rails, RAPL, no thermal zone at
    times), written by the store's writer; returns the attempt's folder."""
    cell = Cell(key=cell_key("local", "m", "fp32", 1, True, 1), device="local", model="m", variant="fp32", threads=1,
                xnnpack=True, batch=1, model_path="/x.tflite", model_sha256="0" * 64, model_size=1, eval_path=None,
                baseline=None, repetitions=1)
    writer = RunWriter.create(root, Plan([Profile("local", None)], [cell], Settings()))
    w = writer.cell_writer(Unit(cell, 1))
    w.write_event({"event": "hello", "protocol": 2, "fingerprint": {"arch": "x86_64"}})
    t0 = 5 * 10**15  # beyond 2**53 once in ns sums: times stay integers
    for i in range(40):
        phase = "warmup" if i < 5 else "loop" if i < 38 else "done"
        reading = {"event": "telemetry", "t_ns": t0 + i * 100_000_000, "phase": phase, "cpu_pct": 40 + i % 7,
                   "cpu_core_pct": [90.5, 3.25], "proc_cpu_pct": 99.5 if i % 5 else None, "rss": 90_000_000 + i,
                   "rss_peak": 95_000_000, "mem_available": 3_000_000_000,
                   "temps_c": {"cpu": 50.0 + i / 10, "gpu": 48.5} if i % 9 else {},
                   "freq_hz": [1_800_000_000, 600_000_000 if i == 20 else 1_800_000_000, 0]}
        if i % 2:
            reading.update(power_w=4.5 + i / 100, rails_w={"cpu": 2.0, "soc": None}, energy_uj={"package-0": 10**6 * i})
        w.write_event(reading)
        if i == 4:
            w.write_event({"event": "samples", "phase": "loop", "start_ns": [t0 + 1, t0 + 2], "latency_ns": [7, 8]})
    w.write_event({"event": "cell_end", "loop_runs": 2, "loop_ns": 3 * 10**9, "loop_start_ns": t0 + 500_000_000,
                   "time_in_state": {"policy0": {"cpus": [0, 1], "khz": [600_000, 1_800_000], "s": [0.2, 2.8]}},
                   "power": {"kind": "hwmon", "total": "board"}})
    w.note("outcome", status="ok", reason=None)
    w.close()
    return w.folder


def _frames(folder: Path) -> tuple[bool, benchbot.Run, dict[str, object]]:
    """Whether the run's telemetry came from telemetry.json, the run, and its frames."""
    run = benchbot.load_run(folder.parents[3])
    from_file = run.attempts[run.cells[0].key][0]._telemetry is not None
    return from_file, run, {"summary": run.summary, "telemetry": run.telemetry, "reps": run.repetition_summary,
                            "samples": run.samples}


def test_telemetry_columns_file_loads_as_the_events_do(tmp_path: Path) -> None:
    """The writer leaves telemetry.json beside events.jsonl; a run loads from it to the very frames that parsing
    the events gives, and without it (runs stored before) or when it no longer matches, from the events."""
    import pandas as pd

    folder = _write_with_telemetry(tmp_path)
    index = json.loads((folder / "telemetry.json").read_text())
    assert index["readings"] == 40 and index["bytes"] == (folder / "events.jsonl").stat().st_size
    from_file, run, fast = _frames(folder)
    [attempt] = run.attempts[run.cells[0].key]
    assert from_file  # the columns came from the file, the readings were not parsed
    assert fast["telemetry"]["t_s"].iloc[0] == -0.5 and fast["summary"].loc[0, "power_mean_w"] is not None
    assert [e["event"] for e in attempt.events].count("telemetry") == 40  # every event, still, when asked
    assert attempt.all("telemetry")[7]["t_ns"] == 5 * 10**15 + 700_000_000

    (folder / "telemetry.json").unlink()
    from_file, _, slow = _frames(folder)
    assert not from_file
    for name in fast:
        pd.testing.assert_frame_equal(fast[name], slow[name], check_exact=True)  # type: ignore[arg-type]

    # an events.jsonl that changed after the file was written: the file is ignored, the events are read
    from benchbot.store import write_telemetry_columns

    assert write_telemetry_columns(folder) is not None
    with open(folder / "events.jsonl", "a") as fh:
        fh.write(json.dumps({"event": "telemetry", "t_ns": 5 * 10**15 + 4 * 10**9, "phase": "done", "cpu_pct": 1.0})
                 + "\n")
    from_file, _, changed = _frames(folder)
    assert not from_file
    assert len(changed["telemetry"]) == 41 and changed["telemetry"]["cpu_pct"].iloc[-1] == 1.0


def test_a_run_whose_manifest_is_damaged_or_missing_is_named_and_never_hides_the_others(tmp_path: Path) -> None:
    whole = _fixture(2, tmp_path)
    results = whole.parent
    damaged, missing = results / "20261201-000000-aaaa", results / "20261201-000001-bbbb"
    shutil.copytree(whole, damaged)
    shutil.copytree(whole, missing)
    (damaged / "manifest.json").write_text('{"format": "benchbot-run", "plan": ')  # cut mid-write
    (missing / "manifest.json").unlink()
    env = {"BENCHBOT_RESULTS": str(results), "PATH": "/usr/bin:/bin"}

    listed = run_cli(["runs"], env)
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].startswith(f"{damaged.name}  unreadable  {damaged / 'manifest.json'} is damaged (")
    assert lines[1] == (f"{missing.name}  unreadable  {missing} is damaged: its manifest.json (the run's plan and "
                        f"settings) is missing; what was measured is still in {missing / 'cells'}")
    assert lines[2].startswith(f"{whole.name}  complete ")

    verify = run_cli(["runs", "--verify"], env)
    assert verify.returncode == 1 and f"2 run(s) cannot be read: {damaged.name}, {missing.name}" in verify.stderr
    assert "verified: every repetition's samples and events are whole" in verify.stdout  # the whole run is still checked

    for broken in (damaged, missing):
        shown = run_cli(["report", "--no-plots", broken.name], env)
        assert shown.returncode == 2 and "Traceback" not in shown.stderr and str(broken) in shown.stderr
        resumed = run_cli(["run", "--resume", broken.name], env)
        assert resumed.returncode == 2 and "is damaged" in resumed.stderr, resumed.stderr
    assert run_cli(["report", "--no-plots", whole.name], env).returncode == 0


def test_unreadable_lines_in_events_and_the_run_log_are_damage_but_a_torn_last_line_is_not(tmp_path: Path) -> None:
    folder = _fixture(2, tmp_path)
    env = {"BENCHBOT_RESULTS": str(folder.parent), "PATH": "/usr/bin:/bin"}
    log = folder / "log.jsonl"
    log.write_bytes(log.read_bytes() + b'{"event": "cell", "key": "loc')  # the host died mid-write
    torn = benchbot.load_run(folder)
    assert torn.log_damage is None and torn.state == "complete"

    events = folder / "cells" / "local--tiny--fp32--t1" / "rep1" / "1" / "events.jsonl"
    lines = events.read_bytes().splitlines(keepends=True)
    events.write_bytes(b"".join(lines[:2]) + b"{garbage\n" + b"".join(lines[2:]))
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:3]) + b"\x00\x00\x00\n" + b"".join(lines[3:]))

    run = benchbot.load_run(folder)
    assert run.log_damage == f"{log} is damaged: 1 unreadable line(s) (line 4)"
    [attempt] = run.damaged()
    assert (attempt.cell.variant, attempt.repetition) == ("fp32", 1)
    assert attempt.damage == f"{events} is damaged: 1 unreadable line(s) (line 3)"
    assert run.state == "damaged" and not run.complete
    assert run.summary.set_index("variant").loc["int8", "status"] == "ok"  # the rest reads normally

    verify = run_cli(["runs", "--verify", folder.name], env)
    assert verify.returncode == 1 and f"  damaged: {run.log_damage}" in verify.stdout
    assert f"repetition 1: {attempt.damage}" in verify.stdout
    shown = run_cli(["report", "--no-plots", "--format", "md", folder.name], env)
    assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr
    assert f"Run {run.run_id}: {run.log_damage}; what those lines said" in shown.stdout


def test_runs_of_one_second_sort_in_the_order_they_were_started(tmp_path: Path) -> None:
    import os

    from benchbot.store import find_run, list_runs

    first, second = tmp_path / "20261203-120000-ffff", tmp_path / "20261203-120000-0000"  # the later, smaller tail
    for folder, when in ((first, 1_000), (second, 2_000)):
        folder.mkdir()
        (folder / "manifest.json").write_text("{}")
        os.utime(folder / "manifest.json", ns=(when, when))
    older = tmp_path / "20261203-115959-9999"
    older.mkdir()
    (older / "log.jsonl").write_text("")  # a run without its manifest still sorts by its second
    assert list_runs(tmp_path) == [older, first, second]
    assert find_run(None, tmp_path) == second
