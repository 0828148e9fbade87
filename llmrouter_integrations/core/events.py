"""Router events (retry, fallback, circuit change, budget alert, cache hit) and their hub.

>>> router = Router(deployments=[...], on_event=lambda e: print(e.type, e.deployment, e.data))
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Deferred",
    "EventHandler",
    "EventHub",
    "Listening",
    "RouterEvent",
    "defer",
    "listen_to_events",
]

log = logging.getLogger("llmrouter_integrations")


@dataclass(slots=True)
class RouterEvent:
    """Something the router did or saw. `type` is one of: retry, fallback, circuit,
    budget_alert, cache_hit, queued, rate_limited, request_end."""

    type: str
    deployment: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    time: float = 0.0


EventHandler = Callable[[RouterEvent], Any]

# How long a listener waits for its requests' background work (a settle) at most: the
# work itself is bounded by the store's timeout, this only guards against a hang.
_DEFERRED_WAIT_S = 5.0


class Deferred:
    """Work a request left to finish in the background (its settle with the shared store),
    which may still emit events to the request's listeners; `finish()` says it is over."""

    __slots__ = ("_callbacks", "_done", "_hurry", "_lock")

    def __init__(self, hurry: Callable[[], Any] | None = None) -> None:
        self._hurry = hurry  # asks the work to go ahead now (someone is waiting)
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], Any]] = []

    def finish(self) -> None:
        with self._lock:
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # e.g. the waiter's loop closed meanwhile: nobody waits
                log.debug("waking a waiter of background work failed", exc_info=True)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float) -> bool:
        if self._hurry is not None and not self._done.is_set():
            self._hurry()
        return self._done.wait(timeout)

    async def wait_async(self, timeout: float) -> bool:
        if self._hurry is not None and not self._done.is_set():
            self._hurry()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            loop.call_soon_threadsafe(_resolve, future)

        with self._lock:
            if self._done.is_set():
                return True
            self._callbacks.append(wake)
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            return False
        return True


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Listening:
    """One `listen_to_events` block: its handler, and the background work of the requests
    made in it that may still emit events (wait for it before reading what was collected).

    >>> with listen_to_events(seen.append) as listening:
    ...     router.complete("hi")
    >>> listening.wait()          # the call's settle (and its budget alert) has landed
    """

    __slots__ = ("_deferred", "handler")

    def __init__(self, handler: EventHandler) -> None:
        self.handler = handler
        self._deferred: list[Deferred] = []

    def __call__(self, event: RouterEvent) -> Any:
        return self.handler(event)

    def __repr__(self) -> str:
        return repr(self.handler)

    @property
    def pending(self) -> bool:
        """Whether some of the block's requests' background work is not over yet."""
        return bool(self._pending())

    def wait(self, timeout: float = _DEFERRED_WAIT_S) -> bool:
        """Block until the block's requests' background work is over (False: timed out)."""
        ok = True
        for deferred in self._pending():
            ok = deferred.wait(timeout) and ok
        return ok

    async def wait_async(self, timeout: float = _DEFERRED_WAIT_S) -> bool:
        """`wait` for async callers: the loop keeps running meanwhile."""
        ok = True
        for deferred in self._pending():
            ok = await deferred.wait_async(timeout) and ok
        return ok

    def _pending(self) -> list[Deferred]:
        pending = [deferred for deferred in self._deferred if not deferred.done]
        self._deferred = pending
        return pending


# Per-request listeners (e.g. a LangChain run's callback manager). A ContextVar reaches
# every layer of one request, and no other request, without threading it through calls.
_request_listeners: ContextVar[tuple[Listening, ...]] = ContextVar(
    "llmrouter_request_listeners", default=()
)


@contextmanager
def listen_to_events(handler: EventHandler) -> Iterator[Listening]:
    """Within the block, `handler` also receives the events of requests made in it.

    A request may finish work in the background (with `Router(state=...)`, its settle):
    its events still reach `handler`, and the `Listening` this yields waits for them.
    Pass one `Listening` to several blocks to wait for all of their requests' work (a
    stream's chunks may be produced in the context of the block that started it).

    >>> with listen_to_events(seen.append) as listening:
    ...     await router.acomplete("hi")
    >>> await listening.wait_async()
    """
    listening = handler if isinstance(handler, Listening) else Listening(handler)
    token = _request_listeners.set((*_request_listeners.get(), listening))
    try:
        yield listening
    finally:
        _request_listeners.reset(token)


def defer(hurry: Callable[[], Any] | None = None) -> Deferred | None:
    """Register background work of the current request with its listeners (None: it has
    none, so nobody waits); the worker calls `finish()` on it once its events are out,
    and `hurry()` is called when a listener starts waiting for it."""
    listeners = _request_listeners.get()
    if not listeners:
        return None
    deferred = Deferred(hurry)
    for listening in listeners:
        listening._deferred.append(deferred)
    return deferred


class EventHub:
    """Fans events out to every subscriber; a failing subscriber is logged, never raised."""

    def __init__(self, handlers: list[EventHandler] | None = None) -> None:
        self._handlers: list[EventHandler] = list(handlers or [])

    def subscribe(self, handler: EventHandler) -> Callable[[], None]:
        """Add a handler; returns a function that removes it."""
        self._handlers.append(handler)

        def unsubscribe() -> None:
            if handler in self._handlers:
                self._handlers.remove(handler)

        return unsubscribe

    def emit(self, event: RouterEvent) -> None:
        handlers: tuple[EventHandler, ...] = (*self._handlers, *_request_listeners.get())
        for handler in handlers:
            try:
                handler(event)
            except Exception:  # a broken observer must not break a request
                log.exception("router event handler %r failed", handler)
