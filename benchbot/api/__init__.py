"""benchbot as a library: every operation of the `benchbot` command, returning data.

    from benchbot import api
    outcome = api.execute(api.RunRequest(devices=["local"], min_runs=20))
    report = api.open_report([outcome.run_id])        # report.data.summary is a DataFrame
    api.compare_runs("run-a", "run-b").slower          # the cells a CI gate fails on

Operations raise BenchbotError subclasses (benchbot.errors) and never print; terminal rendering
is benchbot.console's. Submodules: run, report, devices, models, runs, qemu. Names are imported
on first use, so `benchbot --help` does not load pandas or paramiko.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from benchbot.errors import BenchbotError, PartialRun, RunFailed, StorageError, host_file_error
from benchbot.version import __version__

if TYPE_CHECKING:
    from benchbot.api.devices import (
        CheckResult,
        DeviceEntry,
        TrustResult,
        check_devices,
        check_error,
        init_device,
        inventory_devices,
        list_devices,
        setup_devices,
        setup_error,
        trust_device,
    )
    from benchbot.api.models import ModelInspection, convert_model, inspect_models, list_models
    from benchbot.api.qemu import Doctor, build_image, doctor, vm
    from benchbot.api.report import Report, compare_runs, export_report, open_report, report_runs
    from benchbot.api.run import (
        RunOutcome,
        RunRequest,
        execute,
        interrupted_error,
        load_devices,
        outcome_error,
        qemu_twin,
        request_devices,
        run_status,
        sigterm_as_ctrl_c,
    )
    from benchbot.api.runs import RunEntry, list_runs
    from benchbot.plan import Settings

_HOMES = {
    "run": ("RunOutcome", "RunRequest", "execute", "interrupted_error", "load_devices", "outcome_error", "qemu_twin",
            "request_devices", "run_status", "sigterm_as_ctrl_c"),
    "report": ("Report", "compare_runs", "export_report", "open_report", "report_runs"),
    "devices": ("CheckResult", "DeviceEntry", "TrustResult", "check_devices", "check_error", "init_device",
                "inventory_devices", "list_devices", "setup_devices", "setup_error", "trust_device"),
    "models": ("ModelInspection", "convert_model", "inspect_models", "list_models"),
    "runs": ("RunEntry", "list_runs"),
    "qemu": ("Doctor", "build_image", "doctor", "vm"),
}
_WHERE = {name: module for module, names in _HOMES.items() for name in names}

__all__ = [
    "BenchbotError", "StorageError", "host_file_error", "CheckResult", "DeviceEntry", "Doctor", "ModelInspection", "PartialRun", "Report", "RunEntry",
    "RunFailed", "RunOutcome", "RunRequest", "Settings", "TrustResult", "__version__", "build_image", "check_devices",
    "check_error", "compare_runs", "init_device", "inventory_devices", "convert_model", "doctor", "execute", "export_report", "inspect_models",
    "interrupted_error", "list_devices", "list_models", "list_runs", "load_devices", "open_report", "outcome_error",
    "qemu_twin", "report_runs", "request_devices", "run_status", "setup_devices", "setup_error", "sigterm_as_ctrl_c", "trust_device", "vm",
]


def __getattr__(name: str) -> Any:
    """Load the submodule that holds `name` on first use."""
    if name == "Settings":
        from benchbot.plan import Settings

        return Settings
    if name in _WHERE:
        return getattr(importlib.import_module(f"benchbot.api.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'benchbot.api' has no attribute {name!r}")
