"""Issue 15, nothing lost and nothing silently wrong, on the local device: real processes, real signals,
real files damaged on disk. Each test checks the sentence, the exit code and that what was measured is kept."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import benchbot
from benchbot.models.catalog import ZOO_DIR, ModelError, check_tflite, resolve_models, zoo_families
from benchbot.models.verify import DamagedModel, _Reader, _Table, verify_tflite
from benchbot.session import signal_reason
from tests.conftest import BENCHBOT, QUICK, REPO, md_rows, run_cli, write_profile

pytestmark = pytest.mark.skipif(not zoo_families(), reason="the model zoo is not built")



def timing(min_seconds: float) -> list[str]:
    return ["--warmup-runs", "1", "--warmup-seconds", "0", "--min-runs", "10", "--min-seconds", str(min_seconds),
            "--no-accuracy", "--repetitions", "2"]


SLOW = timing(3)


def _smallest() -> Path:
    return ZOO_DIR / min(zoo_families(), key=lambda f: (ZOO_DIR / f / "fp32.tflite").stat().st_size)


@pytest.fixture
def family(tmp_path: Path) -> Path:
    """fp32 and int8 of the smallest zoo model, copied (real files)."""
    folder = tmp_path / "fam"
    folder.mkdir()
    for variant in ("fp32", "int8"):
        shutil.copy(_smallest() / f"{variant}.tflite", folder / f"{variant}.tflite")
    return folder


@pytest.fixture
def local(profiles_dir: Path, tmp_path: Path) -> Path:
    """The local device with its work folder (and so its device lock) in tmp."""
    workdir = tmp_path / "device-work"
    write_profile(profiles_dir, "local", f'[bench]\nthreads = [1]\n[device]\nworkdir = "{workdir}"\n')
    return workdir


def _events(results: Path) -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for path in sorted(results.glob("*/cells/**/events.jsonl")):
        for line in path.read_text().splitlines():
            try:
                out.append((path, json.loads(line)))
            except ValueError:
                pass
    return out


def _wait_for(results: Path, kind: str, timeout: float = 60) -> dict[str, Any]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for _, event in _events(results):
            if event.get("event") == kind:
                return event
        time.sleep(0.05)
    raise AssertionError(f"no {kind} event within {timeout} s")


def _wait_for_loop(results: Path, timeout: float = 60) -> None:
    """Until a cell has stored timed-loop samples (they are flushed every second)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if any(b"BBCKloop" in p.read_bytes() for p in results.glob("*/cells/**/samples.bin")):  # a loop chunk
            return
        time.sleep(0.05)
    raise AssertionError(f"no timed samples within {timeout} s")


