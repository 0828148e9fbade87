"""Anthropic Messages JSON shapes to and from our types (turns, blocks, tools, usage).

>>> messages_to_wire([Message(role="system", content="Be terse."), Message(role="user", content="hi")])
([{'type': 'text', 'text': 'Be terse.'}], [{'role': 'user', 'content': 'hi'}])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import BadRequestError
from ..types import ContentPart, FinishReason, Message, ToolSpec, Usage
from ._common import guess_image_media_type, parse_data_url, token_count

STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def stop_reason(raw: Any) -> FinishReason | None:
    """Our finish reason for an Anthropic stop_reason; unknown ones count as "stop"."""
    if not raw:
        return None
    return STOP_REASONS.get(str(raw), "stop")


count = token_count


# The usage fields a stream reports, merged as they come (message_start, then message_delta).
USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "cache_creation",
    "output_tokens_details",
)


def usage_from_wire(data: Mapping[str, Any]) -> Usage:
    """Our convention: input counts every prompt token, so cache reads and writes are added."""
    fresh = count(data.get("input_tokens"))
    cache_read = count(data.get("cache_read_input_tokens"))
    cache_write = count(data.get("cache_creation_input_tokens"))
    split = data.get("cache_creation")  # {"ephemeral_5m_input_tokens", "ephemeral_1h_..."}
    hour = count(split.get("ephemeral_1h_input_tokens")) if isinstance(split, dict) else 0
    output = count(data.get("output_tokens"))
    details = data.get("output_tokens_details")
    thinking = count(details.get("thinking_tokens")) if isinstance(details, dict) else 0
    prompt = fresh + cache_read + cache_write
    return Usage(
        input_tokens=prompt,
        output_tokens=output,
        total_tokens=prompt + output,
        cached_input_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=thinking,
        cache_write_1h_tokens=min(hour, cache_write),
    )


DIALECT = "anthropic_messages"
_THINKING_KINDS = ("thinking", "redacted_thinking")


def _marked(block: dict[str, Any], cache_control: dict[str, Any] | None) -> dict[str, Any]:
    if cache_control:
        block["cache_control"] = dict(cache_control)
    return block


def system_blocks(message: Message) -> list[dict[str, Any]]:
    """A system message as text blocks, keeping its cache breakpoints."""
    if isinstance(message.content, list):
        blocks = [
            _marked({"type": "text", "text": part.text}, part.cache_control)
            for part in message.content
            if part.type == "text" and part.text
        ]
    else:
        blocks = [{"type": "text", "text": message.content}] if message.content else []
    if blocks and message.cache_control:
        _marked(blocks[-1], message.cache_control)
    return blocks


def messages_to_wire(
    messages: list[Message], *, thinking: bool = True
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, turns): system pulled out, same-role turns merged.

    Thinking blocks are replayed only when `thinking` is on: with it off the API refuses
    them in the final assistant turn and ignores them elsewhere.
    """
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            system.extend(system_blocks(message))
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = blocks_of(message, thinking=thinking)
        if not blocks and role == "assistant":
            continue  # an empty assistant turn says nothing; the API refuses it mid-history
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        content = turn["content"]
        if turn["role"] == "user":
            # The API wants tool results first in the turn that answers the tool calls.
            content.sort(key=lambda block: block["type"] != "tool_result")
        if len(content) == 1 and content[0]["type"] == "text" and "cache_control" not in content[0]:
            turn["content"] = content[0]["text"]
    return system, turns


def blocks_of(message: Message, *, thinking: bool = True) -> list[dict[str, Any]]:
    """The content blocks one message contributes to its turn."""
    if message.role == "tool":
        result: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id or ""}
        content = content_blocks(message.content)
        if content:
            only_text = all(
                block["type"] == "text" and "cache_control" not in block for block in content
            )
            result["content"] = message.text if only_text else content
        if message.is_error:
            result["is_error"] = True
        return [_marked(result, message.cache_control)]
    blocks = content_blocks(message.content, thinking=thinking)
    for call in message.tool_calls:
        blocks.append(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
        )
    if blocks and message.cache_control:
        _marked(blocks[-1], message.cache_control)
    return blocks


def content_blocks(
    content: str | list[ContentPart] | None, *, thinking: bool = True
) -> list[dict[str, Any]]:
    """Text, image, document and Anthropic's own (thinking) blocks of a message content.

    Provider blocks of another dialect are left out: they mean nothing here.
    """
    # Empty text blocks are refused by the API ("text content blocks must be non-empty").
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        block: dict[str, Any] | None = None
        if part.type == "text":
            if part.text:
                block = {"type": "text", "text": part.text}
        elif part.type == "image":
            block = {"type": "image", "source": image_source(part)}
        elif part.type == "file":
            block = document_block(part)
        elif part.type == "audio":
            raise unsupported("audio input")
        elif (
            part.block is not None
            and part.block.dialect == DIALECT
            and (thinking or part.block.kind not in _THINKING_KINDS)
        ):
            block = dict(part.block.data)  # replayed unmodified: signatures check it
        if block is not None:
            blocks.append(_marked(block, part.cache_control))
    return blocks


def unsupported(what: str) -> BadRequestError:
    """The error for content this API cannot take; another deployment may (so it falls back)."""
    error = BadRequestError(
        f"the Anthropic Messages API does not accept {what}", status_code=400, provider="anthropic"
    )
    error.deployment_error = True
    return error


def document_block(part: ContentPart) -> dict[str, Any]:
    """A file part as a `document` block: base64 PDF, PDF by URL, or plain text."""
    source: dict[str, Any]
    if part.data:
        source = {
            "type": "base64",
            "media_type": part.media_type or "application/pdf",
            "data": part.data,
        }
    elif part.url:
        source = {"type": "url", "url": part.url}
    else:
        source = {"type": "text", "media_type": "text/plain", "data": part.text or ""}
    block: dict[str, Any] = {"type": "document", "source": source}
    if part.filename:
        block["title"] = part.filename
    return block


def count_breakpoints(body: Mapping[str, Any]) -> int:
    """Blocks marked with `cache_control` in a Messages body (system, tools, messages)."""
    found = 0
    system = body.get("system")
    for block in system if isinstance(system, list) else ():
        found += "cache_control" in block
    for tool in body.get("tools") or ():
        found += "cache_control" in tool
    for turn in body.get("messages") or ():
        content = turn.get("content")
        for block in content if isinstance(content, list) else ():
            found += isinstance(block, dict) and "cache_control" in block
    return found


def image_source(part: ContentPart) -> dict[str, Any]:
    """The `source` of an image block: by URL, or base64 (data: URLs unpacked)."""
    if part.image_url:
        inline = parse_data_url(part.image_url)
        if inline is None:
            return {"type": "url", "url": part.image_url}
        media_type, data = inline
    else:
        data = part.data or ""
        media_type = part.media_type or guess_image_media_type(data)
    return {"type": "base64", "media_type": media_type, "data": data}


def tool_to_wire(tool: ToolSpec) -> dict[str, Any]:
    """A `ToolSpec` as an Anthropic tool (`input_schema`)."""
    wire: dict[str, Any] = {"name": tool.name, "input_schema": tool.parameters}
    if tool.description:
        wire["description"] = tool.description
    if tool.strict is not None:
        wire["strict"] = tool.strict
    return _marked(wire, tool.cache_control)


def tool_choice_to_wire(choice: str | None) -> dict[str, Any]:
    """auto -> auto, required -> any, none -> none, a name -> that tool."""
    if choice is None or choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    return {"type": "tool", "name": choice}
