"""A fair waiting line for requests whose candidate deployments are all at their limits.

Waiters go in priority order (higher `request.priority` first), first come first served
within a priority. Capacity comes back in two ways, and both wake the line: a running
request finishes (the limiter calls `notify`), or time passes and a rate window refills.
For the second, exactly one waiter at a time sleeps on the injected clock, until the
earliest moment anything can change (a refill or a waiter's deadline); the others wait
for a wake-up. So a `ManualClock` moves once per real event, and a thousand waiters do
not all wake for each refill.

The line is loop-agnostic: state sits behind a `threading.Lock`, and each waiter is woken
on its own event loop with `call_soon_threadsafe`, so the sync bridge's loop and a user's
loop can share one router.

    >>> queue = RequestQueue(limits, clock=clock, events=hub, max_wait=30)
    >>> grant = await queue.wait_for_capacity(request, ["a", "b"], tokens=900)
    >>> try:
    ...     ...  # send the request; its RateLimitBackend takes the capacity
    ... finally:
    ...     queue.settle(grant)
"""

from __future__ import annotations

import asyncio
import bisect
import enum
import itertools
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..core.clock import SYSTEM_CLOCK, Clock
from ..core.events import EventHub, RouterEvent
from ..costs.tokens import DEFAULT_MAX_OUTPUT_TOKENS, estimate_input_tokens
from ..errors import QueueTimeoutError
from ..types import ChatRequest
from .grants import Claims, Grant

__all__ = [
    "QUEUE_DEFAULT",
    "CapacitySource",
    "Grant",
    "QueueDefault",
    "RequestQueue",
    "request_tokens",
]

_EPSILON = 1e-9


class QueueDefault(enum.Enum):
    """The type of `QUEUE_DEFAULT`: "the queue's own max_wait", distinct from None (no limit)."""

    TOKEN = 0


QUEUE_DEFAULT = QueueDefault.TOKEN


def request_tokens(request: ChatRequest) -> int:
    """Tokens a request may use: estimated prompt plus `max_tokens` (or the default ceiling).

    >>> request_tokens(ChatRequest(messages=[Message(role="user", content="hi")], max_tokens=50))
    58
    """
    return estimate_input_tokens(request) + (request.max_tokens or DEFAULT_MAX_OUTPUT_TOKENS)


