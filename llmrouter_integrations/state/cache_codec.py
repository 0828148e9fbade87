"""Cache keys and cache entries: a request's fingerprint, and answers as JSON-able dicts.

The key is a SHA-256 over a canonical JSON of everything that shapes the answer: the
messages, tools, tool_choice, parallel_tool_calls, response_format, max_tokens,
temperature, top_p, stop, seed, the model override, extra_body, and the candidate
deployments (name, provider, model, base URL), sorted. Never API keys; never what only
describes the call (user, metadata, tags, timeout, priority, deadline, cache flag).
An omitted temperature is the provider's default, so it keys differently from 0.

An entry is a `ChatResponse` as plain JSON (Decimals as strings, tool-call arguments as
objects, the provider's raw JSON as text), plus, for a streamed answer, its chunks in
their original sizes. Exceptions of earlier attempts and routing notes are left out.

    >>> key = cache_key(request, ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"])
    >>> response_from_dict(response_to_dict(response)) == response   # for what is stored
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from ..types import (
    ChatChunk,
    ChatResponse,
    ContentPart,
    CostDetail,
    Deployment,
    Message,
    ProviderBlock,
    ToolCall,
    ToolCallDelta,
    Usage,
)

__all__ = [
    "ENTRY_VERSION",
    "cache_key",
    "chunks_from_entry",
    "entry_from_stream",
    "response_from_dict",
    "response_to_dict",
]

ENTRY_VERSION = 1
_KEY_VERSION = 1
_encode_key = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
).encode
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_PART_FIELDS = (
    *("type", "text", "image_url", "media_type", "data", "detail", "url", "filename"),
    "cache_control",
)
_USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "estimated",  # from here on last, so entries stored before a field existed still load
    "cache_write_1h_tokens",
)


# -- keys --------------------------------------------------------------------------------


def _number(value: float | None) -> float | None:
    return None if value is None else float(value)  # 1 and 1.0 are the same setting


def _content(content: str | list[ContentPart] | None) -> Any:
    if content is None or isinstance(content, str):
        return content
    return [[*(getattr(part, name) for name in _PART_FIELDS), _block(part)] for part in content]


def _block(part: ContentPart) -> list[Any] | None:
    return None if part.block is None else [part.block.dialect, part.block.data]


def _candidate(candidate: str | Deployment) -> str:
    if isinstance(candidate, Deployment):
        return f"{candidate.key}={candidate.provider}/{candidate.model}@{candidate.base_url or ''}"
    return candidate


def cache_key(request: Any, candidates: Iterable[str | Deployment] = ()) -> str:
    """The cache key of a `ChatRequest` served by `candidates` (names or Deployments).

    >>> cache_key(ChatRequest(messages=[Message("user", "hi")]), ["a", "b"])[:12]
    """
    messages = [
        [
            m.role,
            _content(m.content),
            [[c.id, c.name, c.arguments] for c in m.tool_calls],
            m.tool_call_id,
            m.name,
            m.is_error,
        ]
        for m in request.messages
    ]
    tools = (
        None
        if request.tools is None
        else [[t.name, t.description, t.parameters, t.strict] for t in request.tools]
    )
    payload = [
        _KEY_VERSION,
        messages,
        tools,
        request.tool_choice,
        request.parallel_tool_calls,
        request.response_format,
        request.max_tokens,
        _number(request.temperature),
        _number(request.top_p),
        request.stop,
        request.seed,
        request.model,
        request.reasoning,
        request.extra_body or None,
        sorted(_candidate(c) for c in candidates),
    ]
    return hashlib.sha256(_encode_key(payload).encode()).hexdigest()


# -- responses as JSON ---------------------------------------------------------------------


def _copy_json(value: Any) -> Any:
    """A fresh copy of a JSON value, so a caller's edits never reach the cache."""
    if isinstance(value, dict):
        return {k: _copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_json(v) for v in value]
    return value


