"""A call's trip to the shared store after it (settle, rate release), sent off the caller's path.

The caller queues its `finish_call` and returns at once; one worker thread per router
takes everything queued and sends it in one round trip (`SharedState.finish_calls`: a
Redis pipeline, one SQLite transaction). A thread, not a loop task: store calls are
synchronous, and one on the loop would stall the caller's next call. Until a settle
lands, its hold stays reserved in the store, so every process sees the worst case
meanwhile (safe for budgets); a rate slot likewise stays taken.

What each queued trip's `then` is told (its result, or `StoreUnavailable`) runs on the
worker thread in the context the trip was queued from, so the events it emits (a budget
alert) reach that request's listeners (`core.events.listen_to_events`); a listener's
`wait`/`wait_async` returns once that has happened. `drain()` waits for everything queued
so far (`router.budgets.status()` and `close()` call it); the worker starts lazily and
stops when idle, so a forked child (gunicorn preload) starts its own, and an `atexit`
hook drains every settler still open (best effort, bounded). A memory store gains
nothing from a thread: its trips run inline.

Nobody wakes the worker per call: a thread woken at the end of a call preempts the caller
for 40-200 us (measured), and one ticking every few ms takes the GIL from every thread in
the process. A trip queued from an event loop (every Router call runs on one) sets a timer
on that loop instead, which wakes the worker only if no call carried the trip by then;
a trip queued elsewhere wakes it at once. The worker otherwise looks at the queue every
`_POLL_S` (a loop closed before its timer fired) and stops after `_IDLE_S` without work.

    >>> settler = Settler(guard)
    >>> settler.submit(CallDone(("h1", specs, 420_000), None, time.time()), then=landed)
    >>> settler.drain(timeout=1.0)          # True: everything queued so far has landed
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..core.events import Deferred, defer
from .guard import StateGuard
from .shared import Account, CallDone, RateDone, Settled, StoreUnavailable

__all__ = ["Riding", "Settler"]

log = logging.getLogger("llmrouter_integrations")

# What a queued trip's `then` receives: the settle's result (None: nothing settled), or
# the failure (the store did not answer: the caller keeps the cost to push later).
Landed = Callable[[Settled | StoreUnavailable | None], None]

_IDLE_S = 2.0  # a worker with nothing to do for this long stops (a new one starts on demand)
_POLL_S = 0.1  # how often a sleeping worker looks at the queue anyway
# How long a queued trip waits for a ride: the next call's trip before it (`take`) carries
# it in the same round trip; after this the worker sends it alone. Anyone waiting for it
# (`drain`, an adapter flushing its call's events) has it sent at once.
_RIDE_S = 0.002
_EXIT_DRAIN_S = 2.0  # at interpreter exit, how long to wait for queued trips

_OPEN: weakref.WeakSet[Settler] = weakref.WeakSet()


@dataclass(slots=True)
class _Queued:
    call: CallDone
    then: Landed | None
    context: contextvars.Context | None
    deferred: Deferred | None
    at: float = 0.0  # when it was queued (time.monotonic())


Riding = list[_Queued]  # queued trips a caller's own store trip carries (`take`, `land`)


class Settler:
    """Sends queued after-call trips from one worker thread (see the module docstring).

    `drain_s` bounds how long `close()` waits for the queue (default: a few store timeouts).

    >>> Settler(StateGuard(RedisState("redis://localhost:6379/0")))
    """

    def __init__(self, guard: StateGuard, *, drain_s: float | None = None) -> None:
        self.guard = guard
        timeout = float(getattr(guard.store, "timeout_s", 1.0))
        self.drain_s = drain_s if drain_s is not None else max(1.0, 4 * timeout)
        self.inline = guard.store.backend == "memory"
        # One lock; the worker sleeps on `_wake`, `drain` callers on `_done`.
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._done = threading.Condition(self._lock)
        self._queue: list[_Queued] = []
        self._queued = 0  # trips queued since the start (or the fork)
        self._landed = 0  # of those, trips sent (or failed) with their `then` done
        self._taken = 0  # of those, trips taken off the queue (always from its head)
        self._worker: threading.Thread | None = None
        self._pid = os.getpid()
        self._closed = False
        self._hurry = False  # someone waits: send what is queued now
        self.batches = 0  # round trips the worker made (for tests and benchmarks)
        self.wakeups = 0  # times the worker woke up (for tests and benchmarks)
        _OPEN.add(self)

    def submit(self, call: CallDone, then: Landed | None = None) -> None:
        """Queue `call`; `then(result)` runs once it landed (or failed), in this context."""
        if self.inline or self._closed:
            self._send([_Queued(call, then, None, None)])
            return
        deferred = defer(self.hurry) if then is not None else None
        context = contextvars.copy_context() if then is not None else None
        queued = _Queued(call, then, context, deferred, time.monotonic())
        with self._lock:
            if self._pid != os.getpid():  # a forked child: the parent's queue is the parent's
                self._forked()
            self._queue.append(queued)
            self._queued += 1
            number = self._queued
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._work, name="llmrouter-settler", daemon=True
                )
                self._worker.start()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._due(number)  # no loop to time it: the worker times it
        else:
            loop.call_later(_RIDE_S, self._due, number)

    def _due(self, number: int) -> None:
        """Trip `number`'s ride window is over: wake the worker unless it was taken."""
        if self._taken >= number:  # carried by a call's trip, or sent: the usual case
            return
        with self._lock:
            if self._taken < number:
                self._wake.notify()

    def take(self) -> Riding:
        """The queued trips, for the caller's own next store trip to carry; it must hand
        them back to `land` with their results (or the failure), whatever happens."""
        if not self._queue or self.inline:
            return []
        with self._lock:
            if self._pid != os.getpid():
                self._forked()
            riding, self._queue = self._queue, []
            self._taken = self._queued
        return riding

    def land(self, riding: Riding, results: Sequence[Settled | StoreUnavailable | None]) -> None:
        """What a store trip that carried `riding` (from `take`) answered for them."""
        self._follow_up(riding, results)
        with self._lock:
            self._landed += len(riding)
            self._done.notify_all()

    def hurry(self) -> None:
        """Send what is queued now, without waiting for a ride."""
        if self._queue:
            with self._lock:
                self._hurry = True
                self._wake.notify()

    @property
    def busy(self) -> bool:
        """Whether trips are queued or being sent."""
        return self._landed < self._queued

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every trip queued so far has landed: False if `timeout` (default
        `drain_s`) ended first. Called from the worker itself, it does not wait."""
        if threading.current_thread() is self._worker:
            return not self.busy
        wait = self.drain_s if timeout is None else timeout
        with self._lock:
            if self._pid != os.getpid():
                self._forked()
            target = self._queued
            if self._landed >= target:
                return True
            self._hurry = True
            self._wake.notify()
            return self._done.wait_for(lambda: self._landed >= target, wait)

    def close(self, timeout: float | None = None) -> bool:
        """Drain, then send later trips inline (a closed router's stragglers)."""
        drained = self.drain(timeout)
        with self._lock:
            self._closed = True
            self._wake.notify()
        _OPEN.discard(self)
        return drained

    def _after_fork(self) -> None:
        # In a forked child: a lock its parent's worker held at that instant would stay
        # held for good (the thread that would release it did not come along).
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._done = threading.Condition(self._lock)
        self._forked()

    def _forked(self) -> None:
        self._queue = []
        self._queued = self._landed = self._taken = 0
        self._worker = None
        self._pid = os.getpid()

    def _work(self) -> None:
        me = threading.current_thread()
        active = time.monotonic()  # when it last found something queued
        while True:
            with self._lock:
                if self._worker is not me:
                    return
                if not (self._hurry or self._closed):
                    # Until the oldest queued trip's ride window ends (woken early by its
                    # timer or by a waiter), else until woken or `_POLL_S`.
                    wait = _POLL_S
                    if self._queue:
                        wait = min(wait, self._queue[0].at + _RIDE_S - time.monotonic())
                    if wait > 0:
                        self._wake.wait(wait)
                    self.wakeups += 1
                now = time.monotonic()
                if not self._queue:
                    if self._closed or now - active >= _IDLE_S:
                        self._worker = None  # a later submit starts a new one
                        return
                    continue
                active = now
                young = now - self._queue[0].at < _RIDE_S
                if young and not (self._hurry or self._closed):
                    continue  # woken early: wait for its ride window to end
                self._hurry = False
                batch, self._queue = self._queue, []
                self._taken = self._queued
            self._send(batch)
            with self._lock:
                self._landed += len(batch)
                self._done.notify_all()

    def _send(self, batch: list[_Queued]) -> None:
        results: list[Settled | StoreUnavailable | None]
        try:
            store = self.guard.store
            if len(batch) == 1:
                only = batch[0].call
                results = [self.guard.run(store.finish_call, only.hold, only.rate, only.now)]
            elif hasattr(store, "finish_calls"):
                results = list(self.guard.run(store.finish_calls, [q.call for q in batch]))
            else:  # a store of an older protocol: one trip each
                calls = [q.call for q in batch]
                results = [self.guard.run(store.finish_call, *_args(c)) for c in calls]
            self.batches += 1
        except StoreUnavailable as error:
            results = [error] * len(batch)
        except Exception as error:  # never into anyone: the costs are kept to push
            log.exception("settling with the shared state failed")
            results = [StoreUnavailable(f"{type(error).__name__}")] * len(batch)
        self._follow_up(batch, results)

    @staticmethod
    def _follow_up(
        batch: list[_Queued], results: Sequence[Settled | StoreUnavailable | None]
    ) -> None:
        for queued, result in zip(batch, results, strict=True):
            try:
                if queued.then is not None:
                    if queued.context is not None:
                        queued.context.run(queued.then, result)
                    else:
                        queued.then(result)
            except Exception:
                log.exception("a settle's follow-up failed")
            finally:
                if queued.deferred is not None:
                    queued.deferred.finish()


def _args(
    call: CallDone,
) -> tuple[tuple[str, Sequence[Account], int | None] | None, RateDone | None, float]:
    return call.hold, call.rate, call.now


@atexit.register
def _drain_at_exit() -> None:
    for settler in list(_OPEN):
        try:
            settler.close(_EXIT_DRAIN_S)
        except Exception:  # pragma: no cover - best effort at exit
            log.exception("draining the settler at exit failed")


def _after_fork_in_child() -> None:
    for settler in list(_OPEN):
        settler._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
