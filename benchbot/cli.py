"""The `benchbot` command: a thin click layer over the library.

Every expected failure is a BenchbotError, printed as one line on stderr with a
non-zero exit; tracebacks are for bugs only.
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

from benchbot import __version__
from benchbot.errors import BenchbotError, PartialRun, RunFailed
from benchbot.plan import Settings


def friendly(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn BenchbotError into `benchbot: <message>` and its exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except BenchbotError as exc:
            click.echo(f"benchbot: {exc}", err=True)
            sys.exit(exc.exit_code)

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
              help="Comma-separated .tflite files, folders of variants, or zoo names [default: the whole zoo].")
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
    from benchbot.api import RunRequest, execute
    from benchbot.interrupts import interrupted_by, sigterm_as_ctrl_c
    from benchbot.runner import run_status

    request = RunRequest(
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
        with sigterm_as_ctrl_c():  # `kill`, `timeout` and service managers stop a run as Ctrl-C does
            outcome = execute(request)
    except KeyboardInterrupt:  # before the cells started (or a second Ctrl-C while stopping)
        raise BenchbotError(f"interrupted{interrupted_by()}; anything measured is stored (see: benchbot runs)") from None
    ok = len(outcome.outcomes) - len(outcome.failed)
    planned = max(outcome.planned, len(outcome.outcomes))
    not_run = f"; {planned - len(outcome.outcomes)} not run" if planned > len(outcome.outcomes) else ""
    click.echo(f"run {outcome.run_id}: {outcome.cells_ok} of {len(outcome.planned_units)} cells ok ({ok} of {planned} "
               f"repetitions{not_run}), stored in {outcome.folder}", err=True)
    if outcome.interrupted:
        raise BenchbotError(f"interrupted{interrupted_by()}; continue with: benchbot run --resume {outcome.run_id}")
    if outcome.failed:
        for failure in outcome.failed:
            click.echo(f"  failed: {failure.cell.device} {failure.label()}: {failure.reason}", err=True)
        if run_status(outcome) == "failed":
            raise RunFailed(f"the run failed: no cell succeeded; after fixing the cause rerun them with: "
                            f"benchbot run --resume {outcome.run_id}")
        raise PartialRun(f"the run is partial; rerun the failed cells with: benchbot run --resume {outcome.run_id}")


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
              help="Per-cell telemetry timelines in plots/cells/: auto draws up to 48 per run (flagged first).")
@click.option("--no-cell-plots", is_flag=True, hidden=True, help="Same as --cell-plots none.")
@click.option("--plot-format", type=click.Choice(["png", "svg", "both"]), default="both", show_default=True,
              help="File format of the per-device plots (cell timelines are PNG unless svg is asked for).")
@results_option
@friendly
def report(runs: tuple[str, ...], fmt: str, output: str | None, baseline: str, max_accuracy_drop: float,
           no_plots: bool, cell_plots: str, no_cell_plots: bool, plot_format: str, results: str | None) -> None:
    """Show runs (default: the latest) as tables, grouped by device, and write their plots."""
    from benchbot.api import report_runs

    formats = {"png": ("png",), "svg": ("svg",), "both": ("png", "svg")}[plot_format]
    report_runs(list(runs) or [None], fmt=fmt, output=Path(output) if output else None, plots=not no_plots,
                results=results, baseline=baseline, cell_plots="none" if no_cell_plots else cell_plots,
                plot_formats=formats, max_accuracy_drop=max_accuracy_drop)


@main.command()
@click.argument("run_a", metavar="RUN_A")
@click.argument("run_b", metavar="RUN_B")
@click.option("--factor", type=float, default=1.05, show_default=True,
              help="A cell is slower (or faster) only when the 95 % interval of B/A, from the repetitions, lies "
                   "wholly beyond this factor.")
@click.option("--format", "fmt", type=click.Choice(["table", "md", "json"]), default="table", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None, help="Write to this file instead.")
@results_option
@friendly
def compare(run_a: str, run_b: str, factor: float, fmt: str, output: str | None, results: str | None) -> None:
    """Compare run B against run A, cell by cell; exit 1 when a cell got significantly slower (for CI)."""
    from benchbot.api import compare_runs

    result = compare_runs(run_a, run_b, factor=factor, fmt=fmt, output=Path(output) if output else None,
                          results=results)
    if result.slower:
        click.echo(f"benchbot: {len(result.slower)} cell(s) significantly slower in {result.run_b} than in "
                   f"{result.run_a} (95 % interval of B/A wholly beyond ×{factor:g})", err=True)
        sys.exit(1)


@main.command("runs")
@click.argument("run", required=False)
@click.option("--verify", is_flag=True,
              help="Check that every stored repetition's samples are what was written; exit 1 if any is damaged.")
@results_option
@friendly
def list_runs_command(run: str | None, verify: bool, results: str | None) -> None:
    """List stored runs, oldest first (or RUN); --verify checks their stored samples."""
    from benchbot.store import find_run, list_runs, results_root
    from benchbot.summary import load_run

    folders = [find_run(run, results_root(results))] if run else list_runs(results_root(results))
    if not folders:
        click.echo(f"no runs in {results_root(results)}")
    damaged = 0
    for folder in folders:
        loaded = load_run(folder)
        statuses = [loaded.status(c.key) for c in loaded.cells]
        state = "complete" if loaded.complete else "incomplete"
        devices = ",".join(sorted(loaded.manifest.get("devices", {})))
        click.echo(f"{loaded.run_id}  {state:10}  {statuses.count('ok')}/{len(statuses)} cells ok  devices: {devices}")
        if verify:
            bad = loaded.damaged()
            damaged += len(bad)
            for attempt in bad:
                click.echo(f"  damaged: {attempt.cell.key} repetition {attempt.repetition}: {attempt.damage}")
            if not bad:
                click.echo("  verified: every repetition's samples are whole")
    if damaged:
        click.echo(f"benchbot: {damaged} damaged repetition(s); `benchbot run --resume RUN` measures them again",
                   err=True)
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
    from benchbot.profiles import available_profiles, load_profile, location

    if inventory:
        from benchbot.inventory import inventory_devices

        for profile in inventory_devices(inventory, _csv(names), base_profile):
            key = f"  key {profile.ssh.key}" if profile.ssh.key else ""
            click.echo(f"{profile.name:14} {location(profile):40} python {profile.python or 'python3'}  "
                       f"workdir {profile.workdir}{key}  (from {inventory}, profile {base_profile or 'defaults'})")
        return
    for name, path in sorted(available_profiles().items()):
        try:
            profile = load_profile(str(path))
        except BenchbotError as exc:
            click.echo(f"{name:14} INVALID: {exc}")
            continue
        click.echo(f"{name:14} {location(profile):40} {profile.description}  ({path})")


@devices.command("init")
@click.argument("name")
@click.option("--from", "source", required=True, help="The profile to copy: a device name (pi4, local, ...) or a .toml file.")
@click.option("--force", is_flag=True, help="Overwrite ./device_profiles/NAME.toml if it exists.")
@friendly
def devices_init(name: str, source: str, force: bool) -> None:
    """Write an editable copy of a profile into ./device_profiles/NAME.toml (searched before the bundled ones)."""
    from benchbot.profiles import init_profile

    path = init_profile(name, source, force)
    click.echo(f"wrote {path}: edit it, then `benchbot devices check {name}`")


@devices.command("check")
@click.argument("names", nargs=-1, required=True)
@friendly
def devices_check(names: tuple[str, ...]) -> None:
    """Connect to each device and show what the agent finds there (Python, numpy, runtime, sensors, disk)."""
    from benchbot.devices import check_devices

    failed = [r.name for r in check_devices(list(names), click.echo) if not r.ok]
    if failed:
        raise BenchbotError(f"{len(failed)} of {len(names)} device(s) failed the check: {', '.join(failed)}")


@devices.command("trust")
@click.argument("name")
@click.option("--replace", is_flag=True, help="Replace a recorded key that changed (after checking the new one).")
@friendly
def devices_trust(name: str, replace: bool) -> None:
    """Record a device's SSH host key (and its jump hosts') in benchbot's known_hosts."""
    from benchbot.devices import trust_device

    trust_device(name, replace, click.echo)


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
    from benchbot.devices import setup_devices

    failed = setup_devices(list(names), runtime, offline, base_python, click.echo)
    if len(failed) == 1 and len(names) == 1:
        raise BenchbotError(next(iter(failed.values())))
    for why in failed.values():
        click.echo(f"benchbot: {why}", err=True)
    if failed:
        raise BenchbotError(f"setup failed on {len(failed)} of {len(names)} devices: {', '.join(failed)}")


