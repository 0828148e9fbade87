"""The router options of one ChatLLMRouter call: model defaults, call kwargs, attribution.

>>> call_options(model, stop=None, run_manager=None, kwargs={"temperature": 0})["temperature"]
0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun

from ._context import call_attribution
from ._tools import to_tool_choice, to_tool_spec

__all__ = ["MODEL_DEFAULTS", "call_options"]

# ChatLLMRouter fields sent with every call when set (per-call kwargs override them).
MODEL_DEFAULTS: tuple[str, ...] = (
    *("model", "temperature", "max_tokens", "top_p", "seed", "timeout", "user", "reasoning"),
)
# Call kwargs LangChain uses itself; they are not request options.
_LANGCHAIN_ONLY_KWARGS = ("stream", "ls_structured_output_format", "structured_output_format")


def call_options(
    model: Any,
    stop: Sequence[str] | None,
    run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
    kwargs: Mapping[str, Any],
) -> dict[str, Any]:
    """Router options for one call of `model` (a ChatLLMRouter): its defaults, then the
    call's kwargs, then the run's tags and metadata (`user` / `user_id` attribute cost)."""
    options: dict[str, Any] = dict(model.model_kwargs)
    for name in MODEL_DEFAULTS:
        value = getattr(model, name)
        if value is not None:
            options[name] = value
    stop_list = stop if stop is not None else model.stop
    if stop_list:
        options["stop"] = list(stop_list)
    for name, value in kwargs.items():
        if name not in _LANGCHAIN_ONLY_KWARGS:
            options[name] = value
    if options.get("tools"):
        options["tools"] = [to_tool_spec(tool) for tool in options["tools"]]
    if "tool_choice" in options:
        options["tool_choice"] = to_tool_choice(options["tool_choice"])
    tags, metadata = call_attribution(run_manager, model.tags, model.metadata)
    if "user" not in kwargs:
        user = metadata.get("user") or metadata.get("user_id")
        if user is not None:
            options["user"] = str(user)
    if tags:
        options["tags"] = [*tags, *[t for t in options.get("tags") or () if t not in tags]]
    if metadata:
        options["metadata"] = {**metadata, **(options.get("metadata") or {})}
    return options