def _wait_gone(pid: int, timeout: float = 15) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def _popen(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(BENCHBOT + args, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _log(run: benchbot.Run, kind: str) -> list[dict[str, Any]]:
    return [e for e in run.log if e.get("event") == kind]


# ------------------------------------------------------------------------------------------ profiles


@pytest.mark.parametrize("value", ['"Hunter2-Literal-PW"', '"hunter2 with spaces"', '"9starts_with_digit"', "31337"])
def test_a_password_typed_as_password_env_is_refused_and_never_echoed(value: str, cli_env: dict[str, str],
                                                                      profiles_dir: Path, family: Path) -> None:
    write_profile(profiles_dir, "pi", f'transport = "ssh"\n[ssh]\nhost = "127.0.0.1"\npassword_env = {value}\n')
    secret = value.strip('"')
    done = run_cli(["run", "--devices", "pi", "--models", str(family), *QUICK], cli_env)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "key 'ssh.password_env' must be the name of an environment variable" in done.stderr
    assert secret not in done.stderr + done.stdout
    assert not Path(cli_env["BENCHBOT_RESULTS"]).exists(), "a run was created (its logs could hold the value)"
    listed = run_cli(["devices", "list"], cli_env)
    assert "INVALID" in listed.stdout and secret not in listed.stdout + listed.stderr
    # a variable's name is still fine
    write_profile(profiles_dir, "pi", 'transport = "ssh"\n[ssh]\nhost = "127.0.0.1"\npassword_env = "PI_PASSWORD"\n')
    assert "INVALID" not in run_cli(["devices", "list"], cli_env).stdout


# ------------------------------------------------------------------------------------------ SIGTERM


def test_sigterm_stops_the_run_like_ctrl_c_and_it_resumes(cli_env: dict[str, str], local: Path,
                                                          family: Path) -> None:
    results = Path(cli_env["BENCHBOT_RESULTS"])
    proc = _popen(["run", "--models", str(family), *SLOW], cli_env)
    start = _wait_for(results, "cell_start")
    _wait_for_loop(results)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2, stderr
    assert "Traceback" not in stderr
    assert "interrupted by SIGTERM; continue with: benchbot run --resume" in stderr
    assert re.search(r"0 of 2 cells ok \(0 of 4 repetitions; 3 not run\)", stderr), "the summary must count the planned cells"
    assert _wait_gone(start["pid"]), "the agent outlived the run"
    assert not (local / "device.lock").exists(), "the device lock was left behind"

    run = benchbot.load_run(results=results)
    kinds = [(e["event"], e.get("status")) for e in run.log if e["event"] in ("cell", "run_end")]
    assert kinds == [("cell", "incomplete"), ("run_end", "interrupted")], "the run ended before its device stopped"
    reps = run.repetition_summary
    cut = reps[reps["status"] == "incomplete"]
    assert len(cut) == 1 and cut["count"].iloc[0] > 0, "samples taken before SIGTERM were lost"
    key, rep, measured = cut["key"].iloc[0], int(cut["repetition"].iloc[0]), int(cut["count"].iloc[0])
    assert run.status(key) == "incomplete"

    resumed = run_cli(["run", "--resume", run.run_id, *timing(0.05)], cli_env)
    assert resumed.returncode == 0, resumed.stderr
    after = benchbot.load_run(run.run_id, results=results)
    assert after.complete and (after.summary["status"] == "ok").all()
    attempts = [a for a in after.attempts[key] if a.repetition == rep]
    assert len(attempts) == 2
    assert len(attempts[0].samples().query("phase == 'loop'")) == measured


# ------------------------------------------------------------------------------------------ damaged models


def _patched_opcode(source: Path, target: Path, deprecated: int, builtin: int) -> Path:
    """A structurally valid copy whose first operator code names another op (patched in place, same size)."""
    data = bytearray(source.read_bytes())
    reader = _Reader(bytes(data), len(data))
    code = _Table(reader, reader.deref(0, "root"), "model").tables(1, "operator code")[0]
    struct.pack_into("<b", data, code.at(0, 1), deprecated)
    struct.pack_into("<i", data, code.at(3, 4), builtin)
    target.write_bytes(data)
    return target


def test_every_zoo_model_passes_the_flatbuffer_check() -> None:
    models = sorted(ZOO_DIR.glob("*/*.tflite"))
    assert len(models) >= 4
    for model in models:
        verify_tflite(model)
    assert resolve_models(None)


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, -1])
def test_a_truncated_model_is_refused_before_a_run_exists(keep: float, tmp_path: Path, cli_env: dict[str, str],
                                                           local: Path) -> None:
    source = _smallest() / "fp32.tflite"
    data = source.read_bytes()
    cut = len(data) - 1 if keep == -1 else int(len(data) * keep)
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(data[:cut])
    assert broken.read_bytes()[4:8] == b"TFL3", "the header must stay valid for this test"
    done = run_cli(["run", "--models", str(broken), *QUICK], cli_env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert f"model file {broken} is damaged or truncated:" in done.stderr
    assert "replace it with a good copy" in done.stderr
    assert not Path(cli_env["BENCHBOT_RESULTS"]).exists(), "a run folder was created"
    # one damaged variant in a family folder is refused the same way
    folder = tmp_path / "fam"
    folder.mkdir()
    shutil.copy(source, folder / "fp32.tflite")
    shutil.copy(broken, folder / "int8.tflite")
    done = run_cli(["run", "--models", str(folder), *QUICK], cli_env)
    assert done.returncode == 2 and "int8.tflite is damaged or truncated" in done.stderr
    assert not Path(cli_env["BENCHBOT_RESULTS"]).exists()


def test_damage_inside_the_file_is_found(tmp_path: Path) -> None:
    data = bytearray((_smallest() / "fp32.tflite").read_bytes())
    reader = _Reader(bytes(data), len(data))
    graph = _Table(reader, reader.deref(0, "root"), "model").tables(2, "subgraph")[0]
    broken = tmp_path / "bad.tflite"
    struct.pack_into("<I", data, graph.at(0, 4), len(data))  # the tensors vector now points past the end
    broken.write_bytes(data)
    with pytest.raises(DamagedModel, match="outside the file"):
        verify_tflite(broken)
    with pytest.raises(ModelError, match="is damaged or truncated"):
        check_tflite(broken)


def test_a_model_for_a_newer_runtime_passes_the_check_and_fails_on_the_device(
        tmp_path: Path, cli_env: dict[str, str], local: Path) -> None:
    # A builtin op this runtime does not know (as a newer converter writes) and a custom op: both are
    # valid FlatBuffers, so the host lets them through and the device's runtime says what is wrong.
    source = _smallest() / "fp32.tflite"
    newer = _patched_opcode(source, tmp_path / "newer.tflite", 127, 250)
    custom = _patched_opcode(source, tmp_path / "custom.tflite", 32, 32)
    for model in (newer, custom):
        check_tflite(model)
    done = run_cli(["run", "--models", f"{newer},{custom}", *QUICK], cli_env)
    assert done.returncode == 4, done.stderr  # every cell failed: the run failed
    assert "the run failed: no cell succeeded" in done.stderr and "Traceback" not in done.stderr
    summary = benchbot.load_run(results=cli_env["BENCHBOT_RESULTS"]).summary.set_index("model")
    assert (summary["status"] == "failed").all()
    assert "builtin_code out of range: 250" in summary.loc["newer", "reason"]
    assert "CUSTOM" in summary.loc["custom", "reason"]
    assert _log(benchbot.load_run(results=cli_env["BENCHBOT_RESULTS"]), "run_end")[0]["status"] == "failed"


# ------------------------------------------------------------------------------------------ locks


def test_two_writers_of_one_run_cannot_collide_and_a_dead_holder_is_taken_over(
        cli_env: dict[str, str], local: Path, family: Path) -> None:
    results = Path(cli_env["BENCHBOT_RESULTS"])
    first = _popen(["run", "--models", str(family), *SLOW], cli_env)
    try:
        start = _wait_for(results, "cell_start")
        _wait_for_loop(results)
        run_id = next(results.iterdir()).name
        second = run_cli(["run", "--resume", run_id, *QUICK], cli_env)
        assert second.returncode == 2, second.stderr
        assert second.stderr.count("\n") == 1
        assert f"run {run_id} is being written by another benchbot (pid {first.pid}" in second.stderr
        first.send_signal(signal.SIGKILL)  # the holder dies without cleaning up: both locks are stale
        first.communicate(timeout=30)
    finally:
        first.kill()
    assert _wait_gone(start["pid"])
    holder = (local / "device.lock" / "owner").read_text()
    assert f"pid={first.pid} " in holder, "the dead run's device lock should still be there"

    taken = run_cli(["run", "--resume", run_id, *timing(0.05)], cli_env)
    assert taken.returncode == 0, taken.stderr
    run = benchbot.load_run(run_id, results=results)
    assert run.complete and (run.summary["status"] == "ok").all()
    by_rep: dict[tuple[str, int], list] = {}
    for key, attempts in run.attempts.items():
        for a in attempts:
            by_rep.setdefault((key, a.repetition), []).append(a)
    [killed] = [a for a in by_rep.values() if len(a) == 2]  # the repetition cut by the kill, then rerun
    assert len(killed[0].samples().query("phase == 'loop'")) > 0, "measured samples lost"
    assert not (local / "device.lock").exists()


def test_a_device_is_benchmarked_by_one_benchbot_at_a_time(cli_env: dict[str, str], local: Path,
                                                           family: Path) -> None:
    results = Path(cli_env["BENCHBOT_RESULTS"])
    first = _popen(["run", "--models", str(family), *SLOW], cli_env)
    try:
        _wait_for(results, "cell_start")
        second = run_cli(["run", "--models", str(family), *QUICK], cli_env)
        _, first_err = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 0, first_err
    assert second.returncode == 4, second.stderr
    assert (f"local: the device is busy: another benchbot (host {os.uname().nodename}, pid {first.pid}, since"
            in second.stderr)
    assert f"holds its lock {local / 'device.lock'}" in second.stderr
    runs = {p.name for p in results.iterdir()}
    assert len(runs) == 2
    # by the id the second one printed: both runs can start in the same second, so their names need not sort so
    [busy_id] = [r for r in runs if f"run {r}: " in second.stderr]
    [first_id] = runs - {busy_id}
    busy = benchbot.load_run(busy_id, results=results)
    assert (busy.summary["status"] == "failed").all() and busy.samples.empty, "the busy device was measured"
    assert (benchbot.load_run(first_id, results=results).summary["status"] == "ok").all()
    again = run_cli(["run", "--resume", busy_id, *QUICK], cli_env)  # the device is free again
    assert again.returncode == 0, again.stderr


# ------------------------------------------------------------------------------------------ reasons


def test_signal_reasons_tell_a_crash_from_a_kill() -> None:
    assert signal_reason(signal.SIGSEGV) == "the agent died with SIGSEGV (the runtime crashed)"
    assert signal_reason(signal.SIGBUS).endswith("(the runtime crashed)")
    assert signal_reason(signal.SIGTERM) == "the agent was killed by signal 15 (SIGTERM) from outside benchbot"
    assert signal_reason(signal.SIGKILL).startswith("the agent was killed by signal 9 (SIGKILL) from outside")


def test_an_agent_killed_from_outside_says_so_and_gets_no_ratio(cli_env: dict[str, str], local: Path,
                                                                family: Path) -> None:
    results = Path(cli_env["BENCHBOT_RESULTS"])
    proc = _popen(["run", "--models", str(family), *timing(1.5)], cli_env)
    try:
        start = _wait_for(results, "cell_start")
        _wait_for_loop(results)
        os.kill(start["pid"], signal.SIGKILL)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 3, stderr
    assert "the agent was killed by signal 9 (SIGKILL) from outside benchbot" in stderr
    assert "1 of 2 cells ok" in stderr and "the run is partial" in stderr
    run = benchbot.load_run(results=results)
    reps = run.repetition_summary
    cut = reps[reps["status"] == "failed"]
    assert len(cut) == 1 and cut["count"].iloc[0] > 0, "samples measured before the kill were lost"
    killed = run.summary.set_index("key").loc[cut["key"].iloc[0]]
    assert killed["status"] in ("failed", "incomplete")

    shown = run_cli(["report", "--no-plots", "--format", "json"], cli_env)
    cells = {c["variant"]: c for c in json.loads(shown.stdout)["cells"]}
    assert cells[killed["variant"]]["p50_ms"] is not None
    assert cells[killed["variant"]]["rel_ratio"] is None, "a failed cell got a ratio"
    other = next(v for v in cells if v != killed["variant"])
    assert cells[other]["rel_ratio"] == 1.0
    md = run_cli(["report", "--no-plots", "--format", "md"], cli_env).stdout
    failed_row = next(r for r in md_rows(md) if killed["variant"] in r)
    assert "×" not in " ".join(failed_row) and "ref" not in failed_row


# ------------------------------------------------------------------------------------------ names


def _cells(line: str) -> int:
    """Markdown table cells in a line: pipes not escaped by an odd number of backslashes."""
    count, backslashes = 0, 0
    for ch in line:
        if ch == "|" and backslashes % 2 == 0:
            count += 1
        backslashes = backslashes + 1 if ch == "\\" else 0
    return count


def test_a_hostile_model_name_cannot_break_an_export(tmp_path: Path, cli_env: dict[str, str], local: Path) -> None:
    name = "evil|na\nme[red]x\\"
    shown = "evil|na\\nme[red]x\\"
    model = tmp_path / f"{name}.tflite"
    shutil.copy(_smallest() / "fp32.tflite", model)
    # and a family (with an eval set, so the trade-off section lists it too) called the same way, variants 2
    family = tmp_path / "fam"
    family.mkdir()
    info = json.loads((_smallest() / "family.json").read_text())
    info["name"] = "fam " + name
    info["variants"] = {v: info["variants"][v] for v in ("fp32", "int8")}
    (family / "family.json").write_text(json.dumps(info))
    for file in ("fp32.tflite", "int8.tflite", info["eval"]):
        shutil.copy(_smallest() / file, family / file)
    done = run_cli(["run", "--models", f"{model},{family}", *QUICK], cli_env)
    assert done.returncode == 0, done.stderr
    assert f"{shown}/model t1 rep 1/2: ok" in done.stderr, "a progress line was split"

    md = run_cli(["report", "--no-plots", "--format", "md"], cli_env).stdout
    lines = md.splitlines()
    assert not any(line.startswith("me[red]") for line in lines), "a name's newline split a line"
    tables = 0
    for before, line in zip([""] + lines, lines):
        if line.startswith("|") and not before.startswith("|"):
            tables, width = tables + 1, _cells(line)
        elif line.startswith("|"):
            assert _cells(line) == width, f"a name changed the columns of: {line}"
    assert tables >= 2, "the main table and the trade-off table"
    rows = [r for r in md_rows(md) if r[0] == "local"]
    assert len(rows) == 3 and "evil\\|na\\\\nme[red]x\\\\" in rows[0]

    text = run_cli(["report", "--no-plots", "--format", "csv"], cli_env).stdout
    assert len(text.splitlines()) == 4, "a CSV record spans lines"
    assert sorted(r["model"] for r in csv.DictReader(io.StringIO(text))) == [shown, "fam " + shown, "fam " + shown]

    exact = json.loads(run_cli(["report", "--no-plots", "--format", "json"], cli_env).stdout)
    assert sorted(c["model"] for c in exact["cells"]) == [name, "fam " + name, "fam " + name], "JSON keeps names"

    table = run_cli(["report", "--no-plots"], cli_env).stdout
    assert shown in table, "the terminal table ate part of the name (markup) or split it"

    out = tmp_path / "r.html"
    assert run_cli(["report", "--no-plots", "--format", "html", "-o", str(out)], cli_env).returncode == 0
    assert shown in out.read_text()


def test_resume_of_a_run_whose_every_cell_failed_exits_4(tmp_path: Path, cli_env: dict[str, str],
                                                         profiles_dir: Path, family: Path) -> None:
    wrapper = tmp_path / "python-that-fails"
    wrapper.write_text('#!/bin/sh\nif [ "$2" = run ]; then echo "no runtime here" >&2; exit 1; fi\n'
                       f'exec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    write_profile(profiles_dir, "broken",
                  f'[device]\npython = "{wrapper}"\nworkdir = "{tmp_path / "wd"}"\n[bench]\nthreads = [1]\n')
    done = run_cli(["run", "--devices", "broken", "--models", str(family), *QUICK], cli_env)
    assert done.returncode == 4, done.stderr
    assert "0 of 2 cells ok" in done.stderr and "the run failed: no cell succeeded" in done.stderr
    assert "no runtime here" in done.stderr


def _model_with_external_buffer(offset: int) -> bytes:
    """A minimal TFLite FlatBuffer whose buffer 1 lives outside it (Buffer.offset/size), as in models over 2 GB."""
    import flatbuffers

    b = flatbuffers.Builder(0)

    def tables(items: list[int]) -> int:
        b.StartVector(4, len(items), 4)
        for item in reversed(items):
            b.PrependUOffsetTRelative(item)
        return b.EndVector()

    name = b.CreateString("weights")
    b.StartVector(4, 1, 4)
    b.PrependInt32(2)
    shape = b.EndVector()
    b.StartObject(4)  # Tensor: shape, type, buffer, name
    b.PrependUOffsetTRelativeSlot(0, shape, 0)
    b.PrependUint32Slot(2, 1, 0)
    b.PrependUOffsetTRelativeSlot(3, name, 0)
    tensor = b.EndObject()
    tensors = tables([tensor])
    b.StartObject(5)  # SubGraph: tensors
    b.PrependUOffsetTRelativeSlot(0, tensors, 0)
    graph = b.EndObject()
    b.StartObject(3)
    empty = b.EndObject()
    b.StartObject(3)  # Buffer: data, offset, size
    b.PrependUint64Slot(1, offset, 0)
    b.PrependUint64Slot(2, 8, 0)
    external = b.EndObject()
    graphs, buffers = tables([graph]), tables([empty, external])
    b.StartObject(8)  # Model: version, operator_codes, subgraphs, description, buffers
    b.PrependUint32Slot(0, 3, 0)
    b.PrependUOffsetTRelativeSlot(2, graphs, 0)
    b.PrependUOffsetTRelativeSlot(4, buffers, 0)
    b.Finish(b.EndObject(), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_buffers_stored_after_the_flatbuffer_must_be_in_the_file(tmp_path: Path) -> None:
    size = len(_model_with_external_buffer(1 << 20))
    start = (size + 15) // 16 * 16
    flat = _model_with_external_buffer(start)
    assert len(flat) == size
    whole = flat + b"\0" * (start - size) + b"12345678"
    model = tmp_path / "external.tflite"
    model.write_bytes(whole)
    verify_tflite(model)
    model.write_bytes(whole[:-3])  # the external data is cut short, the FlatBuffer itself is whole
    with pytest.raises(DamagedModel, match=f"the data of buffer 1 \\(bytes {start}..{start + 8}\\) lies outside"):
        verify_tflite(model)


def test_ssh_settings_refuse_a_password_as_password_env_without_echoing_it() -> None:
    from benchbot.transport.ssh import SSHSettings

    with pytest.raises(ValueError) as caught:
        SSHSettings(host="h", password_env="Hunter2-Literal-PW")
    assert "Hunter2" not in str(caught.value) and "name of an environment variable" in str(caught.value)
    assert SSHSettings(host="h", password_env="PI_PASSWORD").password_env == "PI_PASSWORD"


def test_a_full_results_disk_stops_the_run_in_one_sentence_and_resume_finishes_it(
        cli_env: dict[str, str], profiles_dir: Path, small_disk: Any) -> None:
    """A real tmpfs of 8 pages holds the run folder (manifest, log, lock) and about one repetition, not the four
    planned: the run stops when the disk is full, says so in one sentence, and keeps what it stored."""
    disk = small_disk(8 * 4096)
    env = dict(cli_env, BENCHBOT_RESULTS=str(disk / "results"))
    write_profile(profiles_dir, "local", "[bench]\nthreads = [1]\n")
    proc = run_cli(["run", "--models", str(ZOO_DIR / "shapes-cnn"), "--variants", "fp32,int8", "--no-accuracy",
                    "--warmup-runs", "2", "--warmup-seconds", "0", "--min-runs", "20", "--min-seconds", "0",
                    "--repetitions", "2", "--quiet"], env)
    assert proc.returncode in (3, 4) and "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    stopped = re.fullmatch(r"benchbot: the run stopped: cannot write (\S+): No space left on device \(the disk holding "
                           r"it is full\); everything stored before that is kept: make room, then continue with: "
                           r"benchbot run --resume (\S+)", last)
    assert stopped is not None, proc.stderr
    run = benchbot.load_run(stopped.group(2), results=disk / "results")
    assert stopped.group(1).startswith(str(run.folder)) and not run.complete
    assert "not run" in proc.stderr  # the summary line counts the repetitions that never started
    kept = {(c.key, rep): a.folder for c in run.cells for rep, a in run.repetitions(c.key).items() if a.status == "ok"}

    shown = run_cli(["report", "--results", str(disk / "results")], env)  # plots do not fit either: tables do
    assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr
    # summary.csv and the plots folder may still fit (then the plots say it, after the tables) or not (a note)
    assert ("No plots or summary.csv were written: cannot write" in "".join(shown.stdout.split("\n"))
            or "benchbot: warning: plots not written: cannot write" in shown.stderr), shown.stdout + shown.stderr
    assert "p50 ms" in shown.stdout and "Answer" in shown.stdout

    subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True)  # room made
    resumed = run_cli(["run", "--resume", run.run_id, "--quiet"], env)
    assert resumed.returncode == 0, resumed.stderr
    after = benchbot.load_run(run.run_id, results=disk / "results")
    assert after.complete and after.damaged() == []
    for (key, rep), folder in kept.items():  # what was stored before the disk filled was not measured again
        assert after.repetitions(key)[rep].folder == folder


def test_a_results_folder_that_cannot_be_created_is_one_sentence(cli_env: dict[str, str], tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    proc = run_cli(["run", "--models", "shapes-cnn", "--variants", "fp32", "--results", str(blocker / "results")],
                   cli_env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"benchbot: cannot write {blocker / 'results'}: Not a directory", proc.stderr


def test_a_benchbot_bug_on_one_device_fails_its_cells_by_name_and_keeps_what_it_measured(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, profiles_dir: Path) -> None:
    """The device thread's last guard: an unexpected exception (a bug, simulated in the host's session code)
    records every repetition it did not finish as failed, with the exception, instead of ending the thread
    silently and reporting a run with repetitions missing as complete."""
    from benchbot import api
    from benchbot.errors import PartialRun
    from benchbot.session import DeviceSession

    write_profile(profiles_dir, "local", "[bench]\nthreads = [1]\n")
    monkeypatch.setenv("BENCHBOT_PROFILES", str(profiles_dir))
    real, calls = DeviceSession.run_repetition, []

    def second_one_breaks(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(DeviceSession, "run_repetition", second_one_breaks)
    outcome = api.execute(api.RunRequest(models=[str(ZOO_DIR / "shapes-cnn")], variants=["fp32", "int8"],
                                         results=str(tmp_path / "results"), quiet=True, warmup_runs=1,
                                         warmup_seconds=0, min_runs=10, min_seconds=0, repetitions=2,
                                         accuracy=False))
    assert len(outcome.outcomes) == outcome.planned == 4
    assert [o.status for o in outcome.outcomes] == ["ok", "failed", "failed", "failed"]
    assert {o.reason for o in outcome.failed} == {"benchbot failed on this device: RuntimeError: boom"}
    assert isinstance(api.outcome_error(outcome), PartialRun)
    run = benchbot.load_run(outcome.run_id, results=tmp_path / "results")
    assert [e["status"] for e in run.log if e["event"] == "run_end"] == ["partial"]
    assert sum(1 for c in run.cells for a in run.repetitions(c.key).values() if a.status == "ok") == 1


def test_a_run_being_written_says_so_and_whose_it_is(cli_env: dict[str, str], local: Path) -> None:
    """A report or listing read while a run is written shows it as RUNNING, with the writer's pid, instead of
    as an incomplete run; afterwards as complete. The reader only reads the lock file: it never takes it."""
    results = Path(cli_env["BENCHBOT_RESULTS"])
    proc = subprocess.Popen(BENCHBOT + ["run", "--models", str(_smallest()), "--variants", "fp32", "--quiet",
                                        *timing(2)], env=cli_env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(results, "cell_start")
        [folder] = list(results.iterdir())
        listed = run_cli(["runs"], cli_env)
        assert listed.stdout.startswith(f"{folder.name}  running "), listed.stdout + listed.stderr
        shown = run_cli(["report", "--no-plots"], cli_env)
        flat = " ".join(shown.stdout.split())
        assert shown.returncode == 0 and f"RUNNING (being written by benchbot pid {proc.pid} since " in flat, flat
        assert "INCOMPLETE" not in shown.stdout
    finally:
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err  # reading it did not disturb the writer
    assert run_cli(["runs"], cli_env).stdout.startswith(f"{folder.name}  complete ")
