"""Build (once) and cache an arm64 Debian disk image that boots under QEMU and answers on SSH.

The image is the emulated "device": Debian's python3 + numpy, and aarch64 TFLite runtime wheels
in a venv. Building it runs Debian's arm64 binaries under qemu-user (binfmt), which is slow, so
the result is cached under a key made of everything that goes into it and reused as-is.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchbot.wheeltags import manylinux_platforms, parse_wheel

#: Bump when the build recipe changes, so older cached images are not reused.
BUILD_VERSION = "2"

GUEST_VENV = "/opt/benchbot/venv"
GUEST_PYTHON = f"{GUEST_VENV}/bin/python"
GUEST_HOSTNAME = "benchbot-arm64"

#: Packages every image gets (on top of mmdebstrap's "apt" variant: essential + apt).
BASE_PACKAGES = (
    "systemd-sysv",
    "udev",
    "kmod",
    "openssh-server",
    "iproute2",
    "procps",
    "netbase",
    "python3",
    "python3-numpy",
    "python3-psutil",
    "linux-image-arm64",
)

#: Modules the initramfs needs to find the root disk on QEMU's virt machine; nothing else goes in,
#: which keeps the initramfs build under emulation short (the generic one scans every module).
INITRAMFS_MODULES = ("virtio_mmio", "virtio_pci", "virtio_blk", "virtio_net", "ext4")

#: Files not worth unpacking under emulation nor carrying in the image (docs, locales, and kernel
#: modules for hardware a QEMU virt machine never has).
DPKG_EXCLUDES = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    # No udev in the initramfs: the kernel's devtmpfs shows /dev/vda as soon as the force-loaded virtio
    # modules probe, and skipping udev's coldplug there saves 15-20 s of every emulated boot.
    "path-exclude=/usr/share/initramfs-tools/hooks/udev",
    "path-exclude=/usr/share/initramfs-tools/scripts/init-top/udev",
    "path-exclude=/usr/share/initramfs-tools/scripts/init-bottom/udev",
    *(
        f"path-exclude={prefix}/modules/*/kernel/{sub}/*"
        for prefix in ("/lib", "/usr/lib")
        for sub in (
            "drivers/gpu",
            "drivers/media",
            "drivers/net/wireless",
            "drivers/net/ethernet",
            "drivers/infiniband",
            "drivers/staging",
            "drivers/bluetooth",
            "drivers/iio",
            "drivers/isdn",
            "sound",
            "net/bluetooth",
            "net/wireless",
            "net/mac80211",
        )
    ),
)

#: Units that would only slow the boot or disturb measurements on a throwaway benchmark VM.
MASKED_UNITS = (
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "man-db.timer",
    "logrotate.timer",
    "systemd-timesyncd.service",
    "systemd-networkd-wait-online.service",
    "getty@tty1.service",
    "getty-static.service",
    "systemd-binfmt.service",
    "dev-hugepages.mount",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "sys-fs-fuse-connections.mount",
)


@dataclass(frozen=True)
class SuiteInfo:
    """What a Debian suite ships that the wheels must match."""

    python: str
    numpy: str
    glibc: tuple[int, int]


SUITES: dict[str, SuiteInfo] = {
    "bookworm": SuiteInfo(python="3.11", numpy="1.24.2", glibc=(2, 36)),
    "trixie": SuiteInfo(python="3.13", numpy="2.2.4", glibc=(2, 41)),
}

#: Wheels provided by Debian packages inside the guest; never installed from PyPI there.
DEBIAN_PROVIDED = frozenset({"numpy", "psutil"})


def host_debian_mirror(apt_dir: Path = Path("/etc/apt")) -> str:
    """The main Debian archive URI this host's apt is configured with (deb822 or one-line sources).

    Using the host's own mirror keeps the build on whatever package archive this machine may reach.
    """
    candidates: list[str] = []
    for path in sorted(apt_dir.glob("sources.list.d/*.sources")):
        text = path.read_text(errors="replace")
        candidates += [u for line in text.splitlines() if line.startswith("URIs:") for u in line.split()[1:]]
    for path in [apt_dir / "sources.list", *sorted(apt_dir.glob("sources.list.d/*.list"))]:
        if path.is_file():
            for line in path.read_text(errors="replace").splitlines():
                parts = line.split()
                if parts and parts[0] == "deb":
                    uri = next((p for p in parts[1:] if "://" in p), None)
                    if uri:
                        candidates.append(uri)
    for uri in candidates:
        if uri.rstrip("/").endswith("/debian"):
            return uri.rstrip("/")
    raise HostSetupError(
        f"no Debian archive found in {apt_dir}/sources.list(.d); building the arm64 image needs a Debian host"
    )


@dataclass(frozen=True)
class ImageSettings:
    """Everything that decides the image's content (and therefore its cache key)."""

    suite: str = "bookworm"
    extra_packages: tuple[str, ...] = ()
    runtimes: tuple[str, ...] = ("tflite-runtime==2.14.0", "ai-edge-litert==2.3.0")
    mirror: str = field(default_factory=lambda: host_debian_mirror())
    """The Debian archive the image is built from: by default the one this host's apt uses."""
    free_space_mib: int = 1024
    """Room left on the root file system for models and results."""

    @property
    def suite_info(self) -> SuiteInfo:
        try:
            return SUITES[self.suite]
        except KeyError:
            raise ValueError(f"unknown suite {self.suite!r}; known: {', '.join(sorted(SUITES))}") from None

    @property
    def packages(self) -> tuple[str, ...]:
        return tuple(sorted(set(BASE_PACKAGES) | set(self.extra_packages)))


