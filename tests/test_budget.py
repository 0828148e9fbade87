"""Budgets: reserve the worst case before sending, settle after; never overshoot; roll over; alert."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from llmrouter_integrations.core.clock import ManualClock
from llmrouter_integrations.core.events import EventHub, RouterEvent
from llmrouter_integrations.costs.budget import Budget, BudgetManager, BudgetRefusal
from llmrouter_integrations.costs.ledger import CostLedger, LedgerEntry
from llmrouter_integrations.costs.pricing import Pricer
from llmrouter_integrations.costs.tokens import estimate_input_tokens
from llmrouter_integrations.errors import (
    BudgetExceededError,
    ConfigurationError,
    ResponseDecodeError,
    ServerError,
)
from llmrouter_integrations.layers.budget import BudgetBackend
from llmrouter_integrations.state.ledger_sqlite import SQLiteLedgerStore
from llmrouter_integrations.testing import ScriptedBackend, ScriptedStep
from llmrouter_integrations.types import ChatRequest, Deployment, Message, Usage

NOV_30_NOON = datetime(2026, 11, 30, 12, tzinfo=timezone.utc).timestamp()
D = Decimal


def req(
    user: str | None = None, tags: tuple[str, ...] = (), max_tokens: int | None = 100
) -> ChatRequest:
    return ChatRequest(
        messages=[Message(role="user", content="hello there")],
        user=user,
        tags=tags,
        max_tokens=max_tokens,
    )


def manager(*budgets: Budget, clock: ManualClock | None = None, **kwargs: object) -> BudgetManager:
    return BudgetManager(budgets, clock=clock or ManualClock(wall_start=NOV_30_NOON), **kwargs)  # type: ignore[arg-type]


def spent(m: BudgetManager) -> dict[tuple[str, str], tuple[float, float]]:
    return {(s.budget, s.scope_value): (s.spent_usd, s.reserved_usd) for s in m.status()}


# -- the budget object -------------------------------------------------------------------


def test_budget_validates_and_names_itself() -> None:
    assert Budget(10, period="day").name == "daily"
    assert Budget(1, period="month", scope="user").name == "monthly per user"
    assert Budget(2, scope="tag", key="search").name == "total for tag search"
    assert Budget("0.5", name="experiments").limit == D("0.5")
    assert Budget(1, alert_thresholds=(1.0, 0.25)).alert_thresholds == (0.25, 1.0)
    for bad in (
        {"limit_usd": -1},
        {"limit_usd": 1, "period": "week"},
        {"limit_usd": 1, "scope": "team"},
        {"limit_usd": 1, "key": "x"},
        {"limit_usd": 1, "alert_thresholds": (0,)},
    ):
        with pytest.raises(ConfigurationError):
            Budget(**bad)  # type: ignore[arg-type]


# -- reserve, settle, release ------------------------------------------------------------


def test_reserve_settle_and_release() -> None:
    m = manager(Budget(1, period="day"))
    first = m.reserve(req(), "a", D("0.6"))
    assert spent(m) == {("daily", ""): (0.0, 0.6)}
    with pytest.raises(BudgetExceededError) as refused:
        m.reserve(req(), "a", D("0.5"))  # 0.6 reserved + 0.5 > 1
    error = refused.value
    assert (error.limit_usd, error.spent_usd, error.needed_usd, error.budget) == (
        1.0,
        0.0,
        0.5,
        "daily",
    )
    assert "Nothing was sent" in str(error)
    m.settle(first, D("0.2"))  # the call cost less than its worst case: the rest is freed
    assert spent(m) == {("daily", ""): (0.2, 0.0)}
    second = m.reserve(req(), "a", D("0.5"))
    m.release(second)  # failed, not billed
    m.release(second)  # releasing twice changes nothing
    m.settle(second, D("9"))  # nor does settling after a release
    assert spent(m) == {("daily", ""): (0.2, 0.0)}
    assert m.check(req(), "a", D("0.8")) is None
    assert (
        m.check(req(), "a", D("0.81")) == "would exceed budget 'daily': $0.8000 left, needs $0.8100"
    )
    assert spent(m) == {("daily", ""): (0.2, 0.0)}  # check reserves nothing


def test_every_applicable_budget_must_fit() -> None:
    m = manager(
        Budget(10, period="day"),
        Budget(1, period="day", scope="user"),
        Budget(D("0.5"), scope="tag", key="beta"),
        Budget(2, scope="deployment", key="pricey"),
    )
    m.settle(m.reserve(req(user="alice"), "a", D("0.9")), D("0.9"))
    with pytest.raises(BudgetExceededError) as refused:
        m.reserve(req(user="alice"), "a", D("0.2"))
    assert refused.value.budget == "daily per user"
    m.reserve(req(user="bob"), "a", D("0.2"))  # each user has their own limit
    m.reserve(req(), "a", D("0.2"))  # no user: user budgets do not apply
    with pytest.raises(BudgetExceededError, match="total for tag beta"):
        m.reserve(req(tags=("beta", "x")), "a", D("0.6"))
    with pytest.raises(BudgetExceededError, match="total for deployment pricey"):
        m.reserve(req(), "pricey", D("2.5"))
    assert m.applies(req(), "cheap") and not manager(Budget(1, scope="user")).applies(req(), "x")
    status = spent(m)
    assert status[("daily", "")] == (0.9, 0.4)
    assert status[("daily per user", "alice")] == (0.9, 0.0)


def test_free_calls_always_fit_even_over_the_limit() -> None:
    m = manager(Budget(1))
    m.settle(m.reserve(req(), "a", D("0.5")), D("1.5"))  # the estimate was wrong: overspent
    m.reserve(req(), "local", D(0))
    with pytest.raises(BudgetExceededError):
        m.reserve(req(), "a", D("0.000001"))


# -- periods and alerts ------------------------------------------------------------------


def test_day_and_month_budgets_roll_over_at_utc_boundaries() -> None:
    clock = ManualClock(wall_start=NOV_30_NOON)
    m = manager(Budget(1, period="day"), Budget(3, period="month"), clock=clock)
    m.settle(m.reserve(req(), "a", D(1)), D(1))
    with pytest.raises(BudgetExceededError, match="daily"):
        m.reserve(req(), "a", D("0.1"))
    clock.advance(12 * 3600 - 1)  # 23:59:59 on Nov 30: still the same day
    with pytest.raises(BudgetExceededError, match="daily"):
        m.reserve(req(), "a", D("0.1"))
    in_flight = m.reserve(req(), "a", D(0))  # a free call spanning midnight
    clock.advance(1)  # Dec 1, 00:00 UTC: new day and new month
    m.settle(m.reserve(req(), "a", D(1)), D(1))
    m.settle(in_flight, D(0))
    assert spent(m) == {("daily", ""): (1.0, 0.0), ("monthly", ""): (1.0, 0.0)}
    clock.advance(86_400)
    m.settle(m.reserve(req(), "a", D(1)), D(1))
    clock.advance(86_400)
    m.settle(m.reserve(req(), "a", D(1)), D(1))
    clock.advance(86_400)  # Dec 4: a fresh day, but $3 spent this month already
    with pytest.raises(BudgetExceededError, match="monthly"):
        m.reserve(req(), "a", D("0.5"))


def test_a_reservation_in_flight_keeps_its_money_across_the_boundary() -> None:
    clock = ManualClock(wall_start=NOV_30_NOON + 12 * 3600 - 10)
    m = manager(Budget(1, period="day"), clock=clock)
    held = m.reserve(req(), "a", D("0.9"))
    clock.advance(20)
    with pytest.raises(BudgetExceededError):  # the new day starts with 0.9 still held
        m.reserve(req(), "a", D("0.2"))
    m.settle(held, D("0.3"))
    assert spent(m) == {("daily", ""): (0.3, 0.0)}  # billed when it finished: the new day


def test_alerts_fire_once_per_threshold_per_period() -> None:
    clock = ManualClock(wall_start=NOV_30_NOON)
    events: list[RouterEvent] = []
    m = manager(
        Budget(10, period="day", scope="user", alert_thresholds=(0.5, 0.8, 1.0)),
        clock=clock,
        events=EventHub([events.append]),
    )

    def spend(amount: str, user: str = "alice") -> None:
        m.settle(m.reserve(req(user=user), "dep", D(amount)), D(amount))

    spend("4")
    assert events == []
    spend("1.5")  # 55%
    spend("1")  # 65%: 50% already announced
    spend("2")  # 85%
    spend("3", user="bob")  # bob's own account: 30%
    assert [(e.data["key"], e.data["threshold"]) for e in events] == [
        ("alice", 0.5),
        ("alice", 0.8),
    ]
    alert = events[0]
    assert alert.type == "budget_alert" and alert.deployment == "dep"
    assert alert.data["budget"] == "daily per user" and alert.data["limit_usd"] == 10.0
    assert alert.data["spent_usd"] == 5.5 and alert.time == NOV_30_NOON
    spend("1.5")  # exactly 100%
    spend("0")
    assert [e.data["threshold"] for e in events] == [0.5, 0.8, 1.0]
    clock.advance(86_400)  # next day: thresholds can fire again
    spend("6")
    assert [e.data["threshold"] for e in events] == [0.5, 0.8, 1.0, 0.5]


def test_spend_survives_a_restart_through_the_sqlite_ledger(tmp_path: Path) -> None:
    path = tmp_path / "costs.db"
    ledger = CostLedger(SQLiteLedgerStore(path))
    yesterday = NOV_30_NOON - 86_400
    for time, user, cost in [
        (yesterday, "alice", "5"),
        (NOV_30_NOON - 60, "alice", "0.75"),
        (NOV_30_NOON - 30, "bob", "0.25"),
    ]:
        ledger.record(
            LedgerEntry(time=time, deployment="a", provider="p", model="m", user=user, cost=D(cost))
        )
    ledger.close()

    events: list[RouterEvent] = []
    restarted = CostLedger(SQLiteLedgerStore(path))
    m = manager(
        Budget(D("1.5"), period="day"),
        Budget(1, period="day", scope="user"),
        Budget(10, scope="user", key="alice"),
        events=EventHub([events.append]),
        store=restarted,
    )
    with pytest.raises(BudgetExceededError, match="'daily'"):  # today: $1.00 of $1.50 spent
        m.reserve(req(user="carol"), "a", D("0.6"))
    with pytest.raises(BudgetExceededError, match="per user"):  # alice: $0.75 of $1 today
        m.reserve(req(user="alice"), "a", D("0.3"))
    held = m.reserve(req(user="alice"), "a", D("0.2"))
    status = spent(m)
    assert status[("daily per user", "alice")] == (0.75, 0.2)
    assert status[("total for user alice", "alice")] == (5.75, 0.2)  # all-time budget
    m.settle(held, D("0.01"))
    assert events == []  # thresholds already passed before the restart are not repeated
    restarted.close()


# -- the per-deployment layer ------------------------------------------------------------

PRICED = Deployment("acme", "model-a", price={"input": 1.0, "output": 2.0})  # USD per M tokens


def worst_case(request: ChatRequest) -> Decimal:
    return (estimate_input_tokens(request) * 1 + (request.max_tokens or 0) * 2) / D(1_000_000)


async def test_500_concurrent_requests_never_overshoot_the_budget() -> None:
    request = req(max_tokens=100)
    limit = worst_case(request) * 100  # room for about 100 calls at their worst case
    rng = random.Random(7)
    script: list[ScriptedStep] = []
    for n in range(500):
        if n % 9 == 4:
            script.append(ScriptedStep(error=ServerError("boom", status_code=500), delay_s=1))
            continue
        output = rng.randint(20, 100)  # real calls use less than max_tokens
        used = Usage(estimate_input_tokens(request), output, 0)
        cost = float((used.input_tokens * 1 + output * 2) / D(1_000_000))
        script.append(ScriptedStep(text="ok", usage=used, cost=cost, delay_s=1))
    clock = ManualClock()
    inner = ScriptedBackend("a", script, clock=clock)
    m = BudgetManager([Budget(limit, name="load")], clock=clock)
    backend = BudgetBackend(inner, PRICED, manager=m, pricer=Pricer())
    outcomes: list[str] = []
    settled = D(0)

    async def call() -> None:
        nonlocal settled
        for _ in range(rng.randint(0, 50)):  # arrive at different times
            await asyncio.sleep(0)
        sent_before = len(inner.calls)
        try:
            response = await backend.chat(request)
        except BudgetExceededError:
            assert len(inner.calls) == sent_before  # refused before anything was sent
            outcomes.append("refused")
        except ServerError:
            outcomes.append("failed")
        else:
            settled += D(str(response.cost))
            outcomes.append("ok")

    await asyncio.gather(*(call() for _ in range(500)))
    ok, failed, refused = (outcomes.count(k) for k in ("ok", "failed", "refused"))
    assert ok + failed + refused == 500
    assert settled <= limit
    assert 100 <= ok < 200  # cheaper-than-worst-case calls free room for more
    assert refused > 250
    assert len(inner.calls) == ok + failed  # refused calls never reached the provider
    [status] = m.status()
    assert status.reserved_usd == 0  # failed calls released their reservations
    assert D(str(status.spent_usd)) == pytest.approx(settled)


async def test_unknown_price_is_refused_only_when_a_budget_applies() -> None:
    unpriced = Deployment("acme", "mystery-model")
    inner = ScriptedBackend("m", ["hi"])
    m = BudgetManager([Budget(5, scope="user", key="alice")])
    backend = BudgetBackend(inner, unpriced, manager=m, pricer=Pricer())
    with pytest.raises(BudgetExceededError) as refused:
        await backend.chat(req(user="alice"))
    assert refused.value.needed_usd == float("inf") and "no price is known" in str(refused.value)
    reason = backend.check(req(user="alice"))
    assert reason == "no price known, so budget 'total for user alice' cannot be checked"
    assert reason is not None and reason.error.needed_usd == float("inf")
    assert inner.calls == []
    assert (await backend.chat(req(user="bob"))).text == "hi"  # no budget covers bob
    assert backend.check(req(user="bob")) is None


async def test_local_deployments_always_fit() -> None:
    m = BudgetManager([Budget(0)])
    backend = BudgetBackend(
        ScriptedBackend("l", ["hi"]),
        Deployment("ollama", "llama3.2"),
        manager=m,
        pricer=Pricer(),
        local=True,
    )
    assert (await backend.chat(req())).text == "hi"


async def test_check_tells_the_planner_why_a_candidate_does_not_fit() -> None:
    m = BudgetManager([Budget(worst_case(req()) * 3, period="day", name="daily")])
    backend = BudgetBackend(ScriptedBackend("a", ["ok"]), PRICED, manager=m, pricer=Pricer())
    assert backend.check(req()) is None
    m.reserve(req(), PRICED, worst_case(req()) * 2 + D("0.0000001"))
    reason = backend.check(req())
    assert reason == "would exceed budget 'daily': $0.000211 left, needs $0.000211"
    assert isinstance(reason, BudgetRefusal) and isinstance(reason.error, BudgetExceededError)
    assert reason.error.budget == "daily"  # what the router raises when no candidate fits


async def test_streams_settle_at_the_final_chunk_and_bill_what_broken_streams_produced() -> None:
    request = req(max_tokens=1_000)
    m = BudgetManager([Budget(1)])
    good = ScriptedStep(text="a b c", usage=Usage(10, 3, 13), cost=0.00004)
    early = ScriptedStep(error=ServerError("boom", status_code=503))
    broken = ScriptedStep(
        text="one two three four", error=ResponseDecodeError("cut"), fail_after_chunks=2
    )
    inner = ScriptedBackend("a", [good, early, broken, "x y z w"])
    backend = BudgetBackend(inner, PRICED, manager=m, pricer=Pricer())

    chunks = [c async for c in backend.stream(request)]
    assert chunks[-1].is_final
    assert spent(m)[("total", "")] == (0.00004, 0.0)

    with pytest.raises(ServerError):  # failed before any content: released, not billed
        async for _ in backend.stream(request):
            pass
    assert spent(m)[("total", "")] == (0.00004, 0.0)

    with pytest.raises(ResponseDecodeError):  # broke after content: that output is billed
        async for _ in backend.stream(request):
            pass
    after_broken = spent(m)[("total", "")]
    assert 0.00004 < after_broken[0] < 0.00004 + float(worst_case(request)) and after_broken[1] == 0

    stream = backend.stream(request)
    async for _ in stream:
        break  # abandoned after the first chunk: still billed for it
    await stream.aclose()  # type: ignore[attr-defined]
    final = spent(m)[("total", "")]
    assert final[0] > after_broken[0] and final[1] == 0


async def test_no_budgets_means_no_reservations() -> None:
    inner = ScriptedBackend("a", ["hi"])
    backend = BudgetBackend(
        inner, Deployment("acme", "mystery"), manager=BudgetManager(), pricer=Pricer()
    )
    assert (await backend.chat(req())).text == "hi"
    chunks = [c async for c in backend.stream(req())]
    assert chunks[0].text == "hi" and chunks[-1].is_final
    assert backend.check(req()) is None


async def test_500_concurrent_requests_over_http_send_no_bytes_when_refused() -> None:
    # The real HTTP layer against the loopback fake: its request log proves that refused
    # calls never reached the provider, and the ledger shows spend stayed under the limit.
    from llmrouter_integrations.layers.http import DeploymentBackend
    from llmrouter_integrations.layers.ledger import LedgerBackend
    from llmrouter_integrations.providers.endpoints import get_endpoint
    from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior
    from llmrouter_integrations.transport import AiohttpTransport

    deployment = Deployment("openai", "gpt-4o-mini", api_key="sk-test-0123456789abcdef")
    request = ChatRequest(
        messages=[Message(role="user", content="Explain budgets in one line, please.")],
        max_tokens=60,
    )
    pricer = Pricer()
    worst = pricer.estimate(
        deployment, estimate_input_tokens(request), 60, prices_provider="openai"
    )
    assert worst is not None
    limit = worst * 100
    with FakeProviderServer({"gpt-4o-mini": ModelBehavior(errors=[500] * 25)}) as fake:
        transport = AiohttpTransport()
        http = DeploymentBackend(
            deployment,
            endpoint=get_endpoint("openai"),
            transport=transport,
            base_url=fake.openai_base_url,
            pricer=pricer,
        )
        m = BudgetManager([Budget(limit, name="load")])
        ledger = CostLedger()
        backend = LedgerBackend(
            BudgetBackend(http, deployment, manager=m, pricer=pricer, prices_provider="openai"),
            ledger,
        )
        outcomes: list[str] = []

        async def call(n: int) -> None:
            for _ in range(n % 40):  # arrive at different times
                await asyncio.sleep(0)
            try:
                await backend.chat(request)
            except BudgetExceededError:
                outcomes.append("refused")
            except ServerError:
                outcomes.append("failed")
            else:
                outcomes.append("ok")

        try:
            await asyncio.gather(*(call(n) for n in range(500)))
        finally:
            await transport.aclose()
        ok, failed, refused = (outcomes.count(k) for k in ("ok", "failed", "refused"))
        assert fake.request_count("gpt-4o-mini") == ok + failed  # refused: not one request
        assert failed == 25 and ok >= 100 and refused > 0
    assert ledger.total <= limit
    assert ledger.requests == 500 and ledger.failed_requests == failed + refused
    [status] = m.status()
    assert status.reserved_usd == 0
    assert Decimal(str(status.spent_usd)) == pytest.approx(ledger.total)
