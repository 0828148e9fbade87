"""Wire helpers both dialects share: headers, durations, error bodies, tool arguments, images.

>>> parse_duration("6m0s")
360.0
"""

from __future__ import annotations

import functools
import json
import math
import re
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, ParamSpec, TypeVar

from ..errors import (
    ContextWindowExceededError,
    OverloadedError,
    PermissionDeniedError,
    ProviderStatusError,
    RequestTooLargeError,
    ResponseDecodeError,
    RouterError,
    error_for_status,
)
from .base import PARSER_ERRORS

__all__ = [
    "MAX_TOKEN_COUNT",
    "arguments_from_json",
    "data_url",
    "decimal_or_none",
    "describe",
    "guess_image_media_type",
    "int_or_none",
    "is_context_window_message",
    "kept_body",
    "lower_headers",
    "lowercase_view",
    "make_status_error",
    "merge_extra",
    "parse_data_url",
    "parse_duration",
    "parse_retry_after",
    "parse_timestamp",
    "read_error_body",
    "reads_provider_data",
    "redact",
    "reference_time",
    "shorten",
    "token_count",
]

Now = Callable[[], float]
_P = ParamSpec("_P")
_R = TypeVar("_R")

_EXCERPT_CHARS = 200
# No single call uses a billion tokens; a bigger count is a broken server, not usage.
MAX_TOKEN_COUNT = 1_000_000_000
_BODY_KEEP_CHARS = 2000

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|us|µs|ns|h|m|s)")
_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}

# Messages providers use when the prompt (plus max_tokens) does not fit the model:
# OpenAI/DeepSeek/vLLM "maximum context length", Anthropic "prompt is too long" and
# "exceed context limit", llama.cpp "exceeds the available context size", Together
# "`inputs` tokens + `max_new_tokens`", Mistral "too large for model with N maximum context length".
_CONTEXT_WINDOW = re.compile(
    r"context[_ ]length[_ ]exceeded|maximum context length|context (?:window|size|limit)"
    r"|prompt is too long|too many tokens|max_new_tokens|input (?:is )?too long"
    r"|reduce the length of the (?:messages|input|prompt)",
    re.IGNORECASE,
)
# A request bigger than the whole per-minute token allowance (OpenAI/Groq 413/429):
# waiting will not help, another deployment might.
_OVER_TOKEN_ALLOWANCE = re.compile(r"request too large .* tokens per min", re.IGNORECASE)
_TAG = re.compile(r"<[^>]+>")
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_SPACES = re.compile(r"\s+")
# Provider messages sometimes echo part of the key; keep at most a short prefix.
_SECRET = re.compile(r"\b(sk-ant-[\w-]{4}|sk-or-v1-|sk-|gsk_|xai-|fw_)[\w-]{12,}")

_IMAGE_SIGNATURES = (
    ("iVBORw0KGgo", "image/png"),
    ("/9j/", "image/jpeg"),
    ("R0lGOD", "image/gif"),
    ("UklGR", "image/webp"),
)


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers with lower-case names, whatever mapping the HTTP library handed us."""
    return {name.lower(): value for name, value in headers.items()}


# Header mappings that already look names up case-insensitively: aiohttp's (multidict) and
# httpx's. Reading them directly skips copying every header on each reply.
_CASE_INSENSITIVE_TYPES = {
    ("multidict", "CIMultiDictProxy"),
    ("multidict", "CIMultiDict"),
    ("httpx", "Headers"),
}
_case_insensitive: dict[type, bool] = {}


def lowercase_view(headers: Mapping[str, str]) -> Mapping[str, str]:
    """A mapping whose `get` takes lower-case names: `headers` itself when it ignores case
    (aiohttp, httpx), else a lower-cased copy. For reading only.

    >>> lowercase_view({"Retry-After": "2"}).get("retry-after")
    '2'
    """
    kind = type(headers)
    known = _case_insensitive.get(kind)
    if known is None:
        package = kind.__module__.partition(".")[0]
        known = _case_insensitive[kind] = (package, kind.__name__) in _CASE_INSENSITIVE_TYPES
    return headers if known else lower_headers(headers)


def int_or_none(value: str | None) -> int | None:
    """An integer header value, or None when absent or garbled."""
    if value is None:
        return None
    try:
        return int(value)  # the usual case; int() ignores surrounding whitespace itself
    except ValueError:
        pass
    try:
        return int(float(value.strip()))
    except (ValueError, OverflowError):  # OverflowError: "inf"
        return None


def token_count(value: Any, field: str = "usage") -> int:
    """A token count from JSON: absent or not a number counts as 0; a count no call can have
    (infinite, NaN, negative, over a billion) is a `ResponseDecodeError`, never a crash.

    >>> token_count(12), token_count(None), token_count("n/a")
    (12, 0, 0)
    """
    if type(value) is int and 0 <= value <= MAX_TOKEN_COUNT:
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    if value != value or not 0 <= value <= MAX_TOKEN_COUNT:  # NaN, inf, negative, huge
        raise ResponseDecodeError(f"{field} is not a token count: {value!r:.40}")
    return int(value)


def reads_provider_data(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """Make a parser entry point raise only errors of our tree: a reply shaped in a way the
    code did not anticipate (found by fuzzing: a list where an object was, a boolean where
    a list was) is a `ResponseDecodeError`, never a bare TypeError or KeyError.

    >>> @reads_provider_data
    ... def first(body): return body["choices"][0]
    >>> first({"choices": True})
    Traceback (most recent call last):
    ResponseDecodeError: could not read the provider's reply (TypeError: ...)
    """

    @functools.wraps(function)
    def guarded(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return function(*args, **kwargs)
        except RouterError:
            raise
        except PARSER_ERRORS as exc:
            error = ResponseDecodeError(
                f"could not read the provider's reply ({type(exc).__name__}: "
                f"{shorten(str(exc), 120)})"
            )
        raise error  # outside the handler: the parser's error stays out of the chain

    return guarded


def decimal_or_none(value: Any) -> Decimal | None:
    """A JSON number as an exact Decimal (via its text, so 0.1 stays 0.1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        return None
    return result if result.is_finite() else None


def parse_duration(text: str | None) -> float | None:
    """Seconds in a Go-style duration ("6m0s", "2m59.56s", "120ms") or a bare number.

    >>> parse_duration("2m59.56s")
    179.56
    """
    if not text:
        return None
    return _parse_duration(text)


# Every reply carries one or two of these, and servers repeat the same few values.
@lru_cache(maxsize=1024)
def _parse_duration(text: str) -> float | None:
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) else None
    total = 0.0
    position = 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if position == 0 or position != len(text):
        return None
    return round(total, 6)