@main.group()
def models() -> None:
    """The bundled model zoo and conversion of your own models into variants."""


@models.command("list")
@friendly
def models_list() -> None:
    """Zoo models and their variants."""
    from benchbot.models.catalog import ZOO_DIR, load_family, zoo_families

    for name in zoo_families():
        family = load_family(ZOO_DIR / name)
        variants = ", ".join(f"{v.variant} ({v.size / 1024:.0f} KiB)" for v in family.variants)
        click.echo(f"{name:14} {variants}")
        if family.info.get("description"):
            click.echo(f"{'':14} {family.info['description']}")


@models.command("inspect")
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per model instead of text.")
@results_option
@friendly
def models_inspect(target: str, as_json: bool, results: str | None) -> None:
    """Inputs, outputs, signatures, ops with versions, and which runtimes can load TARGET (file, folder, zoo name)."""
    import json as json_module

    from benchbot.models.inspect import describe, read_model, resolve, runtimes_to_check, verdict
    from benchbot.profiles import available_profiles, parse_profile
    from benchbot.store import results_root

    profiles = []
    for path in available_profiles().values():
        try:
            profiles.append(parse_profile(path))
        except BenchbotError:
            continue  # a broken profile is `devices list`'s business, not inspect's
    checks = runtimes_to_check(profiles, results_root(results))
    for path in resolve(target):
        info = read_model(path)
        if as_json:
            info["runtimes"] = [{"who": who, "runtime": r, "version": v, "can_run": verdict(info, r, v)[0],
                                 "why": verdict(info, r, v)[1]} for who, r, v in checks]
            click.echo(json_module.dumps(info))
        else:
            click.echo("\n".join(describe(info, checks)))


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
    from benchbot.api import convert_model

    with _converter_chatter_hidden():
        family = convert_model(src, out, _csv(variants) or [], calibration, int8_io, name, eval_set)
    for variant, entry in family["variants"].items():
        click.echo(f"{variant:8} {entry['size'] / 1024:9.1f} KiB  {Path(out) / entry['file']}")
    for variant, reason in family["failed"].items():
        click.echo(f"{variant:8} FAILED: {reason}")
    click.echo(f"family {family['name']} (baseline {family['baseline']}, eval set: {family['eval'] or 'none'}) "
               f"in {out}; benchmark it with: benchbot run --models {out}")
    if family["failed"]:
        total = len(family["failed"]) + len(family["variants"])
        raise PartialRun(f"{len(family['failed'])} of {total} variants failed to convert: "
                         f"{', '.join(family['failed'])}")


