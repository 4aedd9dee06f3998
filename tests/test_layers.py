"""The house rules of issue 14, checked: errors are BenchbotErrors, the CLI imports only the API and the console."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from benchbot import errors

PACKAGE = Path(__file__).resolve().parents[1] / "benchbot"


@pytest.mark.parametrize("name", ["TransportError", "HostKeyChanged", "VMError", "HostSetupError", "ImageBuildError",
                                  "ConversionError", "MissingTensorFlow"])
def test_stage_errors_are_benchbot_errors(name: str) -> None:
    """Callers catch one type (and the CLI prints one line) whatever stage failed."""
    assert issubclass(getattr(errors, name), errors.BenchbotError)


def test_stage_modules_raise_the_shared_classes() -> None:
    from benchbot.models import convert
    from benchbot.qemu import image, vm
    from benchbot.transport import base, hostkeys

    assert base.TransportError is errors.TransportError
    assert hostkeys.HostKeyChangedError is errors.HostKeyChanged
    assert vm.VMError is errors.VMError
    assert (image.HostSetupError, image.ImageBuildError) == (errors.HostSetupError, errors.ImageBuildError)
    assert convert.ConversionError is errors.ConversionError
