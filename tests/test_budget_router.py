"""Budgets and the cost ledger through the whole Router, against the loopback fake providers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from llmrouter_integrations import (
    AllDeploymentsFailedError,
    Budget,
    BudgetExceededError,
    Deployment,
    RetryPolicy,
    Router,
    RouterEvent,
)
from llmrouter_integrations.costs.pricing import Pricer
from llmrouter_integrations.costs.tokens import estimate_input_tokens
from llmrouter_integrations.providers.endpoints import get_endpoint
from llmrouter_integrations.routing.health import BreakerPolicy
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior
from llmrouter_integrations.types import ChatRequest, Message

KEY = "sk-test-budget-0123456789abcdef"
PROMPT = "Explain budgets in one line, please."
NO_RETRY = RetryPolicy(max_attempts=1)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(valid_keys=[KEY]) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake: FakeProviderServer) -> None:
    fake.reset()
    fake.set_behavior("gpt-4o-mini", ModelBehavior())
    fake.set_behavior("gpt-4o", ModelBehavior())


def deployment(fake: FakeProviderServer, model: str = "gpt-4o-mini") -> Deployment:
    return Deployment("openai", model, api_key=KEY, base_url=fake.openai_base_url)


def worst_case(model: str, max_tokens: int) -> Decimal:
    request = ChatRequest(messages=[Message(role="user", content=PROMPT)], max_tokens=max_tokens)
    cost = Pricer().estimate(
        Deployment("openai", model),
        estimate_input_tokens(request),
        max_tokens,
        prices_provider="openai",
    )
    assert cost is not None
    return cost


async def test_a_budget_holds_under_500_concurrent_requests(fake: FakeProviderServer) -> None:
    # Every answer uses all 60 output tokens: actual costs come close to the worst case.
    fake.set_behavior("gpt-4o-mini", ModelBehavior(errors=[500] * 20, usage={"output": 60}))
    limit = worst_case("gpt-4o-mini", 60) * 100  # about 100 calls at their worst case
    alerts: list[RouterEvent] = []
    router = Router(
        strategy="priority",
        deployments=[deployment(fake)],
        budgets=[Budget(limit, period="day", name="daily")],
        retry=NO_RETRY,
        # The 20 scripted 500s would open the circuit breaker; this test is about budgets.
        breaker=BreakerPolicy(failure_threshold=1_000, window=1_000, min_calls=1_000),
        on_event=lambda e: alerts.append(e) if e.type == "budget_alert" else None,
    )
    outcomes: list[str] = []

    async def call(n: int) -> None:
        for _ in range(n % 40):
            await asyncio.sleep(0)
        try:
            await router.achat(
                [{"role": "user", "content": PROMPT}], max_tokens=60, user=f"u{n % 7}"
            )
        except BudgetExceededError:
            outcomes.append("refused")
        except AllDeploymentsFailedError:  # the only deployment answered HTTP 500
            outcomes.append("failed")
        else:
            outcomes.append("ok")

    async with router:
        await asyncio.gather(*(call(n) for n in range(500)))
    ok, failed, refused = (outcomes.count(k) for k in ("ok", "failed", "refused"))
    # The fake's request log: refused calls never sent a byte.
    assert fake.request_count("gpt-4o-mini") == ok + failed
    assert refused > 0 and failed == 20 and ok >= 100
    assert router.costs.total <= limit
    assert router.costs.requests == 500
    assert router.costs.failed_requests == failed + refused
    fired = [e.data["threshold"] for e in alerts]
    reached = router.costs.total / limit
    assert fired == [t for t in (0.5, 0.8, 1.0) if t <= reached]  # each reached one, once
    assert fired  # with refusals, at least half the budget was spent


async def test_falls_back_to_a_cheaper_deployment_then_refuses(fake: FakeProviderServer) -> None:
    pricey_worst = worst_case("gpt-4o", 200)
    router = Router(
        strategy="priority",
        deployments=[deployment(fake, "gpt-4o"), deployment(fake)],
        budgets=[Budget(pricey_worst * Decimal("0.9"), name="tight")],
        retry=NO_RETRY,
    )
    async with router:
        response = await router.achat([{"role": "user", "content": PROMPT}], max_tokens=200)
        assert response.deployment == "openai/gpt-4o-mini"  # gpt-4o cannot fit; no bytes sent to it
        assert fake.request_count("gpt-4o") == 0
        with pytest.raises(BudgetExceededError):  # nothing fits 16k output tokens
            await router.achat([{"role": "user", "content": PROMPT}], max_tokens=16_000)
    assert fake.request_count() == 1


async def test_sqlite_ledger_keeps_costs_across_routers(
    fake: FakeProviderServer, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'costs.db'}"
    async with Router(strategy="priority", deployments=[deployment(fake)], ledger=url) as first:
        answer = await first.achat(
            [{"role": "user", "content": PROMPT}], max_tokens=60, tags=["docs"]
        )
    assert first.costs.requests == 1  # still readable after close
    async with Router(strategy="priority", deployments=[deployment(fake)], ledger=url) as second:
        await second.achat([{"role": "user", "content": PROMPT}], max_tokens=60)
        assert second.costs.requests == 2
        assert second.costs.by_tag()["docs"].cost_usd == pytest.approx(answer.cost)
        assert "Total spend" in second.costs.report()


@pytest.mark.parametrize(
    ("provider", "model", "sent_as", "extra"),
    [
        ("openai", "gpt-4o-mini", "max_completion_tokens", {}),
        ("groq", "llama-3.1-8b-instant", "max_tokens", {}),
        ("anthropic", "claude-3-5-haiku-latest", "max_tokens", {}),
        # A cap passed through to the provider is the cap reserved, in its endpoint's spelling.
        ("openai", "gpt-4o-mini", "max_completion_tokens", {"max_tokens": 3_000}),
    ],
)
async def test_the_output_cap_reserved_is_the_cap_sent(
    fake: FakeProviderServer, provider: str, model: str, sent_as: str, extra: dict[str, int]
) -> None:
    # The model would write 100k tokens if nothing stopped it; no max_tokens is given, so the
    # reservation assumes the default cap, and only that cap being sent keeps spend bounded.
    fake.set_behavior(model, ModelBehavior(usage={"output": 100_000}))
    expected = extra.get("max_tokens", 4_096)
    prices_provider = get_endpoint(provider).prices_provider
    one_call = Pricer().estimate(
        Deployment(provider, model), 20, expected, prices_provider=prices_provider
    )
    assert one_call is not None
    limit = one_call * Decimal("2.5")  # two calls fit at their worst case, the third does not
    base_url = {
        "openai": fake.openai_base_url,
        "groq": fake.groq_base_url,
        "anthropic": fake.anthropic_base_url,
    }[provider]
    router = Router(
        strategy="priority",
        deployments=[Deployment(provider, model, api_key=KEY, base_url=base_url)],
        budgets=[Budget(limit, name="tight")],
        retry=NO_RETRY,
    )
    async with router:
        results = await asyncio.gather(
            *(router.achat([{"role": "user", "content": PROMPT}], **extra) for _ in range(3)),
            return_exceptions=True,
        )
    assert router.costs.total <= limit, results
    assert sum(not isinstance(r, BaseException) for r in results) == 2, results
    for request in fake.requests:
        assert request.body[sent_as] == expected
        assert {"max_tokens", "max_completion_tokens"} - {sent_as} - set(request.body) == {
            "max_tokens",
            "max_completion_tokens",
        } - {sent_as}
