"""Fit one request to one deployment: what it takes of reasoning, sampling and cache marks.

    >>> fitted = fit_request(request, dialect="anthropic_messages", endpoint=get_endpoint("anthropic"),
    ...                      model="claude-sonnet-4-5", reasons=True)
    >>> fitted.request.max_tokens          # 4096 of answer + the 2048 "low" thinking budget
    6144
    >>> fitted.dropped                     # options this deployment does not take, and why
    [('temperature', 'Anthropic takes only temperature 1 with thinking on')]

Sans-IO: the per-deployment layer (`layers/params.py`) warns about `dropped` (or raises
with `strict_params`) and emits `notes` as router events. Rules:

- Provider-native spellings in `extra_body` (`reasoning_effort`, `thinking`, OpenRouter's
  `reasoning`) are read into `reasoning=` (validated), so each deployment gets its own.
- `reasoning=` reaches only models that reason (`reasons`); elsewhere it is dropped.
- Anthropic with thinking: `max_tokens` becomes the answer's cap plus the thinking budget
  (the API counts thinking inside max_tokens and wants it larger than the budget), so the
  budget layer reserves what is sent; temperature other than 1, top_p below 0.95 and
  top_k are dropped; a forced tool choice turns thinking off for the call; and when the
  last assistant turn of a tool loop has no Anthropic thinking block (it came from
  another provider), thinking is off for this call, as the API requires (a note says so).
- OpenAI reasoning models take only the default temperature and top_p.
- `prompt_cache="auto"` on Anthropic marks the end of the system prompt, of the tools
  and of the last turn before the newest message, up to Anthropic's 4 marks.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import BadRequestError
from ..types import ChatRequest, Message
from ._reasoning import EFFORTS, reasoning_from_native, thinking_budget
from .anthropic_messages import DEFAULT_MAX_TOKENS, MAX_CACHE_BREAKPOINTS
from .base import Endpoint

__all__ = ["Fitted", "fit_request", "reasons_by_name"]

# Model families that reason, for models the catalog does not know.
_REASONING_NAMES = re.compile(
    r"(^|/)(o\d|gpt-5(?!.*-chat)|gpt-oss|qwen3|qwq|deepseek-r1|deepseek-reasoner)"
    r"|claude-(3-7-|(sonnet|opus|haiku)-[4-9])|thinking",
    re.IGNORECASE,
)


def reasons_by_name(model: str) -> bool:
    """Whether a model's name says it reasons (o-series, GPT-5, Claude 3.7+, gpt-oss...).

    >>> reasons_by_name("claude-sonnet-4-5"), reasons_by_name("gpt-4o-mini")
    (True, False)
    """
    return bool(_REASONING_NAMES.search(model))


_EPHEMERAL: dict[str, Any] = {"type": "ephemeral"}
_ANTHROPIC = "anthropic_messages"


@dataclass(slots=True)
class Fitted:
    """The request as this deployment takes it, what was dropped (option, why), and notes
    worth a router event (kind, detail)."""

    request: ChatRequest
    dropped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)


def fit_request(
    request: ChatRequest,
    *,
    dialect: str,
    endpoint: Endpoint,
    model: str,
    reasons: bool,
    prompt_cache: str | None = None,
) -> Fitted:
    """The request fitted to one deployment (the caller's request is never changed)."""
    changes: dict[str, Any] = {}
    fitted = Fitted(request)
    reasoning: str | int | None = request.reasoning
    if reasoning is not None and not (
        reasoning in EFFORTS or (type(reasoning) is int and reasoning > 0)
    ):
        raise _bad_request(
            f"reasoning must be one of {EFFORTS} or a positive token budget, got {reasoning!r}"
        )
    extra = request.extra_body
    if extra and any(key in extra for key in ("reasoning_effort", "thinking", "reasoning")):
        extra = dict(extra)
        try:
            found, native = reasoning_from_native(extra)
        except ValueError as exc:
            raise _bad_request(str(exc)) from None
        changes["extra_body"] = extra
        if found and reasoning is None:
            reasoning = native
    if reasoning is not None and not reasons:
        fitted.dropped.append(("reasoning", f"{model} does not reason"))
        reasoning = None
    if dialect == _ANTHROPIC:
        reasoning = _fit_anthropic(request, reasoning, changes, fitted, extra)
        if prompt_cache == "auto":
            _auto_breakpoints(request, changes)
    elif reasoning is not None and endpoint.reasoning_style == "openai":
        for name in ("temperature", "top_p"):
            value = getattr(request, name)
            if value is not None and value != 1:
                fitted.dropped.append((name, f"{model} takes only the default {name} (1)"))
                changes[name] = None
    if reasoning != request.reasoning:
        changes["reasoning"] = reasoning
    if changes:
        fitted.request = dataclasses.replace(request, **changes)
        fitted.request.admission = request.admission  # the same call (not copied by replace)
    return fitted


def _bad_request(message: str) -> BadRequestError:
    return BadRequestError(message, status_code=400)


def _fit_anthropic(
    request: ChatRequest,
    reasoning: str | int | None,
    changes: dict[str, Any],
    fitted: Fitted,
    extra: dict[str, Any],
) -> str | int | None:
    if reasoning is None:
        return None
    if request.tool_choice not in (None, "auto", "none"):
        fitted.dropped.append(("reasoning", "Anthropic refuses thinking with a forced tool choice"))
        return None
    if _tool_turn_without_thinking(request.messages):
        fitted.notes.append(
            (
                "reasoning_disabled",
                "the last assistant turn of this tool loop has no Anthropic thinking block "
                "(it came from another provider), so this call runs without thinking",
            )
        )
        return None
    why = "Anthropic takes only temperature 1 with thinking on"
    if request.temperature is not None and request.temperature != 1:
        fitted.dropped.append(("temperature", why))
        changes["temperature"] = None
    if request.top_p is not None and request.top_p < 0.95:
        fitted.dropped.append(("top_p", "Anthropic takes top_p of 0.95 or more with thinking on"))
        changes["top_p"] = None
    if "top_k" in extra:
        extra = dict(extra)
        extra.pop("top_k")
        changes["extra_body"] = extra
        fitted.dropped.append(("top_k", "Anthropic takes no top_k with thinking on"))
    answer = request.max_tokens if request.max_tokens is not None else DEFAULT_MAX_TOKENS
    changes["max_tokens"] = answer + thinking_budget(reasoning)
    return reasoning


def _tool_turn_without_thinking(messages: list[Message]) -> bool:
    """A tool loop whose last assistant turn lacks the thinking block Anthropic requires."""
    if not messages or messages[-1].role != "tool":
        return False
    for message in reversed(messages):
        if message.role == "assistant":
            if not message.tool_calls:
                return False
            first = message.content[0] if isinstance(message.content, list) else None
            return not (
                first is not None and first.block is not None and first.block.dialect == _ANTHROPIC
            )
    return False


def _marks(request: ChatRequest) -> int:
    found = sum(1 for tool in request.tools or () if tool.cache_control)
    for message in request.messages:
        found += message.cache_control is not None
        if isinstance(message.content, list):
            found += sum(1 for part in message.content if part.cache_control)
    return found


def _auto_breakpoints(request: ChatRequest, changes: dict[str, Any]) -> None:
    """Mark the stable prefix: system prompt, tools, and all but the newest message."""
    room = MAX_CACHE_BREAKPOINTS - _marks(request)
    messages = list(request.messages)
    systems = [i for i, m in enumerate(messages) if m.role == "system"]
    if room > 0 and systems and _unmarked(messages[systems[-1]]):
        messages[systems[-1]] = dataclasses.replace(
            messages[systems[-1]], cache_control=dict(_EPHEMERAL)
        )
        room -= 1
    tools = list(request.tools or ())
    if room > 0 and tools and not any(tool.cache_control for tool in tools):
        tools[-1] = dataclasses.replace(tools[-1], cache_control=dict(_EPHEMERAL))
        changes["tools"] = tools
        room -= 1
    stable = len(messages) - 2  # the turn before the newest message
    if (
        room > 0
        and stable >= 0
        and messages[stable].role != "system"
        and _unmarked(messages[stable])
    ):
        messages[stable] = dataclasses.replace(messages[stable], cache_control=dict(_EPHEMERAL))
    if messages != request.messages:
        changes["messages"] = messages


def _unmarked(message: Message) -> bool:
    if message.cache_control is not None:
        return False
    return not (isinstance(message.content, list) and any(p.cache_control for p in message.content))
