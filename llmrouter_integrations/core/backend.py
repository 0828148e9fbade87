"""The one interface every layer implements and wraps: chat, stream, aclose.

A layer (retry, fallback, cache, budget...) is a `ChatBackend` holding another
`ChatBackend`, like httpx transports or pydantic-ai's wrapper models:

    >>> class Logged(WrapperBackend):
    ...     async def chat(self, request):
    ...         print("->", request.messages[-1].text)
    ...         return await self.inner.chat(request)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol, runtime_checkable

from ..types import ChatChunk, ChatRequest, ChatResponse

__all__ = ["ChatBackend", "WrapperBackend", "aclose_stream", "closing_stream"]


@runtime_checkable
class ChatBackend(Protocol):
    """Answers a provider-neutral request, whole or as a stream of chunks.

    `stream` returns an async iterator whose last item has `is_final=True`
    (carrying usage, cost and finish reason); a stream that cannot end that way raises.
    """

    async def chat(self, request: ChatRequest) -> ChatResponse: ...

    def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]: ...

    async def aclose(self) -> None: ...


class WrapperBackend:
    """A layer that passes everything to `inner` unless it overrides it."""

    def __init__(self, inner: ChatBackend) -> None:
        self.inner = inner

    async def chat(self, request: ChatRequest) -> ChatResponse:
        return await self.inner.chat(request)

    def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        return self.inner.stream(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@asynccontextmanager
async def closing_stream(
    stream: AsyncIterator[ChatChunk],
) -> AsyncIterator[AsyncIterator[ChatChunk]]:
    """Iterate an inner stream and close it when the block ends, however it ends.

    A layer that stops early (its reader left, or an error) must close the layers below
    at once, so their permits, in-flight counts and connections are freed now, not
    whenever garbage collection finalises the generators.

        >>> async with closing_stream(self.inner.stream(request)) as chunks:
        ...     async for chunk in chunks:
        ...         yield chunk
    """
    try:
        yield stream
    finally:
        await aclose_stream(stream)


async def aclose_stream(stream: AsyncIterator[Any]) -> None:
    """Close an inner stream now (async generators have `aclose`; plain iterators need none)."""
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()
