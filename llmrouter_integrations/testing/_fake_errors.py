"""What failures look like on the wire: error bodies, error events and rate-limit headers.

    >>> error_body("anthropic", 529)["error"]
    {'type': 'overloaded_error', 'message': 'Overloaded'}

Types and wording follow /work/shared/reference/wire_protocols.md (§1.8, §2.7, §3, §4).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from ._fake_behavior import ModelBehavior, RateSnapshot, go_duration
from ._fake_wire import Flavor, Frame, chunk_base, data_frame, event_frame

__all__ = [
    "HTML_502",
    "Problem",
    "context_problem",
    "error_body",
    "error_headers",
    "malformed_frame",
    "null_content_problem",
    "rate_limit_headers",
    "rate_limited_problem",
    "request_too_large_problem",
    "retry_headers",
    "stream_error_frame",
    "unknown_model_problem",
    "unparseable_problem",
]

HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    "</body>\r\n</html>\r\n"
)


@dataclass(frozen=True)
class Problem:
    """Why a request is refused: HTTP status and the fields of the provider's error body."""

    status: int
    message: str | None
    type_: str | None = None
    code: str | None = None
    param: str | None = None


def stream_error_frame(flavor: Flavor, model: str, seq: int, message: str | None) -> Frame:
    """The error event a provider sends after it already answered 200."""
    if flavor == "anthropic":
        overloaded = {"type": "overloaded_error", "message": message or "Overloaded"}
        return event_frame("error", {"type": "error", "error": overloaded})
    if flavor == "openrouter":
        error: dict[str, Any] = {
            "code": 502,
            "message": message or "Provider disconnected unexpectedly",
            "metadata": {"error_type": "provider_unavailable"},
        }
        choice = {"index": 0, "delta": {"content": ""}, "finish_reason": "error"}
        base = chunk_base(flavor, model, seq, int(time.time()))
        return data_frame({**base, "error": error, "choices": [choice]})
    default = "The server had an error while processing your request. Sorry about that!"
    error = {"message": message or default, "type": "server_error", "param": None, "code": None}
    return data_frame({"error": error})


def malformed_frame(flavor: Flavor) -> Frame:
    """An SSE event whose data is cut-off JSON."""
    if flavor == "anthropic":
        return Frame(
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delt\n\n',
            True,
        )
    return Frame(b'data: {"id":"chatcmpl-broken","object":"chat.completion.chunk","choi\n\n', True)


_OPENAI_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: (
        "request_forbidden",
        "unsupported_country_region_territory",
        "Country, region, or territory not supported",
    ),
    404: ("invalid_request_error", None, "The requested resource was not found."),
    408: ("timeout", None, "Request timed out."),
    409: ("conflict", None, "The request conflicted with another one. Please try again."),
    422: ("invalid_request_error", None, "Unprocessable entity."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    498: ("capacity_exceeded", "capacity_exceeded", "Flex tier capacity exceeded."),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    502: ("cf_bad_gateway", None, "Bad gateway."),
    503: (
        "service_unavailable_error",
        "server_is_overloaded",
        "The server is overloaded or not ready yet.",
    ),
    504: ("cf_gateway_timeout", None, "Gateway timeout."),
    529: (
        "server_error",
        "overloaded",
        "The engine is currently overloaded, please try again later.",
    ),
}
_ANTHROPIC_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low to access the Anthropic API."),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: ("not_found_error", "The requested resource could not be found."),
    408: ("timeout_error", "Request timed out."),
    409: ("conflict_error", "The request conflicted with another request."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "This request would exceed your organization's rate limit."),
    500: ("api_error", "Internal server error"),
    503: ("api_error", "Service unavailable"),
    504: ("timeout_error", "Request timed out."),
    529: ("overloaded_error", "Overloaded"),
}


def error_body(
    flavor: Flavor,
    status: int,
    message: str | None = None,
    *,
    type_: str | None = None,
    code: str | None = None,
    param: str | None = None,
    request_id: str = "",
) -> dict[str, Any]:
    """The JSON error body a provider returns for `status`, with its usual type and wording."""
    if flavor == "anthropic":
        default_type = "api_error" if status >= 500 else "invalid_request_error"
        kind, text = _ANTHROPIC_ERRORS.get(status, (default_type, "Request failed."))
        typed = {"type": type_ or kind, "message": message or text}
        return {"type": "error", "error": typed, "request_id": request_id}
    kind, default_code, text = _OPENAI_ERRORS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None, "Error.")
    )
    if flavor == "openrouter":
        return {"error": {"code": status, "message": message or text}}
    error: dict[str, Any] = {"message": message or text, "type": type_ or kind}
    if flavor == "openai":
        error["param"] = param
    error["code"] = code if code is not None else default_code
    return {"error": error}


def rate_limit_headers(flavor: Flavor, snap: RateSnapshot) -> dict[str, str]:
    """Rate-limit headers: `x-ratelimit-*` (OpenAI, Groq) or `anthropic-ratelimit-*`."""
    if flavor == "openrouter":
        return {}
    if flavor != "anthropic":
        return {
            "x-ratelimit-limit-requests": str(snap.request_limit),
            "x-ratelimit-limit-tokens": str(snap.token_limit),
            "x-ratelimit-remaining-requests": str(snap.requests_remaining),
            "x-ratelimit-remaining-tokens": str(snap.tokens_remaining),
            "x-ratelimit-reset-requests": go_duration(snap.requests_reset_s),
            "x-ratelimit-reset-tokens": go_duration(snap.tokens_reset_s),
        }
    now = datetime.now(timezone.utc)

    def at(seconds: float) -> str:
        moment = now + timedelta(seconds=math.ceil(seconds))
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    headers: dict[str, str] = {
        "anthropic-ratelimit-requests-limit": str(snap.request_limit),
        "anthropic-ratelimit-requests-remaining": str(snap.requests_remaining),
        "anthropic-ratelimit-requests-reset": at(snap.requests_reset_s),
    }
    for family, remaining in (
        ("tokens", snap.tokens_remaining),
        ("input-tokens", snap.input_tokens_remaining),
        ("output-tokens", snap.output_tokens_remaining),
    ):
        headers[f"anthropic-ratelimit-{family}-limit"] = str(snap.token_limit)
        headers[f"anthropic-ratelimit-{family}-remaining"] = str(remaining)
        headers[f"anthropic-ratelimit-{family}-reset"] = at(snap.tokens_reset_s)
    return headers


