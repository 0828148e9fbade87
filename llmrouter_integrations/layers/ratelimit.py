"""The rate-limit layer of one deployment: takes a permit before the call, gives it back after.

The limits themselves (RPM, TPM, concurrency, the provider's view) are
`admission.limits.RateLimits`; waiting is `admission.queue.RequestQueue`'s job. The permit
travels down on the request's `CallAdmission`, so the HTTP layer's rate-limit headers are
matched to the send they answer.

    >>> layer = RateLimitBackend(http_backend, deployment="a", limits=limits, queue=queue)
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

from ..admission.call import CallAdmission, admit, dismiss
from ..admission.limits import Permit, RateLimits, RateLimitWaitError
from ..admission.queue import Grant, RequestQueue, request_tokens
from ..core.backend import ChatBackend, WrapperBackend, aclose_stream
from ..core.events import RouterEvent
from ..errors import QueueTimeoutError, RateLimitError
from ..types import ChatChunk, ChatRequest, ChatResponse, Usage

__all__ = ["RateLimitBackend"]


class RateLimitBackend(WrapperBackend):
    """Per-deployment layer: takes a permit before the call, gives it back after.

    Without capacity it waits in `queue` (fair, on the injected clock) up to `max_wait`
    seconds (None: as long as the request's deadline allows), then raises
    `RateLimitWaitError` so the fallback tries the next deployment; it raises at once
    when the next refill is already too far away. A stream holds its permit until it
    ends. A 429 pauses the deployment for its `retry-after`.

        >>> layer = RateLimitBackend(http_backend, deployment="a", limits=limits, queue=queue)
    """

    def __init__(
        self,
        inner: ChatBackend,
        *,
        deployment: str,
        limits: RateLimits,
        queue: RequestQueue | None = None,
        max_wait: float | None = 10.0,
    ) -> None:
        super().__init__(inner)
        self.deployment = deployment
        self.limits = limits
        self.queue = queue or RequestQueue(limits, clock=limits.clock, events=limits.events)
        self.max_wait = max_wait

    def _acquire_now(
        self, tokens: int, outer: Grant | None, prefetched: tuple[str, int, float] | None
    ) -> Permit | None:
        """The permit, if it can be had without waiting (the usual case). `prefetched`:
        the store's count of this send from the call's one trip (`admission.store_trip`)."""
        name = self.deployment
        # A newcomer waits behind those already in line; one the line let through does not.
        if outer is not None or not self.queue.has_waiters(name):
            permit = self.limits.try_acquire(name, tokens, prefetched)
            if permit is not None:
                self.queue.settle(outer)
                return permit
        else:
            self.limits.discard(name, prefetched)
        return None

    async def _wait_for_permit(
        self, request: ChatRequest, tokens: int, outer: Grant | None
    ) -> Permit:
        name = self.deployment
        clock = self.limits.clock
        started = clock.now()
        deadline = math.inf if self.max_wait is None else started + self.max_wait
        while True:
            left = deadline - clock.now()
            try:
                grant = await self.queue.wait_for_capacity(
                    request,
                    (name,),
                    tokens,
                    max_wait=None if math.isinf(left) else max(0.0, left),
                    give_up_early=True,
                )
            except QueueTimeoutError as error:
                raise self._wait_error(request, tokens, started) from error
            permit = self.limits.try_acquire(name, tokens)
            self.queue.settle(grant)
            if permit is not None:
                self.queue.settle(outer)
                self._emit_waited(clock.now() - started)
                return permit

    def _wait_error(self, request: ChatRequest, tokens: int, started: float) -> RateLimitWaitError:
        """Why the wait ended, with the time really waited: the rate-limit wait or the
        request's deadline, whichever ends first, reached or known to end before the refill."""
        name = self.deployment
        waited = self.limits.clock.now() - started
        delay = self.limits.delay(name, tokens)
        limit_at = math.inf if self.max_wait is None else started + self.max_wait
        if request.deadline is not None and request.deadline < limit_at:
            bound, ends_at = "the request's deadline", request.deadline
        else:
            bound, ends_at = f"the {self.max_wait or 0:g}s rate-limit wait", limit_at
        if math.isfinite(delay) and ends_at - started - waited > 1e-3:  # gave up early
            why = f"next capacity in {delay:.3g}s, after {bound}; gave up after {waited:.3g}s"
        else:
            later = f" (next in {delay:.3g}s)" if math.isfinite(delay) else ""
            why = f"no capacity before {bound}; waited {waited:.3g}s{later}"
        return RateLimitWaitError(
            f"[{name}] at its rate limit: {why}",
            deployment=name,
            delay_s=delay if math.isfinite(delay) else None,
        )

    def _emit_waited(self, waited: float) -> None:
        events = self.limits.events
        if events is not None:
            events.emit(
                RouterEvent(
                    type="rate_limited",
                    deployment=self.deployment,
                    data={"reason": "local", "waited_s": waited},
                    time=self.limits.clock.wall(),
                )
            )

    async def chat(self, request: ChatRequest) -> ChatResponse:
        tokens = request_tokens(request)
        admission = request.admission
        owned = admission is None  # no queue layer above: this layer admits the call
        if owned:
            request, admission = admit(request)
        outer = admission.grant
        prefetched = admission.take_rate(self.deployment)
        permit = self._acquire_now(tokens, outer, prefetched) or await self._wait_for_permit(
            request, tokens, outer
        )
        admission.grant = None  # settled with the permit taken
        admission.permit = permit
        admission.limits = self.limits
        actual: int | None = None
        try:
            response = await self.inner.chat(request)
            usage = response.usage
            if usage is not None:  # _used_tokens, inlined on the hot path
                used = usage.input_tokens + usage.output_tokens
                actual = used if used > 0 else None
            return response
        except RateLimitError as error:
            self.limits.on_rate_limited(self.deployment, error.retry_after)
            raise
        finally:
            admission.permit = admission.limits = None
            if owned:
                dismiss(request, admission)
            self._release(permit, actual, admission)

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        admission = request.admission
        owned = admission is None  # no queue layer above: this layer admits the call
        if owned:
            request, admission = admit(request)
        tokens, outer = request_tokens(request), admission.grant
        prefetched = admission.take_rate(self.deployment)
        permit = self._acquire_now(tokens, outer, prefetched) or await self._wait_for_permit(
            request, tokens, outer
        )
        admission.grant = None
        actual: int | None = None
        iterator = aiter(self.inner.stream(request))
        try:
            # Headers arrive before the first chunk: match them to this permit.
            admission.permit = permit
            admission.limits = self.limits
            try:
                chunk = await anext(iterator, None)
            finally:
                admission.permit = admission.limits = None
            while chunk is not None:
                if chunk.is_final:
                    actual = _used_tokens(chunk.usage)
                    # Done at the provider: free the slot now, so that a budget layer above,
                    # settling on this chunk, carries the store's part in its one trip.
                    self._release(permit, actual, admission)
                yield chunk
                chunk = await anext(iterator, None)
        except RateLimitError as error:
            self.limits.on_rate_limited(self.deployment, error.retry_after)
            raise
        finally:
            try:
                await aclose_stream(iterator)
            finally:
                if owned:
                    dismiss(request, admission)
                self._release(permit, actual, admission)

    def _release(self, permit: Permit, actual: int | None, admission: CallAdmission) -> None:
        """Give the permit back; its store part rides on the budget layer's settle when
        that layer will settle in the store (`admission.finish_later`)."""
        hand_over = admission.finish_later and admission.rate_release is None
        news = self.limits.release(permit, actual, hand_over=hand_over)
        if news is not None:
            admission.rate_release = news


def _used_tokens(usage: Usage | None) -> int | None:
    if usage is None:
        return None
    used = usage.input_tokens + usage.output_tokens
    return used if used > 0 else None
