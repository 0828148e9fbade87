"""LangChain tools and tool choices in the router's terms (`ToolSpec`, "required"...).

>>> to_tool_spec(my_adder_tool).name
'my_adder_tool'
>>> to_tool_choice("any")
'required'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from .._inputs import tool_choice_from_input, tool_from_input
from ..types import ToolSpec

__all__ = ["to_openai_tool", "to_tool_choice", "to_tool_spec"]


def to_openai_tool(
    tool: Mapping[str, Any] | type | Any, *, strict: bool | None = None
) -> dict[str, Any]:
    """Any LangChain tool shape (BaseTool, function, Pydantic, TypedDict, OpenAI or
    Anthropic dict) as an OpenAI tool dict.

    A dict's `cache_control` (as ChatAnthropic takes it on a tool definition) is kept at
    the top level, where `to_tool_spec` finds it.

    >>> to_openai_tool(my_adder_tool)["function"]["name"]
    'my_adder_tool'
    """
    converted = convert_to_openai_tool(tool, strict=strict)
    if isinstance(tool, Mapping) and isinstance(tool.get("cache_control"), Mapping):
        converted = {**converted, "cache_control": dict(tool["cache_control"])}
    return converted


def to_tool_spec(tool: Mapping[str, Any] | ToolSpec | BaseTool | type | Any) -> ToolSpec:
    """A bound tool as the router's `ToolSpec`."""
    if isinstance(tool, ToolSpec):
        return tool
    openai_tool: Mapping[str, Any] = (
        cast("Mapping[str, Any]", tool) if _is_openai_tool(tool) else to_openai_tool(tool)
    )
    return tool_from_input(openai_tool)


def _is_openai_tool(tool: Any) -> bool:
    return isinstance(tool, Mapping) and tool.get("type") == "function" and "function" in tool


def to_tool_choice(choice: Any) -> str | None:
    """Every LangChain `tool_choice` form as the router's: "auto" | "none" | "required" | a name.

    The router's one normaliser (`_inputs.tool_choice_from_input`): `"any"`, `True` and
    `"required"` force some tool; a string that names a tool forces that tool; OpenAI and
    Anthropic dict forms are understood. `None` and `False` leave it to the model.

    >>> to_tool_choice("any"), to_tool_choice({"type": "function", "function": {"name": "f"}})
    ('required', 'f')
    """
    return tool_choice_from_input(choice)