class CapacitySource(Protocol):
    """What the line needs from a limiter (`RateLimits` is one)."""

    def delay(self, name: str, tokens: int, *, requests: int = 1) -> float:
        """Seconds until `requests` requests totalling `tokens` may go (inf: after a release)."""
        ...

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` whenever capacity may have come back; returns an unsubscribe."""
        ...


@dataclass(eq=False, slots=True)
class _Waiter:
    order: tuple[int, int]  # (-priority, arrival): the line's sort key
    priority: int
    candidates: tuple[str, ...]
    tokens: int
    deadline: float
    enqueued_at: float
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None] | None = None
    grant: Grant | None = None
    expired: bool = False
    in_line: bool = True


@dataclass(slots=True)
class _Stats:
    queued_total: int = 0
    granted: int = 0
    timeouts: int = 0
    cancelled: int = 0
    total_wait_s: float = 0.0
    max_wait_s: float = 0.0
    max_depth: int = 0
    by_deployment: dict[str, int] = field(default_factory=dict)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _wake(waiter: _Waiter) -> None:
    future = waiter.future
    if future is None or future.done():
        return
    loop = waiter.loop
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        loop.call_soon(_resolve, future)
    elif not loop.is_closed():
        loop.call_soon_threadsafe(_resolve, future)


class RequestQueue:
    """Fair, loop-agnostic waiting for capacity on any of a request's candidate deployments.

    `max_wait` (seconds, None for no limit) is the default longest wait; a request's own
    `deadline` also bounds it. Every `Grant` returned must be `settle`d once the request
    has taken (or given up) the capacity.

        >>> queue = RequestQueue(limits, max_wait=10)
        >>> queue.depth(), queue.depth("openai/gpt-4o-mini"), queue.stats()["timeouts"]
    """

    def __init__(
        self,
        limits: CapacitySource,
        *,
        clock: Clock = SYSTEM_CLOCK,
        events: EventHub | None = None,
        max_wait: float | None = 60.0,
    ) -> None:
        self.limits = limits
        self.clock = clock
        self.events = events
        self.max_wait = max_wait
        self._lock = threading.Lock()
        self._waiters: list[_Waiter] = []  # sorted by _Waiter.order
        self._by_name: dict[str, int] = {}
        self._claims = Claims()
        self._arrivals = itertools.count()
        self._timer_owner: _Waiter | None = None
        self._timer_at = math.inf
        self._next_at = math.inf
        self._stats = _Stats()
        self._unsubscribe = limits.subscribe(self.notify)

    # -- what health() and events show ---------------------------------------------------

    def depth(self, name: str | None = None) -> int:
        """Requests waiting now: all of them, or those that could use deployment `name`."""
        with self._lock:
            if name is None:
                return len(self._waiters)
            return self._by_name.get(name, 0)

    def has_waiters(self, name: str) -> bool:
        """True when someone is already waiting for `name` (a newcomer must not jump ahead)."""
        return self._by_name.get(name, 0) > 0

    def stats(self) -> dict[str, Any]:
        """Depth now and since start: waits, timeouts, mean and longest wait in seconds."""
        with self._lock:
            s = self._stats
            waited = s.granted + s.timeouts + s.cancelled
            return {
                "depth": len(self._waiters),
                "max_depth": s.max_depth,
                "queued_total": s.queued_total,
                "granted": s.granted,
                "timeouts": s.timeouts,
                "cancelled": s.cancelled,
                "mean_wait_s": s.total_wait_s / waited if waited else 0.0,
                "max_wait_s": s.max_wait_s,
                "queued_by_deployment": dict(s.by_deployment),
            }

    # -- waiting ----------------------------------------------------------------------------

    async def wait_for_capacity(
        self,
        request: ChatRequest,
        candidate_names: Sequence[str],
        tokens: int,
        *,
        max_wait: float | QueueDefault | None = QUEUE_DEFAULT,
        give_up_early: bool = False,
    ) -> Grant | None:
        """Return once one of `candidate_names` has room for this request and it is its turn.

        Returns the `Grant` (capacity promised on one deployment), to be `settle`d; None
        when there is no candidate at all. Raises `QueueTimeoutError` when `max_wait`
        (default: the queue's) or `request.deadline` passes first. With `give_up_early`
        it raises as soon as the soonest possible refill is past the deadline, so the
        fallback can move on without waiting for nothing.
        """
        names = tuple(dict.fromkeys(candidate_names))
        if not names:
            return None
        limit = self.max_wait if isinstance(max_wait, QueueDefault) else max_wait
        now = self.clock.now()
        deadline = math.inf if limit is None else now + limit
        if request.deadline is not None:
            deadline = min(deadline, request.deadline)
        loop = asyncio.get_running_loop()
        with self._lock:
            if all(self._by_name.get(n, 0) == 0 for n in names):
                grant = self._grant_now(names, tokens, now)
                if grant is not None:
                    return grant
            waiter = _Waiter(
                order=(-request.priority, next(self._arrivals)),
                priority=request.priority,
                candidates=names,
                tokens=tokens,
                deadline=deadline,
                enqueued_at=now,
                loop=loop,
            )
            self._enter(waiter)
        return await self._wait(waiter, give_up_early)

    def try_grant(self, candidate_names: Sequence[str], tokens: int) -> Grant | None:
        """A `Grant` right now when nobody is waiting and a candidate has room, else None.

        Never waits: for the usual case, with no deadline, loop or waiter to set up; when
        it returns None, `wait_for_capacity` decides (it may still grant at once).

            >>> grant = queue.try_grant(["a", "b"], 900) or await queue.wait_for_capacity(...)
        """
        if self._waiters:
            return None
        now = self.clock.now()
        with self._lock:
            if self._waiters:
                return None
            return self._grant_now(candidate_names, tokens, now)

    def _grant_now(self, names: Sequence[str], tokens: int, now: float) -> Grant | None:
        """The fast path, under the lock: the first candidate with room, claimed at once."""
        pending = self._claims.pending(now)
        for name in names:
            requests, claimed_tokens = pending.get(name, (0, 0))
            if self.limits.delay(name, claimed_tokens + tokens, requests=requests + 1) <= 0:
                return self._claims.claim(name, tokens, now)
        return None

    async def _wait(self, waiter: _Waiter, give_up_early: bool) -> Grant | None:
        announced = False
        outcome = "cancelled"
        try:
            while True:
                self._dispatch()
                with self._lock:
                    if waiter.grant is not None:
                        outcome = "granted"
                        return waiter.grant
                    now = self.clock.now()
                    if waiter.expired or now >= waiter.deadline - _EPSILON:
                        outcome = "timeout"
                        raise self._timeout(waiter, now)
                    if give_up_early and self._hopeless(waiter, now):
                        outcome = "timeout"
                        raise self._timeout(waiter, now, early=True)
                    future: asyncio.Future[None] = waiter.loop.create_future()
                    waiter.future = future
                    sleep_for: float | None = None
                    if self._timer_owner is None:
                        self._timer_owner = waiter
                        self._timer_at = self._next_at
                        sleep_for = max(0.0, self._next_at - now)
                if not announced:
                    announced = True
                    self._emit(waiter, "waiting")
                try:
                    await self._sleep_or_wake(future, sleep_for)
                finally:
                    with self._lock:
                        if self._timer_owner is waiter:
                            self._timer_owner = None
                            self._timer_at = math.inf
        finally:
            self._leave(waiter, outcome, announced)

    def _hopeless(self, waiter: _Waiter, now: float) -> bool:
        """No candidate can refill before the deadline, whatever the rest of the line does."""
        soonest = min(self.limits.delay(n, waiter.tokens) for n in waiter.candidates)
        return math.isfinite(soonest) and now + soonest > waiter.deadline + _EPSILON

    async def _sleep_or_wake(self, future: asyncio.Future[None], seconds: float | None) -> None:
        if seconds is None or math.isinf(seconds):
            await future
            return
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        try:
            await asyncio.wait((future, sleeper), return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not sleeper.done():
                sleeper.cancel()

    def _timeout(self, waiter: _Waiter, now: float, *, early: bool = False) -> QueueTimeoutError:
        waited = now - waiter.enqueued_at
        names = ", ".join(waiter.candidates)
        if early:
            why = "no capacity can come back before the deadline"
        else:
            why = f"still no capacity after waiting {waited:.3g}s"
        return QueueTimeoutError(f"request queue: {why} (deployments: {names})")

    # -- the line itself (all under self._lock) -----------------------------------------------

    def _enter(self, waiter: _Waiter) -> None:
        bisect.insort(self._waiters, waiter, key=lambda w: w.order)
        for name in waiter.candidates:
            self._by_name[name] = self._by_name.get(name, 0) + 1
            self._stats.by_deployment[name] = self._stats.by_deployment.get(name, 0) + 1
        self._stats.queued_total += 1
        self._stats.max_depth = max(self._stats.max_depth, len(self._waiters))

    def _forget(self, waiter: _Waiter) -> None:
        if not waiter.in_line:
            return
        waiter.in_line = False
        for name in waiter.candidates:
            left = self._by_name.get(name, 0) - 1
            if left > 0:
                self._by_name[name] = left
            else:
                self._by_name.pop(name, None)

    def _leave(self, waiter: _Waiter, outcome: str, announced: bool) -> None:
        with self._lock:
            if waiter.in_line:
                self._forget(waiter)
                self._waiters = [w for w in self._waiters if w is not waiter]
            if outcome != "granted" and waiter.grant is not None:
                # Cancelled right after being granted: hand the capacity back.
                self._claims.release(waiter.grant)
            waited = self.clock.now() - waiter.enqueued_at
            stats = self._stats
            if outcome == "granted":
                stats.granted += 1
            elif outcome == "timeout":
                stats.timeouts += 1
            else:
                stats.cancelled += 1
            stats.total_wait_s += waited
            stats.max_wait_s = max(stats.max_wait_s, waited)
        if announced:
            self._emit(waiter, outcome, waited)
        self._dispatch()

    def _dispatch(self) -> None:
        """Grant capacity in line order; expire waiters; make sure someone keeps time."""
        to_wake: list[_Waiter] = []
        with self._lock:
            if not self._waiters:
                self._next_at = math.inf
                return
            now = self.clock.now()
            pending = self._claims.pending(now)
            blocked: set[str] = set()
            still: list[_Waiter] = []
            next_at = math.inf
            for waiter in self._waiters:
                soonest = math.inf
                for name in waiter.candidates:
                    if name in blocked:
                        continue
                    requests, tokens = pending.get(name, (0, 0))
                    wait = self.limits.delay(name, tokens + waiter.tokens, requests=requests + 1)
                    if wait <= 0:
                        waiter.grant = self._claims.claim(name, waiter.tokens, now)
                        pending[name] = (requests + 1, tokens + waiter.tokens)
                        break
                    if requests:
                        # Held back by grants not yet taken: they settle soon (waking the
                        # line); the timer only needs this waiter's own refill time, or the
                        # moment those claims lapse if it could go alone right now.
                        wait = self.limits.delay(name, waiter.tokens)
                        if wait <= 0:
                            wait = self._claims.lapse_in(name, now) or _EPSILON
                    soonest = min(soonest, wait)
                if waiter.grant is not None or now >= waiter.deadline - _EPSILON:
                    waiter.expired = waiter.grant is None  # capacity at the deadline still wins
                    self._forget(waiter)
                    to_wake.append(waiter)
                    continue
                # Whoever waits first keeps its deployments: later, smaller requests may
                # not slip past it (strict order within a priority, none starves).
                blocked.update(waiter.candidates)
                next_at = min(next_at, now + soonest, waiter.deadline)
                still.append(waiter)
            self._waiters = still
            self._next_at = next_at
            owner = self._timer_owner
            if owner is not None and not owner.in_line:
                self._timer_owner = owner = None
                self._timer_at = math.inf
            if still and owner is None:
                to_wake.append(still[0])  # it becomes the one that sleeps until next_at
            elif owner is not None and next_at < self._timer_at - _EPSILON:
                to_wake.append(owner)  # something can happen sooner: re-arm its timer
        for waiter in to_wake:
            _wake(waiter)

    # -- signals from outside ---------------------------------------------------------------

    def notify(self) -> None:
        """Capacity may have come back (a request finished, headers arrived): re-check."""
        if self._waiters:
            self._dispatch()

    def settle(self, grant: Grant | None) -> None:
        """The granted request took its capacity, or will not: stop holding it back."""
        if grant is None or grant.settled:  # settled stays settled: no lock needed
            return
        with self._lock:
            released = self._claims.release(grant)
        if released and self._waiters:
            self._dispatch()

    def close(self) -> None:
        """Stop listening to the limiter (waiters still in line time out as usual)."""
        self._unsubscribe()

    def _emit(self, waiter: _Waiter, state: str, waited: float | None = None) -> None:
        if self.events is None:
            return
        data: dict[str, Any] = {
            "state": state,
            "depth": len(self._waiters),
            "priority": waiter.priority,
            "candidates": list(waiter.candidates),
        }
        if waited is not None:
            data["waited_s"] = waited
        if waiter.grant is not None:
            data["granted"] = waiter.grant.deployment
        single = waiter.candidates[0] if len(waiter.candidates) == 1 else None
        self.events.emit(
            RouterEvent(type="queued", deployment=single, data=data, time=self.clock.wall())
        )
