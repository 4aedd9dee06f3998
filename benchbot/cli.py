"""The `benchbot` command: a thin click layer over the library.

It parses options, calls benchbot.api (which returns data) and hands the results to
benchbot.console (which renders them); it imports nothing else of benchbot. Every expected
failure is a BenchbotError, printed as one line on stderr with a non-zero exit; tracebacks
are for bugs only.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from benchbot import api
from benchbot.api import BenchbotError, PartialRun, Settings, __version__
from benchbot.console import Console


def _console() -> Console:
    """A console on this process's streams, made per command (so click's test runner's streams are used)."""
    return Console()


def friendly(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn BenchbotError into `benchbot: <message>` and its exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except BenchbotError as exc:
            _console().error(exc)
            sys.exit(exc.exit_code)
        except OSError as exc:  # a file of this machine's (full disk, no permission): one line, not a traceback
            problem = api.host_file_error(exc, "use")
            _console().error(problem)
            sys.exit(problem.exit_code)

    return wrapper


def _csv(value: str | None, kind: Callable[[str], Any] = str, option: str = "") -> list[Any] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    try:
        return [kind(v) for v in items]
    except ValueError:
        raise BenchbotError(f"{option} takes a comma-separated list, got '{value}'") from None


results_option = click.option(
    "--results", "results", type=click.Path(file_okay=False), default=None,
    help="Results folder (default: $BENCHBOT_RESULTS or ./results).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="benchbot")
def main() -> None:
    """Benchmark TFLite (LiteRT) model variants across edge devices.

    Start with `benchbot run` (the bundled models on this machine), then `benchbot report`.
    """


@main.command()
@click.option("--devices", default=None, help="Comma-separated device profile names or .toml files [default: local].")
@click.option("--models", default=None,
              help="Comma-separated .tflite files, folders of variants, or zoo names [default: the whole zoo]; NAME=PATH names one (two builds of a model in one run, then: benchbot compare RUN --models OLD,NEW).")
@click.option("--variants", default=None, help="Only these variants, e.g. fp32,int8.")
@click.option("--threads", default=None, help="Thread counts to sweep, e.g. 1,2,4 [default: each profile's].")
@click.option("--batch", default=None, help="Batch sizes to sweep where the model allows resizing [default: 1].")
@click.option("--xnnpack", type=click.Choice(["on", "off", "both"]), default="on", show_default=True,
              help="XNNPACK delegate on, off (builtin kernels only) or both as an axis.")
@click.option("--repetitions", type=int, default=None,
              help="Agent processes per cell, interleaved in shuffled rounds [default: each profile's, 5].")
@click.option("--warmup-runs", type=int, default=Settings.warmup_runs, show_default=True,
              help="Untimed warmup inferences per repetition (at least).")
@click.option("--warmup-seconds", type=float, default=Settings.warmup_seconds, show_default=True,
              help="Warmup duration per repetition (at least).")
@click.option("--min-runs", type=int, default=Settings.min_runs, show_default=True,
              help="Timed inferences per repetition (at least).")
@click.option("--min-seconds", type=float, default=Settings.min_seconds, show_default=True,
              help="Timed loop duration per repetition (at least).")
@click.option("--max-seconds", type=float, default=Settings.max_seconds, show_default=True,
              help="A repetition's timed loop stops here.")
@click.option("--telemetry-ms", type=int, default=None, help="Telemetry interval [default: each profile's, 100].")
@click.option("--seed", type=int, default=Settings.seed, show_default=True,
              help="Seed of the random model inputs and of the shuffled order.")
@click.option("--no-accuracy", is_flag=True, help="Skip the eval-set accuracy pass after timing.")
@click.option("--order", type=click.Choice(["interleaved", "sequential"]), default="interleaved", show_default=True,
              help="Interleaved: each round runs one repetition of every cell, shuffled; sequential: a cell's "
                   "repetitions back to back.")
@click.option("--resume", "resume", default=None, metavar="RUN_ID",
              help="Run only the cells of RUN_ID that did not complete, adding them to that run.")
@click.option("--local", "rehearse", is_flag=True,
              help="Fleet rehearsal: replace each device by its QEMU twin (profile [emulate] table).")
@click.option("--quiet", is_flag=True, help="No progress display.")
@click.option("--input-range", "input_ranges", default=None, metavar="NAME=LO:HI[,...]",
              help="Random values of these inputs in [LO, HI) (HI exclusive) [default: what the graph shows, "
                   "else benchmark_model's ranges].")
@click.option("--input-data", "input_data", default=None, metavar="FILE.npz|eval",
              help="Inputs from an .npz of arrays named by input (one sample, or N cycled outside the timing); "
                   "'eval': each family's eval set.")
@click.option("--input-shape", "input_shapes", default=None, metavar="NAME=1x128[,...]",
              help="Shape of inputs with a dynamic (-1) dimension.")
@click.option("--signature", default=None, help="Run this signature of the model [default: the first].")
@click.option("--inventory", default=None, metavar="FILE",
              help="Ansible inventory (needs ansible-core): --devices names its groups or hosts [default: all].")
@click.option("--profile", "base_profile", default=None, metavar="NAME",
              help="With --inventory: the device profile every host starts from (runtime, threads, ...).")
@click.option("--max-parallel", type=int, default=None, metavar="N",
              help="At most N devices at once [default: all, up to 128].")
@click.option("--progress", "progress_detail", type=click.Choice(["auto", "devices", "cells"]), default="auto",
              show_default=True, help="One line per device, or per repetition; auto: per device above 8 devices.")
@results_option
@friendly
def run(**opts: Any) -> None:
    """Benchmark models on devices and store every sample under results/."""
    console = _console()
    request = api.RunRequest(
        devices=_csv(opts["devices"]) or ([] if opts["inventory"] else ["local"]),
        models=_csv(opts["models"]),
        variants=_csv(opts["variants"]),
        threads=_csv(opts["threads"], int, "--threads"),
        batches=_csv(opts["batch"], int, "--batch"),
        xnnpack={"on": [True], "off": [False], "both": [True, False]}[opts["xnnpack"]],
        warmup_runs=opts["warmup_runs"], warmup_seconds=opts["warmup_seconds"],
        min_runs=opts["min_runs"], min_seconds=opts["min_seconds"], max_seconds=opts["max_seconds"],
        telemetry_ms=opts["telemetry_ms"], repetitions=opts["repetitions"], seed=opts["seed"],
        accuracy=not opts["no_accuracy"],
        interleave=opts["order"] == "interleaved", resume=opts["resume"], rehearse=opts["rehearse"],
        results=opts["results"], quiet=opts["quiet"], argv=sys.argv[1:],
        input_ranges=opts["input_ranges"], input_data=opts["input_data"], input_shapes=opts["input_shapes"],
        signature=opts["signature"],
        inventory=opts["inventory"], base_profile=opts["base_profile"], max_parallel=opts["max_parallel"],
        progress=opts["progress_detail"],
    )
    try:
        with api.sigterm_as_ctrl_c():  # `kill`, `timeout` and service managers stop a run as Ctrl-C does
            outcome = api.execute(request, progress=console.run_progress(request.quiet, request.progress),
                                  warn=console.warning)
    except KeyboardInterrupt:  # before the cells started (or a second Ctrl-C while stopping)
        raise api.interrupted_error() from None
    console.run_outcome(outcome)
    problem = api.outcome_error(outcome)
    if problem is not None:
        raise problem


@main.command()
@click.argument("runs", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["table", "md", "csv", "json", "html"]), default="table",
              show_default=True,
              help="Terminal table, an export for other tools, or one self-contained HTML file (plots embedded).")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Write the export to this file instead of stdout (html: default <run>/report.html).")
@click.option("--baseline", default="fastest", show_default=True, metavar="fastest|VARIANT",
              help="What the relative column compares against, within each device x model x threads.")
@click.option("--max-accuracy-drop", type=float, default=1.0, show_default=True, metavar="POINTS",
              help="Accuracy budget of the answer at the top: the smallest variant within this many points of "
                   "the family's baseline.")
@click.option("--no-plots", is_flag=True, help="Do not write plot files.")
@click.option("--cell-plots", type=click.Choice(["auto", "all", "none"]), default="auto", show_default=True,
              help="Per-cell telemetry timelines in plots/cells/: auto draws up to 12 per run (flagged first); "
                   "every cell's latency over time is in each device's timelines plot either way.")
@click.option("--no-cell-plots", is_flag=True, hidden=True, help="Same as --cell-plots none.")
@click.option("--plot-format", type=click.Choice(["png", "svg", "both"]), default="png", show_default=True,
              help="File format of the per-device plots (cell timelines are PNG unless svg is asked for); SVG "
                   "doubles the drawing time.")
@results_option
@friendly
def report(runs: tuple[str, ...], fmt: str, output: str | None, baseline: str, max_accuracy_drop: float,
           no_plots: bool, cell_plots: str, no_cell_plots: bool, plot_format: str, results: str | None) -> None:
    """Show runs (default: the latest) as tables, grouped by device, and write their plots."""
    console = _console()
    formats = {"png": ("png",), "svg": ("svg",), "both": ("png", "svg")}[plot_format]
    api.report_runs(list(runs) or [None], fmt=fmt, output=Path(output) if output else None, plots=not no_plots,
                    results=results, baseline=baseline, cell_plots="none" if no_cell_plots else cell_plots,
                    plot_formats=formats, max_accuracy_drop=max_accuracy_drop, echo=console.write,
                    show=console.report, show_plots=console.plot_summary)


@main.command()
@click.argument("run_a", metavar="RUN_A")
@click.argument("run_b", metavar="[RUN_B]", required=False)
@click.option("--models", "models", default=None, metavar="OLD,NEW",
              help="Compare model NEW against model OLD inside RUN_A (one run whose --models named both, e.g. "
                   "old=build/old,new=build/new): their repetitions ran interleaved, the strongest A/B.")
@click.option("--factor", type=float, default=1.05, show_default=True,
              help="A cell is slower (or faster) only when the 95 % interval of B/A, from the repetitions, lies "
                   "wholly beyond this factor.")
@click.option("--format", "fmt", type=click.Choice(["table", "md", "json"]), default="table", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None, help="Write to this file instead.")
@results_option
@friendly
def compare(run_a: str, run_b: str | None, models: str | None, factor: float, fmt: str, output: str | None,
            results: str | None) -> None:
    """Compare run B against run A (or model NEW against OLD in one run), cell by cell; exit 1 when a cell got
    significantly slower (for CI)."""
    console = _console()
    pair = None
    if models is not None:
        names = [m.strip() for m in models.split(",")]
        if len(names) != 2 or not all(names):
            raise BenchbotError(f"--models takes two model names, OLD,NEW, got '{models}'")
        pair = (names[0], names[1])
    result = api.compare_runs(run_a, run_b, factor=factor, fmt=fmt, output=Path(output) if output else None,
                              results=results, echo=console.write, models=pair)
    if fmt == "table" and output is None:
        console.comparison(result)
    if result.slower:
        console.error(f"{len(result.slower)} cell(s) significantly slower in {result.run_b} than in "
                      f"{result.run_a} (95 % interval of B/A wholly beyond ×{factor:g})")
        sys.exit(1)


@main.command("runs")
@click.argument("run", required=False)
@click.option("--verify", is_flag=True,
              help="Check that every stored repetition's samples are what was written; exit 1 if any is damaged.")
@results_option
@friendly
def list_runs_command(run: str | None, verify: bool, results: str | None) -> None:
    """List stored runs, oldest first (or RUN); --verify checks their stored samples."""
    console = _console()
    root, entries = api.list_runs(run, results, verify)
    console.runs(root, entries)
    if not verify:
        return
    unreadable = [e.run_id for e in entries if e.unreadable]
    if unreadable:
        console.error(f"{len(unreadable)} run(s) cannot be read: {', '.join(unreadable[:5])}"
                      + (" ..." if len(unreadable) > 5 else ""))
    damaged = [e for e in entries if e.damaged]
    if damaged:
        fix = "; ".join(f"`benchbot run --resume {e.run_id}`" for e in damaged[:3]) + (" ..." if len(damaged) > 3 else "")
        console.error(f"{sum(len(e.damaged or []) for e in damaged)} damaged repetition(s) in {len(damaged)} run(s); "
                      f"{fix} measures them again")
    logs = [e.run_id for e in entries if e.log_damage]
    if logs:
        console.error(f"the run log of {', '.join(logs[:5])} is damaged: what its unreadable lines said is lost")
    if unreadable or damaged or logs:
        sys.exit(1)


@main.group()
def devices() -> None:
    """Device profiles: list them, copy one to edit, check a device, trust its host key, set it up."""


@devices.command("list")
@click.option("--inventory", default=None, metavar="FILE", help="List the hosts of this Ansible inventory instead.")
@click.option("--devices", "names", default=None, help="With --inventory: only these groups or hosts.")
@click.option("--profile", "base_profile", default=None, metavar="NAME", help="With --inventory: the base profile.")
@friendly
def devices_list(inventory: str | None, names: str | None, base_profile: str | None) -> None:
    """Profiles found, and where each device points (or what an Ansible inventory resolves to)."""
    if inventory:
        _console().inventory(api.inventory_devices(inventory, _csv(names), base_profile), inventory, base_profile)
        return
    _console().devices(api.list_devices())


@devices.command("init")
@click.argument("name")
@click.option("--from", "source", required=True, help="The profile to copy: a device name (pi4, local, ...) or a .toml file.")
@click.option("--force", is_flag=True, help="Overwrite ./device_profiles/NAME.toml if it exists.")
@friendly
def devices_init(name: str, source: str, force: bool) -> None:
    """Write an editable copy of a profile into ./device_profiles/NAME.toml (searched before the bundled ones)."""
    path = api.init_device(name, source, force)
    _console().out(f"wrote {path}: edit it, then `benchbot devices check {name}`")


@devices.command("check")
@click.argument("names", nargs=-1, required=True)
@friendly
def devices_check(names: tuple[str, ...]) -> None:
    """Connect to each device and show what the agent finds there (Python, numpy, runtime, sensors, disk)."""
    results = api.check_devices(list(names))
    _console().device_checks(results)
    problem = api.check_error(results)
    if problem is not None:
        raise problem


@devices.command("trust")
@click.argument("name")
@click.option("--replace", is_flag=True, help="Replace a recorded key that changed (after checking the new one).")
@friendly
def devices_trust(name: str, replace: bool) -> None:
    """Record a device's SSH host key (and its jump hosts') in benchbot's known_hosts."""
    _console().trusted(api.trust_device(name, replace))


@devices.command("setup")
@click.argument("names", nargs=-1, required=True)
@click.option("--offline", is_flag=True,
              help="The device has no internet: download wheels here and push them.")
@click.option("--runtime", default="ai-edge-litert", show_default=True,
              help="ai-edge-litert or tflite-runtime, with an optional version (tflite-runtime==2.14.0).")
@click.option("--base-python", default="python3", show_default=True,
              help="The device's interpreter that creates the venv.")
@friendly
def devices_setup(names: tuple[str, ...], offline: bool, runtime: str, base_python: str) -> None:
    """Create the venv of [device] python on each device and install numpy, a TFLite runtime and psutil."""
    console = _console()
    failed = api.setup_devices(list(names), runtime, offline, base_python, console.out)
    problem = api.setup_error(failed, list(names))
    if problem is not None and len(names) > 1:
        for why in failed.values():
            console.error(why)
    if problem is not None:
        raise problem


@main.group()
def models() -> None:
    """The bundled model zoo and conversion of your own models into variants."""


@models.command("list")
@friendly
def models_list() -> None:
    """Zoo models and their variants."""
    _console().models(api.list_models())


@models.command("inspect")
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per model instead of text.")
@results_option
@friendly
def models_inspect(target: str, as_json: bool, results: str | None) -> None:
    """Inputs, outputs, signatures, ops with versions, and which runtimes can load TARGET (file, folder, zoo name)."""
    _console().inspections(api.inspect_models(target, results), as_json)


@contextlib.contextmanager
def _converter_chatter_hidden() -> Any:
    """Hide TensorFlow's native and Python warnings on stderr (a failing variant's reason is reported anyway);
    on an unexpected exception the hidden text is shown, since it may explain the crash."""
    import tempfile
    import warnings

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BenchbotError:
            raise
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace")[-4000:])
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


@models.command("convert")
@click.argument("src", metavar="SRC")
@click.option("--out", "out", required=True, metavar="DIR",
              help="Folder for the variants, family.json and the eval set; benchmark it with --models DIR.")
@click.option("--variants", default="fp32,fp16,dynamic,int8", show_default=True,
              help="Comma-separated, from fp32, fp16, dynamic, int8, int16x8.")
@click.option("--calibration", metavar="DATA", default=None,
              help="Representative inputs for int8/int16x8: .npy, or .npz with an array x (200 are used).")
@click.option("--int8-io", is_flag=True, help="The int8 variant takes int8 input (float models) and gives int8 output.")
@click.option("--name", default=None, help="Family name [default: the --out folder's name].")
@click.option("--eval", "eval_set", metavar="EVAL.npz", default=None,
              help="Labelled eval set (arrays x and y), copied in so `benchbot run` measures accuracy on the device.")
@friendly
def models_convert(src: str, out: str, variants: str, calibration: str | None, int8_io: bool, name: str | None,
                   eval_set: str | None) -> None:
    """Convert a SavedModel folder or .keras/.h5 file (SRC) into TFLite variants (needs TensorFlow)."""
    with _converter_chatter_hidden():
        family = api.convert_model(src, out, _csv(variants) or [], calibration, int8_io, name, eval_set)
    _console().converted(family, out)
    if family["failed"]:
        total = len(family["failed"]) + len(family["variants"])
        raise PartialRun(f"{len(family['failed'])} of {total} variants failed to convert: "
                         f"{', '.join(family['failed'])}")


@main.group()
def qemu() -> None:
    """The emulated arm64 device: check the host, build the image once, start and stop VMs."""


def _vm_command(verb: str) -> Callable[[Callable[[str], None]], click.Command]:
    """`benchbot qemu VERB [NAME]`: NAME defaults to the bundled emulated device, errors become one sentence."""

    def register(function: Callable[[str], None]) -> click.Command:
        return qemu.command(verb)(click.argument("name", default="qemu-arm64")(friendly(function)))

    return register


@qemu.command("doctor")
def qemu_doctor() -> None:
    """Which host tools are present or missing, and the command that installs them."""
    result = api.doctor()
    _console().doctor(result)
    if not result.ok:
        sys.exit(1)


@qemu.command("build")
@click.option("--force", is_flag=True, help="Rebuild even if an image with the same inputs is cached.")
@friendly
def qemu_build(force: bool) -> None:
    """Build the Debian arm64 image once (about 10 minutes under emulation) and cache it."""
    console = _console()
    image, seconds = api.build_image(force, log=console.err)
    console.out(f"image ready in {seconds:.0f} s: {image.folder} (python {image.guest_python})")


@_vm_command("start")
def qemu_start(name: str) -> None:
    """Boot the emulated device NAME (a qemu profile, or any profile's QEMU twin) and wait for SSH."""
    console = _console()
    vm = api.vm(name, log=console.err)
    port = vm.start()
    console.out(f"{name}: running, ssh on 127.0.0.1:{port} (boot {vm.boot_seconds} s)")


@_vm_command("stop")
def qemu_stop(name: str) -> None:
    """Stop the emulated device NAME."""
    console = _console()
    console.out(f"{name}: {'stopped' if api.vm(name, log=console.err).stop() else 'was not running'}")


@_vm_command("status")
def qemu_status(name: str) -> None:
    """Whether the emulated device NAME runs, its pid, port and uptime."""
    console = _console()
    console.vm_status(name, api.vm(name, log=console.err).status())


if __name__ == "__main__":
    main()
