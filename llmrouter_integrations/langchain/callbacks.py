"""Cost in LangChain's callback system: `RouterCostCallbackHandler` and `get_router_callback()`.

>>> with get_router_callback() as cb:
...     chain.invoke({"question": "hi"})
...     agent.invoke({"messages": [...]})
>>> print(cb)                  # cost, tokens, requests, fallbacks
>>> cb.by_provider["openai"].cost_usd
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.tracers.context import register_configure_hook

from ._events import EVENT_PREFIX

__all__ = ["ProviderTotals", "RouterCostCallbackHandler", "get_router_callback"]


@dataclass
class ProviderTotals:
    """What one provider (or deployment) served: requests, tokens and cost."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    failed_attempts: int = 0


class RouterCostCallbackHandler(BaseCallbackHandler):
    """Totals of what `ChatLLMRouter` calls cost, like `get_openai_callback` for a router.

    Counted from each finished call's `response_metadata` (`cost_usd`, `provider`,
    `deployment`, `attempts`) and `usage_metadata`, so it works for invoke, batch,
    stream and agents alike. Tokens and cost count what providers billed:

    - a LangChain cache hit (`set_llm_cache`) replays the first answer; it is counted in
      `langchain_cache_hits` only, never a second time in tokens or cost;
    - a router cache hit costs nothing and sends nothing upstream; it is counted in
      `router_cache_hits` only.

    `saved_cost` is what the cache hits of both kinds would have cost.

    `fallbacks` counts answers served by another deployment than the first one tried;
    `retries` counts the router's retry events; `events` keeps every router event
    (retry, fallback, budget_alert...) the call dispatched as a LangChain custom event.

    >>> handler = RouterCostCallbackHandler()
    >>> model.invoke("hi", config={"callbacks": [handler]})
    >>> handler.total_cost, handler.successful_requests
    """

    raise_error: bool = False
    # Counting is cheap and must not be reordered by a thread pool on async runs.
    run_inline: bool = True

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Start counting from zero."""
        self.total_cost: float = 0.0
        self.input_tokens: int = 0
        self.output_tokens: int = 0
        self.cached_input_tokens: int = 0
        self.reasoning_tokens: int = 0
        self.successful_requests: int = 0
        self.failed_requests: int = 0
        self.fallbacks: int = 0
        self.retries: int = 0
        self.router_cache_hits: int = 0
        self.langchain_cache_hits: int = 0
        self.unpriced_requests: int = 0
        self.saved_cost: float = 0.0
        self.by_provider: dict[str, ProviderTotals] = {}
        self.by_deployment: dict[str, ProviderTotals] = {}
        self.events: list[dict[str, Any]] = []

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def prompt_tokens(self) -> int:
        """Alias of `input_tokens`, as `get_openai_callback` names it."""
        return self.input_tokens

    @property
    def completion_tokens(self) -> int:
        """Alias of `output_tokens`."""
        return self.output_tokens

    def summary(self) -> dict[str, Any]:
        """Every total as plain data (for logs and JSON)."""
        with self._lock:
            totals = self
            return {
                "total_cost_usd": totals.total_cost,
                "input_tokens": totals.input_tokens,
                "output_tokens": totals.output_tokens,
                "total_tokens": totals.input_tokens + totals.output_tokens,
                "cached_input_tokens": totals.cached_input_tokens,
                "reasoning_tokens": totals.reasoning_tokens,
                "successful_requests": totals.successful_requests,
                "failed_requests": totals.failed_requests,
                "fallbacks": totals.fallbacks,
                "retries": totals.retries,
                "router_cache_hits": totals.router_cache_hits,
                "langchain_cache_hits": totals.langchain_cache_hits,
                "unpriced_requests": totals.unpriced_requests,
                "saved_cost_usd": totals.saved_cost,
                "by_provider": {k: vars(v).copy() for k, v in totals.by_provider.items()},
                "by_deployment": {k: vars(v).copy() for k, v in totals.by_deployment.items()},
            }

    def __repr__(self) -> str:
        totals = self
        lines = [
            f"Tokens Used: {self.total_tokens}",
            f"\tPrompt Tokens: {totals.input_tokens} (cached: {totals.cached_input_tokens})",
            f"\tCompletion Tokens: {totals.output_tokens} (reasoning: {totals.reasoning_tokens})",
            f"Successful Requests: {totals.successful_requests}",
            f"Failed Requests: {totals.failed_requests}",
            f"Fallbacks: {totals.fallbacks} (retries: {totals.retries})",
            f"Cache Hits: router {totals.router_cache_hits},"
            f" langchain {totals.langchain_cache_hits} (saved ${totals.saved_cost:.6f})",
            f"Total Cost (USD): ${totals.total_cost:.6f}",
        ]
        for name, provider in sorted(totals.by_provider.items()):
            lines.append(
                f"\t{name}: {provider.requests} requests, "
                f"{provider.input_tokens + provider.output_tokens} tokens, "
                f"${provider.cost_usd:.6f}"
            )
        return "\n".join(lines)

    # --------------------------------------------------------------- callbacks
    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        for generations in response.generations:
            for generation in generations:
                if isinstance(generation, ChatGeneration) and isinstance(
                    generation.message, AIMessage
                ):
                    self._count(generation.message)

    def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
        attempts = getattr(error, "exceptions", None) or [error]
        with self._lock:
            self.failed_requests += 1
            for attempt in attempts:
                name = getattr(attempt, "deployment", None)
                if name:
                    self.by_deployment.setdefault(name, ProviderTotals()).failed_attempts += 1

    def on_custom_event(
        self,
        name: str,
        data: Any,
        *,
        run_id: UUID,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if name.startswith(EVENT_PREFIX) and isinstance(data, dict):
            with self._lock:
                self.events.append(dict(data))
                if data.get("type") == "retry":
                    self.retries += 1

    def _count(self, message: AIMessage) -> None:
        metadata = message.response_metadata or {}
        if "deployment" not in metadata or "attempts" not in metadata:
            return  # not a ChatLLMRouter answer
        usage: Mapping[str, Any] = message.usage_metadata or {}
        with self._lock:
            totals = self
            # LangChain's cache replays the stored message and adds `total_cost: 0` to its
            # usage (chat_models._convert_cached_generations); nothing was sent upstream.
            if "total_cost" in usage:
                totals.langchain_cache_hits += 1
                totals.saved_cost += float(metadata.get("cost_usd") or 0.0)
                return
            if metadata.get("cached"):
                totals.router_cache_hits += 1
                totals.saved_cost += float(metadata.get("original_cost_usd") or 0.0)
                return
            served = str(metadata.get("deployment") or "")
            provider = str(metadata.get("provider") or "unknown")
            attempts = metadata.get("attempts") or []
            failed_elsewhere = {a.get("deployment") for a in attempts} - {served}
            totals.fallbacks += 1 if failed_elsewhere else 0
            cost = metadata.get("cost_usd")
            if cost is None:
                totals.unpriced_requests += 1
                cost = 0.0
            input_tokens = int(usage.get("input_tokens", 0))
            output_tokens = int(usage.get("output_tokens", 0))
            totals.successful_requests += 1
            totals.total_cost += float(cost)
            totals.input_tokens += input_tokens
            totals.output_tokens += output_tokens
            totals.cached_input_tokens += int(
                (usage.get("input_token_details") or {}).get("cache_read", 0)
            )
            totals.reasoning_tokens += int(
                (usage.get("output_token_details") or {}).get("reasoning", 0)
            )
            for key, table in ((provider, totals.by_provider), (served, totals.by_deployment)):
                entry = table.setdefault(key, ProviderTotals())
                entry.requests += 1
                entry.input_tokens += input_tokens
                entry.output_tokens += output_tokens
                entry.cost_usd += float(cost)
            for attempt in attempts:
                name = attempt.get("deployment")
                if name:
                    totals.by_deployment.setdefault(name, ProviderTotals()).failed_attempts += 1


_router_callback: ContextVar[RouterCostCallbackHandler | None] = ContextVar(
    "llmrouter_callback", default=None
)
# Every LangChain run started while the variable is set gets the handler, like
# `get_openai_callback` does.
register_configure_hook(_router_callback, inheritable=True)


@contextmanager
def get_router_callback() -> Iterator[RouterCostCallbackHandler]:
    """Count the cost of every `ChatLLMRouter` call made inside the block.

    >>> with get_router_callback() as cb:
    ...     agent.invoke({"messages": [("user", "What is 3 * 7, plus 2?")]})
    >>> cb.total_cost, cb.successful_requests, cb.fallbacks, cb.by_provider
    """
    handler = RouterCostCallbackHandler()
    token = _router_callback.set(handler)
    try:
        yield handler
    finally:
        _router_callback.reset(token)
