"""The emulated arm64 device: host checks, the cached image, and VMs by profile name."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchbot.errors import BenchbotError

__all__ = ["Doctor", "build_image", "doctor", "vm"]

Log = Callable[[str], None]


@dataclass
class Doctor:
    """Which host tools are present (benchbot.qemu.doctor.Check) and the command that installs the rest."""

    checks: list[Any]
    install_hint: str

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def doctor() -> Doctor:
    from benchbot.qemu.doctor import doctor as run_doctor
    from benchbot.qemu.doctor import install_hint

    checks = run_doctor()
    missing = [c for c in checks if not c.ok]
    return Doctor(checks, install_hint(missing) if missing else "")


def build_image(force: bool = False, log: Log | None = None) -> tuple[Any, float]:
    """Build (or reuse) the Debian arm64 image; (Image, seconds taken). Raises HostSetupError/ImageBuildError."""
    from benchbot.qemu.image import ImageSettings
    from benchbot.qemu.image import build_image as build

    begin = time.monotonic()
    image = build(ImageSettings(), log=log or (lambda _text: None), force=force)
    return image, time.monotonic() - begin


def vm(name: str, log: Log | None = None) -> Any:
    """The VM of device NAME (a qemu profile, or any profile's QEMU twin); start(), stop(), status()."""
    from benchbot.api.run import load_devices
    from benchbot.qemu.vm import VM, EmulateSettings
    from benchbot.transport.qemu import cached_image

    profile = load_devices([name], rehearse=True)[0]
    image = cached_image()
    if image is None:
        raise BenchbotError("the QEMU image is not built yet; run: benchbot qemu build")
    e = profile.emulate
    settings = EmulateSettings(cpu=e.cpu, cores=e.cores, memory_mib=e.memory_mib) if e else EmulateSettings()
    return VM(profile.name, image, settings, log=log or (lambda _text: None))