@dataclass
class Image:
    """A built image in its cache folder; everything a VM and an SSH client need."""

    folder: Path
    disk: Path
    kernel: Path
    initrd: Path
    user_key: Path
    host_pubkey: Path
    guest_python: str
    user: str
    key: str
    kernel_cmdline: str
    built_seconds: float | None = None
    """How long the build took (recorded in image.json, so also known for a cached image)."""
    manifest: dict[str, Any] = field(default_factory=dict)
    fresh: bool = False
    """True when this call built the image, False when it came from the cache."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("fresh")
        for name in ("disk", "kernel", "initrd", "user_key", "host_pubkey"):
            data[name] = getattr(self, name).name
        data.pop("folder")
        return data

    @classmethod
    def load(cls, folder: Path) -> Image:
        data = json.loads((folder / "image.json").read_text())
        for name in ("disk", "kernel", "initrd", "user_key", "host_pubkey"):
            data[name] = folder / data[name]
        return cls(folder=folder, **data)


class HostSetupError(RuntimeError):
    """The host lacks a tool or setting needed to build or run the image; the message says how to fix it."""


class ImageBuildError(RuntimeError):
    """A build step failed; the message ends with the failing command's output."""


@dataclass(frozen=True)
class Wheel:
    """A downloaded wheel file in the shared wheel cache."""

    path: Path
    sha256: str

    @property
    def project(self) -> str:
        """The normalised project name (tflite_runtime-2.14.0-... -> tflite-runtime)."""
        return parse_wheel(self.path.name).project

    @property
    def version(self) -> str:
        return parse_wheel(self.path.name).version


