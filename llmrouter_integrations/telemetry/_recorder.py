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
_MAX_ALIKE = 1024


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
        self._alikes: dict[tuple[str | None, ...], _Alike] = {}
        self._unsubscribe = events.subscribe(self._on_event)

    def watch(self, router: WatchedRouter) -> None:
        """Report `router`'s circuits, budgets and rate-limit headroom as gauges (weakly held)."""
        self.metrics.routers.add(router)

    def unwatch(self, router: WatchedRouter) -> None:
        """Stop reporting `router`'s gauges (its instrumentation was taken out)."""
        self.metrics.routers.discard(router)

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
        error_kind = error_type(error) if error is not None else None
        if error_kind is not None:
            outcome = "error"
        elif answer is not None and answer.cached:
            outcome = "cache_hit"
        else:
            outcome = "success"
        alike = self._alike(
            served, request.model, answer.model if answer is not None else None, outcome, error_kind
        )
        usage = answer.usage if answer is not None and not answer.cached else None
        cost = None
        if answer is not None:
            cost = 0.0 if answer.cached else answer.cost
        if recording:
            self._annotate(
                span,
                alike,
                state,
                request,
                answer,
                error,
                served,
                cost,
                first_chunk_s,
                streamed_text,
                closed_early,
            )
        span.end()
        metrics = self.metrics
        metrics.duration.record(elapsed, alike.metric)
        if first_chunk_s is not None:
            metrics.time_to_first_chunk.record(first_chunk_s, alike.metric)
        metrics.add("llmrouter.requests", alike.requests)
        if usage is not None:
            metrics.token_usage.record(usage.input_tokens, alike.input_tokens)
            metrics.token_usage.record(usage.output_tokens, alike.output_tokens)
        if answer is not None and not answer.cached and answer.cost:
            metrics.add("llmrouter.cost.usd", alike.cost, answer.cost)
        if log.isEnabledFor(logging.INFO):
            context = span.get_span_context()
            log_request(
                {
                    "outcome": outcome,
                    "deployment": served,
                    "provider": alike.provider or None,
                    "model": alike.model or None,
                    "response_model": answer.model if answer is not None else None,
                    "input_tokens": usage.input_tokens if usage else None,
                    "output_tokens": usage.output_tokens if usage else None,
                    "cost_usd": cost,
                    "latency_s": elapsed,
                    "ttft_s": first_chunk_s,
                    "attempts": state.attempts,
                    "cached": outcome == "cache_hit",
                    "error_type": error_kind,
                    "trace_id": format(context.trace_id, "032x"),
                    "span_id": format(context.span_id, "016x"),
                }
            )

    def _annotate(
        self,
        span: Span,
        alike: _Alike,
        state: RequestState,
        request: ChatRequest,
        answer: ChatResponse | ChatChunk | None,
        error: BaseException | None,
        served: str | None,
        cost: float | None,
        first_chunk_s: float | None,
        streamed_text: list[str] | None,
        closed_early: bool,
    ) -> None:
        """Everything the request span says that was not known when it started (one
        `set_attributes`: the SDK validates and locks once per call, not per attribute)."""
        attributes = dict(alike.span)
        attributes["llmrouter.attempts"] = state.attempts
        earlier = answer.attempts if answer is not None else getattr(error, "attempts", None) or []
        attributes["llmrouter.fallback"] = len(state.tried) > 1 or any(
            a.deployment != served for a in earlier
        )
        for attempt in earlier:
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
        if answer is not None:
            if answer.id:
                attributes["gen_ai.response.id"] = answer.id
            if answer.finish_reason:
                attributes["gen_ai.response.finish_reasons"] = (answer.finish_reason,)
            attributes["llmrouter.cached"] = answer.cached
            if answer.cached:
                if answer.original_cost is not None:
                    attributes["llmrouter.saved_usd"] = answer.original_cost
            else:
                attributes.update(usage_attributes(answer.usage))
            if cost is not None:
                attributes["llmrouter.cost_usd"] = cost
            if self.capture_content:
                message = answer.message if isinstance(answer, ChatResponse) else None
                text = "".join(streamed_text or ())
                attributes["gen_ai.output.messages"] = self.scrub(
                    output_messages(message, text, answer.finish_reason)
                )
        if closed_early:
            attributes["llmrouter.stream.closed_early"] = True
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, self.describe_error(error)))
        if alike.model and alike.model != request.model:
            span.update_name(f"{OPERATION} {alike.model}")
        span.set_attributes(attributes)

    def _alike(
        self,
        served: str | None,
        requested: str | None,
        response_model: str | None,
        outcome: str,
        error_kind: str | None,
    ) -> _Alike:
        """The attribute sets shared by every request served alike, built once: the SDK
        copies what it keeps, so one frozen dict serves every record."""
        key = (served, requested, response_model, outcome, error_kind)
        alike = self._alikes.get(key)
        if alike is None:
            if len(self._alikes) >= _MAX_ALIKE:  # odd response models must not grow it forever
                self._alikes.clear()
            provider, model = self.models.get(served or "", ("", ""))
            alike = _Alike(
                provider,
                requested or model,
                served,
                response_model,
                outcome,
                error_kind,
                self.servers.get(served or "", {}),
            )
            self._alikes[key] = alike
        return alike


class _Alike:
    """Span and metric attributes of requests with the same deployment, models and outcome."""

    __slots__ = (
        "cost",
        "input_tokens",
        "metric",
        "model",
        "output_tokens",
        "provider",
        "requests",
        "span",
    )

    def __init__(
        self,
        provider: str,
        model: str,
        served: str | None,
        response_model: str | None,
        outcome: str,
        error_kind: str | None,
        server: dict[str, Any],
    ) -> None:
        self.provider = provider
        self.model = model
        metric: dict[str, Any] = {"gen_ai.operation.name": OPERATION}
        span: dict[str, Any] = {}
        if provider:
            metric["gen_ai.provider.name"] = span["gen_ai.provider.name"] = provider
        if model:
            metric["gen_ai.request.model"] = span["gen_ai.request.model"] = model
        if served:
            metric["llmrouter.deployment"] = span["llmrouter.deployment"] = served
            span.update(server)
        if response_model:
            metric["gen_ai.response.model"] = span["gen_ai.response.model"] = response_model
        if error_kind:
            metric["error.type"] = span["error.type"] = error_kind
        self.metric = metric
        self.span = span
        self.input_tokens = {**metric, "gen_ai.token.type": "input"}
        self.output_tokens = {**metric, "gen_ai.token.type": "output"}
        requests: tuple[tuple[str, Any], ...] = (("llmrouter.outcome", outcome),)
        if served:
            requests += (("llmrouter.deployment", served),)
        if error_kind:
            requests += (("error.type", error_kind),)
        self.requests = requests
        self.cost = (
            ("llmrouter.deployment", served or ""),
            ("gen_ai.provider.name", provider),
            ("gen_ai.request.model", model),
        )
