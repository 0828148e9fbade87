"""User input -> `ChatRequest`: the one normaliser of messages, tools and tool_choice.

The Router's `build_request` and both framework adapters go through these functions, so a
spelling (OpenAI's, Anthropic's, LangChain's, LlamaIndex's) means the same thing wherever a
user writes it.

    >>> request = build_request("hi", {"max_tokens": 20, "tool_choice": "any"})
    >>> request.max_tokens, request.tool_choice
    (20, 'required')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from ._validate import VALID_ROLES, check_request, invalid
from .errors import ConfigurationError
from .types import ChatRequest, Message, ToolSpec, message_from_dict, messages_from_input

__all__ = [
    "REQUEST_FIELDS",
    "MessagesInput",
    "build_request",
    "messages_from_user",
    "tool_choice_from_input",
    "tool_from_input",
]

MessagesInput = str | Message | Sequence[Mapping[str, Any] | Message]

# Set by the router itself, never by a caller's options.
_ROUTER_FIELDS = frozenset({"messages", "extra_body", "deadline"})
# Call options that are `ChatRequest` fields; anything else goes to the provider in extra_body.
REQUEST_FIELDS = frozenset(
    f.name for f in dataclasses.fields(ChatRequest) if f.init and f.name not in _ROUTER_FIELDS
)

_PLAIN_ROLES = frozenset({"system", "user", "assistant", "tool"})


def messages_from_user(messages: MessagesInput) -> list[Message]:
    """`messages_from_input`, with plain `{"role": ..., "content": "text"}` dicts (the usual
    input) turned into messages directly rather than through the general parser.

    >>> messages_from_user([{"role": "user", "content": "hi"}])[0].text
    'hi'
    """
    if type(messages) is not list:
        return messages_from_input(messages)
    parsed: list[Message] = []
    for item in messages:
        if (
            type(item) is dict
            and len(item) == 2
            and type(item.get("content")) is str
            and item.get("role") in _PLAIN_ROLES
        ):
            parsed.append(Message(role=item["role"], content=item["content"]))
        else:
            parsed.append(message_from_dict(item))
    return parsed


def tool_from_input(tool: ToolSpec | Mapping[str, Any]) -> ToolSpec:
    """A `ToolSpec` from itself, OpenAI's `{"type": "function", "function": {...}}` or
    Anthropic's `{"name", "description", "input_schema"}`.

    >>> tool_from_input({"name": "add", "input_schema": {"type": "object"}}).name
    'add'
    """
    if isinstance(tool, ToolSpec):
        return tool
    function = tool.get("function") if tool.get("type") == "function" else None
    source = function if isinstance(function, Mapping) else tool
    parameters = source.get("parameters") or source.get("input_schema")
    cache_control = tool.get("cache_control") or source.get("cache_control")
    return ToolSpec(
        name=source["name"],
        description=source.get("description") or "",
        parameters=dict(parameters or {"type": "object", "properties": {}}),
        strict=source.get("strict"),
        cache_control=dict(cache_control) if isinstance(cache_control, Mapping) else None,
    )


def tool_choice_from_input(choice: Any) -> str | None:
    """Every `tool_choice` spelling as the router's: "auto" | "none" | "required" | a name.

    `"any"`, `"required"` and `True` force some tool; any other string is "auto", "none" or
    the name of the tool to force (so a tool may be called "tool"); OpenAI's
    `{"type": "function", "function": {"name": ...}}` and Anthropic's `{"type": "tool",
    "name": ...}` / `{"type": "any" | "auto" | "none"}` are understood. `None`, `False` and
    `""` leave it to the model. Anything else is a `ConfigurationError` (a `ValueError`).

    >>> tool_choice_from_input("any"), tool_choice_from_input({"type": "tool", "name": "f"})
    ('required', 'f')
    """
    if choice is None or choice is False or choice == "":
        return None
    if choice is True:
        return "required"
    if isinstance(choice, str):
        return "required" if choice in ("any", "required") else choice
    if isinstance(choice, Mapping):
        function = choice.get("function")
        if isinstance(function, Mapping) and function.get("name"):
            return str(function["name"])
        kind = choice.get("type")
        if kind in ("any", "required"):
            return "required"
        if kind in ("auto", "none"):
            return str(kind)
        if choice.get("name"):
            return str(choice["name"])
    raise ConfigurationError(f"unsupported tool_choice: {choice!r}")


def build_request(
    messages: MessagesInput,
    options: Mapping[str, Any],
    *,
    known_deployments: Collection[str] | None = None,
) -> ChatRequest:
    """The provider-neutral request for `messages` and call options.

    Options that are `ChatRequest` fields become fields; `extra_body` and every other option
    that is not None go to the provider unchanged. With `known_deployments`, a
    `deployments=` naming anything else is a `ConfigurationError`.

    >>> build_request([{"role": "user", "content": "hi"}], {"stop": "END", "seed": 1}).stop
    ['END']
    """
    fields: dict[str, Any] = {}
    extra: dict[str, Any] = dict(options.get("extra_body") or {})
    for key, value in options.items():
        if key == "extra_body":
            continue
        if key in REQUEST_FIELDS:
            fields[key] = value
        elif value is not None:
            extra[key] = value
    if fields.get("tools"):
        fields["tools"] = [_tool(position, t) for position, t in enumerate(fields["tools"])]
    if "tool_choice" in fields:
        fields["tool_choice"] = tool_choice_from_input(fields["tool_choice"])
    if isinstance(fields.get("stop"), str):
        fields["stop"] = [fields["stop"]]
    if fields.get("deployments") is not None:
        fields["deployments"] = tuple(fields["deployments"])
        if known_deployments is not None:
            unknown = set(fields["deployments"]) - set(known_deployments)
            if unknown:
                raise ConfigurationError(
                    f"unknown deployment(s) {sorted(unknown)}; known: {sorted(known_deployments)}"
                )
    if fields.get("tags") is not None:
        fields["tags"] = tuple(fields["tags"])
    try:
        parsed = messages_from_user(messages)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        problem: str | None = str(exc).strip("'\"") or type(exc).__name__
    else:
        problem = None
    if problem is not None:  # raised out here: the parser's error stays out of the chain
        if "role" in problem:
            problem += f" (valid roles: {', '.join(VALID_ROLES)})"
        raise invalid("messages", f"are not valid: {problem}")
    request = ChatRequest(messages=parsed, extra_body=extra, **fields)
    check_request(request)  # before anything is sent: nothing counts against a deployment
    return request


def _tool(position: int, tool: Any) -> ToolSpec:
    try:
        return tool_from_input(tool)
    except (KeyError, TypeError, AttributeError, ValueError):
        pass
    raise invalid(f"tools[{position}]", "needs a name (and a JSON schema of its parameters)")
