"""The per-deployment budget layer: reserve a call's worst case before sending, settle after.

    >>> backend = BudgetBackend(inner, deployment, manager=manager, pricer=Pricer(),
    ...                         prices_provider="openai", local=False)
    >>> backend.check(request)           # None, or why the call would be refused
    >>> await backend.chat(request)      # raises BudgetExceededError before sending if it cannot fit

Policy for a deployment with no known price (no genai-prices entry, no `Deployment.price`,
not local): a budget cannot bound its cost, so when any budget covers the request the
deployment is refused with `BudgetExceededError` (the router then tries the next
candidate); with no budget covering it, the call goes ahead unreserved. Local models cost 0
and always fit. What is reserved is what is sent: a covered call goes out with the output
cap its reservation assumed as `max_tokens` (the dialect spells it as the endpoint needs),
and cap spellings in `extra_body` are folded into it. A stream the caller abandons, or that breaks after content arrived, is
settled to an estimate of what was produced (providers bill partial output), unless the
error reports its billed usage.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import TYPE_CHECKING

from ..core.backend import ChatBackend, closing_stream
from ..costs.budget import BudgetManager, BudgetRefusal, Reservation
from ..costs.pricing import Pricer, decimal_cost
from ..costs.tokens import (
    DEFAULT_MAX_OUTPUT_TOKENS,
    OUTPUT_CAP_KEYS,
    estimate_input_tokens,
    estimate_text_tokens,
    output_cap,
)
from ..errors import ProviderTimeoutError
from ..types import ChatChunk, ChatRequest, ChatResponse, CostDetail, Deployment, Usage

if TYPE_CHECKING:
    from ..admission.call import CallAdmission
    from ..admission.store_trip import StoreTrip
    from ..costs.budget_shared import RateRelease

__all__ = ["BudgetBackend"]


class BudgetBackend:
    """Wraps one deployment's stack with the router's budgets (see the module docstring)."""

    def __init__(
        self,
        inner: ChatBackend,
        deployment: Deployment,
        *,
        manager: BudgetManager,
        pricer: Pricer,
        prices_provider: str | None = None,
        local: bool = False,
        max_output_tokens: int | None = None,
        trip: StoreTrip | None = None,
    ) -> None:
        self.inner = inner
        self.deployment = deployment
        self.manager = manager
        self.trip = trip
        self._pricer = pricer
        self._prices_provider = prices_provider
        self._local = local
        # With no cap asked for, reserve (and send) the default, or less if the model's
        # own maximum output is smaller: a larger cap would be refused by the provider.
        self._default_cap = min(DEFAULT_MAX_OUTPUT_TOKENS, max_output_tokens or (1 << 62))

    def worst_case(self, request: ChatRequest) -> Decimal | None:
        """The most this call can cost here: estimated input + its output cap."""
        return self._price(estimate_input_tokens(request), output_cap(request, self._default_cap))

    def capped(self, request: ChatRequest) -> ChatRequest:
        """The request as sent under a reservation: `max_tokens` set to the reserved cap."""
        cap = output_cap(request, self._default_cap)
        extra = request.extra_body
        if request.max_tokens == cap and not any(key in extra for key in OUTPUT_CAP_KEYS):
            return request
        kept = {key: value for key, value in extra.items() if key not in OUTPUT_CAP_KEYS}
        sent = dataclasses.replace(request, max_tokens=cap, extra_body=kept)
        sent._token_estimate = request._token_estimate  # same messages: the estimate holds
        sent.admission = request.admission  # the same call
        return sent

    def _sent(self, request: ChatRequest) -> ChatRequest:
        """The request as this layer sends it: capped when a budget covers it."""
        if self._local or not self.manager.applies(request, self.deployment):
            return request
        return self.capped(request)

    def check(self, request: ChatRequest) -> BudgetRefusal | None:
        """Why budgets would refuse this call on this deployment, or None (reserves nothing)."""
        if not self.manager.budgets:
            return None
        return self.manager.check(request, self.deployment, self.worst_case(request))

    def _price(self, input_tokens: int, output_tokens: int) -> Decimal | None:
        return self._pricer.estimate(
            self.deployment,
            input_tokens,
            output_tokens,
            prices_provider=self._prices_provider,
            local=self._local,
        )

    def _reserve(self, request: ChatRequest) -> Reservation | None:
        worst_case = self.worst_case(request)
        if worst_case is None:
            self.manager.refuse_unpriced(request, self.deployment)
            return None  # no budget covers it: nothing to hold
        # With shared state the hold rides on the call's one trip to the store, with the
        # circuit's admission and the rate count (`admission.store_trip`).
        trip = self.trip
        via = None
        if trip is not None and request.admission is not None:
            via = trip.hold_via(request, self.deployment.key)
        return self.manager.reserve(request, self.deployment, worst_case, via=via)

    async def chat(self, request: ChatRequest) -> ChatResponse:
        if not self.manager.budgets:
            return await self.inner.chat(request)
        request = self._sent(request)
        reservation = self._reserve(request)
        admission = request.admission
        # The limiter below leaves its store release for this layer's settle: one trip after.
        finishing = reservation is not None and reservation.hold is not None
        if finishing and admission is not None:
            admission.finish_later = True
        try:
            response = await self.inner.chat(request)
        except BaseException as error:
            if reservation is not None:
                rate = _rate_release(admission, finishing)
                self._settle_failure(reservation, error, request, 0, rate)
            raise
        if reservation is not None:
            cost = decimal_cost(response.cost_detail, response.cost)
            self.manager.settle(reservation, cost, rate=_rate_release(admission, finishing))
        return response

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        if not self.manager.budgets:
            async with closing_stream(self.inner.stream(request)) as chunks:
                async for chunk in chunks:
                    yield chunk
            return
        request = self._sent(request)
        reservation = self._reserve(request)
        admission = request.admission
        # As for chat: the limiter frees its slot on the final chunk and leaves the store's
        # part for the settle on that chunk, one trip after the call.
        finishing = reservation is not None and reservation.hold is not None
        if finishing and admission is not None:
            admission.finish_later = True
        produced = 0  # output tokens seen (estimated), to bill a stream that ends early
        try:
            async with closing_stream(self.inner.stream(request)) as chunks:
                async for chunk in chunks:
                    if reservation is not None:
                        if chunk.is_final:
                            cost = decimal_cost(chunk.cost_detail, chunk.cost)
                            rate = _rate_release(admission, finishing)
                            self.manager.settle(reservation, cost, rate=rate)
                        else:
                            produced += _chunk_tokens(chunk)
                    yield chunk
        except BaseException as error:
            if reservation is not None:
                rate = _rate_release(admission, finishing)
                self._settle_failure(reservation, error, request, produced, rate)
            raise
        if reservation is not None:  # ended without a final chunk, if not done
            self._settle_failure(
                reservation, None, request, produced, _rate_release(admission, finishing)
            )

    def _settle_failure(
        self,
        reservation: Reservation,
        error: BaseException | None,
        request: ChatRequest,
        produced: int,
        rate: RateRelease | None = None,
    ) -> None:
        if reservation.done:
            self.manager.release(reservation, rate=rate)  # only frees the rate slot, if any
            return
        billed = getattr(error, "usage", None)
        if isinstance(billed, Usage):
            detail = getattr(error, "cost_detail", None)
            if not isinstance(detail, CostDetail):
                detail = self._pricer.cost(
                    self.deployment,
                    billed,
                    prices_provider=self._prices_provider,
                    local=self._local,
                )
            total = detail.total if detail is not None else None
            self.manager.settle(reservation, total, rate=rate)
        elif produced:
            cost = self._price(estimate_input_tokens(request), produced)
            self.manager.settle(reservation, cost, rate=rate)
        elif isinstance(error, (ProviderTimeoutError, asyncio.CancelledError)):
            # Sent, then abandoned: the provider may still process and bill the prompt, so
            # charge its estimated input rather than nothing (a hard budget must fill up).
            cost = self._price(estimate_input_tokens(request), 0)
            self.manager.settle(reservation, cost, rate=rate)
        else:
            self.manager.release(reservation, rate=rate)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _rate_release(admission: CallAdmission | None, finishing: bool) -> RateRelease | None:
    """The limiter's store release left for this layer's settle (and the flag cleared: the
    admission moves on to the next deployment if the call falls back)."""
    if admission is None or not finishing:
        return None
    rate, admission.rate_release = admission.rate_release, None
    admission.finish_later = False
    return rate


def _chunk_tokens(chunk: ChatChunk) -> int:
    # Providers stream about a token per chunk; rounding each chunk up leans high, as it should.
    text = chunk.text + chunk.reasoning
    text += "".join((d.name or "") + d.arguments for d in chunk.tool_call_deltas)
    return estimate_text_tokens(text) if text else 0
