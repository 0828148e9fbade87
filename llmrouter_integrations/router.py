"""`Router`: the facade. Build from config, call (sync and async), close, health, costs.

The layer stack it calls is assembled in `_assemble.py`; user input becomes a `ChatRequest`
in `_inputs.py`; the seed's `APILoader` lives in `compat.py`.

    >>> with Router(deployments=["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"]) as router:
    ...     print(router.complete("Explain quantum computing", max_tokens=200).text)
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from ._assemble import (
    DeploymentSpec,
    build_stack,
    deployments_from_env,
    parse_deployment,
    set_instrumentation,
)
from ._inputs import MessagesInput, build_request
from .core.clock import SYSTEM_CLOCK, Clock
from .core.events import EventHandler, EventHub
from .costs.budget import Budget
from .costs.ledger import CostLedger, LedgerStore
from .layers.fallback import FallbackPredicate
from .layers.retry import RetryPolicy
from .routing.catalog import ModelInfo
from .routing.health import BreakerPolicy, DeploymentHealth
from .routing.strategies import RoutingStrategy
from .state.cache import CacheStore
from .state.shared import SharedState
from .telemetry import InstrumentationSettings, follow_default, resolve_instrumentation
from .types import ChatChunk, ChatRequest, ChatResponse

if TYPE_CHECKING:
    import httpx

    from .providers.endpoints import Endpoint
    from .telemetry import RouterTelemetry
    from .transport.base import Transport

__all__ = ["Router", "parse_deployment"]


class Router:
    """One model object over many deployments: fallback, retries, cost, events.

    >>> router = Router(deployments=["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"])
    >>> response = await router.achat([{"role": "user", "content": "hi"}], max_tokens=50)
    >>> response.text, response.cost, response.deployment
    """

    def __init__(
        self,
        deployments: Sequence[DeploymentSpec],
        *,
        strategy: str | RoutingStrategy = "balanced",
        retry: RetryPolicy | None = None,
        breaker: BreakerPolicy | None = None,
        timeout: float | None = None,
        fallback_on: FallbackPredicate
        | type[BaseException]
        | Sequence[type[BaseException]]
        | None = None,
        budgets: Sequence[Budget] | None = None,
        ledger: str | LedgerStore | CostLedger = "memory",
        cache: str | CacheStore | None = None,
        cache_ttl_s: float | None = None,
        max_queue_wait: float | None = 60.0,
        rate_limit_wait: float | None = 10.0,
        on_event: EventHandler | None = None,
        state: str | SharedState | None = None,
        state_failure: Literal["closed", "local"] = "closed",
        transport: Transport | None = None,
        http_client: httpx.AsyncClient | None = None,
        clock: Clock = SYSTEM_CLOCK,
        environ: Mapping[str, str] | None = None,
        instrument: bool | InstrumentationSettings | None = None,
        strict_params: bool = False,
        prompt_cache: str | None = None,
        **unknown: Any,
    ) -> None:
        if unknown:
            raise _unknown_argument(type(self), unknown)
        self.clock = clock
        self.timeout = timeout
        self.retry_policy = retry or RetryPolicy()
        self.events = EventHub([on_event] if on_event is not None else [])
        self._strategy_spec = strategy
        settings = resolve_instrumentation(instrument)
        self._telemetry = (
            _make_telemetry(settings, clock, self.events, strategy) if settings else None
        )
        stack = build_stack(
            deployments,
            strategy=strategy,
            retry=self.retry_policy,
            breaker=breaker,
            fallback_on=fallback_on,
            budgets=budgets,
            ledger=ledger,
            cache=cache,
            cache_ttl_s=cache_ttl_s,
            max_queue_wait=max_queue_wait,
            rate_limit_wait=rate_limit_wait,
            state=state,
            state_failure=state_failure,
            events=self.events,
            transport=transport,
            http_client=http_client,
            clock=clock,
            environ=environ,
            instrumentation=self._telemetry,
            strict_params=strict_params,
            prompt_cache=prompt_cache,
        )
        self._stack = stack
        self.deployments = stack.deployments
        self._endpoints = stack.endpoints
        self._names = stack.names
        self.costs: CostLedger = stack.costs
        self.budgets = stack.budgets
        self.limits = stack.limits
        self.queue = stack.queue
        self.cache_store = stack.cache_store
        self.state = stack.state
        self.state_guard = stack.state_guard
        # With state=: sends each call's trip after it (settle, rate release) off the
        # caller's path; `router.settler.drain()` waits until the queued ones landed.
        self.settler = stack.settler
        self.catalog = stack.catalog
        self.health_tracker = stack.health_tracker
        self.pricer = stack.pricer
        self._transport = stack.transport
        self._backend = stack.backend
        self._closed = False
        if self._telemetry is not None:
            self._telemetry.watch(self)  # circuit, budget and rate-limit gauges
        if instrument is None:  # follows instrument_all(), now and later
            current = follow_default(self._follow_default)
            if current is not settings:  # changed while this router was being made
                self._follow_default(current)

    def _follow_default(self, settings: InstrumentationSettings | None) -> None:
        """Swap this router's telemetry layers for the process default's (instrument_all)."""
        if self._closed:
            return
        old = self._telemetry
        telemetry = (
            _make_telemetry(settings, self.clock, self.events, self._strategy_spec)
            if settings is not None
            else None
        )
        set_instrumentation(self._stack, telemetry)
        self._telemetry = telemetry
        self._backend = self._stack.backend
        if old is not None:
            old.close()
            old.unwatch(self)
        if telemetry is not None:
            telemetry.watch(self)

    def model_info(self, name: str) -> ModelInfo:
        """What the catalog (and the deployment's overrides) say about deployment `name`:
        context window, max output, capabilities, quality and speed."""
        for deployment in self.deployments:
            if deployment.key == name:
                return self.catalog.for_deployment(deployment)
        raise KeyError(name)

    def health(self) -> dict[str, DeploymentHealth]:
        """Per deployment: circuit state, EWMA latency and TTFT, error rate, in-flight and
        queued requests, and what is left of its rate limits."""
        for name in self._names:
            snapshot = self.limits.snapshot(name)
            self.health_tracker.update_capacity(
                name,
                remaining_requests=snapshot.get("remaining_requests"),
                remaining_tokens=snapshot.get("remaining_tokens"),
                queued=self.queue.depth(name),
            )
        return self.health_tracker.snapshot()

    @classmethod
    def from_env(cls, *, environ: Mapping[str, str] | None = None, **kwargs: Any) -> Router:
        """A router over every provider whose API key is set in the environment.

        >>> router = Router.from_env(strategy="priority")   # OPENAI_API_KEY, ANTHROPIC_API_KEY...
        """
        env = os.environ if environ is None else environ
        return cls(deployments=deployments_from_env(env), environ=env, **kwargs)

    def endpoint_of(self, name: str) -> Endpoint:
        """The endpoint row (provider facts) serving deployment `name`."""
        return self._endpoints[name]

    # ---------------------------------------------------------------- requests
    def build_request(self, messages: MessagesInput, **options: Any) -> ChatRequest:
        """The provider-neutral request for `messages` and call options."""
        request = build_request(messages, options, known_deployments=self._endpoints)
        timeout = request.timeout if request.timeout is not None else self.timeout
        if timeout is not None:
            request.deadline = self.clock.now() + timeout
        return request

    async def achat(self, messages: MessagesInput, **options: Any) -> ChatResponse:
        """Answer a conversation. Options: max_tokens, temperature, tools, tool_choice, ...

        >>> await router.achat([{"role": "user", "content": "hi"}], max_tokens=20)
        """
        return await self._backend.chat(self.build_request(messages, **options))

    async def acomplete(self, prompt: str, **options: Any) -> ChatResponse:
        """Answer a single prompt."""
        return await self.achat(prompt, **options)

    def astream(self, messages: MessagesInput, **options: Any) -> AsyncIterator[ChatChunk]:
        """Stream an answer; the last chunk has `is_final=True` with usage and cost."""
        return self._backend.stream(self.build_request(messages, **options))

    def chat(self, messages: MessagesInput, **options: Any) -> ChatResponse:
        """Synchronous `achat`, safe from any thread (runs on one background loop)."""
        from .core import run_sync

        request = self.build_request(messages, **options)
        return run_sync(self._backend.chat(request))

    def complete(self, prompt: str, **options: Any) -> ChatResponse:
        """Synchronous `acomplete`.

        >>> router.complete("Explain quantum computing", max_tokens=200).text
        """
        return self.chat(prompt, **options)

    def stream(self, messages: MessagesInput, **options: Any) -> Iterator[ChatChunk]:
        """Synchronous `astream`."""
        from .core import iterate_sync

        request = self.build_request(messages, **options)
        return iterate_sync(lambda: self._backend.stream(request))

    # --------------------------------------------------------------- lifecycle
    async def aclose(self) -> None:
        """Close connections and flush state. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._telemetry is not None:
            self._telemetry.close()
        await self._backend.aclose()
        await self._transport.aclose()
        if self.cache_store is not None:
            await self.cache_store.aclose()
        self.queue.close()
        self.costs.close()
        if self.settler is not None:  # settles still queued land before the store closes
            self.settler.close()
        self.budgets.close()
        if self.state is not None and self._stack.owns_state:
            self.state.close()

    def close(self) -> None:
        from .core import run_sync

        run_sync(self.aclose())

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Router:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        names = ", ".join(d.key for d in self.deployments)
        return f"Router(deployments=[{names}], strategy={self._strategy_spec!r})"


def _unknown_argument(cls: type, unknown: Mapping[str, Any]) -> TypeError:
    """A TypeError naming the closest valid keyword argument, like `budget=` -> `budgets`."""
    import difflib
    import inspect

    valid = [
        name
        for name, parameter in inspect.signature(Router.__init__).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY or name == "deployments"
    ]
    name = sorted(unknown)[0]
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else f"; valid: {', '.join(sorted(valid))}"
    return TypeError(f"{cls.__name__}() got an unexpected keyword argument {name!r}{hint}")


def _make_telemetry(
    settings: InstrumentationSettings, clock: Clock, events: EventHub, strategy: Any
) -> RouterTelemetry:
    # Imported here: OpenTelemetry loads only when a router is instrumented.
    from .telemetry import make_router_telemetry

    return make_router_telemetry(settings, clock=clock, events=events, strategy=strategy)
