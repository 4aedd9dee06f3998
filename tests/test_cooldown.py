"""Cooldown between cells. Temperatures cannot be set on this machine, so a stub transport answers the
agent's `temp` command with scripted readings (in the agent's own line format); the loop is the real one."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from benchbot.plan import Plan, Settings
from benchbot.profiles import profile_from_dict
from benchbot.progress import QuietProgress
from benchbot.runner import Runner
from benchbot.transport.base import CommandResult, Transport


class ScriptedTemperatures(Transport):
    def __init__(self, readings: list[float | None]) -> None:
        super().__init__()
        self.readings = list(readings)
        self.asked = 0

    def open(self) -> None: ...
    def close(self) -> None: ...
    def push(self, local: Path, sha256: str) -> str:
        return str(local)

    def run(self, argv: list[str], stdin: bytes, on_line: Callable[[str], None], deadline_s: float) -> CommandResult:
        assert argv[-1] == "temp"
        self.asked += 1
        value = self.readings.pop(0) if len(self.readings) > 1 else self.readings[0]
        temps = {"cpu-thermal": value} if value is not None else None
        on_line(json.dumps({"event": "temp", "temps_c": temps, "vc_temp_c": None}))
        return CommandResult(returncode=0)


def make_runner(cooldown_max_s: float) -> tuple[Runner, object]:
    profile = profile_from_dict({"bench": {"cooldown_max_s": cooldown_max_s, "cooldown_margin_c": 3.0}}, "pi")
    writer = SimpleNamespace(run_id="r", folder=Path("."))  # the cooldown loop stores nothing
    runner = Runner(Plan([profile], [], Settings()), writer=writer, progress=QuietProgress())  # type: ignore[arg-type]
    runner.cooldown_poll_s = 0.01
    runner.progress.add_device("pi", 1)
    return runner, profile


def test_waits_until_back_near_idle() -> None:
    runner, profile = make_runner(60)
    transport = ScriptedTemperatures([71.0, 62.5, 55.0, 50.9, 40.0])
    runner._cooldown(profile, transport, "python3", "agent.py", idle=48.0)
    assert transport.asked == 4  # 50.9 <= 48 + 3 ends the wait; 40.0 is never read


def test_gives_up_at_the_profile_limit() -> None:
    runner, profile = make_runner(0.2)
    transport = ScriptedTemperatures([85.0])
    runner._cooldown(profile, transport, "python3", "agent.py", idle=45.0)
    assert 2 <= transport.asked < 200


def test_no_sensor_means_no_wait() -> None:
    runner, profile = make_runner(60)
    transport = ScriptedTemperatures([None])
    runner._cooldown(profile, transport, "python3", "agent.py", idle=45.0)
    assert transport.asked == 1
    assert runner._temperature(transport, "python3", "agent.py") is None