def parse_timestamp(text: str | None) -> float | None:
    """Unix seconds of an RFC 3339 time ("2025-08-21T12:40:59Z") or an HTTP date."""
    if not text:
        return None
    text = text.strip()
    try:
        iso = text.replace("Z", "+00:00").replace("z", "+00:00")
        # Python 3.10's fromisoformat takes at most 6 fraction digits.
        iso = re.sub(r"(\.\d{6})\d+", r"\1", iso)
        moment = datetime.fromisoformat(iso)
    except ValueError:
        # Imported here: HTTP dates are rare, and email.utils costs import time.
        from email.utils import parsedate_to_datetime

        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def reference_time(headers: Mapping[str, str], now: Now) -> float:
    """The server's idea of "now" (its Date header) so clock skew cannot distort resets."""
    server_time = parse_timestamp(headers.get("date"))
    return server_time if server_time is not None else now()


def parse_retry_after(headers: Mapping[str, str], now: Now = time.time) -> float | None:
    """Seconds the provider asked us to wait: retry-after-ms, else retry-after (seconds or date).

    `headers` must have lower-case names (see `lower_headers`).
    """
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            value = float(millis) / 1000
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        moment = parse_timestamp(raw)
        if moment is None:
            return None
        return max(0.0, moment - reference_time(headers, now))
    return value if math.isfinite(value) and value >= 0 else None


def read_error_body(body: bytes) -> tuple[Any, str]:
    """The parsed JSON of an error body (None if not JSON) and a short plain-text excerpt.

    Gateways answer 502/503 with whole HTML pages; only the title or the first words survive.
    """
    text = body.decode("utf-8", errors="replace").strip()
    try:
        return json.loads(text), ""
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested past the limit
        pass
    title = _TITLE.search(text)
    if title:
        return None, shorten(title.group(1))
    return None, shorten(_TAG.sub(" ", text) if text.startswith("<") else text)


def shorten(text: str, limit: int = _EXCERPT_CHARS) -> str:
    """Text on one line, cut to `limit` characters."""
    text = _SPACES.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def describe(value: Any) -> str:
    """A provider's error message as text, whatever shape it came in.

    Mistral and FastAPI-based servers send pydantic details (`[{"loc": [...], "msg": ...}]`)
    instead of a string; those become "msg (body.field); ...".
    """
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in ("message", "detail", "msg"):
            if key in value:
                return describe(value[key])
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        parts = []
        for item in value:
            where = ".".join(str(step) for step in item.get("loc") or ())
            text = describe(item.get("msg", item))
            parts.append(f"{text} ({where})" if where else text)
        return shorten("; ".join(parts))
    return "" if value is None else shorten(json.dumps(value, default=str))


def kept_body(parsed: Any, body: bytes) -> Any:
    """What an error keeps as `.body`: the JSON, or the text cut to a sane length."""
    if parsed is not None:
        return parsed
    return body[:_BODY_KEEP_CHARS].decode("utf-8", errors="replace")