def error_headers(behavior: ModelBehavior) -> dict[str, str]:
    """`retry-after`, `retry-after-ms` and `x-should-retry` as a model's script asks."""
    headers: dict[str, str] = {}
    if behavior.retry_after is not None:
        headers["retry-after"] = str(behavior.retry_after)
    if behavior.retry_after_ms is not None:
        headers["retry-after-ms"] = str(behavior.retry_after_ms)
    if behavior.x_should_retry is not None:
        headers["x-should-retry"] = "true" if behavior.x_should_retry else "false"
    return headers


def retry_headers(seconds: float) -> dict[str, str]:
    """Retry hints on a rate-limit 429: whole seconds, and exact milliseconds for the SDKs."""
    return {
        "retry-after": str(math.ceil(seconds)),
        "retry-after-ms": str(math.ceil(seconds * 1000)),
    }


def unparseable_problem(flavor: Flavor) -> Problem:
    """400 for a body that is not a JSON object."""
    if flavor == "anthropic":
        text = "There was an error parsing the body of your request: expected a JSON object."
        return Problem(400, text, "invalid_request_error")
    text = (
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
        "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
        "sent was not valid JSON.)"
    )
    return Problem(400, text, "invalid_request_error")


def unknown_model_problem(flavor: Flavor, model: str) -> Problem:
    """404 for a model the server does not serve."""
    if flavor == "anthropic":
        return Problem(404, f"model: {model}", "not_found_error")
    text = f"The model `{model}` does not exist or you do not have access to it."
    return Problem(404, text, "invalid_request_error", "model_not_found")


def context_problem(flavor: Flavor, tokens: int, window: int) -> Problem:
    """400 for a prompt longer than the model's context window."""
    if flavor == "anthropic":
        text = f"prompt is too long: {tokens} tokens > {window} maximum"
        return Problem(400, text, "invalid_request_error")
    text = (
        f"This model's maximum context length is {window} tokens. However, your messages "
        f"resulted in {tokens} tokens. Please reduce the length of the messages."
    )
    return Problem(400, text, "invalid_request_error", "context_length_exceeded", "messages")


def rate_limited_problem(
    flavor: Flavor, model: str, limit: int, seconds: float, *, tokens: bool
) -> Problem:
    """429 for a request over the requests-per-window or tokens-per-minute limit."""
    if flavor == "anthropic":
        unit = "input tokens" if tokens else "requests"
        text = (
            f"This request would exceed your organization's rate limit of {limit} {unit} per "
            "minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. You can "
            "see the response headers for current usage. Please reduce the request rate or try "
            "again later."
        )
        return Problem(429, text, "rate_limit_error")
    what = "tokens per min (TPM)" if tokens else "requests per min (RPM)"
    text = (
        f"Rate limit reached for {model} in organization org-fake on {what}: Limit {limit}. "
        f"Please try again in {seconds:.3g}s. Visit https://platform.openai.com/account/"
        "rate-limits to learn more."
    )
    return Problem(429, text, "tokens" if tokens else "requests", "rate_limit_exceeded")


def request_too_large_problem(flavor: Flavor, model: str, limit: int, requested: int) -> Problem:
    """A request that alone is over the tokens-per-minute limit (prompt plus max_tokens).

    Groq answers 413, OpenAI (and OpenRouter passing it on) 429, both with type "tokens";
    waiting does not help, a smaller request or another deployment does.
    """
    if flavor == "groq":
        text = (
            f"Request too large for model `{model}` in organization `org_fake` service tier "
            f"`on_demand` on tokens per minute (TPM): Limit {limit}, Requested {requested}, "
            "please reduce your message size and try again. Need more tokens? Upgrade to Dev "
            "Tier today at https://console.groq.com/settings/billing"
        )
        return Problem(413, text, "tokens", "rate_limit_exceeded")
    text = (
        f"Request too large for {model} in organization org-fake on tokens per min (TPM): "
        f"Limit {limit}, Requested {requested}. The input or output tokens must be reduced in "
        "order to run successfully. Visit https://platform.openai.com/account/rate-limits to "
        "learn more."
    )
    return Problem(429, text, "tokens", "rate_limit_exceeded")


def null_content_problem(server: str, body: dict[str, Any]) -> Problem | None:
    """The refusal of a message whose `content` is JSON null, as `server` words it.

    llama.cpp's server (since build b5331) answers 500 "Expected 'content' to be a string or
    an array"; Ollama's OpenAI layer 400 "invalid message content type: <nil>". An absent
    `content` is fine for both; only an explicit null is refused.
    """
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    if not any(isinstance(m, dict) and "content" in m and m["content"] is None for m in messages):
        return None
    if server == "ollama":
        return Problem(400, "invalid message content type: <nil>", "invalid_request_error")
    return Problem(500, "Expected 'content' to be a string or an array", "server_error")
