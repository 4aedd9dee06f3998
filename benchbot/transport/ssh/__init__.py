"""Reach a device over SSH (paramiko): content-addressed uploads and streamed, killable commands.

One responsibility per module:
- config: where the device is (ssh config via paramiko.SSHConfig, ProxyJump chains); pure.
- connect: connecting with strict host keys, jump hosts and retries; the shared connection state.
- trust: recording host keys (`benchbot devices trust`).
- files: the content-addressed file store on the device.
- commands: remote execution with streamed output and process-group kill.
What the device offers (disk, memory) is the agent's `probe` command, not a shell script here.

Host keys are checked strictly against ~/.ssh/known_hosts plus benchbot's own file; an unknown key
is only recorded with `host_key_policy="accept-new"`, a changed key is never accepted.
"""

from __future__ import annotations

from benchbot.transport.base import Transport
from benchbot.transport.ssh.commands import STDERR_TAIL_BYTES
from benchbot.transport.ssh.config import Endpoint, HostKeyPolicy, SSHSettings, parse_hop, split_jumps, ssh_settings
from benchbot.transport.ssh.files import RemoteFiles
from benchbot.transport.ssh.trust import Trust

__all__ = ["STDERR_TAIL_BYTES", "Endpoint", "HostKeyPolicy", "SSHSettings", "SSHTransport", "parse_hop",
           "split_jumps", "ssh_settings"]


class SSHTransport(Trust, RemoteFiles, Transport):
    """A device reached over SSH; one instance (one connection) per device."""

    def __init__(self, settings: SSHSettings) -> None:
        Transport.__init__(self)
        RemoteFiles.__init__(self, settings)
