"""Start or resume a run: plan it, execute it, and say what the outcome means (complete, partial, failed).

Returns a RunOutcome and raises BenchbotErrors; printing is the caller's (benchbot.console for the CLI).
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchbot import model_inputs
from benchbot.errors import BenchbotError, PartialRun, RunFailed
from benchbot.interrupts import interrupted_by, sigterm_as_ctrl_c
from benchbot.locks import run_lock
from benchbot.models.catalog import resolve_models, sha256_file
from benchbot.models.inspect import run_warnings
from benchbot.plan import Plan, Settings, build_plan, settings_from_json, validate_axes
from benchbot.profiles import Profile, load_devices, load_profile, qemu_twin
from benchbot.progress import Progress
from benchbot.scheduler import Runner, RunOutcome, run_status
from benchbot.store import RunWriter, find_run, results_root
from benchbot.summary import load_run
from benchbot.transport import Transport, for_profile

__all__ = ["RunOutcome", "RunRequest", "execute", "interrupted_error", "load_devices", "outcome_error", "qemu_twin",
           "request_devices", "run_status", "sigterm_as_ctrl_c"]

Warn = Callable[[str], None]
#: Makes the live display of a run for this many devices (benchbot.console.Console.run_progress).
ProgressFactory = Callable[[int], Progress]


@dataclass
class RunRequest:
    devices: list[str] = field(default_factory=lambda: ["local"])
    models: list[str] | None = None
    variants: list[str] | None = None
    threads: list[int] | None = None
    batches: list[int] | None = None
    xnnpack: list[bool] = field(default_factory=lambda: [True])
    warmup_runs: int = Settings.warmup_runs
    warmup_seconds: float = Settings.warmup_seconds
    min_runs: int = Settings.min_runs
    min_seconds: float = Settings.min_seconds
    max_seconds: float = Settings.max_seconds
    telemetry_ms: int | None = None
    repetitions: int | None = None  # None: each device profile's own
    seed: int = Settings.seed
    accuracy: bool = True
    interleave: bool = True
    resume: str | None = None
    rehearse: bool = False
    results: str | None = None
    quiet: bool = False
    argv: list[str] = field(default_factory=list)
    # the user's own model inputs (benchbot.model_inputs): --input-range, --input-data, --input-shape, --signature
    input_ranges: str | None = None
    input_data: str | None = None
    input_shapes: str | None = None
    signature: str | None = None
    # a fleet (benchbot.fleet, benchbot.inventory): --inventory FILE with --profile BASE, --max-parallel, --progress
    inventory: str | None = None
    base_profile: str | None = None
    max_parallel: int | None = None
    progress: str = "auto"


def request_devices(request: RunRequest) -> list[Profile]:
    """The devices of a request: inventory hosts (--inventory) or profile names."""
    if not request.inventory:
        profiles = load_devices(request.devices, request.rehearse)
        if any(p.transport == "labgrid" for p in profiles):
            import importlib.util

            try:
                present = importlib.util.find_spec("labgrid") is not None
            except (ImportError, ValueError):  # ValueError: set to None in sys.modules (blocked)
                present = False
            if not present:  # one sentence before anything starts
                from benchbot.transport.labgrid import INSTALL_HINT

                raise BenchbotError(INSTALL_HINT)
        return profiles
    from benchbot.inventory import inventory_devices

    profiles = inventory_devices(request.inventory, request.devices, request.base_profile)
    return [qemu_twin(p) for p in profiles] if request.rehearse else profiles


def _warn(text: str) -> None:
    """Without a caller's handler, a warning goes through Python's warnings (shown once, filterable)."""
    warnings.warn(text, UserWarning, stacklevel=3)


def execute(request: RunRequest, transport_factory: Callable[[Profile], Transport] = for_profile,
            progress: ProgressFactory | None = None, warn: Warn | None = None) -> RunOutcome:
    """Plan (or resume) a run, execute it, and return what happened to each cell.

    progress: makes the display of the live state from the device count, closed when the run ends
    (default: what the CLI shows; request.quiet shows nothing); warn: called with each warning
    before the run starts (runtimes known too old for a model).
    """
    with contextlib.ExitStack() as held:  # the run folder's writer lock, held until the run ends
        return _execute(request, transport_factory, held, progress, warn or _warn)


def _execute(request: RunRequest, transport_factory: Callable[[Profile], Transport],
             held: contextlib.ExitStack, progress: ProgressFactory | None, warn: Warn) -> RunOutcome:
    root = results_root(request.results)
    if request.resume:
        held.enter_context(run_lock(find_run(request.resume, root)))  # one writer per run folder
        plan, writer, todo = _resume(request, root)
    else:
        settings = Settings(
            warmup_runs=request.warmup_runs, warmup_seconds=request.warmup_seconds, min_runs=request.min_runs,
            min_seconds=request.min_seconds, max_seconds=request.max_seconds, seed=request.seed,
            accuracy=request.accuracy, telemetry_interval_ms=request.telemetry_ms, repetitions=request.repetitions,
        )
        settings.validate()
        validate_axes(request.threads, request.batches)
        devices = request_devices(request)
        families = resolve_models(request.models, request.variants)
        plan = build_plan(devices, families, settings, threads=request.threads, xnnpack=request.xnnpack,
                          batches=request.batches, interleave=request.interleave)
        inputs = model_inputs.from_options(request.input_ranges, request.input_data, request.input_shapes,
                                           request.signature)
        model_inputs.check_eval_sources(inputs, [c.model_path for c in plan.cells])
        model_inputs.check_names(inputs, [c.model_path for c in plan.cells])
        if inputs:
            plan.meta["inputs"] = inputs
            if inputs.get("input_data", model_inputs.EVAL) != model_inputs.EVAL:  # --resume checks it is the same
                plan.meta["input_data_sha256"] = sha256_file(Path(inputs["input_data"]))
        for warning in run_warnings(devices, [c.model_path for c in plan.cells], root):  # runtimes known too old
            warn(warning)
        writer = RunWriter.create(root, plan, request.argv)
        held.enter_context(run_lock(writer.folder))
        todo = plan.units
    from benchbot import fleet

    slots = fleet.max_parallel(request.max_parallel, len(plan.devices))
    if progress is None:  # a script that asks for nothing sees what the CLI shows
        from benchbot.console import Console

        progress = Console().run_progress(request.quiet, request.progress)
    display = progress(len(plan.devices))
    runner = Runner(plan, writer, display, transport_factory)
    if slots < len(plan.devices):
        runner.slots = threading.Semaphore(slots)
    try:
        return runner.run(todo)
    finally:
        display.close()


def _resume(request: RunRequest, root: Path) -> tuple[Plan, RunWriter, list]:
    folder = find_run(request.resume, root)
    run = load_run(folder)
    writer = RunWriter.reopen(folder)
    settings = settings_from_json(run.manifest["plan"]["settings"])
    device_info = run.manifest.get("devices", {})
    devices = []
    listed = {p.name: p for p in request_devices(request)} if request.inventory else {}  # --inventory again
    for name in device_info:
        profile = listed[name] if name in listed else load_profile(name)
        if device_info[name].get("emulated") and not profile.emulated:
            profile = qemu_twin(profile)
        devices.append(profile)
    todo = run.units_todo()
    if not todo:
        raise BenchbotError(f"run {run.run_id} has nothing to resume: every planned repetition is stored whole")
    hashes: dict[str, str] = {}
    for unit in todo:
        path = unit.cell.model_path
        if not Path(path).is_file():
            raise BenchbotError(f"cannot resume: model file {path} of cell {unit.cell.key} is gone")
        if path not in hashes:
            hashes[path] = sha256_file(Path(path))
        if unit.cell.model_sha256 and hashes[path] != unit.cell.model_sha256:  # the same cell, another model
            raise BenchbotError(f"cannot resume: model file {path} changed since run {run.run_id} measured it "
                                f"(sha256 {unit.cell.model_sha256[:12]}… then, {hashes[path][:12]}… now); put "
                                "the original back, or start a new run for the new file")
    stored_plan = run.manifest["plan"]
    data, recorded = (stored_plan.get("inputs") or {}).get("input_data"), stored_plan.get("input_data_sha256")
    if recorded and data:
        if not Path(data).is_file():
            raise BenchbotError(f"cannot resume: the --input-data file {data} of run {run.run_id} is gone")
        if sha256_file(Path(data)) != recorded:
            raise BenchbotError(f"cannot resume: the --input-data file {data} changed since run {run.run_id} used it; "
                                "put the original back, or start a new run for the new data")
    writer.log("resume", units=[[u.cell.key, u.repetition] for u in todo])
    meta = {"interleave": run.manifest["plan"].get("interleave", True)}
    if run.manifest["plan"].get("inputs"):
        meta["inputs"] = run.manifest["plan"]["inputs"]
    return Plan(devices=devices, cells=run.cells, settings=settings, meta=meta), writer, todo




def interrupted_error() -> BenchbotError:
    """Ctrl-C (or SIGTERM) before the cells started, or a second one while stopping."""
    return BenchbotError(f"interrupted{interrupted_by()}; anything measured is stored (see: benchbot runs)")


def outcome_error(outcome: RunOutcome) -> BenchbotError | None:
    """What a finished run means for a script: None when complete, else the error whose exit code says why."""
    if outcome.interrupted:
        return BenchbotError(f"interrupted{interrupted_by()}; continue with: benchbot run --resume {outcome.run_id}")
    if outcome.host_problem:
        stopped = RunFailed if len(outcome.failed) == len(outcome.outcomes) else PartialRun
        return stopped(f"the run stopped: {outcome.host_problem}; everything stored before that is kept: make room, "
                       f"then continue with: benchbot run --resume {outcome.run_id}")
    if not outcome.failed and len(outcome.outcomes) >= outcome.planned:
        return None
    if run_status(outcome) == "failed":
        return RunFailed(f"the run failed: no cell succeeded; after fixing the cause rerun them with: "
                         f"benchbot run --resume {outcome.run_id}")
    return PartialRun(f"the run is partial; rerun the failed cells with: benchbot run --resume {outcome.run_id}")
