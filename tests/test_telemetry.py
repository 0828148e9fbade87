"""OpenTelemetry through a real Router on FakeProviderServer: span tree, GenAI attributes,
metrics and logs equal what the fake sent, for answers, streams, fallbacks, cache hits and
budget refusals; nothing when off; no key in any exported byte."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode
from otel_support import Otel, make_otel

from llmrouter_integrations import (
    AllDeploymentsFailedError,
    Budget,
    BudgetExceededError,
    Deployment,
    InstrumentationSettings,
    RetryPolicy,
    Router,
)
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior

OPENAI_KEY = "sk-test-openai-telemetry-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-test-telemetry-0123456789abcdef"
FAST_RETRY = RetryPolicy(max_attempts=2, initial_backoff_s=0.001, jitter=0)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(valid_keys=[OPENAI_KEY, ANTHROPIC_KEY]) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake: FakeProviderServer) -> None:
    fake.reset()
    fake.set_behavior("gpt-4o-mini", ModelBehavior(served_model="gpt-4o-mini-2024-07-18"))
    fake.set_behavior("claude-haiku-4-5", ModelBehavior())


@pytest.fixture
def otel() -> Otel:
    return make_otel()


def two(fake: FakeProviderServer, otel: Otel | None, **kwargs: Any) -> Router:
    kwargs.setdefault("retry", FAST_RETRY)
    if otel is not None:
        kwargs.setdefault("instrument", otel.settings)
    return Router(
        strategy="priority",
        deployments=[
            Deployment("openai", "gpt-4o-mini", api_key=OPENAI_KEY, base_url=fake.openai_base_url),
            Deployment(
                "anthropic",
                "claude-haiku-4-5",
                api_key=ANTHROPIC_KEY,
                base_url=fake.anthropic_base_url,
            ),
        ],
        **kwargs,
    )


def tree(spans: list[ReadableSpan]) -> tuple[ReadableSpan, list[ReadableSpan]]:
    """The one request span and its attempt children, oldest first."""
    roots = [s for s in spans if s.kind == SpanKind.CLIENT]
    assert len(roots) == 1, [s.name for s in spans]
    root = roots[0]
    children = [
        s for s in spans if s.parent is not None and s.parent.span_id == root.context.span_id
    ]
    assert len(children) == len(spans) - 1
    return root, sorted(children, key=lambda s: s.start_time or 0)


def exported_bytes(otel: Otel) -> str:
    """Everything the exporters would send: spans as JSON, metrics as JSON."""
    text = "".join(span.to_json() for span in otel.finished())
    data = otel.reader.get_metrics_data()
    return text + (data.to_json() if data is not None else "")


async def test_answer_span_equals_what_the_fake_sent(fake: FakeProviderServer, otel: Otel) -> None:
    async with two(fake, otel) as router:
        response = await router.achat(
            [{"role": "user", "content": "What is the capital of France?"}],
            max_tokens=50,
            temperature=0.2,
            stop=["\n\n"],
        )
    wire = response.raw  # the JSON body the fake sent
    root, attempts = tree(otel.finished())
    assert root.name == "chat gpt-4o-mini"
    attributes = dict(root.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.request.max_tokens"] == 50
    assert attributes["gen_ai.request.temperature"] == 0.2
    assert list(attributes["gen_ai.request.stop_sequences"]) == ["\n\n"]
    assert attributes["gen_ai.request.stream"] is False
    assert attributes["gen_ai.response.model"] == wire["model"] == "gpt-4o-mini-2024-07-18"
    assert attributes["gen_ai.response.id"] == wire["id"]
    assert list(attributes["gen_ai.response.finish_reasons"]) == [
        wire["choices"][0]["finish_reason"]
    ]
    assert attributes["gen_ai.usage.input_tokens"] == wire["usage"]["prompt_tokens"]
    assert attributes["gen_ai.usage.output_tokens"] == wire["usage"]["completion_tokens"]
    assert attributes["llmrouter.cost_usd"] == pytest.approx(response.cost)
    assert attributes["llmrouter.deployment"] == "openai/gpt-4o-mini"
    assert attributes["llmrouter.strategy"] == "priority"
    assert attributes["llmrouter.attempts"] == 1
    assert attributes["llmrouter.cached"] is False and attributes["llmrouter.fallback"] is False
    assert "gen_ai.input.messages" not in attributes  # content is opt-in
    assert "gen_ai.output.messages" not in attributes
    assert root.status.status_code == StatusCode.UNSET
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["server.port"] == int(fake.openai_base_url.split(":")[2].split("/")[0])
    assert attempts == []  # answered at the first try: the request span says it all


async def test_metrics_follow_the_conventions(fake: FakeProviderServer, otel: Otel) -> None:
    async with two(fake, otel) as router:
        response = await router.acomplete("hi", max_tokens=20)
    metrics = otel.metrics()
    tokens = {p.attributes["gen_ai.token.type"]: p for p in metrics["gen_ai.client.token.usage"]}
    assert tokens["input"].sum == response.usage.input_tokens
    assert tokens["output"].sum == response.usage.output_tokens
    assert tokens["input"].attributes["gen_ai.provider.name"] == "openai"
    assert tokens["input"].attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert tokens["input"].attributes["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    [duration] = metrics["gen_ai.client.operation.duration"]
    assert duration.count == 1 and 0 < duration.sum < 10
    assert "error.type" not in duration.attributes
    assert "gen_ai.client.operation.time_to_first_chunk" not in metrics  # streams only
    [cost] = metrics["llmrouter.cost.usd"]
    assert cost.value == pytest.approx(response.cost)
    [requests] = metrics["llmrouter.requests"]
    assert requests.value == 1 and requests.attributes["llmrouter.outcome"] == "success"
    circuits = {
        p.attributes["llmrouter.deployment"]: p.value for p in metrics["llmrouter.circuit.state"]
    }
    assert circuits == {"openai/gpt-4o-mini": 0, "anthropic/claude-haiku-4-5": 0}
    remaining = {
        p.attributes["llmrouter.deployment"]: p.value
        for p in metrics["llmrouter.ratelimit.remaining_requests"]
    }
    assert remaining["openai/gpt-4o-mini"] > 0  # from the fake's x-ratelimit headers


async def test_stream_span_ends_with_usage_and_ttft(fake: FakeProviderServer, otel: Otel) -> None:
    async with two(fake, otel) as router:
        chunks = [chunk async for chunk in router.astream("Tell me a story", max_tokens=40)]
    final = chunks[-1]
    assert final.is_final and final.usage is not None
    served = fake.requests_for("gpt-4o-mini")[-1]
    assert served.body["stream"] is True
    root, attempts = tree(otel.finished())
    assert attempts == []
    attributes = dict(root.attributes or {})
    assert attributes["gen_ai.request.stream"] is True
    assert attributes["gen_ai.usage.input_tokens"] == final.usage.input_tokens > 0
    assert attributes["gen_ai.usage.output_tokens"] == final.usage.output_tokens > 0
    assert attributes["gen_ai.response.id"] == final.id
    assert list(attributes["gen_ai.response.finish_reasons"]) == ["stop"]
    assert (
        0
        < attributes["gen_ai.response.time_to_first_chunk"]
        <= (root.end_time - root.start_time) / 1e9
    )
    [ttfc] = otel.metrics()["gen_ai.client.operation.time_to_first_chunk"]
    assert ttfc.count == 1


async def test_stream_closed_early_ends_both_spans(fake: FakeProviderServer, otel: Otel) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(chunk_size=2))
    async with two(fake, otel) as router:
        stream = router.astream("Tell me a long story please", max_tokens=40)
        async for chunk in stream:
            if chunk.text:
                break
        await stream.aclose()  # type: ignore[attr-defined]
        root, [attempt] = tree(otel.finished())
    assert root.attributes["llmrouter.stream.closed_early"] is True
    assert root.status.status_code == StatusCode.UNSET
    assert attempt.end_time is not None


async def test_cancelled_stream_ends_its_span_as_cancelled(
    fake: FakeProviderServer, otel: Otel
) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(chunk_size=2, inter_chunk_delay_s=0.5))
    async with two(fake, otel) as router:

        async def read() -> None:
            async for _ in router.astream("Tell me a long story please", max_tokens=40):
                pass

        task = asyncio.create_task(read())
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        root, [attempt] = tree(otel.finished())
    assert root.attributes["error.type"] == "cancelled"
    assert root.status.status_code == StatusCode.ERROR
    assert attempt.attributes["error.type"] == "cancelled"


async def test_retry_then_fallback_one_span_per_attempt(
    fake: FakeProviderServer, otel: Otel
) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(permanent_error=503))
    async with two(fake, otel) as router:
        response = await router.acomplete("hi", max_tokens=20)
    assert response.deployment == "anthropic/claude-haiku-4-5"
    root, attempts = tree(otel.finished())
    assert [a.name for a in attempts] == [
        "attempt openai/gpt-4o-mini",
        "attempt openai/gpt-4o-mini",
        "attempt anthropic/claude-haiku-4-5",
    ]
    assert fake.request_count("gpt-4o-mini") == 2  # each span is a real request
    first, retry, fallback = attempts
    for failed in (first, retry):
        assert failed.status.status_code == StatusCode.ERROR
        assert failed.attributes["error.type"] == "OverloadedError"
    assert [a.attributes["llmrouter.retry"] for a in attempts] == [False, True, False]
    assert fallback.status.status_code == StatusCode.UNSET
    assert fallback.attributes["gen_ai.provider.name"] == "anthropic"
    assert fallback.attributes["gen_ai.response.id"] == response.raw["id"]
    attributes = dict(root.attributes or {})
    assert root.name == "chat claude-haiku-4-5"
    assert attributes["gen_ai.provider.name"] == "anthropic"
    assert attributes["llmrouter.attempts"] == 3
    assert attributes["llmrouter.fallback"] is True
    assert attributes["gen_ai.usage.input_tokens"] == response.raw["usage"]["input_tokens"]
    assert root.status.status_code == StatusCode.UNSET
    metrics = otel.metrics()
    assert [p.value for p in metrics["llmrouter.retries"]] == [1]
    [fallbacks] = metrics["llmrouter.fallbacks"]
    assert fallbacks.value == 1
    assert fallbacks.attributes == {
        "llmrouter.deployment": "openai/gpt-4o-mini",
        "llmrouter.fallback.to": "anthropic/claude-haiku-4-5",
    }


async def test_every_deployment_failing_is_an_error_span(
    fake: FakeProviderServer, otel: Otel
) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(permanent_error=500))
    fake.set_behavior("claude-haiku-4-5", ModelBehavior(permanent_error=500))
    async with two(fake, otel, retry=RetryPolicy(max_attempts=1)) as router:
        with pytest.raises(AllDeploymentsFailedError):
            await router.acomplete("hi", max_tokens=20)
    root, attempts = tree(otel.finished())
    assert root.status.status_code == StatusCode.ERROR
    assert root.attributes["error.type"] == "AllDeploymentsFailedError"
    assert root.attributes["llmrouter.attempts"] == 2
    assert all(a.attributes["error.type"] == "ServerError" for a in attempts)
    metrics = otel.metrics()
    [duration] = metrics["gen_ai.client.operation.duration"]
    assert duration.attributes["error.type"] == "AllDeploymentsFailedError"
    [requests] = metrics["llmrouter.requests"]
    assert requests.attributes["llmrouter.outcome"] == "error"
    assert requests.attributes["error.type"] == "AllDeploymentsFailedError"
    assert "gen_ai.client.token.usage" not in metrics


async def test_cache_hit_span_reports_no_tokens_used(fake: FakeProviderServer, otel: Otel) -> None:
    async with two(fake, otel, cache="memory") as router:
        first = await router.acomplete("cache me", max_tokens=20)
        otel.spans.clear()
        second = await router.acomplete("cache me", max_tokens=20)
    assert second.cached and fake.request_count("gpt-4o-mini") == 1
    [root] = otel.finished()  # no attempt: nothing went upstream
    attributes = dict(root.attributes or {})
    assert attributes["llmrouter.cached"] is True
    assert attributes["llmrouter.cost_usd"] == 0.0
    assert attributes["llmrouter.saved_usd"] == pytest.approx(first.cost)
    assert attributes["llmrouter.attempts"] == 0
    assert attributes["gen_ai.response.id"] == first.raw["id"]
    assert "gen_ai.usage.input_tokens" not in attributes  # nothing billed
    metrics = otel.metrics()
    assert [p.value for p in metrics["llmrouter.cache.hits"]] == [1]
    outcomes = {p.attributes["llmrouter.outcome"]: p.value for p in metrics["llmrouter.requests"]}
    assert outcomes == {"success": 1, "cache_hit": 1}
    tokens = {
        p.attributes["gen_ai.token.type"]: p.count for p in metrics["gen_ai.client.token.usage"]
    }
    assert tokens == {"input": 1, "output": 1}  # the first call only


async def test_budget_refusal_is_an_error_span_and_nothing_is_sent(
    fake: FakeProviderServer, otel: Otel
) -> None:
    async with two(fake, otel, budgets=[Budget(limit_usd=0.0000001)]) as router:
        with pytest.raises(BudgetExceededError):
            await router.acomplete("hi", max_tokens=2000)
    assert fake.request_count() == 0
    [root] = otel.finished()
    assert root.status.status_code == StatusCode.ERROR
    assert root.attributes["error.type"] == "BudgetExceededError"
    assert root.attributes["llmrouter.attempts"] == 0


async def test_budget_remaining_gauge(fake: FakeProviderServer, otel: Otel) -> None:
    async with two(fake, otel, budgets=[Budget(limit_usd=1.0, name="team")]) as router:
        response = await router.acomplete("hi", max_tokens=20)
        [remaining] = otel.metrics()["llmrouter.budget.remaining_usd"]
    assert remaining.attributes["llmrouter.budget"] == "team"
    assert remaining.value == pytest.approx(1.0 - (response.cost or 0))
    assert remaining.value < 1.0


async def test_content_only_on_opt_in(fake: FakeProviderServer, otel: Otel) -> None:
    settings = InstrumentationSettings(
        capture_content=True,
        tracer_provider=otel.settings.tracer_provider,
        meter_provider=otel.settings.meter_provider,
    )
    async with two(fake, otel, instrument=settings) as router:
        response = await router.achat(
            [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Say hi"}],
            max_tokens=20,
        )
        [_ async for _ in router.astream("Stream hi", max_tokens=20)]
    answer, streamed = sorted(
        (s for s in otel.finished() if s.kind == SpanKind.CLIENT), key=lambda s: s.start_time or 0
    )
    sent = json.loads(answer.attributes["gen_ai.input.messages"])
    assert sent == [
        {"role": "system", "parts": [{"type": "text", "content": "Be terse."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Say hi"}]},
    ]
    [output] = json.loads(answer.attributes["gen_ai.output.messages"])
    assert output["parts"] == [{"type": "text", "content": response.text}]
    assert output["finish_reason"] == "stop"
    [streamed_output] = json.loads(streamed.attributes["gen_ai.output.messages"])
    assert "Stream hi" in streamed_output["parts"][0]["content"]


async def test_nothing_exported_when_off(fake: FakeProviderServer, otel: Otel) -> None:
    async with two(fake, None) as router:
        await router.acomplete("hi", max_tokens=20)
        [_ async for _ in router.astream("hi", max_tokens=20)]
    assert otel.finished() == []
    assert otel.metrics() == {}


async def test_no_key_in_any_exported_byte_or_log(
    fake: FakeProviderServer, otel: Otel, caplog: pytest.LogCaptureFixture
) -> None:
    # A provider error that echoes the key back, with content capture on.
    fake.set_behavior(
        "gpt-4o-mini",
        ModelBehavior(errors=[500], error_message=f"bad things with {OPENAI_KEY} here"),
    )
    settings = InstrumentationSettings(
        capture_content=True,
        tracer_provider=otel.settings.tracer_provider,
        meter_provider=otel.settings.meter_provider,
    )
    caplog.set_level(logging.INFO, logger="llmrouter_integrations")
    async with two(fake, otel, instrument=settings) as router:
        await router.acomplete(f"my key is not {ANTHROPIC_KEY[:6]}", max_tokens=20)
        [_ async for _ in router.astream("hi", max_tokens=20)]
    exported = exported_bytes(otel) + caplog.text
    assert "OverloadedError" in exported or "ServerError" in exported
    for key in (OPENAI_KEY, ANTHROPIC_KEY):
        assert key not in exported
        assert key[-12:] not in exported


async def test_logs_one_info_per_request_and_a_warning_per_failed_attempt(
    fake: FakeProviderServer, otel: Otel, caplog: pytest.LogCaptureFixture
) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(errors=[529]))
    caplog.set_level(logging.INFO, logger="llmrouter_integrations.requests")
    async with two(fake, otel) as router:
        response = await router.acomplete("hi", max_tokens=20)
    records = [r for r in caplog.records if r.name == "llmrouter_integrations.requests"]
    warnings = [r for r in records if r.levelno == logging.WARNING]
    infos = [r for r in records if r.levelno == logging.INFO]
    assert len(warnings) == 1 and len(infos) == 1
    assert warnings[0].llmrouter["error_type"] == "OverloadedError"  # type: ignore[attr-defined]
    assert warnings[0].llmrouter["deployment"] == "openai/gpt-4o-mini"  # type: ignore[attr-defined]
    fields = infos[0].llmrouter  # type: ignore[attr-defined]
    assert fields["deployment"] == response.deployment
    assert fields["model"] == "gpt-4o-mini"
    assert fields["input_tokens"] == response.usage.input_tokens
    assert fields["output_tokens"] == response.usage.output_tokens
    assert fields["cost_usd"] == pytest.approx(response.cost)
    assert fields["attempts"] == 2
    assert fields["latency_s"] > 0


def test_logs_are_silent_unless_configured(fake: FakeProviderServer, tmp_path: Any) -> None:
    script = f"""
