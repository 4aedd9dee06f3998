"""Connecting to an SSH device: strict host keys, jump hosts, ProxyCommand, and retries with backoff.

Only network errors are retried; authentication and host-key problems fail at once with the fix in
the message. `Connection` holds the state every other part of the SSH transport uses.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paramiko

from benchbot.transport import hostkeys
from benchbot.transport.base import TransportError
from benchbot.transport.ssh.config import Endpoint, SSHSettings, resolve_hop, resolve_target
from benchbot.transport.ssh.exit_signals import track_exit_signals

# paramiko's transport threads log a failed handshake (a device that drops while we reconnect) with a full
# traceback; without a handler of ours Python prints it on stderr. benchbot reports every such failure itself,
# in one sentence, from the exception paramiko raises to us.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


class _UnknownHostKey(paramiko.SSHException):
    def __init__(self, name: str, key: paramiko.PKey) -> None:
        super().__init__(f"unknown host key for {name}")
        self.name = name
        self.key = key


class _HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Refuses unknown keys (strict) or records them in benchbot's file (accept-new)."""

    def __init__(self, accept_new: bool, known_hosts: Path) -> None:
        self.accept_new = accept_new
        self.known_hosts = known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if not self.accept_new:
            raise _UnknownHostKey(hostname, key)
        try:
            hostkeys.add_host_key(self.known_hosts, hostname, key)
        except OSError as e:  # not a network problem: must not be retried as one
            raise TransportError(f"cannot record the host key of {hostname} in {self.known_hosts}: {e}") from e
        client.get_host_keys().add(hostname, key.get_name(), key)


