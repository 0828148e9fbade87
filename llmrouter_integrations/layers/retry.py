"""Per-deployment retries with tenacity: exponential backoff with jitter, retry-after, deadline.

>>> policy = RetryPolicy(max_attempts=4, initial_backoff_s=0.5, max_backoff_s=8)
>>> Router(deployments=[...], retry=policy)
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.backend import ChatBackend, WrapperBackend, aclose_stream, closing_stream
from ..core.clock import SYSTEM_CLOCK, Clock
from ..core.events import EventHub, RouterEvent
from ..errors import ProviderError, ProviderStatusError
from ..types import ChatChunk, ChatRequest, ChatResponse

if TYPE_CHECKING:
    from tenacity import RetryCallState

__all__ = ["RetryBackend", "RetryPolicy"]


@dataclass(slots=True)
class RetryPolicy:
    """How one deployment retries a failed call before the router falls back to the next.

    Waits grow as `initial_backoff_s * multiplier**n`, capped at `max_backoff_s`, minus up
    to `jitter` of themselves at random (so synchronised clients spread out). A provider's
    `retry-after-ms` / `retry-after` wins when it is at most `max_retry_after_s`; a longer
    one means "not soon", so the router falls back instead of waiting. `x-should-retry`
    is already folded into `error.retryable` by the dialect.

    >>> RetryPolicy(max_attempts=1)   # no retries: fall back at once
    """

    max_attempts: int = 3
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    multiplier: float = 2.0
    jitter: float = 0.25
    max_retry_after_s: float = 60.0
    retry_on: Callable[[BaseException], bool] | None = None
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def should_retry(self, error: BaseException) -> bool:
        if self.retry_on is not None:
            return self.retry_on(error)
        return isinstance(error, ProviderError) and error.retryable

    def backoff(self, retry_number: int, error: BaseException | None) -> float | None:
        """Seconds to wait before retry `retry_number` (1-based); None means do not retry."""
        retry_after = getattr(error, "retry_after", None)
        if isinstance(error, ProviderStatusError) and retry_after is not None:
            if retry_after > self.max_retry_after_s:
                return None
            return max(0.0, float(retry_after))
        delay = min(
            self.max_backoff_s, self.initial_backoff_s * self.multiplier ** (retry_number - 1)
        )
        return delay * (1.0 - self.jitter * self.rng.random())


class RetryBackend(WrapperBackend):
    """Retries one deployment's calls per `RetryPolicy`, within the request's deadline.

    The first attempt runs without tenacity (the common, successful case pays nothing);
    a retryable failure hands the rest of the schedule to tenacity's `AsyncRetrying`.
    Streams are retried only until their first content chunk has been delivered.
    """

    def __init__(
        self,
        inner: ChatBackend,
        *,
        deployment: str,
        policy: RetryPolicy,
        clock: Clock = SYSTEM_CLOCK,
        events: EventHub | None = None,
    ) -> None:
        super().__init__(inner)
        self.deployment = deployment
        self.policy = policy
        self.clock = clock
        self.events = events

    async def chat(self, request: ChatRequest) -> ChatResponse:
        try:
            return await self.inner.chat(request)
        except Exception as error:
            if self.policy.max_attempts <= 1 or not self.policy.should_retry(error):
                raise
            first_error = error
        response: ChatResponse = await self._retry(
            lambda: self.inner.chat(request), request, first_error
        )
        return response

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        first, rest = await self._open_stream(request)
        async with closing_stream(rest) as chunks:
            yield first
            if first.is_final:
                return
            async for chunk in chunks:
                yield chunk

    async def _open_stream(
        self, request: ChatRequest
    ) -> tuple[ChatChunk, AsyncIterator[ChatChunk]]:
        """Start the stream and read up to its first content (or final) chunk, retrying."""

        async def attempt() -> tuple[ChatChunk, AsyncIterator[ChatChunk]]:
            iterator = aiter(self.inner.stream(request))
            try:
                while True:
                    chunk = await anext(iterator)
                    if chunk.has_content or chunk.is_final:
                        return chunk, iterator
            except StopAsyncIteration:
                raise ProviderError(
                    "stream ended without any chunk", deployment=self.deployment, retryable=True
                ) from None
            except BaseException:
                await aclose_stream(iterator)
                raise

        try:
            return await attempt()
        except Exception as error:
            if self.policy.max_attempts <= 1 or not self.policy.should_retry(error):
                raise
            opened: tuple[ChatChunk, AsyncIterator[ChatChunk]] = await self._retry(
                attempt, request, error
            )
            return opened

    def _plan_wait(
        self, retry_number: int, error: BaseException | None, request: ChatRequest
    ) -> float | None:
        """The wait before retry `retry_number`, or None when retrying is pointless."""
        delay = self.policy.backoff(retry_number, error)
        if delay is None:
            return None
        if request.deadline is not None and self.clock.now() + delay >= request.deadline:
            return None
        if self.events is not None:
            self.events.emit(
                RouterEvent(
                    type="retry",
                    deployment=self.deployment,
                    data={
                        "attempt": retry_number + 1,
                        "wait_s": round(delay, 3),
                        "error": f"{type(error).__name__}: {error}",
                    },
                    time=self.clock.wall(),
                )
            )
        return delay

    async def _retry(self, call: Callable[[], Any], request: ChatRequest, first: Exception) -> Any:
        """Attempts 2..max_attempts, scheduled by tenacity; re-raises the last error."""
        from tenacity import AsyncRetrying, retry_if_exception

        delay = self._plan_wait(1, first, request)
        if delay is None:
            raise first
        await self.clock.sleep(delay)
        max_tries = self.policy.max_attempts - 1
        # tenacity asks `wait` and `stop` once per failed attempt, in an order that varies
        # between versions; plan each attempt's wait once so the jitter and events are too.
        plans: dict[int, float | None] = {}

        def plan(state: RetryCallState) -> float | None:
            number = state.attempt_number
            if number >= max_tries:
                return None
            if number not in plans:
                error = state.outcome.exception() if state.outcome else None
                plans[number] = self._plan_wait(number + 1, error, request)
            return plans[number]

        def stop(state: RetryCallState) -> bool:
            return plan(state) is None

        retrying = AsyncRetrying(
            stop=stop,
            wait=lambda state: plan(state) or 0.0,
            retry=retry_if_exception(self.policy.should_retry),
            sleep=self.clock.sleep,
            reraise=True,
        )

        async def attempt() -> Any:
            # tenacity awaits only coroutine functions, so wrap the lambda in one
            return await call()

        return await retrying(attempt)
