"""Config -> the layer stack: deployments, endpoints, stores and the layers in their order.

The stack, outermost first (each layer a `ChatBackend` wrapping the next):

    Ledger → Cache → Queue → Fallback (planner: filters + strategy) →
        per deployment: Params → Budget → CircuitBreaker → Retry → RateLimit → HTTP

With instrumentation, a request span wraps the whole stack and an attempt span sits just
above RateLimit (`set_instrumentation` adds or removes both on a built stack). The queue,
rate-limit and HTTP layers talk through the request's `admission.CallAdmission`.

    >>> stack = build_stack(["openai/gpt-4o-mini"], environ={"OPENAI_API_KEY": "sk-..."})
    >>> response = await stack.backend.chat(request)
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from .admission.limits import RateLimits
from .admission.queue import RequestQueue
from .core.backend import ChatBackend
from .core.clock import SYSTEM_CLOCK, Clock
from .core.events import EventHub, RouterEvent
from .costs.budget import Budget, BudgetManager
from .costs.ledger import CostLedger, LedgerStore, ledger_from_url
from .costs.pricing import Pricer
from .errors import ConfigurationError
from .layers.breaker import CircuitBreakerBackend
from .layers.budget import BudgetBackend
from .layers.cache import CacheBackend
from .layers.fallback import FallbackBackend, make_fallback_predicate
from .layers.ledger import LedgerBackend
from .layers.params import ParamsBackend
from .layers.queue import QueueBackend
from .layers.ratelimit import RateLimitBackend
from .layers.retry import RetryBackend, RetryPolicy
from .providers.endpoints import ENDPOINTS, Endpoint, get_endpoint, resolve_base_url
from .providers.fitting import reasons_by_name
from .routing.affinity import PrefixAffinity
from .routing.catalog import Catalog
from .routing.health import BreakerPolicy, HealthTracker
from .routing.planner import BudgetAwarePlanner, Planner, RoutingPlanner
from .routing.strategies import RoutingStrategy
from .state.cache import CacheStore
from .state.cache_memory import MemoryCacheStore
from .state.guard import StateGuard
from .state.shared import SharedState
from .state.stores import cache_store_from_spec, shared_state_from_spec
from .types import ChatRequest, Deployment

if TYPE_CHECKING:
    import httpx

    from .admission.store_trip import StoreTrip
    from .layers.shared_flights import SharedFlights
    from .state.settler import Settler
    from .transport.base import Transport

__all__ = ["Instrumentation", "Stack", "build_stack", "deployments_from_env", "parse_deployment"]

DeploymentSpec = Deployment | str | Mapping[str, Any]


def parse_deployment(spec: DeploymentSpec) -> Deployment:
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


def deployments_from_env(
    env: Mapping[str, str], provider: str | None = None, api_keys: Mapping[str, str] | None = None
) -> list[Deployment]:
    """One deployment per provider with a key (given or in the env), each its default model.

    >>> [d.key for d in deployments_from_env({"GROQ_API_KEY": "gsk-..."})]
    ['groq/openai/gpt-oss-20b']
    """
    api_keys = api_keys or {}
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


class Instrumentation(Protocol):
    """Adds the telemetry layers (`telemetry/_layers.py`): one around the whole stack, one
    per deployment between its retry layer and its rate limiter (one span per upstream try)."""

    def request_layer(self, inner: ChatBackend) -> ChatBackend: ...

    def attempt_layer(
        self, inner: ChatBackend, deployment: Deployment, base_url: str
    ) -> ChatBackend: ...


@dataclass
class Stack:
    """Everything a `Router` is built from: its deployments, stores, trackers and the
    outermost layer (`backend`) of the assembled stack."""

    deployments: list[Deployment]
    endpoints: dict[str, Endpoint]
    base_urls: dict[str, str]
    costs: CostLedger
    budgets: BudgetManager
    limits: RateLimits
    queue: RequestQueue
    cache_store: CacheStore | None
    transport: Transport
    catalog: Catalog
    health_tracker: HealthTracker
    pricer: Pricer
    affinity: PrefixAffinity | None = None  # which deployment served a long prefix lately
    state: SharedState | None = None
    state_guard: StateGuard | None = None
    owns_state: bool = False  # made here from a URL, so the router closes it
    trip: StoreTrip | None = None  # one store trip per call (state=), for the layers
    settler: Settler | None = None  # the trip after each call, off the caller's path
    backend: ChatBackend = field(init=False)  # the outermost layer, set once the parts exist
    # The outermost layer without telemetry, and per deployment its retry layer with what
    # that wraps without telemetry: where `set_instrumentation` puts its layers.
    plain_backend: ChatBackend = field(init=False)
    retry_layers: dict[str, tuple[RetryBackend, ChatBackend]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [d.key for d in self.deployments]

    def candidate_names(self, request: ChatRequest) -> list[str]:
        """Deployments that may serve `request`, in configured order (cache key, queue)."""
        names = self.names
        if request.deployments is None:
            return names
        wanted = set(request.deployments)
        return [name for name in names if name in wanted]


def _configured(
    spec: DeploymentSpec, env: Mapping[str, str], taken: Mapping[str, Endpoint]
) -> tuple[Deployment, Endpoint, str]:
    """The router's own copy of one deployment (the caller's object is never changed), with
    its key from the environment if it has none, its endpoint row and its base URL."""
    given = parse_deployment(spec)
    endpoint = get_endpoint(given.provider)
    name = given.key
    if name in taken:
        raise ConfigurationError(
            f"two deployments are named {name!r}; give one a distinct name=..."
        )
    api_key = given.api_key
    if api_key is None and endpoint.api_key_env:
        api_key = env.get(endpoint.api_key_env) or None
    deployment = dataclasses.replace(given, api_key=api_key)
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
    return deployment, endpoint, base_url


def _make_transport(http_client: httpx.AsyncClient | None) -> Transport:
    if http_client is not None:
        from .transport.httpx import HttpxTransport

        return HttpxTransport(http_client)
    from .transport.aiohttp import AiohttpTransport

    return AiohttpTransport()


def _endpoint_or_none(provider: str, field: str) -> Any:
    try:
        return getattr(get_endpoint(provider), field)
    except ConfigurationError:
        return None


def _state_guard(state: SharedState, clock: Clock, events: EventHub) -> StateGuard:
    """The router's door to its shared state; outages and recoveries become "state" events."""

    def changed(available: bool, reason: str) -> None:
        data: dict[str, Any] = {"available": available, "backend": state.backend}
        if reason:
            data["reason"] = reason
        events.emit(RouterEvent(type="state", deployment=None, data=data, time=clock.wall()))

    return StateGuard(state, clock=clock, on_change=changed)


