"""What an instrumented router reports: span attributes, metrics and log records.

`RouterTelemetry` holds one router's tracer, the shared metrics of its meter provider and
the facts it needs (deployment models, keys to redact); it builds the layers in
`_layers.py` and decides what they record when a request or attempt ends.

    >>> telemetry = RouterTelemetry(InstrumentationSettings(), clock=clock, events=hub,
    ...                             strategy="balanced")
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from ..core.backend import ChatBackend
from ..errors import BudgetExceededError, CircuitOpenError
from ..types import ChatChunk, ChatRequest, ChatResponse, Deployment
from ._attributes import (
    OPERATION,
    error_type,
    input_messages,
    output_messages,
    provider_name,
    request_attributes,
    response_attributes,
    server_attributes,
    usage_attributes,
)
from ._layers import STATE_KEY, AttemptSpanBackend, RequestSpanBackend, RequestState
from ._logs import log, log_request
from ._metrics import metrics_for
from .settings import SCHEMA_URL, InstrumentationSettings

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from ..core.clock import Clock
    from ..core.events import EventHub, RouterEvent
    from ._metrics import WatchedRouter

__all__ = ["RouterTelemetry"]

_MAX_DESCRIPTION = 500


class RouterTelemetry:
    """One router's tracer, shared metrics, deployment facts and redaction."""

    def __init__(
        self,
        settings: InstrumentationSettings,
        *,
        clock: Clock,
        events: EventHub,
        strategy: Any,
    ) -> None:
        from .._version import __version__

        self.tracer = trace.get_tracer(
            "llmrouter_integrations",
            __version__,
            settings.tracer_provider,
            schema_url=SCHEMA_URL,
        )
        self.metrics = metrics_for(settings.meter_provider)
        self.capture_content = settings.content_enabled()
        self.clock = clock
        self.strategy = strategy if isinstance(strategy, str) else type(strategy).__name__
        # Filled as the stack is assembled: one attempt layer per deployment.
        self.models: dict[str, tuple[str, str]] = {}
        self.servers: dict[str, dict[str, Any]] = {}
        self._secrets: list[str] = []
        self._unsubscribe = events.subscribe(self._on_event)

    def watch(self, router: WatchedRouter) -> None:
        """Report `router`'s circuits, budgets and rate-limit headroom as gauges (weakly held)."""
        self.metrics.routers.add(router)

    def close(self) -> None:
        """Stop listening to the router's events."""
        self._unsubscribe()

    def request_layer(self, inner: ChatBackend) -> ChatBackend:
        return RequestSpanBackend(inner, self)

    def attempt_layer(
        self, inner: ChatBackend, deployment: Deployment, base_url: str
    ) -> ChatBackend:
        self.models[deployment.key] = (provider_name(deployment.provider), deployment.model)
        self.servers[deployment.key] = server_attributes(base_url)
        key = deployment.api_key
        if key is not None and not isinstance(key, str):
            self._secrets.append(key.get_secret_value())
        return AttemptSpanBackend(inner, self, deployment, base_url)

    def scrub(self, text: str) -> str:
        """`text` with every deployment key replaced (errors are scrubbed already; belt and braces)."""
        for secret in self._secrets:
            if secret and secret in text:
                text = text.replace(secret, "[redacted]")
        return text

    def describe_error(self, error: BaseException) -> str:
        return self.scrub(str(error))[:_MAX_DESCRIPTION]

    # ------------------------------------------------------------ router events
    def _on_event(self, event: RouterEvent) -> None:
        kind = event.type
        metrics = self.metrics
        if kind == "retry":
            metrics.add("llmrouter.retries", (("llmrouter.deployment", event.deployment),))
        elif kind == "fallback":
            key = (
                ("llmrouter.deployment", event.deployment),
                ("llmrouter.fallback.to", event.data.get("to")),
            )
            metrics.add("llmrouter.fallbacks", key)
        elif kind == "cache_hit":
            metrics.add(
                "llmrouter.cache.hits", (("llmrouter.stream", bool(event.data.get("stream"))),)
            )
        elif kind == "queued" and event.data.get("waited_s") is not None:
            attributes = {
                "llmrouter.wait.reason": "queue",
                "llmrouter.queue.outcome": event.data["state"],
            }
            metrics.queue_wait.record(event.data["waited_s"], attributes)
        elif kind == "rate_limited" and event.data.get("waited_s") is not None:
            attributes = {
                "llmrouter.wait.reason": "rate_limit",
                "llmrouter.deployment": event.deployment or "",
            }
            metrics.queue_wait.record(event.data["waited_s"], attributes)

    # ------------------------------------------------------------ request end
    def start_request(self, request: ChatRequest, *, stream: bool) -> tuple[Span, Any]:
        attributes = request_attributes(request, stream=stream)
        attributes["llmrouter.strategy"] = self.strategy
        name = f"{OPERATION} {request.model}" if request.model else OPERATION
        span = self.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
        if self.capture_content and span.is_recording():
            span.set_attribute(
                "gen_ai.input.messages", self.scrub(input_messages(request.messages))
            )
        state = RequestState()
        ctx = otel_context.set_value(STATE_KEY, state, trace.set_span_in_context(span))
        return span, ctx

    def finish_request(
        self,
        span: Span,
        ctx: Any,
        request: ChatRequest,
        started: float,
        *,
        answer: ChatResponse | ChatChunk | None = None,
        error: BaseException | None = None,
        first_chunk_s: float | None = None,
        streamed_text: list[str] | None = None,
        closed_early: bool = False,
    ) -> None:
        """End the request span; record metrics and the log record. Never raises: a fault in
        telemetry is logged, and the request's own answer or error goes on unchanged."""
        try:
            self._finish_request(
                span,
                ctx,
                request,
                started,
                answer=answer,
                error=error,
                first_chunk_s=first_chunk_s,
                streamed_text=streamed_text,
                closed_early=closed_early,
            )
        except Exception:
            log.exception("llmrouter telemetry failed to record a request")

    def _finish_request(
        self,
        span: Span,
        ctx: Any,
        request: ChatRequest,
        started: float,
        *,
        answer: ChatResponse | ChatChunk | None = None,
        error: BaseException | None = None,
        first_chunk_s: float | None = None,
        streamed_text: list[str] | None = None,
        closed_early: bool = False,
    ) -> None:
        elapsed = self.clock.now() - started
        # A span the sampler dropped records nothing: skip the attribute work, keep metrics.
        recording = span.is_recording()
        state: RequestState = otel_context.get_value(STATE_KEY, ctx)  # type: ignore[assignment]
        served = (
            answer.deployment if answer is not None else (state.tried[-1] if state.tried else None)
        )
        provider, model = self.models.get(served or "", ("", request.model or ""))
        model = request.model or model
        attributes: dict[str, Any] = {"llmrouter.attempts": state.attempts}
        metric_attributes: dict[str, Any] = {"gen_ai.operation.name": OPERATION}
        if provider:
            attributes["gen_ai.provider.name"] = metric_attributes["gen_ai.provider.name"] = (
                provider
            )
        if model:
            attributes["gen_ai.request.model"] = metric_attributes["gen_ai.request.model"] = model
            if recording:
                span.update_name(f"{OPERATION} {model}")
        if served:
            attributes["llmrouter.deployment"] = metric_attributes["llmrouter.deployment"] = served
            attributes.update(self.servers.get(served, ()))
        earlier = answer.attempts if answer is not None else getattr(error, "attempts", None) or []
        attributes["llmrouter.fallback"] = len(state.tried) > 1 or any(
            a.deployment != served for a in earlier
        )
        for attempt in earlier if recording else ():
            if isinstance(attempt.error, (CircuitOpenError, BudgetExceededError)):
                span.add_event(
                    "llmrouter.deployment_skipped",
                    {
                        "llmrouter.deployment": attempt.deployment,
                        "error.type": error_type(attempt.error),
                    },
                )
        if first_chunk_s is not None:
            attributes["gen_ai.response.time_to_first_chunk"] = first_chunk_s
        outcome = "success"
        if answer is not None:
            cached = answer.cached
            attributes.update(response_attributes(answer))
            attributes["llmrouter.cached"] = cached
            if answer.model:
                metric_attributes["gen_ai.response.model"] = answer.model
            if cached:
                outcome = "cache_hit"
                attributes["llmrouter.cost_usd"] = 0.0
                if answer.original_cost is not None:
                    attributes["llmrouter.saved_usd"] = answer.original_cost
            else:
                attributes.update(usage_attributes(answer.usage))
                if answer.cost is not None:
                    attributes["llmrouter.cost_usd"] = answer.cost
            if self.capture_content and recording:
                message = answer.message if isinstance(answer, ChatResponse) else None
                text = "".join(streamed_text or ())
                attributes["gen_ai.output.messages"] = self.scrub(
                    output_messages(message, text, answer.finish_reason)
                )
        if closed_early:
            attributes["llmrouter.stream.closed_early"] = True
        error_kind = None
        if error is not None:
            outcome = "error"
            error_kind = error_type(error)
            attributes["error.type"] = metric_attributes["error.type"] = error_kind
            if recording:
                span.set_status(Status(StatusCode.ERROR, self.describe_error(error)))
        if recording:
            span.set_attributes(attributes)
        span.end()
        self._record(answer, outcome, error_kind, elapsed, first_chunk_s, metric_attributes, served)
        if log.isEnabledFor(logging.INFO):
            usage = answer.usage if answer is not None and not answer.cached else None
            log_request(
                {
                    "outcome": outcome,
                    "deployment": served,
                    "provider": provider or None,
                    "model": model or None,
                    "response_model": answer.model if answer is not None else None,
                    "input_tokens": usage.input_tokens if usage else None,
                    "output_tokens": usage.output_tokens if usage else None,
                    "cost_usd": attributes.get("llmrouter.cost_usd"),
                    "latency_s": elapsed,
                    "ttft_s": first_chunk_s,
                    "attempts": state.attempts,
                    "cached": bool(answer is not None and answer.cached),
                    "error_type": error_kind,
                    "trace_id": format(span.get_span_context().trace_id, "032x"),
                    "span_id": format(span.get_span_context().span_id, "016x"),
                }
            )

    def _record(
        self,
        answer: ChatResponse | ChatChunk | None,
        outcome: str,
        error_kind: str | None,
        elapsed: float,
        first_chunk_s: float | None,
        attributes: dict[str, Any],
        served: str | None,
    ) -> None:
        metrics = self.metrics
        metrics.duration.record(elapsed, attributes)
        if first_chunk_s is not None:
            metrics.time_to_first_chunk.record(first_chunk_s, attributes)
        key: tuple[tuple[str, Any], ...] = (("llmrouter.outcome", outcome),)
        if served:
            key += (("llmrouter.deployment", served),)
        if error_kind:
            key += (("error.type", error_kind),)
        metrics.add("llmrouter.requests", key)
        if answer is None or answer.cached:
            return
        usage = answer.usage
        if usage is not None:
            metrics.token_usage.record(
                usage.input_tokens, {**attributes, "gen_ai.token.type": "input"}
            )
            metrics.token_usage.record(
                usage.output_tokens, {**attributes, "gen_ai.token.type": "output"}
            )
        if answer.cost:
            provider, model = self.models.get(served or "", ("", ""))
            metrics.add(
                "llmrouter.cost.usd",
                (
                    ("llmrouter.deployment", served or ""),
                    ("gen_ai.provider.name", provider),
                    ("gen_ai.request.model", model),
                ),
                answer.cost,
            )
