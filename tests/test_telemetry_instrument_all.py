"""instrument_all() reaches every router made without `instrument=`: those made before the
call as well as after, and instrument_all(False) takes the spans and gauges out again;
routers with their own `instrument=` keep it; a router is never kept alive by it."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.trace import StatusCode
from otel_support import Otel, make_otel

from llmrouter_integrations import Deployment, RetryPolicy, Router, instrument_all
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior

OPENAI_KEY = "sk-test-openai-instrument-all-0123456789"
ANTHROPIC_KEY = "sk-ant-test-instrument-all-0123456789"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(valid_keys=[OPENAI_KEY, ANTHROPIC_KEY]) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake: FakeProviderServer) -> Iterator[None]:
    fake.reset()
    yield
    instrument_all(False)  # never leak a process default into other tests


@pytest.fixture
def otel() -> Otel:
    return make_otel()


def two(fake: FakeProviderServer, **kwargs: Any) -> Router:
    return Router(
        strategy="priority",
        retry=RetryPolicy(max_attempts=2, initial_backoff_s=0.001, jitter=0),
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


def circuits(otel: Otel) -> list[Any]:
    return otel.metrics().get("llmrouter.circuit.state", [])


async def test_routers_made_before_the_call_are_instrumented_too(
    fake: FakeProviderServer, otel: Otel
) -> None:
    async with two(fake) as before, two(fake, instrument=False) as explicit_off:
        await before.acomplete("not traced yet", max_tokens=20)
        assert otel.finished() == []
        instrument_all(otel.settings)
        response = await before.acomplete("traced", max_tokens=20)
        await explicit_off.acomplete("never traced", max_tokens=20)
        async with two(fake) as after:
            await after.acomplete("traced too", max_tokens=20)
        [first, second] = otel.requests()
    assert first.attributes["gen_ai.response.id"] == response.raw["id"]
    assert first.attributes["llmrouter.deployment"] == "openai/gpt-4o-mini"
    assert second.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert {p.attributes["llmrouter.deployment"] for p in circuits(otel)} == {
        "openai/gpt-4o-mini",
        "anthropic/claude-haiku-4-5",
    }


async def test_a_router_instrumented_later_gets_its_attempt_spans(
    fake: FakeProviderServer, otel: Otel
) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(permanent_error=503))
    async with two(fake) as router:
        instrument_all(otel.settings)
        response = await router.acomplete("hi", max_tokens=20)
    [root] = otel.requests()
    attempts = otel.children(root)
    assert response.deployment == "anthropic/claude-haiku-4-5"
    assert [a.name for a in attempts] == [
        "attempt openai/gpt-4o-mini",
        "attempt openai/gpt-4o-mini",
        "attempt anthropic/claude-haiku-4-5",
    ]
    assert [a.status.status_code for a in attempts] == [
        StatusCode.ERROR,
        StatusCode.ERROR,
        StatusCode.UNSET,
    ]
    assert root.attributes["llmrouter.attempts"] == 3


async def test_instrument_all_false_takes_spans_and_gauges_out(
    fake: FakeProviderServer, otel: Otel
) -> None:
    mine = make_otel()
    instrument_all(otel.settings)
    async with two(fake) as following, two(fake, instrument=mine.settings) as own:
        await following.acomplete("traced", max_tokens=20)
        instrument_all(False)
        await following.acomplete("not traced", max_tokens=20)
        await own.acomplete("still traced by its own settings", max_tokens=20)
        assert len(otel.requests()) == 1
        assert circuits(otel) == []  # the router left the gauges with its instrumentation
        assert len(mine.requests()) == 1
        instrument_all(otel.settings)  # and back on
        await following.acomplete("traced again", max_tokens=20)
    assert len(otel.requests()) == 2


async def test_a_stream_running_when_instrumentation_changes_finishes_as_it_started(
    fake: FakeProviderServer, otel: Otel
) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(chunk_size=2))
    async with two(fake) as router:
        stream = router.astream("Tell me a story", max_tokens=40)
        first = await anext(stream)
        instrument_all(otel.settings)
        rest = [chunk async for chunk in stream]
        assert otel.finished() == []  # it started without telemetry
        assert rest[-1].is_final and rest[-1].usage is not None
        text = first.text + "".join(c.text for c in rest)
        assert text  # nothing lost on the way
        chunks = [c async for c in router.astream("Tell me a story", max_tokens=40)]
    [root] = otel.requests()
    assert root.attributes["gen_ai.usage.output_tokens"] == chunks[-1].usage.output_tokens


async def test_instrument_all_keeps_no_router_alive(fake: FakeProviderServer, otel: Otel) -> None:
    router = two(fake)
    await router.aclose()
    ref = weakref.ref(router)
    del router
    gc.collect()
    assert ref() is None
    instrument_all(otel.settings)  # nothing left to instrument, nothing raises
