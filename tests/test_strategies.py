"""Routing: candidate filtering, every strategy's ranking, and the route explanation."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from decimal import Decimal
from typing import Any

import pytest

from llmrouter_integrations.core.clock import ManualClock
from llmrouter_integrations.costs.pricing import Pricer
from llmrouter_integrations.errors import (
    CircuitOpenError,
    ConfigurationError,
    NoDeploymentAvailableError,
)
from llmrouter_integrations.layers.breaker import CircuitBreakerBackend
from llmrouter_integrations.routing.catalog import Catalog
from llmrouter_integrations.routing.health import BreakerPolicy, DeploymentHealth, HealthTracker
from llmrouter_integrations.routing.planner import Route, RoutingPlanner
from llmrouter_integrations.routing.strategies import (
    BalancedStrategy,
    Candidate,
    LatencyStrategy,
    WeightedStrategy,
    make_strategy,
)
from llmrouter_integrations.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ContentPart,
    Deployment,
    Message,
    ToolSpec,
)

CATALOG = Catalog()


def dep(name: str, price: float | None = 1.0, **fields: Any) -> Deployment:
    """A deployment the catalog does not know, priced at `price` USD per million tokens."""
    priced = {"input": price, "output": price} if price is not None else None
    return Deployment(provider="custom", model=f"model-{name}", name=name, price=priced, **fields)


def planner_for(
    deployments: list[Deployment],
    strategy: Any,
    *,
    clock: ManualClock | None = None,
    policy: BreakerPolicy | None = None,
    **hooks: Any,
) -> RoutingPlanner:
    tracker = HealthTracker(
        [d.key for d in deployments], clock=clock or ManualClock(), policy=policy
    )
    return RoutingPlanner(
        deployments,
        strategy=strategy,
        catalog=CATALOG,
        health=tracker,
        pricer=Pricer(),
        prices_provider_of=lambda d: d.provider,
        is_local=lambda d: False,
        **hooks,
    )


def ask(text: str = "hi", **fields: Any) -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content=text)], **fields)


TOOL = ToolSpec(name="lookup", description="find a thing")


# ------------------------------------------------------------------ filtering
def test_cost_picks_the_cheapest_that_supports_tools_and_fits() -> None:
    deployments = [
        dep("no-tools", price=0.1, capabilities={"tools": False}),
        dep("small", price=0.2, context_window=1_000),
        dep("pricey", price=10.0),
        dep("fits", price=1.0),
    ]
    planner = planner_for(deployments, "cost")
    plan = planner.plan(ask("word " * 1_000, tools=[TOOL], max_tokens=100))
    assert plan.order == ["fits", "pricey"]
    route = plan.explanation
    assert isinstance(route, Route)
    assert route.filtered["no-tools"] == "does not support tools"
    assert route.filtered["small"].startswith("needs ~")
    assert route.filtered["small"].endswith("context window is 1,000")
    # Without tools and with a short prompt, the cheapest of all wins.
    assert planner.plan(ask("hi", max_tokens=100)).order[0] == "no-tools"


def test_cost_and_quality_with_real_catalog_models() -> None:
    deployments = [
        Deployment(provider="openai", model="gpt-4o-mini"),
        Deployment(provider="anthropic", model="claude-sonnet-4-5"),
        Deployment(provider="groq", model="llama-3.1-8b-instant"),
    ]
    request = ask("Explain quantum computing", max_tokens=200)
    cost_order = planner_for(deployments, "cost").plan(request).order
    quality_order = planner_for(deployments, "quality").plan(request).order
    assert cost_order == [
        "groq/llama-3.1-8b-instant",
        "openai/gpt-4o-mini",
        "anthropic/claude-sonnet-4-5",
    ]
    assert quality_order[0] == "anthropic/claude-sonnet-4-5"
    assert quality_order[-1] == "groq/llama-3.1-8b-instant"


def test_quality_picks_the_best_with_overrides_and_unknowns_last() -> None:
    deployments = [dep("mid", quality=0.6), dep("unknown"), dep("best", quality=0.9)]
    assert planner_for(deployments, "quality").plan(ask()).order == ["best", "mid", "unknown"]


def test_images_and_json_schema_need_the_capability() -> None:
    deployments = [
        dep("text-only", capabilities={"vision": False, "json_schema": False}),
        dep("sees", capabilities={"vision": True, "json_schema": False}),
        dep("all", capabilities={"vision": True, "json_schema": True}),
    ]
    planner = planner_for(deployments, "priority")
    image = Message(
        role="user",
        content=[
            ContentPart(type="text", text="what is this?"),
            ContentPart(type="image", image_url="https://x/cat.png"),
        ],
    )
    plan = planner.plan(ChatRequest(messages=[image]))
    assert plan.order == ["sees", "all"]
    assert plan.explanation.filtered == {"text-only": "does not support vision"}
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}
    plan = planner.plan(ChatRequest(messages=[image], response_format=schema))
    assert plan.order == ["all"]
    assert plan.explanation.filtered["text-only"] == "does not support vision or json schema"


def test_the_filtering_error_names_the_constraint_for_each_deployment() -> None:
    clock = ManualClock()
    deployments = [
        dep("excluded"),
        dep("no-tools", capabilities={"tools": False}),
        dep("tiny", context_window=500),
        # Resting and too dear: the first constraint in filter order is named. (A deployment
        # removed by its circuit alone would be tried anyway; see the test below.)
        dep("tired", price=1_000.0),
        dep("dear", price=1_000.0),
        dep("broke"),
        dep("unpriced", price=None),
    ]

    def budget(request: ChatRequest, deployment: Deployment, cost: Decimal | None) -> str | None:
        return "daily budget $5.00 has $0.00 left" if deployment.key == "broke" else None

    planner = planner_for(
        deployments,
        "balanced",
        clock=clock,
        budget_check=budget,
        policy=BreakerPolicy(failure_threshold=1, cooldown_s=30),
    )
    planner.health.record_failure("tired")
    clock.advance(18)
    request = ask(
        "word " * 500,
        tools=[TOOL],
        max_tokens=100,
        max_cost_usd=0.01,
        deployments=("no-tools", "tiny", "tired", "dear", "broke", "unpriced"),
    )
    with pytest.raises(NoDeploymentAvailableError) as caught:
        planner.plan(request)
    reasons = caught.value.reasons
    assert reasons["excluded"].startswith("not in deployments=['no-tools'")
    assert reasons["no-tools"] == "does not support tools"
    assert reasons["tiny"].startswith("needs ~") and "context window is 500" in reasons["tiny"]
    assert reasons["tired"] == "circuit open, retry in 12 s"
    assert reasons["dear"].startswith("estimated $0.") and "> max_cost_usd $0.01" in reasons["dear"]
    assert reasons["broke"] == "daily budget $5.00 has $0.00 left"
    assert reasons["unpriced"] == "no price known, so max_cost_usd $0.01 cannot be checked"
    assert "does not support tools" in str(caught.value)


def test_max_tokens_over_the_models_maximum_output_is_filtered() -> None:
    deployments = [Deployment(provider="openai", model="gpt-4o-mini"), dep("roomy")]
    plan = planner_for(deployments, "priority").plan(ask(max_tokens=50_000))
    assert plan.order == ["roomy"]
    assert "maximum output of 16,384" in plan.explanation.filtered["openai/gpt-4o-mini"]


def test_deployment_at_capacity_is_tried_last_not_removed() -> None:
    deployments = [dep("a"), dep("b"), dep("c")]
    planner = planner_for(deployments, "priority", capacity_check=lambda d, tokens: d.key != "a")
    plan = planner.plan(ask())
    assert plan.order == ["b", "c", "a"]
    assert "at capacity" in plan.explanation.notes["a"]


async def test_when_every_circuit_is_open_the_closest_to_recovery_is_tried() -> None:
    clock = ManualClock()
    deployments = [dep("a"), dep("b")]
    planner = planner_for(
        deployments,
        "priority",
        clock=clock,
        policy=BreakerPolicy(failure_threshold=1, cooldown_s=30),
    )
    planner.health.record_failure("a")
    clock.advance(20)
    planner.health.record_failure("b")  # a recovers in 10 s, b in 30 s
    plan = planner.plan(ask())
    assert plan.order == ["a"]
    assert "closest to recovery" in plan.explanation.notes["a"]
    assert plan.explanation.filtered == {"b": "circuit open, retry in 30 s"}
    breaker = CircuitBreakerBackend(Answering(clock), deployment="a", health=planner.health)
    await breaker.chat(ask())  # the early probe goes through, and succeeds
    assert planner.health.state("a") == "closed"
    with pytest.raises(CircuitOpenError):  # b was not granted anything
        await CircuitBreakerBackend(Answering(clock), deployment="b", health=planner.health).chat(
            ask()
        )


# ------------------------------------------------------------------ strategies
def test_balanced_moves_as_weights_move() -> None:
    deployments = [dep("cheap", price=0.1, quality=0.3), dep("smart", price=10.0, quality=0.9)]
    request = ask(max_tokens=100)
    by_cost = planner_for(deployments, BalancedStrategy({"cost": 3, "quality": 1})).plan(request)
    by_quality = planner_for(deployments, BalancedStrategy({"cost": 1, "quality": 3})).plan(request)
    assert by_cost.order == ["cheap", "smart"]
    assert by_quality.order == ["smart", "cheap"]
    # Equal weights: cheap wins cost (1 vs 0), smart wins quality (1 vs 0) -> a tie on score,
    # and latency tips it once observed.
    planner = planner_for(deployments, BalancedStrategy({"cost": 1, "quality": 1, "latency": 1}))
    planner.health.record_success("smart", latency_s=0.2)
    planner.health.record_success("cheap", latency_s=2.0)
    assert planner.plan(request).order == ["smart", "cheap"]


def test_balanced_normalises_so_units_do_not_dominate() -> None:
    # Costs differ by a million-fold in absolute dollars and quality by 0.5, yet with equal
    # weights both terms span 0..1, so the result is a tie broken by configured order.
    deployments = [dep("cheap", price=0.001, quality=0.4), dep("smart", price=1000.0, quality=0.9)]
    plan = planner_for(deployments, BalancedStrategy({"cost": 1, "quality": 1})).plan(ask())
    scores = plan.explanation.scores
    assert scores["cheap"]["cost"] == 1.0 and scores["smart"]["cost"] == 0.0
    assert scores["cheap"]["quality"] == 0.0 and scores["smart"]["quality"] == 1.0
    assert scores["cheap"]["score"] == scores["smart"]["score"]


def test_balanced_unknown_values_are_neutral_and_errors_reduce_the_score() -> None:
    deployments = [dep("known", quality=0.8), dep("unknown"), dep("low", quality=0.2)]
    planner = planner_for(deployments, BalancedStrategy({"quality": 1}))
    plan = planner.plan(ask())
    assert plan.order == ["known", "unknown", "low"]
    assert plan.explanation.scores["unknown"]["quality"] == 0.5
    for _ in range(3):
        planner.health.record_failure("known")
    planner.health.record_success("known", latency_s=1)  # 75% of its calls failed
    assert planner.plan(ask()).order[0] == "unknown"


def test_balanced_ignores_noise_below_the_minimum_span() -> None:
    deployments = [dep("a", quality=0.80), dep("b", quality=0.81)]
    plan = planner_for(deployments, BalancedStrategy({"quality": 1})).plan(ask())
    assert plan.explanation.scores["a"]["quality"] == pytest.approx(0.8)  # not stretched to 0


def test_round_robin_rotates_the_first_choice() -> None:
    planner = planner_for([dep("a"), dep("b"), dep("c")], "round_robin")
    firsts = [planner.plan(ask()).order[0] for _ in range(6)]
    assert firsts == ["a", "b", "c", "a", "b", "c"]


def test_weighted_follows_weights() -> None:
    deployments = [dep("heavy", weight=3.0), dep("light", weight=1.0), dep("off", weight=0.0)]
    planner = planner_for(deployments, WeightedStrategy(rng=random.Random(1)))
    plans = [planner.plan(ask()).order for _ in range(2_000)]
    share = Counter(order[0] for order in plans)["heavy"] / len(plans)
    assert 0.71 < share < 0.79
    assert all(order[-1] == "off" for order in plans)


def test_make_strategy_names_and_custom_objects() -> None:
    for name in (
        "priority",
        "round_robin",
        "weighted",
        "least_busy",
        "cost",
        "quality",
        "latency",
        "balanced",
    ):
        assert make_strategy(name).name == name  # type: ignore[attr-defined]
    with pytest.raises(ConfigurationError, match="unknown routing strategy"):
        make_strategy("fastest")
    with pytest.raises(ConfigurationError):
        BalancedStrategy({"speed": 1})

    class Reverse:
        def rank(
            self,
            request: ChatRequest,
            candidates: list[Candidate],
            health: Mapping[str, DeploymentHealth],
        ) -> list[Candidate]:
            return list(reversed(candidates))

    plan = planner_for([dep("a"), dep("b")], Reverse()).plan(ask())
    assert plan.order == ["b", "a"]
    assert plan.explanation.strategy == "Reverse"


# ------------------------------------------------------------------ latency, load
class Answering:
    """A backend answering after `delay` seconds of the (manual) clock."""

    def __init__(self, clock: ManualClock, delay: float = 0.1) -> None:
        self.clock = clock
        self.delay = delay

    async def chat(self, request: ChatRequest) -> ChatResponse:
        await self.clock.sleep(self.delay)
        return ChatResponse(message=Message(role="assistant", content="ok"))

    def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


async def _send(
    planner: RoutingPlanner, breakers: Mapping[str, CircuitBreakerBackend], count: int
) -> list[str]:
    served = []
    for _ in range(count):
        name = planner.plan(ask()).order[0]
        await breakers[name].chat(ask())
        served.append(name)
    return served


async def test_latency_moves_traffic_to_the_fastest_and_back_after_recovery() -> None:
    clock = ManualClock()
    deployments = [dep("slow"), dep("fast"), dep("medium")]
    planner = planner_for(
        deployments, LatencyStrategy(epsilon=0.1, rng=random.Random(3)), clock=clock
    )
    backends = {
        "slow": Answering(clock, 1.0),
        "fast": Answering(clock, 0.2),
        "medium": Answering(clock, 0.5),
    }
    breakers = {
        n: CircuitBreakerBackend(b, deployment=n, health=planner.health)
        for n, b in backends.items()
    }

    served = await _send(planner, breakers, 30)
    assert served[:3] == ["slow", "fast", "medium"]  # each unmeasured one is tried first
    assert Counter(served[3:])["fast"] >= 0.8 * 27

    backends["fast"].delay = 3.0  # fast degrades
    served = await _send(planner, breakers, 30)
    assert Counter(served[5:])["medium"] >= 0.8 * 25

    backends["fast"].delay = 0.2  # and recovers; only exploration can notice
    served = await _send(planner, breakers, 60)
    back = served.index("fast")
    assert back < 40
    assert Counter(served[back:])["fast"] >= 0.8 * len(served[back:])


async def test_least_busy_spreads_concurrent_requests_evenly() -> None:
    names = ["a", "b", "c", "d"]
    planner = planner_for([dep(n) for n in names], "least_busy")
    gate = asyncio.Event()
    started: Counter[str] = Counter()

    class Waiting:
        def __init__(self, name: str) -> None:
            self.name = name

        async def chat(self, request: ChatRequest) -> ChatResponse:
            started[self.name] += 1
            await gate.wait()
            return ChatResponse(message=Message(role="assistant", content="ok"))

        def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
            raise NotImplementedError

        async def aclose(self) -> None:
            return None

    breakers = {
        n: CircuitBreakerBackend(Waiting(n), deployment=n, health=planner.health) for n in names
    }

    async def one() -> None:
        await asyncio.sleep(0)
        await breakers[planner.plan(ask()).order[0]].chat(ask())

    for _ in range(12):  # "a" is already busy with 12 calls from elsewhere
        planner.health.begin("a")
    tasks = [asyncio.create_task(one()) for _ in range(100)]
    while sum(started.values()) < 100:
        await asyncio.sleep(0)
    load = {n: planner.health.snapshot()[n].in_flight for n in names}
    assert load["a"] == started["a"] + 12
    assert sum(load.values()) == 112
    assert max(load.values()) - min(load.values()) <= 2  # 28 each, "a" got only ~16 new
    gate.set()
    await asyncio.gather(*tasks)


def test_least_busy_respects_max_concurrency() -> None:
    deployments = [dep("big", max_concurrency=10), dep("small", max_concurrency=2)]
    planner = planner_for(deployments, "least_busy")
    for _ in range(3):
        planner.health.begin("big")
    planner.health.begin("small")
    # big is 3/10 busy, small 1/2: big goes first despite more calls in flight.
    assert planner.plan(ask()).order == ["big", "small"]


# ------------------------------------------------------------------ explanation
def test_route_explanation_lists_considered_filtered_scores_and_order() -> None:
    deployments = [
        dep("cheap", price=0.1, quality=0.3),
        dep("smart", price=5.0, quality=0.9),
        dep("blind", capabilities={"tools": False}),
    ]
    plan = planner_for(deployments, "balanced").plan(ask("hi", tools=[TOOL], max_tokens=50))
    route = plan.explanation
    assert isinstance(route, Route)
    assert route.strategy == "balanced"
    assert route.considered == ["cheap", "smart", "blind"]
    assert route.filtered == {"blind": "does not support tools"}
    assert route.order == plan.order and set(route.order) == {"cheap", "smart"}
    assert set(route.scores["cheap"]) >= {"cost", "quality", "latency", "score", "cost_usd"}
    text = str(route)
    assert "route by balanced: 3 considered, 1 filtered" in text
    assert "blind: does not support tools" in text
    assert "1. " in text and "score" in text
    assert json.loads(json.dumps(route.to_dict()))["filtered"] == route.filtered


def test_construction_rejects_bad_overrides_before_any_request() -> None:
    with pytest.raises(ConfigurationError, match="quality"):
        planner_for([dep("a", quality=2.0)], "quality")


def test_latency_counts_recent_failures_as_slowness() -> None:
    planner = planner_for([dep("flaky"), dep("steady")], LatencyStrategy(epsilon=0.0))
    planner.health.record_success("flaky", latency_s=0.10)
    planner.health.record_success("steady", latency_s=0.12)
    assert planner.plan(ask()).order == ["flaky", "steady"]
    planner.health.record_failure("flaky")  # 1 in 2 failed: expected 0.2 s, slower than 0.12
    plan = planner.plan(ask())
    assert plan.order == ["steady", "flaky"]
    assert plan.explanation.scores["flaky"]["expected_s"] == pytest.approx(0.2)
