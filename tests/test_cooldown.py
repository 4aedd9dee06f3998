"""Cooldown between cells. Temperatures cannot be set on this machine, so a stub transport answers the
agent's `temp` command with scripted readings (in the agent's own line format); the policy and the
session's temperature reader are the real ones."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from benchbot.cooldown import CooldownPolicy
from benchbot.plan import Plan, Settings
from benchbot.profiles import profile_from_dict
from benchbot.progress import QuietProgress
from benchbot.scheduler import Runner
from benchbot.session import DeviceSession
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


def make_policy(cooldown_max_s: float) -> tuple[CooldownPolicy, object]:
    """The policy as the scheduler builds it from a profile (poll interval shortened for the test)."""
    profile = profile_from_dict({"bench": {"cooldown_max_s": cooldown_max_s, "cooldown_margin_c": 3.0}}, "pi")
    writer = SimpleNamespace(run_id="r", folder=Path("."))  # the cooldown loop stores nothing
    runner = Runner(Plan([profile], [], Settings()), writer=writer, progress=QuietProgress())  # type: ignore[arg-type]
    runner.cooldown_poll_s = 0.01
    return runner.cooldown_policy(profile), profile


def session(profile: object, transport: Transport) -> DeviceSession:
    return DeviceSession(profile, transport, python="python3", agent="agent.py")  # type: ignore[arg-type]


def test_waits_until_back_near_idle() -> None:
    policy, profile = make_policy(60)
    transport = ScriptedTemperatures([71.0, 62.5, 55.0, 50.9, 40.0])
    policy.wait(session(profile, transport).temperature, idle=48.0)
    assert transport.asked == 4  # 50.9 <= 48 + 3 ends the wait; 40.0 is never read


def test_gives_up_at_the_profile_limit() -> None:
    policy, profile = make_policy(0.2)
    transport = ScriptedTemperatures([85.0])
    policy.wait(session(profile, transport).temperature, idle=45.0)
    assert 2 <= transport.asked < 200


def test_no_sensor_means_no_wait() -> None:
    policy, profile = make_policy(60)
    transport = ScriptedTemperatures([None])
    policy.wait(session(profile, transport).temperature, idle=45.0)
    assert transport.asked == 1
    assert session(profile, transport).temperature() is None


def test_policy_is_pure_reports_readings_and_stops_on_request() -> None:
    """No device: a list of readings, a fake clock, and the stop event the scheduler sets on Ctrl-C."""
    import threading

    readings = iter([70.0, 60.0, 52.0])
    seen: list[float | None] = []
    policy = CooldownPolicy(max_s=60, margin_c=3.0, poll_s=0.0)
    assert policy.wait(lambda: next(readings), idle=50.0, on_reading=seen.append) == 52.0
    assert seen == [70.0, 60.0, 52.0]
    stop = threading.Event()
    stop.set()
    assert policy.wait(lambda: 99.0, idle=20.0, stop=stop) is None  # stopped before the first reading
    ticks = iter(range(100))
    assert policy.wait(lambda: 99.0, idle=20.0, clock=lambda: float(next(ticks)) * 10) == 99.0  # gives up
    assert not CooldownPolicy(max_s=0).enabled
