"""OpenTelemetry GenAI spans and metrics, request logs and a Prometheus helper (extra `otel`).

Follows the OpenTelemetry semantic conventions for generative AI as released in semantic
conventions **v1.44.0** (schema https://opentelemetry.io/schemas/1.44.0, status
"development"; the names shipped in `opentelemetry-semantic-conventions` 0.66b2): span
`"{gen_ai.operation.name} {gen_ai.request.model}"` of kind CLIENT, `gen_ai.provider.name`,
`gen_ai.usage.cache_read.input_tokens` / `gen_ai.usage.cache_creation.input_tokens`, and the
metrics `gen_ai.client.token.usage`, `gen_ai.client.operation.duration`,
`gen_ai.client.operation.time_to_first_chunk`. The GenAI conventions have since moved to
their own repository (semantic-conventions-genai), which renames cache creation to
`gen_ai.usage.cache_write.input_tokens`; spans carry that name too, so either reader finds it.

Nothing here imports `opentelemetry` until a router is instrumented, so `import
llmrouter_integrations` stays as light with or without the extra installed.

    >>> router = Router(deployments=[...], instrument=True)          # one router
    >>> instrument_all()              # every router without instrument=, made or to be made
    >>> router = Router(deployments=[...],
    ...                 instrument=InstrumentationSettings(capture_content=True))
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .settings import SCHEMA_URL, SEMCONV_VERSION, InstrumentationSettings

if TYPE_CHECKING:
    from ..core.clock import Clock
    from ..core.events import EventHub
    from ._recorder import RouterTelemetry as RouterTelemetry

__all__ = [
    "SCHEMA_URL",
    "SEMCONV_VERSION",
    "InstrumentationSettings",
    "follow_default",
    "instrument_all",
    "make_router_telemetry",
    "resolve_instrumentation",
    "start_prometheus",
]

_lock = threading.Lock()
_default: InstrumentationSettings | None = None
# Routers made without `instrument=`, as weak references to their method that applies the
# process default: instrument_all() reaches them without keeping one alive, and a router
# that is collected leaves the set by itself.
_followers: set[weakref.WeakMethod[Callable[[InstrumentationSettings | None], None]]] = set()
# One instrument_all() applies at a time, so routers end on the last call's settings.
_applying = threading.Lock()


def instrument_all(settings: InstrumentationSettings | bool = True) -> None:
    """Instrument every router that is not given `instrument=` itself: those already made
    (from now on; requests already running finish as they started) and those made later.
    `instrument_all(False)` takes the instrumentation out of them again.

    >>> from llmrouter_integrations import instrument_all
    >>> instrument_all()                     # uses the global tracer and meter providers
    """
    global _default
    resolved = _as_settings(settings)
    if resolved is not None:
        _require_otel()
    with _applying:
        with _lock:
            _default = resolved
            apply = [ref() for ref in set(_followers)]
        for follower in apply:
            if follower is not None:
                follower(resolved)


def follow_default(
    apply: Callable[[InstrumentationSettings | None], None],
) -> InstrumentationSettings | None:
    """Register a router's bound method that `instrument_all()` calls with new settings
    (held weakly); returns the process default as it is now."""
    with _lock:
        _followers.add(weakref.WeakMethod(apply, _followers.discard))
        return _default


def resolve_instrumentation(
    instrument: InstrumentationSettings | bool | None,
) -> InstrumentationSettings | None:
    """The settings a new router uses: its own `instrument=`, else the process default."""
    if instrument is None:
        with _lock:
            resolved = _default
    else:
        resolved = _as_settings(instrument)
    if resolved is not None:
        _require_otel()
    return resolved


def _as_settings(value: InstrumentationSettings | bool) -> InstrumentationSettings | None:
    if isinstance(value, InstrumentationSettings):
        return value
    if value is True:
        return InstrumentationSettings()
    if value is False:
        return None
    from ..errors import ConfigurationError

    raise ConfigurationError(
        f"instrument= takes True, False or InstrumentationSettings(...), not {value!r}"
    )


def _require_otel() -> None:
    try:
        import opentelemetry.trace  # noqa: F401
    except ImportError:
        from ..errors import ConfigurationError

        raise ConfigurationError(
            "instrument=True needs OpenTelemetry: pip install 'llmrouter_integrations[otel]'"
        ) from None


def start_prometheus(port: int = 9464, addr: str = "127.0.0.1") -> Any:
    """Serve the router metrics for Prometheus at http://addr:port/metrics; returns the
    `MeterProvider` it installs as the global one.

    For people without an OpenTelemetry collector. Needs `opentelemetry-sdk`,
    `opentelemetry-exporter-prometheus` and `prometheus-client` (the `prometheus` extra).
    If a global SDK `MeterProvider` is already set, add
    `opentelemetry.exporter.prometheus.PrometheusMetricReader()` to it instead.

    >>> from llmrouter_integrations.telemetry import start_prometheus
    >>> start_prometheus(9464)
    >>> router = Router(deployments=[...], instrument=True)
    """
    from ..errors import ConfigurationError

    try:
        from opentelemetry import metrics
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider
        from prometheus_client import start_http_server
    except ImportError:
        raise ConfigurationError(
            "start_prometheus needs: pip install 'llmrouter_integrations[prometheus]'"
        ) from None
    current = metrics.get_meter_provider()
    if isinstance(current, MeterProvider):
        raise ConfigurationError(
            "a global MeterProvider is already set: add "
            "opentelemetry.exporter.prometheus.PrometheusMetricReader() to its metric_readers "
            "and call prometheus_client.start_http_server(port) instead"
        )
    provider = MeterProvider(metric_readers=[PrometheusMetricReader()])
    metrics.set_meter_provider(provider)
    start_http_server(port, addr=addr)
    return provider


def make_router_telemetry(
    settings: InstrumentationSettings, *, clock: Clock, events: EventHub, strategy: Any
) -> RouterTelemetry:
    """One router's spans, metrics and logs (OpenTelemetry loads here, not at import)."""
    from ._recorder import RouterTelemetry

    return RouterTelemetry(settings, clock=clock, events=events, strategy=strategy)
