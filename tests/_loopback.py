"""A tiny aiohttp.web server on 127.0.0.1 for transport and HTTP-backend tests.

Routes misbehave on purpose (hang, drop mid-stream, answer HTML); `sse_chunks` and
`reply_json` set what the happy routes send, and `peers` records each client's
address so tests can see connection reuse.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

from aiohttp import web

HANG_S = 30.0  # long enough that only a client-side timeout ends the wait


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on: bound, then released."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port


class Loopback:
    """Start with `await server.start()`, stop with `await server.stop()`."""

    def __init__(self) -> None:
        self.sse_chunks: list[bytes] = [b"data: one\n\n", b"data: two\n\n"]
        self.reply_json: Any = {"ok": True}
        self.reply_headers: dict[str, str] = {}
        self.error_body: bytes = b'{"error": {"message": "slow down please", "type": "requests"}}'
        self.peers: list[Any] = []
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self._runner: web.AppRunner | None = None
        self.base = ""

    def url(self, path: str) -> str:
        return self.base + path

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/json", self._json)
        app.router.add_post("/v1/chat/completions", self._json_or_sse)
        app.router.add_post("/hang", self._hang)
        app.router.add_post("/sse", self._sse)
        app.router.add_post("/drop", self._drop)
        app.router.add_post("/stall", self._stall)
        app.router.add_post("/status/{code}", self._status)
        app.router.add_post("/notjson", self._not_json)
        # The same behaviours under a base URL, for backends that append /chat/completions.
        app.router.add_post("/{kind}/chat/completions", self._by_kind)
        runner = web.AppRunner(app, shutdown_timeout=0.1, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        self.base = f"http://{host}:{port}"
        self._runner = runner

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _record(self, request: web.Request) -> bytes:
        body = await request.read()
        self.bodies.append(body)
        self.headers.append(dict(request.headers))
        self.peers.append(
            request.transport.get_extra_info("peername") if request.transport else None
        )
        return body

    async def _by_kind(self, request: web.Request) -> web.StreamResponse:
        kinds = {
            "json": self._json,
            "sse": self._sse,
            "drop": self._drop,
            "stall": self._stall,
            "hang": self._hang,
            "notjson": self._not_json,
        }
        handler = kinds[request.match_info["kind"]]
        return await handler(request)

    async def _json(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response(self.reply_json, headers=self.reply_headers)

    async def _json_or_sse(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        if json.loads(body).get("stream"):
            return await self._write_sse(request)
        return web.json_response(self.reply_json, headers=self.reply_headers)

    async def _hang(self, request: web.Request) -> web.Response:
        await self._record(request)
        await asyncio.sleep(HANG_S)
        return web.json_response({})

    async def _sse(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        return await self._write_sse(request)

    async def _write_sse(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", **self.reply_headers}
        )
        await response.prepare(request)
        for chunk in self.sse_chunks:
            await response.write(chunk)
            await asyncio.sleep(0)
        await response.write_eof()
        return response

    async def _drop(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(self.sse_chunks[0])
        await asyncio.sleep(0.05)  # let the first chunk reach the client
        assert request.transport is not None
        request.transport.close()  # the connection dies mid-body (chunked, never finished)
        return response

    async def _stall(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(self.sse_chunks[0])
        await asyncio.sleep(HANG_S)
        return response

    async def _status(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response(
            status=int(request.match_info["code"]),
            body=self.error_body,
            content_type="application/json",
            headers={"retry-after": "2", **self.reply_headers},
        )

    async def _not_json(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response(
            status=200, text="<html>upstream proxy error</html>", content_type="text/html"
        )
