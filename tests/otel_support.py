"""OpenTelemetry SDK in memory for tests: a span exporter, a metric reader, the settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from llmrouter_integrations import InstrumentationSettings


@dataclass
class Otel:
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    settings: InstrumentationSettings
    tracer_provider: TracerProvider

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def requests(self) -> list[ReadableSpan]:
        """The router's request spans, oldest first."""
        found = [s for s in self.finished() if s.kind == SpanKind.CLIENT]
        return sorted(found, key=lambda s: s.start_time or 0)

    def children(self, span: ReadableSpan) -> list[ReadableSpan]:
        found = [
            s
            for s in self.finished()
            if s.parent is not None and s.parent.span_id == span.context.span_id
        ]
        return sorted(found, key=lambda s: s.start_time or 0)

    def metrics(self) -> dict[str, list[Any]]:
        """Metric name -> its data points."""
        data = self.reader.get_metrics_data()
        found: dict[str, list[Any]] = {}
        if data is None:
            return found
        for resource_metrics in data.resource_metrics:
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    found.setdefault(metric.name, []).extend(metric.data.data_points)
        return found


def make_otel(**settings: Any) -> Otel:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    instrumentation = InstrumentationSettings(
        tracer_provider=tracer_provider, meter_provider=meter_provider, **settings
    )
    return Otel(exporter, reader, instrumentation, tracer_provider)
