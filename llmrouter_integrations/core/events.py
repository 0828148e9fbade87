"""Router events (retry, fallback, circuit change, budget alert, cache hit) and their hub.

>>> router = Router(deployments=[...], on_event=lambda e: print(e.type, e.deployment, e.data))
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EventHandler", "EventHub", "RouterEvent", "listen_to_events"]

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

# Per-request listeners (e.g. a LangChain run's callback manager). A ContextVar reaches
# every layer of one request, and no other request, without threading it through calls.
_request_listeners: ContextVar[tuple[EventHandler, ...]] = ContextVar(
    "llmrouter_request_listeners", default=()
)


@contextmanager
def listen_to_events(handler: EventHandler) -> Iterator[None]:
    """Within the block, `handler` also receives the events of requests made in it.

    >>> with listen_to_events(seen.append):
    ...     await router.acomplete("hi")
    """
    token = _request_listeners.set((*_request_listeners.get(), handler))
    try:
        yield
    finally:
        _request_listeners.reset(token)


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
        for handler in (*self._handlers, *_request_listeners.get()):
            try:
                handler(event)
            except Exception:  # a broken observer must not break a request
                log.exception("router event handler %r failed", handler)
