"""Deterministic "intelligence" for the fake server: what to answer, in provider-neutral form.

    >>> chat = parse_openai({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    >>> decide_reply(chat, ModelBehavior(), body={}).text
    'Echo: hi'

Token counting rule (documented, so tests can predict usage): a text of n characters is
`n // 4 + 1` tokens (0 when empty). A prompt is 3 tokens per message plus its text,
plus the system prompt, the compact JSON of the tools and of the response schema. A
completion is the answer text, or each tool call's name plus its JSON arguments.
An image is 85 tokens. A PDF or audio part is 85 tokens plus one per 75 characters of its
base64 data (a 10 MB PDF is ~180k tokens, so it cannot slip past a context window); a PDF
by URL or file id is 1500 tokens; a plain-text document counts as its text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from ._fake_behavior import ModelBehavior

__all__ = [
    "ChatView",
    "Reply",
    "ToolCallReply",
    "Usage",
    "count_tokens",
    "decide_reply",
    "media_tokens",
    "parse_anthropic",
    "parse_openai",
    "synthesize",
]

Finish = Literal["stop", "length", "tool_calls", "stop_sequence"]
_PER_MESSAGE = 3
_PER_IMAGE = 85
_BY_REFERENCE = 1500


def count_tokens(text: str) -> int:
    """The fake's token count for a text: `len(text) // 4 + 1`, 0 when empty."""
    return len(text) // 4 + 1 if text else 0


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass
class ChatView:
    """The parts of a chat request that decide the answer, whatever the wire format."""

    last_user_text: str = ""
    tool_results: list[str] | None = None  # set when the last turn answers tool calls
    called_tools: set[str] = field(default_factory=set)
    tools: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    tool_choice: str = "auto"  # auto | none | required | named
    forced_tool: str | None = None
    parallel_allowed: bool = True
    json_schema: dict[str, Any] | None = None
    json_object: bool = False
    stop: list[str] = field(default_factory=list)
    max_tokens: int | None = None
    prompt_tokens: int = 0


@dataclass
class ToolCallReply:
    """One tool call the fake decided to make."""

    id: str
    name: str
    arguments: dict[str, Any]

    @property
    def arguments_json(self) -> str:
        return json.dumps(self.arguments, ensure_ascii=False)


@dataclass
class Usage:
    """Usage to report. `input` counts every prompt token, cache reads and writes included."""

    input: int
    output: int
    cached: int = 0
    cache_write: int = 0
    reasoning: int = 0
    cost: float | None = None
    cache_write_1h: int = 0  # the part of `cache_write` written for an hour (Anthropic)

    def set_cache(self, read: int, write: int, write_1h: int = 0, *, overrides: Any = None) -> None:
        """Report simulated prompt-cache traffic, unless the script fixed these numbers."""
        if overrides and ("cached" in overrides or "cache_write" in overrides):
            return
        self.cached = min(read, self.input)
        self.cache_write = min(write, self.input - self.cached)
        self.cache_write_1h = min(write_1h, self.cache_write)


@dataclass
class Reply:
    """A provider-neutral answer: text or tool calls, why it ended, and usage."""

    text: str
    tool_calls: list[ToolCallReply]
    finish: Finish
    usage: Usage
    stop_sequence: str | None = None
    reasoning: str = ""  # reasoning text shown to the client
    reasoning_field: str | None = None  # OpenAI-compatible: "reasoning" | "reasoning_content"
    thinking: list[dict[str, Any]] = field(default_factory=list)  # Anthropic blocks, signed


def _b64_tokens(data: str) -> int:
    return _PER_IMAGE + len(data) // 75


def media_tokens(part: dict[str, Any]) -> int:
    """Prompt tokens of one document/file/audio part (0 for other parts)."""
    kind = part.get("type")
    if kind == "document":
        source = part.get("source") or {}
        if source.get("type") == "base64":
            return _b64_tokens(str(source.get("data") or ""))
        if source.get("type") == "text":
            return count_tokens(str(source.get("data") or ""))
        return _BY_REFERENCE
    if kind == "file":
        data = str((part.get("file") or {}).get("file_data") or "")
        return _b64_tokens(data.partition(",")[2]) if data else _BY_REFERENCE
    if kind == "input_audio":
        return _b64_tokens(str((part.get("input_audio") or {}).get("data") or ""))
    return 0


