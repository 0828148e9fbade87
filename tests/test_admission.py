"""One object passed down the stack: the queue's grant and the limiter's permit reach the
layers below on the request's CallAdmission, never shared between calls, gone afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from llmrouter_integrations.admission import CallAdmission, RateLimits, RequestQueue
from llmrouter_integrations.core.clock import ManualClock
from llmrouter_integrations.layers.queue import QueueBackend
from llmrouter_integrations.layers.ratelimit import RateLimitBackend
from llmrouter_integrations.providers.base import RateLimitInfo
from llmrouter_integrations.types import ChatChunk, ChatRequest, ChatResponse, Deployment, Message

NAME = "p/m"


class Seeing:
    """The HTTP layer's seat: records the admission each call arrives with."""

    def __init__(self) -> None:
        self.seen: list[tuple[CallAdmission, object, object]] = []

    async def chat(self, request: ChatRequest) -> ChatResponse:
        admission = request.admission
        assert isinstance(admission, CallAdmission)
        self.seen.append((admission, admission.permit, admission.limits))
        await asyncio.sleep(0)  # let the other calls in, as a real send would
        admission.report_rate_limits(NAME, RateLimitInfo(limit_requests=100, remaining_requests=90))
        return ChatResponse(message=Message(role="assistant", content="ok"), deployment=NAME)

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        await self.chat(request)
        yield ChatChunk(text="ok", is_final=True, finish_reason="stop", deployment=NAME)

    async def aclose(self) -> None:
        return None


def stack(clock: ManualClock) -> tuple[QueueBackend, Seeing, RateLimits]:
    limits = RateLimits([Deployment("p", "m", rpm=1_000, max_concurrency=4)], clock=clock)
    queue = RequestQueue(limits, clock=clock, max_wait=None)
    inner = Seeing()
    layer = RateLimitBackend(inner, deployment=NAME, limits=limits, queue=queue)
    return QueueBackend(layer, queue, candidate_names=lambda r: [NAME]), inner, limits


async def test_one_request_object_sent_at_once_never_shares_an_admission() -> None:
    layer, inner, limits = stack(ManualClock())
    request = ChatRequest(messages=[Message(role="user", content="hi")], max_tokens=10)

    await asyncio.gather(*(layer.chat(request) for _ in range(4)))

    admissions = {id(admission) for admission, _, _ in inner.seen}
    permits = {id(permit) for _, permit, _ in inner.seen}
    assert len(admissions) == len(permits) == 4  # each call had its own pass and permit
    assert all(limits_seen is limits for _, _, limits_seen in inner.seen)
    assert request.admission is None  # nothing left on the caller's request
    assert limits.snapshot(NAME)["in_flight"] == 0


async def test_streams_carry_it_too_and_leave_nothing_behind() -> None:
    layer, inner, limits = stack(ManualClock())
    request = ChatRequest(messages=[Message(role="user", content="hi")], max_tokens=10)

    chunks = [chunk async for chunk in layer.stream(request)]

    assert chunks[-1].is_final
    ((admission, permit, seen_limits),) = inner.seen
    assert permit is not None and seen_limits is limits
    assert admission.permit is None and admission.grant is None  # cleared after the call
    assert request.admission is None
