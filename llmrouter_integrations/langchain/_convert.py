"""Translate between LangChain messages and the router's types: messages in, answers out.

>>> to_router_messages([HumanMessage("hi")])
[Message(role='user', content='hi', ...)]
>>> response_to_message(response).usage_metadata["input_tokens"]
12
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, cast

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    InvalidToolCall,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import InputTokenDetails, OutputTokenDetails, UsageMetadata
from langchain_core.messages.tool import (
    invalid_tool_call,
    tool_call,
    tool_call_chunk,
)

from .._adapters import attempts_to_json, jsonable
from ..types import (
    ChatChunk,
    ChatResponse,
    ContentPart,
    Message,
    ProviderBlock,
    ToolCall,
    Usage,
)
from ._blocks import UnsupportedContentError, cache_control_of, provider_part, to_part

__all__ = [
    "PROVIDER_BLOCKS_KEY",
    "UnsupportedContentError",
    "chunk_to_message_chunk",
    "jsonable",
    "response_metadata",
    "response_to_message",
    "to_router_messages",
    "usage_to_metadata",
]

# Where an AIMessage keeps the provider-private blocks (Anthropic's signed thinking) that
# must go back unmodified on the next turn: `[{"dialect": ..., "data": {...}}]`.
PROVIDER_BLOCKS_KEY = "provider_blocks"

_ROLE_ALIASES = {
    "human": "user",
    "user": "user",
    "ai": "assistant",
    "assistant": "assistant",
    "system": "system",
    "developer": "system",
    "tool": "tool",
    "function": "tool",
}


# --------------------------------------------------------------------------- input side


def to_router_messages(messages: Sequence[BaseMessage]) -> list[Message]:
    """Convert LangChain messages of every shape LangChain produces into router messages.

    Accepts plain strings and block lists in OpenAI, LangChain v0/v1 and Anthropic-native
    shapes (`tool_use`, `tool_result`, `thinking`, `cache_control`, image `source`).
    Anthropic `tool_result` blocks inside a human message become tool messages placed
    before the rest of that message, which is the order every provider accepts.

    >>> to_router_messages([SystemMessage("be brief"), HumanMessage("hi")])[1].text
    'hi'
    """
    converted: list[Message] = []
    for message in messages:
        converted.extend(_convert_message(message))
    _name_anonymous_tool_calls(converted)
    return converted


def _name_anonymous_tool_calls(messages: list[Message]) -> None:
    """Give tool calls that came without an id one, and their answers the same one.

    Some models return calls without ids (LangChain keeps `id=None`); providers refuse an
    empty id (Anthropic: "String should match pattern"). A tool message without an id
    answers the oldest unanswered such call. Ids follow positions, so a repeated
    conversation gets the same ids (and the same cache key).
    """
    unanswered: list[str] = []
    for position, message in enumerate(messages):
        for index, call in enumerate(message.tool_calls):
            if not call.id:
                call.id = f"call_lc{position}_{index}"
                unanswered.append(call.id)
        if message.role == "tool" and not message.tool_call_id and unanswered:
            message.tool_call_id = unanswered.pop(0)


def _convert_message(message: BaseMessage) -> list[Message]:
    if isinstance(message, SystemMessage):
        return [Message(role="system", content=_system(message.content))]
    if isinstance(message, HumanMessage):
        return _convert_user(message.content, message.name)
    if isinstance(message, AIMessage):  # AIMessageChunk included
        return [_convert_assistant(message)]
    if isinstance(message, ToolMessage):
        return [
            Message(
                role="tool",
                content=_parts_or_text(message.content),
                tool_call_id=message.tool_call_id,
                name=message.name,
                is_error=message.status == "error",
            )
        ]
    if isinstance(message, FunctionMessage):
        return [Message(role="tool", content=_text_only(message.content), name=message.name)]
    if isinstance(message, ChatMessage):
        role = _ROLE_ALIASES.get(message.role)
        if role is None:
            raise ValueError(f"unsupported chat message role: {message.role!r}")
        if role == "user":
            return _convert_user(message.content, message.name)
        if role == "system":
            return [Message(role="system", content=_system(message.content))]
        if role == "tool":
            call_id = message.additional_kwargs.get("tool_call_id")
            return [
                Message(role="tool", content=_parts_or_text(message.content), tool_call_id=call_id)
            ]
        return [Message(role="assistant", content=_text_only(message.content) or None)]
    raise ValueError(f"unsupported message type: {type(message).__name__}")


def _convert_user(content: str | list[str | dict[str, Any]], name: str | None) -> list[Message]:
    if isinstance(content, str):
        return [Message(role="user", content=content, name=name)]
    tool_results: list[Message] = []
    parts: list[ContentPart] = []
    for block in content:
        if isinstance(block, dict) and block.get("type") == "tool_result":
            tool_results.append(
                Message(
                    role="tool",
                    content=_parts_or_text(block.get("content") or ""),
                    tool_call_id=str(block.get("tool_use_id") or ""),
                    is_error=bool(block.get("is_error")),
                )
            )
            continue
        part = to_part(block)
        if part is not None:
            parts.append(part)
    if not parts and tool_results:
        return tool_results
    # An empty human turn is still a turn: dropping it would make the model answer (or,
    # on Anthropic, continue) the turn before it. The provider decides whether it's valid.
    return [*tool_results, Message(role="user", content=_simplify(parts), name=name)]


def _convert_assistant(message: AIMessage) -> Message:
    calls = [
        ToolCall(id=str(call.get("id") or ""), name=call["name"], arguments=dict(call["args"]))
        for call in message.tool_calls
    ]
    # A call whose JSON failed to parse is still part of the conversation (a tool message
    # answers it), so it is kept with whatever arguments can be recovered.
    for bad in message.invalid_tool_calls:
        calls.append(
            ToolCall(
                id=str(bad.get("id") or ""),
                name=str(bad.get("name") or ""),
                arguments=_loads_object(bad.get("args")),
            )
        )
    blocks = message.content if isinstance(message.content, list) else []
    if not calls:
        # Anthropic-native history may carry tool_use blocks without tool_calls filled in.
        for block in blocks:
            if isinstance(block, dict) and block.get("type") == "tool_use":
                calls.append(
                    ToolCall(
                        id=str(block.get("id") or ""),
                        name=str(block.get("name", "")),
                        arguments=dict(block.get("input") or {}),
                    )
                )
    signed = _signed_blocks(message, blocks)
    text = _text_only(message.content)
    content: str | list[ContentPart] | None = text or None
    if signed:
        # Anthropic wants the signed thinking first, then the text, then the tool calls.
        content = [*signed, *([ContentPart(type="text", text=text)] if text else [])]
    return Message(role="assistant", content=content, tool_calls=calls, name=message.name)


def _signed_blocks(message: AIMessage, blocks: list[Any]) -> list[ContentPart]:
    """The provider-private blocks of an assistant turn: ours (`provider_blocks`, as
    `response_to_message` stores them) and Anthropic-native or v1 ones in the content."""
    parts: list[ContentPart] = []
    for stored in message.additional_kwargs.get(PROVIDER_BLOCKS_KEY) or ():
        if isinstance(stored, Mapping) and isinstance(stored.get("data"), Mapping):
            block = ProviderBlock(dialect=str(stored.get("dialect")), data=dict(stored["data"]))
            parts.append(ContentPart(type="provider", block=block))
    if not parts:
        for block in blocks:
            part = provider_part(block) if isinstance(block, Mapping) else None
            if part is not None:
                parts.append(part)
    return parts


def _loads_object(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _text_only(content: str | list[str | dict[str, Any]]) -> str:
    """The text of a message, ignoring blocks that are not text."""
    if isinstance(content, str):
        return content
    texts = []
    for block in content:
        if isinstance(block, str):
            texts.append(block)
        elif isinstance(block, Mapping) and block.get("type") == "text":
            texts.append(str(block.get("text") or ""))
    return "".join(texts)


def _system(content: str | list[str | dict[str, Any]]) -> str | list[ContentPart]:
    """A system prompt: its text, as parts when a block sets a prompt-cache breakpoint."""
    if isinstance(content, str):
        return content
    parts = [
        ContentPart(
            type="text",
            text=block if isinstance(block, str) else str(block.get("text") or ""),
            cache_control=None if isinstance(block, str) else cache_control_of(block),
        )
        for block in content
        if isinstance(block, str) or (isinstance(block, Mapping) and block.get("type") == "text")
    ]
    return _simplify(parts)


def _parts_or_text(content: Any) -> str | list[ContentPart]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return json.dumps(content, ensure_ascii=False, default=str)
    parts = [part for block in content if (part := to_part(block)) is not None]
    return _simplify(parts)


def _simplify(parts: list[ContentPart]) -> str | list[ContentPart]:
    """Plain text stays a string: every provider accepts that, and caches key on it."""
    if all(part.type == "text" and part.cache_control is None for part in parts):
        return "".join(part.text or "" for part in parts)
    return parts


# --------------------------------------------------------------------------- output side


def usage_to_metadata(usage: Usage) -> UsageMetadata:
    """Router usage as LangChain `usage_metadata`: ints only, input includes cache traffic;
    Anthropic's one-hour cache writes apart (`ephemeral_1h_input_tokens`), as
    langchain-anthropic reports them.

    >>> usage_to_metadata(Usage(input_tokens=10, output_tokens=5, cached_input_tokens=4))
    {'input_tokens': 10, 'output_tokens': 5, 'total_tokens': 15, 'input_token_details': {'cache_read': 4}}
    """
    total = usage.total_tokens or usage.input_tokens + usage.output_tokens
    # langchain-core 1.x declares the detail keys required; they are optional on the wire.
    metadata = cast(
        UsageMetadata,
        {
            "input_tokens": int(usage.input_tokens),
            "output_tokens": int(usage.output_tokens),
            "total_tokens": int(total),
        },
    )
    input_details: dict[str, int] = {}
    if usage.cached_input_tokens:
        input_details["cache_read"] = int(usage.cached_input_tokens)
    written, hour = int(usage.cache_write_tokens), int(usage.cache_write_1h_tokens)
    if hour:
        # Anthropic's one-hour writes cost more: langchain-anthropic's spelling of the split,
        # with the generic key at 0 so the details never add up past input_tokens.
        input_details["cache_creation"] = 0
        input_details["ephemeral_5m_input_tokens"] = written - hour
        input_details["ephemeral_1h_input_tokens"] = hour
    elif written:
        input_details["cache_creation"] = written
    if input_details:
        metadata["input_token_details"] = cast(InputTokenDetails, input_details)
    if usage.reasoning_tokens:
        metadata["output_token_details"] = OutputTokenDetails(reasoning=int(usage.reasoning_tokens))
    return metadata


def response_metadata(result: ChatResponse | ChatChunk) -> dict[str, Any]:
    """What the router knows about an answer, as JSON-serialisable `response_metadata`.

    `model_name` is the model that actually served the request (after any fallback);
    `attempts` lists the failures before the answer; `cost_usd` is None when the price is
    unknown and 0.0 for a router cache hit (`cached=True`, `original_cost_usd` is what the
    first call cost). `usage_estimated` is present (True) when the provider reported no
    usage and `usage_metadata` holds the router's estimate.
    """
    metadata: dict[str, Any] = {
        "model_name": result.model,
        "finish_reason": result.finish_reason,
        "provider": result.provider,
        "deployment": result.deployment,
        "cost_usd": None if result.cost is None else float(result.cost),
        "attempts": attempts_to_json(result.attempts),
        "cached": bool(result.cached),
    }
    if result.cost_detail is not None:
        metadata["cost_source"] = result.cost_detail.source
    if result.cached and result.original_cost is not None:
        metadata["original_cost_usd"] = float(result.original_cost)
    if result.latency_s is not None:
        metadata["latency_s"] = round(float(result.latency_s), 6)
    if result.ttft_s is not None:
        metadata["ttft_s"] = round(float(result.ttft_s), 6)
    if result.route is not None:
        metadata["route"] = jsonable(result.route)
    if result.id:
        metadata["id"] = result.id
    if result.usage is not None and result.usage.estimated:
        metadata["usage_estimated"] = True
    return metadata


def _reasoning_kwargs(reasoning: str | None, blocks: Sequence[ProviderBlock]) -> dict[str, Any]:
    """Reasoning for LangChain: `reasoning_content` (text; `content_blocks` shows it as a
    `reasoning` block) and the signed blocks to replay, under `PROVIDER_BLOCKS_KEY`.

    Both merge as stream chunks add up: the text concatenates, the blocks (each whole,
    carrying no `index`) append in order.
    """
    kwargs: dict[str, Any] = {}
    if reasoning:
        kwargs["reasoning_content"] = reasoning
    if blocks:
        kwargs[PROVIDER_BLOCKS_KEY] = [
            {"dialect": block.dialect, "data": jsonable(block.data)} for block in blocks
        ]
    return kwargs


def response_to_message(response: ChatResponse) -> AIMessage:
    """A router answer as an `AIMessage` with tool calls, usage and router metadata.

    >>> message = response_to_message(response)
    >>> message.response_metadata["model_name"], message.usage_metadata["total_tokens"]
    ('gpt-4o-mini', 21)
    """
    calls = []
    invalid: list[InvalidToolCall] = []
    for call in response.message.tool_calls:
        if isinstance(call.arguments, dict):
            calls.append(tool_call(name=call.name, args=call.arguments, id=call.id or None))
        else:  # defensive: a dialect that could not parse the arguments
            invalid.append(
                invalid_tool_call(
                    name=call.name,
                    args=str(call.arguments),
                    id=call.id,
                    error="arguments not a JSON object",
                )
            )
    additional_kwargs = _reasoning_kwargs(response.message.reasoning, response.message.blocks)
    return AIMessage(
        content=response.message.text,
        tool_calls=calls,
        invalid_tool_calls=invalid,
        usage_metadata=usage_to_metadata(response.usage),
        response_metadata=response_metadata(response),
        additional_kwargs=additional_kwargs,
        # A replayed (cached) answer keeps the provider id of the first call; giving it
        # to a second message would make LangGraph's add_messages replace the first one.
        id=None if response.cached else response.id,
    )


def chunk_to_message_chunk(chunk: ChatChunk) -> AIMessageChunk:
    """One router stream chunk as an `AIMessageChunk`.

    Text and tool-call fragments map one to one (each fragment keeps its call's `index`);
    usage and router metadata appear only on the final chunk, which is marked
    `chunk_position="last"`, because LangChain sums usage and concatenates strings when it
    merges chunks.
    """
    fragments = [
        tool_call_chunk(
            name=delta.name,
            args=delta.arguments or None,
            id=delta.id,
            index=delta.index,
        )
        for delta in chunk.tool_call_deltas
    ]
    additional_kwargs = _reasoning_kwargs(chunk.reasoning, chunk.blocks)
    message_id = None if chunk.cached else chunk.id
    if not chunk.is_final:
        return AIMessageChunk(
            content=chunk.text,
            tool_call_chunks=fragments,
            additional_kwargs=additional_kwargs,
            id=message_id,
        )
    usage = chunk.usage if chunk.usage is not None else Usage()
    return AIMessageChunk(
        content=chunk.text,
        tool_call_chunks=fragments,
        additional_kwargs=additional_kwargs,
        usage_metadata=usage_to_metadata(usage),
        response_metadata=response_metadata(chunk),
        chunk_position="last",
        id=message_id,
    )
