"""Device profiles and devices: list, check, trust, set up. Each returns what it found or did."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchbot.devices import CheckResult, TrustResult, check_devices, setup_devices, trust_device
from benchbot.errors import BenchbotError
from benchbot.profiles import Profile

__all__ = ["CheckResult", "DeviceEntry", "TrustResult", "check_devices", "check_error", "init_device", "inventory_devices",
           "list_devices", "setup_devices", "setup_error", "trust_device"]


@dataclass
class DeviceEntry:
    """One profile found: where the device is reached, or why the profile is invalid."""

    name: str
    path: Path
    profile: Profile | None = None
    location: str = ""
    error: str = ""


def list_devices() -> list[DeviceEntry]:
    """Every profile found (bundled and ./device_profiles), by name; an invalid one carries its error."""
    from benchbot.profiles import available_profiles, load_profile, location

    entries = []
    for name, path in sorted(available_profiles().items()):
        try:
            profile = load_profile(str(path))
        except BenchbotError as exc:
            entries.append(DeviceEntry(name, path, error=str(exc)))
            continue
        entries.append(DeviceEntry(name, path, profile, location(profile)))
    return entries


def init_device(name: str, source: str, force: bool = False) -> Path:
    """Write an editable copy of profile SOURCE as ./device_profiles/NAME.toml; returns its path."""
    from benchbot.profiles import init_profile

    return init_profile(name, source, force)


def inventory_devices(inventory: str, names: list[str] | None = None, base_profile: str | None = None
                      ) -> list[Profile]:
    """The devices an Ansible inventory resolves to (its hosts, or only the groups/hosts named)."""
    from benchbot.inventory import inventory_devices as resolve

    return resolve(inventory, names, base_profile)


def setup_error(failed: dict[str, str], names: list[str]) -> BenchbotError | None:
    """The error a setup of `names` ends with: one device's own reason, or a count (None when all worked)."""
    if not failed:
        return None
    if len(failed) == 1 and len(names) == 1:
        return BenchbotError(next(iter(failed.values())))
    return BenchbotError(f"setup failed on {len(failed)} of {len(names)} devices: {', '.join(failed)}")


def check_error(results: list[Any]) -> BenchbotError | None:
    """The error a check ends with when any device failed it."""
    failed = [r.name for r in results if not r.ok]
    if not failed:
        return None
    return BenchbotError(f"{len(failed)} of {len(results)} device(s) failed the check: {', '.join(failed)}")
