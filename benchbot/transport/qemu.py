"""An emulated arm64 board: boots the cached QEMU image when needed and reaches it over SSH.

The very same SSH path as a Raspberry Pi is used (push, agent, kill), so a plan
rehearsed here runs unchanged on hardware. The image's host key is pinned in a
known_hosts file of the VM's own, so nothing is trusted on first use.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from benchbot.qemu.image import Image, ImageSettings, default_cache_root
from benchbot.qemu.vm import VM, EmulateSettings, VMError, known_hosts_line
from benchbot.transport.base import OverSSH, TransportError
from benchbot.transport.ssh import SSHSettings, SSHTransport

# Two devices of one rehearsal may share an image but never a VM; boots are serialised
# because two emulated kernels booting at once on a small host take longer than one after another.
_BOOT_LOCK = threading.Lock()


def cached_image(settings: ImageSettings | None = None, cache_root: Path | None = None) -> Image | None:
    """The newest built image in the cache, without building or downloading anything."""
    root = cache_root or default_cache_root()
    settings = settings or ImageSettings()
    images = []
    for manifest in root.glob("*/image.json"):
        try:
            image = Image.load(manifest.parent)
        except (OSError, ValueError, TypeError, KeyError):
            continue
        if image.manifest.get("suite", settings.suite) == settings.suite:
            images.append((manifest.stat().st_mtime, image))
    return max(images, key=lambda item: item[0])[1] if images else None


class QemuTransport(OverSSH):
    """Starts the profile's VM (unless it already runs), then behaves as SSHTransport to it."""

    emulated = True
    not_connected = "the emulated device is not connected"

    def __init__(self, profile: object, log: Callable[[str], None] | None = None) -> None:
        super().__init__()
        self.profile = profile
        self.log = log or (lambda _text: None)
        self.vm: VM | None = None
        self.started_here = False
        self.ssh: SSHTransport | None = None

    def open(self) -> None:
        name = self.profile.name  # type: ignore[attr-defined]
        image = cached_image()
        if image is None:
            raise TransportError(f"{name}: the QEMU image is not built yet; run: benchbot qemu build")
        emulate = self.profile.emulate  # type: ignore[attr-defined]
        settings = EmulateSettings(cpu=emulate.cpu, cores=emulate.cores, memory_mib=emulate.memory_mib) \
            if emulate else EmulateSettings()
        self.vm = VM(name, image, settings, log=self.log)
        try:
            with _BOOT_LOCK:
                running = self.vm.status()["running"]
                port = self.vm.start()
            self.started_here = not running
        except (VMError, OSError) as exc:
            raise TransportError(f"{name}: the emulated device did not boot: {exc}") from None
        known_hosts = self.vm.state_dir / "known_hosts"
        known_hosts.write_text(known_hosts_line(image, port) + "\n")
        self.ssh = SSHTransport(SSHSettings(
            host="127.0.0.1", port=port, user=image.user, key=str(image.user_key), use_ssh_config=False,
            host_key_policy="strict", known_hosts=known_hosts,
            workdir=self.profile.workdir,  # type: ignore[attr-defined]
            connect_timeout_s=30, keepalive_s=30, connect_retries=3, device_name=name,
        ))
        self.ssh.open()

    def close(self) -> None:
        """Disconnect, and stop the VM if this transport booted it."""
        if self.ssh is not None:
            self.ssh.close()
            self.ssh = None
        if self.vm is not None and self.started_here:
            self.vm.stop()
            self.started_here = False
