"""The Anthropic Messages wire format (`POST /v1/messages`), sans-IO.

>>> from llmrouter_integrations.providers.endpoints import get_endpoint
>>> body = ANTHROPIC_MESSAGES.build_body(request, model="claude-haiku-4-5", stream=True,
...                                      endpoint=get_endpoint("anthropic"))
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import BadRequestError, ProviderStatusError, ResponseDecodeError
from ..types import (
    ChatRequest,
    ContentPart,
    Message,
    ProviderBlock,
    ToolCall,
)
from . import _anthropic_wire as wire
from ._anthropic_stream import AnthropicMessagesStream
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
    pass

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
        return AnthropicMessagesStream(self._payload_error, model)

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


def _provider_part(block: dict[str, Any]) -> ContentPart:
    return ContentPart(type="provider", block=ProviderBlock(wire.DIALECT, dict(block)))


ANTHROPIC_MESSAGES = AnthropicMessagesDialect()
"""The shared Anthropic Messages dialect."""
