"""Can this host build and run the emulated arm64 device? Each check names the package that fixes it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
MIN_FREE_GIB = 4.0
"""A build needs the unpacked tree, a raw disk and its qcow2 copy at once."""


def default_cache_root() -> Path:
    """Where images are cached: `${XDG_CACHE_HOME:-~/.cache}/benchbot/qemu` (the disk check looks there)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "benchbot" / "qemu"


@dataclass
class Check:
    """One host requirement and whether it is met."""

    name: str
    ok: bool
    detail: str
    package: str = ""
    """The Debian package that provides it (empty when no package helps)."""
    fix: str = ""
    """A command that fixes it when installing a package is not the fix."""


def _tool(name: str, package: str) -> Check:
    path = shutil.which(name)
    return Check(name, path is not None, path or "not found in PATH", package)


def binfmt_check(binfmt_dir: Path = BINFMT_DIR) -> Check:
    """arm64 binaries must run transparently on the host, or mmdebstrap cannot configure the packages."""
    entry = binfmt_dir / "qemu-aarch64"
    name = "binfmt qemu-aarch64"
    if not (binfmt_dir / "status").exists():
        return Check(name, False, "binfmt_misc is not mounted", "qemu-user-static",
                     "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && update-binfmts --enable "
                     "qemu-aarch64")
    if not entry.exists():
        return Check(name, False, "no qemu-aarch64 entry", "qemu-user-static",
                     "update-binfmts --enable qemu-aarch64")
    text = entry.read_text()
    if not text.startswith("enabled"):
        return Check(name, False, "qemu-aarch64 entry is disabled", "qemu-user-static",
                     "update-binfmts --enable qemu-aarch64")
    fields = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        fields[name.rstrip(":")] = value.strip()
    flags = fields.get("flags", "")
    interp = fields.get("interpreter", "?")
    if "F" not in flags:
        # Without F the interpreter is looked up inside the chroot, where it does not exist.
        return Check(name, False, f"registered without the F flag ({interp})", "qemu-user-static",
                     "update-binfmts --disable qemu-aarch64 && update-binfmts --enable qemu-aarch64")
    return Check(name, True, f"{interp} (flags {flags})", "qemu-user-static")


def _pip_check() -> Check:
    proc = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, text=True)
    detail = proc.stdout.strip() or proc.stderr.strip()[-200:]
    return Check("pip (host python)", proc.returncode == 0, detail, "python3-pip")


def _disk_check(cache_root: Path) -> Check:
    probe = cache_root
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free / 2**30
    detail = f"{free:.1f} GiB free (need {MIN_FREE_GIB})"
    return Check(f"free disk in {cache_root}", free >= MIN_FREE_GIB, detail)


def build_checks() -> list[Check]:
    """What building an image needs (running one needs only qemu-system-aarch64 and qemu-img)."""
    return [
        _tool("mmdebstrap", "mmdebstrap"),
        _tool("arch-test", "arch-test"),
        _tool("qemu-aarch64-static", "qemu-user-static"),
        binfmt_check(),
        _tool("mkfs.ext4", "e2fsprogs"),
        _tool("qemu-img", "qemu-utils"),
        _tool("ssh-keygen", "openssh-client"),
        _tool("chroot", "coreutils"),
        _pip_check(),
    ]


def run_checks() -> list[Check]:
    """What booting and reaching a VM needs."""
    return [
        _tool("qemu-system-aarch64", "qemu-system-arm"),
        _tool("qemu-img", "qemu-utils"),
        _tool("ssh", "openssh-client"),
    ]


def doctor(cache_root: Path | None = None) -> list[Check]:
    """Every check, deduplicated by name, plus free space where images are cached."""
    if cache_root is None:
        cache_root = default_cache_root()
    seen: dict[str, Check] = {}
    for check in [*run_checks(), *build_checks()]:
        seen.setdefault(check.name, check)
    return [*seen.values(), _disk_check(cache_root)]


ALL_PACKAGES = ("qemu-system-arm", "qemu-user-static", "binfmt-support", "mmdebstrap", "arch-test",
                "qemu-utils", "e2fsprogs", "openssh-client")


def install_hint(checks: list[Check] | None = None) -> str:
    """The exact command that fixes the failing checks (all needed packages when none are given)."""
    prefix = "" if os.geteuid() == 0 else "sudo "
    if checks is None:
        packages = list(ALL_PACKAGES)
        fixes: list[str] = []
    else:
        failing = [c for c in checks if not c.ok]
        fixes = [c.fix for c in failing if c.fix]
        packages = []
        for c in failing:
            if c.package and not c.fix and c.package not in packages:
                packages.append(c.package)
        if "qemu-user-static" in packages and "binfmt-support" not in packages:
            packages.append("binfmt-support")
    parts = []
    if packages:
        parts.append(f"{prefix}apt-get install {' '.join(packages)}")
    for fix in fixes:
        parts.append(" && ".join(f"{prefix}{cmd.strip()}" for cmd in fix.split("&&")))
    return " && ".join(parts) if parts else "nothing to install"
