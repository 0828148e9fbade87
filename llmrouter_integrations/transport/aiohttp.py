"""The default transport: pooled aiohttp, one session per event loop.

>>> transport = AiohttpTransport()
>>> response = await transport.send(
...     HTTPRequest("POST", "http://127.0.0.1:8000/v1/chat/completions", {}, b"{}")
... )
>>> response.status_code
200
>>> await transport.aclose()
"""

from __future__ import annotations

import asyncio
import atexit
import os
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..core import is_bridge_loop
from ..errors import ProviderConnectionError, ProviderTimeoutError
from .base import (
    HTTPRequest,
    HTTPResponse,
    _first_line,
    _os_reason,
    _safe_cause,
    _timeout_error,
    _where,
)

if TYPE_CHECKING:
    import aiohttp

__all__ = ["AiohttpTransport"]

_PROXY_ENV = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy")


class _LoopSession:
    """One aiohttp session and the guard that closes it when its event loop shuts down.

    The guard is an async generator parked at its first `yield`. Event loops close parked
    async generators in `shutdown_asyncgens()` (which `asyncio.run` and our sync bridge
    call), so a session left open by a caller who never closed the router is still
    closed on its own loop, without "Unclosed client session" warnings.
    """

    __slots__ = ("guard", "loop", "session")

    def __init__(self, session: aiohttp.ClientSession, loop: asyncio.AbstractEventLoop) -> None:
        self.session = session
        self.loop = loop
        self.guard = _close_on_loop_shutdown(self)
        _open_sessions.add(self)

    def forget(self) -> None:
        """The loop closed without shutting its generators down: mark everything closed."""
        _open_sessions.discard(self)
        connector = self.session.connector
        self.session.detach()  # the session counts as closed from now on
        if connector is not None:
            # The loop is gone, so the connector cannot close its sockets; marking it
            # closed stops a spurious warning that could not be acted on anyway.
            connector._close()


# Every session not yet closed, held here rather than only by its transport: a router
# dropped inside a reference cycle would otherwise have its session and connector
# finalized by the garbage collector before the transport could close them, and aiohttp
# would print "Unclosed client session"/"Unclosed connector" for them.
_open_sessions: set[_LoopSession] = set()
_closing: set[asyncio.Future[None]] = set()  # keeps close tasks alive until they finish


def _schedule_close(entry: _LoopSession) -> None:
    if entry in _open_sessions:
        task = asyncio.ensure_future(entry.guard.aclose())
        _closing.add(task)
        task.add_done_callback(_closing.discard)


async def _close_on_loop_shutdown(entry: _LoopSession) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        try:
            if not entry.session.closed:
                await entry.session.close()
        finally:
            _open_sessions.discard(entry)


def _forget_at_exit() -> None:
    # Sessions of loops that will never run again (a loop the program left open, or one
    # already closed) cannot be closed; the process is ending, so mark them closed
    # rather than let aiohttp warn at teardown. Live loops close theirs (the sync
    # bridge's shutdown, registered earlier, runs after this).
    for entry in list(_open_sessions):
        if not entry.loop.is_running():
            entry.forget()


atexit.register(_forget_at_exit)


