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
    >>> instrument_all()                                             # every router
    >>> router = Router(deployments=[...],
    ...                 instrument=InstrumentationSettings(capture_content=True))
"""

from __future__ import annotations

import os
import threading
from typing import Any

__all__ = [
    "SCHEMA_URL",
    "SEMCONV_VERSION",
    "InstrumentationSettings",
    "instrument_all",
    "resolve_instrumentation",
    "start_prometheus",
]

SEMCONV_VERSION = "1.44.0"
SCHEMA_URL = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"
CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"


class InstrumentationSettings:
    """How a router reports itself to OpenTelemetry; `instrument=True` means the defaults.

    `capture_content` records prompts and answers on spans (`gen_ai.input.messages`,
    `gen_ai.output.messages`): the conventions' opt-in, off unless set here or
    `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`. Providers default to the
    global ones (`opentelemetry.trace.set_tracer_provider`, `metrics.set_meter_provider`).

    >>> Router(deployments=[...], instrument=InstrumentationSettings(capture_content=True))
    """

    # A plain class, not a dataclass: building one at import costs more than the module.
    __slots__ = ("capture_content", "meter_provider", "tracer_provider")

    def __init__(
        self,
        *,
        capture_content: bool | None = None,
        tracer_provider: Any = None,
        meter_provider: Any = None,
    ) -> None:
        self.capture_content = capture_content
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider

    def __repr__(self) -> str:
        return (
            f"InstrumentationSettings(capture_content={self.capture_content!r}, "
            f"tracer_provider={self.tracer_provider!r}, meter_provider={self.meter_provider!r})"
        )

    def content_enabled(self) -> bool:
        """Whether message content goes on spans (the setting, else the environment)."""
        if self.capture_content is not None:
            return self.capture_content
        return os.environ.get(CONTENT_ENV, "").strip().lower() in ("1", "true", "yes")


_lock = threading.Lock()
_default: InstrumentationSettings | None = None


def instrument_all(settings: InstrumentationSettings | bool = True) -> None:
    """Instrument every router made from now on that is not given `instrument=` itself.

    Call it at startup, before making routers: a router's layers are assembled when it is
    made, so routers made earlier keep what they had. `instrument_all(False)` turns it off.

    >>> from llmrouter_integrations import instrument_all
    >>> instrument_all()                     # uses the global tracer and meter providers
    """
    global _default
    resolved = _as_settings(settings)
    if resolved is not None:
        _require_otel()
    with _lock:
        _default = resolved


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
