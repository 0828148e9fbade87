"""What a dialect gives the HTTP layer: parsed replies, rate-limit facts, the Dialect protocol.

Dialects are sans-IO: they turn a `ChatRequest` into a JSON body, a JSON reply into a
`ParsedResponse`, SSE events into `ChatChunk`s, and an error reply into our error tree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from ..types import ChatChunk, ChatRequest, FinishReason, Message, Usage

if TYPE_CHECKING:
    from ..errors import ProviderStatusError
    from ..transport.sse import SSEEvent
    from .endpoints import Endpoint

__all__ = ["Dialect", "ParsedResponse", "RateLimitInfo", "StreamState"]


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
