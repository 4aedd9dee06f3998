"""Where an SSH device is: the ssh config (paramiko.SSHConfig) applied to a profile, and its ProxyJump chain.

Pure resolution: nothing here opens a connection, so the rules are tested without a server.
"""

from __future__ import annotations

import getpass
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import paramiko

import benchbot.transport.hostkeys as hostkeys
from benchbot.transport.base import TransportError

HostKeyPolicy = Literal["strict", "accept-new"]

MAX_PROXY_DEPTH = 8

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
class Endpoint:
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


def ssh_settings(profile: object) -> SSHSettings:
    """The SSH settings of a profile (its [ssh] table plus the device's work folder)."""
    ssh = profile.ssh  # type: ignore[attr-defined]
    return SSHSettings(
        host=ssh.host, port=ssh.port, user=ssh.user, key=ssh.key, use_ssh_config=ssh.use_ssh_config,
        password_env=ssh.password_env, host_key_policy=ssh.host_key_policy,
        workdir=profile.workdir,  # type: ignore[attr-defined]
        connect_timeout_s=ssh.connect_timeout_s, keepalive_s=ssh.keepalive_s, connect_retries=ssh.connect_retries,
        device_name=profile.name,  # type: ignore[attr-defined]
    )


def resolve_target(settings: SSHSettings) -> Endpoint:
    """The device's endpoint after the ssh config; an explicit proxy_jump replaces the config's."""
    s = settings
    key = None
    if s.key:
        key = os.path.expanduser(s.key)
        if not os.path.isfile(key):
            raise TransportError(f"{settings.name}: key file {key} does not exist")
    ep = resolve(settings, s.host, s.port, s.user, key, depth=0)
    if s.proxy_jump:
        ep.proxy_jump = split_jumps(s.proxy_jump)
        ep.proxy_command = None
    return ep


def ssh_config(settings: SSHSettings, alias: str) -> dict[str, Any]:
    """The ssh config's options for `alias` (paramiko.SSHConfig), {} when not used or absent."""
    if not settings.use_ssh_config:
        return {}
    path = os.path.expanduser(settings.ssh_config_path or "~/.ssh/config")
    if not os.path.isfile(path):
        return {}
    try:
        return dict(paramiko.SSHConfig.from_path(path).lookup(alias))
    except Exception as e:  # noqa: BLE001 - any parse problem is a user-facing config error
        raise TransportError(f"{settings.name}: cannot read ssh config {path}: {e}") from e


def resolve(settings: SSHSettings, alias: str, port: int | None, user: str | None, key: str | None, depth: int,
            extra_key: str | None = None) -> Endpoint:
    """Apply the ssh config to `alias`; explicit values win over the config."""
    if depth > MAX_PROXY_DEPTH:
        raise TransportError(f"{settings.name}: too many ProxyJump hops (a loop in the ssh config?)")
    cfg = ssh_config(settings, alias)
    keys = [key] if key else [
        os.path.expanduser(p) for p in cfg.get("identityfile", []) if os.path.isfile(os.path.expanduser(p))
    ]
    if extra_key and extra_key not in keys:
        keys.append(extra_key)
    only = str(cfg.get("identitiesonly", "no")).lower() == "yes" and bool(keys)
    proxy_command = cfg.get("proxycommand")
    jumps = cfg.get("proxyjump")
    return Endpoint(
        alias=alias,
        hostname=cfg.get("hostname", alias),
        port=int(port or cfg.get("port", 22)),
        user=user or cfg.get("user") or getpass.getuser(),
        key_filenames=keys,
        allow_agent=not only,
        look_for_keys=not only,
        proxy_command=None if not proxy_command or proxy_command.lower() == "none" else proxy_command,
        proxy_jump=[] if not jumps or jumps.lower() == "none" else split_jumps(jumps),
        depth=depth,
    )


def resolve_hop(settings: SSHSettings, spec: str, depth: int) -> Endpoint:
    """One ProxyJump hop (`[user@]host[:port]`), with the ssh config applied and the profile's key offered."""
    user, host, port = parse_hop(spec)
    explicit_key = os.path.expanduser(settings.key) if settings.key else None
    return resolve(settings, host, port, user, None, depth, extra_key=explicit_key)


def split_jumps(value: str) -> list[str]:
    return [hop.strip() for hop in value.split(",") if hop.strip()]


def parse_hop(spec: str) -> tuple[str | None, str, int | None]:
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

