"""Runs a plan: one thread per device, repetitions strictly one after another on each device.

The scheduler decides what runs when: a thread per device, the plan's shuffled rounds, cooldown
between repetitions, and interrupts. Everything that talks to a device goes through
`benchbot.session.DeviceSession`; the cooldown rule is `benchbot.cooldown.CooldownPolicy`.
Every line an agent prints is streamed into the store as it arrives. A device that fails
takes only its own cells with it; a repetition that fails (or whose runtime crashes) takes only itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchbot import locks
from benchbot.cooldown import CooldownPolicy
from benchbot.errors import StorageError
from benchbot.plan import Plan, Unit
from benchbot.profiles import Profile
from benchbot.progress import Progress
from benchbot.session import CellOutcome, DeviceSession, deadline_override, runtime_problem
from benchbot.store import RunWriter
from benchbot.transport import Transport, TransportError, for_profile
from benchbot.transport.base import DeviceFull

__all__ = ["CellOutcome", "RunOutcome", "Runner", "run_status"]


@dataclass
class RunOutcome:
    run_id: str
    folder: Path
    outcomes: list[CellOutcome] = field(default_factory=list)
    interrupted: bool = False
    bytes_sent: dict[str, int] = field(default_factory=dict)
    #: Per cell key, the repetitions this invocation set out to run (an interrupt leaves some without an outcome).
    planned_units: dict[str, int] = field(default_factory=dict)
    #: Why the run stopped early on this machine's side (the results folder cannot be written), or None.
    host_problem: str | None = None

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
    """complete (every planned repetition ok), failed (none ok) or partial; an interrupt is told apart by the
    caller. A repetition that never got an outcome (the run stopped early) is not ok."""
    if not outcome.failed and len(outcome.outcomes) >= outcome.planned:
        return "complete"
    return "failed" if len(outcome.failed) == len(outcome.outcomes) else "partial"


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
        self.deadline_override = deadline_override()
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
        try:
            self.writer.log("run_end", status=status, bytes_sent=self.outcome.bytes_sent)
        except StorageError as exc:
            self._host_failed(exc)
        return self.outcome

    def _host_failed(self, exc: BaseException) -> None:
        """The results folder cannot be written: no device starts another repetition (nothing could keep
        it); the first reason is the run's."""
        with self._lock:
            if self.outcome.host_problem is None:
                self.outcome.host_problem = str(exc)
        self.stop.set()

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
                        reason=outcome.reason, p50_ms=outcome.rep_p50_ms)
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
        except StorageError as exc:  # this machine's disk, not the device: the whole run stops
            self.progress.update(profile.name, state="failed", cell=str(exc))
            self._host_failed(exc)
        except Exception as exc:  # noqa: BLE001 - a bug must not stop the other devices nor lose their cells
            self.progress.update(profile.name, state="failed")
            with self._lock:
                done_units = {(o.cell.key, o.repetition) for o in self.outcome.outcomes}
            for unit in units:
                if (unit.cell.key, unit.repetition) not in done_units:
                    self._record_quietly(CellOutcome(unit.cell, "failed", f"benchbot failed on this device: "
                                                     f"{type(exc).__name__}: {exc}", repetition=unit.repetition))
        finally:
            done.set()

    def _record_quietly(self, outcome: CellOutcome) -> None:
        """Record an outcome in memory, and in the run log when that still can be written."""
        with self._lock:
            self.outcome.outcomes.append(outcome)
        try:
            self.writer.log("cell", key=outcome.cell.key, repetition=outcome.repetition, status=outcome.status,
                            reason=outcome.reason, p50_ms=outcome.rep_p50_ms)
        except StorageError as exc:
            self._host_failed(exc)

    def _device_main(self, profile: Profile, units: list[Unit]) -> None:
        name = profile.name
        self.progress.update(name, state="connecting")
        try:
            transport = self.transport_factory(profile)
            transport.on_state = lambda state, detail: self.progress.update(name, state=state, cell=detail)
            with self._lock:
                self._transports[name] = transport
            session = DeviceSession(profile, transport)
            session.open()
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
            self._device_cells(session, units)
        except TransportError as exc:
            with self._lock:
                done = {(o.cell.key, o.repetition) for o in self.outcome.outcomes}
            self._fail_all([u for u in units if (u.cell.key, u.repetition) not in done], str(exc))
        finally:
            locks.release_device(transport, device_lock)
            self.outcome.bytes_sent[name] = transport.bytes_sent
            session.close()
            self.progress.update(name, state="interrupted" if self.stop.is_set() else "done", phase="")

    def cooldown_policy(self, profile: Profile) -> CooldownPolicy:
        """The profile's cooldown limits, read at `cooldown_poll_s`."""
        return CooldownPolicy(profile.cooldown_max_s, profile.cooldown_margin_c, self.cooldown_poll_s)

    def _device_cells(self, session: DeviceSession, units: list[Unit]) -> None:
        profile = session.profile
        name = profile.name
        fingerprint, problem = session.prepare()
        problem = problem or runtime_problem(profile, fingerprint)
        record = getattr(session.transport, "record", None)  # e.g. the labgrid place, its tags and exporter
        extra = record() if callable(record) else {}
        if fingerprint is not None or extra:  # where a failed device was (its place) is worth keeping too
            self.writer.log("device", device=name, fingerprint=fingerprint, **extra)
        if fingerprint is None or problem:
            return self._fail_all(units, problem)
        cooldown = self.cooldown_policy(profile)
        idle = session.temperature() if cooldown.enabled else None
        pushed: dict[str, tuple[str, str | None]] = {}  # cell key -> its model (and eval set) on the device
        unpushable: dict[str, str] = {}  # cell key -> why its files are not on the device
        loops: dict[str, list[np.ndarray]] = {}
        for index, unit in enumerate(units):
            if self.stop.is_set():
                return
            key = unit.cell.key
            if key not in pushed and key not in unpushable:
                self.progress.update(name, state="pushing", cell=unit.label(), runs=0, seconds=0.0)
                try:
                    pushed[key] = session.push_cell(unit.cell)
                except DeviceFull as exc:  # the device works: the cells whose files fit still run
                    unpushable[key] = (f"{exc}; {unit.cell.model}/{unit.cell.variant} is not measured "
                                       "(free space on the device, or use smaller variants)")
            if key in unpushable:
                self._fail_all([unit], unpushable[key])
                continue
            if index and idle is not None:
                cooldown.wait(session.temperature, idle, self.stop,
                              on_reading=lambda t: self.progress.update(name, state="cooling", temp_c=t))
            model, eval_remote = pushed[key]
            outcome, device_lost = session.run_repetition(
                self.plan.settings, unit, model, eval_remote, self.writer.cell_writer(unit), self.progress,
                loops.setdefault(unit.cell.key, []), inputs=self.plan.meta.get("inputs"),
                deadline_s=self.deadline_override)
            self._record(outcome)
            if device_lost:
                self._fail_all(units[index + 1:], f"not run: {outcome.reason}")
                self.progress.update(name, state="failed")
                return
