"""Every error a user can fix is a BenchbotError: the CLI turns it into one line and a non-zero exit.

The subclasses say which stage failed, so callers catch what they handle (a device that cannot be
reached, a VM that does not boot) without matching on message text or wrapping one error in another.
"""

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


class StorageError(BenchbotError):
    """The results folder cannot be written (disk full, quota, read-only, gone); what was stored is kept."""


def host_file_error(exc: OSError, action: str = "write", where: object = None) -> StorageError:
    """One sentence for a file of this machine that cannot be used: the file, the system's words, what to do."""
    import errno

    path = exc.filename or where or "a file"
    hint = ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = " (the disk holding it is full)"
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        hint = " (choose a folder you can write: --results or BENCHBOT_RESULTS)"
    return StorageError(f"cannot {action} {path}: {exc.strerror or exc}{hint}")


class TransportError(BenchbotError):
    """A device cannot be reached or a file cannot be placed on it; the message is for the user."""


class DeviceFull(TransportError):
    """A file does not fit on the device; the device itself works, so cells whose files fit still run."""


class HostKeyChanged(TransportError):
    """A device presents another host key than the recorded one; replacing it needs an explicit choice.

    `replaceable`: the old key is in benchbot's own known_hosts, so `devices trust --replace` can change it
    (a key in ~/.ssh/known_hosts is the user's to edit).
    """

    def __init__(self, message: str, replaceable: bool = False) -> None:
        super().__init__(message)
        self.replaceable = replaceable


class VMError(BenchbotError):
    """A VM could not be started or stopped; the message ends with the console log's last lines."""


class ImageError(BenchbotError):
    """The emulated device's disk image cannot be built or used."""


class HostSetupError(ImageError):
    """The host lacks a tool or setting needed to build or run the image; the message says how to fix it."""


class ImageBuildError(ImageError):
    """A build step failed; the message ends with the failing command's output."""


class ConversionError(BenchbotError):
    """A model cannot be converted (bad source, bad calibration data, or no variant converted)."""


class MissingTensorFlow(ConversionError):
    """Model conversion needs TensorFlow, which is an optional extra."""
