"""The OpenAI chat-completions wire format (OpenAI, Groq, OpenRouter, Ollama, vLLM...), sans-IO.

>>> from llmrouter_integrations.providers.endpoints import get_endpoint
>>> body = OPENAI_CHAT.build_body(request, model="gpt-4o-mini", stream=False,
...                               endpoint=get_endpoint("openai"))
>>> OPENAI_CHAT.parse_response(reply_json).text
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..errors import ProviderStatusError, ResponseDecodeError
from ..types import (
    ChatChunk,
    ChatRequest,
    FinishReason,
    Message,
    ToolCallDelta,
    Usage,
)
from . import _openai_wire as wire
from ._common import (
    Now,
    describe,
    int_or_none,
    kept_body,
    lower_headers,
    lowercase_view,
    make_status_error,
    merge_extra,
    parse_duration,
    parse_retry_after,
    read_error_body,
    reads_provider_data,
    shorten,
)
from ._json import load_event_object
from ._reasoning import reasoning_fields
from .base import Endpoint, ParsedResponse, RateLimitInfo

if TYPE_CHECKING:
    from ..transport.sse import SSEEvent

__all__ = ["OPENAI_CHAT", "OpenAIChatDialect", "is_openai_reasoning_model"]

# Error `type`s (OpenAI, Groq, OpenRouter metadata) -> the status they stand for, used when
# an error arrives inside a 200 reply or stream and carries no HTTP status of its own.
_TYPE_STATUS = {
    "invalid_request_error": 400,
    "context_length_exceeded": 400,
    "authentication_error": 401,
    "authentication": 401,
    "invalid_api_key": 401,
    "payment_required": 402,
    "permission_error": 403,
    "permission_denied": 403,
    "not_found_error": 404,
    "not_found": 404,
    "tokens": 429,
    "requests": 429,
    "rate_limit_exceeded": 429,
    "rate_limit_error": 429,
    "insufficient_quota": 429,
    "server_error": 500,
    "api_error": 500,
    "provider_unavailable": 502,
    "service_unavailable_error": 503,
    "timeout_error": 504,
    "provider_overloaded": 529,
    "overloaded_error": 529,
}
_CONTEXT_ERROR_TYPES = frozenset(
    {"context_length_exceeded", "max_tokens_exceeded", "token_limit_exceeded"}
)
_REASONING_MODEL = re.compile(r"^(?:openai/)?(?:o\d|gpt-5)(?!.*-chat)", re.IGNORECASE)


def is_openai_reasoning_model(model: str) -> bool:
    """True for OpenAI's o-series and GPT-5 family, which take only default sampling.

    >>> is_openai_reasoning_model("o3-mini"), is_openai_reasoning_model("gpt-4o")
    (True, False)
    """
    return bool(_REASONING_MODEL.match(model))


class OpenAIChatDialect:
    """Builds `/chat/completions` requests and reads their replies, streams and errors.

    `now` (unix seconds) is only used to turn an HTTP-date `retry-after` into a delay when
    the reply has no `Date` header; tests inject a fixed one.
    """

    name = "openai_chat"
    path = "/chat/completions"

    def __init__(self, now: Now = time.time) -> None:
        self._now = now

    def build_headers(self, api_key: str | None, endpoint: Endpoint) -> dict[str, str]:
        """Bearer auth (when there is a key), JSON in and out, plus the endpoint's own headers."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key is not None:
            headers["Authorization"] = f"Bearer {api_key}"
        headers.update(endpoint.headers)
        return headers

    def build_body(
        self, request: ChatRequest, *, model: str, stream: bool, endpoint: Endpoint
    ) -> dict[str, Any]:
        """The JSON body; endpoint specifics (OpenAI's max_completion_tokens...) come from quirks.

        `request.metadata` is never sent: OpenAI accepts it only with `store=true`, and
        most compatible servers reject it.
        """
        messages = wire.messages_to_wire(request.messages, cache_marks=endpoint.cache_marks)
        if not endpoint.null_tool_call_content:
            for message in messages:
                if "content" in message and message["content"] is None:
                    message["content"] = ""  # the server refuses null (see the endpoint row)
        body: dict[str, Any] = {"model": model, "messages": messages}
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.seed is not None:
            body["seed"] = request.seed
        if request.user is not None:
            body["user"] = request.user
        if request.stop:
            body["stop"] = list(request.stop)
        if request.tools:
            body["tools"] = [wire.tool_to_wire(tool) for tool in request.tools]
            if request.tool_choice is not None:
                body["tool_choice"] = wire.tool_choice_to_wire(request.tool_choice)
            if request.parallel_tool_calls is not None:
                body["parallel_tool_calls"] = request.parallel_tool_calls
        if request.response_format is not None:
            body["response_format"] = request.response_format
        if request.reasoning is not None:
            body.update(reasoning_fields(endpoint.reasoning_style, request.reasoning, model))
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        if request.extra_body:
            merge_extra(body, request.extra_body)
        if endpoint.quirks is not None:
            body = endpoint.quirks(body, request)
        return body

    @reads_provider_data
    def parse_response(self, body: Any) -> ParsedResponse:
        """A non-streamed reply. An `error` object in a 200 reply raises the mapped error.

        When the model was cut off (finish_reason "length") mid tool call, the broken
        call keeps `arguments={}`; any other invalid arguments JSON raises ResponseDecodeError.
        A refusal with no content becomes the text, with finish_reason "content_filter".
        """
        if not isinstance(body, dict):
            raise ResponseDecodeError(
                f"chat completion reply is not a JSON object: {shorten(repr(body), 80)}"
            )
        if body.get("error"):
            raise self._payload_error(body)
        choices = body.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise ResponseDecodeError("chat completion reply has no choices")
        choice = choices[0]
        message = choice.get("message")
        if not isinstance(message, dict):
            raise ResponseDecodeError("chat completion reply has no choices[0].message")
        raw_finish = choice.get("finish_reason")
        if raw_finish == "error":
            raise self._payload_error({"error": {"message": "the provider ended with an error"}})
        finish = wire.finish_reason(raw_finish)
        if finish is None:
            # Complete means the provider said why it stopped; a reply without a reason was
            # cut short somewhere (llama.cpp does this when a newer request interrupts).
            raise ResponseDecodeError(
                "chat completion reply has no finish_reason: treating it as truncated"
            )
        truncated = finish == "length"
        content = message.get("content")
        text = content if type(content) is str else wire.text_of(content)
        if not text:
            refusal = message.get("refusal")
            if isinstance(refusal, str) and refusal:
                text, finish = refusal, "content_filter"
        wire_calls = message.get("tool_calls")
        calls = (
            [
                wire.tool_call_from_wire(call, position, truncated)
                for position, call in enumerate(wire_calls)
            ]
            if wire_calls
            else []
        )
        legacy = message.get("function_call")
        if isinstance(legacy, dict) and not calls:
            calls.append(wire.tool_call_from_wire({"function": legacy}, 0, truncated))
        usage_data = body.get("usage")
        usage = wire.usage_from_wire(usage_data) or wire.groq_usage(body)
        model = body.get("model")
        return ParsedResponse(
            message=Message(
                role="assistant",
                content=text if text or not calls else None,
                tool_calls=calls,
                reasoning=wire.reasoning_of(message),
            ),
            finish_reason=finish,
            usage=usage,
            model=model if type(model) is str else str(model or ""),
            id=body.get("id"),
            provider_cost_usd=(
                wire.provider_cost(usage_data)
                if isinstance(usage_data, dict) and "cost" in usage_data
                else None
            ),
            raw=body,
        )

    def new_stream_state(self, *, model: str) -> OpenAIChatStream:
        """A parser for one streamed reply; `model` is used until the stream names one."""
        return OpenAIChatStream(self, model)

    def parse_error(
        self, status_code: int, body: bytes, headers: Mapping[str, str]
    ) -> ProviderStatusError:
        """The error for a non-2xx reply, with the provider's own message and retry hints."""
        lowered = lower_headers(headers)
        parsed, excerpt = read_error_body(body)
        if isinstance(parsed, dict):
            return self._payload_error(parsed, status=status_code, headers=lowered, kept=parsed)
        if parsed is None:
            message = excerpt
        else:
            message = shorten(parsed if isinstance(parsed, str) else json.dumps(parsed))
        return make_status_error(
            status_code,
            message,
            code=None,
            body=kept_body(parsed, body),
            headers=lowered,
            now=self._now,
        )

    def parse_rate_limits(self, headers: Mapping[str, str]) -> RateLimitInfo:
        """OpenAI's (and Groq's) `x-ratelimit-*` family and `retry-after`.

        Groq's request limit is per day, OpenAI's per minute; the numbers are passed on as sent.
        """
        lowered = lowercase_view(headers)
        get = lowered.get
        return RateLimitInfo(
            limit_requests=int_or_none(get("x-ratelimit-limit-requests")),
            remaining_requests=int_or_none(get("x-ratelimit-remaining-requests")),
            reset_requests_s=parse_duration(get("x-ratelimit-reset-requests")),
            limit_tokens=int_or_none(get("x-ratelimit-limit-tokens")),
            remaining_tokens=int_or_none(get("x-ratelimit-remaining-tokens")),
            reset_tokens_s=parse_duration(get("x-ratelimit-reset-tokens")),
            retry_after_s=parse_retry_after(lowered, self._now),
        )

    def _payload_error(
        self,
        payload: Mapping[str, Any],
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        kept: Any = None,
    ) -> ProviderStatusError:
        """Map an error object: HTTP bodies, 200 replies and stream events alike.

        Shapes: OpenAI/Groq `{"error": {"message", "type", "code"}}`, OpenRouter
        `{"error": {"code": 502, "message", "metadata"}}`, Ollama `{"error": "text"}`,
        vLLM `{"object": "error", "message", "code": 400}`, FastAPI `{"detail": ...}`.
        Without an HTTP error status (in-band errors) the status is taken from the numeric
        code or the error type, else 500.
        """
        error = payload.get("error")
        details: Mapping[str, Any] = error if isinstance(error, dict) else payload
        message = describe(error if isinstance(error, str) else details)
        raw_code = details.get("code")
        error_type = details.get("type")
        metadata = details.get("metadata")
        metadata = metadata if isinstance(metadata, dict) else {}
        metadata_type = metadata.get("error_type")
        upstream = metadata.get("raw")
        if isinstance(upstream, str) and upstream.strip():
            message = f"{message} ({shorten(upstream, 160)})" if message else upstream
        if isinstance(raw_code, str) and raw_code:
            code: str | None = raw_code
        else:
            code = next((t for t in (metadata_type, error_type) if isinstance(t, str)), None)
        if status is None or status < 400:
            status = _in_band_status(raw_code, metadata_type, error_type)
        return make_status_error(
            status,
            message,
            code=code,
            body=kept if kept is not None else dict(payload),
            headers=headers or {},
            now=self._now,
            context_hint=metadata_type in _CONTEXT_ERROR_TYPES,
        )


