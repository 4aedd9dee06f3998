"""Library entry points behind the CLI: start or resume a run, report runs.

Scripts and notebooks call these directly; the CLI only parses options.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from benchbot import model_inputs
from benchbot.errors import BenchbotError
from benchbot.locks import run_lock
from benchbot.models.catalog import resolve_models
from benchbot.models.inspect import run_warnings
from benchbot.plan import Plan, Settings, build_plan, settings_from_json, validate_axes
from benchbot.profiles import Profile, load_profile
from benchbot.progress import make_progress
from benchbot.runner import Runner, RunOutcome
from benchbot.store import RunWriter, find_run, results_root
from benchbot.summary import load_run
from benchbot.transport import Transport, for_profile


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
    with contextlib.ExitStack() as held:  # the run folder's writer lock, held until the run ends
        return _execute(request, transport_factory, held)


def _execute(request: RunRequest, transport_factory: Callable[[Profile], Transport],
             held: contextlib.ExitStack) -> RunOutcome:
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
        if inputs:
            plan.meta["inputs"] = inputs
        for warning in run_warnings(devices, [c.model_path for c in plan.cells], root):  # runtimes known too old
            print(f"benchbot: warning: {warning}", file=sys.stderr)
        writer = RunWriter.create(root, plan, request.argv)
        held.enter_context(run_lock(writer.folder))
        todo = plan.units
    from benchbot import fleet

    slots = fleet.max_parallel(request.max_parallel, len(plan.devices))
    progress = fleet.DeviceLines() if not request.quiet and fleet.compact(len(plan.devices), request.progress) \
        else make_progress(request.quiet)
    runner = Runner(plan, writer, progress, transport_factory)
    if slots < len(plan.devices):
        runner.slots = threading.Semaphore(slots)
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
    listed = {p.name: p for p in request_devices(request)} if request.inventory else {}  # --inventory again
    for name in device_info:
        profile = listed[name] if name in listed else load_profile(name)
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


def report_runs(
    runs: list[str | None],
    fmt: str = "table",
    output: Path | None = None,
    plots: bool = True,
    results: str | None = None,
    echo: Callable[[str], Any] | None = None,
    baseline: str = "fastest",
    sections: list[Any] | None = None,
    cell_plots: bool | str = "auto",
    plot_formats: tuple[str, ...] = ("png", "svg"),
    max_accuracy_drop: float = 1.0,
) -> list[Path]:
    """Print or export the summary of one or more runs; write plots under each run's folder.

    fmt: table (terminal), md, csv, json or html (one self-contained file; default
    <run>/report.html). baseline: "fastest" or a variant name for the relative
    column. sections: extra report sections (callables taking the ReportData, see
    benchbot.report.sections); None means the default ones. cell_plots: "auto"
    (timelines of up to 48 cells per run, the most telling first), "all"/True, or
    "none"/False. Returns files written.
    """
    import tempfile

    from benchbot.report import table
    from benchbot.report.data import build_report
    from benchbot.report.sections import render_sections

    if fmt not in ("table", "md", "csv", "json", "html"):
        raise BenchbotError(f"unknown format '{fmt}' (choose table, md, csv, json or html)")
    if fmt == "table" and output is not None:
        raise BenchbotError("--output writes an export: add --format md, csv, json or html")
    cells_wanted = cell_plots not in (False, "none")
    cell_limit: int | None = None
    if cell_plots == "auto" and (plots or fmt == "html"):  # matplotlib is imported only to draw
        from benchbot.report import plots as plotting

        cell_limit = plotting.DEFAULT_CELL_LIMIT
    echo = echo or (lambda text: sys.stdout.write(text))
    root = results_root(results)
    loaded = []
    for r in runs:
        run = load_run(r, root)
        if all(run.folder.resolve() != other.folder.resolve() for other in loaded):
            loaded.append(run)
    data = build_report(loaded, baseline, max_accuracy_drop)
    written: list[Path] = []
    plot_files: list[Any] = []
    scratch = None
    if plots or fmt == "html":
        if not plots:  # the HTML report embeds its plots even when no plot files are wanted
            scratch = tempfile.TemporaryDirectory(prefix="benchbot-plots-")
        data.plot_dir = loaded[0].folder / "plots" if plots else Path(scratch.name)
        data.plot_formats = tuple(plot_formats) if plots else ("png",)  # sections write their plots alike
        data.plot_dir.mkdir(parents=True, exist_ok=True)

    def draw() -> None:
        from benchbot.report.plots import plot_run

        for run in loaded:
            folder = run.folder / "plots" if plots else Path(scratch.name) / run.run_id
            plot_files.extend(plot_run(run, folder, data.plot_formats, cells=cells_wanted, cell_limit=cell_limit))

    try:
        if plots:
            for run in loaded:
                own = data.summary[data.summary["run_id"] == run.run_id]
                (run.folder / "summary.csv").write_text(table.to_csv(own))
        if fmt == "table":  # the table first: plots of a big run take a while
            shown = render_sections(data, sections)
            _print_report(data, shown)
            if plots:
                draw()
                _print_plot_summary(loaded, plot_files, cells_wanted)
                written.extend(p for f in plot_files for p in f.paths)
            return written
        if data.plot_dir is not None:
            draw()
            if plots:
                written.extend(p for f in plot_files for p in f.paths)
        shown = render_sections(data, sections)
        if fmt == "html":
            from benchbot.report import html

            target = output or _html_path(loaded, root)
            target.write_text(html.render(data, plot_files, shown), encoding="utf-8")
            echo(f"report: {target}\n")
            return [*written, target]
        if fmt == "json":
            body = table.to_json(data, sections=shown)
        elif fmt == "md":
            body = table.to_markdown(data, shown)
        else:
            body = table.to_csv(data)
        if output:
            output.write_text(body)
            written.append(output)
        else:
            echo(body)
        return written
    finally:
        if scratch is not None:
            scratch.cleanup()


def _html_path(loaded: list[Any], root: Path) -> Path:
    if len(loaded) == 1:
        return loaded[0].folder / "report.html"
    ids = [r.run_id for r in loaded]
    name = "--".join(ids[:3]) + (f"-and-{len(ids) - 3}-more" if len(ids) > 3 else "")
    return root / f"report-{name}.html"


def _console() -> Any:
    from rich.console import Console

    return Console(width=max(200, Console().width)) if not sys.stdout.isatty() else Console()


def _print_report(data: Any, sections: list[Any]) -> None:
    from rich.markdown import Markdown

    from benchbot.report import table

    console = _console()
    for state in data.run_states():
        done = "complete" if state["complete"] else "INCOMPLETE (some cells did not finish)"
        console.print(f"[bold]run {state['run_id']}[/]  {done}  ({state['folder']})")
    for renderable in table.to_rich(data):
        console.print(renderable)
    for line in table.failures(data.summary):
        console.print(line, style="red", markup=False)
    for section in sections:
        console.print()
        console.print(f"[bold]{section.title}[/]")
        console.print(Markdown(section.markdown))


def _print_plot_summary(loaded: list[Any], plot_files: list[Any], cells_wanted: bool) -> None:
    console = _console()
    folders = sorted({str(p.paths[0].parent) for p in plot_files if p.kind != "timeline" and p.paths})
    timelines = sum(1 for p in plot_files if p.kind == "timeline")
    cells = sum(sum(1 for c in r.cells if r.best(c.key) is not None) for r in loaded)
    line = f"plots: {', '.join(folders)}"
    if timelines:
        line += f" (and {timelines} cell timelines in cells/)"
    if cells_wanted and timelines < cells:
        line += f"; {cells - timelines} more timelines with --cell-plots all"
    console.print(line)


def compare_runs(
    run_a: str,
    run_b: str,
    factor: float = 1.05,
    fmt: str = "table",
    output: Path | None = None,
    results: str | None = None,
    echo: Callable[[str], Any] | None = None,
) -> Any:
    """Compare run B against run A cell by cell (see benchbot.report.compare); print or write the result.

    Returns the Comparison; its `.slower` cells are what a CI gate fails on.
    """
    from benchbot.report import compare

    if fmt not in ("table", "md", "json"):
        raise BenchbotError(f"unknown format '{fmt}' (choose table, md or json)")
    echo = echo or (lambda text: sys.stdout.write(text))
    root = results_root(results)
    a, b = load_run(run_a, root), load_run(run_b, root)
    result = compare.compare(a, b, factor=factor)
    if fmt == "table" and output is None:
        console = _console()
        for renderable in compare.to_rich(result):
            console.print(renderable)
        return result
    body = compare.to_json(result) if fmt == "json" else compare.to_markdown(result)
    if output:
        output.write_text(body)
    else:
        echo(body)
    return result


def _tensorflow_present() -> bool:
    """Whether TensorFlow can be imported, without importing it (that takes seconds)."""
    import importlib.util

    try:
        return importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):  # ValueError: a module set to None in sys.modules (blocked)
        return False


def _read_npz_or_npy(path: Path, what: str) -> dict[str, Any]:
    """The arrays of a .npz (by name) or .npy (as "x"); one BenchbotError line for anything unreadable."""
    import numpy as np

    if not path.is_file():
        raise BenchbotError(f"{what} file {path} does not exist")
    if path.suffix not in (".npz", ".npy"):
        raise BenchbotError(f"{what} file {path} must be .npz or .npy")
    if path.stat().st_size == 0:
        raise BenchbotError(f"{what} file {path} is empty")
    try:
        if path.suffix == ".npy":
            return {"x": np.load(path, allow_pickle=False)}
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except Exception as exc:  # noqa: BLE001 - numpy raises many types for a corrupt file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BenchbotError(f"{what} file {path} cannot be read: {first}") from None


def convert_model(
    source: str | Path,
    out: str | Path,
    variants: list[str] | None = None,
    calibration: str | Path | None = None,
    int8_io: bool = False,
    name: str | None = None,
    eval_set: str | Path | None = None,
) -> dict[str, Any]:
    """`benchbot models convert`: check the inputs, then benchbot.models.convert.convert_family.

    Returns the family manifest (also written to OUT/family.json); its "failed" maps each
    variant that did not convert to the converter's reason. Bad input and a missing
    TensorFlow are one-line BenchbotErrors, raised before anything is written.
    """
    import numpy as np

    from benchbot.models import convert as conv
    from benchbot.models.catalog import VARIANT_ORDER

    wanted = list(dict.fromkeys(variants or conv.DEFAULT_VARIANTS))
    if not _tensorflow_present():
        raise BenchbotError("model conversion needs TensorFlow: pip install 'benchbot[convert]'")
    unknown = [v for v in wanted if v not in conv.VARIANTS]
    if unknown or not wanted:
        raise BenchbotError(f"unknown variant(s) {', '.join(unknown) or '(none given)'}; "
                            f"choose from {', '.join(conv.VARIANTS)}")
    src = Path(source).expanduser()
    if not src.exists():
        raise BenchbotError(f"no such model: {src} (give a SavedModel folder or a .keras/.h5 file)")
    if src.is_dir() and not any((src / f).is_file() for f in ("saved_model.pb", "saved_model.pbtxt")):
        raise BenchbotError(f"{src} is not a SavedModel folder (no saved_model.pb); give a SavedModel folder or "
                            "a .keras/.h5 file")
    if src.is_file() and src.suffix.lower() not in (".keras", ".h5", ".hdf5"):
        raise BenchbotError(f"{src} is not a Keras model file (.keras, .h5) or a SavedModel folder")
    calib = None
    if calibration is not None:
        path = Path(calibration).expanduser()
        arrays = _read_npz_or_npy(path, "calibration")
        calib = arrays.get("x", next(iter(arrays.values()), None))
        if calib is None or calib.ndim == 0 or calib.shape[0] == 0:
            raise BenchbotError(f"calibration file {path} holds no samples")
    needing = [v for v in wanted if v in ("int8", "int16x8")]
    if needing and calib is None:
        raise BenchbotError(f"{' and '.join(needing)} need{'s' if len(needing) == 1 else ''} --calibration DATA: "
                            "representative inputs (.npy, or .npz with an array x)")
    evaluation = None
    if eval_set is not None:
        path = Path(eval_set).expanduser()
        arrays = _read_npz_or_npy(path, "eval")
        if "x" not in arrays or "y" not in arrays:
            raise BenchbotError(f"eval file {path} needs arrays x (inputs) and y (labels); it has "
                                f"{', '.join(arrays) or 'none'}")
        x, y = arrays["x"], np.asarray(arrays["y"]).reshape(-1)
        if x.ndim == 0 or len(x) == 0 or len(x) != len(y):
            raise BenchbotError(f"eval file {path}: x has {len(x) if x.ndim else 0} samples but y has {len(y)} labels")
        if y.dtype.kind not in "iu":
            raise BenchbotError(f"eval file {path}: labels y must be class indices (integers), not {y.dtype}")
        evaluation = (x, y)
    target = Path(out).expanduser()
    if target.exists() and not target.is_dir():
        raise BenchbotError(f"--out {target} is a file, not a folder")
    baseline = min(wanted, key=lambda v: VARIANT_ORDER.index(v))
    try:
        family = conv.convert_family(src, target, wanted, calib, int8_io=int8_io, name=name, baseline=baseline,
                                     eval_set=evaluation)
    except conv.ConversionError as exc:
        raise BenchbotError(str(exc)) from None
    if family["baseline"] not in family["variants"]:  # the baseline itself failed: compare with what converted
        family["baseline"] = min(family["variants"], key=lambda v: VARIANT_ORDER.index(v))
        import json

        (target / "family.json").write_text(json.dumps(family, indent=2) + "\n")
    return family