def default_cache_root() -> Path:
    """`${XDG_CACHE_HOME:-~/.cache}/benchbot/qemu`."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "benchbot" / "qemu"


def cache_key(settings: ImageSettings, wheels: list[tuple[str, str]]) -> str:
    """Short hash of every input of the image: a change in any of them means a new image."""
    payload = {
        "build_version": BUILD_VERSION,
        "suite": settings.suite,
        "mirror": settings.mirror,
        "packages": list(settings.packages),
        "free_space_mib": settings.free_space_mib,
        "wheels": sorted([name, sha] for name, sha in wheels),
        "initramfs_modules": list(INITRAMFS_MODULES),
    }
    blob = json.dumps(payload, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _run(argv: list[str], log: Callable[[str], None], what: str, **kwargs: Any) -> str:
    """Run a build step; on failure raise with the tail of its output (the part that explains it)."""
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-30:])
        raise ImageBuildError(f"{what} failed (exit {proc.returncode}): {' '.join(argv[:3])} ...\n{tail}")
    return proc.stdout


def _run_logged(argv: list[str], logfile: Path, what: str) -> None:
    """Run a long step with its output in a log file (mmdebstrap prints a lot)."""
    with logfile.open("a") as fh:
        fh.write(f"$ {' '.join(argv)}\n")
        fh.flush()
        rc = subprocess.run(argv, stdout=fh, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        tail = "\n".join(logfile.read_text(errors="replace").splitlines()[-30:])
        raise ImageBuildError(f"{what} failed (exit {rc}); full log in {logfile}:\n{tail}")


def _platform_tags(glibc: tuple[int, int]) -> list[str]:
    """Every manylinux tag an aarch64 guest with this glibc accepts (pip does not expand them itself)."""
    return manylinux_platforms("aarch64", glibc)


def fetch_wheels(
    settings: ImageSettings, cache_root: Path, log: Callable[[str], None] = print
) -> list[Wheel]:
    """Download the runtimes' aarch64 wheels (with dependencies) on the host, once.

    The resolution is pinned against Debian's numpy so pip picks dependency versions that work with
    it; the list of files is remembered so a later call needs no network.
    """
    info = settings.suite_info
    wheel_dir = cache_root / "wheels"
    wheel_dir.mkdir(parents=True, exist_ok=True)
    tags = _platform_tags(info.glibc)
    request = {
        "runtimes": sorted(settings.runtimes),
        "python": info.python,
        "numpy": info.numpy,
        "tags": tags,
    }
    req_hash = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()[:16]
    lock = wheel_dir / f"lock-{req_hash}.json"
    if lock.exists():
        entries = json.loads(lock.read_text())["wheels"]
        wheels = [Wheel(wheel_dir / e["file"], e["sha256"]) for e in entries]
        if all(w.path.exists() for w in wheels):
            return wheels
    if not settings.runtimes:
        return []
    log(f"downloading aarch64 wheels for python {info.python}: {', '.join(settings.runtimes)}")
    with tempfile.TemporaryDirectory(dir=wheel_dir, prefix=".dl-") as tmp:
        constraints = Path(tmp) / "constraints.txt"
        constraints.write_text(f"numpy=={info.numpy}\n")
        out = Path(tmp) / "out"
        argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
                "--progress-bar", "off", "--only-binary=:all:", "--implementation", "cp",
                "--python-version", info.python, "--abi", f"cp{info.python.replace('.', '')}",
                "-c", str(constraints), "-d", str(out)]
        for tag in tags:
            argv += ["--platform", tag]
        argv += list(settings.runtimes)
        _run(argv, log, "pip download of the guest wheels")
        wheels = []
        for path in sorted(out.glob("*.whl")):
            target = wheel_dir / path.name
            if not target.exists():
                shutil.move(str(path), target)
            wheels.append(Wheel(target, _sha256(target)))
    lock.write_text(json.dumps({"request": request,
                                "wheels": [{"file": w.path.name, "sha256": w.sha256} for w in wheels]},
                               indent=1))
    return wheels


def _check_build_host() -> None:
    from benchbot.qemu.doctor import build_checks, install_hint

    if os.geteuid() != 0:
        raise HostSetupError("Building the QEMU image needs root (mmdebstrap and chroot): run it with sudo.")
    for check in build_checks():
        if not check.ok:
            hint = install_hint([check])
            raise HostSetupError(f"{check.name} is not usable ({check.detail}): run `{hint}`.")


def build_image(
    settings: ImageSettings,
    cache_root: Path | None = None,
    log: Callable[[str], None] = print,
    force: bool = False,
) -> Image:
    """Return the cached image for `settings`, building it first if needed (about 10 minutes)."""
    cache_root = Path(cache_root) if cache_root is not None else default_cache_root()
    cache_root.mkdir(parents=True, exist_ok=True)
    settings.suite_info  # noqa: B018 - validates the suite early
    wheels = fetch_wheels(settings, cache_root, log)
    key = cache_key(settings, [(w.path.name, w.sha256) for w in wheels])
    folder = cache_root / key
    with _lock(cache_root / f".{key}.lock"):
        if (folder / "image.json").exists() and not force:
            log(f"QEMU image {key} cached in {folder}")
            return Image.load(folder)
        _check_build_host()
        _clean_stale_builds(cache_root)
        tmp = cache_root / f".build-{key}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        try:
            _build(settings, wheels, key, tmp, log)
            if folder.exists():
                old = cache_root / f".old-{key}-{os.getpid()}"
                folder.rename(old)
                shutil.rmtree(old, ignore_errors=True)
            tmp.rename(folder)
        except BaseException:
            _keep_log(tmp, cache_root)
            if os.environ.get("BENCHBOT_QEMU_KEEP_FAILED") == "1":
                log(f"build failed; kept {tmp} for inspection (BENCHBOT_QEMU_KEEP_FAILED=1)")
            else:
                log(f"build failed; log kept as {cache_root / 'last-failed-build.log'}")
                shutil.rmtree(tmp, ignore_errors=True)
            raise
    image = Image.load(folder)
    image.fresh = True
    log(f"QEMU image {key} built in {image.built_seconds:.0f} s: {folder}")
    return image


@contextlib.contextmanager
def _lock(path: Path):  # type: ignore[no-untyped-def]
    """Serialise builds of the same key (two CLIs started at once would otherwise build twice)."""
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _keep_log(tmp: Path, cache_root: Path) -> None:
    log_file = tmp / "build.log"
    if log_file.exists():
        shutil.copy(log_file, cache_root / "last-failed-build.log")


def _clean_stale_builds(cache_root: Path) -> None:
    """Remove temporary build folders left by killed builds (their pid is gone)."""
    for path in cache_root.glob(".build-*-*"):
        pid = path.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(path, ignore_errors=True)


_HOOK = """#!/bin/sh
# mmdebstrap essential hook: runs before the kernel is installed, so its initramfs is built small.
set -eu
mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/etc/initramfs-tools/hooks"
echo MODULES=list > "$1/etc/initramfs-tools/conf.d/benchbot"
cat > "$1/etc/initramfs-tools/hooks/benchbot-virtio" <<'EOF'
#!/bin/sh
case "$1" in prereqs) echo ""; exit 0;; esac
. /usr/share/initramfs-tools/hook-functions
for m in {modules}; do force_load "$m"; done
EOF
chmod 0755 "$1/etc/initramfs-tools/hooks/benchbot-virtio"
"""

_SSHD_CONFIG = """# benchbot: key-only logins, one baked ed25519 host key, no DNS lookups.
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
"""

_NETWORK = """[Match]
Name=eth0

