"""Successful answers on the wire for the fake server: JSON bodies and SSE frames per provider.

    >>> frames = openai_stream(reply, "openai", "gpt-4o-mini", seq=1, include_usage=True)
    >>> frames[-1].data
    b'data: [DONE]\\n\\n'

Shapes follow /work/shared/reference/wire_protocols.md (OpenAI §1, Anthropic §2, Groq §3,
OpenRouter §4), down to field order where the real servers are consistent.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any, Literal

from ._fake_replies import Reply, Usage

__all__ = [
    "Flavor",
    "Frame",
    "anthropic_body",
    "anthropic_stream",
    "chunk_base",
    "completion_id",
    "cut_index",
    "data_frame",
    "event_frame",
    "model_list",
    "openai_body",
    "openai_stream",
]

Flavor = Literal["openai", "groq", "openrouter", "anthropic"]

_FINGERPRINT = "fp_fake0001"
_ARGUMENT_PIECE = 7  # characters per streamed tool-argument fragment


@dataclass(frozen=True)
class Frame:
    """One SSE write; `content` marks frames that carry answer text or tool arguments."""

    data: bytes
    content: bool = False


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def data_frame(value: Any, *, content: bool = False) -> Frame:
    return Frame(f"data: {_dumps(value)}\n\n".encode(), content)


def event_frame(name: str, value: Any, *, content: bool = False) -> Frame:
    return Frame(f"event: {name}\ndata: {_dumps(value)}\n\n".encode(), content)


def _pieces(text: str, size: int | None) -> list[str]:
    if size:
        return [text[i : i + size] for i in range(0, len(text), size)]
    return re.findall(r"\s*\S+|\s+$", text)  # word-like pieces with their leading space


# --- OpenAI, Groq, OpenRouter -------------------------------------------------------------


def _openai_finish(reply: Reply) -> str:
    return "stop" if reply.finish == "stop_sequence" else reply.finish


def openai_usage(usage: Usage, flavor: Flavor) -> dict[str, Any]:
    """`usage` as each OpenAI-style provider reports it (prompt_tokens includes cached)."""
    body: dict[str, Any] = {
        "prompt_tokens": usage.input,
        "completion_tokens": usage.output,
        "total_tokens": usage.input + usage.output,
    }
    prompt_details: dict[str, Any] = {"cached_tokens": usage.cached, "audio_tokens": 0}
    if usage.cache_write:
        prompt_details["cache_write_tokens"] = usage.cache_write
    completion_details = {
        "reasoning_tokens": usage.reasoning,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    }
    if flavor == "groq":
        # Groq reports timings in seconds; details only when they say something.
        times = {"queue_time": 0.0125, "prompt_time": usage.input / 100_000}
        times["completion_time"] = usage.output / 1_000
        body = {**times, **body, "total_time": times["prompt_time"] + times["completion_time"]}
        if usage.cached:
            body["prompt_tokens_details"] = {"cached_tokens": usage.cached}
        if usage.reasoning:
            body["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning}
        return body
    body["prompt_tokens_details"] = prompt_details
    body["completion_tokens_details"] = completion_details
    if flavor == "openrouter":
        cost = usage.cost
        if cost is None:  # documented fake price: $1 per 1M prompt, $2 per 1M completion tokens
            cost = round((usage.input + 2 * usage.output) / 1_000_000, 9)
        body["cost"] = cost
        body["is_byok"] = False
        body["cost_details"] = {
            "upstream_inference_cost": None,
            "upstream_inference_prompt_cost": round(usage.input / 1_000_000, 9),
            "upstream_inference_completions_cost": round(2 * usage.output / 1_000_000, 9),
        }
    return body


def _tool_call_json(reply: Reply) -> list[dict[str, Any]]:
    return [
        {
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": call.arguments_json},
        }
        for call in reply.tool_calls
    ]


def openai_body(
    reply: Reply, flavor: Flavor, model: str, *, seq: int, request_id: str
) -> dict[str, Any]:
    """A non-streaming chat-completion body."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
    if flavor != "groq":
        message.update(refusal=None, annotations=[])
    if reply.reasoning_field and reply.reasoning:
        message[reply.reasoning_field] = reply.reasoning
        if flavor == "openrouter":
            detail = {"type": "reasoning.text", "text": reply.reasoning, "format": "unknown"}
            message["reasoning_details"] = [{**detail, "index": 0}]
    if reply.tool_calls:
        message["content"] = None
        message["tool_calls"] = _tool_call_json(reply)
    choice: dict[str, Any] = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": _openai_finish(reply),
    }
    body: dict[str, Any] = {
        "id": completion_id(flavor, seq),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": openai_usage(reply.usage, flavor),
    }
    if flavor == "groq":
        body.update(usage_breakdown=None, system_fingerprint=_FINGERPRINT)
        body.update(x_groq={"id": request_id}, service_tier="on_demand")
    elif flavor == "openrouter":
        choice["native_finish_reason"] = choice["finish_reason"]
        body = {**body, "provider": "FakeProvider", "system_fingerprint": _FINGERPRINT}
    else:
        body.update(service_tier="default", system_fingerprint=_FINGERPRINT)
    return body


