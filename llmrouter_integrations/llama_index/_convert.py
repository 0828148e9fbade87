"""Translates between LlamaIndex chat types and the router's provider-neutral types.

>>> from llama_index.core.llms import ChatMessage
>>> to_router_messages([ChatMessage(role="user", content="hi")])[0].text
'hi'
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.types import (
    AudioBlock,
    CachePoint,
    ChatMessage,
    ChatResponse,
    DocumentBlock,
    ImageBlock,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.llms.utils import parse_partial_json

from .._adapters import attempts_to_json
from .._adapters import jsonable as to_jsonable
from .._inputs import tool_choice_from_input, tool_from_input
from ..types import ChatChunk, ContentPart, Message, ProviderBlock, Role, ToolCall, ToolSpec, Usage
from ..types import ChatResponse as RouterChatResponse
from ._blocks import cache_control_of, parts_of, thinking_blocks

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

__all__ = [
    "StreamAccumulator",
    "extras_from_response",
    "from_router_message",
    "normalise_tool_choice",
    "to_chat_response",
    "to_router_message",
    "to_router_messages",
    "tool_selections",
    "tools_to_specs",
    "usage_dict",
]

_ROLE_MAP: dict[str, Role] = {
    MessageRole.SYSTEM.value: "system",
    MessageRole.DEVELOPER.value: "system",
    MessageRole.USER.value: "user",
    MessageRole.ASSISTANT.value: "assistant",
    MessageRole.CHATBOT.value: "assistant",  # Cohere's name for the assistant
    MessageRole.MODEL.value: "assistant",  # Gemini's name for the assistant
    MessageRole.TOOL.value: "tool",
    MessageRole.FUNCTION.value: "tool",  # OpenAI's legacy function-result role
}

# ---------------------------------------------------------------- LlamaIndex -> router


def to_router_messages(messages: Sequence[ChatMessage]) -> list[Message]:
    """Convert a LlamaIndex chat history to router messages.

    >>> to_router_messages([ChatMessage(role="system", content="be brief")])[0].role
    'system'
    """
    return [to_router_message(message) for message in messages]


def to_router_message(message: ChatMessage) -> Message:
    """Convert one `ChatMessage`, every block type included.

    Text, images, documents (PDF, text), audio and citations become content parts;
    `ToolCallBlock`s (or legacy `additional_kwargs["tool_calls"]`) become tool calls; a
    `CachePoint` (or `additional_kwargs["cache_control"]`) is a prompt-cache breakpoint;
    an assistant's signed `ThinkingBlock` is kept for replay (unsigned reasoning text is
    display only). Video raises `ValueError`: silently dropping input changes the answer.
    """
    role = _ROLE_MAP.get(_role_value(message.role))
    if role is None:
        raise ValueError(f"unsupported LlamaIndex message role: {message.role!r}")
    parts: list[ContentPart] = []
    calls: list[ToolCall] = []
    message_cache: dict[str, Any] | None = None
    for block in message.blocks:
        if isinstance(block, ToolCallBlock):
            calls.append(_tool_call_from_block(block, len(calls)))
        elif isinstance(block, CachePoint):
            # A breakpoint after everything before it: on the last part so far, or on
            # the whole message when nothing precedes it.
            if parts:
                parts[-1].cache_control = cache_control_of(block)
            else:
                message_cache = cache_control_of(block)
        elif role == "assistant" or not isinstance(block, ThinkingBlock):
            parts.extend(parts_of(block))
    if not calls:
        calls = _legacy_tool_calls(message.additional_kwargs.get("tool_calls"))
    cache_control = message.additional_kwargs.get("cache_control") or message_cache

    content: str | list[ContentPart] | None
    if all(part.type == "text" and part.cache_control is None for part in parts):
        # Joined the way ChatMessage.content joins them, so both views agree.
        text = "\n".join(part.text or "" for part in parts)
        content = None if (not text and calls) else text
    else:
        content = parts

    tool_call_id = None
    if role == "tool":
        extra = message.additional_kwargs
        tool_call_id = extra.get("tool_call_id") or extra.get("tool_use_id")
        if tool_call_id is None and extra.get("name"):  # legacy function role
            tool_call_id = str(extra["name"])
    name = message.additional_kwargs.get("name") if role in ("user", "tool") else None
    return Message(
        role=role,
        content=content,
        tool_calls=calls if role == "assistant" else [],
        tool_call_id=None if tool_call_id is None else str(tool_call_id),
        name=None if name is None else str(name),
        cache_control=dict(cache_control) if isinstance(cache_control, Mapping) else None,
        is_error=role == "tool" and bool(message.additional_kwargs.get("is_error")),
    )


def _role_value(role: MessageRole | str) -> str:
    return role.value if isinstance(role, MessageRole) else str(role)


def _tool_call_from_block(block: ToolCallBlock, position: int) -> ToolCall:
    arguments = _parse_arguments(block.tool_kwargs)
    call_id = block.tool_call_id or f"call_{position}"
    return ToolCall(id=call_id, name=block.tool_name, arguments=arguments)


def _legacy_tool_calls(raw_calls: Any) -> list[ToolCall]:
    """Tool calls from `additional_kwargs["tool_calls"]`: OpenAI SDK objects or dicts."""
    calls: list[ToolCall] = []
    for position, call in enumerate(raw_calls or ()):
        if isinstance(call, Mapping):
            function = call.get("function") or call
            name, arguments, call_id = (
                function.get("name"),
                function.get("arguments"),
                call.get("id"),
            )
        else:  # an SDK object such as ChatCompletionMessageToolCall
            function = getattr(call, "function", call)
            name = getattr(function, "name", None)
            arguments = getattr(function, "arguments", None)
            call_id = getattr(call, "id", None)
        if not name:
            continue
        calls.append(
            ToolCall(
                id=str(call_id or f"call_{position}"),
                name=str(name),
                arguments=_parse_arguments(arguments),
            )
        )
    return calls


def _parse_arguments(arguments: Any) -> dict[str, Any]:
    """Tool arguments as a dict, tolerating partial JSON from an unfinished stream."""
    if isinstance(arguments, Mapping):
        return dict(arguments)
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        parsed = json.loads(arguments)
    except ValueError:
        try:
            parsed = parse_partial_json(arguments)
        except (ValueError, TypeError):
            return {}
    return parsed if isinstance(parsed, dict) else {}


def tools_to_specs(tools: Sequence[BaseTool]) -> list[ToolSpec]:
    """LlamaIndex tools as router tool specs, via the tools' own OpenAI schema."""
    return [tool_from_input(tool.metadata.to_openai_tool(skip_length_check=True)) for tool in tools]


