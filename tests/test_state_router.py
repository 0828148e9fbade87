"""`Router(state=...)`: budgets shared through SQLite and a real redis-server, and store outages.

Two routers on one store stand in for two processes here (same code path, same store);
test_state_processes.py runs real OS processes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from _processes import KEY, PROMPT, worst_case
from _redis import RedisClusterServers, RedisServer, SentinelSet, free_port

from llmrouter_integrations import (
    AllDeploymentsFailedError,
    Budget,
    BudgetExceededError,
    CircuitOpenError,
    Deployment,
    RetryPolicy,
    Router,
    RouterEvent,
    RoutingError,
    StateUnavailableError,
)
from llmrouter_integrations.state.redis_clients import sync_client
from llmrouter_integrations.state.shared_redis import RedisState
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior

NO_RETRY = RetryPolicy(max_attempts=1)
MESSAGES = [{"role": "user", "content": PROMPT}]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(valid_keys=[KEY]) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake: FakeProviderServer) -> None:
    fake.reset()
    fake.set_behavior("gpt-4o-mini", ModelBehavior(usage={"output": 60}))


@pytest.fixture(params=["sqlite", "redis", "redis-cluster", "redis-sentinel"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    # A fresh database number per test keeps tests apart on one server...
    test_db = abs(hash(request.node.name)) % 15 + 1
    if request.param == "redis-cluster":  # ...a cluster has only database 0: emptied instead
        cluster: RedisClusterServers = request.getfixturevalue("redis_cluster")
        cluster.flush()
        return cluster.url
    if request.param == "redis-sentinel":
        watched: SentinelSet = request.getfixturevalue("redis_sentinel")
        # Emptied too: hash() differs per run, so two tests may draw the same number (a
        # provider's "0 left for a minute" from one test stopped another's first call).
        client = sync_client(watched.url(db=test_db), timeout_s=5.0)
        client.flushdb()
        client.close()
        return watched.url(db=test_db)
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.fresh(test_db)


class CountingStore:
    """A store that counts the round trips made through it."""

    def __init__(self, store: object) -> None:
        self._store = store
        self.trips = 0

    def __getattr__(self, name: str) -> object:
        attribute = getattr(self._store, name)
        if not callable(attribute):
            return attribute

        def call(*args: object, **kwargs: object) -> object:
            self.trips += 1
            return attribute(*args, **kwargs)

        return call


def landed(router: Router, store: CountingStore) -> int:
    """The store's trips once the router's queued trips after calls have landed."""
    assert router.settler is not None and router.settler.drain()
    return store.trips


def deployment(fake: FakeProviderServer) -> Deployment:
    return Deployment("openai", "gpt-4o-mini", api_key=KEY, base_url=fake.openai_base_url)


def router(fake: FakeProviderServer, state: object, limit: Decimal, **kw: object) -> Router:
    return Router(
        deployments=[deployment(fake)],
        budgets=[Budget(limit, period="day", name="daily")],
        retry=NO_RETRY,
        state=state,  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


async def test_two_routers_share_one_budget(fake: FakeProviderServer, state_url: str) -> None:
    limit = worst_case() * 3
    alerts: list[RouterEvent] = []

    def on_alert(event: RouterEvent) -> None:
        if event.type == "budget_alert":
            alerts.append(event)

    async with router(fake, state_url, limit, on_event=on_alert) as one, router(
        fake, state_url, limit, on_event=on_alert
    ) as other:
        served = refused = 0
        for n in range(8):
            try:
                await (one if n % 2 else other).achat(MESSAGES, max_tokens=60)
                served += 1
            except BudgetExceededError as error:
                refused += 1
                assert "Nothing was sent" in str(error)
        # Without sharing each router would serve 3 (6 in all); together they stay within one limit.
        assert served == fake.request_count() and 3 <= served <= 5
        spent = one.costs.total + other.costs.total
        assert spent <= limit
        # Either router reports the fleet's spend, read from the store.
        for view in (one, other):
            (status,) = view.budgets.status()
            assert status.spent_usd == pytest.approx(float(spent))
            assert status.reserved_usd == 0
    # Each threshold fired once across both routers.
    fired = sorted(e.data["threshold"] for e in alerts)
    assert fired == [t for t in (0.5, 0.8, 1.0) if t <= spent / limit]


async def test_store_down_fails_budgeted_calls_fast_and_warns_once(
    fake: FakeProviderServer, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[RouterEvent] = []
    down = f"redis://:pw-SECRET-123@127.0.0.1:{free_port()}/0"
    caplog.set_level(logging.WARNING, logger="llmrouter_integrations")
    async with router(fake, down, Decimal(1), on_event=events.append) as budgeted:
        for _ in range(3):
            started = time.monotonic()
            with pytest.raises(StateUnavailableError) as caught:
                await budgeted.achat(MESSAGES, max_tokens=60)
            assert time.monotonic() - started < 1.0
        assert isinstance(caught.value, RoutingError) and caught.value.backend == "redis"
        assert fake.request_count() == 0  # nothing was sent
        for text in (str(caught.value), repr(caught.value), caplog.text):
            assert "pw-SECRET" not in text
        assert caught.value.__cause__ is None
    warnings = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(warnings) == 1
    assert [e.data["available"] for e in events if e.type == "state"] == [False]


async def test_local_fallback_spends_then_pushes_to_the_store(
    fake: FakeProviderServer, redis_server: RedisServer
) -> None:
    url = redis_server.fresh(14)
    limit = worst_case() * 10
    async with router(fake, url, limit) as writer:
        await writer.achat(MESSAGES, max_tokens=60)  # seen by the fleet
    # A 1 s store timeout, not the default 0.25 s: on a loaded machine a slow answer before
    # the pause would count as an outage of its own and take the allowance with it.
    store = RedisState(url, timeout_s=1.0)
    async with router(fake, store, limit, state_failure="local") as local:
        await local.achat(MESSAGES, max_tokens=60)
        assert local.state_guard is not None
        local.state_guard.retry_s = 0.0  # try the store on every call in this test
        redis_server.pause()  # a hung server: every call times out
        try:
            for _ in range(2):
                await local.achat(MESSAGES, max_tokens=60)  # spent from the local allowance
            assert local.state_guard.outages == 1
        finally:
            redis_server.resume()
        assert fake.request_count() == 4
        await local.achat(MESSAGES, max_tokens=60)  # the store is back: outage spend pushed
    async with router(fake, url, limit) as reader:
        (status,) = reader.budgets.status()
    assert status.spent_usd == pytest.approx(float(writer.costs.total + local.costs.total))
    assert status.reserved_usd == 0  # the allowance was given back at close


async def test_local_fallback_spends_only_the_allowance_it_holds(
    fake: FakeProviderServer, tmp_path: Path
) -> None:
    path = tmp_path / "state.db"
    limit = worst_case() * 10
    async with router(fake, f"sqlite:///{path}", limit, state_failure="local") as local:
        await local.achat(MESSAGES, max_tokens=60)
        # Alone in the fleet, it holds a quarter of what was free beside its call in flight.
        (status,) = local.budgets.status()
        allowance = (limit - worst_case()) / 4
        assert Decimal(str(status.reserved_usd)) == pytest.approx(allowance, rel=Decimal("1e-6"))
        path.unlink()
        path.mkdir()  # the file is gone and cannot come back: the store is down
        assert local.state_guard is not None
        local.state_guard.store.close()
        outcomes = []
        for _ in range(3):
            try:
                await local.achat(MESSAGES, max_tokens=60)
                outcomes.append("ok")
            except BudgetExceededError as error:
                assert "outage allowance" in str(error) and "Nothing was sent" in str(error)
                outcomes.append("refused")
        # 2.25 worst cases: two calls fit, the third does not (though the budget had room).
        assert outcomes == ["ok", "ok", "refused"] and local.state_guard.down
        assert fake.request_count() == 3
    assert local.costs.total <= worst_case() + allowance


def test_bad_state_settings_are_clear(fake: FakeProviderServer) -> None:
    from llmrouter_integrations import ConfigurationError

    with pytest.raises(ConfigurationError, match="state_failure"):
        router(fake, None, Decimal(1), state_failure="open")
    with pytest.raises(ConfigurationError, match="state="):
        router(fake, "mysql://x", Decimal(1))


async def test_langchain_and_llamaindex_models_share_one_budget(
    fake: FakeProviderServer, tmp_path: Path
) -> None:
    from llama_index.core.llms import ChatMessage

    from llmrouter_integrations.langchain import ChatLLMRouter
    from llmrouter_integrations.llama_index import LLMRouter

    url = f"sqlite:///{tmp_path / 'state.db'}"
    limit = worst_case() * 2
    budgets = [Budget(limit, period="day", name="daily")]
    chat = ChatLLMRouter(
        deployments=[deployment(fake)], budgets=budgets, state=url, max_tokens=60, max_retries=0
    )
    llm = LLMRouter(
        deployments=[deployment(fake)], budgets=budgets, state=url, max_tokens=60, retry=NO_RETRY
    )
    assert chat.llm_router.state is not None and llm.router.state is not None
    await chat.ainvoke(PROMPT)
    await llm.achat([ChatMessage(role="user", content=PROMPT)])
    with pytest.raises(BudgetExceededError):
        await chat.ainvoke(PROMPT)
    assert fake.request_count() == 2
    with pytest.raises(ValueError, match="not both"):
        ChatLLMRouter(router=llm.router, state=url)


async def test_a_circuit_opened_by_one_router_is_seen_by_the_other(
    fake: FakeProviderServer, state_url: str
) -> None:
    from llmrouter_integrations import ManualClock
    from llmrouter_integrations.routing.health import BreakerPolicy

    fake.set_behavior("gpt-4o-mini", ModelBehavior(errors=[500, 500]))
    wall = time.time()
    clocks = [ManualClock(wall_start=wall), ManualClock(wall_start=wall)]
    policy = BreakerPolicy(failure_threshold=2, cooldown_s=30)
    one, other = (
        Router(
            deployments=[deployment(fake)], retry=NO_RETRY, breaker=policy, state=state_url, clock=c
        )
        for c in clocks
    )
    name = "openai/gpt-4o-mini"
    async with one, other:
        for _ in range(2):
            with pytest.raises(RoutingError):
                await one.achat(MESSAGES, max_tokens=20)
        assert one.health()[name].circuit == "open" and fake.request_count() == 2
        # The other router never failed, yet refuses at once: nothing more reaches the fake.
        with pytest.raises(AllDeploymentsFailedError) as caught:
            await other.achat(MESSAGES, max_tokens=20)
        assert [type(e) for e in caught.value.exceptions] == [CircuitOpenError]
        assert other.health()[name].circuit == "open" and fake.request_count() == 2
        # After the rest, the other router's probe succeeds and closes it for both.
        for clock in clocks:
            clock.advance(31)
        assert (await other.achat(MESSAGES, max_tokens=20)).text
        assert other.health()[name].circuit == "closed"
        assert (await one.achat(MESSAGES, max_tokens=20)).text
        assert one.health()[name].circuit == "closed"
    assert fake.request_count() == 4


async def test_failures_in_different_routers_add_up_to_open_the_circuit(
    fake: FakeProviderServer, tmp_path: Path
) -> None:
    from llmrouter_integrations.routing.health import BreakerPolicy
    from llmrouter_integrations.state.shared_sqlite import SQLiteState

    path = str(tmp_path / "state.db")
    stores = [CountingStore(SQLiteState(path)) for _ in range(3)]
    policy = BreakerPolicy(failure_threshold=3, cooldown_s=30)
    backup = Deployment("openai", "gpt-4o", api_key=KEY, base_url=fake.openai_base_url)
    routers = [
        Router(
            deployments=[deployment(fake), backup],
            strategy="priority",
            retry=NO_RETRY,
            breaker=policy,
            state=store,
        )
        for store in stores
    ]
    name = "openai/gpt-4o-mini"
    async with routers[0], routers[1], routers[2]:
        fake.set_behavior("gpt-4o-mini", ModelBehavior(errors=[500, 500]))
        for each in routers[:2]:  # one failure in each of two routers (then gpt-4o answers)...
            assert (await each.achat(MESSAGES, max_tokens=20)).deployment == "openai/gpt-4o"
        # ...and a success in the third: the fleet's count starts again.
        trips = landed(routers[2], stores[2])
        assert (await routers[2].achat(MESSAGES, max_tokens=20)).deployment == name
        # The admission saw 2 failures: one more trip (the reset) besides the call's two
        # (its admission, and after it the provider's rate-limit headers for the fleet).
        assert landed(routers[2], stores[2]) - trips == 3
        for each, store in zip(routers, stores):  # successes after it cost no extra trip
            trips = landed(each, store)
            assert (await each.achat(MESSAGES, max_tokens=20)).deployment == name
            assert landed(each, store) - trips == 2  # the call's own two only
        assert fake.request_count("gpt-4o-mini") == 6
        fake.set_behavior("gpt-4o-mini", ModelBehavior(errors=[500, 500, 500]))
        for each in routers:  # three failures, one per router: none saw three itself
            assert (await each.achat(MESSAGES, max_tokens=20)).deployment == "openai/gpt-4o"
            assert each.health()[name].consecutive_failures == 1
        assert fake.request_count("gpt-4o-mini") == 9
        assert routers[2].health()[name].circuit == "open"
        for each in routers:  # every router skips it now: nothing more reaches it
            assert (await each.achat(MESSAGES, max_tokens=20)).deployment == "openai/gpt-4o"
            assert each.health()[name].circuit == "open"
        assert fake.request_count("gpt-4o-mini") == 9


async def test_store_down_breakers_count_per_process_and_warn_once(
    fake: FakeProviderServer, caplog: pytest.LogCaptureFixture
) -> None:
    from llmrouter_integrations.routing.health import BreakerPolicy

    caplog.set_level(logging.WARNING, logger="llmrouter_integrations")
    fake.set_behavior("gpt-4o-mini", ModelBehavior(permanent_error=500))
    backup = Deployment("openai", "gpt-4o", api_key=KEY, base_url=fake.openai_base_url)
    async with Router(
        deployments=[deployment(fake), backup],
        strategy="priority",
        retry=NO_RETRY,
        breaker=BreakerPolicy(failure_threshold=2, cooldown_s=30),
        state=f"redis://127.0.0.1:{free_port()}/0",
    ) as alone:
        for _ in range(4):
            assert (await alone.achat(MESSAGES, max_tokens=20)).deployment == "openai/gpt-4o"
        # Its own two failures opened the circuit, as without state=.
        assert alone.health()["openai/gpt-4o-mini"].circuit == "open"
    assert fake.request_count("gpt-4o-mini") == 2
    assert len([r for r in caplog.records if "unavailable" in r.getMessage()]) == 1


async def test_the_day_rolls_over_at_the_same_instant_for_every_router(
    fake: FakeProviderServer, tmp_path: Path
) -> None:
    from llmrouter_integrations import ManualClock

    day = 86_400
    midnight = (time.time() // day + 1) * day
    # Two processes whose clocks were started at different moments, 10 s before midnight UTC.
    clocks = [ManualClock(start=5.0, wall_start=midnight - 10), ManualClock(wall_start=midnight - 10)]
    url = f"sqlite:///{tmp_path / 'state.db'}"
    limit = worst_case() * Decimal("1.5")
    one, other = (router(fake, url, limit, clock=c) for c in clocks)
    async with one, other:
        await one.achat(MESSAGES, max_tokens=60)
        with pytest.raises(BudgetExceededError):
            await other.achat(MESSAGES, max_tokens=60)
        for clock in clocks:
            clock.advance(11)  # past midnight: a new day for both
        await other.achat(MESSAGES, max_tokens=60)
        with pytest.raises(BudgetExceededError):
            await one.achat(MESSAGES, max_tokens=60)
        assert other.settler is not None and other.settler.drain()  # its settle landed
        (status,) = one.budgets.status()
        assert status.period_start == midnight
        assert status.spent_usd == pytest.approx(float(other.costs.total))


async def test_a_provider_limit_used_up_pauses_every_router(
    fake: FakeProviderServer, state_url: str
) -> None:
    # The fake answers with OpenAI's x-ratelimit-* headers: 2 requests a minute.
    fake.set_behavior("gpt-4o-mini", ModelBehavior(rate_limit=2, rate_limit_window_s=60))
    limited = Deployment(
        "openai", "gpt-4o-mini", api_key=KEY, base_url=fake.openai_base_url, rpm=1_000
    )
    one, other = (
        Router(
            deployments=[limited],
            retry=NO_RETRY,
            state=state_url,
            rate_limit_wait=0.0,
            max_queue_wait=0.0,
        )
        for _ in range(2)
    )
    async with one, other:
        await one.achat(MESSAGES, max_tokens=20)
        await one.achat(MESSAGES, max_tokens=20)  # its headers say: 0 left until the reset
        # The other router never saw those headers, yet waits for the reset instead of
        # sending a request the provider would refuse with 429.
        with pytest.raises(RoutingError):
            await other.achat(MESSAGES, max_tokens=20)
    assert fake.request_count() == 2


async def test_a_hold_outlives_a_slow_call_that_is_within_its_deadline(
    fake: FakeProviderServer, tmp_path: Path
) -> None:
    import asyncio

    from llmrouter_integrations import ManualClock
    from llmrouter_integrations.state.shared_sqlite import SQLiteState

    fake.set_behavior("gpt-4o-mini", ModelBehavior(latency_s=0.5, usage={"output": 60}))
    wall = time.time()
    clocks = [ManualClock(wall_start=wall), ManualClock(wall_start=wall)]
    path = str(tmp_path / "state.db")
    limit = worst_case() * Decimal("1.5")
    async with router(
        fake, SQLiteState(path, lease_s=5.0), limit, clock=clocks[0], timeout=120
    ) as slow, router(fake, SQLiteState(path, lease_s=5.0), limit, clock=clocks[1]) as other:
        call = asyncio.ensure_future(slow.achat(MESSAGES, max_tokens=60))
        while fake.request_count() < 1:
            await asyncio.sleep(0.01)
        for clock in clocks:
            clock.advance(60)  # far past the store's 5 s lease, well within the call's 120 s
        with pytest.raises(BudgetExceededError, match="held by calls in flight"):
            await other.achat(MESSAGES, max_tokens=60)
        await call
    assert fake.request_count() == 1


async def test_per_user_budgets_hold_for_more_users_than_are_kept_made(
    fake: FakeProviderServer, state_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The store's account of each user is made once and kept; past the kept number the
    # oldest are made again, never mixed up: each user still has exactly their own limit.
    from llmrouter_integrations.costs import budget

    monkeypatch.setattr(budget, "_SPECS_KEPT", 2)
    limit = worst_case() * Decimal("1.5")  # one call per user, not two
    users = ["alice", "bob", "carol", "dave", "é | ,\r\n"]
    async with Router(
        deployments=[deployment(fake)],
        budgets=[Budget(limit, period="day", scope="user")],
        retry=NO_RETRY,
        state=state_url,
    ) as one:
        for user in users:
            await one.achat(MESSAGES, max_tokens=60, user=user)
        for user in users:
            with pytest.raises(BudgetExceededError):
                await one.achat(MESSAGES, max_tokens=60, user=user)
        assert one.settler is not None and one.settler.drain()
        spent = {status.scope_value: status.spent_usd for status in one.budgets.status()}
    assert fake.request_count() == len(users)
    assert set(spent) == set(users)
    assert len(set(spent.values())) == 1 and next(iter(spent.values())) > 0
