"""Per-model scripts, request records and rate-limit windows for the fake provider server.

>>> ModelBehavior(errors=[429, 500], retry_after=0.01)     # two failures, then answers
>>> ModelBehavior.from_dict({"rate_limit": 2, "rate_limit_window_s": 60})
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from multidict import CIMultiDict

__all__ = [
    "DEFAULT_REQUEST_LIMIT",
    "DEFAULT_TOKEN_LIMIT",
    "ModelBehavior",
    "NowClock",
    "RateLimitWindow",
    "RateSnapshot",
    "RecordedRequest",
    "key_tail",
    "mask_key",
    "masked_headers",
    "masked_query",
]

# Limits reported in rate-limit headers when a model sets none (generous, like a paid tier).
DEFAULT_REQUEST_LIMIT = 10_000
DEFAULT_TOKEN_LIMIT = 2_000_000
_TOKEN_WINDOW_S = 60.0

ToolMode = Literal["auto", "never", "always"]
ReplyFn = Callable[[dict[str, Any]], str]


class NowClock(Protocol):
    """Anything with monotonic `now()` seconds: `core.clock.ManualClock` and `SystemClock` fit."""

    def now(self) -> float: ...


@dataclass
class ModelBehavior:
    """How the fake answers one model; every field is optional.

        >>> ModelBehavior(reply="Paris.", served_model="gpt-4o-mini-2024-07-18")
        >>> ModelBehavior(errors=[529], retry_after=0.01)        # one overload, then fine
        >>> ModelBehavior(drop_after_chunks=2)                   # stream 2 chunks, cut the TCP link

    Failure fields: `errors` are returned one per request, in order, before succeeding;
    `permanent_error` is returned always; `retry_after` / `retry_after_ms` /
    `x_should_retry` become headers on every error. `hang` accepts a request and never
    answers. `drop_after_chunks`, `mid_stream_error` (after k content chunks) and
    `malformed_json` break the response body; `html_502` answers like a load balancer.
    `no_finish_reason` answers in full but never says why it stopped (OpenAI dialect:
    `finish_reason` null throughout, `data: [DONE]` still sent, as llama.cpp's server does
    when a newer request interrupts a stream; Anthropic: `stop_reason` null, `message_stop`
    still sent). `raw_body` replaces a reply's body (sent with status `raw_status`) and
    `raw_stream` a stream's SSE bytes, verbatim (str or bytes), for hostile or garbled output.
    Limits: `rate_limit` requests per `rate_limit_window_s`, `tokens_per_minute`, and
    `context_window` (prompt tokens). `usage` overrides reported usage with any of
    `input` (every prompt token, cache included), `output`, `cached`, `cache_write`
    (`cache_write_1h`: the part of it written with Anthropic's `"ttl": "1h"`),
    `reasoning`, `cost` (OpenRouter's `usage.cost`). `null_content_error` refuses a message
    with `"content": null` as llama.cpp's server (500) or Ollama (400) do.
    Capabilities (None = decided from the model name, see `_fake_thinking` and
    `_fake_content`): `reasoning` (the model reasons: OpenAI o-series/gpt-5, Claude 3.7+,
    gpt-oss, DeepSeek R1...), `pdf` and `audio` (False refuses such parts with a 400),
    `prompt_cache` (simulate prompt caching; on for OpenAI and Anthropic) and
    `prompt_cache_min_tokens` (shortest cacheable prefix).
    """

    reply: str | ReplyFn | None = None
    served_model: str | None = None
    latency_s: float = 0.0
    ttft_s: float = 0.0
    inter_chunk_delay_s: float = 0.0
    errors: list[int] = field(default_factory=list)
    permanent_error: int | None = None
    retry_after: float | str | None = None
    retry_after_ms: float | None = None
    x_should_retry: bool | None = None
    error_message: str | None = None
    hang: bool = False
    drop_after_chunks: int | None = None
    malformed_json: bool = False
    html_502: bool = False
    mid_stream_error: int | None = None
    rate_limit: int | None = None
    rate_limit_window_s: float = 60.0
    tokens_per_minute: int | None = None
    context_window: int | None = None
    usage: Mapping[str, float] | None = None
    tool_mode: ToolMode = "auto"
    parallel_tool_calls_n: int = 1
    chunk_size: int | None = None
    null_content_error: Literal["llama.cpp", "ollama"] | None = None
    reasoning: bool | None = None
    pdf: bool | None = None
    audio: bool | None = None
    prompt_cache: bool | None = None
    prompt_cache_min_tokens: int | None = None
    no_finish_reason: bool = False
    raw_body: str | bytes | None = None
    raw_status: int = 200
    raw_stream: list[str | bytes] | None = None

    @classmethod
    def from_dict(cls, fields: Mapping[str, Any]) -> ModelBehavior:
        """Build from a JSON-style dict, rejecting unknown keys by name.

        >>> ModelBehavior.from_dict({"errors": [500], "latency_s": 0.1})
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ValueError(f"unknown ModelBehavior field(s): {', '.join(unknown)}")
        behavior = cls(**dict(fields))
        behavior.errors = list(behavior.errors)
        return behavior

    def copy(self, **changes: Any) -> ModelBehavior:
        """A copy with `changes` applied (lists and dicts copied, so the original stays put)."""
        clone = dataclasses.replace(self, **changes)
        clone.errors = list(clone.errors)
        clone.usage = dict(clone.usage) if clone.usage is not None else None
        return clone


@dataclass
class RecordedRequest:
    """One request the fake received, as a test would want to assert on it.

        >>> fake.requests[0].body["messages"][0]["content"]
        'hi'

    `headers` is case-insensitive, with API keys masked; `api_key_tail` keeps the last
    four characters of the key (keys of 8 characters or fewer give None), enough to tell
    which deployment's key was used. `started_at`/`ended_at` are `time.monotonic()`
    seconds. `outcome` is "pending", "ok", "error", "dropped", "hang", "malformed",
    "stream_error" or "client_closed".
    """

    path: str
    method: str
    headers: CIMultiDict[str]
    body: Any
    model: str | None
    stream: bool
    started_at: float
    provider: str = ""
    ended_at: float | None = None
    status: int | None = None
    api_key_tail: str | None = None
    outcome: str = "pending"
    query: dict[str, str] = field(default_factory=dict)  # secret-looking values masked

    @property
    def retry_count(self) -> int | None:
        """The SDK's `x-stainless-retry-count` header as an int, if it sent one."""
        value = self.headers.get("x-stainless-retry-count")
        return int(value) if value is not None and value.isdigit() else None


def mask_key(key: str) -> str:
    """A key as error messages may show it: never more than its first 3 and last 4 characters.

    >>> mask_key("sk-proj-abcdefghijklmnop1234")
    'sk-...1234'
    """
    if len(key) < 16:
        return "***"
    return f"{key[:3]}...{key[-4:]}"


_SECRET_HEADERS = ("authorization", "x-api-key")
_SECRET_QUERY_NAMES = ("key", "token", "secret", "pass", "sig", "auth")


def masked_headers(headers: Mapping[str, str]) -> CIMultiDict[str]:
    """Request headers for the record, each credential masked as `mask_key` does."""
    masked = CIMultiDict(headers)
    for name in _SECRET_HEADERS:
        if name in masked:
            scheme, _, secret = masked[name].rpartition(" ")
            masked[name] = f"{scheme} {mask_key(secret)}".lstrip()
    return masked


def masked_query(query: Mapping[str, str]) -> dict[str, str]:
    """Query parameters for the record, a value under a secret-looking name masked."""
    return {
        name: mask_key(value) if any(s in name.lower() for s in _SECRET_QUERY_NAMES) else value
        for name, value in query.items()
    }


def key_tail(key: str) -> str | None:
    """The last four characters of a key longer than 8, for request records."""
    return key[-4:] if len(key) > 8 else None


@dataclass(frozen=True)
class RateSnapshot:
    """Limits, remaining capacity and seconds until full replenishment, for headers."""

    request_limit: int
    requests_remaining: int
    requests_reset_s: float
    token_limit: int
    tokens_remaining: int
    tokens_reset_s: float
    input_tokens_remaining: int
    output_tokens_remaining: int


class RateLimitWindow:
    """Sliding windows of admitted requests and tokens for one model.

    Requests count when admitted; tokens (prompt and completion) when the answer is built.
    Token totals are kept running, so a busy benchmark costs O(1) per request.
    """

    def __init__(self) -> None:
        self._requests: deque[float] = deque()
        self._tokens: deque[tuple[float, int, int]] = deque()
        self._used_in = 0
        self._used_out = 0

    def _prune(self, now: float, window_s: float) -> None:
        while self._requests and self._requests[0] <= now - window_s:
            self._requests.popleft()
        while self._tokens and self._tokens[0][0] <= now - _TOKEN_WINDOW_S:
            _, used_in, used_out = self._tokens.popleft()
            self._used_in -= used_in
            self._used_out -= used_out

    def request_wait(self, behavior: ModelBehavior, now: float) -> float | None:
        """Seconds until a request slot frees, or None when a request may go now."""
        if behavior.rate_limit is None:
            return None
        self._prune(now, behavior.rate_limit_window_s)
        if len(self._requests) < behavior.rate_limit:
            return None
        return max(0.001, self._requests[0] + behavior.rate_limit_window_s - now)

    def token_wait(self, behavior: ModelBehavior, now: float, prompt_tokens: int) -> float | None:
        """Seconds until `prompt_tokens` fit under the TPM limit, or None when they fit now."""
        if behavior.tokens_per_minute is None:
            return None
        self._prune(now, behavior.rate_limit_window_s)
        if self._used_in + self._used_out + prompt_tokens <= behavior.tokens_per_minute:
            return None
        if not self._tokens:
            return _TOKEN_WINDOW_S  # the prompt alone exceeds the limit
        return max(0.001, self._tokens[0][0] + _TOKEN_WINDOW_S - now)

    def admit(self, now: float, input_tokens: int, output_tokens: int) -> None:
        """Count one request and its tokens."""
        self._requests.append(now)
        self._tokens.append((now, input_tokens, output_tokens))
        self._used_in += input_tokens
        self._used_out += output_tokens

    def snapshot(self, behavior: ModelBehavior, now: float) -> RateSnapshot:
        window_s = behavior.rate_limit_window_s
        self._prune(now, window_s)
        request_limit = behavior.rate_limit or DEFAULT_REQUEST_LIMIT
        token_limit = behavior.tokens_per_minute or DEFAULT_TOKEN_LIMIT
        requests_reset = self._requests[-1] + window_s - now if self._requests else 0.0
        tokens_reset = self._tokens[-1][0] + _TOKEN_WINDOW_S - now if self._tokens else 0.0
        return RateSnapshot(
            request_limit=request_limit,
            requests_remaining=max(0, request_limit - len(self._requests)),
            requests_reset_s=max(0.0, requests_reset),
            token_limit=token_limit,
            tokens_remaining=max(0, token_limit - self._used_in - self._used_out),
            tokens_reset_s=max(0.0, tokens_reset),
            input_tokens_remaining=max(0, token_limit - self._used_in),
            output_tokens_remaining=max(0, token_limit - self._used_out),
        )


def go_duration(seconds: float) -> str:
    """OpenAI/Groq reset-header durations: `12ms`, `1.5s`, `6m0s`, `1h2m3s`.

    >>> go_duration(360)
    '6m0s'
    """
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    secs_text = f"{secs:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{int(hours)}h{int(minutes)}m{secs_text}s"
    if minutes:
        return f"{int(minutes)}m{secs_text}s"
    return f"{secs_text}s"
