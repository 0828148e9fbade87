"""GenAI span attributes from requests, responses and errors (plain data, no OpenTelemetry).

>>> request_attributes(ChatRequest(messages=[...], max_tokens=50), stream=False)
{'gen_ai.operation.name': 'chat', 'gen_ai.request.stream': False, 'gen_ai.request.max_tokens': 50}
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from ..types import ChatChunk, ChatRequest, ChatResponse, Message, Usage

__all__ = [
    "OPERATION",
    "error_type",
    "input_messages",
    "output_messages",
    "provider_name",
    "request_attributes",
    "server_attributes",
    "usage_attributes",
]

OPERATION = "chat"

# Our provider names where the conventions list a different well-known value.
_PROVIDER_NAMES = {"mistral": "mistral_ai", "xai": "x_ai", "gemini": "gcp.gemini"}


def provider_name(provider: str) -> str:
    """`gen_ai.provider.name` for one of our provider names (`mistral` -> `mistral_ai`)."""
    return _PROVIDER_NAMES.get(provider, provider)


def request_attributes(request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    """The `gen_ai.request.*` attributes the caller asked for (unset options are left out)."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": OPERATION,
        "gen_ai.request.stream": stream,
    }
    if request.max_tokens is not None:
        attributes["gen_ai.request.max_tokens"] = request.max_tokens
    if request.temperature is not None:
        attributes["gen_ai.request.temperature"] = request.temperature
    if request.top_p is not None:
        attributes["gen_ai.request.top_p"] = request.top_p
    if request.stop:
        attributes["gen_ai.request.stop_sequences"] = list(request.stop)
    if request.seed is not None:
        attributes["gen_ai.request.seed"] = request.seed
    if request.response_format:
        attributes["gen_ai.output.type"] = "json"
    if request.model:
        attributes["gen_ai.request.model"] = request.model
    return attributes


def server_attributes(base_url: str) -> dict[str, Any]:
    """`server.address` / `server.port` of a deployment's base URL (never its credentials)."""
    parts = urlsplit(base_url)
    attributes: dict[str, Any] = {}
    if parts.hostname:
        attributes["server.address"] = parts.hostname
        port = parts.port or (443 if parts.scheme == "https" else 80)
        attributes["server.port"] = port
    return attributes


def usage_attributes(usage: Usage | None) -> dict[str, Any]:
    """`gen_ai.usage.*`: input counts every prompt token, cache reads and writes included,
    as the conventions require; cache and reasoning counts only when the provider gave them."""
    if usage is None:
        return {}
    attributes: dict[str, Any] = {
        "gen_ai.usage.input_tokens": usage.input_tokens,
        "gen_ai.usage.output_tokens": usage.output_tokens,
    }
    if usage.cached_input_tokens:
        attributes["gen_ai.usage.cache_read.input_tokens"] = usage.cached_input_tokens
    if usage.cache_write_tokens:
        attributes["gen_ai.usage.cache_creation.input_tokens"] = usage.cache_write_tokens
        attributes["gen_ai.usage.cache_write.input_tokens"] = usage.cache_write_tokens
    if usage.reasoning_tokens:
        attributes["gen_ai.usage.reasoning.output_tokens"] = usage.reasoning_tokens
    return attributes


def response_attributes(answer: ChatResponse | ChatChunk) -> dict[str, Any]:
    """`gen_ai.response.*` of an answer: served model, id and finish reason."""
    attributes: dict[str, Any] = {}
    if answer.model:
        attributes["gen_ai.response.model"] = answer.model
    if answer.id:
        attributes["gen_ai.response.id"] = answer.id
    if answer.finish_reason:
        attributes["gen_ai.response.finish_reasons"] = [answer.finish_reason]
    return attributes


def error_type(error: BaseException) -> str:
    """A low-cardinality `error.type`: our error class name (`RateLimitError`,
    `AllDeploymentsFailedError`...), `cancelled`, or the qualified name of any other error."""
    if isinstance(error, asyncio.CancelledError):
        return "cancelled"
    kind = type(error)
    if kind.__module__.startswith("llmrouter_integrations") or kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


# ------------------------------------------------------------------ content (opt-in)
def _part(part: Any) -> dict[str, Any]:
    kind = getattr(part, "type", None)
    if kind == "text":
        return {"type": "text", "content": part.text or ""}
    url = getattr(part, "image_url", None) or getattr(part, "url", None)
    modality = {"image": "image", "audio": "audio", "file": "document"}.get(str(kind), str(kind))
    if url and not str(url).startswith("data:"):
        return {"type": "uri", "modality": modality, "uri": url}
    if getattr(part, "text", None) and kind == "file":
        return {"type": "text", "content": part.text}
    # Inline bytes are left out: a span is no place for a base64 image or PDF.
    described: dict[str, Any] = {"type": "blob", "modality": modality}
    media_type = getattr(part, "media_type", None)
    if media_type:
        described["mime_type"] = media_type
    return described


def _message(message: Message) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if message.role == "tool":
        parts.append(
            {"type": "tool_call_response", "id": message.tool_call_id, "response": message.text}
        )
    elif isinstance(message.content, str):
        parts.append({"type": "text", "content": message.content})
    elif message.content:
        parts.extend(_part(part) for part in message.content)
    for call in message.tool_calls:
        parts.append(
            {"type": "tool_call", "id": call.id, "name": call.name, "arguments": call.arguments}
        )
    return {"role": message.role, "parts": parts}


def input_messages(messages: Iterable[Message]) -> str:
    """`gen_ai.input.messages` as the conventions' JSON: `[{role, parts: [...]}]`."""
    return json.dumps([_message(m) for m in messages], ensure_ascii=False, default=str)


def output_messages(message: Message | None, text: str, finish_reason: str | None) -> str:
    """`gen_ai.output.messages`: the answer (or a stream's joined text) as JSON."""
    if message is not None:
        entry = _message(message)
    else:
        entry = {"role": "assistant", "parts": [{"type": "text", "content": text}]}
    entry["finish_reason"] = finish_reason or "error"
    return json.dumps([entry], ensure_ascii=False, default=str)