import asyncio
from opentelemetry.sdk.trace import TracerProvider
from llmrouter_integrations import Deployment, InstrumentationSettings, Router, RetryPolicy
from llmrouter_integrations.testing import ModelBehavior
async def main():
    settings = InstrumentationSettings(tracer_provider=TracerProvider())
    async with Router(deployments=[Deployment("openai", "gpt-4o-mini", api_key={OPENAI_KEY!r},
            base_url={fake.openai_base_url!r})], instrument=settings,
            retry=RetryPolicy(max_attempts=2, initial_backoff_s=0.001)) as router:
        await router.acomplete("hi", max_tokens=20)
asyncio.run(main())
"""
    fake.set_behavior("gpt-4o-mini", ModelBehavior(errors=[500]))
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert fake.request_count("gpt-4o-mini") == 2  # one failed attempt happened...
    assert result.stderr == "" and result.stdout == ""  # ...and nothing was printed


async def test_instrument_all_instruments_routers_made_after_it(
    fake: FakeProviderServer, otel: Otel
) -> None:
    from llmrouter_integrations import instrument_all

    try:
        instrument_all(otel.settings)
        instrumented = two(fake, None)
        explicit_off = two(fake, None, instrument=False)
        async with instrumented, explicit_off:
            await instrumented.acomplete("one", max_tokens=20)
            await explicit_off.acomplete("two", max_tokens=20)
    finally:
        instrument_all(False)
    [root] = otel.requests()
    assert root.attributes["llmrouter.attempts"] == 1
    async with two(fake, None) as later:
        await later.acomplete("three", max_tokens=20)
    assert len(otel.requests()) == 1


def test_sync_calls_join_the_callers_trace(fake: FakeProviderServer, otel: Otel) -> None:
    tracer = otel.tracer_provider.get_tracer("app")
    with two(fake, otel) as router, tracer.start_as_current_span("app work") as parent:
        router.complete("hi", max_tokens=20)
        list(router.stream("hi", max_tokens=20))
    roots = [s for s in otel.finished() if s.kind == SpanKind.CLIENT]
    assert len(roots) == 2
    for root in roots:
        assert root.parent is not None
        assert root.parent.span_id == parent.get_span_context().span_id
        assert root.context.trace_id == parent.get_span_context().trace_id


def test_start_prometheus_serves_the_metrics(fake: FakeProviderServer) -> None:
    # In a child process: start_prometheus installs the global meter provider.
    script = f"""
