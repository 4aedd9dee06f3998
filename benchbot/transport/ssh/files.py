"""A content-addressed file store on the device: `<workdir>/blobs/<sha256><suffix>`, checked on arrival.

A file is sent once per content (the same bytes under two names are stored once); an upload goes to
a temporary name, its sha256 is computed on the device, and only then is it renamed into place.
"""

from __future__ import annotations

import re
import secrets
import shlex
from pathlib import Path

import paramiko

from benchbot.transport.base import DeviceFull, TransportError, human_bytes
from benchbot.transport.ssh.commands import RemoteCommands
from benchbot.transport.ssh.connect import describe

_PY_SHA256 = (
    "import hashlib,sys\n"
    "h=hashlib.sha256()\n"
    "with open(sys.argv[1],'rb') as f:\n"
    "    for b in iter(lambda: f.read(1<<20), b''): h.update(b)\n"
    "print(h.hexdigest())\n"
)


class RemoteFiles(RemoteCommands):
    """SFTP uploads into the blob store, and ~ resolved to the device's home folder."""

    answer_timeout_s = 60.0
    """How long the device may stay silent during a file copy or a checksum before it counts as frozen."""

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
                raise TransportError(f"{self.name}: cannot find the home folder: {describe(e)}") from e
        return self._home + path[1:]

    def _sftp_client(self) -> paramiko.SFTPClient:
        channel = self._sftp.get_channel() if self._sftp is not None else None
        if self._sftp is None or channel is None or channel.closed:
            self._ensure_open()
            assert self._client is not None
            try:
                self._sftp = self._client.open_sftp()
                channel = self._sftp.get_channel()
                if channel is not None:
                    channel.settimeout(self.answer_timeout_s)  # a frozen device must not hang us
            except (OSError, EOFError, paramiko.SSHException) as e:
                raise TransportError(f"{self.name}: cannot start SFTP: {describe(e)}") from e
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
                    raise  # a frozen device, not a full one: asking it for df would only wait again
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
            raise TransportError(f"{self.name}: cannot copy {local.name} to the device: {describe(e)}") from e

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
            f"{human_bytes(needed)} needed")

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

