"""Reach a device over SSH (paramiko): content-addressed uploads and streamed, killable commands.

Design notes (why it looks like this):
- Host keys are checked strictly against ~/.ssh/known_hosts plus benchbot's own file; an unknown key
  is only recorded with `host_key_policy="accept-new"`, a changed key is never accepted.
- Every remote command runs as `exec /bin/sh -c '<print $$>; exec <quoted argv>'`. sshd (OpenSSH and
  Dropbear) starts each session with setsid(), so that PID is also the process group of the command
  and all its children; killing the group through a second channel stops everything it spawned.
- stdout is read while the command runs (waiting for the exit status first deadlocks once the SSH
  window fills up).
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import secrets
import select
import shlex
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import paramiko
from paramiko.common import MSG_CHANNEL_REQUEST

from benchbot.transport import hostkeys
from benchbot.transport.base import CommandResult, DeviceFull, Transport, TransportError, human_bytes

# paramiko's transport threads log a failed handshake (a device that drops while we reconnect) with a full
# traceback; without a handler of ours Python prints it on stderr. benchbot reports every such failure itself,
# in one sentence, from the exception paramiko raises to us.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

HostKeyPolicy = Literal["strict", "accept-new"]

STDERR_TAIL_BYTES = 8192
_MAX_PROXY_DEPTH = 8
_POLL_S = 0.05

_PY_SHA256 = (
    "import hashlib,sys\n"
    "h=hashlib.sha256()\n"
    "with open(sys.argv[1],'rb') as f:\n"
    "    for b in iter(lambda: f.read(1<<20), b''): h.update(b)\n"
    "print(h.hexdigest())\n"
)


@dataclass
class SSHSettings:
    """How to reach one device. Holds no secret: a password is read from `password_env` at connect time."""

    host: str
    """Hostname, IP address or a Host alias of the ssh config file."""
    port: int | None = None
    user: str | None = None
    key: str | None = None
    """Private key file (~ expanded); tried before ssh-agent and ~/.ssh/id_* keys."""
    use_ssh_config: bool = True
    ssh_config_path: str | None = None
    """Defaults to ~/.ssh/config."""
    password_env: str | None = None
    """Name of an environment variable holding the password (never the password itself)."""
    host_key_policy: HostKeyPolicy = "strict"
    known_hosts: Path | None = None
    """benchbot's own known_hosts; defaults to ${XDG_CONFIG_HOME:-~/.config}/benchbot/known_hosts."""
    workdir: str = "~/.cache/benchbot"
    connect_timeout_s: float = 10
    keepalive_s: float = 15
    """Keepalive interval; a command also gives up on a peer that has not answered for 3 intervals."""
    connect_retries: int = 3
    """Extra connection attempts (exponential backoff) for network errors, not for auth or host keys."""
    device_name: str = ""
    """Name used in messages (`benchbot devices trust NAME`); defaults to `host`."""
    proxy_jump: str | None = None
    """`[user@]host[:port][,...]` like ssh -J; overrides ProxyJump of the ssh config."""

    def __post_init__(self) -> None:
        if self.host_key_policy not in ("strict", "accept-new"):
            raise ValueError(f"host_key_policy must be 'strict' or 'accept-new', not {self.host_key_policy!r}")
        if self.known_hosts is not None:
            self.known_hosts = Path(self.known_hosts).expanduser()
        if self.password_env and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.password_env):
            raise ValueError("password_env must be the name of an environment variable, not a password")  # no echo

    @property
    def name(self) -> str:
        return self.device_name or self.host


@dataclass
class _Endpoint:
    """One SSH server to connect to, after applying the ssh config."""

    alias: str
    hostname: str
    port: int
    user: str
    key_filenames: list[str] = field(default_factory=list)
    allow_agent: bool = True
    look_for_keys: bool = True
    proxy_command: str | None = None
    proxy_jump: list[str] = field(default_factory=list)
    depth: int = 0

    @property
    def where(self) -> str:
        return f"{self.user}@{self.hostname}:{self.port}"

    @property
    def key_name(self) -> str:
        return hostkeys.host_key_name(self.hostname, self.port)


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


