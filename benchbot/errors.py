"""The one exception type the CLI turns into a single line and a non-zero exit."""

from __future__ import annotations


class BenchbotError(Exception):
    """A problem the user can fix; its message is one sentence that says what and how."""

    exit_code = 2


class PartialRun(BenchbotError):
    """Some cells failed; what was measured is stored. Exit status 3 tells scripts the run is partial."""

    exit_code = 3


class RunFailed(BenchbotError):
    """Every cell failed: nothing was measured. Exit status 4 tells it apart from a partial run (3)."""

    exit_code = 4
