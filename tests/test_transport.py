"""The HTTP seam: real loopback sockets for aiohttp and httpx, MockTransport for httpx."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
from _loopback import Loopback, closed_port

from llmrouter_integrations.core import _sync
from llmrouter_integrations.errors import ProviderConnectionError, ProviderTimeoutError
from llmrouter_integrations.transport import (
    AiohttpTransport,
    HTTPRequest,
    HttpxTransport,
    Transport,
)

SECRET = "sk-test-SECRET-never-shown"
HEADERS = {"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"}


@pytest.fixture
async def server() -> AsyncIterator[Loopback]:
    loopback = Loopback()
    await loopback.start()
    yield loopback
    await loopback.stop()


@pytest.fixture(params=["aiohttp", "httpx"])
async def transport(request: pytest.FixtureRequest) -> AsyncIterator[Transport]:
    made: Transport = AiohttpTransport() if request.param == "aiohttp" else HttpxTransport()
    yield made
    await made.aclose()


def post(url: str, body: bytes = b'{"hello": "world"}', **timeouts: float) -> HTTPRequest:
    return HTTPRequest("POST", url, dict(HEADERS), body, **timeouts)


def assert_secret_free(error: BaseException) -> None:
    assert SECRET not in str(error)
    assert SECRET not in repr(error)


# -- whole exchanges -------------------------------------------------------------------------


async def test_send_round_trips_body_headers_and_status(
    server: Loopback, transport: Transport
) -> None:
    server.reply_json = {"answer": 42}
    server.reply_headers = {"X-RateLimit-Remaining-Requests": "7"}
    response = await transport.send(post(server.url("/json"), total_timeout=5))
    assert response.status_code == 200
    assert json.loads(response.body) == {"answer": 42}
    assert response.headers["x-ratelimit-remaining-requests"] == "7"  # any case works
    assert server.bodies == [b'{"hello": "world"}']
    assert server.headers[0]["Authorization"] == f"Bearer {SECRET}"


async def test_error_status_is_returned_not_raised(server: Loopback, transport: Transport) -> None:
    response = await transport.send(post(server.url("/status/429")))
    assert response.status_code == 429
    assert b"slow down please" in response.body
    assert response.headers["Retry-After"] == "2"


async def test_hanging_server_times_out_quickly(server: Loopback, transport: Transport) -> None:
    started = time.monotonic()
    with pytest.raises(ProviderTimeoutError) as caught:
        await transport.send(post(server.url("/hang"), total_timeout=0.2))
    assert time.monotonic() - started < 2.0
    assert "within 0.2 s" in str(caught.value)
    assert caught.value.retryable
    assert_secret_free(caught.value)


async def test_read_timeout_bounds_the_wait_for_headers(
    server: Loopback, transport: Transport
) -> None:
    with pytest.raises(ProviderTimeoutError, match=r"no data from 127\.0\.0\.1:\d+ within 0\.2 s"):
        await transport.send(post(server.url("/hang"), read_timeout=0.2))


async def test_refused_connection_is_a_connection_error(transport: Transport) -> None:
    port = closed_port()
    with pytest.raises(ProviderConnectionError) as caught:
        await transport.send(post(f"http://127.0.0.1:{port}/v1/chat", connect_timeout=2))
    assert not isinstance(caught.value, ProviderTimeoutError)
    assert f"connection refused to 127.0.0.1:{port}" in str(caught.value)
    assert caught.value.retryable
    assert_secret_free(caught.value)


# -- streams ---------------------------------------------------------------------------------


async def test_stream_yields_the_body_in_order(server: Loopback, transport: Transport) -> None:
    server.sse_chunks = [b"data: one\n\n", b"data: two\n\n", b"data: [DONE]\n\n"]
    async with transport.stream(post(server.url("/sse"), read_timeout=5)) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        received = b"".join([data async for data in response.aiter_bytes()])
    assert received == b"data: one\n\ndata: two\n\ndata: [DONE]\n\n"


async def test_stream_error_status_body_can_be_read(server: Loopback, transport: Transport) -> None:
    async with transport.stream(post(server.url("/status/503"))) as response:
        assert response.status_code == 503
        assert b"slow down please" in await response.aread()


async def test_mid_stream_drop_raises_instead_of_ending(
    server: Loopback, transport: Transport
) -> None:
    received: list[bytes] = []
    with pytest.raises(ProviderConnectionError) as caught:
        async with transport.stream(post(server.url("/drop"), read_timeout=5)) as response:
            async for data in response.aiter_bytes():
                received.append(data)
    assert not isinstance(caught.value, ProviderTimeoutError)
    assert received == [b"data: one\n\n"]
    assert "broke mid-response" in str(caught.value)
    assert_secret_free(caught.value)


async def test_stalled_stream_hits_the_read_timeout(server: Loopback, transport: Transport) -> None:
    started = time.monotonic()
    with pytest.raises(ProviderTimeoutError):
        async with transport.stream(post(server.url("/stall"), read_timeout=0.2)) as response:
            async for _ in response.aiter_bytes():
                pass
    assert time.monotonic() - started < 2.0


async def test_stream_total_timeout_bounds_only_the_headers(
    server: Loopback, transport: Transport
) -> None:
    with pytest.raises(ProviderTimeoutError, match="no response"):
        async with transport.stream(post(server.url("/hang"), total_timeout=0.2)):
            pass
    # A total shorter than the body's duration does not cut a stream whose headers came.
    server.sse_chunks = [b"data: a\n\n"] * 3
    async with transport.stream(post(server.url("/sse"), total_timeout=0.5)) as response:
        await asyncio.sleep(0.6)
        assert b"".join([d async for d in response.aiter_bytes()]) == b"data: a\n\n" * 3


# -- aiohttp session per event loop ----------------------------------------------------------


async def test_one_pooled_session_per_loop(server: Loopback) -> None:
    transport = AiohttpTransport()
    request = post(server.url("/json"))
    await transport.send(request)
    await transport.send(request)
    assert len(transport._sessions) == 1
    assert server.peers[0] == server.peers[1]  # the same keep-alive connection

    # The sync bridge's loop gets a session of its own (run from a worker thread so this
    # loop keeps serving the loopback server meanwhile).
    await asyncio.to_thread(_sync.run_sync, lambda: transport.send(request))
    sessions = [entry.session for entry in transport._sessions.values()]
    assert len(sessions) == 2 and sessions[0] is not sessions[1]

    await transport.aclose()
    assert all(session.closed for session in sessions)
    assert transport._sessions == {}


async def test_sync_close_from_inside_a_running_loop_does_not_wait_on_it(
    server: Loopback,
) -> None:
    # As in Jupyter: a session on this (running) loop, then a sync close from this thread,
    # which blocks this loop while the bridge's loop does the closing.
    transport = AiohttpTransport()
    await transport.send(post(server.url("/json")))
    (entry,) = transport._sessions.values()
    started = time.monotonic()
    _sync.run_sync(transport.aclose())
    assert time.monotonic() - started < 1.0
    for _ in range(20):  # this loop runs again: the scheduled close happens
        if entry.session.closed:
            break
        await asyncio.sleep(0.01)
    assert entry.session.closed


async def test_concurrent_first_calls_share_one_session(server: Loopback) -> None:
    transport = AiohttpTransport()
    responses = await asyncio.gather(
        *(transport.send(post(server.url("/json"))) for _ in range(20))
    )
    assert [r.status_code for r in responses] == [200] * 20
    assert len(transport._sessions) == 1
    await transport.aclose()


async def test_a_closed_transport_reopens_on_next_use(server: Loopback) -> None:
    transport = AiohttpTransport()
    await transport.send(post(server.url("/json")))
    await transport.aclose()
    assert (await transport.send(post(server.url("/json")))).status_code == 200
    await transport.aclose()


async def test_session_left_open_is_closed_when_its_loop_shuts_down(server: Loopback) -> None:
    transport = AiohttpTransport()
    request = post(server.url("/json"))

    def one_call_on_a_fresh_loop() -> None:
        asyncio.run(transport.send(request))  # never calls aclose()

    await asyncio.to_thread(one_call_on_a_fresh_loop)
    (entry,) = transport._sessions.values()
    assert entry.session.closed  # asyncio.run's shutdown_asyncgens closed it

    await asyncio.to_thread(one_call_on_a_fresh_loop)  # drops the dead loop's entry
    assert len(transport._sessions) == 1
    await transport.aclose()


def test_interpreter_exit_with_open_sessions_is_quiet() -> None:
    script = textwrap.dedent(
        """
        import asyncio, gc, threading
        from aiohttp import web
        from llmrouter_integrations.core import _sync
        from llmrouter_integrations.core._sync import run_sync
        from llmrouter_integrations.transport import AiohttpTransport, HTTPRequest

        async def hello(request):
            return web.json_response({"ok": True})

        loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_post("/", hello)
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        port = runner.addresses[0][1]
        threading.Thread(target=loop.run_forever, daemon=True).start()

        transport = AiohttpTransport()
        request = HTTPRequest("POST", f"http://127.0.0.1:{port}/", {}, b"{}")
        print(run_sync(transport.send(request)).status_code)
        # What atexit runs; then collect, so an unclosed session would warn right here.
        _sync.shutdown()
        del transport
        gc.collect()
        """
    )
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "200"
    assert "unclosed" not in done.stderr.lower()
    assert "Traceback" not in done.stderr


# -- httpx with MockTransport ----------------------------------------------------------------


class SplitStream(httpx.AsyncByteStream):
    """Hands the body out in pieces of the given sizes, then optionally breaks."""

    def __init__(self, body: bytes, sizes: list[int], then: Exception | None = None) -> None:
        self.body, self.sizes, self.then = body, sizes, then

    async def __aiter__(self) -> AsyncIterator[bytes]:
        position = 0
        for size in self.sizes:
            if position >= len(self.body):
                break
            yield self.body[position : position + size]
            position += size
        if self.then is not None:
            raise self.then
        if position < len(self.body):
            yield self.body[position:]


def mock_client(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


SSE = (
    'data: {"choices":[{"delta":{"content":"héllo"}}]}\r\n\r\n'
    'data: {"choices":[{"delta":{"content":" wörld"}}]}\r\n\r\n'
    "data: [DONE]\r\n\r\n"
).encode()


def awkward_sizes() -> Iterator[list[int]]:
    yield [1] * len(SSE)  # one byte at a time, splitting the UTF-8 of é and ö
    yield [3, 7, 2, 50, 1, 1, 1000]


@pytest.mark.parametrize("sizes", list(awkward_sizes()))
async def test_httpx_mock_stream_survives_awkward_splits(sizes: list[int]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == f"Bearer {SECRET}"
        assert json.loads(request.content) == {"hello": "world"}
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, stream=SplitStream(SSE, sizes)
        )

    transport = HttpxTransport(mock_client(handler))
    pieces: list[bytes] = []
    async with transport.stream(post("https://api.example.com/v1/chat/completions")) as response:
        assert response.status_code == 200
        async for data in response.aiter_bytes():
            pieces.append(data)
    assert b"".join(pieces) == SSE
    assert len(pieces) > 1


async def test_httpx_mock_send_and_error_status() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/bad"):
            return httpx.Response(401, json={"error": {"message": "invalid key"}})
        return httpx.Response(200, json={"id": "x"}, headers={"x-request-id": "r1"})

    transport = HttpxTransport(mock_client(handler))
    good = await transport.send(post("https://api.example.com/v1/good"))
    assert (good.status_code, json.loads(good.body), good.headers["X-Request-Id"]) == (
        200,
        {"id": "x"},
        "r1",
    )
    bad = await transport.send(post("https://api.example.com/v1/bad"))
    assert bad.status_code == 401 and b"invalid key" in bad.body


async def test_httpx_mock_mid_stream_break_raises() -> None:
    broken = SplitStream(SSE, [10, 10], then=httpx.RemoteProtocolError("peer closed connection"))

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=broken)

    transport = HttpxTransport(mock_client(handler))
    with pytest.raises(ProviderConnectionError, match=r"api\.example\.com broke mid-response"):
        async with transport.stream(post("https://api.example.com/v1/chat/completions")) as r:
            async for _ in r.aiter_bytes():
                pass


async def test_httpx_mock_timeout_and_connect_errors_are_ours() -> None:
    def timeout_handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    def refused_handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    with pytest.raises(ProviderTimeoutError):
        await HttpxTransport(mock_client(timeout_handler)).send(post("https://a.example/x"))
    with pytest.raises(ProviderConnectionError) as caught:
        await HttpxTransport(mock_client(refused_handler)).send(post("https://a.example/x"))
    assert "a.example" in str(caught.value)
    assert_secret_free(caught.value)


async def test_httpx_transport_closes_only_clients_it_owns() -> None:
    client = mock_client(lambda request: httpx.Response(200))
    await HttpxTransport(client).aclose()
    assert not client.is_closed
    await HttpxTransport(client, owns_client=True).aclose()
    assert client.is_closed
    own = HttpxTransport()
    made = own.client  # made lazily, one per event loop
    await own.aclose()
    assert made.is_closed and own.client is made


def test_request_repr_hides_headers() -> None:
    request = post("https://api.openai.com/v1/chat/completions?key=abc")
    assert SECRET not in repr(request)
    assert "abc" not in repr(request)