def normalise_tool_choice(tool_choice: Any, tool_required: bool = False) -> str | None:
    """The router's tool_choice ("auto" | "none" | "required" | a tool name) from any
    spelling LlamaIndex callers use: a name, True, OpenAI's or Anthropic's dicts (the
    router's one normaliser, `_inputs.tool_choice_from_input`).

    >>> normalise_tool_choice({"type": "function", "function": {"name": "add"}})
    'add'
    """
    if tool_choice is None:
        return "required" if tool_required else None
    return tool_choice_from_input(tool_choice)


# ---------------------------------------------------------------- router -> LlamaIndex


def from_router_message(message: Message) -> ChatMessage:
    """Convert a router message back to a `ChatMessage`: reasoning as `ThinkingBlock`s
    first (signed ones replay on the next turn), then content, then `ToolCallBlock`s."""
    blocks: list[Any] = list(thinking_blocks(message))
    if isinstance(message.content, str):
        if message.content or not (message.tool_calls or blocks):
            blocks.append(TextBlock(text=message.content))
    elif message.content:
        blocks.extend(_content_block(part) for part in message.content if part.type != "provider")
    for call in message.tool_calls:
        blocks.append(
            ToolCallBlock(tool_call_id=call.id, tool_name=call.name, tool_kwargs=call.arguments)
        )
    extra: dict[str, Any] = {}
    if message.tool_call_id is not None:
        extra["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        extra["name"] = message.name
    return ChatMessage(role=MessageRole(message.role), blocks=blocks, additional_kwargs=extra)


def _content_block(part: ContentPart) -> Any:
    if part.type == "text":
        return TextBlock(text=part.text or "")
    if part.type == "file":
        if part.text is not None:
            return DocumentBlock(data=part.text.encode(), document_mimetype="text/plain")
        if part.data is None:
            return DocumentBlock(url=part.url, title=part.filename)
        return DocumentBlock(
            data=part.data.encode("ascii"), document_mimetype=part.media_type, title=part.filename
        )
    if part.type == "audio":
        return AudioBlock(
            audio=part.data.encode("ascii") if part.data else None, format=part.audio_format
        )
    if part.data is not None:
        return ImageBlock(
            image=part.data.encode("ascii"), image_mimetype=part.media_type, detail=part.detail
        )
    return ImageBlock(url=part.image_url, detail=part.detail)


def usage_dict(usage: Usage) -> dict[str, int]:
    """Usage under the key names LlamaIndex's TokenCountingHandler and OpenAI users read;
    `prompt_tokens` counts every prompt token, cache reads and writes included; `estimated`
    is True when the provider reported none and the counts are our estimate."""
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens or usage.input_tokens + usage.output_tokens,
        "cached_input_tokens": usage.cached_input_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "cache_write_1h_tokens": usage.cache_write_1h_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "estimated": usage.estimated,
    }


def extras_from_response(response: RouterChatResponse | ChatChunk) -> dict[str, Any]:
    """The router's facts about one answer, JSON-serialisable, for `additional_kwargs`:
    usage counts, cost, provider, served model, deployment, attempts, cached, route."""
    usage = response.usage or Usage()
    extras: dict[str, Any] = dict(usage_dict(usage))
    extras.update(
        cost=response.cost,
        provider=response.provider,
        model=response.model,
        deployment=response.deployment,
        finish_reason=response.finish_reason,
        latency_s=response.latency_s,
        cached=response.cached,
        attempts=attempts_to_json(response.attempts),
        route=to_jsonable(response.route),
    )
    if response.ttft_s is not None:
        extras["ttft_s"] = response.ttft_s
    if response.cached:
        extras["original_cost"] = response.original_cost
    return extras


