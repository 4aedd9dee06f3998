"""`benchbot devices trust`: record the host keys of a device and of its jump hosts, without logging in to it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import paramiko

from benchbot.transport import hostkeys
from benchbot.transport.base import TransportError
from benchbot.transport.ssh.config import Endpoint
from benchbot.transport.ssh.connect import Connection, describe


class Trust(Connection):
    """The trust workflow: the jump hosts are logged in to (their keys recorded first), the device is not."""

    def trust(self, replace: bool = False) -> list[str]:
        """Record the host keys of the device (and of its jump hosts) in benchbot's known_hosts.

        For `benchbot devices trust NAME`; returns "name FINGERPRINT" lines to show the user. Jump hosts
        are logged in to (so their keys are recorded first), the device itself is not.
        """
        recorded: list[str] = []
        with self._lock:
            live_jumps, self._jumps = self._jumps, []  # an open connection keeps its own jump hosts
            try:
                self._open_endpoint(self._resolve_target(), None, "device", trust=recorded, replace=replace)
            finally:
                for client in reversed(self._jumps):
                    client.close()
                self._jumps = live_jumps
        return recorded

    def _trust_endpoint(self, ep: Endpoint, sock_factory: Callable[[], Any], role: str,
                        replace: bool) -> str:
        try:
            fp = hostkeys.trust(ep.hostname, ep.port, self.known_hosts, self.settings.connect_timeout_s,
                                replace=replace, sock=sock_factory())
        except hostkeys.HostKeyChangedError as e:
            raise hostkeys.HostKeyChangedError(f"{self.name}: {e}", e.replaceable) from None
        except (OSError, EOFError, paramiko.SSHException) as e:
            raise TransportError(f"{self.name}: cannot reach {role} {ep.key_name}: {describe(e)}") from e
        return f"{ep.key_name} {fp}"
