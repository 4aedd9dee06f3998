"""The house rules of issue 14, checked: errors are BenchbotErrors, the CLI imports only the API and the console."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from benchbot import errors

PACKAGE = Path(__file__).resolve().parents[1] / "benchbot"


@pytest.mark.parametrize("name", ["TransportError", "HostKeyChanged", "VMError", "HostSetupError", "ImageBuildError",
                                  "ConversionError", "MissingTensorFlow"])
def test_stage_errors_are_benchbot_errors(name: str) -> None:
    """Callers catch one type (and the CLI prints one line) whatever stage failed."""
    assert issubclass(getattr(errors, name), errors.BenchbotError)


def test_stage_modules_raise_the_shared_classes() -> None:
    from benchbot.models import convert
    from benchbot.qemu import image, vm
    from benchbot.transport import base, hostkeys

    assert base.TransportError is errors.TransportError
    assert hostkeys.HostKeyChangedError is errors.HostKeyChanged
    assert vm.VMError is errors.VMError
    assert (image.HostSetupError, image.ImageBuildError) == (errors.HostSetupError, errors.ImageBuildError)
    assert convert.ConversionError is errors.ConversionError


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:  # `from benchbot import api` imports the module benchbot.api
                sub = f"{node.module}.{alias.name}"
                relative = Path(*sub.split(".")[1:])
                is_module = (PACKAGE / relative).with_suffix(".py").is_file() or (PACKAGE / relative).is_dir()
                found.add(sub if sub.startswith("benchbot.") and is_module else node.module)
    return found


def test_cli_imports_only_the_api_the_console_and_click() -> None:
    """The CLI parses options and renders through the console; everything else goes through benchbot.api."""
    allowed = {"click", "benchbot.api", "benchbot.console", "__future__"}
    foreign = {m for m in _imports(PACKAGE / "cli.py")
               if m not in allowed and not m.startswith("benchbot.api.") and m.split(".")[0] not in sys.stdlib_module_names}
    assert not foreign, f"cli.py imports {sorted(foreign)}"


def test_no_two_modules_import_each_other() -> None:
    edges = {}
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(("benchbot", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
        edges[module] = {m for m in _imports(path) if m == "benchbot" or m.startswith("benchbot.")}
    assert edges["benchbot.store"] and edges["benchbot"] == {"benchbot.summary", "benchbot.store", "benchbot.version"}
    pairs = sorted({tuple(sorted((a, b))) for a, targets in edges.items() for b in targets if a in edges.get(b, ())})
    assert not pairs, pairs


def test_the_api_exports_every_operation_it_lists() -> None:
    from benchbot import api

    assert set(api.__all__) == {*api._WHERE, "BenchbotError", "PartialRun", "RunFailed", "StorageError", "host_file_error", "Settings", "__version__"}
    for name in api.__all__:
        assert getattr(api, name) is not None, name


def test_console_renders_into_the_given_environment() -> None:
    """No terminal tricks: streams and width are values; the library call returns data only."""
    import io

    from benchbot import api
    from benchbot.console import Console, Environment

    out, err = io.StringIO(), io.StringIO()
    console = Console(Environment(stdout=out, stderr=err, width=100))
    assert console.env.stdout_isatty is False and console.rich().width == 100
    console.devices(api.list_devices())
    assert "local" in out.getvalue() and not err.getvalue()
    console.error(api.BenchbotError("no such run"))
    assert err.getvalue() == "benchbot: no such run\n"
    wide = Console(Environment(stdout=io.StringIO(), stderr=io.StringIO(), stdout_isatty=False))
    assert wide.rich().width >= 200  # exports through a pipe are not wrapped at 80 columns


def test_run_outcome_errors_carry_the_exit_codes() -> None:
    from benchbot.api import outcome_error
    from benchbot.plan import Cell
    from benchbot.scheduler import CellOutcome, RunOutcome

    cell = Cell.__new__(Cell)
    ok, bad = CellOutcome(cell, "ok"), CellOutcome(cell, "failed", "crashed")
    assert outcome_error(RunOutcome("r", Path("."), [ok])) is None
    assert outcome_error(RunOutcome("r", Path("."), [ok, bad])).exit_code == 3  # type: ignore[union-attr]
    assert outcome_error(RunOutcome("r", Path("."), [bad])).exit_code == 4  # type: ignore[union-attr]
    interrupted = outcome_error(RunOutcome("r", Path("."), [ok], interrupted=True))
    assert interrupted is not None and "--resume r" in str(interrupted)


def test_run_progress_goes_to_the_environment_stderr() -> None:
    """Plain progress lines (CI logs, pipes) land in the console's stderr, whatever sys.stderr is."""
    import io
    from types import SimpleNamespace

    from benchbot.console import Console, Environment, PlainProgress
    from benchbot.progress import QuietProgress

    err = io.StringIO()
    console = Console(Environment(stdout=io.StringIO(), stderr=err, stderr_isatty=False))
    assert isinstance(console.progress(quiet=True), QuietProgress)
    progress = console.progress()
    assert isinstance(progress, PlainProgress)
    progress.add_device("pi", 2)
    progress.update("pi", state="running", cell="m/fp32 t1")
    outcome = SimpleNamespace(status="failed", reason="crashed", label=lambda: "m/fp32 t1 rep 1/2")
    progress.cell_done("pi", outcome)
    assert err.getvalue().splitlines() == ["[pi] 1/2 m/fp32 t1: running", "[pi] 1/2 m/fp32 t1 rep 1/2: failed: crashed"]
