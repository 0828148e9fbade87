"""Cache, rate limits and queueing as a user configures them: through `Router(strategy="priority", ...)` options."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmrouter_integrations import Deployment, Router, RouterEvent
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior

KEY = "sk-test-policies-0123456789"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake: FakeProviderServer) -> None:
    fake.reset()
    fake.set_behavior("gpt-4o-mini", ModelBehavior())


def openai(fake: FakeProviderServer, **fields: object) -> Deployment:
    return Deployment("openai", "gpt-4o-mini", api_key=KEY, base_url=fake.openai_base_url, **fields)  # type: ignore[arg-type]


async def test_cache_hit_is_free_marked_and_counted_as_saving(fake: FakeProviderServer) -> None:
    events: list[RouterEvent] = []
    async with Router(
        strategy="priority", deployments=[openai(fake)], cache="memory", on_event=events.append
    ) as router:
        first = await router.acomplete("cache me", temperature=0)
        second = await router.acomplete("cache me", temperature=0)
        other = await router.acomplete("cache me", temperature=0.5)
        streamed = [c async for c in router.astream("cache me", temperature=0)]
        assert fake.request_count("gpt-4o-mini") == 2
        assert (first.cached, second.cached, other.cached) == (False, True, False)
        assert second.text == first.text and second.cost == 0.0
        assert second.original_cost == first.cost
        assert "".join(c.text for c in streamed) == first.text and streamed[-1].cached
        assert router.costs.saved_usd == pytest.approx(2 * (first.cost or 0))
        assert [e.type for e in events].count("cache_hit") == 2
        bypass = await router.acomplete("cache me", temperature=0, cache=False)
        assert not bypass.cached and fake.request_count("gpt-4o-mini") == 3


async def test_identical_concurrent_requests_share_one_call(fake: FakeProviderServer) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(latency_s=0.05))
    async with Router(strategy="priority", deployments=[openai(fake)], cache="memory") as router:
        answers = await asyncio.gather(*(router.acomplete("same", seed=1) for _ in range(50)))
    assert {a.text for a in answers} == {"Echo: same"}
    assert fake.request_count("gpt-4o-mini") == 1


async def test_sqlite_cache_survives_a_restart_without_keys(
    fake: FakeProviderServer, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'cache.db'}"
    async with Router(strategy="priority", deployments=[openai(fake)], cache=url) as router:
        await router.acomplete("persist me", temperature=0)
    async with Router(strategy="priority", deployments=[openai(fake)], cache=url) as router:
        again = await router.acomplete("persist me", temperature=0)
    assert again.cached and fake.request_count("gpt-4o-mini") == 1
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert KEY.encode() not in stored


async def test_max_concurrency_is_never_exceeded(fake: FakeProviderServer) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(latency_s=0.02))
    async with Router(strategy="priority", deployments=[openai(fake, max_concurrency=3)]) as router:
        answers = await asyncio.gather(*(router.acomplete(f"q{i}") for i in range(20)))
    assert len(answers) == 20
    assert fake.max_concurrency("gpt-4o-mini") == 3


async def test_saturated_deployment_overflows_to_one_with_room(fake: FakeProviderServer) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(latency_s=0.05))
    router = Router(
        strategy="priority",
        deployments=[
            openai(fake, max_concurrency=1),
            Deployment(
                "anthropic", "claude-haiku-4-5", api_key=KEY, base_url=fake.anthropic_base_url
            ),
        ],
        rate_limit_wait=0.0,
    )
    async with router:
        answers = await asyncio.gather(*(router.acomplete(f"q{i}") for i in range(6)))
    served = {a.deployment for a in answers}
    assert served == {"openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"}
    assert fake.max_concurrency("gpt-4o-mini") == 1
