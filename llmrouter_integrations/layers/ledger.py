"""The outermost router layer: records every request into the cost ledger (`router.costs`).

>>> backend = LedgerBackend(inner, CostLedger(), clock=SYSTEM_CLOCK)
>>> await backend.chat(request)     # one row: tokens, cost, latency, user, tags
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal

from ..core.backend import ChatBackend, closing_stream
from ..core.clock import SYSTEM_CLOCK, Clock
from ..costs.ledger import CostLedger, LedgerEntry, request_tags, request_user
from ..costs.pricing import decimal_cost
from ..types import ChatChunk, ChatRequest, ChatResponse, CostDetail, Usage

__all__ = ["LedgerBackend"]

_ZERO = Decimal(0)
_NO_USAGE = Usage()  # read only, never modified


class LedgerBackend:
    """The outermost layer: records every request that passes through it into a `CostLedger`.

    Answers (streams at their final chunk), cache hits (cost 0, `saved` = original cost),
    failures (error type; tokens and cost only when the error carries `.usage` /
    `.cost_detail`) and cancelled requests. User and tags come from the request.

    >>> backend = LedgerBackend(inner, router_costs, clock=clock)
    """

    def __init__(
        self, inner: ChatBackend, ledger: CostLedger, *, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.inner = inner
        self.ledger = ledger
        self._clock = clock

    async def chat(self, request: ChatRequest) -> ChatResponse:
        start = self._clock.now()
        try:
            response = await self.inner.chat(request)
        except Exception as error:
            self._record_failure(request, error, start)
            raise
        except asyncio.CancelledError:
            self._record_failure(request, None, start)
            raise
        self._record_answer(request, response, start)
        return response

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        start = self._clock.now()
        recorded = False
        try:
            async with closing_stream(self.inner.stream(request)) as chunks:
                async for chunk in chunks:
                    if chunk.is_final and not recorded:
                        recorded = True
                        self._record_answer(request, chunk, start)
                    yield chunk
        except Exception as error:
            if not recorded:
                self._record_failure(request, error, start)
            raise
        except (asyncio.CancelledError, GeneratorExit):
            if not recorded:  # the caller stopped reading before the end
                self._record_failure(request, None, start)
            raise
        if not recorded:  # a stream must end with a final chunk; count it as broken
            self._record_failure(request, None, start, error_type="IncompleteStream")

    async def aclose(self) -> None:
        try:
            await self.inner.aclose()
        finally:
            self.ledger.flush()

    def _record_answer(
        self, request: ChatRequest, answer: ChatResponse | ChatChunk, start: float
    ) -> None:
        clock = self._clock
        usage = answer.usage or _NO_USAGE
        if answer.cached:
            cost: Decimal | None = _ZERO
            original = answer.original_cost
            saved = Decimal(str(original)) if original is not None else None
            usage = _NO_USAGE  # nothing was billed for this answer
        else:
            detail = answer.cost_detail
            cost = detail.total if detail is not None else decimal_cost(None, answer.cost)
            saved = None
        if request.metadata:
            user, tags = request_user(request), request_tags(request)
            request_id = _request_id(request) or answer.id
        else:  # the usual case, without a metadata dict to look into
            user, tags, request_id = request.user or None, tuple(request.tags), answer.id
        self.ledger.record(
            LedgerEntry(
                time=clock.wall(),
                deployment=answer.deployment,
                provider=answer.provider,
                model=answer.model,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cached_input_tokens=usage.cached_input_tokens,
                cache_write_tokens=usage.cache_write_tokens,
                reasoning_tokens=usage.reasoning_tokens,
                cost=cost,
                latency_s=clock.now() - start,
                user=user,
                tags=tags,
                cached=answer.cached,
                saved=saved,
                request_id=request_id,
            )
        )

    def _record_failure(
        self,
        request: ChatRequest,
        error: BaseException | None,
        start: float,
        *,
        error_type: str | None = None,
    ) -> None:
        errors: Sequence[BaseException] = ()
        if error is not None:
            errors = getattr(error, "exceptions", None) or (error,)
        last = errors[-1] if errors else None
        usage, cost = Usage(), _ZERO
        cost_known = True
        for failed in errors:  # a broken call may still have been billed, if it says so
            billed = getattr(failed, "usage", None)
            if isinstance(billed, Usage):
                usage = usage + billed
                detail = getattr(failed, "cost_detail", None)
                if isinstance(detail, CostDetail):
                    cost += detail.total
                elif billed.input_tokens or billed.output_tokens:
                    cost_known = False
        self.ledger.record(
            LedgerEntry(
                time=self._clock.wall(),
                deployment=str(getattr(last, "deployment", None) or ""),
                provider=str(getattr(last, "provider", None) or ""),
                model=str(getattr(last, "model", None) or ""),
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cached_input_tokens=usage.cached_input_tokens,
                cache_write_tokens=usage.cache_write_tokens,
                reasoning_tokens=usage.reasoning_tokens,
                cost=cost if cost_known else None,
                latency_s=self._clock.now() - start,
                user=request_user(request),
                tags=request_tags(request),
                error_type=error_type
                or (type(error).__name__ if error is not None else "Cancelled"),
                request_id=_request_id(request),
            )
        )


def _request_id(request: ChatRequest) -> str | None:
    value = request.metadata.get("request_id") if request.metadata else None
    return str(value) if value is not None else None
