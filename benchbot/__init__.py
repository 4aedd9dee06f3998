"""benchbot: benchmark TFLite (LiteRT) model variants across edge devices.

The library is the product; the `benchbot` command is a thin layer over it:

    import benchbot
    run = benchbot.load_run()          # the latest run under ./results
    run.summary                        # one row per device x model x variant x threads
    run.samples                        # every single latency (ms)
    run.telemetry                      # CPU, memory, temperature and frequency over time
"""

from __future__ import annotations

from typing import Any

from benchbot.version import __version__

__all__ = ["Run", "__version__", "list_runs", "load_run"]


def __getattr__(name: str) -> Any:
    """Import the store (and pandas) only when asked: model conversion and the zoo build do without."""
    if name in ("Run", "load_run"):
        from benchbot import summary

        return getattr(summary, name)
    if name == "list_runs":
        from benchbot import store

        return store.list_runs
    raise AttributeError(f"module 'benchbot' has no attribute {name!r}")