import asyncio, socket, urllib.request
from llmrouter_integrations import Deployment, Router
from llmrouter_integrations.telemetry import start_prometheus
with socket.socket() as s:
    s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
start_prometheus(port)
async def main():
    async with Router(deployments=[Deployment("openai", "gpt-4o-mini", api_key={OPENAI_KEY!r},
            base_url={fake.openai_base_url!r})], instrument=True) as router:
        await router.acomplete("hi", max_tokens=20)
        print(urllib.request.urlopen(f"http://127.0.0.1:{{port}}/metrics").read().decode())
asyncio.run(main())
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    text = result.stdout
    for name in (
        "gen_ai_client_token_usage_bucket",
        "gen_ai_client_operation_duration_seconds_bucket",
        "llmrouter_requests_total",
        "llmrouter_cost_usd_total",
        "llmrouter_circuit_state",
        "llmrouter_ratelimit_remaining_requests",
    ):
        assert name in text, name
    assert 'gen_ai_token_type="input"' in text
    assert 'llmrouter_deployment="openai/gpt-4o-mini"' in text
    assert OPENAI_KEY not in text and OPENAI_KEY[-12:] not in text


async def test_sampled_out_requests_export_no_span_but_keep_metrics(
    fake: FakeProviderServer,
) -> None:
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    otel = make_otel()
    otel.tracer_provider.sampler = ALWAYS_OFF  # type: ignore[misc]
    fake.set_behavior("gpt-4o-mini", ModelBehavior(errors=[500]))
    async with two(fake, otel) as router:
        response = await router.acomplete("hi", max_tokens=20)
    assert otel.finished() == []
    metrics = otel.metrics()
    [duration] = metrics["gen_ai.client.operation.duration"]
    assert duration.count == 1
    tokens = {
        p.attributes["gen_ai.token.type"]: p.sum for p in metrics["gen_ai.client.token.usage"]
    }
    assert tokens == {"input": response.usage.input_tokens, "output": response.usage.output_tokens}


