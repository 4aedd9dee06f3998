"""Runs a plan: one thread per device, repetitions strictly one after another on each device.

The runner pushes the agent and the models through the device's transport,
starts one agent process per repetition of a cell (in the plan's shuffled rounds),
and streams every line it prints into the store as it arrives. A device that fails
takes only its own cells with it; a repetition that fails (or whose runtime
crashes) takes only itself.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from benchbot import agent as agent_module
from benchbot import locks, model_inputs, protocol
from benchbot.errors import BenchbotError
from benchbot.models.catalog import sha256_file
from benchbot.plan import Cell, Plan, Unit
from benchbot.profiles import Profile
from benchbot.progress import Progress
from benchbot.store import CellWriter, RunWriter
from benchbot.transport import Transport, TransportError, for_profile
from benchbot.transport.base import CommandResult, DeviceFull

AGENT_PATH = Path(agent_module.__file__).resolve()


@dataclass
class CellOutcome:
    """What happened to one repetition of a cell (one agent process)."""

    cell: Cell
    status: str  # ok | failed | incomplete
    reason: str | None = None
    wall_s: float = 0.0
    loop_s: float = 0.0
    p50_ms: float | None = None  # the cell's median so far, over all its repetitions
    repetition: int = 1

    def label(self) -> str:
        return Unit(self.cell, self.repetition).label()


@dataclass
class RunOutcome:
    run_id: str
    folder: Path
    outcomes: list[CellOutcome] = field(default_factory=list)
    interrupted: bool = False
    bytes_sent: dict[str, int] = field(default_factory=dict)
    #: Per cell key, the repetitions this invocation set out to run (an interrupt leaves some without an outcome).
    planned_units: dict[str, int] = field(default_factory=dict)

    @property
    def planned(self) -> int:
        return sum(self.planned_units.values())

    @property
    def failed(self) -> list[CellOutcome]:
        return [o for o in self.outcomes if o.status != "ok"]

    @property
    def cells_ok(self) -> int:
        """Cells whose every planned repetition finished ok in this invocation."""
        ok: dict[str, int] = {}
        for o in self.outcomes:
            if o.status == "ok":
                ok[o.cell.key] = ok.get(o.cell.key, 0) + 1
        return sum(1 for key, n in self.planned_units.items() if ok.get(key, 0) >= n)


def run_status(outcome: RunOutcome) -> str:
    """complete (every repetition ok), failed (none ok) or partial; an interrupt is told apart by the caller."""
    if not outcome.failed:
        return "complete"
    return "failed" if len(outcome.failed) == len(outcome.outcomes) else "partial"


class _CellStream:
    """Parses agent lines for one repetition: stores each, and keeps what the runner needs to decide.

    `cell_loop_ns` holds the loop latencies of the cell's earlier repetitions (and gets this one's), so
    the progress shows the cell's median so far, not the median of the last chunk.
    """

    def __init__(self, writer: CellWriter, progress: Progress, device: str, cell_loop_ns: list[np.ndarray]) -> None:
        self.writer = writer
        self.progress = progress
        self.device = device
        self.fatal_error: str | None = None
        self.ended: dict[str, Any] | None = None
        self.fingerprint: dict[str, Any] | None = None
        self.hello: dict[str, Any] | None = None
        self.runs = 0
        self.started = time.monotonic()
        self.cell_loop_ns = cell_loop_ns
        self.p50_ms: float | None = _median_ms(cell_loop_ns)
        self.noise: list[str] = []

    def __call__(self, line: str) -> None:
        if not line.strip():
            return
        event = protocol.parse_line(line)
        if event is None:  # something printed by a library on the device; keep it, it may explain a crash
            self.noise.append(line.strip()[:500])
            self.writer.write_event({"event": "stdout", "source": "device", "text": line.strip()[:2000]})
            return
        self.writer.write_event(event)
        kind = event["event"]
        if kind == "samples" and event.get("phase") == "loop":
            self.cell_loop_ns.append(np.asarray(event["latency_ns"], dtype=np.int64))
            self.p50_ms = _median_ms(self.cell_loop_ns)
            self.runs += len(event["latency_ns"])
            self.progress.update(self.device, runs=self.runs, p50_ms=self.p50_ms, phase="loop")
        elif kind == "telemetry":
            temps = event.get("temps_c") or {}
            self.progress.update(self.device, seconds=time.monotonic() - self.started, phase=event.get("phase", ""),
                                 **({"temp_c": max(temps.values())} if temps else {}))
        elif kind == "hello":
            self.hello = event
            self.fingerprint = event.get("fingerprint")
        elif kind == "error" and event.get("fatal", True):
            self.fatal_error = event.get("message") or "the agent reported an error"
        elif kind == "cell_end":
            self.ended = event


def _median_ms(chunks: list[np.ndarray]) -> float | None:
    return float(np.median(np.concatenate(chunks))) / 1e6 if chunks and any(len(c) for c in chunks) else None


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


#: Signals a process raises against itself when it crashes; any other came from outside.
CRASH_SIGNALS = ("SIGSEGV", "SIGBUS", "SIGABRT", "SIGILL", "SIGFPE")


def signal_reason(signum: int) -> str:
    """Why an agent that the host did not stop ended by signal `signum`: a crash, or a kill from outside."""
    name = _signal_name(-signum)
    if name in CRASH_SIGNALS:
        return f"the agent died with {name} (the runtime crashed)"
    hint = " (the kernel's out-of-memory killer also sends it)" if name == "SIGKILL" else ""
    return f"the agent was killed by signal {signum} ({name}) from outside benchbot{hint}"


def classify(stream: _CellStream, result: CommandResult, deadline_s: float) -> tuple[str, str | None, bool]:
    """(status, reason, device_lost) of a finished agent process."""
    last_err = next((ln for ln in reversed(result.stderr_tail.strip().splitlines()) if ln.strip()), "")
    if result.interrupted:
        return "incomplete", "interrupted", False
    if stream.fatal_error:
        return "failed", stream.fatal_error, False
    if stream.ended is not None:
        return "ok", None, False
    if result.timed_out:
        return "failed", f"the cell exceeded its deadline of {deadline_s:.0f} s and was stopped", False
    if result.returncode is None:
        detail = f" ({last_err})" if last_err else ""
        return "failed", f"the connection to the device was lost{detail}", True
    if result.returncode < 0:
        return "failed", signal_reason(-result.returncode), False
    if result.returncode == 127 or "No such file" in last_err or "not found" in last_err:
        return "failed", f"the agent could not start: {last_err or 'interpreter not found'}", False
    detail = f": {last_err}" if last_err else ""
    return "failed", f"the agent exited with status {result.returncode} before finishing{detail}", False


class Runner:
    """Executes (part of) a plan into a run folder."""

    #: Seconds between temperature readings while a device cools down.
    cooldown_poll_s = 2.0

    def __init__(
        self,
        plan: Plan,
        writer: RunWriter,
        progress: Progress,
        transport_factory: Callable[[Profile], Transport] = for_profile,
    ) -> None:
        self.plan = plan
        self.writer = writer
        self.progress = progress
        self.transport_factory = transport_factory
        self.stop = threading.Event()
        self._transports: dict[str, Transport] = {}
        self._lock = threading.Lock()
        self.outcome = RunOutcome(writer.run_id, writer.folder)
        self.deadline_override = _deadline_override()
        #: At most this many devices at once (--max-parallel); the rest wait for a free slot (benchbot.fleet).
        self.slots: threading.Semaphore | None = None

    # ------------------------------------------------------------------ public
    def run(self, units: list[Unit] | None = None) -> RunOutcome:
        """Run these repetitions (default: the whole plan), each device's in the plan's order."""
        todo = set(units) if units is not None else None
        by_device = {p.name: [u for u in self.plan.units_for(p.name) if todo is None or u in todo]
                     for p in self.plan.devices}
        threads, finished = [], []
        for profile in self.plan.devices:
            if not by_device[profile.name]:
                continue
            self.progress.add_device(profile.name, len(by_device[profile.name]))  # one count per repetition
            done = threading.Event()
            thread = threading.Thread(target=self._device_thread, args=(profile, by_device[profile.name], done),
                                      name=f"device-{profile.name}", daemon=True)
            threads.append(thread)
            finished.append(done)
        for unit in (u for d in by_device.values() for u in d):
            self.outcome.planned_units[unit.cell.key] = self.outcome.planned_units.get(unit.cell.key, 0) + 1
        self.writer.log("run_start", units=[[u.cell.key, u.repetition] for d in by_device.values() for u in d])
        for thread in threads:
            thread.start()
        # Wait on events, not Thread.join: a KeyboardInterrupt (Ctrl-C, SIGTERM) that breaks into join() makes
        # Python 3.11 mark a still-running thread as stopped, so a second join returned at once and the run
        # ended before its devices had stopped their agents and stored their cells.
        try:
            for done in finished:
                while not done.wait(0.2):
                    pass
        except KeyboardInterrupt:
            self.interrupt()
            for done in finished:
                done.wait(timeout=30)
        status = "interrupted" if self.outcome.interrupted else run_status(self.outcome)
        self.writer.log("run_end", status=status, bytes_sent=self.outcome.bytes_sent)
        return self.outcome

    def interrupt(self) -> None:
        """Stop every device: running agents are killed, remaining cells stay pending (resumable)."""
        self.outcome.interrupted = True
        self.stop.set()
        with self._lock:
            transports = list(self._transports.values())
        for transport in transports:
            try:
                transport.interrupt()
            except Exception:  # noqa: BLE001 - stopping must reach every device
                pass

    # ------------------------------------------------------------------ per device
    def _record(self, outcome: CellOutcome) -> None:
        with self._lock:
            self.outcome.outcomes.append(outcome)
        self.writer.log("cell", key=outcome.cell.key, repetition=outcome.repetition, status=outcome.status,
                        reason=outcome.reason)
        self.progress.cell_done(outcome.cell.device, outcome)

    def _fail_all(self, units: list[Unit], reason: str) -> None:
        for unit in units:
            writer = self.writer.cell_writer(unit)
            writer.note("outcome", status="failed", reason=reason)
            writer.close()
            self._record(CellOutcome(unit.cell, "failed", reason, repetition=unit.repetition))

    def _device_thread(self, profile: Profile, units: list[Unit], done: threading.Event) -> None:
        try:
            if self.slots is not None:  # --max-parallel: wait for a slot (benchbot.fleet.slot)
                from benchbot.fleet import slot

                with slot(self.slots, self.stop, lambda: self.progress.update(profile.name, state="queued")) as ok:
                    if ok:
                        self._device_main(profile, units)
            else:
                self._device_main(profile, units)
        finally:
            done.set()

    def _device_main(self, profile: Profile, units: list[Unit]) -> None:
        name = profile.name
        self.progress.update(name, state="connecting")
        try:
            transport = self.transport_factory(profile)
            with self._lock:
                self._transports[name] = transport
            transport.open()
        except TransportError as exc:
            self.progress.update(name, state="failed", cell=str(exc))
            self._fail_all(units, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - one device's surprise must not stop the others
            self.progress.update(name, state="failed")
            self._fail_all(units, f"{name}: {type(exc).__name__}: {exc}")
            return
        device_lock = None
        try:
            device_lock = locks.lock_device(profile, transport)  # no two benchbots on one device
            self._device_cells(profile, transport, units)
        except TransportError as exc:
            with self._lock:
                done = {(o.cell.key, o.repetition) for o in self.outcome.outcomes}
            self._fail_all([u for u in units if (u.cell.key, u.repetition) not in done], str(exc))
        finally:
            locks.release_device(transport, device_lock)
            self.outcome.bytes_sent[name] = transport.bytes_sent
            try:
                transport.close()
            except Exception:  # noqa: BLE001
                pass
            self.progress.update(name, state="interrupted" if self.stop.is_set() else "done", phase="")

    def _device_cells(self, profile: Profile, transport: Transport, units: list[Unit]) -> None:
        name = profile.name
        python = device_python(profile, transport)
        agent_remote = push_agent(transport)
        fingerprint, problem = agent_hello(profile, transport, python, agent_remote)
        problem = problem or runtime_problem(profile, fingerprint)
        if fingerprint is None or problem:
            return self._fail_all(units, problem)
        record = getattr(transport, "record", None)  # e.g. the labgrid place, its tags and exporter
        self.writer.log("device", device=name, fingerprint=fingerprint, **(record() if callable(record) else {}))
        idle = self._temperature(transport, python, agent_remote) if profile.cooldown_max_s > 0 else None
        pushed: dict[str, tuple[str, str | None] | str] = {}  # cell key -> remote paths, or why they are not there
        loops: dict[str, list[np.ndarray]] = {}
        for index, unit in enumerate(units):
            if self.stop.is_set():
                return
            if unit.cell.key not in pushed:
                self.progress.update(profile.name, state="pushing", cell=unit.label(), runs=0, seconds=0.0)
                try:
                    pushed[unit.cell.key] = self._push_cell(transport, unit.cell)
                except DeviceFull as exc:  # the device works: the cells whose files fit still run
                    pushed[unit.cell.key] = (f"{exc}; {unit.cell.model}/{unit.cell.variant} is not measured "
                                             "(free space on the device, or use smaller variants)")
            files = pushed[unit.cell.key]
            if isinstance(files, str):
                self._fail_all([unit], files)
                continue
            if index and idle is not None:
                self._cooldown(profile, transport, python, agent_remote, idle)
            model, eval_remote = files
            outcome, device_lost = self._run_cell(profile, transport, python, agent_remote, unit, model,
                                                  eval_remote, loops.setdefault(unit.cell.key, []))
            self._record(outcome)
            if device_lost:
                self._fail_all(units[index + 1:], f"not run: {outcome.reason}")
                self.progress.update(name, state="failed")
                return

    def _temperature(self, transport: Transport, python: str, agent: str) -> float | None:
        lines: list[str] = []
        transport.run([python, agent, "temp"], b"", lines.append, deadline_s=30)
        event = protocol.first_event(lines, "temp")
        if event is None:
            return None
        temps = event.get("temps_c") or {}
        values = list(temps.values()) + ([event["vc_temp_c"]] if event.get("vc_temp_c") else [])
        return max(values) if values else None

    def _cooldown(self, profile: Profile, transport: Transport, python: str, agent: str, idle: float) -> None:
        """Wait until the device is back near its idle temperature, or the profile's limit passes."""
        begin = time.monotonic()
        while not self.stop.is_set() and time.monotonic() - begin < profile.cooldown_max_s:
            temp = self._temperature(transport, python, agent)
            self.progress.update(profile.name, state="cooling", temp_c=temp)
            if temp is None or temp <= idle + profile.cooldown_margin_c:
                return
            self.stop.wait(self.cooldown_poll_s)

    def _job(self, profile: Profile, unit: Unit, model: str, eval_path: str | None, deadline: float
             ) -> protocol.Job:
        s = self.plan.settings
        cell = unit.cell
        interval = s.telemetry_interval_ms or profile.telemetry_interval_ms
        return protocol.Job(
            cell_id=cell.key, repetition=unit.repetition, model_path=model,
            # the eval set is a property of the model, not of the process: measured once, in the first repetition
            eval_path=eval_path if unit.repetition == 1 else None,
            threads=cell.threads, xnnpack=cell.xnnpack, batch=cell.batch, runtime=profile.runtime,
            warmup_runs=s.warmup_runs, warmup_seconds=s.warmup_seconds, min_runs=s.min_runs,
            min_seconds=s.min_seconds, max_seconds=s.max_seconds, seed=s.seed,
            telemetry_interval_s=interval / 1000.0, eval_max_seconds=s.max_seconds, deadline_s=deadline,
        )

    def _push_cell(self, transport: Transport, cell: Cell) -> tuple[str, str | None]:
        """Put a cell's model (and eval set) on the device once; every repetition uses them."""
        model = transport.push(Path(cell.model_path), cell.model_sha256)
        eval_remote = None
        if cell.eval_path:
            eval_file = Path(cell.eval_path)
            eval_remote = transport.push(eval_file, sha256_file(eval_file))
        return model, eval_remote

    def _run_cell(
        self, profile: Profile, transport: Transport, python: str, agent: str, unit: Unit, model: str,
        eval_remote: str | None, cell_loop_ns: list[np.ndarray],
    ) -> tuple[CellOutcome, bool]:
        s = self.plan.settings
        cell = unit.cell
        startup = 30.0 * min(profile.time_scale, 20.0)
        deadline = self.deadline_override or startup + s.warmup_seconds + 3 * s.max_seconds + 30.0
        self.progress.update(profile.name, state="starting", cell=unit.label(), runs=0, seconds=0.0,
                             p50_ms=_median_ms(cell_loop_ns))
        writer = self.writer.cell_writer(unit)
        stream = _CellStream(writer, self.progress, profile.name, cell_loop_ns)
        job = self._job(profile, unit, model, eval_remote, deadline)
        # model inputs (issue 11): the user's ranges/data/shapes/signature over the family's
        job = replace(job, **model_inputs.job_fields(self.plan.meta.get("inputs"), cell.model_path, transport.push))
        self.progress.update(profile.name, state="running", phase="init")
        begin = time.monotonic()
        try:
            grace = min(15.0, deadline / 4)  # the agent stops itself at `deadline`; kill it if it cannot
            result = transport.run([python, agent, "run"], job.to_wire(), stream, deadline_s=deadline + grace)
        finally:
            wall = time.monotonic() - begin
        status, reason, lost = classify(stream, result, deadline)
        if status == "incomplete" and stream.ended is not None:
            status, reason = "ok", None
        if status == "ok" and stream.hello is not None:
            try:
                protocol.check_hello(stream.hello, profile.name)
            except protocol.ProtocolError as exc:
                status, reason = "failed", str(exc)
        loop_s = (stream.ended or {}).get("loop_ns", 0) / 1e9
        writer.note("outcome", status=status, reason=reason, wall_s=wall, returncode=result.returncode,
                    stderr_tail=result.stderr_tail[-2000:] if status != "ok" else "")
        writer.close()
        return CellOutcome(cell, status, reason, wall, loop_s, stream.p50_ms, unit.repetition), lost