[Network]
DHCP=ipv4
LinkLocalAddressing=no
IPv6AcceptRA=no
"""

KERNEL_CMDLINE = "root=/dev/vda rw console=ttyAMA0 net.ifnames=0 fsck.mode=skip"


def _build(
    settings: ImageSettings, wheels: list[Wheel], key: str, tmp: Path, log: Callable[[str], None]
) -> Image:
    started = time.monotonic()
    logfile = tmp / "build.log"
    root = tmp / "rootfs"
    hook = tmp / "essential-hook.sh"
    hook.write_text(_HOOK.replace("{modules}", " ".join(INITRAMFS_MODULES)))
    hook.chmod(0o755)

    log(f"building QEMU image {key}: mmdebstrap arm64 {settings.suite} (about 8 minutes; log: {logfile})")
    argv = ["mmdebstrap", "--mode=root", "--arch=arm64", "--variant=apt", "--format=directory",
            f"--include={','.join(settings.packages)}", f"--essential-hook={hook}"]
    argv += [f"--dpkgopt={opt}" for opt in DPKG_EXCLUDES]
    argv += [settings.suite, str(root), settings.mirror]
    t0 = time.monotonic()
    _run_logged(argv, logfile, "mmdebstrap")
    mmdebstrap_s = time.monotonic() - t0
    log(f"mmdebstrap done in {mmdebstrap_s:.0f} s")

    user_key, host_pub = _make_keys(tmp, root, log)
    _configure_guest(root, tmp, log)
    installed = _install_wheels(settings, wheels, root, log)
    imports = _check_imports(root, installed, log)

    kernel, initrd, kver = _copy_boot_files(root, tmp)
    manifest = {
        "suite": settings.suite,
        "mirror": settings.mirror,
        "packages": list(settings.packages),
        "debian_versions": _dpkg_versions(root, ["python3", "python3-numpy", "python3-psutil",
                                                 "openssh-server", "systemd", f"linux-image-{kver}"]),
        "kernel": kver,
        "initramfs_modules": list(INITRAMFS_MODULES),
        "wheels": [{"file": w.path.name, "sha256": w.sha256} for w in wheels],
        "installed_wheels": {w.project: w.version for w in installed},
        "imports": imports,
        "build_version": BUILD_VERSION,
        "mmdebstrap_seconds": round(mmdebstrap_s, 1),
    }
    disk = _make_disk(root, tmp, settings.free_space_mib, logfile, log)
    shutil.rmtree(root)
    image = Image(
        folder=tmp, disk=disk, kernel=kernel, initrd=initrd, user_key=user_key, host_pubkey=host_pub,
        guest_python=GUEST_PYTHON, user="root", key=key, kernel_cmdline=KERNEL_CMDLINE,
        built_seconds=round(time.monotonic() - started, 1), manifest=manifest,
    )
    (tmp / "image.json").write_text(json.dumps(image.to_json(), indent=2) + "\n")
    return image


def _make_keys(tmp: Path, root: Path, log: Callable[[str], None]) -> tuple[Path, Path]:
    """Host key and user key made on the host: the client can then pin the host key, no TOFU."""
    user_key = tmp / "id_ed25519"
    host_key = tmp / "ssh_host_ed25519_key"
    for path, comment in ((user_key, "benchbot-user"), (host_key, "benchbot-qemu-host")):
        argv = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)]
        _run(argv, log, "ssh-keygen")
    user_key.chmod(0o600)
    ssh_dir = root / "etc" / "ssh"
    for old in ssh_dir.glob("ssh_host_*"):
        old.unlink()
    shutil.copy(host_key, ssh_dir / "ssh_host_ed25519_key")
    (ssh_dir / "ssh_host_ed25519_key").chmod(0o600)
    shutil.copy(host_key.with_suffix(".pub"), ssh_dir / "ssh_host_ed25519_key.pub")
    host_key.unlink()  # only the guest needs the private half; it lives in the disk image
    return user_key, host_key.with_suffix(".pub")


#: A clean environment for guest commands (the host's PATH and locale mean nothing in there); the
#: PATH also finds the host's chroot in /usr/sbin.
_CHROOT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "HOME": "/root"}


def _chroot(root: Path, argv: list[str], log: Callable[[str], None], what: str) -> str:
    """Run an arm64 command inside the tree (through qemu-user binfmt)."""
    return _run(["chroot", str(root), *argv], log, what, env=_CHROOT_ENV)


def _configure_guest(root: Path, tmp: Path, log: Callable[[str], None]) -> None:
    """SSH access, network by DHCP on eth0, and a boot with nothing unneeded in it."""
    (root / "etc" / "hostname").write_text(GUEST_HOSTNAME + "\n")
    (root / "etc" / "hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {GUEST_HOSTNAME}\n")
    (root / "etc" / "fstab").write_text("/dev/vda / ext4 rw,noatime,errors=remount-ro 0 0\n")
    resolv = root / "etc" / "resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()
    resolv.write_text("nameserver 10.0.2.3\n")  # QEMU user-mode networking's DNS forwarder
    (root / "etc" / "ssh" / "sshd_config.d" / "benchbot.conf").write_text(_SSHD_CONFIG)
    netdir = root / "etc" / "systemd" / "network"
    netdir.mkdir(parents=True, exist_ok=True)
    (netdir / "20-benchbot-eth0.network").write_text(_NETWORK)
    # Debian's unit runs `sshd -t` before sshd: one more sshd start, seconds under emulation.
    ssh_dropin = root / "etc" / "systemd" / "system" / "ssh.service.d"
    ssh_dropin.mkdir(parents=True, exist_ok=True)
    (ssh_dropin / "benchbot.conf").write_text("[Service]\nExecStartPre=\n")
    journald = root / "etc" / "systemd" / "journald.conf.d"
    journald.mkdir(parents=True, exist_ok=True)
    (journald / "benchbot.conf").write_text("[Journal]\nStorage=volatile\n")

    pub = (tmp / "id_ed25519.pub").read_text()
    _chroot(root, ["useradd", "--create-home", "--shell", "/bin/bash", "bench"], log, "useradd bench")
    for home, owner in ((root / "root", "root"), (root / "home" / "bench", "bench")):
        ssh = home / ".ssh"
        ssh.mkdir(mode=0o700, exist_ok=True)
        (ssh / "authorized_keys").write_text(pub)
        (ssh / "authorized_keys").chmod(0o600)
        _chroot(root, ["chown", "-R", f"{owner}:{owner}", f"/{home.relative_to(root)}/.ssh"], log, "chown")
    _chroot(root, ["systemctl", "enable", "systemd-networkd.service", "ssh.service"], log, "systemctl enable")
    _chroot(root, ["systemctl", "mask", *MASKED_UNITS], log, "systemctl mask")
    _chroot(root, ["systemctl", "set-default", "multi-user.target"], log, "systemctl set-default")


def _install_wheels(
    settings: ImageSettings, wheels: list[Wheel], root: Path, log: Callable[[str], None]
) -> list[Wheel]:
    """Create the guest venv (seeing Debian's numpy) and unpack the wheels into it from the host.

    pip runs natively on the host with the guest's platform tags: the same files as an install inside
    the guest, minutes faster than pip under emulation.
    """
    info = settings.suite_info
    _chroot(root, ["python3", "-m", "venv", "--without-pip", "--system-site-packages", GUEST_VENV], log,
            "python3 -m venv")
    site = root / GUEST_VENV.lstrip("/") / "lib" / f"python{info.python}" / "site-packages"
    if not site.is_dir():
        raise ImageBuildError(f"the guest venv has no {site}")
    to_install = [w for w in wheels if w.project not in DEBIAN_PROVIDED]
    if not to_install:
        return []
    log(f"installing {len(to_install)} wheels into {GUEST_VENV}: "
        + ", ".join(f"{w.project} {w.version}" for w in to_install))
    with tempfile.TemporaryDirectory(prefix="benchbot-wheels-") as scratch:
        argv = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-deps",
                "--no-index", "--no-compile", "--only-binary=:all:", "--implementation", "cp",
                "--python-version", info.python, "--abi", f"cp{info.python.replace('.', '')}",
                "--target", scratch]
        for tag in _platform_tags(info.glibc):
            argv += ["--platform", tag]
        argv += [str(w.path) for w in to_install]
        _run(argv, log, "pip install of the guest wheels")
        scripts = Path(scratch) / "bin"
        guest_bin = root / GUEST_VENV.lstrip("/") / "bin"
        if scripts.is_dir():
            for script in scripts.iterdir():
                _move_script(script, guest_bin / script.name)
            shutil.rmtree(scripts)
        for item in Path(scratch).iterdir():
            shutil.move(str(item), site / item.name)
    # Byte-compile now, in the guest's own python, so each VM does not compile on first import.
    _chroot(root, ["python3", "-m", "compileall", "-q", "-j", "0", f"{GUEST_VENV}/lib"], log, "compileall")
    return to_install


def _move_script(src: Path, dest: Path) -> None:
    """Console scripts carry the host python in their shebang; point them at the guest venv."""
    data = src.read_bytes()
    if data.startswith(b"#!"):
        first, _, rest = data.partition(b"\n")
        if b"python" in first:
            data = f"#!{GUEST_PYTHON}\n".encode() + rest
    dest.write_bytes(data)
    dest.chmod(0o755)


def _check_imports(root: Path, installed: list[Wheel], log: Callable[[str], None]) -> dict[str, str]:
    """Import each runtime once under qemu-user: a wheel that cannot load shows up at build time."""
    modules = {"tflite-runtime": "tflite_runtime.interpreter", "ai-edge-litert": "ai_edge_litert.interpreter"}
    results: dict[str, str] = {}
    for wheel in installed:
        module = modules.get(wheel.project)
        if module is None:
            continue
        proc = subprocess.run(
            ["chroot", str(root), GUEST_PYTHON, "-c", f"import {module}, numpy; print(numpy.__version__)"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_CHROOT_ENV,
        )
        lines = proc.stdout.strip().splitlines()
        error = lines[-1] if lines else f"exit {proc.returncode}"
        results[module] = "ok" if proc.returncode == 0 else f"error: {error}"
        log(f"import {module} in the guest tree: {results[module]}")
    return results


def _copy_boot_files(root: Path, tmp: Path) -> tuple[Path, Path, str]:
    """Kernel and initrd go next to the disk: QEMU boots them directly, no firmware, no bootloader."""
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise ImageBuildError("no kernel in /boot of the guest tree (linux-image-arm64 not installed?)")
    kver = kernels[-1].name.removeprefix("vmlinuz-")
    initrd_src = root / "boot" / f"initrd.img-{kver}"
    if not initrd_src.exists():
        raise ImageBuildError(f"no initrd for kernel {kver} in the guest tree")
    kernel, initrd = tmp / "vmlinuz", tmp / "initrd.img"
    shutil.copy(kernels[-1], kernel)
    shutil.copy(initrd_src, initrd)
    return kernel, initrd, kver


def _dpkg_versions(root: Path, names: list[str]) -> dict[str, str]:
    status = (root / "var" / "lib" / "dpkg" / "status").read_text()
    versions: dict[str, str] = {}
    for block in status.split("\n\n"):
        pkg = re.search(r"^Package: (\S+)$", block, re.M)
        ver = re.search(r"^Version: (\S+)$", block, re.M)
        if pkg and ver and pkg.group(1) in names:
            versions[pkg.group(1)] = ver.group(1)
    return versions


def _tree_size(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def _make_disk(root: Path, tmp: Path, free_mib: int, logfile: Path, log: Callable[[str], None]) -> Path:
    """ext4 straight from the tree (no loop mount, no root needed for this step), then qcow2 as the base."""
    size_mib = int(_tree_size(root) * 1.15 / 2**20) + 64 + free_mib
    raw = tmp / "disk.raw"
    log(f"making a {size_mib} MiB ext4 disk")
    _run_logged(["mkfs.ext4", "-q", "-F", "-L", "benchbot-root", "-d", str(root), str(raw), f"{size_mib}M"],
                logfile, "mkfs.ext4")
    disk = tmp / "disk.qcow2"
    _run_logged(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(disk)], logfile, "qemu-img")
    raw.unlink()
    return disk
