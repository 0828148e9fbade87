"""Prompt caching in the fake server, with the accounting each provider reports.

    >>> cache = PromptCache()
    >>> cache.account("anthropic", "claude-sonnet-4-5", body, ModelBehavior(), now=0.0)
    (0, 1500, 0)   # first call: 1500 tokens written at the cache_control breakpoint
    >>> cache.account("anthropic", "claude-sonnet-4-5", body, ModelBehavior(), now=1.0)
    (1500, 0, 0)   # the same prefix again: read from the cache

Anthropic: explicit `cache_control` breakpoints (on tools, system blocks and message
blocks, plus the top-level `cache_control` that marks the last block); at most 4 (a 400
past that); a prefix shorter than the model's minimum (1024 tokens; 2048 for Haiku 3.x,
4096 for Haiku 4.5) is not cached; entries live 5 minutes (`"ttl": "1h"`: an hour) and a
hit refreshes them. A prefix is tools, then system, then messages, block by block; a hit
is the longest cached prefix ending at or before the last breakpoint, and the write is
what lies between it and the last breakpoint; the part of the write up to the last
`"ttl": "1h"` breakpoint is reported as written for an hour (`cache_creation.
ephemeral_1h_input_tokens`), the rest as written for 5 minutes, as Anthropic bills them.
OpenAI: automatic for prompts of 1024+ tokens: `cached_tokens` is the longest prefix
(tools, then whole messages) seen in the last 10 minutes, in steps of 128 past 1024.
Blocks count as in the prompt (`_fake_replies`: text by its length; media by size; other
blocks by their compact JSON), so a prefix never counts more than the whole prompt.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ._fake_behavior import ModelBehavior
from ._fake_errors import Problem
from ._fake_replies import count_tokens, media_tokens
from ._fake_wire import Flavor

__all__ = ["PromptCache", "breakpoint_problem"]

_MAX_BREAKPOINTS = 4
_OPENAI_MIN = 1024
_OPENAI_STEP = 128
_OPENAI_TTL = 600.0


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def _without_marker(block: Any) -> Any:
    if isinstance(block, dict) and "cache_control" in block:
        return {k: v for k, v in block.items() if k != "cache_control"}
    return block


def _ttl(marker: Any) -> float:
    return 3600.0 if isinstance(marker, dict) and marker.get("ttl") == "1h" else 300.0


# A unit is one block of the prompt: (its JSON, its tokens, breakpoint TTL or None).
Unit = tuple[str, int, float | None]


def _tokens(block: Any) -> int:
    """A block's tokens by the prompt-counting rule, so a prefix never outgrows its prompt."""
    if isinstance(block, str):
        return count_tokens(block)
    if isinstance(block, dict) and block.get("type") == "text":
        return count_tokens(str(block.get("text") or ""))
    if isinstance(block, dict) and block.get("type") in ("document", "file", "input_audio"):
        return media_tokens(block)
    if isinstance(block, dict) and "role" in block:  # an OpenAI message
        content = block.get("content")
        parts = content if isinstance(content, list) else [content or ""]
        return 3 + sum(_tokens(part) for part in parts)
    return count_tokens(_compact(block))


def _unit(role: str, block: Any) -> Unit:
    text = role + ":" + _compact(_without_marker(block))
    marker = block.get("cache_control") if isinstance(block, dict) else None
    return text, _tokens(block), (_ttl(marker) if isinstance(marker, dict) else None)


def _anthropic_units(body: dict[str, Any]) -> list[Unit]:
    units = [_unit("tool", tool) for tool in body.get("tools") or ()]
    system = body.get("system")
    for block in system if isinstance(system, list) else ([system] if system else []):
        units.append(_unit("system", block))
    for message in body.get("messages") or ():
        if not isinstance(message, dict):
            continue
        role = str(message.get("role"))
        content = message.get("content")
        for block in content if isinstance(content, list) else [content]:
            units.append(_unit(role, block))
    top = body.get("cache_control")
    if isinstance(top, dict) and units:
        text, tokens, _ = units[-1]
        units[-1] = (text, tokens, _ttl(top))
    return units


