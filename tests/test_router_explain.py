"""What a user sees of routing through the Router: the route explanation, health, strategies."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import redirect_stdout

import pytest

from llmrouter_integrations import (
    ConfigurationError,
    Deployment,
    ManualClock,
    NoDeploymentAvailableError,
    RetryPolicy,
    Router,
    RouterEvent,
)
from llmrouter_integrations.cli import main as cli_main
from llmrouter_integrations.routing.health import BreakerPolicy
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior

KEY = "sk-test-explain-0123456789"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake: FakeProviderServer) -> None:
    fake.reset()
    for model in ("gpt-4o-mini", "gpt-4o", "claude-haiku-4-5", "local-model"):
        fake.set_behavior(model, ModelBehavior())


def deployments(fake: FakeProviderServer) -> list[Deployment]:
    return [
        Deployment("openai", "gpt-4o", api_key=KEY, base_url=fake.openai_base_url),
        Deployment("openai", "gpt-4o-mini", api_key=KEY, base_url=fake.openai_base_url),
        Deployment("anthropic", "claude-haiku-4-5", api_key=KEY, base_url=fake.anthropic_base_url),
        Deployment(
            "vllm",
            "local-model",
            api_key=KEY,  # the fake wants a key; vLLM accepts one too
            base_url=fake.openai_base_url,
            name="local",
            capabilities={"tools": False},
            context_window=1_000,
            quality=0.1,
        ),
    ]


async def test_cost_strategy_picks_cheapest_that_supports_tools(fake: FakeProviderServer) -> None:
    async with Router(deployments=deployments(fake), strategy="cost") as router:
        plain = await router.acomplete("hi", max_tokens=50)
        tooled = await router.acomplete("weather in Paris?", tools=[WEATHER], max_tokens=50)
    assert plain.deployment == "local" and plain.cost == 0  # a local model is free
    assert plain.attempts == []
    assert tooled.deployment == "openai/gpt-4o-mini"  # cheapest with tools
    route = tooled.route
    assert route.strategy == "cost"
    assert "does not support tools" in route.filtered["local"]
    assert route.order[0] == "openai/gpt-4o-mini" and route.order[-1] == "openai/gpt-4o"
    assert "local" in str(route) and "tools" in str(route)
    assert route.to_dict()["order"] == route.order


async def test_context_window_filter_and_error_names_each_constraint(
    fake: FakeProviderServer,
) -> None:
    long_prompt = "word " * 3_000  # ~4k tokens: too big for the 1k local window
    async with Router(deployments=deployments(fake), strategy="cost") as router:
        response = await router.acomplete(long_prompt, max_tokens=50)
        assert response.deployment != "local"
        assert "context window" in response.route.filtered["local"]
        with pytest.raises(NoDeploymentAvailableError) as caught:
            await router.acomplete(long_prompt, tools=[WEATHER], deployments=["local"])
    reasons = caught.value.reasons
    assert set(reasons) == {
        "openai/gpt-4o",
        "openai/gpt-4o-mini",
        "anthropic/claude-haiku-4-5",
        "local",
    }
    assert "not in deployments" in reasons["openai/gpt-4o"]
    assert "tools" in reasons["local"]


async def test_quality_strategy_and_max_cost(fake: FakeProviderServer) -> None:
    async with Router(deployments=deployments(fake), strategy="quality") as router:
        best = await router.acomplete("hi", max_tokens=50)
        capped = await router.acomplete("hi", max_tokens=50, max_cost_usd=0.0001)
    # LMArena (2026-10-08) rates claude-haiku-4-5 above gpt-4o, the catalog's quality prior
    assert best.deployment == "anthropic/claude-haiku-4-5"
    assert best.route.order[-1] == "local"  # quality=0.1 from the Deployment override
    assert capped.deployment not in ("anthropic/claude-haiku-4-5", "openai/gpt-4o")
    assert "max_cost_usd" in capped.route.filtered["anthropic/claude-haiku-4-5"]


def test_unknown_strategy_is_a_configuration_error(fake: FakeProviderServer) -> None:
    with pytest.raises(ConfigurationError, match="balanced"):
        Router(deployments=deployments(fake), strategy="fastest-please")


async def test_health_shows_the_breaker_opening_and_routing_around_it(
    fake: FakeProviderServer,
) -> None:
    clock = ManualClock()
    events: list[RouterEvent] = []
    fake.set_behavior("gpt-4o-mini", ModelBehavior(permanent_error=500))
    router = Router(
        deployments=deployments(fake)[1:3],
        strategy="priority",
        retry=RetryPolicy(max_attempts=1),
        breaker=BreakerPolicy(failure_threshold=2, cooldown_s=30),
        clock=clock,
        on_event=events.append,
    )
    async with router:
        for _ in range(3):
            await router.acomplete("hi")
        health = router.health()
        assert health["openai/gpt-4o-mini"].circuit == "open"
        assert health["anthropic/claude-haiku-4-5"].circuit == "closed"
        sent_while_open = fake.request_count("gpt-4o-mini")
        response = await router.acomplete("hi")
        assert fake.request_count("gpt-4o-mini") == sent_while_open  # no traffic to an open circuit
        assert "circuit open" in response.route.filtered["openai/gpt-4o-mini"]
        fake.set_behavior("gpt-4o-mini", ModelBehavior())
        clock.advance(31)  # cooldown over: one probe goes through and closes the circuit
        probe = await router.acomplete("hi")
        assert probe.deployment == "openai/gpt-4o-mini"
        assert router.health()["openai/gpt-4o-mini"].circuit == "closed"
    states = [e.data["state"] for e in events if e.type == "circuit"]
    assert states == ["open", "half_open", "closed"]


async def test_balanced_is_the_default_and_explains_scores(fake: FakeProviderServer) -> None:
    async with Router(deployments=deployments(fake)[:3]) as router:
        response = await router.acomplete("hi", max_tokens=50)
    assert response.route.strategy == "balanced"
    assert set(response.route.scores) == set(response.route.order)


def test_cli_chat_explain_prints_the_route(
    fake: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake.openai_base_url)
    out = io.StringIO()
    with redirect_stdout(out):
        code = cli_main(["chat", "What is a router?", "--explain", "--max-tokens", "40"])
    text = out.getvalue()
    assert code == 0
    assert "Echo: What is a router?" in text
    assert "route by balanced" in text and "openai/gpt-4o-mini" in text
