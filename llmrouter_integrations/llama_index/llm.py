"""`LLMRouter`: the router as a LlamaIndex `FunctionCallingLLM` for query engines and agents.

>>> from llama_index.core import Settings
>>> Settings.llm = LLMRouter(deployments=["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"])
>>> index.as_query_engine().query("What did the author do growing up?")
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.generic_utils import (
    achat_to_completion_decorator,
    astream_chat_to_completion_decorator,
    chat_to_completion_decorator,
    stream_chat_to_completion_decorator,
)
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
    ToolCallBlock,
)
from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW, DEFAULT_NUM_OUTPUTS
from llama_index.core.instrumentation.span import active_span_id
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection
from pydantic import Field, PrivateAttr

from ..router import Router
from ..types import ChatChunk, Deployment
from ._convert import (
    StreamAccumulator,
    normalise_tool_choice,
    to_chat_response,
    to_router_messages,
    tool_selections,
    tools_to_specs,
)
from .events import CallEventBuffer, dispatch_cost, router_events_to_instrumentation

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

__all__ = ["LLMRouter"]

# LlamaIndex-internal keywords that reach chat() but mean nothing to a provider.
_NOT_FOR_PROVIDER = frozenset(
    {
        "formatted",
        "verbose",
        "tool_required",
        "allow_parallel_tool_calls",
        "error_on_no_tool_call",
        "error_on_tool_error",
        "chat_history",
        "user_msg",
    }
)


class LLMRouter(FunctionCallingLLM):
    """A LlamaIndex LLM that answers through a `Router`: fallback, retries, cost, budgets.

    Build it from a ready router or from `Router` keyword arguments:

        >>> llm = LLMRouter(router=router, max_tokens=512)
        >>> llm = LLMRouter(deployments=["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"])
        >>> llm.chat([ChatMessage(role="user", content="hi")]).additional_kwargs["cost"]

    Per-call keyword arguments are router options (`max_tokens`, `temperature`, `user`,
    `tags`, `deployments`, `max_cost_usd`, ...). Every answer carries the provider's usage
    in `raw["usage"]` (what `TokenCountingHandler` reads) and the router's facts in
    `additional_kwargs` (cost, provider, model, deployment, attempts, cached, route).
    """

    max_tokens: int | None = Field(default=None, description="Default max output tokens.")
    temperature: float | None = Field(default=None, description="Default sampling temperature.")
    context_window: int | None = Field(
        default=None, description="Override the context window reported in metadata."
    )
    user: str | None = Field(default=None, description="Default end-user id for budgets.")
    reasoning: str | int | None = Field(
        default=None,
        description=(
            'Reasoning for every call: "minimal" | "low" | "medium" | "high" or a token '
            "budget, mapped per provider and left out for models that do not reason."
        ),
    )
    tags: list[str] = Field(default_factory=list, description="Cost-attribution tags.")
    additional_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Other router options sent with every call."
    )

    _router: Router = PrivateAttr()
    _owns_router: bool = PrivateAttr(default=False)
    _facts: list[tuple[int | None, int | None, bool | None]] | None = PrivateAttr(default=None)

    def __init__(self, router: Router | None = None, **kwargs: Any) -> None:
        llm_fields = {k: kwargs.pop(k) for k in list(kwargs) if k in type(self).model_fields}
        if router is not None and kwargs:
            raise TypeError(
                f"pass either router= or Router arguments, not both (got {sorted(kwargs)})"
            )
        super().__init__(**llm_fields)
        self._owns_router = router is None
        self._router = router if router is not None else Router(**kwargs)

    @classmethod
    def class_name(cls) -> str:
        return "LLMRouter"

    @property
    def router(self) -> Router:
        """The router answering this LLM's calls."""
        return self._router

    # ---------------------------------------------------------------- metadata
    @property
    def metadata(self) -> LLMMetadata:
        """Limits that hold for every deployment that may serve a call.

        `context_window` is the smallest window in the fallback chain; a deployment whose
        window is unknown (a local server, an unlisted model) counts as LlamaIndex's
        conservative default (3,900) unless `Deployment(context_window=...)` or
        `LLMRouter(context_window=...)` says otherwise. `num_output` is `max_tokens`
        (LlamaIndex's default 256 when unset), capped by every known output limit.
        """
        deployments = self._router.deployments
        if self._facts is None:  # deployments are fixed for a router's life
            self._facts = [_deployment_facts(self._router, d) for d in deployments]
        facts = self._facts
        windows = [window or DEFAULT_CONTEXT_WINDOW for window, _, _ in facts]
        outputs = [output for _, output, _ in facts if output]
        num_output = min([self.max_tokens or DEFAULT_NUM_OUTPUTS, *outputs])
        return LLMMetadata(
            context_window=self.context_window or min(windows),
            num_output=num_output,
            is_chat_model=True,
            is_function_calling_model=all(tools is not False for _, _, tools in facts),
            model_name=_model_name(deployments),
            system_role=MessageRole.SYSTEM,
        )

    # ---------------------------------------------------------------- options
    def _options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        options: dict[str, Any] = dict(self.additional_kwargs)
        if self.max_tokens is not None:
            options["max_tokens"] = self.max_tokens
        if self.temperature is not None:
            options["temperature"] = self.temperature
        if self.user is not None:
            options["user"] = self.user
        if self.reasoning is not None:
            options["reasoning"] = self.reasoning
        for key, value in kwargs.items():
            if key not in _NOT_FOR_PROVIDER:
                options[key] = value
        call_tags = kwargs.get("tags") or ()
        tags = [*self.tags, *([call_tags] if isinstance(call_tags, str) else call_tags)]
        if tags:
            options["tags"] = tuple(dict.fromkeys(tags))
        tools = options.get("tools")
        if tools and all(hasattr(tool, "metadata") for tool in tools):
            options["tools"] = tools_to_specs(tools)  # BaseTools handed straight to chat()
        return options

    # ---------------------------------------------------------------- the work
    def _chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        router_messages = to_router_messages(messages)
        options = self._options(kwargs)
        span_id = active_span_id.get()
        buffer = CallEventBuffer()
        try:
            with router_events_to_instrumentation(buffer, span_id, wait=False):
                response = self._router.chat(router_messages, **options)
            converted = to_chat_response(response)  # while the call's settle may be landing
        finally:
            buffer.wait()
            buffer.flush(span_id)
        dispatch_cost(response, span_id)
        return converted

    async def _achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        router_messages = to_router_messages(messages)
        options = self._options(kwargs)
        span_id = active_span_id.get()
        buffer = CallEventBuffer()
        try:
            with router_events_to_instrumentation(buffer, span_id, wait=False):
                response = await self._router.achat(router_messages, **options)
            converted = to_chat_response(response)  # while the call's settle may be landing
        finally:
            await buffer.wait_async()
            buffer.flush(span_id)
        dispatch_cost(response, span_id)
        return converted

    def _stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        router_messages = to_router_messages(messages)
        options = self._options(kwargs)
        span_id = active_span_id.get()
        buffer = CallEventBuffer()
        with router_events_to_instrumentation(buffer, span_id):
            chunks = self._router.stream(router_messages, **options)

        def gen() -> ChatResponseGen:
            accumulator = StreamAccumulator()
            try:
                while True:
                    # Listen only while the router works on the next chunk, so the
                    # listener never leaks into the caller's code between chunks.
                    with router_events_to_instrumentation(buffer, span_id, wait=False):
                        chunk = next(chunks, None)
                    if chunk is None:
                        return
                    yield _stream_step(accumulator, chunk, span_id)
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
                buffer.wait()  # the final chunk's settle, and its alert
                buffer.flush(span_id)

        return gen()

    async def _astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        router_messages = to_router_messages(messages)
        options = self._options(kwargs)
        span_id = active_span_id.get()
        buffer = CallEventBuffer()
        with router_events_to_instrumentation(buffer, span_id):
            chunks = self._router.astream(router_messages, **options)

        async def gen() -> ChatResponseAsyncGen:
            accumulator = StreamAccumulator()
            try:
                while True:
                    with router_events_to_instrumentation(buffer, span_id, wait=False):
                        try:
                            chunk = await chunks.__anext__()
                        except StopAsyncIteration:
                            return
                    yield _stream_step(accumulator, chunk, span_id)
            finally:
                close = getattr(chunks, "aclose", None)
                if close is not None:
                    await close()
                await buffer.wait_async()
                buffer.flush(span_id)

        return gen()

    # ------------------------------------------------- public, instrumented once
    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._chat(messages, **kwargs)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return await self._achat(messages, **kwargs)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        return self._stream_chat(messages, **kwargs)

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        return await self._astream_chat(messages, **kwargs)

    # Completions reuse the private chat methods: calling the public ones would fire
    # two LLM events per call and make TokenCountingHandler count everything twice.
    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return chat_to_completion_decorator(self._chat)(prompt, **kwargs)

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        return await achat_to_completion_decorator(self._achat)(prompt, **kwargs)

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        return stream_chat_to_completion_decorator(self._stream_chat)(prompt, **kwargs)

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        return await astream_chat_to_completion_decorator(self._astream_chat)(prompt, **kwargs)

    # ---------------------------------------------------------------- tools
    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        tool_choice: Any = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """The chat() arguments for a tool-calling turn (the caller's history is copied)."""
        messages = list(chat_history or [])
        if isinstance(user_msg, str):
            messages.append(ChatMessage(role=MessageRole.USER, content=user_msg))
        elif user_msg is not None:
            messages.append(user_msg)
        chat_kwargs: dict[str, Any] = {"messages": messages, **kwargs}
        specs = tools_to_specs(tools)
        if specs:
            chat_kwargs["tools"] = specs
            chat_kwargs["parallel_tool_calls"] = allow_parallel_tool_calls
            choice = normalise_tool_choice(tool_choice, tool_required)
            if choice is not None:
                chat_kwargs["tool_choice"] = choice
        return chat_kwargs

    def _validate_chat_with_tools_response(
        self,
        response: ChatResponse,
        tools: Sequence[BaseTool],
        allow_parallel_tool_calls: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        """Keep only the first tool call when parallel calls were not allowed."""
        if not allow_parallel_tool_calls:
            seen_call = False
            kept = []
            for block in response.message.blocks:
                if isinstance(block, ToolCallBlock):
                    if seen_call:
                        continue
                    seen_call = True
                kept.append(block)
            response.message.blocks = kept
        return response

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        """The tool calls in a response; safe on mid-stream chunks with partial arguments."""
        return tool_selections(response, error_on_no_tool_call=error_on_no_tool_call)

    # ---------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Close the router if this LLM created it (a router passed in stays open)."""
        if self._owns_router:
            self._router.close()

    async def aclose(self) -> None:
        """Async `close`."""
        if self._owns_router:
            await self._router.aclose()


def _stream_step(
    accumulator: StreamAccumulator, chunk: ChatChunk, span_id: str | None
) -> ChatResponse:
    if chunk.is_final:
        dispatch_cost(chunk, span_id)
    return accumulator.add(chunk)


def _deployment_facts(
    router: Router, deployment: Deployment
) -> tuple[int | None, int | None, bool | None]:
    """(context window, max output tokens, supports tools) for one deployment; None = unknown.

    Asks the router's catalog when it has one (`router.model_info(name)` or
    `router.catalog`), else a shared `Catalog`; both let the deployment's own settings
    (`context_window=`, `capabilities=`) win over public figures.
    """
    info: Any = None
    model_info = getattr(router, "model_info", None)
    if callable(model_info):
        try:
            info = model_info(deployment.key)
        except (KeyError, LookupError, ValueError):
            info = None
    if info is None:
        catalog: Any = getattr(router, "catalog", None)
        if catalog is None or not hasattr(catalog, "for_deployment"):
            catalog = _shared_catalog()
        info = catalog.for_deployment(deployment)
    window = deployment.context_window or _fact(info, "context_window")
    max_output = _fact(info, "max_output_tokens")
    tools = (deployment.capabilities or {}).get("tools")
    if tools is None:
        capabilities = _fact(info, "capabilities")
        tools = (
            capabilities.get("tools") if isinstance(capabilities, dict) else _fact(info, "tools")
        )
    return (
        int(window) if window else None,
        int(max_output) if max_output else None,
        None if tools is None else bool(tools),
    )


@functools.cache
def _shared_catalog() -> Any:
    from ..routing.catalog import Catalog

    return Catalog()


def _fact(info: Any, name: str) -> Any:
    if info is None:
        return None
    if isinstance(info, dict):
        return info.get(name)
    return getattr(info, name, None)


def _model_name(deployments: Sequence[Deployment]) -> str:
    if len(deployments) == 1:
        return deployments[0].model
    return "llmrouter[" + ", ".join(d.key for d in deployments) + "]"
