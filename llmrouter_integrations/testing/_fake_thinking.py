"""Reasoning in the fake server: who reasons, the parameters each API refuses, signed thinking.

    >>> reasoning_problem("anthropic", {"thinking": {"type": "enabled", "budget_tokens": 2048},
    ...                                  "max_tokens": 1024, ...}, "claude-sonnet-4-5", behavior)
    Problem(400, "`max_tokens` must be greater than `thinking.budget_tokens`. ...")

Anthropic thinking blocks carry a signature the fake computes from their text (an HMAC), so
a block replayed modified, or one that never came from here, is refused with Anthropic's
400, and so is a tool loop whose last assistant turn lost its thinking block. The reasoning
text is `"Reasoning about: <last user text>"` (its tokens count as `reasoning` output
tokens); OpenAI's own models report the tokens and hide the text, OpenAI-compatible servers
return it as `reasoning` (Groq, OpenRouter) or `reasoning_content` (DeepSeek).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Any

from ._fake_behavior import ModelBehavior
from ._fake_errors import Problem
from ._fake_replies import ChatView, Reply, count_tokens
from ._fake_wire import Flavor

__all__ = ["add_reasoning", "reasoning_problem", "reasons", "sign_thinking"]

_SECRET = b"llmrouter-fake-thinking"
# Anthropic's documented test string that makes a model answer with redacted thinking.
REDACT_TRIGGER = (
    "ANTHROPIC_MAGIC_STRING_TRIGGER_REDACTED_THINKING_46C9A13E193C177646C7398A98432ECCCE4C1253"
)
_DOCS = "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
_OPENAI_REASONING = re.compile(r"^(o\d|gpt-5)")
_OPENAI_COMPATIBLE_REASONING = re.compile(
    r"(^|/)(o\d|gpt-5|gpt-oss|qwen3|qwq|deepseek-r1|deepseek-reasoner)|thinking|reasoner"
)
_CLAUDE_THINKING = re.compile(r"claude-(3-7-|(sonnet|opus|haiku)-[4-9])")
_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")


def reasons(flavor: Flavor, model: str, behavior: ModelBehavior) -> bool:
    """Whether `model` is a reasoning model (ModelBehavior.reasoning wins over the name)."""
    if behavior.reasoning is not None:
        return behavior.reasoning
    name = model.lower()
    if flavor == "anthropic":
        return bool(_CLAUDE_THINKING.search(name))
    if flavor == "openai":
        return bool(_OPENAI_REASONING.match(name)) or "deepseek-reasoner" in name
    return bool(_OPENAI_COMPATIBLE_REASONING.search(name)) or bool(_CLAUDE_THINKING.search(name))


def sign_thinking(text: str) -> str:
    """The signature the fake puts on a thinking block with this text."""
    digest = hmac.new(_SECRET, text.encode(), hashlib.sha256).digest()
    return base64.b64encode(b"fakesig" + digest).decode()


def _redacted_data(text: str) -> str:
    return base64.b64encode(text.encode()).decode() + "." + sign_thinking("redacted:" + text)


def _redacted_ok(data: Any) -> bool:
    if not isinstance(data, str) or "." not in data:
        return False
    payload, _, signature = data.rpartition(".")
    try:
        text = base64.b64decode(payload, validate=True).decode()
    except ValueError:
        return False
    return hmac.compare_digest(signature, sign_thinking("redacted:" + text))


# --- what each API refuses ---------------------------------------------------------------


def reasoning_problem(
    flavor: Flavor, body: dict[str, Any], model: str, behavior: ModelBehavior
) -> Problem | None:
    """The 400 a real provider gives for a reasoning parameter or thinking replay, or None."""
    thinks = reasons(flavor, model, behavior)
    if flavor == "anthropic":
        return _anthropic_params(body, model, thinks) or _anthropic_replay(body)
    if flavor == "openai":
        return _openai_params(body, thinks)
    effort = body.get("reasoning_effort")
    if flavor == "groq" and effort is not None and not thinks:
        return Problem(
            400, "`reasoning_effort` is not supported with this model", "invalid_request_error"
        )
    return None


def _openai_params(body: dict[str, Any], thinks: bool) -> Problem | None:
    effort = body.get("reasoning_effort")
    if effort is not None and not thinks:
        text = "Unsupported parameter: 'reasoning_effort' is not supported with this model."
        return Problem(
            400, text, "invalid_request_error", "unsupported_parameter", "reasoning_effort"
        )
    if effort is not None and effort not in _EFFORTS:
        text = (
            f"Invalid value: '{effort}'. Supported values are: 'minimal', 'low', 'medium', "
            "and 'high'."
        )
        return Problem(400, text, "invalid_request_error", "invalid_value", "reasoning_effort")
    if not thinks:
        return None
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None and value != 1:
            text = (
                f"Unsupported value: '{name}' does not support {value} with this model. "
                "Only the default (1) value is supported."
            )
            return Problem(400, text, "invalid_request_error", "unsupported_value", name)
    return None


def _anthropic_params(body: dict[str, Any], model: str, thinks: bool) -> Problem | None:
    thinking = body.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return None
    if not thinks:
        return Problem(400, f"'{model}' does not support thinking.", "invalid_request_error")
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or budget < 1024:
        text = "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        return Problem(400, text, "invalid_request_error")
    if isinstance(body.get("max_tokens"), int) and body["max_tokens"] <= budget:
        text = (
            "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
            f"documentation at {_DOCS}#max-tokens-and-context-window-size"
        )
        return Problem(400, text, "invalid_request_error")
    compatibility = f"Please consult our documentation at {_DOCS}#feature-compatibility"
    if body.get("temperature") is not None and body["temperature"] != 1:
        text = f"`temperature` may only be set to 1 when thinking is enabled. {compatibility}"
        return Problem(400, text, "invalid_request_error")
    if body.get("top_k") is not None:
        return Problem(
            400,
            f"`top_k` must be unset when thinking is enabled. {compatibility}",
            "invalid_request_error",
        )
    top_p = body.get("top_p")
    if top_p is not None and not 0.95 <= top_p <= 1:
        text = f"`top_p` must be greater than or equal to 0.95 or unset when thinking is enabled. {compatibility}"
        return Problem(400, text, "invalid_request_error")
    if (body.get("tool_choice") or {}).get("type") in ("any", "tool"):
        text = "Thinking may not be enabled when tool_choice forces tool use."
        return Problem(400, text, "invalid_request_error")
    return None


def _anthropic_replay(body: dict[str, Any]) -> Problem | None:
    """Signed blocks must come back unmodified; a tool loop needs its thinking block."""
    thinking = body.get("thinking")
    enabled = isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")
    messages = [m for m in body.get("messages") or () if isinstance(m, dict)]
    for index, message in enumerate(messages):
        if message.get("role") != "assistant" or not isinstance(message.get("content"), list):
            continue
        blocks = [b for b in message["content"] if isinstance(b, dict)]
        kinds = [b.get("type") for b in blocks]
        for position, block in enumerate(blocks):
            if block.get("type") == "thinking" and not hmac.compare_digest(
                str(block.get("signature") or ""), sign_thinking(str(block.get("thinking") or ""))
            ):
                text = (
                    f"messages.{index}.content.{position}: Invalid `signature` in `thinking` block"
                )
                return Problem(400, text, "invalid_request_error")
            if block.get("type") == "redacted_thinking" and not _redacted_ok(block.get("data")):
                text = f"messages.{index}.content.{position}: Invalid `data` in `redacted_thinking` block"
                return Problem(400, text, "invalid_request_error")
        has_thinking = any(k in ("thinking", "redacted_thinking") for k in kinds)
        if has_thinking and kinds[0] not in ("thinking", "redacted_thinking"):
            text = (
                f"messages.{index}.content.0: If an assistant message contains any thinking "
                f"blocks, the first block must be thinking or redacted_thinking. Found {kinds[0]}."
            )
            return Problem(400, text, "invalid_request_error")
        if has_thinking and not enabled and index == len(messages) - 1:
            text = (
                f"messages.{index}.content.0: When thinking is disabled, an `assistant` message "
                "in the final position cannot contain `thinking`. To use thinking blocks, enable "
                "`thinking` in your request."
            )
            return Problem(400, text, "invalid_request_error")
    return _final_turn_problem(messages) if enabled else None


def _final_turn_problem(messages: list[dict[str, Any]]) -> Problem | None:
    """With thinking on, the assistant turn before trailing tool results must open with thinking."""
    if len(messages) < 2 or messages[-1].get("role") != "user":
        return None
    last = messages[-1].get("content")
    if not isinstance(last, list) or not any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in last
    ):
        return None
    index = len(messages) - 2
    content = messages[index].get("content")
    blocks = content if isinstance(content, list) else [{"type": "text"}]
    first = blocks[0].get("type") if blocks and isinstance(blocks[0], dict) else "text"
    if first in ("thinking", "redacted_thinking"):
        return None
    text = (
        f"messages.{index}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
        f"`{first}`. When `thinking` is enabled, a final `assistant` message must start with a "
        "thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We "
        "recommend you include thinking blocks from previous turns. To avoid this requirement, "
        f"disable `thinking`. Please consult our documentation at {_DOCS}"
    )
    return Problem(400, text, "invalid_request_error")


# --- reasoning in the answer -------------------------------------------------------------


def _wants_reasoning(flavor: Flavor, body: dict[str, Any]) -> bool:
    if flavor == "anthropic":
        thinking = body.get("thinking")
        return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")
    if flavor == "openrouter":
        options = body.get("reasoning")
        return not (
            isinstance(options, dict)
            and (options.get("exclude") or options.get("enabled") is False)
        )
    if flavor == "groq":
        return (
            body.get("reasoning_format") != "hidden" and body.get("include_reasoning") is not False
        )
    return body.get("reasoning_effort") != "none"


def add_reasoning(
    reply: Reply,
    flavor: Flavor,
    model: str,
    body: dict[str, Any],
    behavior: ModelBehavior,
    view: ChatView,
) -> None:
    """Give a reasoning model's answer its reasoning: text, signed blocks, reasoning tokens."""
    if not reasons(flavor, model, behavior) or not _wants_reasoning(flavor, body):
        return
    text = "Reasoning about: " + (view.last_user_text[:200] or "the tool results")
    tokens = count_tokens(text)
    if flavor == "anthropic":
        if REDACT_TRIGGER in view.last_user_text:
            reply.thinking.append({"type": "redacted_thinking", "data": _redacted_data(text)})
        else:
            reply.thinking.append(
                {"type": "thinking", "thinking": text, "signature": sign_thinking(text)}
            )
            reply.reasoning = text
    elif flavor == "openai" and "deepseek" not in model.lower():
        pass  # OpenAI bills reasoning tokens but never shows the text on Chat Completions
    else:
        reply.reasoning = text
        reply.reasoning_field = "reasoning_content" if "deepseek" in model.lower() else "reasoning"
    if not (behavior.usage and "reasoning" in behavior.usage):
        reply.usage.reasoning = tokens
        reply.usage.output += tokens