def _deadline_override() -> float | None:
    """$BENCHBOT_CELL_DEADLINE_S: a fixed per-cell deadline in seconds instead of the computed one."""
    text = os.environ.get("BENCHBOT_CELL_DEADLINE_S", "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise BenchbotError(f"BENCHBOT_CELL_DEADLINE_S must be a number of seconds above 0, got '{text}'")
    return value


def device_python(profile: Profile, transport: Transport) -> str:
    """The interpreter that runs the agent on the device: the profile's, else this one (local) or python3."""
    if profile.python:
        return transport.expand_user(profile.python)
    return sys.executable if profile.transport == "local" else "python3"


def push_agent(transport: Transport) -> str:
    """Put the agent on the device (content-addressed: sent once) and return its path there."""
    return transport.push(AGENT_PATH, sha256_file(AGENT_PATH))


def agent_hello(profile: Profile, transport: Transport, python: str, agent: str
                ) -> tuple[dict[str, Any] | None, str]:
    """The agent's fingerprint of the device, or None and why the agent did not answer.

    Devices run in parallel, so the reason is returned, never kept on shared state.
    """
    lines: list[str] = []
    result = transport.run([python, agent, "hello", profile.runtime], b"", lines.append,
                           deadline_s=60 * min(max(profile.time_scale, 1.0), 10.0))
    hello = protocol.first_event(lines, "hello")
    if hello is not None:
        try:
            protocol.check_hello(hello, profile.name)
        except protocol.ProtocolError as exc:
            return None, str(exc)
        return hello.get("fingerprint") or {}, ""
    if result.timed_out:
        return None, f"{profile.name}: the agent did not answer within its deadline with {python}"
    tail = [ln for ln in result.stderr_tail.strip().splitlines() if ln.strip()][-1:] or ["no output"]
    return None, f"{profile.name}: the agent did not start with {python} ({tail[0].strip()})"


def runtime_problem(profile: Profile, fingerprint: dict[str, Any] | None) -> str:
    """Why cells cannot run with this fingerprint (no TFLite runtime, no numpy), or "" when they can."""
    if not fingerprint:
        return ""
    if not fingerprint.get("runtime"):
        return f"{profile.name}: {fingerprint.get('runtime_error', 'no TFLite runtime')}"
    if not fingerprint.get("numpy"):
        return f"{profile.name}: numpy cannot be imported ({fingerprint.get('numpy_error')})"
    return ""
