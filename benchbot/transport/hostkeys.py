"""benchbot's own known_hosts file, and the pieces of `benchbot devices trust NAME`.

Devices are trusted explicitly (RejectPolicy by default, never AutoAddPolicy): the user checks a
fingerprint once and benchbot records the key in its own file, so benchbot never edits
~/.ssh/known_hosts but still honours it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import threading
from pathlib import Path

import paramiko
from paramiko.hostkeys import HostKeyEntry

from benchbot.errors import HostKeyChanged

_WRITE_LOCK = threading.Lock()  # devices are opened from a thread pool; keep file updates whole

SYSTEM_KNOWN_HOSTS = ("~/.ssh/known_hosts", "/etc/ssh/ssh_known_hosts")


#: The device presents a key other than the recorded one (a TransportError, so callers need not re-wrap it).
HostKeyChangedError = HostKeyChanged


def default_known_hosts() -> Path:
    """`${XDG_CONFIG_HOME:-~/.config}/benchbot/known_hosts` (XDG, so it follows the user's config)."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "benchbot" / "known_hosts"


def host_key_name(host: str, port: int = 22) -> str:
    """The known_hosts name OpenSSH uses: `host` on port 22, `[host]:port` elsewhere."""
    return host if port == 22 else f"[{host}]:{port}"


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style `ED25519 SHA256:base64` so it can be compared with `ssh-keygen -lf` output."""
    digest = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
    return f"{_algorithm(key)} SHA256:{digest}"


def _algorithm(key: paramiko.PKey) -> str:
    name = key.get_name()
    if name.startswith("ssh-ed25519"):
        return "ED25519"
    if name.startswith("ecdsa-"):
        return "ECDSA"
    if name in ("ssh-rsa", "rsa-sha2-256", "rsa-sha2-512"):
        return "RSA"
    if name == "ssh-dss":
        return "DSA"
    return name.upper()


def fetch_host_key(
    host: str,
    port: int = 22,
    timeout: float = 10.0,
    sock: paramiko.ProxyCommand | paramiko.Channel | None = None,
    prefer: str | None = None,
) -> paramiko.PKey:
    """Do the key exchange only (no authentication) and return the server's host key.

    `sock` lets the caller reach the device through a jump host or a ProxyCommand; `prefer` asks for
    one key type first (as SSHClient does when a key of that type is already recorded).
    """
    own_sock: socket.socket | None = None
    if sock is None:
        own_sock = socket.create_connection((host, port), timeout=timeout)
    transport = paramiko.Transport(own_sock if own_sock is not None else sock)  # type: ignore[arg-type]
    try:
        if prefer:
            options = transport.get_security_options()
            if prefer in options.key_types:
                options.key_types = [prefer] + [t for t in options.key_types if t != prefer]
        transport.banner_timeout = timeout
        transport.handshake_timeout = timeout
        transport.start_client(timeout=timeout)
        return transport.get_remote_server_key()
    finally:
        transport.close()
        if own_sock is not None:
            own_sock.close()


def load_known_hosts(known_hosts_path: Path | None = None, include_system: bool = True) -> paramiko.HostKeys:
    """One HostKeys merged from the user's/system files and benchbot's file (missing files are fine)."""
    keys = paramiko.HostKeys()
    paths = [os.path.expanduser(p) for p in SYSTEM_KNOWN_HOSTS] if include_system else []
    paths.append(str(known_hosts_path or default_known_hosts()))
    for path in paths:
        try:
            keys.load(path)
        except OSError:
            pass  # absent or unreadable: nothing to trust from it
    return keys


def known_keys(host: str, port: int = 22, known_hosts_path: Path | None = None,
               include_system: bool = True) -> list[paramiko.PKey]:
    """All recorded keys for host:port (any algorithm)."""
    entry = load_known_hosts(known_hosts_path, include_system).lookup(host_key_name(host, port))
    return list(entry.values()) if entry else []


def is_known(host: str, port: int = 22, key: paramiko.PKey | None = None,
             known_hosts_path: Path | None = None, include_system: bool = True) -> bool:
    """True if host:port has a recorded key (and, when `key` is given, that exact key is recorded)."""
    keys = known_keys(host, port, known_hosts_path, include_system)
    if key is None:
        return bool(keys)
    return any(k.get_name() == key.get_name() and k.asbytes() == key.asbytes() for k in keys)


def add_host_key(known_hosts_path: Path | None, name: str, key: paramiko.PKey) -> None:
    """Append one `name keytype base64` line; the file is created 0600 in a 0700 folder."""
    path = Path(known_hosts_path or default_known_hosts())
    line = f"{name} {key.get_name()} {key.get_base64()}\n"
    with _WRITE_LOCK:
        _ensure_parent(path)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as f:
            f.write(line)


def remove_host(known_hosts_path: Path | None, name: str) -> int:
    """Drop every entry for `name` (plain or hashed) from benchbot's file; return how many went."""
    path = Path(known_hosts_path or default_known_hosts())
    with _WRITE_LOCK:
        try:
            lines = path.read_text().splitlines(keepends=True)
        except FileNotFoundError:
            return 0
        kept: list[str] = []
        removed = 0
        for line in lines:
            entry = _parse(line)
            if entry is None or not any(_name_matches(h, name) for h in entry.hostnames):
                kept.append(line)
                continue
            removed += 1
            others = [h for h in entry.hostnames if not _name_matches(h, name)]
            if others:  # a line shared with other names keeps them
                kept.append(" ".join([",".join(others)] + line.split()[1:]) + "\n")
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.writelines(kept)
        os.replace(tmp, path)
        return removed


def trust(
    host: str,
    port: int = 22,
    known_hosts_path: Path | None = None,
    timeout: float = 10.0,
    *,
    replace: bool = False,
    sock: paramiko.ProxyCommand | paramiko.Channel | None = None,
) -> str:
    """Fetch host:port's key, record it in benchbot's known_hosts and return its fingerprint.

    A different key already recorded in benchbot's file raises HostKeyChangedError unless `replace`
    (the user has checked the new fingerprint); one recorded in ~/.ssh/known_hosts cannot be replaced
    here because benchbot does not edit that file.
    """
    path = Path(known_hosts_path or default_known_hosts())
    name = host_key_name(host, port)
    recorded = known_keys(host, port, path)
    key = fetch_host_key(host, port, timeout, sock=sock, prefer=recorded[0].get_name() if recorded else None)
    fp = fingerprint(key)
    if is_known(host, port, key, path):
        return fp
    if known_keys(host, port, Path(os.devnull), include_system=True):
        raise HostKeyChangedError(
            f"host key for {name} differs from the one in ~/.ssh/known_hosts (now {fp}); "
            f"if the change is expected, run: ssh-keygen -R '{name}'"
        )
    if known_keys(host, port, path, include_system=False):
        if not replace:
            raise HostKeyChangedError(
                f"host key for {name} differs from the one recorded in {path} (now {fp})", replaceable=True
            )
        remove_host(path, name)
    add_host_key(path, name, key)
    return fp


def _ensure_parent(path: Path) -> None:
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
        os.chmod(path.parent, 0o700)  # mkdir's mode is filtered by the umask


def _parse(line: str) -> HostKeyEntry | None:
    if not line.strip() or line.lstrip().startswith("#"):
        return None
    try:
        return HostKeyEntry.from_line(line)
    except Exception:  # noqa: BLE001 - a line paramiko cannot read is kept untouched
        return None


def _name_matches(pattern: str, name: str) -> bool:
    if pattern.startswith("|1|"):
        return paramiko.HostKeys.hash_host(name, pattern) == pattern
    return pattern == name