def breakpoint_problem(flavor: Flavor, body: dict[str, Any]) -> Problem | None:
    """Anthropic's 400 for more than 4 `cache_control` breakpoints."""
    if flavor != "anthropic":
        return None
    found = sum(1 for _, _, ttl in _anthropic_units(body) if ttl is not None)
    if found <= _MAX_BREAKPOINTS:
        return None
    text = (
        f"A maximum of {_MAX_BREAKPOINTS} blocks with cache_control may be provided. Found {found}."
    )
    return Problem(400, text, "invalid_request_error")


def _anthropic_minimum(model: str, behavior: ModelBehavior) -> int:
    if behavior.prompt_cache_min_tokens is not None:
        return behavior.prompt_cache_min_tokens
    name = model.lower()
    if "haiku-4" in name:
        return 4096
    if "haiku-3" in name or "3-haiku" in name or "3-5-haiku" in name:
        return 2048
    return 1024


class PromptCache:
    """Cached prompt prefixes per provider and model, with their expiry (not thread-safe:
    the fake server calls it under its lock)."""

    def __init__(self) -> None:
        self._expires: dict[str, float] = {}

    def clear(self) -> None:
        self._expires.clear()

    def _live(self, key: str, now: float) -> bool:
        expires = self._expires.get(key)
        return expires is not None and expires > now

    def account(
        self, flavor: Flavor, model: str, body: dict[str, Any], behavior: ModelBehavior, now: float
    ) -> tuple[int, int, int]:
        """(tokens read from the cache, tokens written to it, the part of those written for
        an hour) for this request, and remember it."""
        if len(self._expires) > 50_000:  # a long-running fake must not grow forever
            self._expires = {k: t for k, t in self._expires.items() if t > now}
        enabled = behavior.prompt_cache
        if enabled is None:
            enabled = flavor in ("openai", "anthropic")
        if not enabled:
            return 0, 0, 0
        if flavor == "anthropic":
            return self._anthropic(model, body, behavior, now)
        return self._openai(flavor, model, body, now), 0, 0

    def _prefixes(self, scope: str, units: list[Unit]) -> list[tuple[str, int]]:
        """(key, cumulative tokens) at the end of each unit."""
        digest = hashlib.sha256(scope.encode())
        total = 0
        out = []
        for text, tokens, _ in units:
            digest.update(b"\0" + text.encode())
            total += tokens
            out.append((digest.copy().hexdigest(), total))
        return out

    def _anthropic(
        self, model: str, body: dict[str, Any], behavior: ModelBehavior, now: float
    ) -> tuple[int, int, int]:
        units = _anthropic_units(body)
        marks = [i for i, (_, _, ttl) in enumerate(units) if ttl is not None]
        if not marks:
            return 0, 0, 0
        prefixes = self._prefixes(f"anthropic/{model}", units)
        last = marks[-1]
        read = 0
        for index in range(last, -1, -1):
            key, tokens = prefixes[index]
            if self._live(key, now):
                read = tokens
                ttls = [t for _, _, t in units[index : last + 1] if t is not None]
                self._expires[key] = now + max(ttls)
                break
        minimum = _anthropic_minimum(model, behavior)
        end = prefixes[last][1]
        write = end - read if end >= minimum and end > read else 0
        hour_marks = [prefixes[i][1] for i in marks if (units[i][2] or 0.0) > 300.0]
        write_1h = min(write, max(0, hour_marks[-1] - read)) if hour_marks and write else 0
        for index in marks:
            key, tokens = prefixes[index]
            mark_ttl = units[index][2] or 0.0
            if tokens >= minimum:
                self._expires[key] = max(self._expires.get(key, 0.0), now + mark_ttl)
        return read, write, write_1h

    def _openai(self, flavor: Flavor, model: str, body: dict[str, Any], now: float) -> int:
        units = [_unit("tool", tool) for tool in body.get("tools") or ()]
        units += [_unit("message", m) for m in body.get("messages") or ()]
        prefixes = self._prefixes(f"{flavor}/{model}", units)
        cached = 0
        for key, tokens in reversed(prefixes):
            if tokens >= _OPENAI_MIN and self._live(key, now):
                cached = tokens - (tokens - _OPENAI_MIN) % _OPENAI_STEP
                break
        retention = 86_400.0 if body.get("prompt_cache_retention") == "24h" else _OPENAI_TTL
        for key, tokens in prefixes:
            if tokens >= _OPENAI_MIN:
                self._expires[key] = now + retention
        return cached