def _shared_flights(guard: StateGuard | None, cache: CacheStore) -> SharedFlights | None:
    """Single-flight across processes, when they share the state and the cache both."""
    if guard is None or isinstance(cache, MemoryCacheStore):
        return None
    from .layers.shared_flights import SharedFlights

    return SharedFlights(guard)


def build_stack(
    deployments: Sequence[DeploymentSpec],
    *,
    strategy: str | RoutingStrategy = "balanced",
    retry: RetryPolicy | None = None,
    breaker: BreakerPolicy | None = None,
    fallback_on: Any = None,
    budgets: Sequence[Budget] | None = None,
    ledger: str | LedgerStore | CostLedger = "memory",
    cache: str | CacheStore | None = None,
    cache_ttl_s: float | None = None,
    max_queue_wait: float | None = 60.0,
    rate_limit_wait: float | None = 10.0,
    state: str | SharedState | None = None,
    state_failure: Literal["closed", "local"] = "closed",
    events: EventHub | None = None,
    transport: Transport | None = None,
    http_client: httpx.AsyncClient | None = None,
    clock: Clock = SYSTEM_CLOCK,
    environ: Mapping[str, str] | None = None,
    instrumentation: Instrumentation | None = None,
    strict_params: bool = False,
    prompt_cache: str | None = None,
) -> Stack:
    """Build every part a Router needs from its config, and the layers in stack order."""
    if not deployments:
        raise ConfigurationError(
            "a Router needs at least one deployment, e.g. Router(deployments=['openai/gpt-4o-mini'])"
        )
    env = os.environ if environ is None else environ
    events = events if events is not None else EventHub([])
    endpoints: dict[str, Endpoint] = {}
    base_urls: dict[str, str] = {}
    configured: list[Deployment] = []
    for spec in deployments:
        deployment, endpoint, base_url = _configured(spec, env, endpoints)
        configured.append(deployment)
        endpoints[deployment.key] = endpoint
        base_urls[deployment.key] = base_url
    costs = ledger_from_url(ledger)
    shared = shared_state_from_spec(state)
    guard = _state_guard(shared, clock, events) if shared is not None else None
    shared_budgets = None
    settler = None
    if guard is not None:
        from .state.settler import Settler

        settler = Settler(guard)
    if guard is not None and budgets:
        from .costs.budget_shared import SharedBudgets

        lease_s = float(getattr(shared, "lease_s", 300.0))
        shared_budgets = SharedBudgets(guard, lease_s=lease_s, settler=settler)
    limits = RateLimits(configured, clock=clock, events=events)
    stack = Stack(
        deployments=configured,
        endpoints=endpoints,
        base_urls=base_urls,
        costs=costs,
        budgets=BudgetManager(
            budgets or (),
            clock=clock,
            events=events,
            store=costs,
            shared=shared_budgets,
            state_failure=state_failure,
        ),
        limits=limits,
        queue=RequestQueue(limits, clock=clock, events=events, max_wait=max_queue_wait),
        cache_store=cache_store_from_spec(cache, clock=clock) if cache is not None else None,
        transport=transport if transport is not None else _make_transport(http_client),
        catalog=Catalog(
            prices_provider=lambda p: _endpoint_or_none(p, "prices_provider"),
            is_local=lambda p: bool(_endpoint_or_none(p, "local")),
        ),
        health_tracker=HealthTracker(
            [d.key for d in configured],
            policy=breaker or BreakerPolicy(),
            clock=clock,
            events=events,
        ),
        pricer=Pricer(),
        affinity=PrefixAffinity(clock),
        state=shared,
        state_guard=guard,
        settler=settler,
        owns_state=isinstance(state, str),
    )
    if guard is not None:
        from .admission.shared_rates import SharedRates
        from .admission.store_trip import StoreTrip
        from .routing.shared_health import SharedCircuits

        circuits = stack.health_tracker.shared = SharedCircuits(guard)
        limits.shared = SharedRates(guard, settler=settler)
        stack.trip = StoreTrip(guard, limits, probe_lease_s=circuits.probe_lease_s, settler=settler)
    retry_policy = retry or RetryPolicy()
    if prompt_cache not in (None, "auto"):
        raise ConfigurationError(f"prompt_cache must be None or 'auto', got {prompt_cache!r}")
    per_deployment = {
        d.key: ParamsBackend(
            _deployment_stack(stack, d, retry_policy, rate_limit_wait, clock, events),
            d,
            endpoint=stack.endpoints[d.key],
            reasons=_reasons(stack.catalog, d),
            strict=strict_params,
            prompt_cache=prompt_cache,
            events=events,
            affinity=stack.affinity,
        )
        for d in configured
    }
    routed: ChatBackend = FallbackBackend(
        per_deployment,
        planner=_make_planner(stack, strategy),
        should_fallback=make_fallback_predicate(fallback_on),
        clock=clock,
        events=events,
    )
    routed = QueueBackend(routed, stack.queue, candidate_names=stack.candidate_names)
    if stack.cache_store is not None:
        routed = CacheBackend(
            routed,
            stack.cache_store,
            candidate_names=stack.candidate_names,
            deployments=configured,
            clock=clock,
            events=events,
            ttl_s=cache_ttl_s,
            flights=_shared_flights(guard, stack.cache_store),
        )
    stack.plain_backend = LedgerBackend(routed, costs, clock=clock)
    set_instrumentation(stack, instrumentation)
    return stack