def _raw_from_response(response: RouterChatResponse | ChatChunk) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": response.id,
        "model": response.model,
        "provider": response.provider,
        "deployment": response.deployment,
        "usage": usage_dict(response.usage or Usage()),
        "finish_reason": response.finish_reason,
        "cost": response.cost,
        "cached": response.cached,
    }
    provider_json = to_jsonable(response.raw)
    if provider_json is not None:
        raw["provider_response"] = provider_json
    return raw


def to_chat_response(response: RouterChatResponse) -> ChatResponse:
    """A complete router answer as a LlamaIndex `ChatResponse`.

    `raw["usage"]` holds the provider-reported counts (what TokenCountingHandler reads);
    `additional_kwargs` repeats them with cost, provider, deployment, attempts and route.
    """
    return ChatResponse(
        message=from_router_message(response.message),
        raw=_raw_from_response(response),
        additional_kwargs=extras_from_response(response),
    )


class StreamAccumulator:
    """Turns router chunks into LlamaIndex stream responses.

    LlamaIndex's convention: each yielded `ChatResponse.message` holds everything so far
    (text and `ToolCallBlock`s with the arguments received so far), `.delta` only the new
    text. The final response parses tool arguments and carries usage, cost and route.

        >>> acc = StreamAccumulator()
        >>> [acc.add(chunk).delta for chunk in chunks]
    """

    def __init__(self) -> None:
        self._text: list[str] = []
        self._thinking: list[str] = []  # reasoning not yet closed by a signed block
        self._signed: list[ProviderBlock] = []
        self._calls: dict[int, dict[str, str]] = {}

    def add(self, chunk: ChatChunk) -> ChatResponse:
        """Fold in one chunk and return the LlamaIndex response for it."""
        if chunk.text:
            self._text.append(chunk.text)
        if chunk.reasoning:
            self._thinking.append(chunk.reasoning)
        if chunk.blocks:
            # A completed block holds the reasoning streamed before it.
            self._signed.extend(chunk.blocks)
            self._thinking.clear()
        for delta in chunk.tool_call_deltas:
            call = self._calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            call["id"] = call["id"] or (delta.id or "")
            call["name"] = call["name"] or (delta.name or "")
            call["arguments"] += delta.arguments
        additional: dict[str, Any] = {}
        if chunk.reasoning:
            additional["thinking_delta"] = chunk.reasoning
        if chunk.is_final:
            additional.update(extras_from_response(chunk))
            raw: Any = _raw_from_response(chunk)
        else:
            raw = to_jsonable(chunk.raw)
        return ChatResponse(
            message=self._message(final=chunk.is_final),
            delta=chunk.text,
            raw=raw,
            additional_kwargs=additional,
        )

    def _message(self, final: bool) -> ChatMessage:
        signed = Message(
            role="assistant", content=[ContentPart(type="provider", block=b) for b in self._signed]
        )
        blocks: list[Any] = thinking_blocks(signed)
        extra: dict[str, Any] = {}
        if self._calls:
            # LlamaIndex's streaming structured output (process_streaming_objects) looks for
            # tool calls here, as LlamaIndex's OpenAI LLM puts them, not in the blocks.
            extra["tool_calls"] = [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call["arguments"]},
                }
                for _, call in sorted(self._calls.items())
            ]
        if self._thinking:
            blocks.append(ThinkingBlock(content="".join(self._thinking)))
        if self._text or not self._calls:
            blocks.append(TextBlock(text="".join(self._text)))
        for index in sorted(self._calls):
            call = self._calls[index]
            kwargs: dict[str, Any] | str = call["arguments"]
            if final:
                kwargs = _parse_arguments(call["arguments"])
            blocks.append(
                ToolCallBlock(
                    tool_call_id=call["id"] or None, tool_name=call["name"], tool_kwargs=kwargs
                )
            )
        return ChatMessage(role=MessageRole.ASSISTANT, blocks=blocks, additional_kwargs=extra)


def tool_selections(
    response: ChatResponse, error_on_no_tool_call: bool = True
) -> list[ToolSelection]:
    """The tool calls in a response (final or mid-stream), never raising on partial JSON."""
    blocks = [block for block in response.message.blocks if isinstance(block, ToolCallBlock)]
    calls = [_tool_call_from_block(block, i) for i, block in enumerate(blocks)]
    if not calls:
        calls = _legacy_tool_calls(response.message.additional_kwargs.get("tool_calls"))
    if not calls and error_on_no_tool_call:
        raise ValueError(
            f"Expected at least one tool call, but got 0 tool calls. Response: {response}"
        )
    return [
        ToolSelection(tool_id=call.id, tool_name=call.name, tool_kwargs=call.arguments)
        for call in calls
    ]