def redact(message: str) -> str:
    """Cut anything shaped like an API key out of a provider's message."""
    return _SECRET.sub(lambda m: m.group(1) + "***", message)


def is_context_window_message(message: str, code: str | None) -> bool:
    """True when a provider's error says the prompt does not fit the model."""
    if code in ("context_length_exceeded", "exceed_context_size_error"):
        return True
    return bool(_CONTEXT_WINDOW.search(message))


def make_status_error(
    status: int,
    message: str,
    *,
    code: str | None,
    body: Any,
    headers: Mapping[str, str],
    now: Now = time.time,
    context_hint: bool = False,
) -> ProviderStatusError:
    """Build the right error of our tree for one provider failure.

    `headers` must have lower-case names. Beyond the status table in `errors.py`:
    402 (no credits, OpenRouter/Anthropic billing) is a `PermissionDeniedError`, a fault of
    the deployment, so the router moves on; Groq's 498 (flex capacity full) is an
    `OverloadedError`; a prompt too big for the model is a `ContextWindowExceededError`;
    a 429/413 saying the request alone is over the tokens-per-minute allowance is a
    `RequestTooLargeError` (a context-window error: falls back, trips no breaker);
    "insufficient_quota" is not retried on the same deployment.
    `x-should-retry` overrides the retry decision, as the official SDKs do.
    """
    message = redact(message.strip()) or _status_phrase(status)
    cls = error_for_status(status)
    if status == 402:
        cls = PermissionDeniedError
    elif status == 498:
        cls = OverloadedError
    if status in (413, 429) and _OVER_TOKEN_ALLOWANCE.search(message):
        cls = RequestTooLargeError
    elif context_hint or (
        400 <= status < 500 and status != 429 and is_context_window_message(message, code)
    ):
        cls = ContextWindowExceededError
    should_retry = headers.get("x-should-retry", "").strip().lower()
    retryable = {"true": True, "false": False}.get(should_retry)
    error = cls(
        message,
        status_code=status,
        body=body,
        headers=headers,
        retry_after=parse_retry_after(headers, now),
        code=code,
        retryable=retryable,
    )
    if cls is RequestTooLargeError:
        error.retryable = False  # whatever x-should-retry says: no wait makes it fit
    elif code == "insufficient_quota":
        # The deployment cannot serve this at all for now: don't hammer it, fall back.
        error.deployment_error = True
        if retryable is None:
            error.retryable = False
    return error


def _status_phrase(status: int) -> str:
    from http import HTTPStatus  # only for errors without a message; keeps import light

    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def arguments_from_json(text: str | None, *, truncated: bool, where: str) -> dict[str, Any]:
    """Tool-call arguments from the JSON text a model wrote.

    Empty text means no arguments. A string holding JSON again (some models double-encode)
    is decoded once more. When the answer was cut off by max_tokens (`truncated`), broken
    JSON yields `{}` (the finish reason "length" tells the caller); otherwise it is an error.
    """
    if text is None or not text.strip():
        return {}
    try:
        value = json.loads(text)
        if isinstance(value, str):
            value = json.loads(value)
    except ValueError:
        if truncated:
            return {}
        raise ResponseDecodeError(
            f"{where}: tool call arguments are not valid JSON: {text[:80]!r}"
        ) from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        if truncated:
            return {}
        raise ResponseDecodeError(f"{where}: tool call arguments are not a JSON object")
    return value


def merge_extra(body: dict[str, Any], extra: Mapping[str, Any]) -> None:
    """Merge `extra_body` into a request body; objects on both sides are merged one level deep.

    So `extra_body={"stream_options": {"include_obfuscation": False}}` keeps our
    `include_usage`, while any other value simply replaces ours.
    """
    for key, value in extra.items():
        current = body.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            body[key] = {**current, **value}
        else:
            body[key] = value


def guess_image_media_type(data: str) -> str:
    """The media type of base64 image data, from its first bytes (PNG when unknown)."""
    for prefix, media_type in _IMAGE_SIGNATURES:
        if data.startswith(prefix):
            return media_type
    return "image/png"


def data_url(media_type: str | None, data: str) -> str:
    """A data: URL for base64 image data."""
    return f"data:{media_type or guess_image_media_type(data)};base64,{data}"


def parse_data_url(url: str) -> tuple[str, str] | None:
    """(media_type, base64 data) of a base64 data: URL, None for any other URL."""
    if not url.startswith("data:"):
        return None
    header, sep, data = url[5:].partition(",")
    if not sep or not header.endswith(";base64"):
        return None
    media_type = header[: -len(";base64")].split(";")[0] or guess_image_media_type(data)
    return media_type, data
