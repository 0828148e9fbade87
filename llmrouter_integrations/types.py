"""Provider-neutral request, response and configuration types (plain data, no I/O).

>>> from llmrouter_integrations.types import Message, ChatRequest
>>> request = ChatRequest(messages=[Message(role="user", content="hi")], max_tokens=50)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, cast

from ._secrets import mask_url, schema_with_secret_str, secret_str
from ._validate import check_deployment
from .content import ContentPart, ProviderBlock, part_from_dict

if TYPE_CHECKING:
    from pydantic import SecretStr

__all__ = [
    "Attempt",
    "ChatChunk",
    "ChatRequest",
    "ChatResponse",
    "ContentPart",
    "CostDetail",
    "Deployment",
    "FinishReason",
    "Message",
    "ProviderBlock",
    "ReasoningEffort",
    "Role",
    "ToolCall",
    "ToolCallDelta",
    "ToolSpec",
    "Usage",
    "message_from_dict",
    "messages_from_input",
]

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]
ReasoningEffort = Literal["minimal", "low", "medium", "high"]


@dataclass(slots=True)
class ToolCall:
    """A tool call the model asked for; `arguments` is already parsed JSON."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(slots=True)
class Message:
    """One chat message. `content` is text, a list of parts, or None (tool-call only).

    `reasoning` is the model's reasoning as readable text (Anthropic thinking, OpenAI-compatible
    `reasoning`/`reasoning_content`), for display only; what a provider needs to continue a
    thinking turn travels as `provider` parts in `content`, in the order they came.
    `cache_control` puts a prompt-cache breakpoint after the message's last part (handy when
    `content` is a plain string, e.g. a long system prompt).

    `is_error` marks a tool message whose tool failed (Anthropic's `is_error`).

    >>> Message(role="system", content=long_rules, cache_control={"type": "ephemeral"})
    """

    role: Role
    content: str | list[ContentPart] | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None
    reasoning: str | None = None
    cache_control: dict[str, Any] | None = None
    is_error: bool = False

    @property
    def blocks(self) -> list[ProviderBlock]:
        """The provider-private blocks in `content`, in order."""
        if not isinstance(self.content, list):
            return []
        return [part.block for part in self.content if part.block is not None]

    @property
    def text(self) -> str:
        """The text of the message, parts joined."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text or "" for part in self.content if part.type == "text")


@dataclass(slots=True)
class ToolSpec:
    """A tool the model may call: a name, a description and a JSON schema for arguments."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None
    cache_control: dict[str, Any] | None = None  # a prompt-cache breakpoint after this tool


@dataclass(slots=True)
class ChatRequest:
    """Everything that defines one call, independent of provider.

    `tool_choice` is "auto" | "none" | "required" | a tool name.
    `response_format` uses OpenAI's shape: {"type": "json_object"} or
    {"type": "json_schema", "json_schema": {"name": ..., "schema": ..., "strict": ...}}.
    `extra_body` is passed to the provider unchanged.
    `reasoning` asks for reasoning in one vocabulary: an effort ("minimal" | "low" | "medium" |
    "high") or a token budget (int); each dialect maps it to its own field and leaves it out
    for models that do not reason. `strict_params`: an option a deployment does not take
    raises `BadRequestError` (True) or is dropped with one warning (False); None follows
    the Router's setting.

    >>> ChatRequest(messages=[Message("user", "Prove it")], max_tokens=2000, reasoning="low")
    """

    messages: list[Message]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    tools: list[ToolSpec] | None = None
    tool_choice: str | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    seed: int | None = None
    user: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    timeout: float | None = None
    cache: bool | None = None
    deployments: tuple[str, ...] | None = None
    max_cost_usd: float | None = None
    priority: int = 0
    model: str | None = None  # per-call override of the served model name
    reasoning: ReasoningEffort | int | None = None
    strict_params: bool | None = None
    extra_body: dict[str, Any] = field(default_factory=dict)
    # Set by the router, not by users: absolute clock time by which the request must end.
    deadline: float | None = None
    # Private: the input-token estimate, computed once and shared by every layer that
    # needs it (planner, queue, rate limiter, budgets); see core/tokens.py.
    _token_estimate: tuple[Any, ...] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    # Private: the call's `admission.CallAdmission` (queue grant, rate-limit permit), set and
    # cleared by the queue and rate-limit layers; typed Any so types.py imports no layer.
    admission: Any = field(default=None, init=False, repr=False, compare=False)


@dataclass(slots=True)
class Usage:
    """Token counts. `input_tokens` counts every prompt token, cache reads and writes included;
    `estimated`: the provider reported none, so these are the router's own estimate."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False
    cache_write_1h_tokens: int = 0  # of cache_write_tokens, written for an hour (Anthropic)

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.total_tokens + other.total_tokens,
            self.cached_input_tokens + other.cached_input_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
            self.estimated or other.estimated,
            self.cache_write_1h_tokens + other.cache_write_1h_tokens,
        )


@dataclass(slots=True)
class CostDetail:
    """Cost split in exact decimals (USD)."""

    input: Decimal = Decimal(0)
    output: Decimal = Decimal(0)
    cached_input: Decimal = Decimal(0)
    cache_write: Decimal = Decimal(0)
    source: str = "genai-prices"  # or "deployment" | "provider" | "local"

    @property
    def total(self) -> Decimal:
        return self.input + self.output + self.cached_input + self.cache_write


@dataclass(slots=True)
class Attempt:
    """One failed try before the answer: which deployment, what went wrong, how long it took."""

    deployment: str
    error: Exception
    latency_s: float


@dataclass(slots=True)
class ChatResponse:
    """A complete answer, with what it cost and where it came from."""

    message: Message
    finish_reason: FinishReason | None = None
    usage: Usage = field(default_factory=Usage)
    cost: float | None = None
    cost_detail: CostDetail | None = None
    provider: str = ""
    model: str = ""
    deployment: str = ""
    latency_s: float = 0.0
    ttft_s: float | None = None
    cached: bool = False
    # On a cache hit `cost` is 0 and this keeps what the original call cost (the saving).
    original_cost: float | None = None
    attempts: list[Attempt] = field(default_factory=list)
    raw: Any = None
    route: Any = None  # a routing explanation, when the strategy gives one
    id: str | None = None

    @property
    def text(self) -> str:
        return self.message.text

    @property
    def reasoning(self) -> str:
        """The model's reasoning as text ("" when it gave none)."""
        return self.message.reasoning or ""

    @property
    def tool_calls(self) -> list[ToolCall]:
        return self.message.tool_calls


