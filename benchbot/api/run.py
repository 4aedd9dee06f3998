"""Start or resume a run: plan it, execute it, and say what the outcome means (complete, partial, failed).

Returns a RunOutcome and raises BenchbotErrors; printing is the caller's (benchbot.console for the CLI).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchbot import model_inputs
from benchbot.errors import BenchbotError, PartialRun, RunFailed
from benchbot.interrupts import interrupted_by, sigterm_as_ctrl_c
from benchbot.locks import run_lock
from benchbot.models.catalog import resolve_models
from benchbot.models.inspect import run_warnings
from benchbot.plan import Plan, Settings, build_plan, settings_from_json, validate_axes
from benchbot.profiles import Profile, load_devices, load_profile, qemu_twin
from benchbot.progress import Progress
from benchbot.scheduler import Runner, RunOutcome, run_status
from benchbot.store import RunWriter, find_run, load_run, results_root
from benchbot.transport import Transport, for_profile

__all__ = ["RunOutcome", "RunRequest", "execute", "interrupted_error", "load_devices", "outcome_error", "qemu_twin",
           "run_status", "sigterm_as_ctrl_c"]

Warn = Callable[[str], None]


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


def _warn(text: str) -> None:
    """Without a caller's handler, a warning goes through Python's warnings (shown once, filterable)."""
    warnings.warn(text, UserWarning, stacklevel=3)


def execute(request: RunRequest, transport_factory: Callable[[Profile], Transport] = for_profile,
            progress: Progress | None = None, warn: Warn | None = None) -> RunOutcome:
    """Plan (or resume) a run, execute it, and return what happened to each cell.

    progress: where the live state goes (default: a terminal display, none with request.quiet);
    warn: called with each warning before the run starts (runtimes known too old for a model).
    """
    with contextlib.ExitStack() as held:  # the run folder's writer lock, held until the run ends
        return _execute(request, transport_factory, held, progress, warn or _warn)


def _execute(request: RunRequest, transport_factory: Callable[[Profile], Transport],
             held: contextlib.ExitStack, progress: Progress | None, warn: Warn) -> RunOutcome:
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
        devices = load_devices(request.devices, request.rehearse)
        families = resolve_models(request.models, request.variants)
        plan = build_plan(devices, families, settings, threads=request.threads, xnnpack=request.xnnpack,
                          batches=request.batches, interleave=request.interleave)
        inputs = model_inputs.from_options(request.input_ranges, request.input_data, request.input_shapes,
                                           request.signature)
        model_inputs.check_eval_sources(inputs, [c.model_path for c in plan.cells])
        if inputs:
            plan.meta["inputs"] = inputs
        for warning in run_warnings(devices, [c.model_path for c in plan.cells], root):  # runtimes known too old
            warn(warning)
        writer = RunWriter.create(root, plan, request.argv)
        held.enter_context(run_lock(writer.folder))
        todo = plan.units
    own_progress = progress is None
    if progress is None:  # a script that asks for nothing sees what the CLI shows
        from benchbot.console import Console

        progress = Console().progress(request.quiet)
    runner = Runner(plan, writer, progress, transport_factory)
    try:
        return runner.run(todo)
    finally:
        if own_progress:
            progress.close()


def _resume(request: RunRequest, root: Path) -> tuple[Plan, RunWriter, list]:
    folder = find_run(request.resume, root)
    run = load_run(folder)
    writer = RunWriter.reopen(folder)
    settings = settings_from_json(run.manifest["plan"]["settings"])
    device_info = run.manifest.get("devices", {})
    devices = []
    for name in device_info:
        profile = load_profile(name)
        if device_info[name].get("emulated") and not profile.emulated:
            profile = qemu_twin(profile)
        devices.append(profile)
    todo = run.units_todo()
    if not todo:
        raise BenchbotError(f"run {run.run_id} is already complete; nothing to resume")
    for unit in todo:
        if not Path(unit.cell.model_path).is_file():
            raise BenchbotError(f"cannot resume: model file {unit.cell.model_path} of cell {unit.cell.key} is gone")
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
    if not outcome.failed:
        return None
    if run_status(outcome) == "failed":
        return RunFailed(f"the run failed: no cell succeeded; after fixing the cause rerun them with: "
                         f"benchbot run --resume {outcome.run_id}")
    return PartialRun(f"the run is partial; rerun the failed cells with: benchbot run --resume {outcome.run_id}")