def completion_id(flavor: Flavor, seq: int) -> str:
    """Deterministic response ids in each provider's style."""
    if flavor == "anthropic":
        return f"msg_fake{seq:018d}"
    if flavor == "openrouter":
        return f"gen-fake-{seq:012d}"
    return f"chatcmpl-fake{seq:018d}"


def chunk_base(flavor: Flavor, model: str, seq: int, created: int) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": completion_id(flavor, seq),
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
    }
    if flavor == "openai":
        base["service_tier"] = "default"
    if flavor == "openrouter":
        base["provider"] = "FakeProvider"
    base["system_fingerprint"] = _FINGERPRINT
    return base


def openai_stream(
    reply: Reply,
    flavor: Flavor,
    model: str,
    *,
    seq: int,
    include_usage: bool,
    request_id: str = "",
    chunk_size: int | None = None,
) -> list[Frame]:
    """Every SSE frame of a streamed chat completion, `data: [DONE]` included."""
    base = chunk_base(flavor, model, seq, int(time.time()))
    if include_usage and flavor == "openai":
        base["usage"] = None

    def chunk(
        delta: dict[str, Any], finish: str | None = None, extra: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        if finish is not None and flavor == "openrouter":
            choice["native_finish_reason"] = finish
        return {**base, "choices": [choice], **(extra or {})}

    frames: list[Frame] = []
    if flavor == "openrouter":
        frames.append(Frame(b": OPENROUTER PROCESSING\n\n"))
    groq_first: dict[str, Any] = {"x_groq": {"id": request_id}} if flavor == "groq" else {}
    if reply.reasoning_field and reply.reasoning:
        field = reply.reasoning_field
        frames.append(data_frame(chunk({"role": "assistant", field: ""}, None, groq_first)))
        groq_first = {}
        for piece in _pieces(reply.reasoning, chunk_size):
            frames.append(data_frame(chunk({"content": "", field: piece}), content=True))
    if reply.tool_calls:
        for index, call in enumerate(reply.tool_calls):
            opening = {
                "index": index,
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            if index == 0:
                first = {"role": "assistant", "content": None, "tool_calls": [opening]}
                frames.append(data_frame(chunk({**first, "refusal": None}, None, groq_first)))
            else:
                frames.append(data_frame(chunk({"tool_calls": [opening]})))
            for piece in _pieces(call.arguments_json, _ARGUMENT_PIECE):
                fragment = {"index": index, "function": {"arguments": piece}}
                frames.append(data_frame(chunk({"tool_calls": [fragment]}), content=True))
    else:
        opening_delta = {"role": "assistant", "content": "", "refusal": None}
        frames.append(data_frame(chunk(opening_delta, None, groq_first)))
        for piece in _pieces(reply.text, chunk_size):
            frames.append(data_frame(chunk({"content": piece}), content=True))
    usage = openai_usage(reply.usage, flavor)
    last_extra: dict[str, Any] = {}
    if flavor == "groq":
        last_extra = {"x_groq": {"id": request_id, "usage": usage}}
    frames.append(data_frame(chunk({}, _openai_finish(reply), last_extra)))
    if include_usage or flavor == "openrouter":
        frames.append(data_frame({**base, "choices": [], "usage": usage}))
    frames.append(Frame(b"data: [DONE]\n\n"))
    return frames


# --- Anthropic ------------------------------------------------------------------------------


def anthropic_usage(usage: Usage) -> dict[str, Any]:
    """Anthropic usage: `input_tokens` excludes cache reads and writes."""
    body: dict[str, Any] = {
        "input_tokens": max(0, usage.input - usage.cached - usage.cache_write),
        "cache_creation_input_tokens": usage.cache_write,
        "cache_read_input_tokens": usage.cached,
        "cache_creation": {
            "ephemeral_5m_input_tokens": usage.cache_write - usage.cache_write_1h,
            "ephemeral_1h_input_tokens": usage.cache_write_1h,
        },
        "output_tokens": usage.output,
        "service_tier": "standard",
    }
    if usage.reasoning:
        body["output_tokens_details"] = {"thinking_tokens": usage.reasoning}
    return body


def _stop_reason(reply: Reply) -> str:
    return {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}.get(
        reply.finish, reply.finish
    )


def anthropic_body(reply: Reply, model: str, *, seq: int) -> dict[str, Any]:
    """A non-streaming Messages response."""
    content: list[dict[str, Any]] = [dict(block) for block in reply.thinking]
    if reply.text or not reply.tool_calls:
        content.append({"type": "text", "text": reply.text})
    for call in reply.tool_calls:
        content.append(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
        )
    return {
        "id": completion_id("anthropic", seq),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": _stop_reason(reply),
        "stop_sequence": reply.stop_sequence,
        "usage": anthropic_usage(reply.usage),
    }


def anthropic_stream(
    reply: Reply, model: str, *, seq: int, chunk_size: int | None = None
) -> list[Frame]:
    """Every SSE frame of a streamed Messages response, `message_stop` included."""
    usage = anthropic_usage(reply.usage)
    start_usage = {key: value for key, value in usage.items() if key != "output_tokens_details"}
    start_usage["output_tokens"] = 1
    message: dict[str, Any] = {
        "id": completion_id("anthropic", seq),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": start_usage,
    }
    frames = [event_frame("message_start", {"type": "message_start", "message": message})]
    blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    for block in reply.thinking:
        if block["type"] == "redacted_thinking":
            blocks.append((dict(block), []))
            continue
        pieces = _pieces(block["thinking"], chunk_size)
        deltas = [{"type": "thinking_delta", "thinking": piece} for piece in pieces]
        deltas.append({"type": "signature_delta", "signature": block["signature"]})
        blocks.append(({"type": "thinking", "thinking": "", "signature": ""}, deltas))
    if reply.text or not reply.tool_calls:
        pieces = _pieces(reply.text, chunk_size)
        deltas = [{"type": "text_delta", "text": piece} for piece in pieces]
        blocks.append(({"type": "text", "text": ""}, deltas))
    for call in reply.tool_calls:
        start = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
        json_pieces = ["", *_pieces(call.arguments_json, _ARGUMENT_PIECE)]
        deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in json_pieces]
        blocks.append((start, deltas))
    for index, (start, deltas) in enumerate(blocks):
        block_start = {"type": "content_block_start", "index": index, "content_block": start}
        frames.append(event_frame("content_block_start", block_start))
        if index == 0:
            frames.append(Frame(b'event: ping\ndata: {"type": "ping"}\n\n'))
        for delta in deltas:
            body = {"type": "content_block_delta", "index": index, "delta": delta}
            frames.append(event_frame("content_block_delta", body, content=True))
        frames.append(
            event_frame("content_block_stop", {"type": "content_block_stop", "index": index})
        )
    final_usage = {k: usage[k] for k in ("input_tokens", "cache_creation_input_tokens")}
    final_usage.update(
        cache_read_input_tokens=usage["cache_read_input_tokens"],
        output_tokens=usage["output_tokens"],
    )
    if "output_tokens_details" in usage:
        final_usage["output_tokens_details"] = usage["output_tokens_details"]
    stop = {"stop_reason": _stop_reason(reply), "stop_sequence": reply.stop_sequence}
    frames.append(
        event_frame("message_delta", {"type": "message_delta", "delta": stop, "usage": final_usage})
    )
    frames.append(event_frame("message_stop", {"type": "message_stop"}))
    return frames


def without_finish(frames: list[Frame], flavor: Flavor) -> list[Frame]:
    """The same stream with every finish / stop reason nulled (the end markers stay)."""
    out: list[Frame] = []
    for frame in frames:
        event, sep, data = frame.data.partition(b"data: ")
        if not sep or not data.startswith(b"{"):
            out.append(frame)
            continue
        value = json.loads(data)
        for choice in value.get("choices") or ():
            choice["finish_reason"] = None
            choice.pop("native_finish_reason", None)
        if isinstance(value.get("delta"), dict):
            value["delta"]["stop_reason"] = None
        out.append(Frame(event + sep + _dumps(value).encode() + b"\n\n", frame.content))
    return out


def cut_index(frames: list[Frame], after_chunks: int | None) -> int | None:
    """Index of the frame before which a stream breaks after `after_chunks` content frames.

    With fewer content frames than that, the break comes right after the last one, so a
    stream never completes when a break is scripted.
    """
    if after_chunks is None:
        return None
    seen = 0
    last_content = 0
    for index, frame in enumerate(frames):
        if frame.content:
            if seen == after_chunks:
                return index
            seen += 1
            last_content = index
    return last_content + 1


def model_list(flavor: Flavor, names: list[str]) -> dict[str, Any]:
    """GET /v1/models in OpenAI or Anthropic shape."""
    data: list[dict[str, Any]]
    if flavor == "anthropic":
        data = [
            {"type": "model", "id": n, "display_name": n, "created_at": "2025-01-01T00:00:00Z"}
            for n in names
        ]
        first, last = (names[0], names[-1]) if names else (None, None)
        return {"data": data, "has_more": False, "first_id": first, "last_id": last}
    data = [
        {"id": n, "object": "model", "created": 1_700_000_000, "owned_by": "system"} for n in names
    ]
    return {"object": "list", "data": data}
