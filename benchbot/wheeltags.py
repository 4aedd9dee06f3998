"""Wheels for another machine: which platform tags a Linux device accepts, which wheel files fit it, and
what a runtime requirement names. Shared by offline device setup (devices.py) and the QEMU image build
(qemu/image.py); the parsing is packaging's (tags, wheel file names, requirements), not ours.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import InvalidWheelFilename, NormalizedName, canonicalize_name, parse_wheel_filename

# packaging's own legacy aliases of manylinux_2_X (PEP 600); 2010 and 1 were only ever built for x86.
_LEGACY = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}


def manylinux_platforms(arch: str, glibc: tuple[int, int]) -> list[str]:
    """pip --platform values for a device with this glibc, newest first: pip does not expand them itself.

    packaging computes the same list only for the running interpreter's glibc, so it is spelled out here
    for a foreign one (manylinux_2_17 is the oldest PEP 600 tag, hence the floor)."""
    major, minor = glibc
    tags = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 16, -1)]
    for floor, alias in _LEGACY.items():
        if minor >= floor and (floor == 17 or arch in ("x86_64", "i686")):
            tags.append(f"{alias}_{arch}")
    return tags


def device_tags(python: str, platforms: list[str]) -> list[Tag]:
    """Every wheel tag a CPython `python` ("3.11") on these platforms installs, most specific first."""
    version = tuple(int(x) for x in python.split(".")[:2])
    nodot = "".join(str(x) for x in version)
    return [*cpython_tags(version, abis=[f"cp{nodot}"], platforms=platforms),
            *compatible_tags(version, interpreter=f"cp{nodot}", platforms=platforms)]


@dataclass(frozen=True)
class WheelName:
    """A wheel file name, parsed (project normalised: tflite_runtime -> tflite-runtime)."""

    project: NormalizedName
    version: str
    tags: frozenset[Tag]

    def fits(self, tags: list[Tag]) -> bool:
        return not self.tags.isdisjoint(tags)


def parse_wheel(filename: str) -> WheelName:
    """Raise ValueError for a name that is not a wheel's."""
    try:
        name, version, _build, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename as exc:
        raise ValueError(f"not a wheel file name: {filename!r} ({exc})") from None
    return WheelName(name, str(version), tags)


def parse_requirement(text: str, allowed: tuple[str, ...]) -> tuple[NormalizedName, str]:
    """(project, specifier) of a plain requirement on one of `allowed` (no extras, URL or marker).

    Raise ValueError otherwise; the specifier comes back normalised ('>= 2.13 , <2.15' -> '<2.15,>=2.13')."""
    try:
        req = Requirement(text.strip())
    except InvalidRequirement as exc:
        raise ValueError(str(exc)) from None
    name = canonicalize_name(req.name)
    if name not in allowed or req.extras or req.url or req.marker:
        raise ValueError(f"'{text}' is not a plain requirement on {' or '.join(allowed)}")
    return name, str(req.specifier)
