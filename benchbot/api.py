"""Library entry points behind the CLI: start or resume a run, report runs.

Scripts and notebooks call these directly; the CLI only parses options.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from benchbot.errors import BenchbotError
from benchbot.models.catalog import resolve_models
from benchbot.plan import Plan, Settings, build_plan, settings_from_json, validate_axes
from benchbot.profiles import Profile, load_profile
from benchbot.progress import make_progress
from benchbot.runner import Runner, RunOutcome
from benchbot.store import RunWriter, find_run, load_run, results_root
from benchbot.transport import Transport, for_profile


@dataclass
class RunRequest:
    devices: list[str] = field(default_factory=lambda: ["local"])
    models: list[str] | None = None
    variants: list[str] | None = None
    threads: list[int] | None = None
    batches: list[int] | None = None
    xnnpack: list[bool] = field(default_factory=lambda: [True])
    warmup_runs: int = 10
    warmup_seconds: float = 0.5
    min_runs: int = 100
    min_seconds: float = 1.0
    max_seconds: float = 60.0
    telemetry_ms: int | None = None
    seed: int = 0
    accuracy: bool = True
    interleave: bool = True
    resume: str | None = None
    rehearse: bool = False
    results: str | None = None
    quiet: bool = False
    argv: list[str] = field(default_factory=list)


def load_devices(names: list[str], rehearse: bool = False) -> list[Profile]:
    profiles = [load_profile(n) for n in names]
    seen = [p.name for p in profiles]
    for name in set(seen):
        if seen.count(name) > 1:
            raise BenchbotError(f"device '{name}' is named twice in --devices")
    if rehearse:
        profiles = [qemu_twin(p) for p in profiles]
    return profiles


def qemu_twin(profile: Profile) -> Profile:
    """The emulated stand-in of a device for a fleet rehearsal: its [emulate] table, reached like qemu-arm64."""
    if profile.transport == "qemu":
        return profile
    if profile.emulate is None:
        raise BenchbotError(f"device '{profile.name}' has no [emulate] table in {profile.path}, so it has no QEMU twin")
    base = load_profile("qemu-arm64")
    return replace(base, name=profile.name, description=f"QEMU twin of {profile.description or profile.name}",
                   emulate=profile.emulate, threads=profile.threads, emulated=True)


def execute(request: RunRequest, transport_factory: Callable[[Profile], Transport] = for_profile) -> RunOutcome:
    """Plan (or resume) a run, execute it, and return what happened to each cell."""
    root = results_root(request.results)
    if request.resume:
        plan, writer, todo = _resume(request, root)
    else:
        settings = Settings(
            warmup_runs=request.warmup_runs, warmup_seconds=request.warmup_seconds, min_runs=request.min_runs,
            min_seconds=request.min_seconds, max_seconds=request.max_seconds, seed=request.seed,
            accuracy=request.accuracy, telemetry_interval_ms=request.telemetry_ms,
        )
        settings.validate()
        validate_axes(request.threads, request.batches)
        devices = load_devices(request.devices, request.rehearse)
        families = resolve_models(request.models, request.variants)
        plan = build_plan(devices, families, settings, threads=request.threads, xnnpack=request.xnnpack,
                          batches=request.batches, interleave=request.interleave)
        writer = RunWriter.create(root, plan, request.argv)
        todo = plan.cells
    progress = make_progress(request.quiet)
    runner = Runner(plan, writer, progress, transport_factory)
    try:
        return runner.run(todo)
    finally:
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
    todo = [c for c in run.cells if run.status(c.key) != "ok"]
    if not todo:
        raise BenchbotError(f"run {run.run_id} is already complete; nothing to resume")
    for cell in todo:
        if not Path(cell.model_path).is_file():
            raise BenchbotError(f"cannot resume: model file {cell.model_path} of cell {cell.key} is gone")
    writer.log("resume", cells=[c.key for c in todo])
    return Plan(devices=devices, cells=run.cells, settings=settings), writer, todo


def report_runs(
    runs: list[str | None],
    fmt: str = "table",
    output: Path | None = None,
    plots: bool = True,
    results: str | None = None,
    echo: Callable[[str], Any] | None = None,
) -> list[Path]:
    """Print or export the summary of one or more runs; write plots under each run's folder."""
    import pandas as pd

    from benchbot.report import table

    echo = echo or (lambda text: sys.stdout.write(text))
    root = results_root(results)
    loaded = [load_run(r, root) for r in runs]
    summary = pd.concat([r.summary for r in loaded], ignore_index=True)
    written: list[Path] = []
    if plots:
        from benchbot.report.plots import write_plots

        for run in loaded:
            written.extend(write_plots(run, run.folder / "plots"))
        for run in loaded:
            table.export_frame(run.summary).to_csv(run.folder / "summary.csv", index=False)
    if fmt == "table":
        from rich.console import Console

        console = Console(width=200) if not sys.stdout.isatty() else Console()
        for run in loaded:
            state = "complete" if run.complete else "INCOMPLETE (some cells did not finish)"
            console.print(f"[bold]run {run.run_id}[/]  {state}  ({run.folder})")
            for device, fp in run.fingerprints.items():
                console.print(f"  {device}: {fp.get('model') or fp.get('cpu')} {fp.get('arch')}, "
                              f"{fp.get('cores')} cores, {fp.get('os')}, Python {fp.get('python')}, "
                              f"{fp.get('runtime')} {fp.get('runtime_version')}")
        console.print(table.to_rich(summary))
        for line in table.failures(summary):
            console.print(f"[red]{line}[/]")
        if written:
            console.print(f"plots: {', '.join(str(p) for p in written)}")
        return written
    text = {"md": table.to_markdown, "csv": table.to_csv}.get(fmt)
    if fmt == "json":
        body = table.to_json(summary, [{"run_id": r.run_id, "complete": r.complete, "devices": r.fingerprints}
                                       for r in loaded])
    elif text is not None:
        body = text(summary)
    else:
        raise BenchbotError(f"unknown format '{fmt}'")
    if output:
        output.write_text(body)
        written.append(output)
    else:
        echo(body)
    return written