class AiohttpTransport:
    """The default transport: pooled aiohttp, one session per event loop.

    A session belongs to the loop it was made on, and the router serves several loops
    (the caller's, and the sync bridge's), so each running loop gets its own session,
    made on first use. `trust_env=None` honours proxy variables only when one is set.

    >>> transport = AiohttpTransport(limit=0, keepalive_timeout=15.0)
    """

    def __init__(
        self,
        *,
        limit: int = 0,
        limit_per_host: int = 0,
        keepalive_timeout: float = 15.0,
        ssl: Any = True,
        trust_env: bool | None = None,
    ) -> None:
        import aiohttp

        self._limit = limit
        self._limit_per_host = limit_per_host
        self._keepalive_timeout = keepalive_timeout
        self._ssl = ssl
        self._trust_env = (
            any(os.environ.get(name) for name in _PROXY_ENV) if trust_env is None else trust_env
        )
        self._sessions: dict[asyncio.AbstractEventLoop, _LoopSession] = {}
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}
        self._timeout_errors: tuple[type[BaseException], ...] = (asyncio.TimeoutError,)
        self._connection_errors: tuple[type[BaseException], ...] = (aiohttp.ClientError, OSError)

    # -- sessions -------------------------------------------------------------------------

    def _session_now(self) -> aiohttp.ClientSession | None:
        entry = self._sessions.get(asyncio.get_running_loop())
        if entry is None or entry.session.closed:
            return None
        return entry.session

    async def _open_session(self) -> aiohttp.ClientSession:
        import aiohttp

        loop = asyncio.get_running_loop()
        self._drop_closed_loops()
        connector = aiohttp.TCPConnector(
            limit=self._limit,
            limit_per_host=self._limit_per_host,
            keepalive_timeout=self._keepalive_timeout,
            ssl=self._ssl,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=self._trust_env,
            raise_for_status=False,
        )
        entry = _LoopSession(session, loop)
        # Registered before the first await, so concurrent first calls share one session.
        self._sessions[loop] = entry
        await entry.guard.__anext__()  # parks the guard: the loop now knows to close it
        return session

    def __del__(self) -> None:
        # Sessions of loops that closed without shutting down their async generators can no
        # longer be closed; mark them so garbage collection does not warn about them.
        try:
            self._drop_closed_loops()
            for entry in list(self._sessions.values()):
                # A router dropped without close(): close its session on its own loop.
                if not entry.session.closed and entry.loop.is_running():
                    entry.loop.call_soon_threadsafe(_schedule_close, entry)
        except Exception:  # pragma: no cover - interpreter teardown
            pass

    def _drop_closed_loops(self) -> None:
        for loop, entry in list(self._sessions.items()):
            if loop.is_closed():
                self._sessions.pop(loop, None)
                if not entry.session.closed:
                    entry.forget()

    def _timeout(self, request: HTTPRequest, stream: bool) -> aiohttp.ClientTimeout:
        # aiohttp's `total` runs until the body is read, so a stream's total is applied
        # around the headers only (in _AiohttpStream), not here.
        total = None if stream else request.total_timeout
        key = (request.connect_timeout, request.read_timeout, total)
        timeout = self._timeouts.get(key)
        if timeout is None:
            if len(self._timeouts) > 256:  # deadline-derived totals are all different
                self._timeouts.clear()
            import aiohttp

            timeout = aiohttp.ClientTimeout(
                total=total, connect=request.connect_timeout, sock_read=request.read_timeout
            )
            self._timeouts[key] = timeout
        return timeout

    async def aclose(self) -> None:
        """Close this loop's session now; ask other live loops to close theirs."""
        current = asyncio.get_running_loop()
        pending: list[asyncio.Future[None]] = []
        for loop, entry in list(self._sessions.items()):
            self._sessions.pop(loop, None)
            if loop is current:
                await entry.guard.aclose()
            elif loop.is_closed():
                if not entry.session.closed:
                    entry.forget()
            elif loop.is_running():
                future = asyncio.run_coroutine_threadsafe(entry.guard.aclose(), loop)
                pending.append(asyncio.wrap_future(future))
            # A loop that is stopped but not closed closes the guard itself (via its
            # async-generator finalizer) the next time it runs or shuts down.
        # On the sync bridge's loop, the other loops' threads may be the very callers
        # blocked waiting for us (a sync `close()` in Jupyter): schedule, don't wait.
        if pending and not is_bridge_loop(current):
            await asyncio.wait(pending, timeout=5.0)

    # -- requests -------------------------------------------------------------------------

    async def send(self, request: HTTPRequest) -> HTTPResponse:
        """Make one exchange and read the whole body."""
        session = self._session_now() or await self._open_session()
        try:
            async with session.request(
                request.method,
                request.url,
                headers=request.headers,
                data=request.body,
                timeout=self._timeout(request, stream=False),
            ) as response:
                body = await response.read()
                return HTTPResponse(response.status, response.headers, body)
        except self._timeout_errors as exc:
            raise self._map_timeout(exc, request) from None
        except self._connection_errors as exc:
            raise self._map_connection(exc, request, mid_stream=False) from _safe_cause(exc)

    def stream(self, request: HTTPRequest) -> _AiohttpStream:
        """Start an exchange whose body is read in pieces: `async with transport.stream(r)`."""
        return _AiohttpStream(self, request)

    def _map_timeout(self, exc: BaseException, request: HTTPRequest) -> ProviderTimeoutError:
        import aiohttp

        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return _timeout_error(request, "connect")
        if isinstance(exc, aiohttp.ServerTimeoutError):
            return _timeout_error(request, "read")
        return _timeout_error(request, "total")

    def _map_connection(
        self, exc: BaseException, request: HTTPRequest, *, mid_stream: bool
    ) -> ProviderConnectionError:
        import aiohttp

        where = _where(request.url)
        if isinstance(exc, aiohttp.ClientConnectorError):
            text = f"{_os_reason(exc.os_error)} to {exc.host}:{exc.port}"
        elif isinstance(exc, aiohttp.ServerDisconnectedError):
            text = f"{where} closed the connection before the response was complete"
        elif isinstance(exc, aiohttp.ClientPayloadError) or mid_stream:
            text = f"connection to {where} broke mid-response ({_first_line(exc)})"
        elif isinstance(exc, aiohttp.InvalidURL):
            error = ProviderConnectionError(f"invalid URL for {where}", retryable=False)
            error.deployment_error = True
            return error
        elif isinstance(exc, OSError):
            text = f"{_os_reason(exc)} talking to {where}"
        else:
            # Other aiohttp errors may carry request details (headers) in their repr.
            text = f"{type(exc).__name__} talking to {where}"
        return ProviderConnectionError(text)


