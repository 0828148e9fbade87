"""Rate limits end to end: DeploymentBackend over loopback HTTP to FakeProviderServer.

The fake enforces `rate_limit` requests per window and answers 429 beyond it; its
windows run on the same virtual clock as the limiter. That clock moves only when no
request is on the wire (`SettlingClock`), as a simulation must: otherwise a request
still travelling to the server thread would be stamped with a later time.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pydantic import SecretStr

from llmrouter_integrations.admission import RateLimits, RequestQueue
from llmrouter_integrations.core.backend import ChatBackend, WrapperBackend
from llmrouter_integrations.core.clock import SYSTEM_CLOCK, Clock, ManualClock
from llmrouter_integrations.layers.http import DeploymentBackend
from llmrouter_integrations.layers.ratelimit import RateLimitBackend
from llmrouter_integrations.layers.retry import RetryBackend, RetryPolicy
from llmrouter_integrations.providers.endpoints import get_endpoint
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior
from llmrouter_integrations.transport import AiohttpTransport
from llmrouter_integrations.types import ChatChunk, ChatRequest, ChatResponse, Deployment, Message

KEY = "sk-test-0123456789abcdef"
URLS = {"openai": "openai_base_url", "anthropic": "anthropic_base_url"}


class InFlight(WrapperBackend):
    """Counts calls on the wire (from send to the end of the reply)."""

    count = 0

    async def chat(self, request: ChatRequest) -> ChatResponse:
        InFlight.count += 1
        try:
            return await self.inner.chat(request)
        finally:
            InFlight.count -= 1

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        raise NotImplementedError
        yield ChatChunk()


class SettlingClock(ManualClock):
    """Virtual time that jumps only once nothing is in flight."""

    def __init__(self, busy: Callable[[], bool]) -> None:
        super().__init__()
        self.busy = busy

    async def sleep(self, seconds: float) -> None:
        while self.busy():
            await asyncio.sleep(0.001)
        await super().sleep(seconds)


def ask(n: int) -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content=f"Say {n}")], max_tokens=20)


def refused(fake: FakeProviderServer) -> int:
    return sum(r.status == 429 for r in fake.requests)


async def deployment_stack(
    fake: FakeProviderServer,
    transport: AiohttpTransport,
    clock: Clock,
    *,
    provider: str = "openai",
    model: str = "m",
    limiter: bool = True,
    retries: int = 1,
    **limits: Any,
) -> tuple[ChatBackend, RateLimits | None]:
    """Retry -> RateLimit -> DeploymentBackend, as the router builds them per deployment."""
    deployment = Deployment(provider=provider, model=model, api_key=SecretStr(KEY), **limits)
    rate_limits = RateLimits([deployment], clock=clock) if limiter else None
    backend: ChatBackend = InFlight(
        DeploymentBackend(
            deployment,
            endpoint=get_endpoint(provider),
            transport=transport,
            base_url=getattr(fake, URLS[provider]),
            clock=clock,
            on_rate_limits=rate_limits.update_from_headers if rate_limits else None,
        )
    )
    if rate_limits is not None:
        queue = RequestQueue(rate_limits, clock=clock, max_wait=None)
        backend = RateLimitBackend(
            backend, deployment=deployment.key, limits=rate_limits, queue=queue, max_wait=600
        )
    if retries > 1:
        policy = RetryPolicy(max_attempts=retries, max_retry_after_s=120, rng=random.Random(7))
        backend = RetryBackend(backend, deployment=deployment.key, policy=policy, clock=clock)
    return backend, rate_limits


@pytest.fixture
async def transport() -> AsyncIterator[AiohttpTransport]:
    made = AiohttpTransport()
    yield made
    await made.aclose()


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_a_burst_of_5n_gets_no_429_once_headers_were_seen(
    provider: str, transport: AiohttpTransport
) -> None:
    n = 4
    clock = SettlingClock(lambda: InFlight.count > 0)
    behavior = ModelBehavior(rate_limit=n, rate_limit_window_s=30.0)
    with FakeProviderServer({"m": behavior}, valid_keys={KEY}, clock=clock) as fake:
        backend, _ = await deployment_stack(fake, transport, clock, provider=provider)
        await backend.chat(ask(0))  # its headers tell the limiter the provider's limit
        answers = await asyncio.gather(*(backend.chat(ask(i)) for i in range(5 * n)))
        assert len(answers) == 5 * n and all(a.text for a in answers)
        assert refused(fake) == 0
        assert fake.request_count("m") == 5 * n + 1


async def test_a_cold_burst_gets_fewer_429s_with_the_adaptive_limiter(
    transport: AiohttpTransport,
) -> None:
    n = 4
    outcomes = {}
    for limiter in (True, False):
        clock = SettlingClock(lambda: InFlight.count > 0)
        behavior = ModelBehavior(rate_limit=n, rate_limit_window_s=10.0)
        with FakeProviderServer({"m": behavior}, valid_keys={KEY}, clock=clock) as fake:
            backend, _ = await deployment_stack(fake, transport, clock, limiter=limiter, retries=4)
            results = await asyncio.gather(
                *(backend.chat(ask(i)) for i in range(5 * n)), return_exceptions=True
            )
            completed = sum(isinstance(r, ChatResponse) for r in results)
            outcomes[limiter] = (refused(fake), completed)
    (refused_with, completed_with), (refused_without, _) = outcomes[True], outcomes[False]
    assert completed_with == 5 * n
    assert refused_with <= 4 * n  # only the first wave, sent before any header came back
    assert refused_with < refused_without


async def test_a_configured_rpm_holds_against_the_fakes_window(
    transport: AiohttpTransport,
) -> None:
    clock = SettlingClock(lambda: InFlight.count > 0)
    behavior = ModelBehavior(rate_limit=5, rate_limit_window_s=60.0)
    with FakeProviderServer({"m": behavior}, valid_keys={KEY}, clock=clock) as fake:
        backend, _ = await deployment_stack(fake, transport, clock, rpm=5)
        await asyncio.gather(*(backend.chat(ask(i)) for i in range(12)))
        assert refused(fake) == 0
        assert clock.now() == pytest.approx(120.0)  # 5 at 0 s, 5 at 60 s, 2 at 120 s


async def test_the_concurrency_cap_holds_on_the_server(transport: AiohttpTransport) -> None:
    behavior = ModelBehavior(latency_s=0.02)
    with FakeProviderServer({"slow": behavior}, valid_keys={KEY}) as fake:
        backend, limits = await deployment_stack(
            fake, transport, SYSTEM_CLOCK, model="slow", max_concurrency=3
        )
        answers = await asyncio.gather(*(backend.chat(ask(i)) for i in range(15)))
        assert len(answers) == 15
        assert fake.max_concurrency("slow") == 3
        assert limits is not None and limits.snapshot("openai/slow")["in_flight"] == 0


async def test_the_layers_stacked_as_the_router_stacks_them(transport: AiohttpTransport) -> None:
    """Ledger -> Cache -> Queue -> Fallback -> per deployment Retry -> RateLimit -> HTTP."""
    from llmrouter_integrations.core.events import EventHub, RouterEvent
    from llmrouter_integrations.costs.ledger import ledger_from_url
    from llmrouter_integrations.layers.cache import CacheBackend
    from llmrouter_integrations.layers.fallback import FallbackBackend
    from llmrouter_integrations.layers.ledger import LedgerBackend
    from llmrouter_integrations.layers.queue import QueueBackend
    from llmrouter_integrations.routing.planner import PriorityPlanner
    from llmrouter_integrations.state import MemoryCacheStore

    clock = SettlingClock(lambda: InFlight.count > 0)
    events: list[RouterEvent] = []
    hub = EventHub([events.append])
    models = {
        "small": ModelBehavior(rate_limit=2, rate_limit_window_s=60.0),
        "big": ModelBehavior(rate_limit=50, rate_limit_window_s=60.0),
    }
    deployments = [
        Deployment(provider="openai", model="small", api_key=SecretStr(KEY), rpm=2),
        Deployment(provider="openai", model="big", api_key=SecretStr(KEY)),
    ]
    names = [d.key for d in deployments]
    with FakeProviderServer(models, valid_keys={KEY}, clock=clock) as fake:
        limits = RateLimits(deployments, clock=clock, events=hub)
        queue = RequestQueue(limits, clock=clock, events=hub, max_wait=60.0)
        per_deployment: dict[str, ChatBackend] = {}
        for deployment in deployments:
            http = DeploymentBackend(
                deployment,
                endpoint=get_endpoint("openai"),
                transport=transport,
                base_url=fake.openai_base_url,
                clock=clock,
                on_rate_limits=limits.update_from_headers,
            )
            limited = RateLimitBackend(
                InFlight(http), deployment=deployment.key, limits=limits, queue=queue
            )
            per_deployment[deployment.key] = RetryBackend(
                limited, deployment=deployment.key, policy=RetryPolicy(), clock=clock, events=hub
            )

        def candidates(request: ChatRequest) -> list[str]:
            return list(request.deployments or names)

        routed = FallbackBackend(
            per_deployment, planner=PriorityPlanner(names), clock=clock, events=hub
        )
        queued = QueueBackend(routed, queue, candidate_names=candidates)
        cached = CacheBackend(
            queued,
            MemoryCacheStore(clock=clock),
            candidate_names=candidates,
            deployments=deployments,
            clock=clock,
            events=hub,
        )
        costs = ledger_from_url("memory")
        router = LedgerBackend(cached, costs, clock=clock)

        first = await asyncio.gather(*(router.chat(ask(i)) for i in range(6)))
        again = await asyncio.gather(*(router.chat(ask(i)) for i in range(6)))

        assert refused(fake) == 0
        served = [a.deployment for a in first]
        assert served.count("openai/small") == 2 and served.count("openai/big") == 4
        assert all(a.cached for a in again) and fake.request_count() == 6
        assert costs.requests == 12 and costs.summary().cache_hits == 6
        # "small" at its rpm is skipped at once (no 60 s wait) for "big", which has room.
        fallbacks = [e for e in events if e.type == "fallback"]
        assert len(fallbacks) == 4 and all(
            "RateLimitWaitError" in e.data["error"] for e in fallbacks
        )
        assert len([e for e in events if e.type == "cache_hit"]) == 6
        assert clock.now() == 0.0
