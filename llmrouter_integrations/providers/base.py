"""What a dialect gives the HTTP layer: parsed replies, rate-limit facts, the Dialect protocol.

Dialects are sans-IO: they turn a `ChatRequest` into a JSON body, a JSON reply into a
`ParsedResponse`, SSE events into `ChatChunk`s, and an error reply into our error tree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from ..types import ChatChunk, ChatRequest, FinishReason, Message, Usage

if TYPE_CHECKING:
    from ..errors import ProviderStatusError
    from ..transport.sse import SSEEvent

__all__ = [
    "PARSER_ERRORS",
    "Dialect",
    "Endpoint",
    "ParsedResponse",
    "Quirks",
    "RateLimitInfo",
    "StreamState",
]

Quirks = Callable[[dict[str, Any], ChatRequest], dict[str, Any]]
# What a dialect's parser raises when a reply is shaped in a way nobody anticipated: the
# HTTP layer and the dialects turn these into a ResponseDecodeError.
PARSER_ERRORS = (
    KeyError,
    IndexError,
    TypeError,
    ValueError,
    AttributeError,
    RecursionError,
    OverflowError,
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One provider's API: where it lives, which wire format it speaks, what it needs.

    `quirks` gets the finished request body (after `extra_body`) and returns the body to
    send; it is where a provider's departures from its dialect live.

        >>> Endpoint(name="lmstudio", dialect="openai_chat", base_url="http://localhost:1234/v1",
        ...          api_key_env=None, base_url_env="LMSTUDIO_BASE_URL", default_model="",
        ...          local=True, key_required=False)
    """

    name: str
    dialect: str  # "openai_chat" | "anthropic_messages"
    base_url: str  # OpenAI-style URLs end in /v1; Anthropic's has none
    api_key_env: str | None
    base_url_env: str | None
    default_model: str
    local: bool = False  # runs on the user's machine: costs nothing
    key_required: bool = True
    headers: Mapping[str, str] = field(default_factory=dict, hash=False)
    prices_provider: str | None = None  # genai-prices provider id
    quirks: Quirks | None = None
    # Takes `"content": null` on an assistant turn that only calls tools, as the OpenAI spec
    # says. Ollama answers 400 "invalid message content type: <nil>", llama.cpp's server 500
    # "Expected 'content' to be a string or an array" (LM Studio, mlx-lm refuse it too):
    # for those rows "" is sent instead.
    null_tool_call_content: bool = True
    # How `reasoning=` is spelled here (see providers/_reasoning.py): "openai", "groq",
    # "openrouter", "compatible" (reasoning_effort), "none" (the model decides: DeepSeek).
    reasoning_style: str = "compatible"
    # Passes `cache_control` marks on message parts to the model (OpenRouter does, for
    # Anthropic and Gemini models); elsewhere on OpenAI-style wires they are left out.
    cache_marks: bool = False


@dataclass(slots=True)
class ParsedResponse:
    """A provider reply in our vocabulary, before cost and routing facts are added."""

    message: Message
    finish_reason: FinishReason | None
    usage: Usage | None  # None when the server sent none: the HTTP layer estimates it
    model: str
    id: str | None = None
    provider_cost_usd: Decimal | None = None  # OpenRouter's usage.cost, when it sends one
    raw: Any = None


@dataclass(slots=True)
class RateLimitInfo:
    """What the provider's rate-limit headers said; None where a header was absent.

    `reset_*_s` are seconds from now until the window refills.
    """

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests_s: float | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens_s: float | None = None
    retry_after_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return (
            self.limit_requests is None
            and self.remaining_requests is None
            and self.limit_tokens is None
            and self.remaining_tokens is None
            and self.retry_after_s is None
        )


class StreamState(Protocol):
    """Incremental parser of one stream: feed decoded SSE events, get chunks back.

    `feed` returns zero or more chunks (never a final one); `finish` is called when the
    byte stream ended and returns the final chunk (`is_final=True`, with usage and
    finish_reason), or raises `ResponseDecodeError` if the stream ended early
    (no `[DONE]` / `message_stop`). A mid-stream error event raises from `feed`.
    """

    def feed(self, event: SSEEvent) -> list[ChatChunk]: ...

    def finish(self) -> ChatChunk: ...

    @property
    def done(self) -> bool:
        """True once the provider's end-of-stream marker was seen."""
        ...

    @property
    def provider_cost_usd(self) -> Decimal | None:
        """The cost the provider reported for this call (OpenRouter's usage.cost), if any."""
        ...


class Dialect(Protocol):
    """One wire format (OpenAI chat completions, Anthropic messages)."""

    name: str
    path: str  # appended to the endpoint's base_url, e.g. "/chat/completions"

    def build_headers(self, api_key: str | None, endpoint: Endpoint) -> dict[str, str]: ...

    def build_body(
        self, request: ChatRequest, *, model: str, stream: bool, endpoint: Endpoint
    ) -> dict[str, Any]: ...

    def parse_response(self, body: Any) -> ParsedResponse: ...

    def new_stream_state(self, *, model: str) -> StreamState: ...

    def parse_error(
        self, status_code: int, body: bytes, headers: Mapping[str, str]
    ) -> ProviderStatusError: ...

    def parse_rate_limits(self, headers: Mapping[str, str]) -> RateLimitInfo: ...
