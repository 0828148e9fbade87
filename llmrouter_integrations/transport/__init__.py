"""The HTTP seam: the `Transport` protocol (base), aiohttp (default), httpx, the SSE decoder.

>>> from llmrouter_integrations.transport import AiohttpTransport, HttpxTransport
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import HTTPRequest, HTTPResponse, StreamingResponse, Transport

if TYPE_CHECKING:
    from .aiohttp import AiohttpTransport
    from .httpx import HttpxTransport

__all__ = [
    "AiohttpTransport",
    "HTTPRequest",
    "HTTPResponse",
    "HttpxTransport",
    "StreamingResponse",
    "Transport",
]


def __getattr__(name: str) -> Any:
    # Each transport is imported only when asked for: aiohttp and httpx stay unimported
    # until a Router needs one.
    if name == "AiohttpTransport":
        from .aiohttp import AiohttpTransport

        return AiohttpTransport
    if name == "HttpxTransport":
        from .httpx import HttpxTransport

        return HttpxTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
