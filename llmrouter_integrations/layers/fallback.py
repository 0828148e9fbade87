"""Tries the planned deployments in order until one answers; explains every failure.

>>> backend = FallbackBackend({"a": a, "b": b}, planner=PriorityPlanner(["a", "b"]))  # routing/
>>> (await backend.chat(request)).deployment   # "b" if "a" failed with a retryable error
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import cast

from ..core.backend import ChatBackend, aclose_stream
from ..core.clock import SYSTEM_CLOCK, Clock
from ..core.events import EventHub, RouterEvent
from ..errors import (
    AllDeploymentsFailedError,
    BudgetExceededError,
    CircuitOpenError,
    ContextWindowExceededError,
    OverloadedError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    QueueTimeoutError,
    RateLimitError,
    ResponseDecodeError,
    RoutingError,
    ServerError,
)
from ..routing.planner import Planner
from ..types import Attempt, ChatChunk, ChatRequest, ChatResponse

__all__ = [
    "FallbackBackend",
    "FallbackPredicate",
    "default_should_fallback",
    "make_fallback_predicate",
]

FallbackPredicate = Callable[[BaseException], bool]


def default_should_fallback(error: BaseException) -> bool:
    """Fall back on transient errors, on errors of the deployment (bad key, unknown model,
    too small a context window), and on routing refusals of one deployment (circuit open,
    over budget, rate-limit wait too long). A request any provider would refuse is not
    retried elsewhere."""
    if isinstance(error, (CircuitOpenError, BudgetExceededError, QueueTimeoutError)):
        return True
    if isinstance(error, ContextWindowExceededError):
        return True
    if isinstance(error, _TRANSIENT):
        # Even with `x-should-retry: false` (retryable=False): that header speaks for this
        # provider's retries, not for whether another provider may answer.
        return True
    if isinstance(error, ProviderError):
        return error.retryable or error.deployment_error
    return isinstance(error, RoutingError) and getattr(error, "retryable", False)


_TRANSIENT = (
    RateLimitError,
    OverloadedError,
    ServerError,
    ProviderConnectionError,
    ResponseDecodeError,
)


def make_fallback_predicate(
    fallback_on: FallbackPredicate | type[BaseException] | Sequence[type[BaseException]] | None,
) -> FallbackPredicate:
    """`Router(fallback_on=...)`: error types or a predicate; None keeps the default.

    Routing refusals of one deployment (circuit open, over budget, a rate-limit wait too
    long) always fall through,
    since the request never reached that provider.
    """
    if fallback_on is None:
        return default_should_fallback
    if isinstance(fallback_on, type):
        fallback_on = (fallback_on,)
    if isinstance(fallback_on, Sequence):
        types = tuple(fallback_on)

        def by_type(error: BaseException) -> bool:
            return isinstance(
                error, (*types, CircuitOpenError, BudgetExceededError, QueueTimeoutError)
            )

        return by_type
    return fallback_on


class FallbackBackend:
    """Runs the plan: each deployment's stack in turn until one succeeds.

    Every failure before success is kept as an `Attempt` on the response. When all fail:
    `AllDeploymentsFailedError` (or `BudgetExceededError` if budgets refused them all).
    Streams fall back only until the first content chunk has been delivered.
    """

    def __init__(
        self,
        backends: Mapping[str, ChatBackend],
        *,
        planner: Planner,
        should_fallback: FallbackPredicate = default_should_fallback,
        clock: Clock = SYSTEM_CLOCK,
        events: EventHub | None = None,
    ) -> None:
        self.backends = dict(backends)
        self.planner = planner
        self.should_fallback = should_fallback
        self.clock = clock
        self.events = events

    def _on_failure(
        self,
        name: str,
        error: Exception,
        started: float,
        attempts: list[Attempt],
        order: list[str],
        position: int,
    ) -> None:
        attempts.append(Attempt(deployment=name, error=error, latency_s=self.clock.now() - started))
        if not self.should_fallback(error):
            raise error
        if self.events is not None and position + 1 < len(order):
            self.events.emit(
                RouterEvent(
                    type="fallback",
                    deployment=name,
                    data={
                        "to": order[position + 1],
                        "error": f"{type(error).__name__}: {error}",
                    },
                    time=self.clock.wall(),
                )
            )

    def _check_deadline(self, request: ChatRequest, attempts: list[Attempt]) -> None:
        if request.deadline is not None and self.clock.now() >= request.deadline and attempts:
            raise self._all_failed(attempts, timed_out=True)

    def _all_failed(self, attempts: list[Attempt], *, timed_out: bool = False) -> Exception:
        errors = [a.error for a in attempts]
        if errors and all(isinstance(e, BudgetExceededError) for e in errors):
            return cast(BudgetExceededError, errors[0])
        if timed_out:
            message = f"request timed out after {len(attempts)} attempt(s)"
            errors.append(ProviderTimeoutError("the request's overall timeout expired"))
        else:
            message = f"all {len(attempts)} deployment attempt(s) failed"
        return AllDeploymentsFailedError(message, errors, attempts)

    async def chat(self, request: ChatRequest) -> ChatResponse:
        plan = self.planner.plan(request)
        attempts: list[Attempt] = []
        backends, clock = self.backends, self.clock
        for position, name in enumerate(plan.order):
            if attempts:  # the deadline only ends the request after a failed attempt
                self._check_deadline(request, attempts)
            started = clock.now()
            try:
                response = await backends[name].chat(request)
            except Exception as error:
                self._on_failure(name, error, started, attempts, plan.order, position)
                continue
            if attempts:
                response.attempts = attempts + response.attempts
            if plan.explanation is not None:
                response.route = plan.explanation
            return response
        raise self._all_failed(attempts)

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        plan = self.planner.plan(request)
        attempts: list[Attempt] = []
        for position, name in enumerate(plan.order):
            self._check_deadline(request, attempts)
            started = self.clock.now()
            iterator = aiter(self.backends[name].stream(request))
            try:
                first = await anext(iterator)
            except StopAsyncIteration:
                error: Exception = ProviderError("stream ended without any chunk", deployment=name)
                self._on_failure(name, error, started, attempts, plan.order, position)
                continue
            except Exception as caught:
                await aclose_stream(iterator)
                self._on_failure(name, caught, started, attempts, plan.order, position)
                continue
            # Committed: from here on an error reaches the caller (never a silent truncation).
            try:
                chunk = first
                while True:
                    if chunk.is_final:
                        if attempts:
                            chunk.attempts = attempts + chunk.attempts
                        if plan.explanation is not None:
                            chunk.route = plan.explanation
                    yield chunk
                    if chunk.is_final:
                        return
                    chunk = await anext(iterator)
            except StopAsyncIteration:
                raise ProviderError(
                    "stream ended without a final chunk", deployment=name, retryable=False
                ) from None
            finally:
                await aclose_stream(iterator)
        raise self._all_failed(attempts)

    async def aclose(self) -> None:
        for backend in self.backends.values():
            await backend.aclose()
