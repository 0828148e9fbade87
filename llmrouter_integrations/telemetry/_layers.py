"""The telemetry layers: a request span around the whole stack, an attempt span per try.

`RequestSpanBackend` is the outermost layer: one CLIENT span per request (cache, queue,
fallback and retries inside it). `AttemptSpanBackend` sits between a deployment's retry
layer and its rate limiter, so every upstream try, first call, retry or fallback, is one
child span. What the spans, metrics and logs say is decided in `_recorder.py`.

    >>> backend = RequestSpanBackend(stack, telemetry)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry.trace import Status, StatusCode

from ..core.backend import ChatBackend, WrapperBackend, aclose_stream
from ..types import ChatChunk, ChatRequest, ChatResponse, Deployment
from ._attributes import error_type, provider_name, response_attributes, server_attributes
from ._logs import log, log_attempt_failure

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

    from ..core.clock import Clock

__all__ = ["STATE_KEY", "AttemptSpanBackend", "RequestSpanBackend", "RequestState"]


class RouterTelemetry(Protocol):
    """What the span layers ask of `_recorder.RouterTelemetry` (typed here, so the two
    modules do not import each other)."""

    clock: Clock
    capture_content: bool
    tracer: Tracer

    def start_request(self, request: ChatRequest, *, stream: bool) -> tuple[Span, Any]: ...

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
    ) -> None: ...

    def describe_error(self, error: BaseException) -> str: ...


STATE_KEY = otel_context.create_key("llmrouter.request")


class RequestState:
    """What one request's attempt spans tell its request span (kept in the OTel context)."""

    __slots__ = ("attempts", "tried")

    def __init__(self) -> None:
        self.attempts = 0
        self.tried: list[str] = []

    def begin(self, deployment: str) -> tuple[int, bool]:
        self.attempts += 1
        retry = deployment in self.tried
        if not retry:
            self.tried.append(deployment)
        return self.attempts, retry


class RequestSpanBackend:
    """The outermost layer when instrumented: the request's CLIENT span is current while the
    layers below run, so attempt spans (and any HTTP instrumentation) nest under it."""

    def __init__(self, inner: ChatBackend, telemetry: RouterTelemetry) -> None:
        self.inner = inner
        self.telemetry = telemetry

    async def chat(self, request: ChatRequest) -> ChatResponse:
        telemetry = self.telemetry
        span, ctx = telemetry.start_request(request, stream=False)
        started = telemetry.clock.now()
        token = otel_context.attach(ctx)
        try:
            response = await self.inner.chat(request)
        except BaseException as error:
            otel_context.detach(token)
            telemetry.finish_request(span, ctx, request, started, error=error)
            raise
        otel_context.detach(token)
        telemetry.finish_request(span, ctx, request, started, answer=response)
        return response

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        telemetry = self.telemetry
        clock = telemetry.clock
        span, ctx = telemetry.start_request(request, stream=True)
        started = clock.now()
        text: list[str] | None = [] if telemetry.capture_content else None
        first_chunk_s: float | None = None
        final: ChatChunk | None = None
        iterator: AsyncIterator[ChatChunk] | None = None
        try:
            token = otel_context.attach(ctx)
            try:
                iterator = aiter(self.inner.stream(request))
            finally:
                otel_context.detach(token)
            while True:
                # The span is current only while the layers below run, never across a
                # yield: the caller's code between chunks is not part of this request.
                token = otel_context.attach(ctx)
                try:
                    chunk = await anext(iterator)
                except StopAsyncIteration:
                    break
                finally:
                    otel_context.detach(token)
                if first_chunk_s is None and chunk.has_content:
                    first_chunk_s = clock.now() - started
                if text is not None and chunk.text:
                    text.append(chunk.text)
                if chunk.is_final:
                    final = chunk
                yield chunk
        except GeneratorExit:
            await self._close(iterator, ctx)
            telemetry.finish_request(
                span,
                ctx,
                request,
                started,
                answer=final,
                first_chunk_s=first_chunk_s,
                streamed_text=text,
                closed_early=final is None,
            )
            raise
        except BaseException as error:
            await self._close(iterator, ctx)
            if final is not None and not isinstance(error, asyncio.CancelledError):
                # The answer was complete; what failed is the caller's code between chunks.
                telemetry.finish_request(
                    span,
                    ctx,
                    request,
                    started,
                    answer=final,
                    first_chunk_s=first_chunk_s,
                    streamed_text=text,
                )
            else:
                telemetry.finish_request(
                    span,
                    ctx,
                    request,
                    started,
                    answer=None,
                    error=error,
                    first_chunk_s=first_chunk_s,
                )
            raise
        await self._close(iterator, ctx)
        telemetry.finish_request(
            span,
            ctx,
            request,
            started,
            answer=final,
            first_chunk_s=first_chunk_s,
            streamed_text=text,
            closed_early=final is None,
        )

    @staticmethod
    async def _close(iterator: AsyncIterator[ChatChunk] | None, ctx: Any) -> None:
        if iterator is None:
            return
        token = otel_context.attach(ctx)
        try:
            await aclose_stream(iterator)
        finally:
            otel_context.detach(token)

    async def aclose(self) -> None:
        await self.inner.aclose()


