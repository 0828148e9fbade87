"""Check user input before anything is sent: requests (BadRequestError naming the field) and
deployments (ConfigurationError for a key or header no HTTP request can carry).

    >>> check_request(ChatRequest(messages=[Message(role="user", content="hi")], max_tokens=-1))
    Traceback (most recent call last):
    BadRequestError: invalid request: max_tokens must be a positive integer, got -1 (HTTP 400)
"""

from __future__ import annotations

import math
import re
from typing import Any

from .errors import BadRequestError, ConfigurationError

__all__ = ["VALID_ROLES", "check_deployment", "check_request", "invalid"]

VALID_ROLES = ("system", "developer", "user", "assistant", "tool")
# Both OpenAI and Anthropic accept tool names of 1-64 letters, digits, "_" and "-".
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def invalid(field: str, problem: str) -> BadRequestError:
    """The error for one invalid option: raised before sending, so no provider, no breaker.

    >>> str(invalid("top_p", "must be between 0 and 1, got 3"))
    'invalid request: top_p must be between 0 and 1, got 3 (HTTP 400)'
    """
    error = BadRequestError(
        f"invalid request: {field} {problem}", status_code=400, code="invalid_request"
    )
    error.param = field  # type: ignore[attr-defined]
    return error


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_range(field: str, value: Any, low: float, high: float) -> None:
    if value is None:
        return
    if not _number(value) or not math.isfinite(value) or not low <= value <= high:
        raise invalid(field, f"must be a number between {low:g} and {high:g}, got {value!r:.40}")


def check_request(request: Any) -> None:  # a ChatRequest (types.py imports this module)
    """Raise `BadRequestError` (with `.param`, the field) for an option no provider accepts.

    Messages: at least one, each with a known role. Options: `max_tokens` a positive integer,
    `temperature` in [0, 2], `top_p` in [0, 1], `seed` an integer, `stop` strings,
    `timeout` and `max_cost_usd` not negative, tools named as the APIs require with an
    object schema, a `tool_choice` naming one of the tools.
    """
    if not request.messages:
        raise invalid("messages", "must hold at least one message")
    for position, message in enumerate(request.messages):
        if message.role not in VALID_ROLES:
            raise invalid(
                f"messages[{position}].role",
                f"must be one of {', '.join(VALID_ROLES)}, got {message.role!r:.40}",
            )
    max_tokens = request.max_tokens
    if max_tokens is not None and (
        not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
    ):
        raise invalid("max_tokens", f"must be a positive integer, got {max_tokens!r:.40}")
    _check_range("temperature", request.temperature, 0.0, 2.0)
    _check_range("top_p", request.top_p, 0.0, 1.0)
    if request.seed is not None and (
        not isinstance(request.seed, int) or isinstance(request.seed, bool)
    ):
        raise invalid("seed", f"must be an integer, got {request.seed!r:.40}")
    if request.stop is not None and not all(isinstance(item, str) for item in request.stop):
        raise invalid("stop", "must be a string or a list of strings")
    for field in ("timeout", "max_cost_usd"):
        value = getattr(request, field)
        if value is not None and (not _number(value) or not value >= 0):
            raise invalid(field, f"must be a number >= 0, got {value!r:.40}")
    names = []
    for position, tool in enumerate(request.tools or ()):
        if not isinstance(tool.name, str) or not _TOOL_NAME.match(tool.name):
            raise invalid(
                f"tools[{position}].name",
                f"must be 1-64 letters, digits, '_' or '-', got {tool.name!r:.40}",
            )
        if not isinstance(tool.parameters, dict):
            raise invalid(f"tools[{position}].parameters", "must be a JSON schema object")
        names.append(tool.name)
    choice = request.tool_choice
    if choice not in (None, "auto", "none", "required") and names and choice not in names:
        raise invalid("tool_choice", f"names no tool of this request: {choice!r:.40}")


def _is_header_safe(value: str) -> bool:
    # Visible ASCII and spaces only: what every HTTP client sends as a header value. A
    # trailing newline (a key read from a file) or a non-ASCII character would otherwise
    # fail every request with a bare ValueError/UnicodeEncodeError from the HTTP library.
    return value.isascii() and value.isprintable()


def check_deployment(deployment: Any) -> None:  # a Deployment, being built
    """Refuse, at construction, a key or header no HTTP request can carry; never show it.

    >>> Deployment("openai", "gpt-4o-mini", api_key="sk-...\\n")
    Traceback (most recent call last):
    ConfigurationError: deployment 'openai/gpt-4o-mini': the API key contains a control ...
    """
    key = deployment.api_key
    text = key if isinstance(key, str) or key is None else key.get_secret_value()
    if text is not None and not _is_header_safe(text):
        raise ConfigurationError(
            f"deployment {deployment.key!r}: the API key contains a control or non-ASCII "
            "character (often a trailing newline from a file or environment variable); "
            "strip it"
        )
    for name, value in deployment.headers.items():
        if not (_is_header_safe(str(name)) and _is_header_safe(str(value))):
            raise ConfigurationError(
                f"deployment {deployment.key!r}: header {name!r:.40} has a control or "
                "non-ASCII character in its name or value"
            )
