"""Forward the router events of one LangChain call to its callbacks as custom events.

Inside a call, `listen_to_events` collects the router's events (retry, fallback, budget
alert...) into a queue; the chat model drains it from the caller's thread or task and
dispatches each as a LangChain custom event named `llmrouter.<type>`, so any handler,
tracer or `astream_events` consumer sees them:

    >>> async for event in chain.astream_events(question, version="v2"):
    ...     if event["event"] == "on_custom_event" and event["name"] == "llmrouter.fallback":
    ...         print(event["data"]["deployment"], event["data"]["error"])
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import uuid4

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    BaseCallbackHandler,
    BaseCallbackManager,
    CallbackManager,
    CallbackManagerForLLMRun,
    Callbacks,
)
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import (
    get_async_callback_manager_for_config,
    get_callback_manager_for_config,
)

from .._adapters import jsonable
from ..core.events import Listening, RouterEvent, listen_to_events

__all__ = ["EVENT_PREFIX", "FORWARDED_EVENTS", "EventForwarder"]

log = logging.getLogger("llmrouter_integrations")

EVENT_PREFIX = "llmrouter."
# `request_end` is left out: LangChain's own on_llm_end already marks the end of a call.
FORWARDED_EVENTS = frozenset(
    {"retry", "fallback", "budget_alert", "circuit", "cache_hit", "queued", "rate_limited"}
)


class EventForwarder:
    """Collects one call's router events and hands them to that call's callbacks.

    `run_manager` is the chat model's run when LangChain passed one; otherwise (the
    `stream()` path) the call's config is used and events attach to its parent run.
    """

    def __init__(
        self,
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
        config: RunnableConfig | None,
        model_callbacks: Callbacks = None,
    ) -> None:
        self._run_manager = run_manager
        self._config = config
        # A run manager already holds the model's own handlers; a config holds only the
        # caller's, so the model's (`ChatLLMRouter(callbacks=[...])`) are added to it.
        if isinstance(model_callbacks, BaseCallbackManager):
            model_callbacks = model_callbacks.handlers
        self._model_handlers: list[BaseCallbackHandler] = list(model_callbacks or ())
        # Filled from the router's loop thread on sync calls; deque appends are atomic.
        self._pending: deque[RouterEvent] = deque()
        # Every listening block of this call, as one: a final flush waits for the work its
        # requests left in the background (a settle with shared state), so their alerts
        # reach this run.
        self._listening = Listening(self._collect)

    def _collect(self, event: RouterEvent) -> None:
        if event.type in FORWARDED_EVENTS:
            self._pending.append(event)

    @contextmanager
    def listening(self) -> Iterator[None]:
        """Collect the events of the router work done inside the block."""
        with listen_to_events(self._listening):
            yield

    def _drain(self) -> list[tuple[str, dict[str, Any]]]:
        drained = []
        while self._pending:
            event = self._pending.popleft()
            data = {"type": event.type, "deployment": event.deployment, "time": event.time}
            data.update(jsonable(event.data))
            drained.append((EVENT_PREFIX + event.type, data))
        return drained

    def flush(self, *, wait: bool = True) -> None:
        """Dispatch collected events through sync callbacks; with `wait`, first let the
        call's background work (its settle) land, so its events are among them."""
        if wait:
            self._listening.wait()
        events = self._drain()
        if not events:
            return
        manager, run_id = self._sync_target()
        if manager is None:
            return
        for name, data in events:
            try:
                manager.on_custom_event(name, data, run_id=run_id)
            except Exception:  # an observer must never break the call
                log.exception("dispatching %s failed", name)

    async def aflush(self, *, wait: bool = True) -> None:
        """Dispatch collected events through async callbacks (`wait`: as `flush`)."""
        if wait:
            await self._listening.wait_async()
        events = self._drain()
        if not events:
            return
        manager, run_id = self._async_target()
        if manager is None:
            return
        for name, data in events:
            try:
                await manager.on_custom_event(name, data, run_id=run_id)
            except Exception:
                log.exception("dispatching %s failed", name)

    def _sync_target(self) -> tuple[CallbackManager | None, Any]:
        run = self._run_manager
        if isinstance(run, CallbackManagerForLLMRun):
            manager = CallbackManager(handlers=run.handlers, tags=run.tags, metadata=run.metadata)
            return manager, run.run_id
        if self._config is None:
            return None, None
        from_config = get_callback_manager_for_config(self._config)
        for handler in self._model_handlers:
            from_config.add_handler(handler, inherit=False)
        return from_config, self._config_run_id() or from_config.parent_run_id or uuid4()

    def _async_target(self) -> tuple[AsyncCallbackManager | None, Any]:
        run = self._run_manager
        if isinstance(run, AsyncCallbackManagerForLLMRun):
            manager = AsyncCallbackManager(
                handlers=run.handlers, tags=run.tags, metadata=run.metadata
            )
            return manager, run.run_id
        if self._config is None:
            return None, None
        from_config = get_async_callback_manager_for_config(self._config)
        for handler in self._model_handlers:
            from_config.add_handler(handler, inherit=False)
        return from_config, self._config_run_id() or from_config.parent_run_id or uuid4()

    def _config_run_id(self) -> Any:
        # The chat model's own run (see langchain/_context.py), when the call was ours.
        return (self._config or {}).get("run_id")