class AttemptSpanBackend(WrapperBackend):
    """A span per upstream try on one deployment (below retries, above the rate limiter).

    Spans are written when a try ends, with the try's own start time: every failed try
    (status ERROR, `error.type`), and the successful one when it was not the first try of
    the request. A request answered at its first try has only its request span, which
    carries the same deployment, server and response attributes: a child span for it
    would cost the common call about 35 us more (`benchmarks/bench_telemetry.py
    --in-process`, row "SDK floor + attempt span"). Usage is left to the request span, so
    backends that add up `gen_ai.usage.*` count each request once.
    """

    def __init__(
        self,
        inner: ChatBackend,
        telemetry: RouterTelemetry,
        deployment: Deployment,
        base_url: str,
    ) -> None:
        super().__init__(inner)
        self.telemetry = telemetry
        self.deployment = deployment.key
        self.span_name = f"attempt {deployment.key}"
        self.attributes: dict[str, Any] = {
            "gen_ai.provider.name": provider_name(deployment.provider),
            "gen_ai.request.model": deployment.model,
            "llmrouter.deployment": deployment.key,
            **server_attributes(base_url),
        }

    def _begin(self) -> tuple[int, bool]:
        state = otel_context.get_value(STATE_KEY)
        if isinstance(state, RequestState):
            return state.begin(self.deployment)
        return 1, False

    def _span(self, request: ChatRequest, number: int, retry: bool, started_ns: int) -> Span:
        attributes = dict(self.attributes)
        attributes["llmrouter.attempt"] = number
        attributes["llmrouter.retry"] = retry
        if request.model:
            attributes["gen_ai.request.model"] = request.model
        # The current context is the request span's (its layer attaches it around us).
        return self.telemetry.tracer.start_span(
            self.span_name, attributes=attributes, start_time=started_ns
        )

    def _failed(
        self, request: ChatRequest, number: int, retry: bool, started_ns: int, error: BaseException
    ) -> None:
        try:
            self._record_failure(request, number, retry, started_ns, error)
        except Exception:  # telemetry never changes what the caller gets
            log.exception("llmrouter telemetry failed to record an attempt")

    def _record_failure(
        self, request: ChatRequest, number: int, retry: bool, started_ns: int, error: BaseException
    ) -> None:
        span = self._span(request, number, retry, started_ns)
        kind = error_type(error)
        description = self.telemetry.describe_error(error)
        span.set_attribute("error.type", kind)
        span.set_status(Status(StatusCode.ERROR, description))
        span.end()
        if log.isEnabledFor(logging.WARNING) and kind != "cancelled":
            log_attempt_failure(
                {
                    "deployment": self.deployment,
                    "attempt": number,
                    "error_type": kind,
                    "error": description,
                    "status_code": getattr(error, "status_code", None),
                    "trace_id": format(span.get_span_context().trace_id, "032x"),
                    "span_id": format(span.get_span_context().span_id, "016x"),
                }
            )

    def _succeeded(
        self,
        request: ChatRequest,
        number: int,
        retry: bool,
        started_ns: int,
        answer: ChatResponse | ChatChunk | None,
        closed_early: bool = False,
    ) -> None:
        if number == 1 and not closed_early:
            return  # the request span says it all
        try:
            self._record_success(request, number, retry, started_ns, answer, closed_early)
        except Exception:  # telemetry never changes what the caller gets
            log.exception("llmrouter telemetry failed to record an attempt")

    def _record_success(
        self,
        request: ChatRequest,
        number: int,
        retry: bool,
        started_ns: int,
        answer: ChatResponse | ChatChunk | None,
        closed_early: bool,
    ) -> None:
        span = self._span(request, number, retry, started_ns)
        if answer is not None:
            span.set_attributes(response_attributes(answer))
        if closed_early:
            span.set_attribute("llmrouter.stream.closed_early", True)
        span.end()

    async def chat(self, request: ChatRequest) -> ChatResponse:
        number, retry = self._begin()
        started_ns = time.time_ns()
        try:
            response = await self.inner.chat(request)
        except BaseException as error:
            self._failed(request, number, retry, started_ns, error)
            raise
        self._succeeded(request, number, retry, started_ns, response)
        return response

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        number, retry = self._begin()
        started_ns = time.time_ns()
        final: ChatChunk | None = None
        iterator = aiter(self.inner.stream(request))
        try:
            async for chunk in iterator:
                if chunk.is_final:
                    final = chunk
                yield chunk
        except GeneratorExit:
            await aclose_stream(iterator)
            self._succeeded(request, number, retry, started_ns, final, closed_early=final is None)
            raise
        except BaseException as error:
            await aclose_stream(iterator)
            if final is not None and not isinstance(error, asyncio.CancelledError):
                self._succeeded(request, number, retry, started_ns, final)
            else:
                self._failed(request, number, retry, started_ns, error)
            raise
        self._succeeded(request, number, retry, started_ns, final)