def test_instrument_without_opentelemetry_says_what_to_install() -> None:
    script = """
import sys
sys.modules["opentelemetry"] = None  # as if the extra were not installed
from llmrouter_integrations import ConfigurationError, Router
Router(deployments=["openai/gpt-4o-mini"], environ={"OPENAI_API_KEY": "sk-x"})  # off: fine
try:
    Router(deployments=["openai/gpt-4o-mini"], environ={"OPENAI_API_KEY": "sk-x"},
           instrument=True)
except ConfigurationError as error:
    print(error)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert "pip install 'llmrouter_integrations[otel]'" in result.stdout


def test_import_and_plain_routers_load_no_opentelemetry() -> None:
    script = (
        "import sys, llmrouter_integrations as m; "
        "m.Router(deployments=['openai/gpt-4o-mini'], environ={'OPENAI_API_KEY': 'sk-x'}); "
        "print(sorted(n for n in sys.modules if n.startswith('opentelemetry')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


async def test_queue_wait_is_measured(fake: FakeProviderServer, otel: Otel) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(latency_s=0.2))
    deployment = Deployment(
        "openai",
        "gpt-4o-mini",
        api_key=OPENAI_KEY,
        base_url=fake.openai_base_url,
        max_concurrency=1,
    )
    async with Router(deployments=[deployment], instrument=otel.settings) as router:
        await asyncio.gather(*(router.acomplete(f"q{i}", max_tokens=20) for i in range(2)))
    waits = otel.metrics()["llmrouter.queue.wait"]
    assert sum(p.count for p in waits) >= 1
    assert max(p.max for p in waits) >= 0.1  # the second call waited for the first


async def test_circuit_gauge_shows_an_open_breaker(fake: FakeProviderServer, otel: Otel) -> None:
    from llmrouter_integrations.routing.health import BreakerPolicy

    fake.set_behavior("gpt-4o-mini", ModelBehavior(permanent_error=500))
    breaker = BreakerPolicy(failure_threshold=2)
    async with two(fake, otel, retry=RetryPolicy(max_attempts=1), breaker=breaker) as router:
        for _ in range(3):
            await router.acomplete("hi", max_tokens=20)  # served by the fallback
        circuits = {
            p.attributes["llmrouter.deployment"]: p.value
            for p in otel.metrics()["llmrouter.circuit.state"]
        }
    assert circuits == {"openai/gpt-4o-mini": 2, "anthropic/claude-haiku-4-5": 0}
    assert router.health()["openai/gpt-4o-mini"].circuit == "open"
    assert fake.request_count("gpt-4o-mini") == 2  # the open circuit kept the third away
    last = otel.requests()[-1]
    assert last.attributes["llmrouter.attempts"] == 1
    assert last.attributes["llmrouter.deployment"] == "anthropic/claude-haiku-4-5"


async def test_a_broken_telemetry_backend_never_breaks_a_request(
    fake: FakeProviderServer, otel: Otel, caplog: pytest.LogCaptureFixture
) -> None:
    class Exploding:
        """A meter provider whose instruments raise on every measurement."""

        def get_meter(self, *args: Any, **kwargs: Any) -> Any:
            return self

        def __getattr__(self, name: str) -> Any:
            def instrument(*args: Any, **kwargs: Any) -> Any:
                return self

            return instrument

        def record(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("metrics backend down")

    from llmrouter_integrations import InstrumentationSettings

    settings = InstrumentationSettings(
        tracer_provider=otel.tracer_provider, meter_provider=Exploding()
    )
    fake.set_behavior("gpt-4o-mini", ModelBehavior(permanent_error=500))
    async with two(fake, None, instrument=settings) as router:
        response = await router.acomplete("hi", max_tokens=20)  # falls back, answers
        chunks = [c async for c in router.astream("hi", max_tokens=20)]
    assert response.deployment == "anthropic/claude-haiku-4-5" and chunks[-1].is_final
    assert "llmrouter telemetry failed to record a request" in caplog.text
    assert len(otel.requests()) == 2  # spans still ended before the metrics failed
