"""Injectable time: `now()` and `sleep()`, so tests move time instead of waiting for it.

>>> clock = ManualClock()
>>> await clock.sleep(30)      # returns at once; clock.now() advanced by 30
>>> clock.now()
30.0
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    """Monotonic seconds (`now`), wall-clock seconds (`wall`) and an async `sleep`."""

    def now(self) -> float: ...

    def wall(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    # The builtins themselves, not methods calling them: every layer reads the clock.
    now = staticmethod(time.monotonic)
    wall = staticmethod(time.time)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


SYSTEM_CLOCK = SystemClock()


class ManualClock:
    """A clock that only moves when told: `sleep` advances it instantly and records the wait.

    `sleeps` lists every requested sleep, so a test can assert a backoff schedule.
    """

    def __init__(self, start: float = 0.0, wall_start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._wall_offset = wall_start - start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    def advance(self, seconds: float) -> None:
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.sleeps.append(seconds)
        self._now += seconds
        await asyncio.sleep(0)  # still yield, so other tasks run as they would
