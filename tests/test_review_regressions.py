"""Regressions found in review: cancellation, early close, stalled streams, echoed keys,
`x-should-retry: false` and abandoned calls under a budget."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from llmrouter_integrations import (
    AllDeploymentsFailedError,
    Budget,
    Deployment,
    ProviderTimeoutError,
    RetryPolicy,
    Router,
    RouterEvent,
)
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior

KEY = "sk-test-review-0123456789abcdef"
NO_RETRY = RetryPolicy(max_attempts=1)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake: FakeProviderServer) -> None:
    fake.reset()
    for model in ("gpt-4o-mini", "claude-haiku-4-5", "m"):
        fake.set_behavior(model, ModelBehavior())


def openai(fake: FakeProviderServer, model: str = "gpt-4o-mini", **fields: object) -> Deployment:
    return Deployment("openai", model, api_key=KEY, base_url=fake.openai_base_url, **fields)  # type: ignore[arg-type]


def anthropic(fake: FakeProviderServer) -> Deployment:
    return Deployment(
        "anthropic", "claude-haiku-4-5", api_key=KEY, base_url=fake.anthropic_base_url
    )


async def test_cancelled_cache_leader_does_not_strand_identical_requests(
    fake: FakeProviderServer,
) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(latency_s=0.2))
    async with Router(deployments=[openai(fake)], cache="memory") as router:
        leader = asyncio.create_task(router.acomplete("same question", seed=1))
        await asyncio.sleep(0.05)
        follower = asyncio.create_task(router.acomplete("same question", seed=1))
        await asyncio.sleep(0.01)
        leader.cancel()
        answer = await asyncio.wait_for(follower, 5)  # hung forever before the fix
        again = await asyncio.wait_for(router.acomplete("same question", seed=1), 5)
    assert answer.text == "Echo: same question" and again.cached


async def test_early_close_of_a_stream_frees_the_layers_below_at_once(
    fake: FakeProviderServer,
) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(chunk_size=2))
    async with Router(deployments=[openai(fake, max_concurrency=1)]) as router:
        stream = router.astream("a long enough answer to need many chunks")
        async for _chunk in stream:
            break
        await stream.aclose()  # type: ignore[attr-defined]
        health = router.health()["openai/gpt-4o-mini"]
        assert health.in_flight == 0
        # the concurrency permit is back too: another call goes through at once
        answer = await asyncio.wait_for(router.acomplete("next"), 2)
    assert answer.text == "Echo: next"


async def test_a_stalled_stream_ends_at_the_overall_timeout(fake: FakeProviderServer) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(chunk_size=4, inter_chunk_delay_s=0.5))
    loop = asyncio.get_running_loop()
    async with Router(deployments=[openai(fake)], timeout=0.6, retry=NO_RETRY) as router:
        started = loop.time()
        with pytest.raises(ProviderTimeoutError):
            async for _chunk in router.astream("stall me after the first few chunks please"):
                pass
        assert loop.time() - started < 1.0


async def test_a_key_of_any_shape_echoed_by_the_provider_is_scrubbed(
    fake: FakeProviderServer,
) -> None:
    key = "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8"  # no known prefix, so only the exact value helps
    fake.set_behavior("m", ModelBehavior(permanent_error=401, error_message=f"Bad key: {key}"))
    events: list[RouterEvent] = []
    router = Router(
        deployments=[Deployment("together", "m", api_key=key, base_url=fake.openai_base_url)],
        retry=NO_RETRY,
        on_event=events.append,
    )
    async with router:
        with pytest.raises(AllDeploymentsFailedError) as caught:
            await router.acomplete("hi")
    inner = caught.value.exceptions[0]
    for text in (str(caught.value), repr(caught.value), str(inner), repr(inner), str(vars(inner))):
        assert key not in text
    assert "Bad key: ***" in str(inner)
    assert key not in str(events)


async def test_should_retry_false_still_falls_back(fake: FakeProviderServer) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(permanent_error=503, x_should_retry=False))
    router = Router(strategy="priority", deployments=[openai(fake), anthropic(fake)])
    async with router:
        response = await router.acomplete("hi")
    assert response.deployment == "anthropic/claude-haiku-4-5"
    assert fake.request_count("gpt-4o-mini") == 1  # not retried, as the provider asked


async def test_abandoned_call_is_charged_its_prompt_under_a_budget(
    fake: FakeProviderServer,
) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(hang=True))
    router = Router(deployments=[openai(fake)], budgets=[Budget(1.0)], timeout=0.2, retry=NO_RETRY)
    async with router:
        with pytest.raises(AllDeploymentsFailedError):
            await router.acomplete("a prompt the provider received and may bill", max_tokens=100)
        status = router.budgets.status()
    assert fake.request_count("gpt-4o-mini") == 1
    assert sum(s.spent_usd for s in status) > 0  # the prompt's estimated cost, not $0
