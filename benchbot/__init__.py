"""benchbot: benchmark TFLite (LiteRT) model variants across edge devices.

The library is the product; the `benchbot` command is a thin layer over it:

    import benchbot
    run = benchbot.load_run()          # the latest run under ./results
    run.summary                        # one row per device x model x variant x threads
    run.samples                        # every single latency (ms)
    run.telemetry                      # CPU, memory, temperature and frequency over time
"""

from __future__ import annotations

__version__ = "0.1.0"

from benchbot.store import Run, list_runs, load_run  # noqa: E402

__all__ = ["Run", "__version__", "list_runs", "load_run"]