class OpenAIChatStream:
    """Parses one streamed chat completion, event by event (see `StreamState`).

    Tool-call fragments are keyed by their `index`; a call's `id` and `name` are emitted
    once, on its first fragment, even when a server repeats them on every fragment.
    Usage comes from the final `choices: []` chunk (or Groq's `x_groq.usage`); if the server
    never sends any, the final chunk has `usage=None` so the caller can estimate.
    """

    def __init__(self, dialect: OpenAIChatDialect, model: str) -> None:
        self._dialect = dialect
        self._model = model
        self._id: str | None = None
        self._finish: FinishReason | None = None
        self._usage: Usage | None = None
        self._usage_is_standard = False
        self._refused = False
        self._done = False
        self._tools_started: set[int] = set()
        self._tools_named: set[int] = set()
        self._last: Any = None
        self.provider_cost_usd: Decimal | None = None

    @property
    def done(self) -> bool:
        return self._done

    @reads_provider_data
    def feed(self, event: SSEEvent) -> list[ChatChunk]:
        data = event.data
        if self._done:
            return []
        if not data.strip():
            if event.event == "error":  # an error event with no details is still an error
                raise self._error({"error": {"message": "the provider sent an error event"}})
            return []
        if data.startswith("[DONE]"):
            self._done = True
            return []
        payload = load_event_object(data, self._model)
        if payload.get("error") or event.event == "error":
            raise self._error(payload)
        self._last = payload
        self._model = str(payload.get("model") or self._model)
        self._id = payload.get("id") or self._id
        self._read_usage(payload)
        chunks = []
        for choice in payload.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # we ask for one choice; a server sending more is ignored past the first
            chunk = self._read_choice(choice)
            if chunk is not None:
                chunks.append(chunk)
        return chunks

    @reads_provider_data
    def finish(self) -> ChatChunk:
        if not self._done:
            raise ResponseDecodeError("stream ended before [DONE]", model=self._model)
        finish = self._finish
        if finish is None:
            raise ResponseDecodeError(
                "stream ended without a finish_reason: treating it as truncated", model=self._model
            )
        if self._refused and finish == "stop":
            finish = "content_filter"
        return ChatChunk(
            is_final=True,
            finish_reason=finish,
            usage=self._usage,
            model=self._model,
            id=self._id,
            raw=self._last,
        )

    def _read_usage(self, payload: Mapping[str, Any]) -> None:
        usage = wire.usage_from_wire(payload.get("usage"))
        if usage is not None:
            self._usage, self._usage_is_standard = usage, True
            self.provider_cost_usd = wire.provider_cost(payload.get("usage"))
        elif not self._usage_is_standard:
            self._usage = wire.groq_usage(payload) or self._usage

    def _read_choice(self, choice: Mapping[str, Any]) -> ChatChunk | None:
        delta = choice.get("delta")
        delta = delta if isinstance(delta, dict) else {}
        text = wire.text_of(delta.get("content"))
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            text += refusal
            self._refused = True
        reasoning = delta.get("reasoning") or delta.get("reasoning_content")
        reasoning = reasoning if isinstance(reasoning, str) else ""
        tool_deltas = [
            tool_delta
            for position, call in enumerate(delta.get("tool_calls") or ())
            if isinstance(call, dict)
            for tool_delta in [self._tool_delta(call, position)]
            if tool_delta is not None
        ]
        raw_finish = choice.get("finish_reason")
        if raw_finish == "error":
            raise self._error({"error": {"message": "the provider ended the stream with an error"}})
        if raw_finish:
            self._finish = wire.finish_reason(raw_finish)
        if not (text or reasoning or tool_deltas):
            return None
        return ChatChunk(
            text=text,
            tool_call_deltas=tool_deltas,
            reasoning=reasoning,
            model=self._model,
            id=self._id,
        )

    def _tool_delta(self, call: Mapping[str, Any], position: int) -> ToolCallDelta | None:
        index = call.get("index")
        if not isinstance(index, int):
            index = position
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        arguments = function.get("arguments")
        if isinstance(arguments, dict):  # a few servers send the object, not its JSON text
            arguments = json.dumps(arguments)
        arguments = arguments if isinstance(arguments, str) else ""
        call_id = name = None
        if index not in self._tools_started:
            self._tools_started.add(index)
            call_id = str(call.get("id") or f"call_{index}")
        if function.get("name") and index not in self._tools_named:
            self._tools_named.add(index)
            name = str(function["name"])
        if call_id is None and name is None and not arguments:
            return None
        return ToolCallDelta(index=index, id=call_id, name=name, arguments=arguments)

    def _error(self, payload: Mapping[str, Any]) -> ProviderStatusError:
        error = self._dialect._payload_error(payload)
        error.model = self._model
        return error


def _in_band_status(raw_code: Any, metadata_type: Any, error_type: Any) -> int:
    if isinstance(raw_code, int) and not isinstance(raw_code, bool) and 400 <= raw_code < 600:
        return raw_code
    for name in (raw_code, metadata_type, error_type):
        if isinstance(name, str) and name in _TYPE_STATUS:
            return _TYPE_STATUS[name]
    return 500


OPENAI_CHAT = OpenAIChatDialect()
"""The shared OpenAI chat-completions dialect."""