def set_instrumentation(stack: Stack, instrumentation: Instrumentation | None) -> None:
    """Put `instrumentation`'s layers into a built stack (None: take them out): the request
    span outermost, an attempt span under each retry layer. Requests already running
    finish on the layers they started with; `stack.backend` is the new outermost layer.

    >>> set_instrumentation(stack, telemetry)       # what instrument_all() does to a router
    """
    for deployment in stack.deployments:
        retry, plain = stack.retry_layers[deployment.key]
        retry.inner = (
            plain
            if instrumentation is None
            else instrumentation.attempt_layer(plain, deployment, stack.base_urls[deployment.key])
        )
    backend = stack.plain_backend
    if instrumentation is not None:  # outermost: the request span covers every layer
        backend = instrumentation.request_layer(backend)
    stack.backend = backend


def _reasons(catalog: Catalog, deployment: Deployment) -> bool:
    """Whether a deployment's model reasons: as its capabilities say, else as the catalog or
    the model's name does (the catalog misses some, e.g. deepseek-reasoner)."""
    explicit = (deployment.capabilities or {}).get("reasoning")
    if explicit is not None:
        return bool(explicit)
    return catalog.for_deployment(deployment).reasoning or reasons_by_name(deployment.model)


def _deployment_stack(
    stack: Stack,
    deployment: Deployment,
    retry: RetryPolicy,
    rate_limit_wait: float | None,
    clock: Clock,
    events: EventHub,
) -> ChatBackend:
    """Budget → CircuitBreaker → Retry → RateLimit → HTTP, for one deployment."""
    from .layers.http import DeploymentBackend

    name = deployment.key
    endpoint = stack.endpoints[name]
    backend: ChatBackend = DeploymentBackend(
        deployment,
        endpoint=endpoint,
        transport=stack.transport,
        base_url=stack.base_urls[name],
        clock=clock,
        pricer=stack.pricer,
        on_rate_limits=stack.limits.update_from_headers,
    )
    backend = RateLimitBackend(
        backend,
        deployment=name,
        limits=stack.limits,
        queue=stack.queue,
        max_wait=rate_limit_wait,
    )
    retry_layer = RetryBackend(backend, deployment=name, policy=retry, clock=clock, events=events)
    stack.retry_layers[name] = (retry_layer, backend)  # attempt spans go between these two
    # The outermost per-deployment layer with shared state makes the call's store trip:
    # the budget layer for a call a budget covers, else the breaker.
    backend = CircuitBreakerBackend(
        retry_layer, deployment=name, health=stack.health_tracker, trip=stack.trip
    )
    if stack.budgets.budgets:  # without budgets the layer would only cost time
        backend = BudgetBackend(
            backend,
            deployment,
            manager=stack.budgets,
            pricer=stack.pricer,
            prices_provider=endpoint.prices_provider,
            local=endpoint.local,
            max_output_tokens=stack.catalog.for_deployment(deployment).max_output_tokens,
            trip=stack.trip,
        )
    return backend


def _make_planner(stack: Stack, strategy: str | RoutingStrategy) -> Planner:
    has_capacity = stack.limits.has_capacity
    endpoints = stack.endpoints
    budgets = stack.budgets
    planner = RoutingPlanner(
        stack.deployments,
        strategy=strategy,
        catalog=stack.catalog,
        health=stack.health_tracker,
        pricer=stack.pricer,
        prices_provider_of=lambda d: endpoints[d.key].prices_provider,
        is_local=lambda d: endpoints[d.key].local,
        budget_check=budgets.check if budgets.budgets else None,
        capacity_check=lambda d, tokens: has_capacity(d.key, tokens),
        affinity=stack.affinity,
    )
    # Without budgets no refusal can be a budget's: the wrapper would only cost time.
    return BudgetAwarePlanner(planner) if budgets.budgets else planner
