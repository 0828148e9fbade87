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

from ..errors import ConfigurationError, ProviderConnectionError
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

# How many dead connections a pool may hold when its loop closes (httpx keeps 20 idle).
_MAX_STALE_CONNECTIONS = 32


class HttpxTransport:
    """A transport over an `httpx.AsyncClient`: bring your own proxies, TLS or MockTransport.

    Event loops: an httpx client's pooled connections belong to the loop that opened them.
    Without a client of yours, each event loop gets its own client (like the aiohttp
    transport's one session per loop). A client you hand in is used on whatever loop calls
    it; when the loop it was last used on has closed (`asyncio.run(router.acomplete(...))`
    then `router.complete(...)`), the dead loop's pooled connections fail once each and
    httpx discards them, so the request is sent again on a fresh connection instead of
    failing with a bare `RuntimeError: Event loop is closed`. A client you closed yourself
    is a `ConfigurationError`. The client is closed by `aclose()` only if this transport
    made it, or `owns_client=True`.

    >>> transport = HttpxTransport(httpx.AsyncClient(transport=httpx.MockTransport(handler)))
    """

    def __init__(
        self, client: httpx.AsyncClient | None = None, *, owns_client: bool | None = None
    ) -> None:
        import httpx

        self._given = client
        self._owns_client = (client is None) if owns_client is None else owns_client
        self._clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}
        self._given_loop: asyncio.AbstractEventLoop | None = None
        self._errors: tuple[type[BaseException], ...] = (
            httpx.HTTPError,
            asyncio.TimeoutError,
            OSError,
        )

    @property
    def client(self) -> httpx.AsyncClient:
        """The client serving the running event loop: yours, or this loop's own."""
        if self._given is not None:
            return self._given
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            import httpx

            for old in [known for known in self._clients if known.is_closed()]:
                del self._clients[old]  # its connections died with it
            client = self._clients[loop] = httpx.AsyncClient()
        return client

    def _timeout(self, request: HTTPRequest) -> httpx.Timeout:
        import httpx

        return httpx.Timeout(
            None,
            connect=request.connect_timeout,
            read=request.read_timeout,
            write=request.read_timeout,
            pool=request.connect_timeout,
        )

    def _build(self, client: httpx.AsyncClient, request: HTTPRequest) -> httpx.Request:
        return client.build_request(
            request.method,
            request.url,
            headers=request.headers,
            content=request.body,
            timeout=self._timeout(request),
        )

    async def _open(self, request: HTTPRequest, *, stream: bool) -> httpx.Response:
        """Send the request (body read unless `stream`); every failure mapped to our tree."""
        client = self.client
        if client.is_closed:
            raise ConfigurationError(
                "the httpx client given as http_client= was closed; pass an open client"
                if self._given is not None
                else "this transport was closed (router.close()); build a new router"
            )
        stale = False
        if self._given is not None:
            loop = asyncio.get_running_loop()
            last, self._given_loop = self._given_loop, loop
            stale = last is not None and last is not loop and last.is_closed()
        # Each pooled connection of a closed loop fails once (RuntimeError) and is dropped.
        for _ in range(_MAX_STALE_CONNECTIONS if stale else 1):
            try:
                if request.total_timeout is None:
                    return await client.send(self._build(client, request), stream=stream)
                async with asyncio.timeout(request.total_timeout):
                    return await client.send(self._build(client, request), stream=stream)
            except self._errors as exc:
                error: ProviderConnectionError = self._map(exc, request, mid_stream=False)
            except RuntimeError as exc:
                error = ProviderConnectionError(
                    f"{_first_line(exc)} talking to {_where(request.url)}"
                )
                if stale:
                    continue
            raise error from None
        raise error from None

    async def send(self, request: HTTPRequest) -> HTTPResponse:
        """Make one exchange and read the whole body."""
        response = await self._open(request, stream=False)
        return HTTPResponse(response.status_code, response.headers, response.content)

    def stream(self, request: HTTPRequest) -> _HttpxStream:
        """Start an exchange whose body is read in pieces: `async with transport.stream(r)`."""
        return _HttpxStream(self, request)

    async def aclose(self) -> None:
        """Close the clients this transport owns (yours only with `owns_client=True`)."""
        if self._given is not None:
            if self._owns_client:
                await self._given.aclose()
            return
        current = asyncio.get_running_loop()
        for loop, client in list(self._clients.items()):
            if loop is current:
                await client.aclose()  # kept, closed, so `.client` shows it closed
            else:
                del self._clients[loop]
                if loop.is_running():
                    asyncio.run_coroutine_threadsafe(client.aclose(), loop)

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
        response = await self._transport._open(self.request, stream=True)
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
