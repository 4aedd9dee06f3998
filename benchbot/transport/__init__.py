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

        return SSHTransport(ssh_settings(profile))
    if kind == "qemu":
        from benchbot.transport.qemu import QemuTransport

        return QemuTransport(profile)
    if kind == "labgrid":
        from benchbot.transport.labgrid import LabgridTransport

        return LabgridTransport(profile)
    raise TransportError(f"unknown transport '{kind}'")


def ssh_settings(profile: object) -> object:
    """The SSH settings of a profile (its [ssh] table plus the device's work folder)."""
    from benchbot.transport.ssh import SSHSettings

    ssh = profile.ssh  # type: ignore[attr-defined]
    return SSHSettings(
        host=ssh.host, port=ssh.port, user=ssh.user, key=ssh.key, use_ssh_config=ssh.use_ssh_config,
        password_env=ssh.password_env, host_key_policy=ssh.host_key_policy,
        workdir=profile.workdir,  # type: ignore[attr-defined]
        connect_timeout_s=ssh.connect_timeout_s, keepalive_s=ssh.keepalive_s, connect_retries=ssh.connect_retries,
        device_name=profile.name,  # type: ignore[attr-defined]
    )
