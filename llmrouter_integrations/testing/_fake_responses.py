"""Responses that take time or break on purpose: paced SSE streams, cut connections, hangs.

>>> return await write_stream(server, request, record, frames, behavior, error_frame, headers)
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from ._fake_behavior import ModelBehavior, RecordedRequest
from ._fake_runtime import LoopbackServer
from ._fake_wire import Frame, cut_index

__all__ = ["abort", "drop_body", "hang", "json_response", "write_stream"]


def json_response(payload: Any, status: int, headers: Mapping[str, str]) -> web.Response:
    """A JSON body as the providers send it: UTF-8, non-ASCII characters unescaped."""
    text = json.dumps(payload, ensure_ascii=False)
    return web.Response(text=text, status=status, content_type="application/json", headers=headers)


def abort(request: web.Request) -> None:
    """Drop the TCP connection without a proper end, like a crashed upstream."""
    transport = request.transport
    if transport is not None:
        transport.abort()


async def hang(
    server: LoopbackServer, request: web.Request, record: RecordedRequest
) -> web.Response:
    """Never answer: wait until the client gives up or the server shuts down."""
    record.outcome = "hang"
    while not server.closing:
        transport = request.transport
        if transport is None or transport.is_closing():
            break
        await server.sleep(0.05)
    abort(request)
    return web.Response(status=499)


async def drop_body(
    request: web.Request,
    record: RecordedRequest,
    payload: dict[str, Any],
    headers: Mapping[str, str],
) -> web.StreamResponse:
    """Announce the whole JSON body, send half of it, then cut the connection."""
    data = json.dumps(payload, ensure_ascii=False).encode()
    response = web.StreamResponse(status=200, headers=headers)
    response.content_type = "application/json"
    response.content_length = len(data)
    await response.prepare(request)
    with contextlib.suppress(ConnectionError):
        await response.write(data[: len(data) // 2])
    record.outcome = "dropped"
    abort(request)
    return response


async def write_stream(
    server: LoopbackServer,
    request: web.Request,
    record: RecordedRequest,
    frames: list[Frame],
    behavior: ModelBehavior,
    error_frame: Frame,
    headers: Mapping[str, str],
) -> web.StreamResponse:
    """Send SSE frames with the model's pacing, cutting or failing where its script says."""
    drop_at = cut_index(frames, behavior.drop_after_chunks)
    error_at = cut_index(frames, behavior.mid_stream_error)
    response = web.StreamResponse(status=200, headers=headers)
    response.content_type = "text/event-stream"
    response.charset = "utf-8"
    response.headers["Cache-Control"] = "no-cache"
    await response.prepare(request)
    record.status = 200
    await server.sleep(behavior.ttft_s)
    try:
        for index, frame in enumerate(frames):
            if index == drop_at:
                record.outcome = "dropped"
                abort(request)
                return response
            if index == error_at:
                record.outcome = "stream_error"
                await response.write(error_frame.data)
                break
            if index and behavior.inter_chunk_delay_s > 0:
                await server.sleep(behavior.inter_chunk_delay_s)
            if server.closing:
                record.outcome = "dropped"
                abort(request)
                return response
            await response.write(frame.data)
        await response.write_eof()
    except ConnectionError:
        record.outcome = "client_closed"
    return response