def _text_of(content: Any) -> tuple[str, int]:
    """Text of a message `content` (string or parts) and the tokens of its media parts."""
    if isinstance(content, str):
        return content, 0
    texts: list[str] = []
    media = 0
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif part.get("type") in ("image", "image_url"):
                media += _PER_IMAGE
            else:
                media += media_tokens(part)
    return "\n".join(texts), media


def _schema_tokens(view: ChatView, extra: Any) -> int:
    tokens = sum(count_tokens(_compact({"name": n, "schema": s})) for n, s in view.tools)
    return tokens + (count_tokens(_compact(extra)) if extra else 0)


def parse_openai(body: dict[str, Any]) -> ChatView:
    """Read an OpenAI-style chat-completions body (also Groq and OpenRouter)."""
    view = ChatView(stop=_stop_list(body.get("stop")))
    tokens = 0
    messages = body.get("messages") or []
    for message in messages:
        text, images = _text_of(message.get("content"))
        tokens += _PER_MESSAGE + count_tokens(text) + images
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            view.called_tools.add(str(function.get("name", "")))
            tokens += count_tokens(str(function.get("name", "")) + str(function.get("arguments")))
        if message.get("role") == "user":
            view.last_user_text = text
    if messages and messages[-1].get("role") == "tool":
        trailing = []
        for message in reversed(messages):
            if message.get("role") != "tool":
                break
            trailing.append(_text_of(message.get("content"))[0])
        view.tool_results = trailing[::-1]
    tools = body.get("tools") or []
    for tool in tools:
        if isinstance(tool, dict) and tool.get("type", "function") == "function":
            function = tool.get("function") or {}
            view.tools.append((str(function.get("name")), function.get("parameters") or {}))
    _openai_tool_choice(view, body.get("tool_choice"), bool(tools))
    if body.get("parallel_tool_calls") is False:
        view.parallel_allowed = False
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        view.json_schema = (response_format.get("json_schema") or {}).get("schema") or {}
    view.json_object = response_format.get("type") == "json_object"
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    view.max_tokens = limit if isinstance(limit, int) else None
    view.prompt_tokens = tokens + _schema_tokens(view, view.json_schema)
    return view


def _openai_tool_choice(view: ChatView, choice: Any, has_tools: bool) -> None:
    if choice is None:
        view.tool_choice = "auto" if has_tools else "none"
    elif isinstance(choice, str):
        view.tool_choice = choice if choice in ("none", "auto", "required") else "auto"
    elif isinstance(choice, dict) and choice.get("type") == "function":
        view.tool_choice = "named"
        view.forced_tool = str((choice.get("function") or {}).get("name"))
    elif isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        allowed = choice.get("allowed_tools") or {}
        names = {(t.get("function") or {}).get("name") for t in allowed.get("tools") or ()}
        view.tools = [t for t in view.tools if t[0] in names] or view.tools
        view.tool_choice = "required" if allowed.get("mode") == "required" else "auto"


def parse_anthropic(body: dict[str, Any]) -> ChatView:
    """Read an Anthropic messages body."""
    view = ChatView(stop=_stop_list(body.get("stop_sequences")))
    system_text, _ = _text_of(body.get("system"))
    tokens = count_tokens(system_text)
    messages = body.get("messages") or []
    for message in messages:
        content = message.get("content")
        text, images = _text_of(content)
        results: list[str] = []
        for block in content if isinstance(content, list) else ():
            if not isinstance(block, dict):
                continue
            if block.get("type") == "tool_use":
                view.called_tools.add(str(block.get("name")))
                tokens += count_tokens(str(block.get("name")) + _compact(block.get("input")))
            elif block.get("type") == "tool_result":
                result_text, result_media = _text_of(block.get("content"))
                results.append(result_text)
                tokens += count_tokens(result_text) + result_media
        tokens += _PER_MESSAGE + count_tokens(text) + images
        if message.get("role") == "user":
            if text:
                view.last_user_text = text
            view.tool_results = results or None
        else:
            view.tool_results = None
    for tool in body.get("tools") or ():
        if isinstance(tool, dict) and tool.get("type") in (None, "custom"):
            view.tools.append((str(tool.get("name")), tool.get("input_schema") or {}))
    choice = body.get("tool_choice") or {"type": "auto"}
    kind = choice.get("type", "auto")
    view.tool_choice = {"any": "required", "tool": "named"}.get(kind, kind)
    view.forced_tool = choice.get("name") if kind == "tool" else None
    view.parallel_allowed = not choice.get("disable_parallel_tool_use", False)
    output_format = (body.get("output_config") or {}).get("format") or body.get("output_format")
    if isinstance(output_format, dict) and output_format.get("type") == "json_schema":
        view.json_schema = output_format.get("schema") or {}
    # The Messages API has no JSON mode; clients ask for it in the system prompt, and a
    # real model complies, so the fake does too.
    view.json_object = "json object" in system_text.lower()
    limit = body.get("max_tokens")
    view.max_tokens = limit if isinstance(limit, int) else None
    view.prompt_tokens = tokens + _schema_tokens(view, view.json_schema)
    return view


