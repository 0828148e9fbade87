"""A decided reply on the wire, as its script delivers it: paced SSE, cut connections, hangs.

>>> return await send_reply(server, request, flavor, record, reply, behavior, served, seq,
...                         headers, request_id)
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from ._fake_behavior import ModelBehavior, RecordedRequest
from ._fake_errors import malformed_frame, stream_error_frame
from ._fake_replies import Reply
from ._fake_runtime import LoopbackServer
from ._fake_wire import (
    Flavor,
    Frame,
    anthropic_body,
    anthropic_stream,
    cut_index,
    openai_body,
    openai_stream,
    without_finish,
)

__all__ = ["abort", "drop_body", "hang", "json_response", "send_reply", "write_stream"]


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


async def send_reply(
    server: LoopbackServer,
    request: web.Request,
    flavor: Flavor,
    record: RecordedRequest,
    reply: Reply,
    behavior: ModelBehavior,
    served: str,
    seq: int,
    headers: dict[str, str],
    request_id: str,
) -> web.StreamResponse:
    """Send `reply` as `flavor`'s body or stream, with the delivery faults `behavior` scripts."""
    if record.stream:
        return await _send_stream(
            server, request, flavor, record, reply, behavior, served, seq, headers
        )
    if flavor == "anthropic":
        payload = anthropic_body(reply, served, seq=seq)
    else:
        payload = openai_body(reply, flavor, served, seq=seq, request_id=request_id)
    if behavior.no_finish_reason:
        if flavor == "anthropic":
            payload["stop_reason"] = None
        for choice in payload.get("choices") or ():
            choice["finish_reason"] = None
            choice.pop("native_finish_reason", None)
    if behavior.raw_body is not None:
        raw = behavior.raw_body
        return web.Response(
            body=raw.encode() if isinstance(raw, str) else raw,
            status=behavior.raw_status,
            content_type="application/json",
            headers=headers,
        )
    if behavior.malformed_json:
        record.outcome = "malformed"
        text = json.dumps(payload)[:40] + "\n"
        return web.Response(text=text, content_type="application/json", headers=headers)
    if behavior.drop_after_chunks is not None:
        return await drop_body(request, record, payload, headers)
    return json_response(payload, 200, headers)


async def _send_stream(
    server: LoopbackServer,
    request: web.Request,
    flavor: Flavor,
    record: RecordedRequest,
    reply: Reply,
    behavior: ModelBehavior,
    served: str,
    seq: int,
    headers: dict[str, str],
) -> web.StreamResponse:
    body = record.body if isinstance(record.body, dict) else {}
    if flavor == "anthropic":
        frames = anthropic_stream(reply, served, seq=seq, chunk_size=behavior.chunk_size)
    else:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        frames = openai_stream(
            reply,
            flavor,
            served,
            seq=seq,
            include_usage=include_usage,
            request_id=headers.get("x-request-id", ""),
            chunk_size=behavior.chunk_size,
        )
    if behavior.no_finish_reason:
        frames = without_finish(frames, flavor)
    if behavior.raw_stream is not None:
        frames = [
            Frame(piece.encode() if isinstance(piece, str) else piece)
            for piece in behavior.raw_stream
        ]
    if behavior.malformed_json:
        frames.insert(cut_index(frames, 0) or 0, malformed_frame(flavor))
        record.outcome = "malformed"
    error_frame = stream_error_frame(flavor, served, seq, behavior.error_message)
    return await write_stream(server, request, record, frames, behavior, error_frame, headers)