class Connection:
    """The connection to one device (and its jump hosts); the state the files, commands and trust parts share."""

    retry_backoff_s = 0.5
    """First retry delay; doubles each attempt."""
    bytes_sent: int  # Transport's counter (SSHTransport is also a Transport)

    def __init__(self, settings: SSHSettings) -> None:
        self.settings = settings
        self._client: paramiko.SSHClient | None = None
        self._jumps: list[paramiko.SSHClient] = []
        self._sftp: paramiko.SFTPClient | None = None
        self._endpoint: Endpoint | None = None
        self._workdir: str | None = None
        self._home: str | None = None
        self._interrupt = threading.Event()
        self._exit_signals: dict[int, str] = {}
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ connection

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def known_hosts(self) -> Path:
        return self.settings.known_hosts or hostkeys.default_known_hosts()

    def open(self) -> None:
        """Connect (through jump hosts / ProxyCommand if configured); TransportError on any failure."""
        with self._lock:
            if self._client is not None and self._active(self._client):
                return
            self._drop()
            target = self._resolve_target()
            try:
                self._client = self._open_endpoint(target, None, "device")
            except BaseException:
                self._drop()
                raise
            self._endpoint = target
            self._exit_signals.clear()
            track_exit_signals(self._client.get_transport(), self._exit_signals)

    def close(self) -> None:
        """Release the connection and any jump-host connections; safe to call twice."""
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._sftp is not None:
            try:
                self._sftp.close()
            except Exception:  # noqa: BLE001 - closing a dead channel may fail; nothing to do
                pass
        self._sftp = None
        clients = ([self._client] if self._client else []) + list(reversed(self._jumps))
        self._client = None
        self._jumps = []
        for client in clients:
            try:
                client.close()
            except Exception:  # noqa: BLE001
                pass

    @staticmethod
    def _active(client: paramiko.SSHClient) -> bool:
        t = client.get_transport()
        return t is not None and t.is_active()

    def _ensure_open(self) -> paramiko.Transport:
        if self._client is None or not self._active(self._client):
            self.open()
        assert self._client is not None
        transport = self._client.get_transport()
        assert transport is not None
        return transport

    def _resolve_target(self) -> Endpoint:
        return resolve_target(self.settings)

    def _jump_chain(self, ep: Endpoint, trust: list[str] | None = None,
                    replace: bool = False) -> paramiko.SSHClient | None:
        """Connect the ProxyJump hosts of `ep` in order; the last one carries the connection to `ep`."""
        via: paramiko.SSHClient | None = None
        for i, spec in enumerate(ep.proxy_jump):
            hop = resolve_hop(self.settings, spec, ep.depth + 1)
            if i > 0:  # like ssh -J a,b: b is reached through a, whatever b's own config says
                hop.proxy_jump, hop.proxy_command = [], None
            via = self._open_endpoint(hop, via, "jump host", trust=trust, replace=replace)
            self._jumps.append(via)
        return via

    def _open_endpoint(self, ep: Endpoint, via: paramiko.SSHClient | None, role: str,
                       trust: list[str] | None = None, replace: bool = False) -> paramiko.SSHClient:
        if via is None and ep.proxy_jump:
            via = self._jump_chain(ep, trust, replace)
        sock_factory = self._sock_factory(ep, via)
        if trust is not None:
            trust.append(self._trust_endpoint(ep, sock_factory, role, replace))
            if role == "device":
                return None  # type: ignore[return-value]  # trust mode does not log in to the device
        return self._connect(ep, sock_factory, role, password=self._password() if role == "device" else None)

    def _sock_factory(self, ep: Endpoint, via: paramiko.SSHClient | None) -> Callable[[], Any]:
        timeout = self.settings.connect_timeout_s
        if via is not None:
            transport = via.get_transport()

            def channel() -> object:
                assert transport is not None
                return transport.open_channel(
                    "direct-tcpip", (ep.hostname, ep.port), ("127.0.0.1", 0), timeout=timeout
                )

            return channel
        if ep.proxy_command:
            command = ep.proxy_command
            return lambda: paramiko.ProxyCommand(command)
        return lambda: None

    def _password(self) -> str | None:
        name = self.settings.password_env
        return os.environ.get(name) if name else None

    def _connect(self, ep: Endpoint, sock_factory: Callable[[], Any], role: str,
                 password: str | None) -> paramiko.SSHClient:
        s = self.settings
        attempts = 1 + max(0, s.connect_retries)
        last: Exception | None = None
        for attempt in range(attempts):
            if attempt:
                time.sleep(self.retry_backoff_s * 2 ** (attempt - 1))
            client = paramiko.SSHClient()
            for path in [*hostkeys.SYSTEM_KNOWN_HOSTS, str(self.known_hosts)]:
                # One merged table (not load_system_host_keys) so a key type recorded in either
                # file counts, and paramiko never writes to ~/.ssh/known_hosts.
                try:
                    client.get_host_keys().load(os.path.expanduser(path))
                except OSError:
                    pass
            client.set_missing_host_key_policy(
                _HostKeyPolicy(s.host_key_policy == "accept-new", self.known_hosts)
            )
            try:
                sock = sock_factory()
                client.connect(
                    hostname=ep.hostname,
                    port=ep.port,
                    username=ep.user,
                    password=password,
                    key_filename=ep.key_filenames or None,  # type: ignore[arg-type]  # paramiko takes a list too
                    allow_agent=ep.allow_agent,
                    look_for_keys=ep.look_for_keys,
                    timeout=s.connect_timeout_s,
                    banner_timeout=s.connect_timeout_s,
                    auth_timeout=s.connect_timeout_s,
                    channel_timeout=s.connect_timeout_s,
                    sock=sock,
                )
            except _UnknownHostKey as e:
                client.close()
                what = "jump host " if role == "jump host" else ""
                raise TransportError(
                    f"{self.name}: host key for {what}{e.name} is not known ({hostkeys.fingerprint(e.key)}). "
                    f"Check it and run: benchbot devices trust {self.name}"
                ) from None
            except paramiko.BadHostKeyException as e:
                client.close()
                raise TransportError(self._changed_key_message(ep, role, e)) from None
            except paramiko.AuthenticationException as e:
                client.close()
                raise TransportError(
                    f"{self.name}: authentication failed for {ep.where} (tried {self._tried(ep, password)})"
                    + ("" if role == "device" else f" on the jump host for {self.name}")
                ) from e
            except TransportError:
                client.close()
                raise
            except (OSError, EOFError, paramiko.SSHException) as e:
                client.close()
                last = e
                continue
            transport = client.get_transport()
            if transport is not None and s.keepalive_s > 0:
                transport.set_keepalive(max(1, int(s.keepalive_s)))
            return client
        reason = describe(last)
        what = "the jump host " if role == "jump host" else ""
        raise TransportError(
            f"{self.name}: cannot connect to {what}{ep.where} after {attempts} attempt(s): {reason}"
        ) from last

    def _changed_key_message(self, ep: Endpoint, role: str, e: paramiko.BadHostKeyException) -> str:
        what = "jump host " if role == "jump host" else ""
        in_benchbot = hostkeys.is_known(ep.hostname, ep.port, e.expected_key, self.known_hosts,
                                        include_system=False)
        fix = (f"run: benchbot devices trust {self.name} --replace" if in_benchbot
               else f"remove the old key with: ssh-keygen -R '{ep.key_name}'")
        return (
            f"{self.name}: WARNING: THE HOST KEY FOR {what}{ep.key_name} HAS CHANGED "
            f"(now {hostkeys.fingerprint(e.key)}, recorded {hostkeys.fingerprint(e.expected_key)}). "
            f"Someone may be intercepting the connection (man-in-the-middle), or the device was "
            f"reinstalled; benchbot will not connect. Only if you are sure the change is expected, "
            f"check the new key and {fix}"
        )

    def _tried(self, ep: Endpoint, password: str | None) -> str:
        tried = [f"key {k}" for k in ep.key_filenames]
        if ep.allow_agent:
            tried.append("ssh-agent keys")
        if ep.look_for_keys:
            tried.append("default keys in ~/.ssh")
        name = self.settings.password_env
        if name:
            tried.append(f"password from ${name}" if password is not None else f"no password (${name} is not set)")
        return ", ".join(tried) or "nothing"

    def _trust_endpoint(self, ep: Endpoint, sock_factory: Callable[[], Any], role: str, replace: bool) -> str:
        raise NotImplementedError  # benchbot.transport.ssh.trust.Trust


def describe(e: BaseException | None) -> str:
    """An exception as `Type: text` for one-line messages."""
    if e is None:
        return "unknown error"
    text = str(e).strip()
    return f"{type(e).__name__}: {text}" if text else type(e).__name__