@dataclass(slots=True)
class ToolCallDelta:
    """A fragment of a streamed tool call. `id` and `name` come on a call's first fragment."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(slots=True)
class ChatChunk:
    """One piece of a stream. Only the final chunk (`is_final`) carries usage and cost.

    `reasoning` is a delta of reasoning text. `blocks` holds provider-private blocks completed
    in this chunk (an Anthropic thinking block arrives whole, signature included, when the
    provider closes it), so a streamed turn can be replayed like a non-streamed one.
    """

    text: str = ""
    tool_call_deltas: list[ToolCallDelta] = field(default_factory=list)
    reasoning: str = ""
    blocks: list[ProviderBlock] = field(default_factory=list)
    is_final: bool = False
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    cost: float | None = None
    cost_detail: CostDetail | None = None
    provider: str = ""
    model: str = ""
    deployment: str = ""
    latency_s: float | None = None
    ttft_s: float | None = None
    cached: bool = False
    original_cost: float | None = None
    attempts: list[Attempt] = field(default_factory=list)
    raw: Any = None
    route: Any = None
    id: str | None = None

    @property
    def has_content(self) -> bool:
        """True once the chunk carries something the caller sees (text or a tool call)."""
        return bool(self.text or self.tool_call_deltas or self.reasoning or self.blocks)


@dataclass(slots=True)
class Deployment:
    """One model at one provider, with the facts and limits the router uses.

    >>> Deployment(provider="anthropic", model="claude-haiku-4-5")
    >>> Deployment(provider="ollama", model="llama3.2", base_url="http://localhost:11434/v1")
    """

    provider: str
    model: str
    api_key: SecretStr | str | None = None  # a str is wrapped in SecretStr at once
    base_url: str | None = None
    name: str | None = None
    weight: float = 1.0
    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None
    timeout: float | None = None
    price: dict[str, float] | None = None
    quality: float | None = None
    context_window: int | None = None
    capabilities: dict[str, bool] | None = None
    tags: tuple[str, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
    __get_pydantic_core_schema__ = classmethod(schema_with_secret_str)

    def __post_init__(self) -> None:
        self.api_key = secret_str(self.api_key)  # a str is wrapped in SecretStr at once
        if self.name is None:
            self.name = f"{self.provider}/{self.model}"
        self.tags = tuple(self.tags)
        check_deployment(self)  # a key or header no HTTP request can carry: refused now

    @property
    def key(self) -> str:
        """The deployment's name (never None after construction)."""
        return self.name or f"{self.provider}/{self.model}"

    def __repr__(self) -> str:
        # Spelled out so a key (or a password in base_url) can never reach a repr.
        key = "'**********'" if self.api_key is not None else "None"
        url = mask_url(self.base_url) if self.base_url is not None else None
        return (
            f"Deployment(provider={self.provider!r}, model={self.model!r}, name={self.name!r}, "
            f"base_url={url!r}, api_key={key})"
        )


def message_from_dict(data: Mapping[str, Any] | Message) -> Message:
    """Build a `Message` from an OpenAI-style dict (tool_calls with JSON-string arguments).

    >>> message_from_dict({"role": "user", "content": "hi"}).text
    'hi'
    """
    if isinstance(data, Message):
        return data
    role = data.get("role")
    if role not in ("system", "user", "assistant", "tool", "developer"):
        raise ValueError(f"unknown message role: {role!r}")
    if role == "developer":
        role = "system"
    role = cast(Role, role)
    content = data.get("content")
    if isinstance(content, list):
        parsed: str | list[ContentPart] | None = [part_from_dict(p) for p in content]
    elif content is None or isinstance(content, str):
        parsed = content
    else:
        raise ValueError(f"message content must be text or a list of parts, got {type(content)}")
    calls = []
    for call in data.get("tool_calls") or ():
        function = call.get("function", call)
        arguments = function.get("arguments") or {}
        if isinstance(arguments, str):
            arguments = json.loads(arguments) if arguments.strip() else {}
        calls.append(
            ToolCall(id=str(call.get("id", "")), name=function["name"], arguments=arguments)
        )
    # OpenAI-compatible servers name their reasoning text one of these two ways.
    reasoning = data.get("reasoning_content") or data.get("reasoning")
    cache_control = data.get("cache_control")
    return Message(
        role=role,
        content=parsed,
        tool_calls=calls,
        tool_call_id=data.get("tool_call_id"),
        name=data.get("name"),
        reasoning=reasoning if isinstance(reasoning, str) else None,
        cache_control=dict(cache_control) if isinstance(cache_control, Mapping) else None,
    )


def messages_from_input(
    messages: str | Message | Sequence[Mapping[str, Any] | Message],
) -> list[Message]:
    """Accept a prompt string, one message, or a list of dicts/Messages."""
    if isinstance(messages, str):
        return [Message(role="user", content=messages)]
    if isinstance(messages, Message):
        return [messages]
    return [message_from_dict(m) for m in messages]
