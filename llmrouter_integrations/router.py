"""`Router` and `APILoader`: assemble the policy layers from config and expose the calls.

The layers, outermost first (each a `ChatBackend` wrapping the next):

    Ledger → Cache → Fallback (Planner: strategy + filtering) →
        per deployment: Budget → CircuitBreaker → Retry → RateLimit → HTTP

    >>> with Router(deployments=["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"]) as router:
    ...     print(router.complete("Explain quantum computing", max_tokens=200).text)
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .core.backend import ChatBackend
from .core.clock import SYSTEM_CLOCK, Clock
from .core.events import EventHandler, EventHub
from .costs.budget import Budget, BudgetManager, BudgetRefusal
from .costs.ledger import CostLedger, LedgerStore, ledger_from_url
from .costs.pricing import Pricer
from .errors import ConfigurationError, NoDeploymentAvailableError
from .layers.breaker import CircuitBreakerBackend
from .layers.budget import BudgetBackend
from .layers.cache import CacheBackend
from .layers.fallback import (
    FallbackBackend,
    FallbackPredicate,
    Planner,
    RoutePlan,
    make_fallback_predicate,
)
from .layers.ledger import LedgerBackend
from .layers.queue import QueueBackend, RequestQueue
from .layers.ratelimit import RateLimitBackend, RateLimits
from .layers.retry import RetryBackend, RetryPolicy
from .providers.endpoints import ENDPOINTS, Endpoint, get_endpoint, resolve_base_url
from .routing.catalog import Catalog, ModelInfo
from .routing.health import BreakerPolicy, DeploymentHealth, HealthTracker
from .routing.planner import RoutingPlanner
from .routing.strategies import RoutingStrategy
from .state.cache_stores import CacheStore, cache_store_from_spec
from .types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Deployment,
    Message,
    ToolSpec,
    message_from_dict,
    messages_from_input,
)

if TYPE_CHECKING:
    import httpx

    from .transport.base import Transport

__all__ = ["APILoader", "Router", "parse_deployment"]

_REQUEST_FIELDS = frozenset(
    {
        "max_tokens",
        "temperature",
        "top_p",
        "stop",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "seed",
        "user",
        "metadata",
        "tags",
        "timeout",
        "cache",
        "deployments",
        "max_cost_usd",
        "priority",
        "model",
    }
)

MessagesInput = str | Message | Sequence[Mapping[str, Any] | Message]


def parse_deployment(spec: Deployment | str | Mapping[str, Any]) -> Deployment:
    """A `Deployment` from itself, a `"provider/model"` string or a dict of fields.

    >>> parse_deployment("openrouter/anthropic/claude-sonnet-4-5").model
    'anthropic/claude-sonnet-4-5'
    """
    if isinstance(spec, Deployment):
        return spec
    if isinstance(spec, str):
        provider, sep, model = spec.partition("/")
        if not sep or not provider or not model:
            raise ConfigurationError(
                f"deployment string {spec!r} must look like 'provider/model', "
                "e.g. 'openai/gpt-4o-mini'"
            )
        return Deployment(provider=provider, model=model)
    if isinstance(spec, Mapping):
        try:
            return Deployment(**dict(spec))
        except TypeError as error:
            raise ConfigurationError(f"bad deployment fields: {error}") from None
    raise ConfigurationError(f"a deployment must be a Deployment, str or dict, not {type(spec)}")


_PLAIN_ROLES = frozenset({"system", "user", "assistant", "tool"})


def _messages(messages: MessagesInput) -> list[Message]:
    """`messages_from_input`, with plain `{"role": ..., "content": "text"}` dicts (the usual
    input) turned into messages directly rather than through the general parser."""
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


def _tool_from_input(tool: ToolSpec | Mapping[str, Any]) -> ToolSpec:
    if isinstance(tool, ToolSpec):
        return tool
    function = tool.get("function") if tool.get("type") == "function" else None
    source = function if isinstance(function, Mapping) else tool
    parameters = source.get("parameters") or source.get("input_schema")
    return ToolSpec(
        name=source["name"],
        description=source.get("description") or "",
        parameters=dict(parameters or {"type": "object", "properties": {}}),
        strict=source.get("strict"),
    )


def _tool_choice_from_input(choice: Any) -> str | None:
    """Normalise OpenAI / Anthropic / LangChain spellings to auto|none|required|<name>."""
    if choice is None or isinstance(choice, str):
        return {"any": "required", "tool": "required"}.get(choice, choice) if choice else None
    if choice is True:
        return "required"
    if isinstance(choice, Mapping):
        kind = choice.get("type")
        if kind == "function":
            return str(choice["function"]["name"])
        if kind == "tool":
            return str(choice["name"])
        if kind in ("any", "required"):
            return "required"
        if kind in ("auto", "none"):
            return str(kind)
        if "name" in choice:
            return str(choice["name"])
    raise ConfigurationError(f"unsupported tool_choice: {choice!r}")


class Router:
    """One model object over many deployments: fallback, retries, cost, events.

    >>> router = Router(deployments=["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"])
    >>> response = await router.achat([{"role": "user", "content": "hi"}], max_tokens=50)
    >>> response.text, response.cost, response.deployment
    """

    def __init__(
        self,
        deployments: Sequence[Deployment | str | Mapping[str, Any]],
        *,
        strategy: str | RoutingStrategy = "balanced",
        retry: RetryPolicy | None = None,
        breaker: BreakerPolicy | None = None,
        timeout: float | None = None,
        fallback_on: FallbackPredicate
        | type[BaseException]
        | Sequence[type[BaseException]]
        | None = None,
        budgets: Sequence[Budget] | None = None,
        ledger: str | LedgerStore | CostLedger = "memory",
        cache: str | CacheStore | None = None,
        cache_ttl_s: float | None = None,
        max_queue_wait: float | None = 60.0,
        rate_limit_wait: float | None = 10.0,
        on_event: EventHandler | None = None,
        transport: Transport | None = None,
        http_client: httpx.AsyncClient | None = None,
        clock: Clock = SYSTEM_CLOCK,
        environ: Mapping[str, str] | None = None,
        **options: Any,
    ) -> None:
        if not deployments:
            raise ConfigurationError(
                "a Router needs at least one deployment, e.g. Router(deployments=['openai/gpt-4o-mini'])"
            )
        env = os.environ if environ is None else environ
        self.clock = clock
        self.timeout = timeout
        self.retry_policy = retry or RetryPolicy()
        self.events = EventHub([on_event] if on_event is not None else [])
        self.pricer = Pricer()
        self._options = options
        self.deployments: list[Deployment] = []
        self._endpoints: dict[str, Endpoint] = {}
        self._base_urls: dict[str, str] = {}
        for spec in deployments:
            self._add_deployment(parse_deployment(spec), env)
        self._strategy_spec = strategy
        self.costs: CostLedger = ledger_from_url(ledger)
        self.budgets = BudgetManager(
            budgets or (), clock=clock, events=self.events, store=self.costs
        )
        self.limits = RateLimits(self.deployments, clock=clock, events=self.events)
        self.queue = RequestQueue(
            self.limits, clock=clock, events=self.events, max_wait=max_queue_wait
        )
        self._rate_limit_wait = rate_limit_wait
        self.cache_store: CacheStore | None = (
            cache_store_from_spec(cache, clock=clock) if cache is not None else None
        )
        self._cache_ttl_s = cache_ttl_s
        self._transport = transport if transport is not None else self._make_transport(http_client)
        self._names = [d.key for d in self.deployments]
        self.catalog = Catalog(
            prices_provider=lambda p: _endpoint_or_none(p, "prices_provider"),
            is_local=lambda p: bool(_endpoint_or_none(p, "local")),
        )
        self.health_tracker = HealthTracker(
            self._names, policy=breaker or BreakerPolicy(), clock=clock, events=self.events
        )
        self._backend = self._assemble(make_fallback_predicate(fallback_on))
        self._closed = False

    # ------------------------------------------------------------------ config
    def _add_deployment(self, deployment: Deployment, env: Mapping[str, str]) -> None:
        endpoint = get_endpoint(deployment.provider)
        name = deployment.key
        if name in self._endpoints:
            raise ConfigurationError(
                f"two deployments are named {name!r}; give one a distinct name=..."
            )
        if deployment.api_key is None and endpoint.api_key_env:
            value = env.get(endpoint.api_key_env)
            if value:
                deployment.api_key = value
                deployment.__post_init__()
        if deployment.api_key is None and endpoint.key_required:
            raise ConfigurationError(
                f"deployment {name!r} needs an API key: set {endpoint.api_key_env} or pass "
                f"Deployment(provider={deployment.provider!r}, model={deployment.model!r}, "
                "api_key=...)"
            )
        base_url = resolve_base_url(endpoint, deployment.base_url, env)
        if not base_url:
            raise ConfigurationError(
                f"deployment {name!r} needs base_url=... (the server's OpenAI-compatible URL, "
                "e.g. http://localhost:8000/v1)"
            )
        self.deployments.append(deployment)
        self._endpoints[name] = endpoint
        self._base_urls[name] = base_url

    @staticmethod
    def _make_transport(http_client: httpx.AsyncClient | None) -> Transport:
        from .transport.base import AiohttpTransport, HttpxTransport

        if http_client is not None:
            return HttpxTransport(http_client)
        return AiohttpTransport()

    def _deployment_stack(self, deployment: Deployment) -> ChatBackend:
        from .layers.http import DeploymentBackend

        name = deployment.key
        backend: ChatBackend = DeploymentBackend(
            deployment,
            endpoint=self._endpoints[name],
            transport=self._transport,
            base_url=self._base_urls[name],
            clock=self.clock,
            pricer=self.pricer,
            on_rate_limits=self.limits.update_from_headers,
        )
        backend = RateLimitBackend(
            backend,
            deployment=name,
            limits=self.limits,
            queue=self.queue,
            max_wait=self._rate_limit_wait,
        )
        backend = RetryBackend(
            backend, deployment=name, policy=self.retry_policy, clock=self.clock, events=self.events
        )
        backend = CircuitBreakerBackend(backend, deployment=name, health=self.health_tracker)
        if self.budgets.budgets:  # without budgets the layer would only cost time
            endpoint = self._endpoints[name]
            backend = BudgetBackend(
                backend,
                deployment,
                manager=self.budgets,
                pricer=self.pricer,
                prices_provider=endpoint.prices_provider,
                local=endpoint.local,
            )
        return backend

    def _make_planner(self) -> Planner:
        has_capacity = self.limits.has_capacity
        planner = RoutingPlanner(
            self.deployments,
            strategy=self._strategy_spec,
            catalog=self.catalog,
            health=self.health_tracker,
            pricer=self.pricer,
            prices_provider_of=lambda d: self._endpoints[d.key].prices_provider,
            is_local=lambda d: self._endpoints[d.key].local,
            budget_check=self.budgets.check if self.budgets.budgets else None,
            capacity_check=lambda d, tokens: has_capacity(d.key, tokens),
        )
        # Without budgets no refusal can be a budget's: the wrapper would only cost time.
        return _BudgetAwarePlanner(planner) if self.budgets.budgets else planner

    def model_info(self, name: str) -> ModelInfo:
        """What the catalog (and the deployment's overrides) say about deployment `name`:
        context window, max output, capabilities, quality and speed."""
        for deployment in self.deployments:
            if deployment.key == name:
                return self.catalog.for_deployment(deployment)
        raise KeyError(name)

    def health(self) -> dict[str, DeploymentHealth]:
        """Per deployment: circuit state, EWMA latency and TTFT, error rate, in-flight and
        queued requests, and what is left of its rate limits."""
        for name in self._names:
            snapshot = self.limits.snapshot(name)
            self.health_tracker.update_capacity(
                name,
                remaining_requests=snapshot.get("remaining_requests"),
                remaining_tokens=snapshot.get("remaining_tokens"),
                queued=self.queue.depth(name),
            )
        return self.health_tracker.snapshot()

    def _assemble(self, should_fallback: FallbackPredicate) -> ChatBackend:
        backends = {d.key: self._deployment_stack(d) for d in self.deployments}
        routed: ChatBackend = FallbackBackend(
            backends,
            planner=self._make_planner(),
            should_fallback=should_fallback,
            clock=self.clock,
            events=self.events,
        )
        routed = QueueBackend(routed, self.queue, candidate_names=self._candidate_names)
        if self.cache_store is not None:
            routed = CacheBackend(
                routed,
                self.cache_store,
                candidate_names=self._candidate_names,
                deployments=self.deployments,
                clock=self.clock,
                events=self.events,
                ttl_s=self._cache_ttl_s,
            )
        return LedgerBackend(routed, self.costs, clock=self.clock)

    def _candidate_names(self, request: ChatRequest) -> list[str]:
        """Deployments that may serve `request`, in configured order (cache key, queue)."""
        if request.deployments is None:
            return self._names
        wanted = set(request.deployments)
        return [name for name in self._names if name in wanted]

    @classmethod
    def from_env(cls, *, environ: Mapping[str, str] | None = None, **kwargs: Any) -> Router:
        """A router over every provider whose API key is set in the environment.

        >>> router = Router.from_env(strategy="priority")   # OPENAI_API_KEY, ANTHROPIC_API_KEY...
        """
        env = os.environ if environ is None else environ
        return cls(deployments=_deployments_from_env(env, None, {}), environ=env, **kwargs)

    def endpoint_of(self, name: str) -> Endpoint:
        """The endpoint row (provider facts) serving deployment `name`."""
        return self._endpoints[name]

    # ---------------------------------------------------------------- requests
    def build_request(self, messages: MessagesInput, **options: Any) -> ChatRequest:
        """The provider-neutral request for `messages` and call options."""
        fields: dict[str, Any] = {}
        extra: dict[str, Any] = dict(options.pop("extra_body", None) or {})
        for key, value in options.items():
            if key in _REQUEST_FIELDS:
                fields[key] = value
            elif value is not None:
                extra[key] = value
        if fields.get("tools"):
            fields["tools"] = [_tool_from_input(t) for t in fields["tools"]]
        if "tool_choice" in fields:
            fields["tool_choice"] = _tool_choice_from_input(fields["tool_choice"])
        if isinstance(fields.get("stop"), str):
            fields["stop"] = [fields["stop"]]
        if fields.get("deployments") is not None:
            fields["deployments"] = tuple(fields["deployments"])
            unknown = set(fields["deployments"]) - set(self._endpoints)
            if unknown:
                raise ConfigurationError(
                    f"unknown deployment(s) {sorted(unknown)}; known: {sorted(self._endpoints)}"
                )
        if fields.get("tags") is not None:
            fields["tags"] = tuple(fields["tags"])
        request = ChatRequest(messages=_messages(messages), extra_body=extra, **fields)
        timeout = request.timeout if request.timeout is not None else self.timeout
        if timeout is not None:
            request.deadline = self.clock.now() + timeout
        return request

    async def achat(self, messages: MessagesInput, **options: Any) -> ChatResponse:
        """Answer a conversation. Options: max_tokens, temperature, tools, tool_choice, ...

        >>> await router.achat([{"role": "user", "content": "hi"}], max_tokens=20)
        """
        return await self._backend.chat(self.build_request(messages, **options))

    async def acomplete(self, prompt: str, **options: Any) -> ChatResponse:
        """Answer a single prompt."""
        return await self.achat(prompt, **options)

    def astream(self, messages: MessagesInput, **options: Any) -> AsyncIterator[ChatChunk]:
        """Stream an answer; the last chunk has `is_final=True` with usage and cost."""
        return self._backend.stream(self.build_request(messages, **options))

    def chat(self, messages: MessagesInput, **options: Any) -> ChatResponse:
        """Synchronous `achat`, safe from any thread (runs on one background loop)."""
        from .core._sync import run_sync

        request = self.build_request(messages, **options)
        return run_sync(self._backend.chat(request))

    def complete(self, prompt: str, **options: Any) -> ChatResponse:
        """Synchronous `acomplete`.

        >>> router.complete("Explain quantum computing", max_tokens=200).text
        """
        return self.chat(prompt, **options)

    def stream(self, messages: MessagesInput, **options: Any) -> Iterator[ChatChunk]:
        """Synchronous `astream`."""
        from .core._sync import iterate_sync

        request = self.build_request(messages, **options)
        return iterate_sync(lambda: self._backend.stream(request))

    # --------------------------------------------------------------- lifecycle
    async def aclose(self) -> None:
        """Close connections and flush state. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._backend.aclose()
        await self._transport.aclose()
        if self.cache_store is not None:
            await self.cache_store.aclose()
        self.queue.close()
        self.costs.close()

    def close(self) -> None:
        from .core._sync import run_sync

        run_sync(self.aclose())

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Router:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        names = ", ".join(d.key for d in self.deployments)
        return f"Router(deployments=[{names}], strategy={self._strategy_spec!r})"


def _endpoint_or_none(provider: str, field: str) -> Any:
    try:
        return getattr(get_endpoint(provider), field)
    except ConfigurationError:
        return None


class _BudgetAwarePlanner:
    """When budgets are the only reason nothing can serve, say so with BudgetExceededError."""

    def __init__(self, inner: RoutingPlanner) -> None:
        self.inner = inner

    def plan(self, request: ChatRequest) -> RoutePlan:
        try:
            return self.inner.plan(request)
        except NoDeploymentAvailableError as error:
            reasons = list(error.reasons.values())
            if reasons and all(isinstance(r, BudgetRefusal) for r in reasons):
                raise reasons[0].error from None  # type: ignore[attr-defined]
            raise


def _deployments_from_env(
    env: Mapping[str, str], provider: str | None, api_keys: Mapping[str, str]
) -> list[Deployment]:
    """One deployment per provider with a key (given or in the env), each its default model."""
    candidates = ["openai", "anthropic", "openrouter", "groq"]
    if provider not in (None, "auto"):
        endpoint = get_endpoint(provider)
        key = api_keys.get(provider) or (
            env.get(endpoint.api_key_env) if endpoint.api_key_env else None
        )
        if endpoint.key_required and not key:
            raise ConfigurationError(
                f"provider {provider!r} needs an API key: pass api_keys={{'{provider}': ...}} "
                f"or set {endpoint.api_key_env}"
            )
        return [Deployment(provider=provider, model=endpoint.default_model, api_key=key)]
    found: list[Deployment] = []
    for name in candidates:
        endpoint = ENDPOINTS[name]
        key = api_keys.get(name) or (
            env.get(endpoint.api_key_env) if endpoint.api_key_env else None
        )
        if key:
            found.append(Deployment(provider=name, model=endpoint.default_model, api_key=key))
    unknown = set(api_keys) - set(ENDPOINTS)
    if unknown:
        raise ConfigurationError(f"unknown provider(s) in api_keys: {sorted(unknown)}")
    if env.get("OLLAMA_BASE_URL"):
        found.append(Deployment(provider="ollama", model=ENDPOINTS["ollama"].default_model))
    if not found:
        raise ConfigurationError(
            "no provider configured: set at least one of OPENAI_API_KEY, ANTHROPIC_API_KEY, "
            "OPENROUTER_API_KEY, GROQ_API_KEY (or OLLAMA_BASE_URL), or pass api_keys={...}"
        )
    return found


class APILoader(Router):
    """The seed's API, kept: pick providers by name or "auto" and call `complete`.

    >>> llm = APILoader(provider="auto", api_keys={"openai": "sk-..."})
    >>> llm.complete(prompt="Explain quantum computing", max_tokens=200).text
    """

    def __init__(
        self,
        provider: str = "auto",
        api_keys: Mapping[str, str] | None = None,
        strategy: Any = "balanced",
        *,
        environ: Mapping[str, str] | None = None,
        **router_kwargs: Any,
    ) -> None:
        env = os.environ if environ is None else environ
        deployments = router_kwargs.pop("deployments", None) or _deployments_from_env(
            env, provider, dict(api_keys or {})
        )
        super().__init__(deployments, strategy=strategy, environ=env, **router_kwargs)
        self.provider = provider

    def complete(self, prompt: str, **options: Any) -> ChatResponse:
        return super().complete(prompt, **options)
