"""Router events (retry, fallback, budget alert, cost...) as LlamaIndex instrumentation events.

Any LlamaIndex event handler can subscribe to them; `RouterCostEventHandler` totals cost:

    >>> from llama_index.core.instrumentation import get_dispatcher
    >>> costs = RouterCostEventHandler()
    >>> get_dispatcher().add_event_handler(costs)
    >>> Settings.llm.complete("hi"); costs.total_usd
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index_instrumentation import get_dispatcher
from pydantic import Field, PrivateAttr

from .._adapters import jsonable as to_jsonable
from ..core.events import Listening, RouterEvent, listen_to_events
from ..types import ChatChunk, ChatResponse
from ._convert import usage_dict

__all__ = [
    "CallEventBuffer",
    "RouterBudgetAlertEvent",
    "RouterCostEvent",
    "RouterCostEventHandler",
    "RouterFallbackEvent",
    "RouterInstrumentationEvent",
    "RouterRetryEvent",
    "cost_event",
    "dispatch_cost",
    "router_events_to_instrumentation",
]

dispatcher = get_dispatcher(__name__)


class RouterInstrumentationEvent(BaseEvent):
    """Something the router did during one LLM call (the base of all router events).

    `router_event_type` is the router's name for it: retry, fallback, circuit, budget_alert,
    cache_hit, queued, rate_limited, cost. `data` is JSON-safe.
    """

    router_event_type: str
    deployment: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def class_name(cls) -> str:
        return "RouterInstrumentationEvent"


class RouterRetryEvent(RouterInstrumentationEvent):
    """A deployment failed with a retryable error and is being tried again."""

    @classmethod
    def class_name(cls) -> str:
        return "RouterRetryEvent"


class RouterFallbackEvent(RouterInstrumentationEvent):
    """A deployment gave up and the router moved on to the next candidate."""

    @classmethod
    def class_name(cls) -> str:
        return "RouterFallbackEvent"


class RouterBudgetAlertEvent(RouterInstrumentationEvent):
    """Spending crossed a budget's alert threshold."""

    @classmethod
    def class_name(cls) -> str:
        return "RouterBudgetAlertEvent"


class RouterCostEvent(RouterInstrumentationEvent):
    """What one answered call cost, and who served it (one per LLM call that succeeded)."""

    router_event_type: str = "cost"
    provider: str = ""
    model: str = ""
    cost_usd: float | None = None
    cached: bool = False
    usage: dict[str, int] = Field(default_factory=dict)

    @classmethod
    def class_name(cls) -> str:
        return "RouterCostEvent"


_EVENT_CLASSES: dict[str, type[RouterInstrumentationEvent]] = {
    "retry": RouterRetryEvent,
    "fallback": RouterFallbackEvent,
    "budget_alert": RouterBudgetAlertEvent,
}
# The cost event is built from the answer itself, which knows more than request_end.
_SKIPPED_TYPES = frozenset({"request_end"})


def to_instrumentation_event(event: RouterEvent) -> RouterInstrumentationEvent:
    """The LlamaIndex event for one router event."""
    cls = _EVENT_CLASSES.get(event.type, RouterInstrumentationEvent)
    return cls(
        router_event_type=event.type, deployment=event.deployment, data=to_jsonable(event.data)
    )


def cost_event(response: ChatResponse | ChatChunk, span_id: str | None = None) -> RouterCostEvent:
    """The cost event for a finished answer (a response or a stream's final chunk)."""
    event = RouterCostEvent(
        deployment=response.deployment,
        provider=response.provider,
        model=response.model,
        cost_usd=response.cost,
        cached=response.cached,
        usage=usage_dict(response.usage) if response.usage is not None else {},
    )
    if span_id is not None:
        event.span_id = span_id
    return event


def dispatch_cost(response: ChatResponse | ChatChunk, span_id: str | None = None) -> None:
    """Send the cost event for a finished answer to every LlamaIndex event handler."""
    dispatcher.event(cost_event(response, span_id))


class CallEventBuffer:
    """Collects one call's router events, wherever the router emits them (possibly on its
    own loop thread), and dispatches them in the caller's context, inside the LLM span."""

    def __init__(self) -> None:
        self._pending: list[RouterEvent] = []
        self._lock = threading.Lock()
        # Every listening block of the call, as one: `wait` lets the work its requests left
        # in the background (a settle with shared state) land, so its alert is dispatched.
        self._listening = Listening(self)

    @contextmanager
    def listening(self) -> Iterator[None]:
        """Collect the events of the router work done inside the block."""
        with listen_to_events(self._listening):
            yield

    def wait(self) -> None:
        """Block until the background work of the calls listened to is over."""
        self._listening.wait()

    async def wait_async(self) -> None:
        """`wait`, letting the event loop run meanwhile."""
        await self._listening.wait_async()

    def __call__(self, event: RouterEvent) -> None:
        if event.type in _SKIPPED_TYPES:
            return
        with self._lock:
            self._pending.append(event)

    def flush(self, span_id: str | None = None) -> None:
        """Dispatch what was collected; `span_id` ties the events to the LLM call's span."""
        with self._lock:
            pending, self._pending = self._pending, []
        for event in pending:
            instrumentation_event = to_instrumentation_event(event)
            if span_id is not None:
                instrumentation_event.span_id = span_id
            dispatcher.event(instrumentation_event)


@contextmanager
def router_events_to_instrumentation(
    buffer: CallEventBuffer, span_id: str | None = None, *, wait: bool = True
) -> Iterator[None]:
    """Within the block, this call's router events are captured, then dispatched (with
    `wait`, once the call's background work, its settle, has landed)."""
    try:
        with buffer.listening():
            yield
    finally:
        if wait:
            buffer.wait()
        buffer.flush(span_id)


class RouterCostEventHandler(BaseEventHandler):
    """Totals what the router spent, per provider and per deployment.

    >>> costs = RouterCostEventHandler()
    >>> get_dispatcher().add_event_handler(costs)
    >>> ... # run a query engine or an agent
    >>> costs.total_usd, costs.by_provider()
    """

    requests: int = 0
    unpriced_requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    _by_provider: dict[str, float] = PrivateAttr(default_factory=dict)
    _by_deployment: dict[str, float] = PrivateAttr(default_factory=dict)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def class_name(cls) -> str:
        return "RouterCostEventHandler"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        if not isinstance(event, RouterCostEvent):
            return
        cost = event.cost_usd or 0.0
        with self._lock:
            self.requests += 1
            self.unpriced_requests += int(event.cost_usd is None)
            self.input_tokens += event.usage.get("prompt_tokens", 0)
            self.output_tokens += event.usage.get("completion_tokens", 0)
            provider = event.provider or "unknown"
            self._by_provider[provider] = self._by_provider.get(provider, 0.0) + cost
            deployment = event.deployment or "unknown"
            self._by_deployment[deployment] = self._by_deployment.get(deployment, 0.0) + cost

    @property
    def total_usd(self) -> float:
        """Everything spent so far, in USD (calls with an unknown price count as 0)."""
        with self._lock:
            return sum(self._by_provider.values())

    def by_provider(self) -> dict[str, float]:
        """USD per provider."""
        with self._lock:
            return dict(self._by_provider)

    def by_deployment(self) -> dict[str, float]:
        """USD per deployment name."""
        with self._lock:
            return dict(self._by_deployment)

    def reset(self) -> None:
        """Start counting from zero."""
        with self._lock:
            self.requests = self.unpriced_requests = 0
            self.input_tokens = self.output_tokens = 0
            self._by_provider.clear()
            self._by_deployment.clear()
