"""Request checks the fake server makes, with the real providers' status codes and wording.

>>> validate_anthropic({"model": "claude-haiku-4-5", "messages": []}).message
'max_tokens: Field required'
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from typing import Any

from ._fake_behavior import ModelBehavior, mask_key
from ._fake_content import content_problem
from ._fake_errors import Problem
from ._fake_prompt_cache import breakpoint_problem
from ._fake_thinking import reasoning_problem
from ._fake_wire import Flavor

__all__ = ["auth_problem", "extract_key", "model_problem", "validate_anthropic", "validate_openai"]


def model_problem(
    flavor: Flavor, body: dict[str, Any], model: str, behavior: ModelBehavior
) -> Problem | None:
    """Checks that depend on the model: reasoning parameters, thinking replay, media, caching."""
    return (
        reasoning_problem(flavor, body, model, behavior)
        or content_problem(flavor, body, behavior)
        or breakpoint_problem(flavor, body)
    )


_OPENAI_FIELDS = frozenset(
    (
        *("model", "messages", "stream", "stream_options", "max_completion_tokens", "max_tokens"),
        *("temperature", "top_p", "n", "stop", "seed", "user", "safety_identifier"),
        *("prompt_cache_key", "prompt_cache_retention", "prompt_cache_options", "tools"),
        *("tool_choice", "parallel_tool_calls", "response_format", "reasoning_effort"),
        *("verbosity", "service_tier", "logprobs", "top_logprobs", "logit_bias"),
        *("frequency_penalty", "presence_penalty", "metadata", "store", "modalities", "audio"),
        *("prediction", "web_search_options", "moderation", "functions", "function_call"),
    )
)
_REASONING_MODEL = re.compile(r"^(o\d|gpt-5)")
_OPENAI_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with "
    "blank username) if you're accessing the API from your browser and are prompted for a "
    "username and password. You can obtain an API key from "
    "https://platform.openai.com/account/api-keys."
)


def extract_key(flavor: Flavor, headers: Mapping[str, str]) -> str | None:
    """The API key a request carries: `Authorization: Bearer`, or Anthropic's `x-api-key`."""
    if flavor == "anthropic" and headers.get("x-api-key"):
        return headers["x-api-key"]
    scheme, _, token = headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def auth_problem(
    flavor: Flavor, key: str | None, valid_keys: Collection[str] | None
) -> Problem | None:
    """401 for a missing key, or for one outside `valid_keys`; the key is never echoed whole."""
    if key is not None and (valid_keys is None or key in valid_keys):
        return None
    if flavor == "anthropic":
        text = "x-api-key header is required" if key is None else "invalid x-api-key"
        return Problem(401, text, "authentication_error")
    if flavor == "groq":
        return Problem(401, "Invalid API Key", "invalid_request_error", "invalid_api_key")
    if flavor == "openrouter":
        return Problem(401, "No auth credentials found" if key is None else "User not found.")
    if key is None:
        return Problem(401, _OPENAI_NO_KEY, "invalid_request_error")
    text = (
        f"Incorrect API key provided: {mask_key(key)}. You can find your API key at "
        "https://platform.openai.com/account/api-keys."
    )
    return Problem(401, text, "invalid_request_error", "invalid_api_key")