class SSHTransport(Transport):
    """A device reached over SSH; one instance (one connection) per device."""

    retry_backoff_s = 0.5
    """First retry delay; doubles each attempt."""
    kill_grace_s = 1.0
    """Time between SIGTERM and SIGKILL to the remote process group."""
    answer_timeout_s = 60.0
    """How long the device may stay silent during a file copy or a checksum before it counts as frozen."""

    def __init__(self, settings: SSHSettings) -> None:
        super().__init__()
        self.settings = settings
        self._client: paramiko.SSHClient | None = None
        self._jumps: list[paramiko.SSHClient] = []
        self._sftp: paramiko.SFTPClient | None = None
        self._endpoint: _Endpoint | None = None
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
            _track_exit_signals(self._client.get_transport(), self._exit_signals)

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

    def _resolve_target(self) -> _Endpoint:
        s = self.settings
        key = None
        if s.key:
            key = os.path.expanduser(s.key)
            if not os.path.isfile(key):
                raise TransportError(f"{self.name}: key file {key} does not exist")
        ep = self._resolve(s.host, s.port, s.user, key, depth=0)
        if s.proxy_jump:
            ep.proxy_jump = _split_jumps(s.proxy_jump)
            ep.proxy_command = None
        return ep

    def _ssh_config(self, alias: str) -> dict:
        if not self.settings.use_ssh_config:
            return {}
        path = os.path.expanduser(self.settings.ssh_config_path or "~/.ssh/config")
        if not os.path.isfile(path):
            return {}
        try:
            return dict(paramiko.SSHConfig.from_path(path).lookup(alias))
        except Exception as e:  # noqa: BLE001 - any parse problem is a user-facing config error
            raise TransportError(f"{self.name}: cannot read ssh config {path}: {e}") from e

    def _resolve(self, alias: str, port: int | None, user: str | None, key: str | None, depth: int,
                 extra_key: str | None = None) -> _Endpoint:
        """Apply the ssh config to `alias`; explicit values win over the config."""
        if depth > _MAX_PROXY_DEPTH:
            raise TransportError(f"{self.name}: too many ProxyJump hops (a loop in the ssh config?)")
        cfg = self._ssh_config(alias)
        keys = [key] if key else [
            os.path.expanduser(p) for p in cfg.get("identityfile", []) if os.path.isfile(os.path.expanduser(p))
        ]
        if extra_key and extra_key not in keys:
            keys.append(extra_key)
        only = str(cfg.get("identitiesonly", "no")).lower() == "yes" and bool(keys)
        proxy_command = cfg.get("proxycommand")
        jumps = cfg.get("proxyjump")
        return _Endpoint(
            alias=alias,
            hostname=cfg.get("hostname", alias),
            port=int(port or cfg.get("port", 22)),
            user=user or cfg.get("user") or getpass.getuser(),
            key_filenames=keys,
            allow_agent=not only,
            look_for_keys=not only,
            proxy_command=None if not proxy_command or proxy_command.lower() == "none" else proxy_command,
            proxy_jump=[] if not jumps or jumps.lower() == "none" else _split_jumps(jumps),
            depth=depth,
        )

    def _resolve_hop(self, spec: str, depth: int) -> _Endpoint:
        user, host, port = _parse_hop(spec)
        return self._resolve(host, port, user, None, depth, extra_key=self._explicit_key())

    def _explicit_key(self) -> str | None:
        return os.path.expanduser(self.settings.key) if self.settings.key else None

    def _jump_chain(self, ep: _Endpoint, trust: list[str] | None = None,
                    replace: bool = False) -> paramiko.SSHClient | None:
        """Connect the ProxyJump hosts of `ep` in order; the last one carries the connection to `ep`."""
        via: paramiko.SSHClient | None = None
        for i, spec in enumerate(ep.proxy_jump):
            hop = self._resolve_hop(spec, ep.depth + 1)
            if i > 0:  # like ssh -J a,b: b is reached through a, whatever b's own config says
                hop.proxy_jump, hop.proxy_command = [], None
            via = self._open_endpoint(hop, via, "jump host", trust=trust, replace=replace)
            self._jumps.append(via)
        return via

    def _open_endpoint(self, ep: _Endpoint, via: paramiko.SSHClient | None, role: str,
                       trust: list[str] | None = None, replace: bool = False) -> paramiko.SSHClient:
        if via is None and ep.proxy_jump:
            via = self._jump_chain(ep, trust, replace)
        sock_factory = self._sock_factory(ep, via)
        if trust is not None:
            trust.append(self._trust_endpoint(ep, sock_factory, role, replace))
            if role == "device":
                return None  # type: ignore[return-value] - trust mode does not log in to the device
        return self._connect(ep, sock_factory, role, password=self._password() if role == "device" else None)

    def _sock_factory(self, ep: _Endpoint, via: paramiko.SSHClient | None) -> Callable[[], object]:
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

    def _connect(self, ep: _Endpoint, sock_factory: Callable[[], object], role: str,
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
                    key_filename=ep.key_filenames or None,
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
        reason = _describe(last)
        what = "the jump host " if role == "jump host" else ""
        raise TransportError(
            f"{self.name}: cannot connect to {what}{ep.where} after {attempts} attempt(s): {reason}"
        ) from last

    def _changed_key_message(self, ep: _Endpoint, role: str, e: paramiko.BadHostKeyException) -> str:
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

    def _tried(self, ep: _Endpoint, password: str | None) -> str:
        tried = [f"key {k}" for k in ep.key_filenames]
        if ep.allow_agent:
            tried.append("ssh-agent keys")
        if ep.look_for_keys:
            tried.append("default keys in ~/.ssh")
        name = self.settings.password_env
        if name:
            tried.append(f"password from ${name}" if password is not None else f"no password (${name} is not set)")
        return ", ".join(tried) or "nothing"

    # ------------------------------------------------------------------ trust

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

    def _trust_endpoint(self, ep: _Endpoint, sock_factory: Callable[[], object], role: str,
                        replace: bool) -> str:
        try:
            fp = hostkeys.trust(ep.hostname, ep.port, self.known_hosts, self.settings.connect_timeout_s,
                                replace=replace, sock=sock_factory())  # type: ignore[arg-type]
        except hostkeys.HostKeyChangedError as e:
            raise TransportError(f"{self.name}: {e}") from None
        except (OSError, EOFError, paramiko.SSHException) as e:
            raise TransportError(f"{self.name}: cannot reach {role} {ep.key_name}: {_describe(e)}") from e
        return f"{ep.key_name} {fp}"

    # ------------------------------------------------------------------ files

    @property
    def remote_workdir(self) -> str:
        """The absolute work folder on the device ("~" resolved once through SFTP)."""
        if self._workdir is None:
            wd = self.settings.workdir.rstrip("/") or "/"
            if wd.startswith("~") and not (wd == "~" or wd.startswith("~/")):
                raise TransportError(f"{self.name}: workdir {wd!r}: only ~/ (own home) is supported")
            if not wd.startswith(("/", "~")):
                wd = "~/" + wd  # relative to the login folder, as ssh would
            self._workdir = self.expand_user(wd)
        return self._workdir

    def expand_user(self, path: str) -> str:
        """Resolve a leading ~ with the device's home folder (arguments are quoted, so no remote shell does)."""
        if path != "~" and not path.startswith("~/"):
            return path
        if self._home is None:
            try:
                self._home = self._sftp_client().normalize(".").rstrip("/")
            except (OSError, EOFError, paramiko.SSHException) as e:
                raise TransportError(f"{self.name}: cannot find the home folder: {_describe(e)}") from e
        return self._home + path[1:]

    def _sftp_client(self) -> paramiko.SFTPClient:
        if self._sftp is None or self._sftp.get_channel() is None or self._sftp.get_channel().closed:
            self._ensure_open()
            assert self._client is not None
            try:
                self._sftp = self._client.open_sftp()
                self._sftp.get_channel().settimeout(self.answer_timeout_s)  # a frozen device must not hang us
            except (OSError, EOFError, paramiko.SSHException) as e:
                raise TransportError(f"{self.name}: cannot start SFTP: {_describe(e)}") from e
        return self._sftp

    def blob_path(self, local: Path, sha256: str) -> str:
        """Where `local` lives on the device: `<workdir>/blobs/<sha256><suffix>`.

        Named by content alone (the same bytes under two names are stored once), keeping a sanitized
        suffix so people browsing the folder see what the file is.
        """
        suffix = re.sub(r"[^A-Za-z0-9_-]", "", Path(local).suffix)[:16]
        return f"{self.remote_workdir}/blobs/{sha256}{'.' + suffix if suffix else ''}"

    def push(self, local: Path, sha256: str) -> str:
        """Upload `local` unless the device already has it; the hash is checked on the device."""
        local = Path(local)
        sha256 = sha256.lower()
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        if not local.is_file():
            raise TransportError(f"{self.name}: cannot push {local}: no such file")
        try:
            sftp = self._sftp_client()
            final = self.blob_path(local, sha256)
            try:
                sftp.stat(final)
                exists = True
            except FileNotFoundError:
                exists = False
            if exists and self._remote_sha256(final) == sha256:
                return final
            folder = final.rsplit("/", 1)[0]
            _makedirs(sftp, folder)
            needed = _space_needed(local.stat().st_size)
            free = self._free_bytes(folder)
            if free is not None and free < needed:
                raise self._device_full(local, folder, free, needed)
            tmp = f"{final}.part-{secrets.token_hex(6)}"
            try:
                sent = 0

                def progress(done: int, _total: int) -> None:
                    nonlocal sent
                    self.bytes_sent += done - sent
                    sent = done

                try:
                    sftp.put(str(local), tmp, callback=progress, confirm=True)
                except TimeoutError:
                    raise  # a frozen device: asking it for its free space would only wait again
                except OSError as e:
                    # a full disk shows up as "size mismatch in put!" or a bare SFTP "Failure": ask df
                    try:
                        sftp.remove(tmp)
                    except OSError:
                        pass
                    free = self._free_bytes(folder)
                    if free is not None and free < needed:
                        raise self._device_full(local, folder, free, needed) from e
                    raise
                got = self._remote_sha256(tmp)
                if got != sha256:
                    raise TransportError(
                        f"{self.name}: {local.name} arrived with sha256 {got}, expected {sha256}; not using it"
                    )
                try:
                    sftp.posix_rename(tmp, final)
                except OSError:  # server without the posix-rename extension
                    try:
                        sftp.remove(final)
                    except OSError:
                        pass
                    sftp.rename(tmp, final)
            except BaseException:
                try:
                    sftp.remove(tmp)
                except Exception:  # noqa: BLE001 - best effort cleanup, the original error matters
                    pass
                raise
            return final
        except TransportError:
            raise
        except TimeoutError:
            self._sftp = None
            raise TransportError(f"{self.name}: no answer from the device within {self.answer_timeout_s:.0f} s "
                                 f"while copying {local} to it (frozen or overloaded?)") from None
        except (OSError, EOFError, paramiko.SSHException) as e:
            raise TransportError(f"{self.name}: cannot copy {local.name} to the device: {_describe(e)}") from e

    def _free_bytes(self, folder: str) -> int | None:
        """Bytes an unprivileged writer may still use in `folder` (df's "Available"); None when df cannot say."""
        script = f"df -Pk {shlex.quote(folder)} 2>/dev/null | awk 'NR==2 {{print $4}}'"
        try:
            rc, out, _err = self._exec(script, timeout=max(self.answer_timeout_s, self.settings.connect_timeout_s))
        except (TransportError, OSError, EOFError, paramiko.SSHException):
            return None  # the upload's own error (or the next command's) says what is wrong
        text = out.strip()
        return int(text) * 1024 if rc == 0 and text.isdigit() else None

    def _device_full(self, local: Path, folder: str, free: int | None, needed: int) -> DeviceFull:
        return DeviceFull(
            f"{self.name}: not enough space on the device for {local.name}: {human_bytes(free)} free in {folder}, "
            f"{human_bytes(needed)} needed", file=local.name, free_bytes=free, needed_bytes=needed)

    def _remote_sha256(self, path: str) -> str:
        p = shlex.quote(path)
        script = (
            f"if command -v sha256sum >/dev/null 2>&1; then sha256sum {p}; "
            f"elif command -v python3 >/dev/null 2>&1; then python3 -c {shlex.quote(_PY_SHA256)} {p}; "
            f"elif command -v shasum >/dev/null 2>&1; then shasum -a 256 {p}; "
            f"elif command -v openssl >/dev/null 2>&1; then openssl dgst -sha256 -r {p}; "
            "else echo 'neither sha256sum nor python3 is installed' >&2; exit 127; fi"
        )
        timeout = max(self.answer_timeout_s, self.settings.connect_timeout_s)
        rc, out, err = self._exec(script, timeout=timeout)
        match = re.search(r"\b[0-9a-f]{64}\b", out)
        if rc is None and not match:  # the deadline passed: say so, not "exit status None"
            raise TransportError(f"{self.name}: no answer from the device within {timeout:.0f} s while computing "
                                 f"the sha256 of {path} (frozen or overloaded?)")
        if rc != 0 or not match:
            raise TransportError(f"{self.name}: cannot compute sha256 of {path} on the device: "
                                 f"{err.strip() or f'exit status {rc}'}")
        return match.group(0)

    # ------------------------------------------------------------------ commands

    def _exec(self, script: str, timeout: float, reconnect: bool = True) -> tuple[int | None, str, str]:
        """Run a small POSIX sh script and collect its output (for helpers, not for user commands)."""
        if reconnect:
            transport = self._ensure_open()
        else:
            transport = self._client.get_transport() if self._client else None
            if transport is None or not transport.is_active():
                raise TransportError(f"{self.name}: connection lost")
        try:
            chan = transport.open_session(timeout=self.settings.connect_timeout_s)
            chan.exec_command(f"exec /bin/sh -c {shlex.quote(script)}")
        except (OSError, EOFError, paramiko.SSHException) as e:
            raise TransportError(f"{self.name}: cannot run a command: {_describe(e)}") from e
        out, err = bytearray(), bytearray()
        try:
            status = self._pump(chan, b"", out.extend, err.extend, time.monotonic() + timeout, None)
            rc = self._returncode(chan) if status == "done" else None
        finally:
            chan.close()
        if status == "lost":
            raise TransportError(f"{self.name}: connection lost")
        return rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")

    def run(
        self,
        argv: list[str],
        stdin: bytes,
        on_line: Callable[[str], None],
        deadline_s: float,
    ) -> CommandResult:
        """Run argv (each word shell-quoted) streaming stdout lines; see the module notes for killing."""
        if not argv:
            raise ValueError("empty argv")
        self._interrupt.clear()
        try:
            transport = self._ensure_open()
        except TransportError as e:
            return CommandResult(None, str(e))
        marker = f"__benchbot_pgid_{secrets.token_hex(8)}".encode()
        script = f"printf '%s %s\\n' {marker.decode()} $$; exec " + " ".join(shlex.quote(a) for a in argv)
        try:
            chan = transport.open_session(timeout=self.settings.connect_timeout_s)
            chan.exec_command(f"exec /bin/sh -c {shlex.quote(script)}")
        except (OSError, EOFError, paramiko.SSHException) as e:
            if transport.is_active():
                return CommandResult(None, f"benchbot: could not start the command on {self.name}: {_describe(e)}")
            return CommandResult(None, self._lost_text("before the command started", e))

        pgid: int | None = None
        pending = b""
        err = bytearray()

        def on_out(data: bytes) -> None:
            nonlocal pending, pgid
            lines = (pending + data).split(b"\n")
            pending = lines.pop()
            for raw in lines:
                if pgid is None:
                    # Anything before our marker is shell start-up noise (rc files), not command output.
                    if marker in raw:
                        pgid = int(raw.split(marker, 1)[1].split()[0])
                    continue
                on_line(raw.rstrip(b"\r").decode("utf-8", "replace"))

        def on_err(data: bytes) -> None:
            err.extend(data)
            if len(err) > 2 * STDERR_TAIL_BYTES:
                del err[:-STDERR_TAIL_BYTES]

        result = CommandResult(None)
        lost = False
        try:
            status = self._pump(chan, stdin, on_out, on_err, time.monotonic() + deadline_s, self._interrupt,
                                watchdog=True)
            if status in ("deadline", "interrupted"):
                if pgid is None:  # the marker is the first thing printed; give it a moment
                    self._pump(chan, b"", on_out, on_err, time.monotonic() + 2, None, until_pgid=lambda: pgid)
                if pgid is not None and self._kill_group(pgid):
                    status2 = self._pump(chan, b"", on_out, on_err,
                                         time.monotonic() + self.kill_grace_s + 2, None)
                    if status2 == "done":
                        result.returncode = self._returncode(chan)
                elif not transport.is_active():
                    lost = True
                else:
                    on_err(b"\nbenchbot: the command never reported its process id; it may still run\n")
                result.timed_out = status == "deadline"
                result.interrupted = status == "interrupted"
            elif status == "done":
                result.returncode = self._returncode(chan)
        except BaseException:
            if pgid is not None:  # on_line raised (or Ctrl-C in this thread): do not leave it running
                try:
                    self._kill_group(pgid)
                except Exception:  # noqa: BLE001
                    pass
            chan.close()
            raise
        chan.close()
        if pgid is not None and pending:
            on_line(pending.rstrip(b"\r").decode("utf-8", "replace"))
        tail = err[-STDERR_TAIL_BYTES:].decode("utf-8", "replace")
        if lost or status == "lost":
            tail = (tail + "\n" if tail else "") + self._lost_text("while the command was running")
        elif result.returncode is None and status == "done":
            tail = (tail + "\n" if tail else "") + f"benchbot: {self.name} ended the command without an exit status"
        result.stderr_tail = tail
        return result

    def _lost_text(self, when: str, e: BaseException | None = None) -> str:
        where = self._endpoint.where if self._endpoint else self.settings.host
        detail = f" ({_describe(e)})" if e is not None else ""
        return f"benchbot: connection lost to {self.name} ({where}) {when}{detail}; the outcome is unknown"

    def interrupt(self) -> None:
        """Stop the running command (thread-safe): run() kills its process group and returns."""
        self._interrupt.set()

    def _returncode(self, chan: paramiko.Channel) -> int | None:
        sig = self._exit_signals.pop(chan.get_id(), None)
        if sig is not None:
            try:
                return -signal.Signals["SIG" + sig].value
            except KeyError:
                return None
        status = chan.exit_status
        return None if status == -1 else status

    def _kill_group(self, pgid: int) -> bool:
        """SIGTERM the remote process group, SIGKILL it after kill_grace_s; False if unreachable."""
        steps = max(1, int(self.kill_grace_s / 0.1))
        script = (
            f"kill -TERM -{pgid} 2>/dev/null || kill -TERM {pgid} 2>/dev/null; i=0; "
            f"while kill -0 -{pgid} 2>/dev/null && [ $i -lt {steps} ]; do sleep 0.1; i=$((i+1)); done; "
            f"kill -KILL -{pgid} 2>/dev/null; exit 0"
        )
        try:
            self._exec(script, timeout=self.kill_grace_s + 10, reconnect=False)
        except TransportError:
            return False
        return True

    def _pump(
        self,
        chan: paramiko.Channel,
        stdin: bytes,
        on_out: Callable[[bytes], None],
        on_err: Callable[[bytes], None],
        deadline: float,
        stop: threading.Event | None,
        watchdog: bool = False,
        until_pgid: Callable[[], int | None] | None = None,
    ) -> str:
        """Move data until the command ends: returns done | deadline | interrupted | lost."""
        transport = chan.get_transport()
        offset = 0
        if not stdin:
            chan.shutdown_write()
        ka = self.settings.keepalive_s
        next_ping = time.monotonic() + ka
        ping: _Ping | None = None
        while True:
            busy = False
            if chan.recv_ready():
                data = chan.recv(65536)
                if data:
                    on_out(data)
                    busy = True
            if chan.recv_stderr_ready():
                data = chan.recv_stderr(65536)
                if data:
                    on_err(data)
                    busy = True
            if offset < len(stdin) and chan.send_ready():
                try:
                    offset += chan.send(stdin[offset:offset + 32768])
                except OSError:  # the command closed its stdin; keep reading its output
                    offset = len(stdin)
                if offset >= len(stdin):
                    chan.shutdown_write()
                busy = True
            if until_pgid is not None and until_pgid() is not None:
                return "done"
            if stop is not None and stop.is_set():
                return "interrupted"
            now = time.monotonic()
            if now >= deadline:
                return "deadline"
            if busy:
                continue
            if chan.closed or (chan.eof_received and chan.exit_status_ready()):
                if chan.recv_ready() or chan.recv_stderr_ready():
                    continue
                if transport is not None and not transport.is_active() and self._returncode_unknown(chan):
                    return "lost"
                return "done"
            if transport is None or not transport.is_active():
                return "lost"
            if watchdog and ka > 0:
                if ping is not None and ping.overdue(3 * ka):
                    transport.close()  # silent peer (device hung or network gone): stop waiting on it
                    return "lost"
                if now >= next_ping and (ping is None or ping.done.is_set()):
                    ping = _Ping(transport)
                    next_ping = now + ka
            if chan.eof_received:
                time.sleep(_POLL_S)  # the wake-up pipe stays set after EOF; select would spin
            else:
                select.select([chan], [], [], _POLL_S)

    def _returncode_unknown(self, chan: paramiko.Channel) -> bool:
        return chan.exit_status == -1 and chan.get_id() not in self._exit_signals

    # ------------------------------------------------------------------ device facts

    def probe(self) -> dict:
        """Facts for `benchbot devices check`: arch, os, python, disk_free_bytes, mem_*_bytes (None if unknown)."""
        try:
            workdir = self.remote_workdir
        except TransportError:
            workdir = self.settings.workdir
        if workdir.startswith("~/"):
            wd = '"$HOME"/' + shlex.quote(workdir[2:])
        else:
            wd = shlex.quote(workdir)
        script = (
            'echo "arch=$(uname -m 2>/dev/null)"; '
            "echo \"os=$(sed -n 's/^PRETTY_NAME=//p' /etc/os-release 2>/dev/null | head -n 1)\"; "
            "echo \"python=$(python3 -c 'import platform; print(platform.python_version())' 2>/dev/null)\"; "
            f"d={wd}; while [ ! -e \"$d\" ] && [ \"$d\" != / ]; do d=$(dirname \"$d\"); done; "
            "echo \"diskkb=$(df -Pk \"$d\" 2>/dev/null | awk 'NR==2 {print $4}')\"; "
            "echo \"memtotalkb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null)\"; "
            "echo \"memavailkb=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo 2>/dev/null)\"; "
            "exit 0"
        )
        _rc, out, _err = self._exec(script, timeout=max(30.0, self.settings.connect_timeout_s))
        raw = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

        def text(k: str) -> str | None:
            v = raw.get(k, "").strip().strip('"').strip("'")
            return v or None

        def kib(k: str) -> int | None:
            v = raw.get(k, "").strip()
            return int(v) * 1024 if v.isdigit() else None

        return {
            "arch": text("arch"),
            "os": text("os"),
            "python": text("python"),
            "disk_free_bytes": kib("diskkb"),
            "mem_total_bytes": kib("memtotalkb"),
            "mem_available_bytes": kib("memavailkb"),
        }


class _Ping:
    """One keepalive@openssh.com request with a reply; tells whether the peer is still answering."""

    def __init__(self, transport: paramiko.Transport) -> None:
        self.sent = time.monotonic()
        self.done = threading.Event()
        threading.Thread(target=self._run, args=(transport,), daemon=True).start()

    def _run(self, transport: paramiko.Transport) -> None:
        try:
            transport.global_request("keepalive@openssh.com", wait=True)  # any reply (even failure) counts
        except Exception:  # noqa: BLE001 - a dead transport is detected by the caller
            pass
        self.done.set()

    def overdue(self, after_s: float) -> bool:
        return not self.done.is_set() and time.monotonic() - self.sent > after_s


def _track_exit_signals(transport: paramiko.Transport | None, store: dict[int, str]) -> None:
    """Record `exit-signal` requests, which paramiko ignores, so a crash reads as -SIGSEGV and not -1.

    Uses paramiko's per-transport dispatch table; if that ever changes, signals show as returncode None.
    """
    table = getattr(transport, "_channel_handler_table", None)
    if transport is None or not isinstance(table, dict) or MSG_CHANNEL_REQUEST not in table:
        return
    base = table[MSG_CHANNEL_REQUEST]

    def handle(chan: paramiko.Channel, m: paramiko.Message) -> None:
        try:
            peek = paramiko.Message(m.get_remainder())
            if peek.get_text() == "exit-signal":
                peek.get_boolean()
                store[chan.get_id()] = peek.get_text()
        except Exception:  # noqa: BLE001 - never break paramiko's own handling
            pass
        base(chan, m)

    table = dict(table)
    table[MSG_CHANNEL_REQUEST] = handle
    transport._channel_handler_table = table  # instance attribute: this connection only


def _space_needed(size: int) -> int:
    """What a file of `size` bytes takes on a device's disk: whole 4 KiB blocks, plus one for the folder entry."""
    return -(-size // 4096) * 4096 + 4096


def _makedirs(sftp: paramiko.SFTPClient, path: str) -> None:
    try:
        sftp.stat(path)
        return
    except FileNotFoundError:
        pass
    current = ""
    for part in path.strip("/").split("/"):
        current += "/" + part
        try:
            sftp.stat(current)
        except FileNotFoundError:
            try:
                sftp.mkdir(current, 0o700)
            except OSError:
                sftp.stat(current)  # created meanwhile by another process is fine; else raise


def _split_jumps(value: str) -> list[str]:
    return [hop.strip() for hop in value.split(",") if hop.strip()]


def _parse_hop(spec: str) -> tuple[str | None, str, int | None]:
    """`[ssh://][user@]host[:port]` (IPv6 in brackets) -> (user, host, port)."""
    spec = spec.removeprefix("ssh://")
    user, _, hostport = spec.rpartition("@")
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif hostport.count(":") == 1:
        host, port = hostport.split(":")
    else:
        host, port = hostport, ""
    return user or None, host, int(port) if port else None


def _describe(e: BaseException | None) -> str:
    if e is None:
        return "unknown error"
    text = str(e).strip()
    return f"{type(e).__name__}: {text}" if text else type(e).__name__

