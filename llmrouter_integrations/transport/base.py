"""The HTTP seam: the `Transport` protocol, the request/response shapes, error mapping.

Two transports implement it: `AiohttpTransport` (the default, `transport/aiohttp.py`) and
`HttpxTransport` over a user's `httpx.AsyncClient` (`transport/httpx.py`). They are the only
modules that import aiohttp or httpx (lazily, so importing the package stays light), and
this module holds what both share to turn their errors into ours: connection trouble is
`ProviderConnectionError`, waiting too long is `ProviderTimeoutError`.

    >>> response = await transport.send(
    ...     HTTPRequest("POST", "http://127.0.0.1:8000/v1/chat/completions", {}, b"{}")
    ... )
    >>> response.status_code
    200
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from ..errors import ProviderTimeoutError

__all__ = ["HTTPRequest", "HTTPResponse", "StreamingResponse", "Transport"]


@dataclass(slots=True)
class HTTPRequest:
    """One HTTP exchange to make. Timeouts are seconds; None means no limit.

    `read_timeout` bounds each wait for bytes (the headers, then every chunk);
    `total_timeout` bounds the whole exchange, or for a stream the wait for its headers.

    >>> HTTPRequest("POST", "https://api.openai.com/v1/chat/completions",
    ...             {"content-type": "application/json"}, b'{"model": "gpt-4o-mini"}',
    ...             connect_timeout=5.0, total_timeout=600.0)
    """

    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    connect_timeout: float | None = None
    read_timeout: float | None = None
    total_timeout: float | None = None

    def __repr__(self) -> str:
        # Headers carry API keys: never show them.
        return f"HTTPRequest({self.method!r}, {_where(self.url)!r}, body={len(self.body)} bytes)"


@dataclass(slots=True)
class HTTPResponse:
    """A complete reply. `headers` looks names up case-insensitively."""

    status_code: int
    headers: Mapping[str, str]
    body: bytes


class StreamingResponse(Protocol):
    """A reply whose body arrives in pieces; valid inside `Transport.stream(...)`.

    `aiter_bytes` raises `ProviderConnectionError` if the connection breaks before the body
    is complete and `ProviderTimeoutError` if a read waits too long; it never just stops.
    """

    status_code: int
    headers: Mapping[str, str]

    def aiter_bytes(self) -> AsyncIterator[bytes]: ...

    async def aread(self) -> bytes: ...


class Transport(Protocol):
    """Moves bytes to and from a provider; the only HTTP the router does goes through one.

    >>> async with transport.stream(request) as response:
    ...     async for data in response.aiter_bytes():
    ...         ...
    """

    async def send(self, request: HTTPRequest) -> HTTPResponse: ...

    def stream(self, request: HTTPRequest) -> AbstractAsyncContextManager[StreamingResponse]: ...

    async def aclose(self) -> None: ...


def _where(url: str) -> str:
    """host:port of a URL: enough to say where, never a path or query that may hold a key."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        return f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return "?"


def _seconds(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"


def _timeout_error(request: HTTPRequest, kind: str) -> ProviderTimeoutError:
    where = _where(request.url)
    if kind == "connect":
        text = f"could not connect to {where} within {_seconds(request.connect_timeout)} s"
    elif kind == "read":
        text = f"no data from {where} within {_seconds(request.read_timeout)} s"
    else:
        text = f"no response from {where} within {_seconds(request.total_timeout)} s"
    return ProviderTimeoutError(text)


def _os_reason(error: BaseException | None) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ConnectionResetError):
        return "connection reset"
    if isinstance(error, OSError) and (error.strerror or str(error)):
        return (error.strerror or str(error)).lower()
    return type(error).__name__ if error is not None else "connection failed"


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and not str(exc):
        return type(exc).__name__
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def _os_error_in(exc: BaseException) -> OSError | None:
    """The most specific OSError behind a wrapped connection error (one with an errno)."""
    found: OSError | None = None
    cause: BaseException | None = exc
    for _ in range(8):
        if cause is None:
            break
        if isinstance(cause, OSError):
            if cause.errno is not None:
                return cause
            found = found or cause
        cause = cause.__cause__ or cause.__context__
    return found


def _safe_cause(exc: BaseException) -> BaseException | None:
    """Keep the original error as the cause unless its repr could show request headers."""
    return None if hasattr(exc, "request_info") else exc