def _stop_list(stop: Any) -> list[str]:
    if isinstance(stop, str):
        return [stop]
    return [s for s in stop or () if isinstance(s, str) and s]


def decide_reply(
    view: ChatView, behavior: ModelBehavior, body: dict[str, Any], *, id_prefix: str = "call_"
) -> Reply:
    """The answer the fake gives: a tool call, JSON, the scripted reply or an echo."""
    calls = _tool_calls(view, behavior, id_prefix)
    if calls:
        output = sum(count_tokens(c.name + c.arguments_json) for c in calls)
        return Reply("", calls, "tool_calls", _usage(view.prompt_tokens, output, behavior))
    text = _answer_text(view, behavior, body)
    finish: Finish = "stop"
    stop_sequence = None
    for stop in view.stop:
        if stop in text:
            text, stop_sequence, finish = text[: text.index(stop)], stop, "stop_sequence"
    output = count_tokens(text)
    if view.max_tokens is not None and output > view.max_tokens:
        text, output, finish = text[: view.max_tokens * 4], view.max_tokens, "length"
    usage = _usage(view.prompt_tokens, output, behavior)
    if view.max_tokens is not None and usage.output > view.max_tokens:
        # A scripted long answer meets the cap: the provider stops there and bills the cap.
        usage.output, usage.reasoning = view.max_tokens, min(usage.reasoning, view.max_tokens)
        finish = "length"
    return Reply(text, [], finish, usage, stop_sequence)


def _answer_text(view: ChatView, behavior: ModelBehavior, body: dict[str, Any]) -> str:
    if callable(behavior.reply):
        return behavior.reply(body)
    if behavior.reply is not None:
        return behavior.reply
    if view.json_schema is not None:
        return json.dumps(synthesize(view.json_schema, view.last_user_text), ensure_ascii=False)
    if view.json_object:
        keys = re.findall(r"(?<!\w)'([A-Za-z_][A-Za-z0-9_]*)'(?!\w)", view.last_user_text)
        value = {key: f"example {key}" for key in keys} or {"echo": view.last_user_text}
        return json.dumps(value, ensure_ascii=False)
    if view.tool_results is not None:
        return "The tool returned: " + "; ".join(view.tool_results)
    return "Echo: " + view.last_user_text


def _tool_calls(view: ChatView, behavior: ModelBehavior, id_prefix: str) -> list[ToolCallReply]:
    if not view.tools and view.forced_tool is None:
        return []
    if view.tool_choice == "none" or behavior.tool_mode == "never":
        return []
    forced = view.tool_choice in ("required", "named")
    after_results = view.tool_results is not None
    if after_results and not forced and behavior.tool_mode != "always":
        return []
    schemas = dict(view.tools)
    names = [name for name, _ in view.tools]
    if view.forced_tool is not None:
        chosen = [view.forced_tool]
    else:
        if after_results:
            # A forced call after tool results is a "final answer" tool not used yet.
            fresh = [n for n in names if n not in view.called_tools]
            first = fresh[0] if fresh else names[0]
        else:
            mentioned = [n for n in names if n and n in view.last_user_text]
            first = mentioned[0] if mentioned else names[0]
        chosen = [first]
        if view.parallel_allowed and behavior.parallel_tool_calls_n > 1:
            rest = [n for n in names if n != first]
            chosen += rest[: behavior.parallel_tool_calls_n - 1]
    prompt = view.last_user_text if not after_results else "\n".join(view.tool_results or ())
    return [
        ToolCallReply(
            f"{id_prefix}{index}", name, _as_object(synthesize(schemas.get(name), prompt))
        )
        for index, name in enumerate(chosen)
    ]


