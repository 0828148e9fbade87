"""`ChatLLMRouter`: a LangChain chat model answered by the router (fallback, retries, cost).

>>> model = ChatLLMRouter(deployments=["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"])
>>> model.invoke("Hello").response_metadata["model_name"]
'gpt-4o-mini'
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any, Self

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.language_models.model_profile import ModelProfile
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.messages.utils import count_tokens_approximately
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from pydantic import ConfigDict, Field, PrivateAttr, SecretStr, field_validator, model_validator

from .._secrets import mask_url
from ..costs.tokens import estimate_input_tokens, estimate_text_tokens
from ..router import Router, parse_deployment
from ..types import ChatRequest, Deployment
from ._config import (
    PLAIN_OPTIONS,
    deployment_identity,
    describe_strategy,
    public_deployment,
    router_arguments,
    router_options,
    secret_from_env,
)
from ._context import RemembersCallConfig, current_call_config
from ._convert import (
    UnsupportedContentError,
    chunk_to_message_chunk,
    response_to_message,
    to_router_messages,
)
from ._events import EventForwarder
from ._options import call_options
from ._profile import profile_for
from ._structured import StructuredMethod, build_structured_output
from ._tools import to_openai_tool, to_tool_choice, to_tool_spec

__all__ = ["ChatLLMRouter"]


class ChatLLMRouter(RemembersCallConfig):
    """A chat model backed by many LLM deployments, with fallback, retries and cost tracking.

    Drop-in for `ChatOpenAI` & co.: tools, structured output, streaming, usage and agents
    work as usual, and the answer carries what it cost and which deployment served it.

    >>> model = ChatLLMRouter(
    ...     deployments=["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"], temperature=0
    ... )
    >>> reply = model.invoke("Hello")
    >>> reply.response_metadata["deployment"], reply.response_metadata["cost_usd"]
    ('openai/gpt-4o-mini', 2.1e-06)

    Or wrap a router you already have: `ChatLLMRouter(router=router)`.

    Per call: `model.invoke(x, model=..., temperature=..., deployments=[...], user=...)`; the
    config's `metadata` (`user` / `user_id` and other attribution keys) and `tags` reach
    the router for budgets and cost attribution. Router events (retry, fallback, budget
    alert) arrive as custom events named `llmrouter.<type>`.

    LangChain's own `cache` and `rate_limiter` stay off unless you set them. They sit
    above the router: a LangChain cache hit never reaches the router (no cost, no ledger
    entry), and a `rate_limiter` is acquired once per LangChain call, not per retry or
    fallback, which the router throttles itself (`Deployment(rpm=..., tpm=...)`).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", populate_by_name=True)

    router: Router | None = Field(default=None, exclude=True)
    """A ready router; when given, the router options below must be left unset."""
    deployments: list[Deployment | str | dict[str, Any]] | None = Field(default=None, exclude=True)
    """Deployments (objects, `"provider/model"` strings or dicts), best first."""
    strategy: Any = Field(default=None, exclude=True)
    """Routing strategy name or object (the router's default when None)."""
    retry: Any = Field(default=None, exclude=True)
    """A `RetryPolicy`; defaults from `max_retries` when that is set."""
    budgets: list[Any] | None = Field(default=None, exclude=True)
    ledger: Any = Field(default=None, exclude=True, repr=False)  # a URL may hold a password
    router_cache: Any = Field(default=None, exclude=True, repr=False)  # a URL may hold a password
    """The router's own cache (`"memory"`, `"sqlite:///path.db"`...); see `cache` below."""
    state: Any = Field(default=None, exclude=True, repr=False)
    """Shared state across processes: `"sqlite:///state.db"`, `"redis://..."` or a store."""
    state_failure: str | None = Field(default=None, exclude=True)
    """`"closed"` (default) or `"local"`: what budgets do when the shared state is down."""
    fallback_on: Any = Field(default=None, exclude=True, repr=False)
    on_event: Any = Field(default=None, exclude=True, repr=False)
    instrument: Any = Field(default=None, exclude=True, repr=False)
    """`True` or `InstrumentationSettings(...)`: OpenTelemetry spans and metrics (`Router(instrument=)`)."""
    breaker: Any = Field(default=None, exclude=True)
    """A `BreakerPolicy`: when a failing deployment is taken out of rotation, and for how long."""
    cache_ttl_s: float | None = Field(default=None, exclude=True)
    max_queue_wait: float | None = Field(default=60.0, exclude=True)
    """Seconds a request may wait for capacity on any deployment (None: no limit)."""
    rate_limit_wait: float | None = Field(default=10.0, exclude=True)
    """Seconds to wait for one deployment's rate limit before falling back (None: no limit)."""
    strict_params: bool = Field(default=False, exclude=True)
    """Raise instead of dropping (with a warning) an option a deployment does not take."""
    prompt_cache: str | None = Field(default=None, exclude=True)
    """`"auto"`: place Anthropic prompt-cache breakpoints automatically."""
    router_kwargs: dict[str, Any] = Field(default_factory=dict, exclude=True, repr=False)
    """Any other `Router(...)` argument (clock, transport, http_client, environ...)."""
    api_key: SecretStr | None = Field(default_factory=secret_from_env)
    """Key for deployments given without one (a gateway, or a single provider); defaults to
    the LLMROUTER_API_KEY env var. A deployment's own key comes first, then this one, then
    the provider's variable (OPENAI_API_KEY...)."""

    model: str | None = None
    """Ask every deployment for this model instead of its own (per call: `model=`)."""
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: list[str] | None = Field(default=None, alias="stop_sequences")
    seed: int | None = None
    timeout: float | None = None
    """Seconds for the whole request, retries and fallbacks included."""
    max_retries: int | None = None
    """Retries per deployment before falling back to the next one."""
    streaming: bool = False
    user: str | None = None
    """Default end-user id for budgets and cost attribution."""
    reasoning: str | int | None = None
    """Reasoning for every call: "minimal" | "low" | "medium" | "high" or a token budget,
    mapped per provider (OpenAI `reasoning_effort`, Anthropic `thinking`...) and left out
    for models that do not reason. Per call: `model.invoke(x, reasoning="high")`."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra provider parameters sent as-is in the request body."""

    _router: Router | None = PrivateAttr(default=None)
    _owns_router: bool = PrivateAttr(default=False)

    # ------------------------------------------------------------------ setup
    @model_validator(mode="before")
    @classmethod
    def _route_cache_argument(cls, data: Any) -> Any:
        # `cache` is LangChain's (a BaseCache or bool); a string or store object is the
        # router's, so `ChatLLMRouter(cache="memory")` does what a router user expects.
        if isinstance(data, dict) and "cache" in data:
            value = data["cache"]
            from langchain_core.caches import BaseCache

            if value is not None and not isinstance(value, (bool, BaseCache)):
                data = dict(data)
                data["router_cache"] = data.pop("cache")
        return data

    @field_validator("deployments", mode="before")
    @classmethod
    def _parse_deployments(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, (str, Mapping, Deployment)):
            value = [value]
        return [parse_deployment(spec) for spec in value]

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _validate_router(self) -> Self:
        self._get_router()
        return self

    def _get_router(self) -> Router:
        if self._router is not None:
            return self._router
        options = router_options(self, self.model_fields_set)
        if self.router is not None:
            if options or self.router_kwargs or self.deployments:
                given = sorted(options) + (["deployments"] if self.deployments else [])
                raise ValueError(
                    "pass either router=... or router options, not both "
                    f"(got router and {given or 'router_kwargs'})"
                )
            self._router, self._owns_router = self.router, False
            return self._router
        if not self.deployments:
            raise ValueError(
                "ChatLLMRouter needs deployments=[...] (e.g. ['openai/gpt-4o-mini']) or router=..."
            )
        arguments = router_arguments(
            [parse_deployment(spec) for spec in self.deployments],
            api_key=self.api_key,
            max_retries=self.max_retries,
            options=options,
            router_kwargs=self.router_kwargs,
        )
        self._router, self._owns_router = Router(**arguments), True
        return self._router

    @property
    def llm_router(self) -> Router:
        """The router answering this model's calls (costs, health, events)."""
        return self._get_router()

    def close(self) -> None:
        """Close the router's connections if this model created it."""
        if self._owns_router and self._router is not None:
            self._router.close()

    async def aclose(self) -> None:
        """Async `close`."""
        if self._owns_router and self._router is not None:
            await self._router.aclose()

    # ------------------------------------------------------------- identity
    @property
    def _llm_type(self) -> str:
        return "llmrouter-chat"

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return True

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        return ["llmrouter_integrations", "langchain"]

    @property
    def lc_secrets(self) -> dict[str, str]:
        return {"api_key": "LLMROUTER_API_KEY"}

    @property
    def lc_attributes(self) -> dict[str, Any]:
        # Plain data only: deployments without keys (after loading, keys come from the
        # environment), and router options given as strings. Objects (a strategy instance,
        # a ledger store) cannot be serialised and are left out; so is a URL with a password.
        router = self._get_router()
        attributes: dict[str, Any] = {
            "deployments": [public_deployment(d) for d in router.deployments]
        }
        # A wrapped router's strategy is part of its configuration; otherwise only an
        # explicit choice is kept, so the router's default stays the default after loading.
        strategy = getattr(router, "_strategy_spec", None) if self.router else self.strategy
        for name, value in (
            ("strategy", strategy),
            ("ledger", self.ledger),
            ("router_cache", self.router_cache),
        ):
            if isinstance(value, str) and mask_url(value) == value:
                attributes[name] = value
        for name in PLAIN_OPTIONS:  # numbers, flags and names, as given
            if name in self.model_fields_set:
                attributes[name] = getattr(self, name)
        return attributes

    @property
    def _identifying_params(self) -> dict[str, Any]:
        router = self._get_router()
        params: dict[str, Any] = {
            "deployments": [deployment_identity(d) for d in router.deployments],
            "strategy": describe_strategy(self.strategy or getattr(router, "_strategy_spec", None)),
        }
        for name in (
            *("model", "temperature", "max_tokens", "top_p", "stop", "seed", "user"),
            "reasoning",
        ):
            value = getattr(self, name)
            if value is not None and value != []:
                params[name] = value
        if self.model_kwargs:
            params["model_kwargs"] = dict(self.model_kwargs)
        return params

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        router = self._get_router()
        providers = {d.provider for d in router.deployments}
        params = LangSmithParams(
            ls_provider=providers.pop() if len(providers) == 1 else "llmrouter",
            ls_model_name=str(kwargs.get("model") or self.model or router.deployments[0].model),
            ls_model_type="chat",
        )
        temperature = kwargs.get("temperature", self.temperature)
        if temperature is not None:
            params["ls_temperature"] = float(temperature)
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if max_tokens is not None:
            params["ls_max_tokens"] = int(max_tokens)
        stop_list = stop or kwargs.get("stop") or self.stop
        if stop_list:
            params["ls_stop"] = [stop_list] if isinstance(stop_list, str) else list(stop_list)
        return params

    def _resolve_model_profile(self) -> ModelProfile | None:
        return profile_for(self._get_router())

    # ------------------------------------------------------------ requests
    def _request_options(
        self,
        stop: list[str] | None,
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
        kwargs: dict[str, Any],
    ) -> dict[str, Any]:
        return call_options(self, stop, run_manager, kwargs)

    # --------------------------------------------------------- generation
    def _forwarder(
        self, run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None
    ) -> EventForwarder:
        config = None if run_manager else current_call_config()  # stream paths get no run
        return EventForwarder(run_manager, config, self.callbacks)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        router = self._get_router()
        options = self._request_options(stop, run_manager, kwargs)
        forwarder = self._forwarder(run_manager)
        try:
            with forwarder.listening():
                response = router.chat(to_router_messages(messages), **options)
            # Built while the call's settle may still be landing (flush waits for it).
            result = ChatResult(generations=[ChatGeneration(message=response_to_message(response))])
        finally:
            forwarder.flush()
        return result

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        router = self._get_router()
        options = self._request_options(stop, run_manager, kwargs)
        forwarder = self._forwarder(run_manager)
        try:
            with forwarder.listening():
                response = await router.achat(to_router_messages(messages), **options)
            result = ChatResult(generations=[ChatGeneration(message=response_to_message(response))])
        finally:
            await forwarder.aflush()
        return result

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        router = self._get_router()
        options = self._request_options(stop, run_manager, kwargs)
        forwarder = self._forwarder(run_manager)
        chunks = router.stream(to_router_messages(messages), **options)
        try:
            while True:
                # Listen only while the router works, never while the caller holds a chunk.
                with forwarder.listening():
                    chunk = next(chunks, None)
                forwarder.flush(wait=False)  # the final flush waits for the settle
                if chunk is None:
                    return
                if not (chunk.is_final or chunk.has_content):
                    continue
                generation = ChatGenerationChunk(message=chunk_to_message_chunk(chunk))
                if run_manager is not None:
                    run_manager.on_llm_new_token(generation.text, chunk=generation)
                yield generation
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
            forwarder.flush()

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        router = self._get_router()
        options = self._request_options(stop, run_manager, kwargs)
        forwarder = self._forwarder(run_manager)
        chunks = router.astream(to_router_messages(messages), **options)
        try:
            while True:
                with forwarder.listening():
                    try:
                        chunk = await chunks.__anext__()
                    except StopAsyncIteration:
                        break
                await forwarder.aflush(wait=False)
                if not (chunk.is_final or chunk.has_content):
                    continue
                generation = ChatGenerationChunk(message=chunk_to_message_chunk(chunk))
                if run_manager is not None:
                    await run_manager.on_llm_new_token(generation.text, chunk=generation)
                yield generation
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()
            await forwarder.aflush()

    # --------------------------------------------------- tools & structure
    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: dict[str, Any] | str | bool | None = None,
        strict: bool | None = None,
        parallel_tool_calls: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (any LangChain tool shape) and an optional `tool_choice`.

        `tool_choice`: "auto", "none", "any" / "required" / True (some tool), a tool's
        name, or an OpenAI/Anthropic dict. Fallback keeps the tools: they are translated
        for whichever provider answers.

        >>> model.bind_tools([get_weather], tool_choice="any").invoke("Weather in Paris?")
        """
        formatted = [to_openai_tool(tool, strict=strict) for tool in tools]
        choice = to_tool_choice(tool_choice)
        if choice is not None:
            names = {tool["function"]["name"] for tool in formatted}
            if choice not in ("auto", "none", "required") and choice not in names:
                raise ValueError(
                    f"tool_choice {tool_choice!r} names no bound tool; bound: {sorted(names)}"
                )
            kwargs["tool_choice"] = choice
        if parallel_tool_calls is not None:
            kwargs["parallel_tool_calls"] = parallel_tool_calls
        return super().bind(tools=formatted, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type | None = None,
        *,
        include_raw: bool = False,
        method: StructuredMethod = "function_calling",
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | Any]:
        """Answers parsed into `schema` (Pydantic class, TypedDict or JSON schema).

        `method`: "function_calling" (default; every tool-capable deployment supports it),
        "json_schema" (native structured output) or "json_mode". Fallback applies as for
        any call, so a deployment that is down is skipped.

        >>> model.with_structured_output(Joke, include_raw=True).invoke("a joke")["parsed"]
        """
        if kwargs:
            raise ValueError(f"unsupported arguments: {sorted(kwargs)}")
        return build_structured_output(
            self, schema, method=method, include_raw=include_raw, strict=strict
        )

    # ------------------------------------------------------------- tokens
    def get_num_tokens(self, text: str) -> int:
        """Estimated tokens in `text` (local, no tokenizer download; leans high)."""
        return estimate_text_tokens(text)

    def get_num_tokens_from_messages(
        self,
        messages: list[BaseMessage],
        tools: Sequence[Any] | None = None,
    ) -> int:
        """Estimated prompt tokens for `messages` (and tool schemas), as the router
        estimates them for budgets and context-window checks."""
        try:
            request = ChatRequest(
                messages=to_router_messages(messages),
                tools=[to_tool_spec(tool) for tool in tools] if tools else None,
            )
        except UnsupportedContentError:
            return count_tokens_approximately(messages)
        return estimate_input_tokens(request)
