"""An emulated arm64 Debian board under QEMU, reachable over SSH on 127.0.0.1 like a real one.

The host checks are `benchbot.qemu.doctor.doctor()` (not re-exported: the name is the module's).
"""

from benchbot.qemu.doctor import Check, install_hint
from benchbot.qemu.image import HostSetupError, Image, ImageBuildError, ImageSettings, build_image
from benchbot.qemu.vm import VM, EmulateSettings, VMError, known_hosts_line, qemu_command

__all__ = [
    "VM",
    "Check",
    "EmulateSettings",
    "HostSetupError",
    "Image",
    "ImageBuildError",
    "ImageSettings",
    "build_image",
    "install_hint",
    "known_hosts_line",
    "qemu_command",
    "VMError",
]
