"""Both dialects turn provider error replies and rate-limit headers into our vocabulary."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmrouter_integrations.errors import (
    AuthenticationError,
    BadRequestError,
    ContextWindowExceededError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    ProviderStatusError,
    RateLimitError,
    RequestTooLargeError,
    ServerError,
)
from llmrouter_integrations.layers.fallback import default_should_fallback
from llmrouter_integrations.providers.anthropic_messages import (
    ANTHROPIC_MESSAGES,
    AnthropicMessagesDialect,
)
from llmrouter_integrations.providers.base import Dialect
from llmrouter_integrations.providers.openai_chat import OPENAI_CHAT, OpenAIChatDialect
from llmrouter_integrations.routing.health import classify_failure


def openai_body(message: str, type_: str | None = None, code: Any = None) -> bytes:
    error = {"message": message, "type": type_, "param": None, "code": code}
    return json.dumps({"error": error}).encode()


def anthropic_body(type_: str, message: str) -> bytes:
    return json.dumps(
        {"type": "error", "error": {"type": type_, "message": message}, "request_id": "req_1"}
    ).encode()


HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    + b"<!-- padding -->" * 500
    + b"</body>\r\n</html>\r\n"
)

OPENAI_CASES = [
    (
        400,
        openai_body(
            "Unsupported parameter: 'max_tokens'", "invalid_request_error", "unsupported_parameter"
        ),
        BadRequestError,
        False,
    ),
    (
        401,
        openai_body(
            "Incorrect API key provided: sk-abc***.", "invalid_request_error", "invalid_api_key"
        ),
        AuthenticationError,
        False,
    ),
    (
        403,
        openai_body(
            "Country, region, or territory not supported",
            "request_forbidden",
            "unsupported_country_region_territory",
        ),
        PermissionDeniedError,
        False,
    ),
    (
        404,
        openai_body(
            "The model `gpt-9` does not exist or you do not have access to it.",
            "invalid_request_error",
            "model_not_found",
        ),
        NotFoundError,
        False,
    ),
    (408, openai_body("Request timed out."), ServerError, True),
    (409, openai_body("lock timeout"), ServerError, True),
    (413, openai_body("Request entity too large", "invalid_request_error"), BadRequestError, False),
    (
        422,
        b'{"object":"error","message":{"detail":[{"type":"extra_forbidden","loc":["body","stream_options","include_usage"],"msg":"Extra inputs are not permitted","input":true}]},"type":"invalid_request_error","param":null,"code":null}',
        BadRequestError,
        False,
    ),
    (
        429,
        openai_body(
            "Rate limit reached for gpt-4o on tokens per min (TPM): Limit 30000, Used 29000, Requested 2000. Please try again in 2s.",
            "tokens",
            "rate_limit_exceeded",
        ),
        RateLimitError,
        True,
    ),
    (
        500,
        openai_body(
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
        ),
        ServerError,
        True,
    ),
    (502, HTML_502, ServerError, True),
    (
        503,
        openai_body(
            "The engine is currently overloaded, please try again later.",
            "service_unavailable_error",
            "server_is_overloaded",
        ),
        OverloadedError,
        True,
    ),
    (529, openai_body("Overloaded"), OverloadedError, True),
]


@pytest.mark.parametrize(("status", "body", "error", "retryable"), OPENAI_CASES)
def test_openai_error_statuses(status: int, body: bytes, error: type, retryable: bool) -> None:
    exc = OPENAI_CHAT.parse_error(status, body, {"x-request-id": "req_1"})
    assert type(exc) is error
    assert exc.status_code == status
    assert exc.retryable is retryable
    assert exc.message and len(exc.message) <= 200
    if body.startswith(b"{"):
        assert isinstance(exc.body, dict)


def test_openai_messages_are_the_providers_own() -> None:
    exc = OPENAI_CHAT.parse_error(404, OPENAI_CASES[3][1], {})
    assert exc.message == "The model `gpt-9` does not exist or you do not have access to it."
    assert exc.code == "model_not_found"
    assert "(HTTP 404)" in str(exc)
    mistral = OPENAI_CHAT.parse_error(422, OPENAI_CASES[7][1], {})
    assert mistral.message == "Extra inputs are not permitted (body.stream_options.include_usage)"


def test_html_gateway_page_becomes_a_short_excerpt() -> None:
    for dialect in (OPENAI_CHAT, ANTHROPIC_MESSAGES):
        exc = dialect.parse_error(502, HTML_502, {"content-type": "text/html"})
        assert type(exc) is ServerError
        assert exc.message == "502 Bad Gateway"
        assert len(str(exc.body)) <= 2000
    plain = OPENAI_CHAT.parse_error(503, b"upstream connect error " * 50, {})
    assert len(plain.message) <= 200 and plain.message.startswith("upstream connect error")
    empty = OPENAI_CHAT.parse_error(500, b"", {})
    assert empty.message == "HTTP 500 Internal Server Error"


@pytest.mark.parametrize(
    "body",
    [
        openai_body(
            "This model's maximum context length is 128000 tokens. However, your messages resulted in 130012 tokens.",
            "invalid_request_error",
            "context_length_exceeded",
        ),
        openai_body(
            "Please reduce the length of the messages or completion.",
            "invalid_request_error",
            "context_length_exceeded",
        ),
        b'{"object":"error","message":"This model\'s maximum context length is 4096 tokens. However, you requested 5000 tokens.","type":"BadRequestError","param":null,"code":400}',
        b'{"error":{"code":400,"message":"Input too long","metadata":{"error_type":"context_length_exceeded"}}}',
        b'{"error":"input length exceeds maximum context length"}',
        b'{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error"}}',
    ],
)
def test_openai_context_window_errors(body: bytes) -> None:
    exc = OPENAI_CHAT.parse_error(400, body, {})
    assert isinstance(exc, ContextWindowExceededError)
    assert exc.deployment_error and not exc.retryable


def test_openrouter_numeric_codes_and_credits() -> None:
    credits = OPENAI_CHAT.parse_error(
        402, b'{"error":{"code":402,"message":"Insufficient credits"}}', {}
    )
    assert type(credits) is PermissionDeniedError and credits.deployment_error
    assert credits.message == "Insufficient credits"
    down = OPENAI_CHAT.parse_error(
        502,
        b'{"error":{"code":502,"message":"Provider returned error","metadata":{"provider_name":"X","raw":"upstream timeout"}}}',
        {},
    )
    assert (
        type(down) is ServerError and down.message == "Provider returned error (upstream timeout)"
    )
    groq_flex = OPENAI_CHAT.parse_error(
        498, openai_body("Flex tier capacity exceeded", code="capacity_exceeded"), {}
    )
    assert type(groq_flex) is OverloadedError and groq_flex.retryable


def test_quota_and_over_allowance_are_not_retried_but_fall_back() -> None:
    quota = OPENAI_CHAT.parse_error(
        429,
        openai_body("You exceeded your current quota", "insufficient_quota", "insufficient_quota"),
        {},
    )
    assert isinstance(quota, RateLimitError)
    assert not quota.retryable and quota.deployment_error
    too_big = OPENAI_CHAT.parse_error(
        413,
        openai_body(
            "Request too large for model `llama3-70b` on tokens per minute (TPM): Limit 6000, Requested 8000",
            "tokens",
            "rate_limit_exceeded",
        ),
        {},
    )
    # Too big for this deployment's per-minute allowance: like a context window, it falls
    # back and the deployment's breaker does not count it.
    assert isinstance(too_big, RequestTooLargeError)
    assert isinstance(too_big, ContextWindowExceededError)
    assert not too_big.retryable
    assert default_should_fallback(too_big)
    assert classify_failure(too_big) is None


@pytest.mark.parametrize("dialect", [OPENAI_CHAT, ANTHROPIC_MESSAGES], ids=["openai", "anthropic"])
def test_retry_after_headers(dialect: Dialect) -> None:
    body = b"{}"
    assert (
        dialect.parse_error(429, body, {"retry-after-ms": "1500", "retry-after": "9"}).retry_after
        == 1.5
    )
    assert dialect.parse_error(429, body, {"Retry-After": "2.5"}).retry_after == 2.5
    dated = {
        "Retry-After": "Wed, 21 Oct 2026 07:28:30 GMT",
        "Date": "Wed, 21 Oct 2026 07:28:00 GMT",
    }
    assert dialect.parse_error(503, body, dated).retry_after == 30.0
    assert dialect.parse_error(429, body, {"retry-after": "soon"}).retry_after is None
    assert dialect.parse_error(429, body, {}).retry_after is None


def test_http_date_retry_after_without_date_header_uses_injected_now() -> None:
    now = 1_792_567_680.0  # 2026-10-21T07:28:00Z
    for dialect in (OpenAIChatDialect(now=lambda: now), AnthropicMessagesDialect(now=lambda: now)):
        exc = dialect.parse_error(429, b"{}", {"retry-after": "Wed, 21 Oct 2026 07:28:10 GMT"})
        assert exc.retry_after == 10.0


@pytest.mark.parametrize("dialect", [OPENAI_CHAT, ANTHROPIC_MESSAGES], ids=["openai", "anthropic"])
def test_x_should_retry_overrides(dialect: Dialect) -> None:
    assert dialect.parse_error(500, b"{}", {"x-should-retry": "false"}).retryable is False
    assert dialect.parse_error(400, b"{}", {"X-Should-Retry": "true"}).retryable is True
    assert dialect.parse_error(500, b"{}", {}).retryable is True


def test_key_shaped_text_is_redacted_from_messages() -> None:
    leaked = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0" * 2
    exc = OPENAI_CHAT.parse_error(401, openai_body(f"Incorrect API key provided: {leaked}."), {})
    assert leaked not in exc.message and leaked[12:] not in str(exc)


ANTHROPIC_CASES = [
    (400, "invalid_request_error", "messages: roles must alternate", BadRequestError),
    (401, "authentication_error", "invalid x-api-key", AuthenticationError),
    (402, "billing_error", "Your credit balance is too low", PermissionDeniedError),
    (403, "permission_error", "Your API key does not have permission", PermissionDeniedError),
    (404, "not_found_error", "The requested resource could not be found.", NotFoundError),
    (408, "timeout_error", "Request timed out", ServerError),
    (409, "conflict_error", "Conflict", ServerError),
    (
        413,
        "request_too_large",
        "Request exceeds the maximum allowed number of bytes.",
        BadRequestError,
    ),
    (422, "invalid_request_error", "Unprocessable", BadRequestError),
    (
        429,
        "rate_limit_error",
        "Number of request tokens has exceeded your per-minute rate limit",
        RateLimitError,
    ),
    (500, "api_error", "Internal server error", ServerError),
    (502, "api_error", "Bad gateway", ServerError),
    (503, "overloaded_error", "Service unavailable", OverloadedError),
    (504, "timeout_error", "Gateway timeout", ServerError),
    (529, "overloaded_error", "Overloaded", OverloadedError),
]


@pytest.mark.parametrize(("status", "type_", "message", "error"), ANTHROPIC_CASES)
def test_anthropic_error_statuses(status: int, type_: str, message: str, error: type) -> None:
    exc = ANTHROPIC_MESSAGES.parse_error(
        status, anthropic_body(type_, message), {"request-id": "r"}
    )
    assert type(exc) is error
    assert (exc.status_code, exc.message, exc.code) == (status, message, type_)
    assert exc.retryable is (status in (408, 409, 429) or status >= 500)


@pytest.mark.parametrize(
    "message",
    [
        "prompt is too long: 208310 tokens > 200000 maximum",
        "input length and `max_tokens` exceed context limit: 188240 + 21333 > 200000, decrease input length or `max_tokens` and try again",
    ],
)
def test_anthropic_context_window_errors(message: str) -> None:
    exc = ANTHROPIC_MESSAGES.parse_error(400, anthropic_body("invalid_request_error", message), {})
    assert isinstance(exc, ContextWindowExceededError)
    assert exc.message == message


def test_rate_limited_reply_is_not_a_context_error_even_if_it_mentions_tokens() -> None:
    exc = OPENAI_CHAT.parse_error(429, openai_body("too many tokens per minute"), {})
    assert type(exc) is RateLimitError


# --- rate-limit headers --------------------------------------------------------------------


def test_openai_rate_limit_headers() -> None:
    info = OPENAI_CHAT.parse_rate_limits(
        {
            "x-ratelimit-limit-requests": "5000",
            "x-ratelimit-remaining-requests": "4999",
            "x-ratelimit-reset-requests": "12ms",
            "x-ratelimit-limit-tokens": "160000",
            "x-ratelimit-remaining-tokens": "159976",
            "x-ratelimit-reset-tokens": "6m0s",
        }
    )
    assert (info.limit_requests, info.remaining_requests, info.reset_requests_s) == (
        5000,
        4999,
        0.012,
    )
    assert (info.limit_tokens, info.remaining_tokens, info.reset_tokens_s) == (
        160000,
        159976,
        360.0,
    )
    assert info.retry_after_s is None and not info.empty


def test_groq_rate_limit_headers_any_case() -> None:
    info = OPENAI_CHAT.parse_rate_limits(
        {
            "X-RateLimit-Limit-Requests": "14400",
            "X-RateLimit-Remaining-Requests": "14370",
            "X-RateLimit-Reset-Requests": "2m59.56s",
            "X-RateLimit-Limit-Tokens": "18000",
            "X-RateLimit-Remaining-Tokens": "17997",
            "X-RateLimit-Reset-Tokens": "7.66s",
            "Retry-After": "2",
        }
    )
    assert info.reset_requests_s == pytest.approx(179.56)
    assert info.reset_tokens_s == pytest.approx(7.66)
    assert (info.remaining_requests, info.remaining_tokens, info.retry_after_s) == (
        14370,
        17997,
        2.0,
    )


def test_missing_or_garbled_rate_limit_headers() -> None:
    assert OPENAI_CHAT.parse_rate_limits({"content-type": "application/json"}).empty
    odd = OPENAI_CHAT.parse_rate_limits(
        {"x-ratelimit-remaining-requests": "lots", "x-ratelimit-reset-tokens": "1x"}
    )
    assert odd.remaining_requests is None and odd.reset_tokens_s is None
    assert (
        OPENAI_CHAT.parse_rate_limits({"x-ratelimit-reset-tokens": "1h2m3.5s"}).reset_tokens_s
        == 3723.5
    )


def test_anthropic_rate_limit_headers_relative_to_the_date_header() -> None:
    info = ANTHROPIC_MESSAGES.parse_rate_limits(
        {
            "Date": "Thu, 21 Aug 2025 12:40:00 GMT",
            "anthropic-ratelimit-requests-limit": "1000",
            "anthropic-ratelimit-requests-remaining": "999",
            "anthropic-ratelimit-requests-reset": "2025-08-21T12:40:59Z",
            "anthropic-ratelimit-tokens-limit": "96000",
            "anthropic-ratelimit-tokens-remaining": "95000",
            "anthropic-ratelimit-tokens-reset": "2025-08-21T12:40:01.500000Z",
            "anthropic-ratelimit-input-tokens-limit": "80000",
            "anthropic-ratelimit-input-tokens-remaining": "80000",
            "anthropic-ratelimit-input-tokens-reset": "2025-08-21T12:40:00Z",
            "anthropic-ratelimit-output-tokens-limit": "16000",
            "anthropic-ratelimit-output-tokens-remaining": "15000",
            "anthropic-ratelimit-output-tokens-reset": "2025-08-21T12:40:06Z",
            "retry-after": "12",
        }
    )
    assert (info.limit_requests, info.remaining_requests, info.reset_requests_s) == (
        1000,
        999,
        59.0,
    )
    assert (info.limit_tokens, info.remaining_tokens, info.reset_tokens_s) == (96000, 95000, 1.5)
    assert info.extra == {"input_tokens": (80000, 80000, 0.0), "output_tokens": (16000, 15000, 6.0)}
    assert info.retry_after_s == 12.0


def test_anthropic_rate_limit_resets_with_injected_now_and_input_fallback() -> None:
    dialect = AnthropicMessagesDialect(now=lambda: 1_755_780_000.0)  # 2025-08-21T12:40:00Z
    info = dialect.parse_rate_limits(
        {
            "anthropic-ratelimit-input-tokens-limit": "80000",
            "anthropic-ratelimit-input-tokens-remaining": "1000",
            "anthropic-ratelimit-input-tokens-reset": "2025-08-21T12:40:30+00:00",
            "anthropic-ratelimit-requests-reset": "2025-08-21T12:39:00Z",  # already past
        }
    )
    assert (info.limit_tokens, info.remaining_tokens, info.reset_tokens_s) == (80000, 1000, 30.0)
    assert info.reset_requests_s == 0.0
    assert ANTHROPIC_MESSAGES.parse_rate_limits({}).empty


def test_errors_are_status_errors_with_headers_kept() -> None:
    exc = OPENAI_CHAT.parse_error(429, b"{}", {"X-Request-Id": "req_9"})
    assert isinstance(exc, ProviderStatusError)
    assert exc.headers["x-request-id"] == "req_9"