class _AiohttpStream:
    """`async with` wrapper and `StreamingResponse` for one aiohttp streaming exchange."""

    __slots__ = ("_response", "_transport", "headers", "request", "status_code")

    def __init__(self, transport: AiohttpTransport, request: HTTPRequest) -> None:
        self._transport = transport
        self.request = request
        self._response: aiohttp.ClientResponse | None = None
        self.status_code = 0
        self.headers: Mapping[str, str] = {}

    async def __aenter__(self) -> _AiohttpStream:
        transport = self._transport
        request = self.request
        session = transport._session_now() or await transport._open_session()
        try:
            call = session.request(
                request.method,
                request.url,
                headers=request.headers,
                data=request.body,
                timeout=transport._timeout(request, stream=True),
            )
            if request.total_timeout is None:
                response = await call
            else:
                async with asyncio.timeout(request.total_timeout):
                    response = await call
        except transport._timeout_errors as exc:
            raise transport._map_timeout(exc, request) from None
        except transport._connection_errors as exc:
            raise transport._map_connection(exc, request, mid_stream=False) from _safe_cause(exc)
        self._response = response
        self.status_code = response.status
        self.headers = response.headers
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        response = self._response
        if response is None:
            return
        if exc_type is None:
            response.release()  # back to the pool when fully read, else closed
        else:
            response.close()

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        assert self._response is not None, "use inside `async with transport.stream(...)`"
        transport = self._transport
        read = self._response.content.readany
        try:
            while True:
                data = await read()
                if not data:
                    return
                yield data
        except transport._timeout_errors as exc:
            raise transport._map_timeout(exc, self.request) from None
        except transport._connection_errors as exc:
            raise transport._map_connection(exc, self.request, mid_stream=True) from _safe_cause(
                exc
            )

    async def aread(self) -> bytes:
        assert self._response is not None, "use inside `async with transport.stream(...)`"
        transport = self._transport
        try:
            return await self._response.read()
        except transport._timeout_errors as exc:
            raise transport._map_timeout(exc, self.request) from None
        except transport._connection_errors as exc:
            raise transport._map_connection(exc, self.request, mid_stream=True) from _safe_cause(
                exc
            )
