"""The router's OpenTelemetry instruments: GenAI histograms, router counters and gauges.

One `Metrics` per meter provider, shared by every router reporting to it. Counters are
kept as plain sums and reported through asynchronous (observable) instruments, so a
request pays a dictionary update instead of an SDK measurement per counter.

>>> metrics = metrics_for(None)          # the global meter provider
>>> metrics.add("llmrouter.retries", (("llmrouter.deployment", "openai/gpt-4o-mini"),))
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from .settings import SCHEMA_URL

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Observation

__all__ = ["COUNTERS", "Metrics", "WatchedRouter", "metrics_for"]


class WatchedRouter(Protocol):
    """What the gauges read from a `Router` (typed structurally: no import of the router)."""

    budgets: Any

    def health(self) -> Mapping[str, Any]: ...


Key = tuple[tuple[str, Any], ...]

# Bucket boundaries the conventions advise for token counts and durations.
TOKEN_BUCKETS = [4.0**n for n in range(14)]
DURATION_BUCKETS = [0.01 * 2**n for n in range(14)]

# name -> (unit, description) of the cumulative router counters.
COUNTERS = {
    "llmrouter.requests": ("{request}", "Requests by outcome (success, error, cache_hit)."),
    "llmrouter.cost.usd": ("{USD}", "Money spent, from usage and prices (USD)."),
    "llmrouter.retries": ("{retry}", "Retries of one deployment after a retryable error."),
    "llmrouter.fallbacks": ("{fallback}", "Moves from a failed deployment to the next."),
    "llmrouter.cache.hits": ("{hit}", "Answers served from the router's response cache."),
}
_CIRCUIT_CODES = {"closed": 0, "half_open": 1, "open": 2}


class Metrics:
    """The instruments of one meter provider and the routers whose gauges it reports."""

    def __init__(self, meter_provider: Any) -> None:
        from opentelemetry import metrics

        from .._version import __version__

        meter = metrics.get_meter(
            "llmrouter_integrations", __version__, meter_provider, schema_url=SCHEMA_URL
        )
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.time_to_first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time to receive the first chunk of a streaming response.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.queue_wait = meter.create_histogram(
            "llmrouter.queue.wait",
            unit="s",
            description="Time a request waited for deployment capacity.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._lock = threading.Lock()
        self._sums: dict[str, dict[Key, float]] = {name: {} for name in COUNTERS}
        self.routers: weakref.WeakSet[WatchedRouter] = weakref.WeakSet()
        for name, (unit, description) in COUNTERS.items():
            meter.create_observable_counter(
                name, callbacks=[self._observer(name)], unit=unit, description=description
            )
        meter.create_observable_gauge(
            "llmrouter.circuit.state",
            callbacks=[self._circuits],
            unit="1",
            description="Circuit breaker per deployment: 0 closed, 1 half open, 2 open.",
        )
        meter.create_observable_gauge(
            "llmrouter.budget.remaining_usd",
            callbacks=[self._budgets],
            unit="{USD}",
            description="What is left of each budget in USD (limit - spent - reserved).",
        )
        meter.create_observable_gauge(
            "llmrouter.ratelimit.remaining_requests",
            callbacks=[self._remaining("remaining_requests")],
            unit="{request}",
            description="Requests left in the deployment's current rate-limit window.",
        )
        meter.create_observable_gauge(
            "llmrouter.ratelimit.remaining_tokens",
            callbacks=[self._remaining("remaining_tokens")],
            unit="{token}",
            description="Tokens left in the deployment's current rate-limit window.",
        )

    def add(self, name: str, key: Key, amount: float = 1) -> None:
        """Add to a cumulative counter (thread-safe; cheap enough for every request)."""
        sums = self._sums[name]
        with self._lock:
            sums[key] = sums.get(key, 0) + amount

    # ------------------------------------------------------------ callbacks
    def _observer(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        from opentelemetry.metrics import Observation

        def observe(options: CallbackOptions) -> Iterable[Observation]:
            with self._lock:
                items = list(self._sums[name].items())
            return [Observation(value, dict(key)) for key, value in items]

        return observe

    def _circuits(self, options: CallbackOptions) -> Iterable[Observation]:
        from opentelemetry.metrics import Observation

        observations = []
        for router in list(self.routers):
            for name, health in router.health().items():
                code = _CIRCUIT_CODES.get(health.circuit, 2)
                observations.append(Observation(code, {"llmrouter.deployment": name}))
        return observations

    def _budgets(self, options: CallbackOptions) -> Iterable[Observation]:
        from opentelemetry.metrics import Observation

        observations = []
        for router in list(self.routers):
            for status in router.budgets.status():
                left = status.limit_usd - status.spent_usd - status.reserved_usd
                attributes = {
                    "llmrouter.budget": status.budget,
                    "llmrouter.budget.scope": status.scope_value,
                }
                observations.append(Observation(max(0.0, left), attributes))
        return observations

    def _remaining(self, field: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        from opentelemetry.metrics import Observation

        def observe(options: CallbackOptions) -> Iterable[Observation]:
            observations = []
            for router in list(self.routers):
                for name, health in router.health().items():
                    value = getattr(health, field)
                    if value is not None:
                        observations.append(Observation(value, {"llmrouter.deployment": name}))
            return observations

        return observe


_registry_lock = threading.Lock()
_registry: dict[int, tuple[Any, Metrics]] = {}


def metrics_for(meter_provider: Any) -> Metrics:
    """The shared `Metrics` of `meter_provider` (None: the global one), made on first use."""
    with _registry_lock:
        entry = _registry.get(id(meter_provider))
        if entry is None or entry[0] is not meter_provider:
            entry = (meter_provider, Metrics(meter_provider))
            _registry[id(meter_provider)] = entry
        return entry[1]
