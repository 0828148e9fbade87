"""The Anthropic Messages wire format (`POST /v1/messages`), sans-IO.

>>> from llmrouter_integrations.providers.endpoints import get_endpoint
>>> body = ANTHROPIC_MESSAGES.build_body(request, model="claude-haiku-4-5", stream=True,
...                                      endpoint=get_endpoint("anthropic"))
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..errors import BadRequestError, ProviderStatusError, ResponseDecodeError
from ..types import (
    ChatChunk,
    ChatRequest,
    ContentPart,
    FinishReason,
    Message,
    ProviderBlock,
    ToolCall,
    ToolCallDelta,
)
from . import _anthropic_wire as wire
from ._common import (
    Now,
    describe,
    int_or_none,
    kept_body,
    lower_headers,
    lowercase_view,
    make_status_error,
    merge_extra,
    parse_retry_after,
    parse_timestamp,
    read_error_body,
    reads_provider_data,
    reference_time,
    shorten,
)
from ._reasoning import thinking_budget
from .base import Endpoint, ParsedResponse, RateLimitInfo

if TYPE_CHECKING:
    from ..transport.sse import SSEEvent

__all__ = ["ANTHROPIC_MESSAGES", "ANTHROPIC_VERSION", "AnthropicMessagesDialect"]

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # the API requires max_tokens; this is what we send when unset
MAX_CACHE_BREAKPOINTS = 4
JSON_OBJECT_INSTRUCTION = "Respond with a single valid JSON object and nothing else."

_TYPE_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "conflict_error": 409,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


class AnthropicMessagesDialect:
    """Builds `/v1/messages` requests and reads their replies, streams and errors.

    `now` (unix seconds) turns RFC 3339 rate-limit resets into "seconds from now" when
    the reply has no `Date` header (with one, the server's own clock is used).
    """

    name = "anthropic_messages"
    path = "/v1/messages"  # Anthropic base URLs carry no /v1

    def __init__(self, now: Now = time.time) -> None:
        self._now = now

    def build_headers(self, api_key: str | None, endpoint: Endpoint) -> dict[str, str]:
        """`x-api-key` and the `anthropic-version` every request needs, plus endpoint headers."""
        headers = {
            "anthropic-version": ANTHROPIC_VERSION,
            "content-type": "application/json",
            "accept": "application/json",
        }
        if api_key is not None:
            headers["x-api-key"] = api_key
        headers.update(endpoint.headers)
        return headers

    def build_body(
        self, request: ChatRequest, *, model: str, stream: bool, endpoint: Endpoint
    ) -> dict[str, Any]:
        """The JSON body, reshaped to what the Messages API accepts.

        System messages (wherever they are) become the top-level `system`, joined by blank
        lines; tool results become `tool_result` blocks in a user turn, placed first;
        consecutive turns of the same role are merged. `response_format` json_schema maps to
        the native `output_config.format`; json_object, which has no native form, adds an
        instruction to the system prompt.
        """
        thinking = request.reasoning is not None
        system, messages = wire.messages_to_wire(request.messages, thinking=thinking)
        max_tokens = request.max_tokens if request.max_tokens is not None else DEFAULT_MAX_TOKENS
        body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": messages}
        if request.reasoning is not None:
            budget = thinking_budget(request.reasoning)
            body["thinking"] = {"type": "enabled", "budget_tokens": budget}
            # The router raises max_tokens to budget + answer before budgets reserve it;
            # this only guards direct use of the dialect.
            body["max_tokens"] = max(max_tokens, budget + 1)
        response_format = request.response_format or {}
        if response_format.get("type") == "json_schema":
            spec = response_format.get("json_schema") or {}
            schema = spec.get("schema") or {"type": "object"}
            body["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
        elif response_format.get("type") == "json_object":
            system.append({"type": "text", "text": JSON_OBJECT_INSTRUCTION})
        if any("cache_control" in block for block in system):
            body["system"] = system
        elif system:
            body["system"] = "\n\n".join(block["text"] for block in system)
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.stop:
            body["stop_sequences"] = list(request.stop)
        if request.tools:
            body["tools"] = [wire.tool_to_wire(tool) for tool in request.tools]
            choice = wire.tool_choice_to_wire(request.tool_choice)
            if request.parallel_tool_calls is False and choice.get("type") != "none":
                choice["disable_parallel_tool_use"] = True
            if request.tool_choice is not None or len(choice) > 1:
                body["tool_choice"] = choice
        if request.user:
            body["metadata"] = {"user_id": request.user}
        if stream:
            body["stream"] = True
        merge_extra(body, request.extra_body)
        if endpoint.quirks is not None:
            body = endpoint.quirks(body, request)
        found = wire.count_breakpoints(body)
        if found > MAX_CACHE_BREAKPOINTS:
            raise BadRequestError(
                f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be "
                f"provided. Found {found}. (Anthropic's limit; remove some cache_control marks)",
                status_code=400,
                provider=endpoint.name,
                model=model,
            )
        return body

    @reads_provider_data
    def parse_response(self, body: Any) -> ParsedResponse:
        """A non-streamed reply; an error object in a 200 reply raises the mapped error."""
        if not isinstance(body, dict):
            raise ResponseDecodeError(
                f"messages reply is not a JSON object: {shorten(repr(body), 80)}"
            )
        if body.get("type") == "error" or body.get("error"):
            raise self._payload_error(body)
        content = body.get("content")
        if not isinstance(content, list):
            raise ResponseDecodeError("messages reply has no content list")
        finish = wire.stop_reason(body.get("stop_reason"))
        if finish is None:  # complete means the provider said why it stopped
            raise ResponseDecodeError("messages reply has no stop_reason: treating it as truncated")
        texts: list[str] = []
        calls: list[ToolCall] = []
        kept: list[ContentPart] = []  # thinking blocks, signed: replayed as they came
        thoughts: list[str] = []
        for block in content:
            if not isinstance(block, dict):
                raise ResponseDecodeError("messages reply has a malformed content block")
            if block.get("type") == "text" and isinstance(block.get("text"), str):
                texts.append(block["text"])
            elif block.get("type") in ("thinking", "redacted_thinking"):
                kept.append(_provider_part(block))
                if isinstance(block.get("thinking"), str):
                    thoughts.append(block["thinking"])
            elif block.get("type") == "tool_use":
                arguments = block.get("input")
                calls.append(
                    ToolCall(
                        id=str(block.get("id") or f"toolu_{len(calls)}"),
                        name=str(block.get("name") or ""),
                        arguments=arguments if isinstance(arguments, dict) else {},
                    )
                )
        text = "".join(texts)
        usage_data = body.get("usage")
        message_content: str | list[ContentPart] | None = text if text or not calls else None
        if kept:
            message_content = kept + ([ContentPart(type="text", text=text)] if text else [])
        return ParsedResponse(
            message=Message(
                role="assistant",
                content=message_content,
                tool_calls=calls,
                reasoning="".join(thoughts) or None,
            ),
            finish_reason=finish,
            usage=wire.usage_from_wire(usage_data if isinstance(usage_data, dict) else {}),
            model=str(body.get("model") or ""),
            id=body.get("id"),
            raw=body,
        )

    def new_stream_state(self, *, model: str) -> AnthropicMessagesStream:
        """A parser for one streamed reply; `model` is used until `message_start` names one."""
        return AnthropicMessagesStream(self, model)

    def parse_error(
        self, status_code: int, body: bytes, headers: Mapping[str, str]
    ) -> ProviderStatusError:
        """The error for a non-2xx reply: `{"type":"error","error":{"type","message"}}`."""
        lowered = lower_headers(headers)
        parsed, excerpt = read_error_body(body)
        if isinstance(parsed, dict):
            return self._payload_error(parsed, status=status_code, headers=lowered)
        return make_status_error(
            status_code,
            excerpt if parsed is None else shorten(str(parsed)),
            code=None,
            body=kept_body(parsed, body),
            headers=lowered,
            now=self._now,
        )

    def parse_rate_limits(self, headers: Mapping[str, str]) -> RateLimitInfo:
        """The `anthropic-ratelimit-*` families and `retry-after`.

        `limit/remaining/reset_tokens` come from the `tokens` family (the most restrictive
        limit in effect), else from `input-tokens`; the input and output families are also
        in `extra["input_tokens"]` / `extra["output_tokens"]` as (limit, remaining, reset_s).
        """
        lowered = lowercase_view(headers)
        reference: list[float] = []  # computed once, only if some reset header is present

        def family(name: str) -> tuple[int | None, int | None, float | None]:
            prefix = f"anthropic-ratelimit-{name}-"
            reset_at = parse_timestamp(lowered.get(prefix + "reset"))
            reset_s = None
            if reset_at is not None:
                if not reference:
                    reference.append(reference_time(lowered, self._now))
                reset_s = max(0.0, reset_at - reference[0])
            return (
                int_or_none(lowered.get(prefix + "limit")),
                int_or_none(lowered.get(prefix + "remaining")),
                reset_s,
            )

        requests = family("requests")
        tokens = family("tokens")
        input_tokens = family("input-tokens")
        output_tokens = family("output-tokens")
        if tokens == (None, None, None):
            tokens = input_tokens
        extra: dict[str, Any] = {}
        if input_tokens != (None, None, None):
            extra["input_tokens"] = input_tokens
        if output_tokens != (None, None, None):
            extra["output_tokens"] = output_tokens
        return RateLimitInfo(
            limit_requests=requests[0],
            remaining_requests=requests[1],
            reset_requests_s=requests[2],
            limit_tokens=tokens[0],
            remaining_tokens=tokens[1],
            reset_tokens_s=tokens[2],
            retry_after_s=parse_retry_after(lowered, self._now),
            extra=extra,
        )

    def _payload_error(
        self,
        payload: Mapping[str, Any],
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ProviderStatusError:
        """Map an error object from an HTTP body or an in-stream `error` event.

        In-band errors (HTTP 200 already sent) get the status their type stands for,
        e.g. overloaded_error -> 529 -> OverloadedError.
        """
        error = payload.get("error")
        details: Mapping[str, Any] = error if isinstance(error, dict) else payload
        message = describe(error if isinstance(error, str) else details)
        error_type = details.get("type")
        code = error_type if isinstance(error_type, str) and error_type != "error" else None
        if status is None or status < 400:
            status = _TYPE_STATUS.get(code or "", 500)
        return make_status_error(
            status,
            message,
            code=code,
            body=dict(payload),
            headers=headers or {},
            now=self._now,
        )


class AnthropicMessagesStream:
    """Parses one streamed Messages reply, event by event (see `StreamState`).

    Tool calls are numbered over `tool_use` blocks only (text block 0 + tool block 1 gives
    tool index 0). Usage in `message_delta` is a running total, so the last value of each
    field wins; fields a delta leaves out keep their `message_start` value.
    """

    provider_cost_usd: Decimal | None = None  # Anthropic does not report a price per call

    def __init__(self, dialect: AnthropicMessagesDialect, model: str) -> None:
        self._dialect = dialect
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
        try:
            payload = json.loads(data)
        except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
            raise ResponseDecodeError(
                f"stream event is not JSON: {shorten(data, 80)!r}", model=self._model
            ) from None
        if not isinstance(payload, dict):
            raise ResponseDecodeError("stream event is not a JSON object", model=self._model)
        kind = payload.get("type") or event.event
        if kind == "error" or event.event == "error":
            error = self._dialect._payload_error(payload)
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


def _provider_part(block: dict[str, Any]) -> ContentPart:
    return ContentPart(type="provider", block=ProviderBlock(wire.DIALECT, dict(block)))


ANTHROPIC_MESSAGES = AnthropicMessagesDialect()
"""The shared Anthropic Messages dialect."""
