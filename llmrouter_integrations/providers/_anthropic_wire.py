"""Anthropic Messages JSON shapes to and from our types (turns, blocks, tools, usage).

>>> messages_to_wire([Message(role="system", content="Be terse."), Message(role="user", content="hi")])
(['Be terse.'], [{'role': 'user', 'content': 'hi'}])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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


def usage_from_wire(data: Mapping[str, Any]) -> Usage:
    """Our convention: input counts every prompt token, so cache reads and writes are added."""
    fresh = count(data.get("input_tokens"))
    cache_read = count(data.get("cache_read_input_tokens"))
    cache_write = count(data.get("cache_creation_input_tokens"))
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
    )


def messages_to_wire(messages: list[Message]) -> tuple[list[str], list[dict[str, Any]]]:
    """(system texts, turns): system pulled out, same-role turns merged."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            if message.text:
                system.append(message.text)
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = blocks_of(message)
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
        if len(content) == 1 and content[0]["type"] == "text":
            turn["content"] = content[0]["text"]
    return system, turns


def blocks_of(message: Message) -> list[dict[str, Any]]:
    """The content blocks one message contributes to its turn."""
    if message.role == "tool":
        result: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id or ""}
        content = content_blocks(message.content)
        if content:
            only_text = all(block["type"] == "text" for block in content)
            result["content"] = message.text if only_text else content
        if message.is_error:
            result["is_error"] = True
        return [result]
    blocks = content_blocks(message.content)
    for call in message.tool_calls:
        blocks.append(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
        )
    return blocks


def content_blocks(content: str | list[ContentPart] | None) -> list[dict[str, Any]]:
    """Text and image blocks of a message content."""
    # Empty text blocks are refused by the API ("text content blocks must be non-empty").
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        if part.type == "text":
            if part.text:
                blocks.append({"type": "text", "text": part.text})
        else:
            blocks.append({"type": "image", "source": image_source(part)})
    return blocks


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
    return wire


def tool_choice_to_wire(choice: str | None) -> dict[str, Any]:
    """auto -> auto, required -> any, none -> none, a name -> that tool."""
    if choice is None or choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    return {"type": "tool", "name": choice}
