"""Wheels for another device: platform tags, wheel file names and runtime requirements (packaging's parsing)."""

from __future__ import annotations

import pytest
from packaging.tags import Tag

from benchbot.devices import platform_tags, runtime_requirements
from benchbot.errors import BenchbotError
from benchbot.qemu.image import Wheel, _platform_tags
from benchbot.wheeltags import device_tags, manylinux_platforms, parse_requirement, parse_wheel


def _old_platform_tags(arch: str, minor: int) -> list[str]:
    """The hand-written expansion this module replaced, kept as the reference for the same output."""
    tags = [f"manylinux_2_{m}_{arch}" for m in range(minor, 16, -1)]
    if minor >= 17:
        tags.append(f"manylinux2014_{arch}")
    if arch in ("x86_64", "i686"):
        if minor >= 12:
            tags.append(f"manylinux2010_{arch}")
        if minor >= 5:
            tags.append(f"manylinux1_{arch}")
    return tags


@pytest.mark.parametrize("arch", ["aarch64", "x86_64", "armv7l", "i686"])
@pytest.mark.parametrize("minor", [5, 12, 16, 17, 28, 31, 36])
def test_manylinux_platforms_are_the_same_as_before(arch: str, minor: int) -> None:
    assert manylinux_platforms(arch, (2, minor)) == _old_platform_tags(arch, minor)


def test_device_and_image_platforms_share_one_definition() -> None:
    assert platform_tags("arm64", "glibc", "2.36") == _platform_tags((2, 36)) == manylinux_platforms("aarch64", (2, 36))
    assert platform_tags("x86_64", "glibc", "2.31")[-2:] == ["manylinux2010_x86_64", "manylinux1_x86_64"]
    with pytest.raises(BenchbotError, match="needs a glibc device"):
        platform_tags("aarch64", "musl", "1.2.4")
    with pytest.raises(BenchbotError, match="not a version pip knows"):
        platform_tags("aarch64", "glibc", "3.1")


def test_wheel_fit_follows_the_device_tags() -> None:
    tags = device_tags("3.11", manylinux_platforms("aarch64", (2, 36)))
    assert tags[0] == Tag("cp311", "cp311", "manylinux_2_36_aarch64") and Tag("py3", "none", "any") in tags
    fits = {
        "numpy-1.26.4-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl": True,
        "psutil-5.9.8-cp36-abi3-manylinux_2_17_aarch64.manylinux2014_aarch64.whl": True,
        "flatbuffers-24.3.25-py2.py3-none-any.whl": True,
        "numpy-1.26.4-cp312-cp312-manylinux_2_17_aarch64.whl": False,  # another Python
        "numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64.whl": False,  # another machine
        "ai_edge_litert-2.3.0-cp311-cp311-manylinux_2_38_aarch64.whl": False,  # a newer glibc
    }
    assert {name: parse_wheel(name).fits(tags) for name in fits} == fits


@pytest.mark.parametrize("name", ["x.whl", "numpy-1.0.tar.gz", "numpy-one-cp311-cp311-any.whl", "a b-1.0-py3-none-any.whl"])
def test_a_name_that_is_no_wheel_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not a wheel file name"):
        parse_wheel(name)


def test_image_wheels_name_their_project_normalised(tmp_path) -> None:  # type: ignore[no-untyped-def]
    wheel = Wheel(tmp_path / "tflite_runtime-2.14.0-cp311-cp311-manylinux_2_34_aarch64.whl", "0" * 64)
    assert (wheel.project, wheel.version) == ("tflite-runtime", "2.14.0")
    assert Wheel(tmp_path / "Ai_Edge_LiteRT-2.3.0-cp311-cp311-manylinux_2_17_aarch64.whl", "").project == "ai-edge-litert"


@pytest.mark.parametrize(("given", "expected"), [
    ("ai-edge-litert", ["numpy", "ai-edge-litert", "psutil"]),
    ("AI_Edge.LiteRT", ["numpy", "ai-edge-litert", "psutil"]),
    ("tflite-runtime==2.14.0", ["numpy<2", "tflite-runtime==2.14.0", "psutil"]),
    ("tflite_runtime >= 2.13 , < 2.15", ["numpy<2", "tflite-runtime<2.15,>=2.13", "psutil"]),
    (" ai-edge-litert~=2.3 ", ["numpy", "ai-edge-litert~=2.3", "psutil"]),
])
def test_runtime_requirements(given: str, expected: list[str]) -> None:
    assert runtime_requirements(given) == expected


@pytest.mark.parametrize("given", ["tensorflow", "tflite-runtime[extra]==2.14", "tflite-runtime==",
                                   "tflite-runtime; python_version<'3'", "tflite-runtime @ https://x/y.whl",
                                   "tflite-runtime==2.14 && rm -rf ~", ""])
def test_other_runtimes_are_refused_in_one_sentence(given: str) -> None:
    with pytest.raises(BenchbotError, match="--runtime takes ai-edge-litert or tflite-runtime") as info:
        runtime_requirements(given)
    assert "\n" not in str(info.value)


def test_parse_requirement_names_what_it_refuses() -> None:
    assert parse_requirement("Tflite_Runtime==2.14.0", ("tflite-runtime",)) == ("tflite-runtime", "==2.14.0")
    with pytest.raises(ValueError, match="not a plain requirement on tflite-runtime"):
        parse_requirement("numpy", ("tflite-runtime",))
