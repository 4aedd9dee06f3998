"""Cooldown between repetitions: wait until a device is back near its idle temperature.

A pure policy: it takes a temperature reader (any callable, e.g. `DeviceSession.temperature`)
and an event to stop early, so it is tested with a list of readings and no device.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

TemperatureReader = Callable[[], "float | None"]


@dataclass(frozen=True)
class CooldownPolicy:
    """Wait at most `max_s` seconds for the temperature to fall to `idle + margin_c`, reading every `poll_s`."""

    max_s: float
    margin_c: float = 3.0
    poll_s: float = 2.0

    @property
    def enabled(self) -> bool:
        return self.max_s > 0

    def cooled(self, temp: float | None, idle: float) -> bool:
        """No sensor (None) counts as cool: there is nothing to wait for."""
        return temp is None or temp <= idle + self.margin_c

    def wait(
        self,
        read: TemperatureReader,
        idle: float,
        stop: threading.Event | None = None,
        on_reading: Callable[[float | None], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> float | None:
        """Read until cool, `max_s` passes or `stop` is set; return the last reading (None if none was taken)."""
        stop = stop or threading.Event()
        begin = clock()
        temp: float | None = None
        while not stop.is_set() and clock() - begin < self.max_s:
            temp = read()
            if on_reading is not None:
                on_reading(temp)
            if self.cooled(temp, idle):
                return temp
            stop.wait(self.poll_s)
        return temp