def _message_to_dict(message: Message) -> dict[str, Any]:
    data: dict[str, Any] = {"role": message.role, "content": message.content}
    if isinstance(message.content, list):
        data["content"] = [_part_to_dict(part) for part in message.content]
    if message.reasoning is not None:
        data["reasoning"] = message.reasoning
    if message.tool_calls:
        data["tool_calls"] = [
            {"id": c.id, "name": c.name, "arguments": _copy_json(c.arguments)}
            for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        data["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        data["name"] = message.name
    return data


def _part_to_dict(part: ContentPart) -> dict[str, Any]:
    data = {name: getattr(part, name) for name in _PART_FIELDS if getattr(part, name) is not None}
    if part.block is not None:
        data["block"] = {"dialect": part.block.dialect, "data": _copy_json(part.block.data)}
    return data


def _part_from_dict(data: dict[str, Any]) -> ContentPart:
    block = data.get("block")
    fields = {k: v for k, v in data.items() if k != "block"}
    if block is not None:
        fields["block"] = ProviderBlock(block["dialect"], _copy_json(block["data"]))
    return ContentPart(**fields)


def _message_from_dict(data: dict[str, Any]) -> Message:
    content = data.get("content")
    if isinstance(content, list):
        content = [_part_from_dict(part) for part in content]
    return Message(
        role=data["role"],
        content=content,
        tool_calls=[
            ToolCall(id=c["id"], name=c["name"], arguments=_copy_json(c["arguments"]))
            for c in data.get("tool_calls", ())
        ],
        tool_call_id=data.get("tool_call_id"),
        name=data.get("name"),
        reasoning=data.get("reasoning"),
    )


def _detail_to_dict(detail: CostDetail | None) -> dict[str, str] | None:
    if detail is None:
        return None
    return {
        "input": str(detail.input),
        "output": str(detail.output),
        "cached_input": str(detail.cached_input),
        "cache_write": str(detail.cache_write),
        "source": detail.source,
    }


def _detail_from_dict(data: dict[str, str] | None) -> CostDetail | None:
    if data is None:
        return None
    return CostDetail(
        input=Decimal(data["input"]),
        output=Decimal(data["output"]),
        cached_input=Decimal(data["cached_input"]),
        cache_write=Decimal(data["cache_write"]),
        source=data["source"],
    )


def _raw_text(raw: Any) -> str | None:
    if raw is None:
        return None
    try:
        return _encode(raw)
    except (TypeError, ValueError):
        return None  # not JSON (an SDK object): left out rather than half-kept


def response_to_dict(response: ChatResponse) -> dict[str, Any]:
    """A `ChatResponse` as JSON-able data (no exceptions, no routing objects, no keys).

    >>> json.dumps(response_to_dict(response))   # safe to store anywhere
    """
    usage = response.usage
    return {
        "v": ENTRY_VERSION,
        "message": _message_to_dict(response.message),
        "finish_reason": response.finish_reason,
        "usage": [getattr(usage, name) for name in _USAGE_FIELDS],
        "cost": response.cost,
        "cost_detail": _detail_to_dict(response.cost_detail),
        "provider": response.provider,
        "model": response.model,
        "deployment": response.deployment,
        "latency_s": response.latency_s,
        "ttft_s": response.ttft_s,
        "id": response.id,
        "raw_json": _raw_text(response.raw),
    }


def response_from_dict(data: dict[str, Any]) -> ChatResponse:
    """The `ChatResponse` that `response_to_dict` stored, as a fresh object.

    >>> response_from_dict(response_to_dict(response)).tool_calls == response.tool_calls
    True
    """
    raw = data.get("raw_json")
    return ChatResponse(
        message=_message_from_dict(data["message"]),
        finish_reason=data.get("finish_reason"),
        usage=Usage(*data["usage"]),
        cost=data.get("cost"),
        cost_detail=_detail_from_dict(data.get("cost_detail")),
        provider=data.get("provider", ""),
        model=data.get("model", ""),
        deployment=data.get("deployment", ""),
        latency_s=data.get("latency_s", 0.0),
        ttft_s=data.get("ttft_s"),
        id=data.get("id"),
        raw=json.loads(raw) if raw is not None else None,
    )


# -- streams -------------------------------------------------------------------------------


def entry_from_stream(chunks: list[ChatChunk], final: ChatChunk) -> dict[str, Any] | None:
    """The entry of a complete stream: its chunks, and the answer they add up to.

    None when the pieces do not make a whole answer (a tool call's arguments are not a
    JSON object), since such an answer cannot be served to `chat()` faithfully.

    >>> entry = entry_from_stream([ChatChunk(text="Hel"), ChatChunk(text="lo")], final)
    >>> response_from_dict(entry).text
    'Hello'
    """
    recorded: list[list[Any]] = []
    text: list[str] = []
    reasoning: list[str] = []
    blocks: list[ProviderBlock] = []
    calls: dict[int, list[Any]] = {}  # index -> [id, name, argument pieces]
    for chunk in chunks:
        deltas = [[d.index, d.id, d.name, d.arguments] for d in chunk.tool_call_deltas]
        step: list[Any] = [chunk.text, chunk.reasoning, deltas]
        if chunk.blocks:
            step.append([[b.dialect, _copy_json(b.data)] for b in chunk.blocks])
            blocks.extend(chunk.blocks)
        recorded.append(step)
        text.append(chunk.text)
        reasoning.append(chunk.reasoning)
        for delta in chunk.tool_call_deltas:
            call = calls.setdefault(delta.index, [None, None, []])
            call[0] = call[0] or delta.id
            call[1] = call[1] or delta.name
            call[2].append(delta.arguments)
    tool_calls = []
    for index in sorted(calls):
        call_id, name, pieces = calls[index]
        try:
            arguments = json.loads("".join(pieces) or "{}")
        except ValueError:
            return None
        if not isinstance(arguments, dict) or name is None:
            return None
        tool_calls.append(ToolCall(id=call_id or "", name=name, arguments=arguments))
    joined = "".join(text)
    content: str | list[ContentPart] | None = joined if joined or not tool_calls else None
    if blocks:  # Provider blocks first, as they came: a thinking turn is replayed that way.
        content = [ContentPart(type="provider", block=block) for block in blocks]
        content += [ContentPart(type="text", text=joined)] if joined else []
    response = ChatResponse(
        message=Message(
            role="assistant",
            content=content,
            tool_calls=tool_calls,
            reasoning="".join(reasoning) or None,
        ),
        finish_reason=final.finish_reason,
        usage=final.usage or Usage(),
        cost=final.cost,
        cost_detail=final.cost_detail,
        provider=final.provider,
        model=final.model,
        deployment=final.deployment,
        latency_s=final.latency_s or 0.0,
        ttft_s=final.ttft_s,
        id=final.id,
        raw=final.raw,
    )
    entry = response_to_dict(response)
    entry["chunks"] = recorded
    return entry


def chunks_from_entry(entry: dict[str, Any]) -> list[ChatChunk]:
    """The content chunks to replay: as streamed, or (for an answer cached from `chat()`)
    the text in one chunk and each tool call in one delta.

    >>> [c.text for c in chunks_from_entry(entry)]
    ['Hel', 'lo']
    """
    deployment = entry.get("deployment", "")
    recorded = entry.get("chunks")
    if recorded is None:
        message = entry["message"]
        content = message.get("content")
        parts = content if isinstance(content, list) else []
        text = content if isinstance(content, str) else ""
        text += "".join(p.get("text") or "" for p in parts if p.get("type") == "text")
        blocks = [[p["block"]["dialect"], p["block"]["data"]] for p in parts if p.get("block")]
        deltas = [
            [i, c["id"], c["name"], _encode(c["arguments"])]
            for i, c in enumerate(message.get("tool_calls", ()))
        ]
        reasoning = message.get("reasoning") or ""
        recorded = [[text, reasoning, deltas, blocks]] if text or deltas or blocks else []
    return [
        ChatChunk(
            text=step[0],
            reasoning=step[1],
            tool_call_deltas=[
                ToolCallDelta(i, call_id, name, args) for i, call_id, name, args in step[2]
            ],
            blocks=[ProviderBlock(d, _copy_json(b)) for d, b in (step[3] if len(step) > 3 else ())],
            deployment=deployment,
        )
        for step in recorded
    ]