def _as_object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _usage(prompt_tokens: int, output_tokens: int, behavior: ModelBehavior) -> Usage:
    usage = Usage(input=prompt_tokens, output=output_tokens)
    overrides = behavior.usage or {}
    for name in ("input", "output", "cached", "cache_write", "cache_write_1h", "reasoning"):
        if name in overrides:
            setattr(usage, name, int(overrides[name]))
    if "cost" in overrides:
        usage.cost = float(overrides["cost"])
    # A prompt always holds at least its cached and cache-written tokens.
    usage.input = max(usage.input, usage.cached + usage.cache_write)
    usage.output = max(usage.output, usage.reasoning)
    usage.cache_write_1h = min(usage.cache_write_1h, usage.cache_write)
    return usage


class _Hints:
    """Values lifted from the prompt, handed out in turn to the fields that want them."""

    def __init__(self, prompt: str) -> None:
        self.prompt = prompt
        quoted = r"(?<!\w)'([^'\n]+)'(?!\w)|\"([^\"\n]+)\"|“([^”\n]+)”|「([^」\n]+)」"
        self._strings = ["".join(groups) for groups in re.findall(quoted, prompt)]
        in_parens = re.findall(r"\((-?\d+(?:\.\d+)?)\)", prompt)
        anywhere = re.findall(r"(?<![\w.])-?\d+(?:\.\d+)?", prompt)
        self._numbers = in_parens + [n for n in anywhere if n not in in_parens]
        self._next_string = 0
        self._next_number = 0

    def string(self, name: str) -> str:
        named = (
            re.search(
                rf"\b{re.escape(name)}\s*(?:[:=]|is)\s*(?:'([^']*)'|\"([^\"]*)\"|([^\s,;'\"]+))",
                self.prompt,
            )
            if name
            else None
        )
        if named:
            return "".join(g or "" for g in named.groups()).rstrip(".")
        if not self._strings:
            return "example"
        value = self._strings[self._next_string % len(self._strings)]
        self._next_string += 1
        return value

    def number(self) -> float | None:
        if not self._numbers:
            return None
        value = self._numbers[self._next_number % len(self._numbers)]
        self._next_number += 1
        return float(value)


def synthesize(schema: Any, prompt: str = "") -> Any:
    """A value that fits a JSON schema, filled from the prompt where it obviously can be.

    >>> synthesize({"type": "object", "properties": {"input": {"type": "integer"}}},
    ...            "What is magic_function(3)?")
    {'input': 3}
    """
    root = schema if isinstance(schema, dict) else {}
    return _synth(root, root, _Hints(prompt), "", 0)


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    seen = 0
    while isinstance(schema.get("$ref"), str) and seen < 20:
        target: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        seen += 1
    return schema


def _options(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key in ("anyOf", "oneOf"):
        for option in schema.get(key) or ():
            if isinstance(option, dict) and option.get("type") != "null":
                yield option


def _synth(schema: Any, root: dict[str, Any], hints: _Hints, name: str, depth: int) -> Any:
    if not isinstance(schema, dict):
        return "example"
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    option = next(_options(schema), None)
    if option is not None:
        return _synth(option, root, hints, name, depth)
    for part in schema.get("allOf") or ():
        schema = {**_resolve(part, root), **{k: v for k, v in schema.items() if k != "allOf"}}
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    if kind == "object":
        if depth > 8:
            return {}
        properties = schema.get("properties") or {}
        return {key: _synth(sub, root, hints, key, depth + 1) for key, sub in properties.items()}
    if kind == "array":
        count = max(1, int(schema.get("minItems", 1))) if depth <= 8 else 0
        return [_synth(schema.get("items") or {}, root, hints, name, depth + 1)] * count
    if kind in ("integer", "number"):
        return _number(schema, hints, integer=kind == "integer")
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return hints.string(name)


def _number(schema: dict[str, Any], hints: _Hints, *, integer: bool) -> float | int:
    value = hints.number()
    if value is None:
        value = 1.0
    if isinstance(schema.get("minimum"), (int, float)):
        value = max(value, float(schema["minimum"]))
    if isinstance(schema.get("maximum"), (int, float)):
        value = min(value, float(schema["maximum"]))
    return int(value) if integer or value.is_integer() else value
