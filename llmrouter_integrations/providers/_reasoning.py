"""`reasoning=` in one vocabulary, mapped to each API's own field (sans-IO).

    >>> thinking_budget("low"), thinking_budget(3000)
    (2048, 3000)
    >>> reasoning_fields("openai", "minimal", "o3-mini")
    {'reasoning_effort': 'low'}
    >>> reasoning_fields("openrouter", 5000, "anthropic/claude-sonnet-4.5")
    {'reasoning': {'max_tokens': 5000}}

Efforts map to Anthropic thinking budgets of 1024 / 2048 / 8192 / 16384 tokens (minimal /
low / medium / high; 1024 is Anthropic's minimum), and a token budget maps back to an effort
for APIs that only take efforts: up to 1024 "minimal", up to 4096 "low", up to 12288
"medium", above that "high".
"""

from __future__ import annotations

import re
from typing import Any

from ..types import ReasoningEffort

__all__ = [
    "EFFORTS",
    "effort_of",
    "reasoning_fields",
    "reasoning_from_native",
    "thinking_budget",
]

EFFORTS: tuple[ReasoningEffort, ...] = ("minimal", "low", "medium", "high")
_BUDGETS: dict[str, int] = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384}
_ANTHROPIC_MIN_BUDGET = 1024
# Only the GPT-5 family takes "minimal"; the o-series starts at "low".
_TAKES_MINIMAL = re.compile(r"(^|/)gpt-5", re.IGNORECASE)
_GROQ_QWEN = re.compile(r"qwen", re.IGNORECASE)


def thinking_budget(reasoning: str | int) -> int:
    """Anthropic `budget_tokens` for an effort or a token budget (never below 1024)."""
    if isinstance(reasoning, int):
        return max(_ANTHROPIC_MIN_BUDGET, reasoning)
    return _BUDGETS[reasoning]


def effort_of(reasoning: str | int) -> ReasoningEffort:
    """The effort that stands for `reasoning` (an effort is itself)."""
    if isinstance(reasoning, str):
        if reasoning not in _BUDGETS:
            raise ValueError(f"reasoning effort must be one of {EFFORTS}, got {reasoning!r}")
        return reasoning  # type: ignore[return-value]
    if reasoning <= 1024:
        return "minimal"
    if reasoning <= 4096:
        return "low"
    if reasoning <= 12288:
        return "medium"
    return "high"


def reasoning_fields(style: str, reasoning: str | int, model: str) -> dict[str, Any]:
    """Body fields asking an OpenAI-style endpoint for reasoning.

    `style` is the endpoint's `reasoning_style`: "openai" and "compatible"
    (`reasoning_effort`), "groq" (`reasoning_effort`; Qwen models take "default"),
    "openrouter" (`reasoning: {effort | max_tokens}`), "none" (the model decides by itself,
    as DeepSeek's reasoner does: nothing is sent).
    """
    if style == "none":
        return {}
    if style == "openrouter":
        if isinstance(reasoning, int):
            return {"reasoning": {"max_tokens": reasoning}}
        return {"reasoning": {"effort": effort_of(reasoning)}}
    effort: str = effort_of(reasoning)
    if style == "groq" and _GROQ_QWEN.search(model):
        return {"reasoning_effort": "default"}
    if effort == "minimal" and not (style == "openai" and _TAKES_MINIMAL.search(model)):
        effort = "low"
    return {"reasoning_effort": effort}


def reasoning_from_native(extra: dict[str, Any]) -> tuple[bool, str | int | None]:
    """(found, reasoning) from provider-native spellings in `extra_body`, which it removes.

    `reasoning_effort="low"`, `thinking={"type": "enabled", "budget_tokens": 4000}` and
    OpenRouter's `reasoning={"effort": "high"}` / `{"max_tokens": 3000}` are read into the
    one vocabulary; `thinking={"type": "disabled"}` and `reasoning_effort="none"` mean no
    reasoning. Anything malformed raises ValueError naming the field.
    """
    found = False
    reasoning: str | int | None = None
    if "reasoning_effort" in extra:
        found = True
        value = extra.pop("reasoning_effort")
        if value not in (*EFFORTS, "none"):
            raise ValueError(f"reasoning_effort must be one of {(*EFFORTS, 'none')}, got {value!r}")
        reasoning = None if value == "none" else value
    if "thinking" in extra:
        found = True
        value = extra.pop("thinking")
        kind = value.get("type") if isinstance(value, dict) else None
        if kind == "disabled":
            reasoning = None
        elif kind == "enabled":
            budget = value.get("budget_tokens")
            if type(budget) is not int or budget < _ANTHROPIC_MIN_BUDGET:
                raise ValueError(
                    f"thinking.budget_tokens must be an integer of at least 1024, got {budget!r}"
                )
            reasoning = budget
        else:
            raise ValueError(
                "thinking must be {'type': 'enabled', 'budget_tokens': N} or "
                f"{{'type': 'disabled'}}, got {value!r}"
            )
    if isinstance(extra.get("reasoning"), dict):
        found = True
        value = extra.pop("reasoning")
        if value.get("exclude") or value.get("enabled") is False:
            reasoning = None
        elif type(value.get("max_tokens")) is int:
            reasoning = int(value["max_tokens"])
        else:
            reasoning = effort_of(str(value.get("effort", "medium")))
    return found, reasoning
