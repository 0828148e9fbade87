"""The circuit-breaker layer of one deployment: refuses calls while its circuit is open.

The state lives in the router's `HealthTracker` (core/health.py); this layer admits each
call through it and reports how the call ended.

    >>> layer = CircuitBreakerBackend(retrying_backend, deployment="a", health=tracker)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from ..core.backend import ChatBackend, WrapperBackend, aclose_stream
from ..errors import ResponseDecodeError
from ..types import ChatChunk, ChatRequest, ChatResponse

if TYPE_CHECKING:
    from ..routing.health import HealthTracker

__all__ = ["CircuitBreakerBackend"]


class CircuitBreakerBackend(WrapperBackend):
    """One deployment's breaker layer: refuses calls while open, measures the rest.

    A stream counts as a success once its final chunk arrives, and its time to first
    content chunk feeds the TTFT average.

    >>> layer = CircuitBreakerBackend(retrying_backend, deployment="a", health=tracker)
    """

    def __init__(self, inner: ChatBackend, *, deployment: str, health: HealthTracker) -> None:
        super().__init__(inner)
        self.deployment = deployment
        self.health = health
        health.add(deployment)

    def _out_of_time(self, request: ChatRequest) -> bool:
        # A little slack: the deadline timer and our clock read are not the same instant.
        deadline = request.deadline
        return deadline is not None and self.health.clock.now() >= deadline - 0.005

    async def chat(self, request: ChatRequest) -> ChatResponse:
        ticket = self.health.begin(self.deployment)
        try:
            response = await self.inner.chat(request)
        except BaseException as error:
            ticket.failure(error, out_of_time=self._out_of_time(request))
            raise
        ticket.success(latency_s=response.latency_s or None, ttft_s=response.ttft_s)
        return response

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        ticket = self.health.begin(self.deployment)
        seen_content = False
        chunks = self.inner.stream(request)
        try:
            async for chunk in chunks:
                if not seen_content and chunk.has_content:
                    seen_content = True
                    ticket.first_token()
                if chunk.is_final:
                    ticket.success(latency_s=chunk.latency_s, ttft_s=None)
                yield chunk
            ticket.failure(
                ResponseDecodeError(
                    "stream ended without a final chunk", deployment=self.deployment
                )
            )
        except BaseException as error:
            ticket.failure(error, out_of_time=self._out_of_time(request))
            raise
        finally:
            ticket.release()
            await aclose_stream(chunks)  # end the provider's stream even when abandoned early
