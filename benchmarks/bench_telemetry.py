"""Throughput with `instrument=True` (OpenTelemetry SDK, batch span processor) vs off.

FakeProviderServer runs in its own process (as in bench_overhead.py); two routers over the
same loopback deployment, one plain and one instrumented with an SDK `TracerProvider`
(`BatchSpanProcessor`) and `MeterProvider` (`PeriodicExportingMetricReader`, 1 s), both
exporting to exporters that drop what they get (a third router samples 10% of traces; the
export itself runs in the SDK's own threads, and counts: the client CPU is the whole
process's). A last row, "SDK floor", is the plain router wrapped in the least the conventions
ask of the SDK per request, written by hand: one CLIENT span with the same attributes and
the three histogram records (duration, input and output tokens). No instrumentation of
ours can cost less than that row with this SDK. "SDK floor+attempt" adds the child span a
first-try success would carry if every try had its own (the router writes attempt spans
only for requests that needed more than one try). Rounds are interleaved so drift on a shared
machine hits every row alike; the median round is reported.

`--in-process` replaces the server with a transport that hands back one canned OpenAI
answer (no sockets, no second process): the router's own CPU per call, where what
instrumentation adds stands out most and a shared machine's noise least.

    python benchmarks/bench_telemetry.py            # ~1 min
    python benchmarks/bench_telemetry.py --quick
    python benchmarks/bench_telemetry.py --in-process
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

from bench_overhead import MODEL, free_port, start_server, throughput


class SdkFloor:
    """`router.achat` inside one hand-written span and three histogram records (with
    `attempt_span`, also the child span a first-try success would get if every try had one)."""

    def __init__(self, router: Any, settings: Any, attempt_span: bool = False) -> None:
        from opentelemetry.trace import SpanKind, set_span_in_context

        self.router = router
        self.attempt_span = attempt_span
        self.in_context = set_span_in_context
        self.kind = SpanKind.CLIENT
        self.tracer = settings.tracer_provider.get_tracer("floor")
        meter = settings.meter_provider.get_meter("floor")
        self.duration = meter.create_histogram("gen_ai.client.operation.duration", unit="s")
        self.tokens = meter.create_histogram("gen_ai.client.token.usage", unit="{token}")
        self.metric = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": MODEL,
            "llmrouter.deployment": f"openai/{MODEL}",
            "gen_ai.response.model": MODEL,
        }
        self.input = {**self.metric, "gen_ai.token.type": "input"}
        self.output = {**self.metric, "gen_ai.token.type": "output"}

    async def achat(self, messages: Any, **options: Any) -> Any:
        started = time.perf_counter()
        span = self.tracer.start_span(
            f"chat {MODEL}",
            kind=self.kind,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.stream": False,
                "gen_ai.request.max_tokens": options.get("max_tokens"),
                "llmrouter.strategy": "balanced",
            },
        )
        attempt_started = time.time_ns()
        response = await self.router.achat(messages, **options)
        usage = response.usage
        if self.attempt_span:
            self.tracer.start_span(
                f"attempt openai/{MODEL}",
                context=self.in_context(span),
                start_time=attempt_started,
                attributes={
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": MODEL,
                    "llmrouter.deployment": response.deployment,
                    "server.address": "127.0.0.1",
                    "server.port": 8000,
                    "llmrouter.attempt": 1,
                    "llmrouter.retry": False,
                    "gen_ai.response.model": response.model,
                    "gen_ai.response.id": response.id,
                    "gen_ai.response.finish_reasons": (response.finish_reason,),
                },
            ).end()
        span.set_attributes(
            {
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": MODEL,
                "llmrouter.deployment": response.deployment,
                "server.address": "127.0.0.1",
                "server.port": 8000,
                "gen_ai.response.model": response.model,
                "gen_ai.response.id": response.id,
                "gen_ai.response.finish_reasons": (response.finish_reason,),
                "gen_ai.usage.input_tokens": usage.input_tokens,
                "gen_ai.usage.output_tokens": usage.output_tokens,
                "llmrouter.cost_usd": response.cost,
                "llmrouter.attempts": 1,
                "llmrouter.cached": False,
                "llmrouter.fallback": False,
            }
        )
        span.end()
        self.duration.record(time.perf_counter() - started, self.metric)
        self.tokens.record(usage.input_tokens, self.input)
        self.tokens.record(usage.output_tokens, self.output)
        return response

    async def aclose(self) -> None:
        await self.router.aclose()


class CannedTransport:
    """A transport answering every request with the same OpenAI chat completion."""

    body = json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1,
            "model": f"{MODEL}-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Qubits in superposition."},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 14, "completion_tokens": 5, "total_tokens": 19},
        }
    ).encode()

    async def send(self, request: Any) -> Any:
        from llmrouter_integrations.transport.base import HTTPResponse

        return HTTPResponse(200, {"content-type": "application/json"}, self.body)

    def stream(self, request: Any) -> Any:
        raise NotImplementedError("the benchmark makes no streaming calls")

    async def aclose(self) -> None:
        return None


def make_settings(sample_ratio: float | None = None) -> Any:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        MetricExporter,
        MetricExportResult,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    from llmrouter_integrations import InstrumentationSettings

    class DropSpans(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    class DropMetrics(MetricExporter):
        def export(self, metrics_data: Any, timeout_millis: float = 0, **_: Any) -> Any:
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 0) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 0, **_: Any) -> None:
            return None

    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    sampler = None if sample_ratio is None else ParentBased(TraceIdRatioBased(sample_ratio))
    tracer_provider = TracerProvider(sampler=sampler) if sampler else TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(DropSpans()))
    reader = PeriodicExportingMetricReader(DropMetrics(), export_interval_millis=1000)
    meter_provider = MeterProvider(metric_readers=[reader])
    return InstrumentationSettings(tracer_provider=tracer_provider, meter_provider=meter_provider)


async def run(
    base: str | None, total: int, concurrency: int, rounds: int
) -> dict[str, tuple[float, float]]:
    from llmrouter_integrations import Deployment, Router

    def router(instrument: Any) -> Router:
        deployment = Deployment(
            provider="openai",
            model=MODEL,
            api_key="sk-bench",
            base_url=f"{base or 'http://canned.invalid'}/v1",
        )
        transport = CannedTransport() if base is None else None
        return Router(deployments=[deployment], instrument=instrument, transport=transport)

    messages = [{"role": "user", "content": "Explain quantum computing in one sentence."}]
    routers: dict[str, Any] = {
        "off": router(False),
        "on": router(make_settings()),
        "on, 10% sampled": router(make_settings(sample_ratio=0.1)),
        "SDK floor": SdkFloor(router(False), make_settings()),
        "SDK floor+attempt": SdkFloor(router(False), make_settings(), attempt_span=True),
    }
    samples: dict[str, list[float]] = {name: [] for name in routers}
    cpu: dict[str, list[float]] = {name: [] for name in routers}
    try:
        for _ in range(rounds):
            for name, target in routers.items():

                async def call(target: Any = target) -> object:
                    return await target.achat(messages, max_tokens=60)

                cpu_before = time.process_time()
                samples[name].append((await throughput(call, total, concurrency))[0])
                # Client CPU per call (this process only; the server runs in another): less
                # swayed than req/s by other jobs on a shared machine.
                cpu[name].append((time.process_time() - cpu_before) / (total + 20))
    finally:
        for target in routers.values():
            await target.aclose()
    return {
        name: (statistics.median(samples[name]), statistics.median(cpu[name])) for name in routers
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--in-process", action="store_true", help="canned answers, no sockets")
    args = parser.parse_args()
    total, rounds = (1000, 3) if args.quick else (4000, 5)
    if args.in_process:
        result = asyncio.run(run(None, total, args.concurrency, rounds))
        where = "in-process canned answers (no sockets)"
    else:
        port = free_port()
        server = start_server(port)
        try:
            result = asyncio.run(run(f"http://127.0.0.1:{port}", total, args.concurrency, rounds))
        finally:
            server.terminate()
            server.wait()
        where = "loopback fake server in its own process"
    print(
        f"{where}; {rounds} interleaved rounds of {total} calls "
        f"at concurrency {args.concurrency}; python {sys.version.split()[0]}, "
        f"{os.cpu_count()} cores"
    )
    off_rps, off_cpu = result["off"]
    for name, (rps, cpu) in result.items():
        print(
            f"instrument {name:<18} {rps:8.0f} req/s ({rps / off_rps:4.0%} of off)  "
            f"client CPU {cpu * 1e6:6.0f} us/call ({off_cpu / cpu:4.0%} of off's rate)"
        )


if __name__ == "__main__":
    main()
