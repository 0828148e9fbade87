"""The httpx side of the HTTP seam: `HttpxTransport` over a user's `httpx.AsyncClient`.

Use it for what aiohttp does not cover the same way: proxies and TLS set up on an httpx
client, or `httpx.MockTransport` in tests.

    >>> client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    >>> router = Router(deployments=[...], http_client=client)   # uses HttpxTransport
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING

from ..errors import ProviderConnectionError
from .base import (
    HTTPRequest,
    HTTPResponse,
    _first_line,
    _os_error_in,
    _os_reason,
    _timeout_error,
    _where,
)

if TYPE_CHECKING:
    import httpx

__all__ = ["HttpxTransport"]


class HttpxTransport:
    """A transport over an `httpx.AsyncClient`: bring your own proxies, TLS or MockTransport.

    The client is closed by `aclose()` only if this transport made it, or `owns_client=True`.

    >>> transport = HttpxTransport(httpx.AsyncClient(transport=httpx.MockTransport(handler)))
    """

    def __init__(
        self, client: httpx.AsyncClient | None = None, *, owns_client: bool | None = None
    ) -> None:
        import httpx

        self.client = client if client is not None else httpx.AsyncClient()
        self._owns_client = (client is None) if owns_client is None else owns_client
        self._errors: tuple[type[BaseException], ...] = (
            httpx.HTTPError,
            asyncio.TimeoutError,
            OSError,
        )

    def _timeout(self, request: HTTPRequest) -> httpx.Timeout:
        import httpx

        return httpx.Timeout(
            None,
            connect=request.connect_timeout,
            read=request.read_timeout,
            write=request.read_timeout,
            pool=request.connect_timeout,
        )

    def _build(self, request: HTTPRequest) -> httpx.Request:
        return self.client.build_request(
            request.method,
            request.url,
            headers=request.headers,
            content=request.body,
            timeout=self._timeout(request),
        )

    async def send(self, request: HTTPRequest) -> HTTPResponse:
        """Make one exchange and read the whole body."""
        try:
            if request.total_timeout is None:
                response = await self.client.send(self._build(request))
            else:
                async with asyncio.timeout(request.total_timeout):
                    response = await self.client.send(self._build(request))
        except self._errors as exc:
            raise self._map(exc, request, mid_stream=False) from None
        return HTTPResponse(response.status_code, response.headers, response.content)

    def stream(self, request: HTTPRequest) -> _HttpxStream:
        """Start an exchange whose body is read in pieces: `async with transport.stream(r)`."""
        return _HttpxStream(self, request)

    async def aclose(self) -> None:
        if self._owns_client:
            await self.client.aclose()

    def _map(
        self, exc: BaseException, request: HTTPRequest, *, mid_stream: bool
    ) -> ProviderConnectionError:
        """Our error for an httpx, OS or time-limit failure."""
        import httpx

        where = _where(request.url)
        if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
            return _timeout_error(request, "connect")
        if isinstance(exc, httpx.ReadTimeout | httpx.WriteTimeout):
            return _timeout_error(request, "read")
        if isinstance(exc, asyncio.TimeoutError | httpx.TimeoutException):
            return _timeout_error(request, "total")
        if isinstance(exc, httpx.ConnectError):
            cause = _os_error_in(exc)
            reason = _os_reason(cause) if cause is not None else _first_line(exc)
            return ProviderConnectionError(f"{reason} to {where}")
        if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError) or mid_stream:
            return ProviderConnectionError(
                f"connection to {where} broke mid-response ({_first_line(exc)})"
            )
        if isinstance(exc, OSError):
            return ProviderConnectionError(f"{_os_reason(exc)} talking to {where}")
        return ProviderConnectionError(f"{type(exc).__name__} talking to {where}")


class _HttpxStream:
    """`async with` wrapper and `StreamingResponse` for one httpx streaming exchange."""

    __slots__ = ("_response", "_transport", "headers", "request", "status_code")

    def __init__(self, transport: HttpxTransport, request: HTTPRequest) -> None:
        self._transport = transport
        self.request = request
        self._response: httpx.Response | None = None
        self.status_code = 0
        self.headers: Mapping[str, str] = {}

    async def __aenter__(self) -> _HttpxStream:
        transport = self._transport
        client = transport.client
        request = self.request
        try:
            if request.total_timeout is None:
                response = await client.send(transport._build(request), stream=True)
            else:
                async with asyncio.timeout(request.total_timeout):
                    response = await client.send(transport._build(request), stream=True)
        except transport._errors as exc:
            raise transport._map(exc, request, mid_stream=False) from None
        self._response = response
        self.status_code = response.status_code
        self.headers = response.headers
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._response is not None:
            await self._response.aclose()

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        assert self._response is not None, "use inside `async with transport.stream(...)`"
        try:
            async for data in self._response.aiter_bytes():
                yield data
        except self._transport._errors as exc:
            raise self._transport._map(exc, self.request, mid_stream=True) from None

    async def aread(self) -> bytes:
        assert self._response is not None, "use inside `async with transport.stream(...)`"
        try:
            return await self._response.aread()
        except self._transport._errors as exc:
            raise self._transport._map(exc, self.request, mid_stream=True) from None
