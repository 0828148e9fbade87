"""The circuit-breaker layer of one deployment: refuses calls while its circuit is open.

The state lives in the router's `HealthTracker` (routing/health.py); this layer admits each
call through it and reports how the call ended. With shared state and no budget layer
above to do it, this layer makes the call's one trip to the store (`StoreTrip`): the
fleet's circuit verdict and the rate count in one round trip.

    >>> layer = CircuitBreakerBackend(retrying_backend, deployment="a", health=tracker)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from ..core.backend import ChatBackend, WrapperBackend, aclose_stream
from ..errors import ResponseDecodeError
from ..state.shared import StoreUnavailable
from ..types import ChatChunk, ChatRequest, ChatResponse

if TYPE_CHECKING:
    from ..admission.store_trip import StoreTrip
    from ..routing.health import CallTicket, HealthTracker
    from ..state.shared import Admission

__all__ = ["CircuitBreakerBackend"]


class CircuitBreakerBackend(WrapperBackend):
    """One deployment's breaker layer: refuses calls while open, measures the rest.

    A stream counts as a success once its final chunk arrives, and its time to first
    content chunk feeds the TTFT average.

    >>> layer = CircuitBreakerBackend(retrying_backend, deployment="a", health=tracker)
    """

    def __init__(
        self,
        inner: ChatBackend,
        *,
        deployment: str,
        health: HealthTracker,
        trip: StoreTrip | None = None,
    ) -> None:
        super().__init__(inner)
        self.deployment = deployment
        self.health = health
        self.trip = trip
        health.add(deployment)

    def _begin(self, request: ChatRequest) -> CallTicket:
        admission = request.admission
        if admission is None:  # nothing to carry a trip's answers down: ask as before
            return self.health.begin(self.deployment)
        name = self.deployment
        asked, fleet = admission.take_circuit(name)  # the budget layer's trip asked already
        if not asked and self.trip is not None:
            try:
                self.trip.admit(request, name)
            except StoreUnavailable:
                return self.health.begin(name, asked=(None,))  # down: decide locally
            asked, fleet = admission.take_circuit(name)
        verdict: tuple[Admission | None] | None = (fleet,) if asked else None
        return self.health.begin(name, asked=verdict)

    def _out_of_time(self, request: ChatRequest) -> bool:
        # A little slack: the deadline timer and our clock read are not the same instant.
        deadline = request.deadline
        return deadline is not None and self.health.clock.now() >= deadline - 0.005

    async def chat(self, request: ChatRequest) -> ChatResponse:
        ticket = self._begin(request)
        try:
            response = await self.inner.chat(request)
        except BaseException as error:
            ticket.failure(error, out_of_time=self._out_of_time(request))
            raise
        ticket.success(latency_s=response.latency_s or None, ttft_s=response.ttft_s)
        return response

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        ticket = self._begin(request)
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