def validate_openai(flavor: Flavor, body: dict[str, Any]) -> Problem | None:
    """Chat-completions checks: required fields, unknown fields (OpenAI), tool-call pairing."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        return Problem(400, "you must provide a model parameter", "invalid_request_error")
    messages = body.get("messages")
    if messages is None:
        return Problem(
            400,
            "Missing required parameter: 'messages'.",
            "invalid_request_error",
            "missing_required_parameter",
            "messages",
        )
    if not isinstance(messages, list) or not messages:
        text = (
            "Invalid 'messages': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead."
        )
        return Problem(400, text, "invalid_request_error", "empty_array", "messages")
    if flavor == "openai":
        unknown = [name for name in body if name not in _OPENAI_FIELDS]
        if unknown:
            text = f"Unrecognized request argument supplied: {unknown[0]}"
            return Problem(400, text, "invalid_request_error")
        if body.get("max_tokens") is not None and _REASONING_MODEL.match(body["model"]):
            text = (
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead."
            )
            return Problem(
                400, text, "invalid_request_error", "unsupported_parameter", "max_tokens"
            )
        if (body.get("response_format") or {}).get("type") == "json_object" and not any(
            "json" in json.dumps(m.get("content"), ensure_ascii=False).lower()
            for m in messages
            if isinstance(m, dict)
        ):
            text = (
                "'messages' must contain the word 'json' in some form, to use 'response_format' "
                "of type 'json_object'."
            )
            return Problem(400, text, "invalid_request_error", None, "messages")
        if body.get("stream_options") is not None and not body.get("stream"):
            text = "The 'stream_options' parameter is only allowed when 'stream' is enabled."
            return Problem(400, text, "invalid_request_error", None, "stream_options")
    return _openai_images_from_users(messages) or _openai_tool_pairing(messages)


def _openai_images_from_users(messages: list[Any]) -> Problem | None:
    # The API takes image parts from user turns only (a tool's screenshot included).
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") == "user":
            continue
        content = message.get("content")
        if isinstance(content, list) and any(
            isinstance(part, dict) and part.get("type") == "image_url" for part in content
        ):
            text = (
                f"Invalid 'messages[{index}]'. Image URLs are only allowed for messages with "
                f"role 'user', but this message with role '{message.get('role')}' contains an "
                "image URL."
            )
            return Problem(400, text, "invalid_request_error", None, f"messages[{index}]")
    return None


def _openai_tool_pairing(messages: list[Any]) -> Problem | None:
    pending: set[str] = set()
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            return Problem(400, f"Invalid type for 'messages[{index}]'.", "invalid_request_error")
        role = message.get("role")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in pending:
                text = (
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'."
                )
                return Problem(400, text, "invalid_request_error", None, f"messages.[{index}].role")
            pending.discard(str(call_id))
            continue
        if pending:
            return _unanswered(pending, index)
        if role == "assistant":
            pending = {
                str(c.get("id")) for c in message.get("tool_calls") or () if isinstance(c, dict)
            }
    return _unanswered(pending, len(messages)) if pending else None


def _unanswered(pending: set[str], index: int) -> Problem:
    text = (
        "An assistant message with 'tool_calls' must be followed by tool messages responding to "
        "each 'tool_call_id'. The following tool_call_ids did not have response messages: "
        + ", ".join(sorted(pending))
    )
    return Problem(400, text, "invalid_request_error", None, f"messages.[{index}].role")


def validate_anthropic(body: dict[str, Any]) -> Problem | None:
    """Messages checks: required fields and tool_use / tool_result pairing."""
    for name in ("model", "max_tokens", "messages"):
        if body.get(name) is None:
            return Problem(400, f"{name}: Field required", "invalid_request_error")
    messages = body["messages"]
    if not isinstance(messages, list):
        return Problem(400, "messages: Input should be a valid list", "invalid_request_error")
    previous_uses: set[str] = set()
    for index, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        blocks = [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []
        problem = _anthropic_turn_shape(index, message, content, blocks, len(messages))
        if problem is not None:
            return problem
        results = [b for b in blocks if b.get("type") == "tool_result"]
        for position, block in enumerate(blocks):
            if block.get("type") == "tool_result" and block.get("tool_use_id") not in previous_uses:
                text = (
                    f"messages.{index}.content.{position}: unexpected `tool_use_id` found in "
                    f"`tool_result` blocks: {block.get('tool_use_id')}. Each `tool_result` block "
                    "must have a corresponding `tool_use` block in the previous message."
                )
                return Problem(400, text, "invalid_request_error")
        unanswered = previous_uses - {str(b.get("tool_use_id")) for b in results}
        if unanswered:
            text = (
                f"messages.{index - 1}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(sorted(unanswered))}. Each `tool_use` block must "
                "have a corresponding `tool_result` block in the next message."
            )
            return Problem(400, text, "invalid_request_error")
        previous_uses = {str(b.get("id")) for b in blocks if b.get("type") == "tool_use"}
    return None


_TOOL_ID = re.compile(r"[a-zA-Z0-9_-]+")


def _anthropic_turn_shape(
    index: int, message: Any, content: Any, blocks: list[dict[str, Any]], count: int
) -> Problem | None:
    """Empty turns (only a final assistant turn may be empty) and malformed tool ids."""
    final_assistant = index == count - 1 and isinstance(message, dict)
    final_assistant = final_assistant and message.get("role") == "assistant"
    if not content and not final_assistant:
        text = (
            f"messages.{index}: all messages must have non-empty content except for the "
            "optional final assistant message"
        )
        return Problem(400, text, "invalid_request_error")
    for position, block in enumerate(blocks):
        field = {"tool_use": "id", "tool_result": "tool_use_id"}.get(str(block.get("type")))
        if field is not None and not _TOOL_ID.fullmatch(str(block.get(field))):
            text = (
                f"messages.{index}.content.{position}.{block['type']}.{field}: String should "
                "match pattern '^[a-zA-Z0-9_-]+$'"
            )
            return Problem(400, text, "invalid_request_error")
    return None
