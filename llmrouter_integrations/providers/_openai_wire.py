"""OpenAI chat-completions JSON shapes to and from our types (messages, tools, usage).

>>> message_to_wire(Message(role="user", content="hi"))
{'role': 'user', 'content': 'hi'}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ..errors import BadRequestError, ResponseDecodeError
from ..types import ContentPart, FinishReason, Message, ToolCall, ToolSpec, Usage
from ._common import arguments_from_json, data_url, decimal_or_none, token_count

FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "eos": "stop",
    "end_turn": "stop",
    "length": "length",
    "max_tokens": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "tool_use": "tool_calls",
    "content_filter": "content_filter",
}


def finish_reason(raw: Any) -> FinishReason | None:
    """Our finish reason for the wire one; unknown non-empty reasons count as "stop"."""
    if not raw:
        return None
    return FINISH_REASONS.get(str(raw), "stop")


def text_of(content: Any) -> str:
    """The text of a message or delta `content`: a string, or text parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some servers answer with content parts
        return "".join(
            part.get("text") or ""
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def tool_call_from_wire(call: Any, position: int, truncated: bool) -> ToolCall:
    """A `ToolCall` from a reply's `tool_calls[]` entry (arguments JSON parsed)."""
    if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
        raise ResponseDecodeError("chat completion reply has a malformed tool call")
    function = call["function"]
    arguments = function.get("arguments")
    if isinstance(arguments, dict):
        parsed = arguments
    else:
        parsed = arguments_from_json(
            arguments if isinstance(arguments, str) else None,
            truncated=truncated,
            where=f"tool call {function.get('name')!r}",
        )
    return ToolCall(
        id=str(call.get("id") or f"call_{position}"),
        name=str(function.get("name") or ""),
        arguments=parsed,
    )


count = token_count


def usage_from_wire(data: Any) -> Usage | None:
    """Usage in our convention; OpenAI's prompt_tokens already counts cached tokens."""
    if not isinstance(data, dict) or "prompt_tokens" not in data:
        return None
    get = data.get
    prompt = count(get("prompt_tokens"), "usage.prompt_tokens")
    completion = count(get("completion_tokens"), "usage.completion_tokens")
    total = count(get("total_tokens"), "usage.total_tokens")
    prompt_details = get("prompt_tokens_details")
    cached = write = reasoning = 0
    if isinstance(prompt_details, dict):
        cached = count(prompt_details.get("cached_tokens"), "usage.cached_tokens")
        write = count(prompt_details.get("cache_write_tokens"), "usage.cache_write_tokens")
    if not cached:  # DeepSeek reports cache hits in its own field.
        cached = count(get("prompt_cache_hit_tokens"), "usage.prompt_cache_hit_tokens")
    completion_details = get("completion_tokens_details")
    if isinstance(completion_details, dict):
        reasoning = count(completion_details.get("reasoning_tokens"), "usage.reasoning_tokens")
    return Usage(
        input_tokens=prompt,
        output_tokens=completion,
        total_tokens=total or prompt + completion,
        cached_input_tokens=cached,
        cache_write_tokens=write,
        reasoning_tokens=reasoning,
    )


def groq_usage(payload: Mapping[str, Any]) -> Usage | None:
    """Usage Groq puts in `x_groq.usage` on a stream's final choice chunk."""
    extra = payload.get("x_groq")
    return usage_from_wire(extra.get("usage")) if isinstance(extra, dict) else None


def provider_cost(data: Any) -> Decimal | None:
    """OpenRouter's `usage.cost` (credits = USD), plus the upstream bill when the key is BYOK."""
    if not isinstance(data, dict):
        return None
    cost = decimal_or_none(data.get("cost"))
    if cost is None:
        return None
    details = data.get("cost_details")
    if data.get("is_byok") and isinstance(details, dict):
        upstream = decimal_or_none(details.get("upstream_inference_cost"))
        if upstream is not None:
            cost += upstream
    return cost


def messages_to_wire(messages: list[Message], *, cache_marks: bool = False) -> list[dict[str, Any]]:
    """The chat messages, with what tools returned besides text moved into a user turn.

    The API takes images (and files, audio) from user turns only: a tool message holding
    one is refused ("Image URLs are only allowed for messages with role 'user'"). So a tool
    message keeps its text plus a note, and its media follow the run of tool messages
    (which must stay together right after the tool calls) in one user message.

    >>> messages_to_wire([Message(role="tool", tool_call_id="c1", content=[ContentPart(
    ...     type="image", image_url="https://x/cat.png")])])[1]["content"][1]["type"]
    'image_url'
    """
    if not any(m.role == "tool" and isinstance(m.content, list) for m in messages):
        return [message_to_wire(message, cache_marks=cache_marks) for message in messages]
    wire: list[dict[str, Any]] = []
    moved: list[dict[str, Any]] = []
    for message in messages:
        if moved and message.role != "tool":
            wire.append({"role": "user", "content": moved})
            moved = []
        wire.append(message_to_wire(message, cache_marks=cache_marks))
        media = _tool_media(message)
        if media:
            label = f"Returned by tool call {message.tool_call_id or ''}:"
            moved.extend([{"type": "text", "text": label}, *media])
    if moved:
        wire.append({"role": "user", "content": moved})
    return wire


def _tool_media(message: Message) -> list[dict[str, Any]]:
    if message.role != "tool" or not isinstance(message.content, list):
        return []
    return [part_to_wire(part) for part in message.content if part.type != "text"]


def _tool_text(message: Message) -> str:
    text = message.text
    if isinstance(message.content, list) and any(p.type != "text" for p in message.content):
        text = f"{text}\n(attachments follow in the next user message)".lstrip()
    if message.is_error and not text.lower().startswith("error"):
        # Chat completions has no error flag on tool results; the model reads it here.
        text = f"Error: {text}"
    return text


def message_to_wire(message: Message, *, cache_marks: bool = False) -> dict[str, Any]:
    """One `Message` as an OpenAI chat message dict (a tool's media: see messages_to_wire).

    With `cache_marks` (OpenRouter, which passes them on to Anthropic and Gemini models), a
    message carrying `cache_control` is sent as parts that keep their marks.
    """
    wire: dict[str, Any] = {"role": message.role}
    if message.role == "tool":
        wire["tool_call_id"] = message.tool_call_id or ""
        wire["content"] = _tool_text(message)
        return wire
    content = message.content
    if cache_marks and _marked(message):
        wire["content"] = _marked_parts(message)
    elif isinstance(content, list) and any(part.type in _MEDIA for part in content):
        wire["content"] = [part_to_wire(part) for part in content if part.type != "provider"]
    elif message.tool_calls and (
        content is None or (isinstance(content, list) and not message.text)
    ):
        # Nothing to say but tool calls (another dialect's thinking blocks are not text).
        wire["content"] = None
    else:
        # Text-only parts are sent as one string: several compatible servers accept
        # nothing else for system and assistant turns.
        wire["content"] = message.text
    if message.tool_calls:
        wire["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for call in message.tool_calls
        ]
    if message.name:
        wire["name"] = message.name
    return wire


_MEDIA = ("image", "file", "audio")


def _marked(message: Message) -> bool:
    if message.cache_control is not None:
        return True
    return isinstance(message.content, list) and any(p.cache_control for p in message.content)


def _marked_parts(message: Message) -> list[dict[str, Any]]:
    content = message.content
    parts = content if isinstance(content, list) else [ContentPart("text", text=content or "")]
    wire: list[dict[str, Any]] = []
    for part in parts:
        if part.type == "provider" or (part.type == "text" and not part.text):
            continue
        item = part_to_wire(part)
        if part.cache_control:
            item["cache_control"] = dict(part.cache_control)
        wire.append(item)
    if wire and message.cache_control:
        wire[-1]["cache_control"] = dict(message.cache_control)
    return wire


def part_to_wire(part: ContentPart) -> dict[str, Any]:
    """One content part as a text, image_url, file or input_audio part.

    Base64 images and PDFs become data: URLs; a plain-text document becomes a text part
    headed by its file name. A PDF by URL cannot be sent (chat completions takes files as
    data only): that is an error another deployment may not have.
    """
    if part.type == "text":
        return {"type": "text", "text": part.text or ""}
    if part.type == "file":
        return _file_to_wire(part)
    if part.type == "audio":
        audio_format = part.audio_format
        if audio_format is None:
            raise _unsupported(f"audio of type {part.media_type!r} (only wav and mp3)")
        return {
            "type": "input_audio",
            "input_audio": {"data": part.data or "", "format": audio_format},
        }
    url = part.image_url if part.image_url else data_url(part.media_type, part.data or "")
    image: dict[str, Any] = {"url": url}
    if part.detail:
        image["detail"] = part.detail
    return {"type": "image_url", "image_url": image}


def _file_to_wire(part: ContentPart) -> dict[str, Any]:
    if part.data:
        media_type = part.media_type or "application/pdf"
        name = part.filename or ("document.pdf" if media_type == "application/pdf" else "file")
        return {
            "type": "file",
            "file": {"filename": name, "file_data": f"data:{media_type};base64,{part.data}"},
        }
    if part.url:
        raise _unsupported("files by URL (send the PDF as base64 data)")
    heading = f"{part.filename}:\n" if part.filename else ""
    return {"type": "text", "text": heading + (part.text or "")}


def _unsupported(what: str) -> BadRequestError:
    error = BadRequestError(f"the chat completions API does not accept {what}", status_code=400)
    error.deployment_error = True  # another deployment may take it
    return error


def reasoning_of(message: Mapping[str, Any]) -> str | None:
    """Reasoning text an OpenAI-compatible server put beside the answer, if any."""
    for key in ("reasoning_content", "reasoning"):
        value = message.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def tool_to_wire(tool: ToolSpec) -> dict[str, Any]:
    """A `ToolSpec` as a `{"type": "function", ...}` tool."""
    function: dict[str, Any] = {"name": tool.name, "parameters": tool.parameters}
    if tool.description:
        function["description"] = tool.description
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


def tool_choice_to_wire(choice: str) -> Any:
    """ "auto" | "none" | "required" as is; a tool name as a function choice."""
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}
