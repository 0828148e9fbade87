"""The queue layer: waits, fairly, while every candidate deployment is at its limits.

The waiting line itself is `admission.queue.RequestQueue`; this layer asks it for a grant
and hands the grant down on the request's `CallAdmission`.

    >>> layer = QueueBackend(fallback, queue, candidate_names=lambda r: names, max_wait=30)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence

from ..admission.call import admit, dismiss
from ..admission.queue import QUEUE_DEFAULT, Grant, QueueDefault, RequestQueue, request_tokens
from ..core.backend import ChatBackend, WrapperBackend, aclose_stream
from ..types import ChatChunk, ChatRequest, ChatResponse

__all__ = ["QueueBackend"]


class QueueBackend(WrapperBackend):
    """The router's queue layer: waits (fairly) while every candidate deployment is saturated.

    `candidate_names(request)` lists the deployments that may serve the request (the
    router's names, narrowed by `request.deployments`). The grant it obtains travels down
    on the request's `CallAdmission` to the `RateLimitBackend` that takes the capacity, and
    is settled when the call ends.

        >>> layer = QueueBackend(fallback, queue, candidate_names=lambda r: names, max_wait=30)
    """

    def __init__(
        self,
        inner: ChatBackend,
        queue: RequestQueue,
        *,
        candidate_names: Callable[[ChatRequest], Sequence[str]],
        max_wait: float | QueueDefault | None = QUEUE_DEFAULT,
    ) -> None:
        super().__init__(inner)
        self.queue = queue
        self.candidate_names = candidate_names
        self.max_wait = max_wait

    async def _wait(self, request: ChatRequest) -> Grant | None:
        names = self.candidate_names(request)
        tokens = request_tokens(request)
        grant = self.queue.try_grant(names, tokens)
        if grant is not None:
            return grant
        return await self.queue.wait_for_capacity(request, names, tokens, max_wait=self.max_wait)

    async def chat(self, request: ChatRequest) -> ChatResponse:
        names = self.candidate_names(request)
        tokens = request_tokens(request)
        # Most requests find room at once: no coroutine for the wait then.
        grant = self.queue.try_grant(names, tokens)
        if grant is None:
            grant = await self.queue.wait_for_capacity(
                request, names, tokens, max_wait=self.max_wait
            )
        request, admission = admit(request)
        admission.grant = grant
        try:
            return await self.inner.chat(request)
        finally:
            dismiss(request, admission)
            self.queue.settle(grant)

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        grant = await self._wait(request)
        request, admission = admit(request)
        admission.grant = grant
        iterator = aiter(self.inner.stream(request))
        try:
            # The grant matters only until the first chunk: by then the deployment's
            # RateLimitBackend has taken its permit.
            try:
                first = await anext(iterator, None)
            finally:
                admission.grant = None
                self.queue.settle(grant)
            if first is None:
                return
            yield first
            async for chunk in iterator:
                yield chunk
        finally:
            self.queue.settle(grant)
            try:
                await aclose_stream(iterator)
            finally:
                dismiss(request, admission)
