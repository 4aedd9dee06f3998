"""One device session: open it, find its Python, push the agent, say hello, run one repetition, classify it.

The scheduler (benchbot.scheduler) decides what runs when; `devices check|setup` use the same
helpers, so a device is prepared one way whatever asks for it.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from benchbot import agent as agent_module
from benchbot import model_inputs, protocol
from benchbot.errors import BenchbotError
from benchbot.locks import device_workdir
from benchbot.models.catalog import sha256_file
from benchbot.plan import Cell, Settings, Unit
from benchbot.profiles import Profile
from benchbot.progress import Progress
from benchbot.store import CellWriter
from benchbot.transport import Transport
from benchbot.transport.base import CommandResult

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
    rep_p50_ms: float | None = None  # this repetition's loop median: logged, so other runs can be read cheaply

    def label(self) -> str:
        return Unit(self.cell, self.repetition).label()


class CellStream:
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
        self.p50_ms: float | None = median_ms(cell_loop_ns)
        self.rep_loop_ns: list[np.ndarray] = []
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
            self.rep_loop_ns.append(self.cell_loop_ns[-1])
            self.p50_ms = median_ms(self.cell_loop_ns)
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


def median_ms(chunks: list[np.ndarray]) -> float | None:
    """The median of every latency seen so far, in ms (None before the first)."""
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


def classify(stream: CellStream, result: CommandResult, deadline_s: float) -> tuple[str, str | None, bool]:
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


def deadline_override() -> float | None:
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


class DeviceSession:
    """An opened device with the agent on it: what every stage that talks to a device goes through.

    `python` and `agent` are set by `prepare()` (or given, for tests that script the transport).
    """

    def __init__(self, profile: Profile, transport: Transport, python: str | None = None,
                 agent: str | None = None) -> None:
        self.profile = profile
        self.transport = transport
        self.python = python or ""
        self.agent = agent or ""

    @property
    def name(self) -> str:
        return self.profile.name

    def open(self) -> None:
        """Connect; raises TransportError with a message for the user."""
        self.transport.open()

    def prepare(self) -> tuple[dict[str, Any] | None, str]:
        """Find the interpreter, push the agent, ask it hello: (fingerprint, "") or (None, why not)."""
        self.python = device_python(self.profile, self.transport)
        self.agent = push_agent(self.transport)
        return agent_hello(self.profile, self.transport, self.python, self.agent)

    def probe(self) -> dict[str, Any]:
        """Disk and memory as the agent reads them on the device (its `probe` command); {} if it cannot tell."""
        workdir = device_workdir(self.profile, self.transport)
        lines: list[str] = []
        self.transport.run([self.python, self.agent, "probe", workdir], b"", lines.append,
                           deadline_s=60 * min(max(self.profile.time_scale, 1.0), 10.0))
        event = protocol.first_event(lines, "probe")
        if event is None:
            return {}
        protocol.check_hello(event, self.profile.name)
        return {k: v for k, v in event.items() if k not in ("event", "protocol")}

    def temperature(self) -> float | None:
        """The hottest sensor now (the agent's `temp` command), or None without sensors."""
        lines: list[str] = []
        self.transport.run([self.python, self.agent, "temp"], b"", lines.append, deadline_s=30)
        event = protocol.first_event(lines, "temp")
        if event is None:
            return None
        temps = event.get("temps_c") or {}
        values = list(temps.values()) + ([event["vc_temp_c"]] if event.get("vc_temp_c") else [])
        return max(values) if values else None

    def push_cell(self, cell: Cell) -> tuple[str, str | None]:
        """Put a cell's model (and eval set) on the device once; every repetition uses them."""
        model = self.transport.push(Path(cell.model_path), cell.model_sha256)
        eval_remote = None
        if cell.eval_path:
            eval_file = Path(cell.eval_path)
            eval_remote = self.transport.push(eval_file, sha256_file(eval_file))
        return model, eval_remote

    def deadline(self, settings: Settings, override: float | None = None) -> float:
        """Seconds one repetition may take before the agent stops itself (startup scales with the device)."""
        startup = 30.0 * min(self.profile.time_scale, 20.0)
        return override or startup + settings.warmup_seconds + 3 * settings.max_seconds + 30.0

    def job(self, settings: Settings, unit: Unit, model: str, eval_path: str | None, deadline: float
            ) -> protocol.Job:
        """The wire job of one repetition."""
        cell = unit.cell
        interval = settings.telemetry_interval_ms or self.profile.telemetry_interval_ms
        return protocol.Job(
            cell_id=cell.key, repetition=unit.repetition, model_path=model,
            # the eval set is a property of the model, not of the process: measured once, in the first repetition
            eval_path=eval_path if unit.repetition == 1 else None,
            threads=cell.threads, xnnpack=cell.xnnpack, batch=cell.batch, runtime=self.profile.runtime,
            warmup_runs=settings.warmup_runs, warmup_seconds=settings.warmup_seconds, min_runs=settings.min_runs,
            min_seconds=settings.min_seconds, max_seconds=settings.max_seconds, seed=settings.seed,
            telemetry_interval_s=interval / 1000.0, eval_max_seconds=settings.max_seconds, deadline_s=deadline,
        )

    def run_repetition(
        self, settings: Settings, unit: Unit, model: str, eval_remote: str | None, writer: CellWriter,
        progress: Progress, cell_loop_ns: list[np.ndarray], inputs: dict[str, Any] | None = None,
        deadline_s: float | None = None,
    ) -> tuple[CellOutcome, bool]:
        """Run one agent process for `unit`, store its lines through `writer`; (outcome, device_lost)."""
        name = self.profile.name
        cell = unit.cell
        deadline = self.deadline(settings, deadline_s)
        progress.update(name, state="starting", cell=unit.label(), runs=0, seconds=0.0,
                        p50_ms=median_ms(cell_loop_ns))
        stream = CellStream(writer, progress, name, cell_loop_ns)
        job = self.job(settings, unit, model, eval_remote, deadline)
        # model inputs (issue 11): the user's ranges/data/shapes/signature over the family's
        job = replace(job, **model_inputs.job_fields(inputs, cell.model_path, self.transport.push))
        progress.update(name, state="running", phase="init")
        begin = time.monotonic()
        try:
            grace = min(15.0, deadline / 4)  # the agent stops itself at `deadline`; kill it if it cannot
            result = self.transport.run([self.python, self.agent, "run"], job.to_wire(), stream,
                                        deadline_s=deadline + grace)
        finally:
            wall = time.monotonic() - begin
        status, reason, lost = classify(stream, result, deadline)
        if status == "incomplete" and stream.ended is not None:
            status, reason = "ok", None
        if status == "ok" and stream.hello is not None:
            try:
                protocol.check_hello(stream.hello, name)
            except protocol.ProtocolError as exc:
                status, reason = "failed", str(exc)
        loop_s = (stream.ended or {}).get("loop_ns", 0) / 1e9
        writer.note("outcome", status=status, reason=reason, wall_s=wall, returncode=result.returncode,
                    stderr_tail=result.stderr_tail[-2000:] if status != "ok" else "")
        writer.close()
        return CellOutcome(cell, status, reason, wall, loop_s, stream.p50_ms, unit.repetition,
                           median_ms(stream.rep_loop_ns)), lost

    def close(self) -> None:
        """Release the connection; never raises (closing a dead link has nothing to report)."""
        try:
            self.transport.close()
        except Exception:  # noqa: BLE001
            pass

