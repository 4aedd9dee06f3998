"""Ways to reach a device. Each implements `Transport` (base.py); `for_profile` picks one."""

from __future__ import annotations

from benchbot.transport.base import CommandResult, Transport, TransportError

__all__ = ["CommandResult", "Transport", "TransportError", "for_profile"]


def for_profile(profile: object) -> Transport:
    """The transport a device profile asks for."""
    kind = getattr(profile, "transport", "local")
    if kind == "local":
        from benchbot.transport.local import LocalTransport

        return LocalTransport()
    if kind == "ssh":
        from benchbot.transport.ssh import SSHTransport
        from benchbot.transport.ssh.config import ssh_settings

        return SSHTransport(ssh_settings(profile))
    if kind == "qemu":
        from benchbot.transport.qemu import QemuTransport

        return QemuTransport(profile)
    if kind == "labgrid":
        from benchbot.transport.labgrid import LabgridTransport

        return LabgridTransport(profile)
    raise TransportError(f"unknown transport '{kind}'")
