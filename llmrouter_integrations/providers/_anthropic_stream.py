"""The Anthropic Messages stream, event by event: text, thinking, tool-call deltas, usage, stop.

`AnthropicMessagesDialect.new_stream_state` (anthropic_messages.py) makes one per reply and
hands it the dialect's error mapping for in-stream `error` events.

>>> state = ANTHROPIC_MESSAGES.new_stream_state(model="claude-haiku-4-5")
>>> chunks = state.feed(SSEEvent(event="message_start", data=message_start_json))
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..errors import ProviderStatusError, ResponseDecodeError
from ..types import ChatChunk, FinishReason, ProviderBlock, ToolCallDelta
from . import _anthropic_wire as wire
from ._common import reads_provider_data
from ._json import load_event_object

if TYPE_CHECKING:
    from ..transport.sse import SSEEvent

__all__ = ["AnthropicMessagesStream", "ErrorMapper"]

# An in-stream error object -> the error to raise (the dialect's own mapping).
ErrorMapper = Callable[[Mapping[str, Any]], ProviderStatusError]


class AnthropicMessagesStream:
    """Parses one streamed Messages reply, event by event (see `StreamState`).

    Tool calls are numbered over `tool_use` blocks only (text block 0 + tool block 1 gives
    tool index 0). Usage in `message_delta` is a running total, so the last value of each
    field wins; fields a delta leaves out keep their `message_start` value.
    """

    provider_cost_usd: Decimal | None = None  # Anthropic does not report a price per call

    def __init__(self, payload_error: ErrorMapper, model: str) -> None:
        self._payload_error = payload_error
        self._model = model
        self._id: str | None = None
        self._finish: FinishReason | None = None
        self._usage: dict[str, Any] | None = None
        self._tool_index: dict[int, int] = {}  # content block index -> tool call index
        # content block index -> the thinking block being streamed, sent whole at its stop
        self._thinking: dict[int, dict[str, Any]] = {}
        self._done = False
        self._last: Any = None

    @property
    def done(self) -> bool:
        return self._done

    @reads_provider_data
    def feed(self, event: SSEEvent) -> list[ChatChunk]:
        if self._done:
            return []
        data = event.data
        if not data.strip():
            if event.event != "error":
                return []
            data = '{"error": {"message": "the provider sent an error event"}}'  # still an error
        payload = load_event_object(data, self._model)
        kind = payload.get("type") or event.event
        if kind == "error" or event.event == "error":
            error = self._payload_error(payload)
            error.model = self._model
            raise error
        if kind == "message_start":
            self._start(payload.get("message"))
        elif kind == "content_block_start":
            return self._block_start(payload)
        elif kind == "content_block_delta":
            return self._block_delta(payload)
        elif kind == "message_delta":
            self._last = payload
            delta = payload.get("delta")
            if isinstance(delta, dict) and delta.get("stop_reason"):
                self._finish = wire.stop_reason(delta["stop_reason"])
            self._add_usage(payload.get("usage"))
        elif kind == "content_block_stop":
            block = self._thinking.pop(payload.get("index"), None)  # type: ignore[arg-type]
            if block is not None:
                return [ChatChunk(blocks=[ProviderBlock(wire.DIALECT, block)], model=self._model)]
        elif kind == "message_stop":
            self._done = True
        # ping and event types added later carry nothing for us.
        return []

    @reads_provider_data
    def finish(self) -> ChatChunk:
        if not self._done:
            raise ResponseDecodeError("stream ended before message_stop", model=self._model)
        if self._finish is None:
            raise ResponseDecodeError(
                "stream ended without a stop_reason: treating it as truncated", model=self._model
            )
        return ChatChunk(
            is_final=True,
            finish_reason=self._finish,
            usage=None if self._usage is None else wire.usage_from_wire(self._usage),
            model=self._model,
            id=self._id,
            raw=self._last,
        )

    def _start(self, message: Any) -> None:
        if not isinstance(message, dict):
            raise ResponseDecodeError("message_start without a message", model=self._model)
        self._model = str(message.get("model") or self._model)
        self._id = message.get("id") or self._id
        self._add_usage(message.get("usage"))

    def _add_usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        running = self._usage if self._usage is not None else {}
        for key in wire.USAGE_FIELDS:
            if usage.get(key) is not None:
                running[key] = usage[key]
        self._usage = running

    def _block_start(self, payload: Mapping[str, Any]) -> list[ChatChunk]:
        index = payload.get("index")
        block = payload.get("content_block")
        if not isinstance(index, int) or not isinstance(block, dict):
            raise ResponseDecodeError("malformed content_block_start", model=self._model)
        kind = block.get("type")
        if kind == "tool_use":
            tool_index = self._tool_index[index] = len(self._tool_index)
            given = block.get("input")
            arguments = json.dumps(given) if isinstance(given, dict) and given else ""
            delta = ToolCallDelta(
                index=tool_index,
                id=str(block.get("id") or f"toolu_{tool_index}"),
                name=str(block.get("name") or ""),
                arguments=arguments,
            )
            return [self._chunk(tool_call_deltas=[delta])]
        if kind == "text" and block.get("text"):
            return [self._chunk(text=str(block["text"]))]
        if kind == "redacted_thinking":
            self._thinking[index] = dict(block)
        elif kind == "thinking":
            thinking = str(block.get("thinking") or "")
            self._thinking[index] = {
                "type": "thinking",
                "thinking": thinking,
                "signature": str(block.get("signature") or ""),
            }
            if thinking:
                return [self._chunk(reasoning=thinking)]
        return []

    def _block_delta(self, payload: Mapping[str, Any]) -> list[ChatChunk]:
        delta = payload.get("delta")
        if not isinstance(delta, dict):
            raise ResponseDecodeError("content_block_delta without a delta", model=self._model)
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            return [self._chunk(text=text)] if isinstance(text, str) and text else []
        if kind == "thinking_delta":
            thinking = delta.get("thinking")
            if not isinstance(thinking, str) or not thinking:
                return []
            open_block = self._thinking.get(payload.get("index"))  # type: ignore[arg-type]
            if open_block is not None:
                open_block["thinking"] += thinking
            return [self._chunk(reasoning=thinking)]
        if kind == "signature_delta":
            open_block = self._thinking.get(payload.get("index"))  # type: ignore[arg-type]
            if open_block is not None and isinstance(delta.get("signature"), str):
                open_block["signature"] += delta["signature"]
            return []
        if kind == "input_json_delta":
            fragment = delta.get("partial_json")
            if not isinstance(fragment, str) or not fragment:
                return []
            index = payload.get("index")
            if index not in self._tool_index:
                raise ResponseDecodeError(
                    f"input_json_delta for block {index!r}, which is not a tool_use block",
                    model=self._model,
                )
            tool_delta = ToolCallDelta(index=self._tool_index[index], arguments=fragment)
            return [self._chunk(tool_call_deltas=[tool_delta])]
        return []  # citations_delta: nothing a caller reads

    def _chunk(
        self,
        *,
        text: str = "",
        reasoning: str = "",
        tool_call_deltas: list[ToolCallDelta] | None = None,
    ) -> ChatChunk:
        return ChatChunk(
            text=text,
            reasoning=reasoning,
            tool_call_deltas=tool_call_deltas or [],
            model=self._model,
            id=self._id,
        )