@main.group()
def qemu() -> None:
    """The emulated arm64 device: check the host, build the image once, start and stop VMs."""


@qemu.command("doctor")
def qemu_doctor() -> None:
    """Which host tools are present or missing, and the command that installs them."""
    from benchbot.qemu.doctor import doctor, install_hint

    checks = doctor()
    for check in checks:
        click.echo(f"{'ok' if check.ok else 'MISSING':8} {check.name:24} {check.detail}")
    missing = [c for c in checks if not c.ok]
    if missing:
        click.echo(f"install with: {install_hint(missing)}")
        sys.exit(1)


@qemu.command("build")
@click.option("--force", is_flag=True, help="Rebuild even if an image with the same inputs is cached.")
@friendly
def qemu_build(force: bool) -> None:
    """Build the Debian arm64 image once (about 10 minutes under emulation) and cache it."""
    import time

    from benchbot.qemu.image import HostSetupError, ImageBuildError, ImageSettings, build_image

    begin = time.monotonic()
    try:
        image = build_image(ImageSettings(), log=lambda text: click.echo(text, err=True), force=force)
    except (HostSetupError, ImageBuildError) as exc:
        raise BenchbotError(str(exc)) from None
    click.echo(f"image ready in {time.monotonic() - begin:.0f} s: {image.folder} (python {image.guest_python})")


def _vm(name: str):  # type: ignore[no-untyped-def]
    from benchbot.api import load_devices
    from benchbot.qemu.vm import VM, EmulateSettings
    from benchbot.transport.qemu import cached_image

    profile = load_devices([name], rehearse=True)[0]
    image = cached_image()
    if image is None:
        raise BenchbotError("the QEMU image is not built yet; run: benchbot qemu build")
    e = profile.emulate
    settings = EmulateSettings(cpu=e.cpu, cores=e.cores, memory_mib=e.memory_mib) if e else EmulateSettings()
    return VM(profile.name, image, settings, log=lambda text: click.echo(text, err=True))


@qemu.command("start")
@click.argument("name", default="qemu-arm64")
@friendly
def qemu_start(name: str) -> None:
    """Boot the emulated device NAME (a qemu profile, or any profile's QEMU twin) and wait for SSH."""
    from benchbot.qemu.vm import VMError

    vm = _vm(name)
    try:
        port = vm.start()
    except VMError as exc:
        raise BenchbotError(str(exc)) from None
    click.echo(f"{name}: running, ssh on 127.0.0.1:{port} (boot {vm.boot_seconds} s)")


@qemu.command("stop")
@click.argument("name", default="qemu-arm64")
@friendly
def qemu_stop(name: str) -> None:
    """Stop the emulated device NAME."""
    click.echo(f"{name}: {'stopped' if _vm(name).stop() else 'was not running'}")


@qemu.command("status")
@click.argument("name", default="qemu-arm64")
@friendly
def qemu_status(name: str) -> None:
    """Whether the emulated device NAME runs, its pid, port and uptime."""
    status = _vm(name).status()
    if status["running"]:
        click.echo(f"{name}: running, pid {status['pid']}, ssh on 127.0.0.1:{status['port']}, "
                   f"up {status['uptime']} s")
    else:
        click.echo(f"{name}: not running")


if __name__ == "__main__":
    main()
