"""The arithmetic of rate limits: sliding windows of what was spent, and the provider's view.

Pure bookkeeping on numbers and a `now` passed in; the caller (`RateLimits`) holds the lock.

    >>> window = SlidingWindow(limit=10)           # 10 per 60 s
    >>> window.spend(now=0.0, amount=10)
    >>> window.delay(now=5.0, amount=1)            # the first spend comes back at 60 s
    55.0
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

__all__ = ["WINDOW_S", "ProviderView", "SlidingWindow", "Slot"]

WINDOW_S = 60.0
_EPSILON = 1e-9
# Spends this close together share one slot of a window (bounded memory per deployment).
_SLOTS_PER_WINDOW = 60


@dataclass(eq=False, slots=True)
class Slot:
    start: float
    last: float
    amount: int
    alive: bool = True


class SlidingWindow:
    """Amounts spent come back `window_s` after they were spent; at most `limit` in any window.

    Spends less than window/60 apart share a slot whose whole amount comes back one
    window after its last spend: a little late, never early.
    """

    __slots__ = ("_slots", "granularity", "limit", "total", "window_s")

    def __init__(self, limit: int, window_s: float = WINDOW_S) -> None:
        self.limit = limit
        self.window_s = window_s
        self.granularity = window_s / _SLOTS_PER_WINDOW
        self.total = 0
        self._slots: deque[Slot] = deque()

    def _expire(self, now: float) -> None:
        slots = self._slots
        while slots and slots[0].last + self.window_s <= now + _EPSILON:
            slot = slots.popleft()
            slot.alive = False
            self.total -= slot.amount

    def used(self, now: float) -> int:
        self._expire(now)
        return self.total

    def delay(self, now: float, amount: int, alone: bool = True) -> float:
        """Seconds until `amount` fits; `alone` says it is one request's (see below)."""
        self._expire(now)
        if self.total + amount <= self.limit:
            return 0.0
        if amount > self.limit:
            if not alone:
                return math.inf  # several requests together: they must go one by one
            # One request larger than the whole limit may go alone, once the window is empty.
            return self._slots[-1].last + self.window_s - now if self._slots else 0.0
        needed = self.total + amount - self.limit
        freed = 0
        for slot in self._slots:
            freed += slot.amount
            if freed >= needed:
                return slot.last + self.window_s - now
        return self.window_s  # not reached: the slots hold `total`

    def spend(self, now: float, amount: int) -> Slot:
        slots = self._slots
        if slots and now - slots[-1].start < self.granularity:
            slot = slots[-1]
            slot.amount += amount
            slot.last = max(slot.last, now)
        else:
            slot = Slot(start=now, last=now, amount=amount)
            slots.append(slot)
        self.total += amount
        return slot

    def correct(self, slot: Slot, delta: int, now: float) -> None:
        """The request used `delta` more (or fewer) than it was charged."""
        if slot.alive:
            delta = max(delta, -slot.amount)
            slot.amount += delta
            self.total += delta
        elif delta > 0:
            self.spend(now, delta)  # its window passed: charge the surplus from now on


class ProviderView:
    """What the provider's headers say is left of one limit until it resets.

    Between headers it is kept current by counting our own sends against it. When the
    reset time passes without news, the full `limit` is assumed back, until the next
    reset estimated from the longest reset the provider ever reported.
    """

    __slots__ = ("limit", "remaining", "reset_at", "reset_hint")

    def __init__(self) -> None:
        self.limit: int | None = None
        self.remaining: float | None = None
        self.reset_at: float | None = None
        self.reset_hint = 0.0

    def _roll(self, now: float) -> None:
        if self.reset_at is None or now < self.reset_at - _EPSILON:
            return
        if self.limit is None:
            self.remaining = None
            self.reset_at = None
        else:
            self.remaining = self.limit
            self.reset_at = now + (self.reset_hint or WINDOW_S)

    def delay(self, now: float, amount: int, alone: bool = True) -> float:
        reset_at = self.reset_at
        if reset_at is not None and now >= reset_at - _EPSILON:
            self._roll(now)
        remaining = self.remaining
        if remaining is None or remaining >= amount:
            return 0.0
        if self.limit is not None and amount > self.limit:
            # One request larger than the provider's whole limit: no wait makes it fit, so
            # it goes now and the provider judges (OpenAI and Groq refuse it as too large,
            # and the router falls back); several together must go one by one.
            return 0.0 if alone else math.inf
        if self.reset_at is None:
            return self.reset_hint or WINDOW_S
        return max(0.0, self.reset_at - now)

    def spend(self, amount: int) -> None:
        if self.remaining is not None:
            self.remaining -= amount

    def update(
        self,
        now: float,
        limit: int | None,
        remaining: int | None,
        reset_s: float | None,
        sent_since: int,
    ) -> None:
        if limit is not None:
            self.limit = limit
        if reset_s is not None:
            self.reset_hint = max(self.reset_hint, reset_s)
        if remaining is None:
            return
        # The provider counted up to this response; what we sent after it is not in there.
        self.remaining = remaining - sent_since
        if reset_s is not None:
            self.reset_at = now + reset_s
        elif self.reset_at is None or self.reset_at <= now:
            self.reset_at = now + (self.reset_hint or WINDOW_S)

    def left(self, now: float) -> int | None:
        self._roll(now)
        return None if self.remaining is None else max(0, math.floor(self.remaining))
