"""`admit_call` and `finish_call`: a call's store work in one trip before it and one after it.

Every store (memory, SQLite file, real redis-server) must give the same answers as the
per-kind operations they replace, and be all-or-nothing where it matters: a refused
circuit or budget takes no rate slot, no hold and no probe.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from _redis import RedisServer

from llmrouter_integrations import Budget, Deployment, RateLimitError, RetryPolicy, Router
from llmrouter_integrations.state.shared import (
    Account,
    AccountState,
    Admission,
    CallPlan,
    Headroom,
    HoldAsk,
    RateAsk,
    RateDone,
    Refusal,
    SharedState,
)
from llmrouter_integrations.state.shared_memory import MemoryState
from llmrouter_integrations.state.shared_redis import RedisState
from llmrouter_integrations.state.shared_sqlite import SQLiteState
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior

T0 = 1_800_000_000.0


@pytest.fixture(params=["memory", "sqlite", "redis"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SharedState]:
    made: SharedState
    if request.param == "memory":
        made = MemoryState()
    elif request.param == "sqlite":
        made = SQLiteState(str(tmp_path / "state.db"))
    else:
        server = request.getfixturevalue("redis_server")
        made = RedisState(server.url, prefix=f"t{uuid.uuid4().hex[:8]}")
    yield made
    made.close()


def rate(permit: str, *, rpm: int | None = 1, concurrency: int | None = None) -> RateAsk:
    return RateAsk("dep", permit, rpm, None, concurrency, 100, 300.0)


def hold(hold_id: str, amount: int, *accounts: Account) -> HoldAsk:
    return HoldAsk(hold_id, accounts, amount, 300.0)


DAILY = Account("daily", limit=1000, alerts=(500,))
USER = Account("user|bob", limit=300)


def test_one_trip_admits_counts_and_holds(state: SharedState) -> None:
    plan = CallPlan(circuit="dep", rate=rate("p1"), hold=hold("h1", 600, DAILY))
    verdict = state.admit_call(plan, T0)
    assert verdict.admitted
    assert verdict.circuit == Admission("closed")
    assert verdict.refusal is None and verdict.rate_wait == 0.0
    assert state.read([DAILY], T0) == [AccountState(0, 600)]
    # The send was counted: rpm=1 is used up for the minute.
    assert state.acquire_rate(
        "dep", "p2", rpm=1, tpm=None, concurrency=None, tokens=0, now=T0 + 1, lease_s=300
    ) == pytest.approx(59.0)


def test_a_refused_budget_takes_no_rate_slot_and_no_probe(state: SharedState) -> None:
    state.open_circuit("dep", until=T0 - 1)  # the rest is over: the next call probes
    assert state.admit_call(CallPlan(hold=hold("h0", 200, DAILY, USER)), T0) is not None
    plan = CallPlan(circuit="dep", rate=rate("p1"), hold=hold("h1", 200, DAILY, USER))
    verdict = state.admit_call(plan, T0)
    assert not verdict.admitted
    assert verdict.refusal == Refusal(1, 0, 200)
    assert verdict.rate_wait is None
    # Nothing taken: the daily account holds only h0, the minute is free, the probe is free.
    assert state.read([DAILY, USER], T0) == [AccountState(0, 200), AccountState(0, 200)]
    assert (
        state.acquire_rate(
            "dep", "p2", rpm=1, tpm=None, concurrency=None, tokens=0, now=T0, lease_s=300
        )
        == 0.0
    )
    assert state.admit_circuit("dep", T0, 60) == Admission("probe")


@pytest.mark.parametrize("probing", [False, True])
def test_a_refused_circuit_takes_nothing(state: SharedState, probing: bool) -> None:
    if probing:  # half-open, and another process holds the probe
        state.open_circuit("dep", until=T0 - 1)
        assert state.admit_circuit("dep", T0, 60) == Admission("probe")
        expected = Admission("busy")
    else:
        state.open_circuit("dep", until=T0 + 30)
        expected = Admission("open", T0 + 30)
    plan = CallPlan(circuit="dep", rate=rate("p1"), hold=hold("h1", 100, DAILY))
    verdict = state.admit_call(plan, T0 + 1)
    assert not verdict.admitted
    assert verdict.circuit is not None and verdict.circuit.state == expected.state
    if not probing:
        assert verdict.circuit.until == pytest.approx(T0 + 30)
    assert verdict.refusal is None and verdict.rate_wait is None
    assert state.read([DAILY], T0 + 1) == [AccountState(0, 0)]
    assert (
        state.acquire_rate(
            "dep", "p2", rpm=1, tpm=None, concurrency=None, tokens=0, now=T0 + 1, lease_s=300
        )
        == 0.0
    )


def test_the_probe_is_claimed_once_fleet_wide(state: SharedState) -> None:
    state.open_circuit("dep", until=T0 - 1)
    first = state.admit_call(CallPlan(circuit="dep", probe_lease_s=60), T0)
    second = state.admit_call(CallPlan(circuit="dep", probe_lease_s=60), T0 + 1)
    assert first.circuit == Admission("probe") and first.admitted
    assert second.circuit == Admission("busy") and not second.admitted
    # The probe's process died: after its lease another may probe.
    assert state.admit_call(CallPlan(circuit="dep"), T0 + 61).circuit == Admission("probe")


def test_a_rate_wait_keeps_the_hold_and_says_how_long(state: SharedState) -> None:
    assert state.admit_call(CallPlan(rate=rate("p1")), T0).rate_wait == 0.0
    verdict = state.admit_call(CallPlan(rate=rate("p2"), hold=hold("h2", 100, DAILY)), T0 + 10)
    assert verdict.admitted
    assert verdict.rate_wait == pytest.approx(50.0)
    assert state.read([DAILY], T0 + 10) == [AccountState(0, 100)]
    busy = CallPlan(rate=rate("c1", rpm=None, concurrency=1))
    assert state.admit_call(busy, T0).rate_wait == 0.0
    waiting = state.admit_call(CallPlan(rate=rate("c2", rpm=None, concurrency=1)), T0)
    assert waiting.rate_wait == math.inf


def test_finish_settles_and_frees_the_slot_in_one_trip(state: SharedState) -> None:
    plan = CallPlan(rate=rate("c1", rpm=None, concurrency=1), hold=hold("h1", 600, DAILY))
    assert state.admit_call(plan, T0).rate_wait == 0.0
    settled = state.finish_call(("h1", [DAILY], 550), RateDone("dep", "c1", -50), T0 + 1)
    assert settled is not None
    assert settled.spent == [550] and settled.crossed == [(0, 0)]
    assert state.read([DAILY], T0 + 1) == [AccountState(550, 0)]
    # The slot is free again, and the same settle sent twice counts once.
    again = state.admit_call(CallPlan(rate=rate("c2", rpm=None, concurrency=1)), T0 + 1)
    assert again.rate_wait == 0.0
    repeat = state.finish_call(("h1", [DAILY], 550), None, T0 + 2)
    assert repeat is not None and repeat.spent == [550] and repeat.crossed == []


def test_finish_releases_a_hold_without_spending(state: SharedState) -> None:
    assert state.admit_call(CallPlan(hold=hold("h1", 600, DAILY)), T0).admitted
    assert state.finish_call(("h1", [DAILY], None), None, T0 + 1) is None
    assert state.read([DAILY], T0 + 1) == [AccountState(0, 0)]
    assert state.finish_call(None, RateDone("dep", "unknown"), T0 + 1) is None


def test_holds_of_a_dead_process_expire_in_the_one_trip_too(state: SharedState) -> None:
    dead = HoldAsk("dead", (DAILY,), 900, 30.0)
    assert state.admit_call(CallPlan(hold=dead), T0).admitted
    refused = state.admit_call(CallPlan(hold=hold("h", 200, DAILY)), T0 + 29)
    assert refused.refusal == Refusal(0, 0, 900)
    assert state.admit_call(CallPlan(hold=hold("h", 200, DAILY)), T0 + 31).admitted


def test_a_free_call_settles_its_zero_hold(state: SharedState) -> None:
    # A local model costs nothing: its hold is 0. Redis once refused to take '-0' off the
    # reserve (HINCRBY), so every free call's settle and release failed.
    assert state.admit_call(CallPlan(hold=hold("free", 0, DAILY)), T0).admitted
    settled = state.finish_call(("free", [DAILY], 0), None, T0 + 1)
    assert settled is not None and settled.spent == [0]
    assert state.admit_call(CallPlan(hold=hold("free2", 0, DAILY)), T0 + 1).admitted
    assert state.finish_call(("free2", [DAILY], None), None, T0 + 2) is None
    state.reserve("free3", [DAILY], 0, T0 + 2, 60.0)
    assert state.settle("free3", [DAILY], 0, T0 + 3).spent == [0]
    assert state.read([DAILY], T0 + 3) == [AccountState(0, 0)]


def test_a_dead_hold_is_reclaimed_even_when_another_account_refuses(state: SharedState) -> None:
    dead = HoldAsk("dead", (DAILY,), 900, 30.0)
    assert state.admit_call(CallPlan(hold=dead), T0).admitted
    assert state.admit_call(CallPlan(hold=hold("u", 250, USER)), T0).admitted
    # DAILY's dead hold has expired; USER has no room: refused, nothing held, and DAILY's
    # expired hold is gone all the same (every process sees its money back).
    refused = state.admit_call(CallPlan(hold=hold("h", 100, DAILY, USER)), T0 + 31)
    assert refused.refusal == Refusal(1, 0, 250)
    assert state.read([DAILY, USER], T0 + 31) == [AccountState(0, 0), AccountState(0, 250)]
    settled = state.finish_call(("u", [USER], 200), None, T0 + 32)
    assert settled is not None and settled.spent == [200]
    assert state.read([DAILY, USER], T0 + 32) == [AccountState(0, 0), AccountState(200, 0)]


def test_every_key_a_call_writes_on_redis_expires(redis_server: RedisServer) -> None:
    # The scripts renew expiries only when a key may be new or half a window has passed:
    # no key may be left without one, whatever mix of limits and news a call brings.
    import redis

    prefix = f"t{uuid.uuid4().hex[:8]}"
    state = RedisState(redis_server.url, prefix=prefix)
    period = Account("daily|ttl", limit=10**9, expires_at=time.time() + 3600)
    said = Headroom(100, 90, 1.0, 10_000, 9_000, 1.0)
    client = redis.Redis.from_url(redis_server.url)

    def without_expiry() -> list[bytes]:
        return [key for key in client.keys(f"{{{prefix}}}*") if client.pttl(key) < 0]

    try:
        for i in range(12):
            now = T0 + i * 7.0
            ask = RateAsk("dep", f"p{i}", 100, 10_000, 4, 50, 300.0)
            verdict = state.admit_call(CallPlan("dep", 60.0, ask, hold(f"h{i}", 10, period)), now)
            assert verdict.admitted and verdict.rate_wait == 0.0
            assert without_expiry() == []  # the process may die here: nothing stays forever
            if i % 3 != 2:  # some calls are still in flight at the end
                done = RateDone("dep", f"p{i}", -10, said if i % 2 else None)
                state.finish_call((f"h{i}", [period], 5), done, now + 1)
                assert without_expiry() == []
        assert len(client.keys(f"{{{prefix}}}*")) >= 8
    finally:
        client.close()
        state.close()


def test_sends_never_answered_are_forgotten_on_redis(redis_server: RedisServer) -> None:
    # No answer comes back for some sends (no rate headers, a process died): what the store
    # kept for their answers' folds goes after two windows, not on with steady traffic.
    import redis

    prefix = f"t{uuid.uuid4().hex[:8]}"
    state = RedisState(redis_server.url, prefix=prefix)
    client = redis.Redis.from_url(redis_server.url)
    view, flight = state._view_keys("dep")
    try:
        for i in range(3):
            assert send(state, f"lost{i}", T0 + i) == 0.0
        assert client.zcard(flight) == 4 and client.hlen(view) >= 3 + 3  # '~' + 3 in flight
        for i in range(10):  # steady traffic, answered, for two and a half windows
            now = T0 + 20 + i * 15.0
            assert send(state, f"p{i}", now) == 0.0
            state.finish_call(None, RateDone("dep", f"p{i}"), now + 1)
        assert client.zrange(flight, 0, -1) == [b"~"]
        assert [f for f in client.hkeys(view) if f.startswith(b"sent:")] == []
    finally:
        client.close()
        state.close()


# -- through the Router: what one call asks the store ----------------------------------------

KEY = "sk-test-state-0123456789abcdef"


class CountingStore:
    """A store that counts the operations each call makes (a stand-in for round trips)."""

    def __init__(self, inner: SharedState) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> object:
        value = getattr(self.inner, name)
        if name.startswith("_") or not callable(value):
            return value

        def counted(*args: object, **kwargs: object) -> object:
            self.calls.append(name)
            return value(*args, **kwargs)

        return counted


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(valid_keys=[KEY]) as server:
        yield server


def limited(fake: FakeProviderServer, **limits: int) -> Deployment:
    return Deployment("openai", "gpt-4o-mini", api_key=KEY, base_url=fake.openai_base_url, **limits)


@pytest.mark.parametrize("budgeted", [True, False])
@pytest.mark.parametrize("stream", [False, True])
def test_a_call_is_one_store_trip_before_and_one_after(
    state: SharedState, fake: FakeProviderServer, budgeted: bool, stream: bool
) -> None:
    store = CountingStore(state)
    router = Router(
        deployments=[limited(fake, rpm=1000, tpm=10_000_000, max_concurrency=50)],
        budgets=[Budget(100.0, period="day")] if budgeted else [],
        state=store,  # type: ignore[arg-type]
    )
    with router:
        for _ in range(3):
            store.calls.clear()
            if stream:
                chunks = list(router.stream("Say hi.", max_tokens=20))
                assert chunks[-1].is_final
            else:
                assert router.complete("Say hi.", max_tokens=20).text
            # The trip after the call is sent in the background: wait for it to land.
            assert router.settler is not None and router.settler.drain()
            # Before: hold, circuit, rate count. After: settle, slot, tokens, headroom.
            assert store.calls == ["admit_call", "finish_call"]
        status = router.budgets.status()
    if budgeted:
        assert status[0].spent_usd > 0 and status[0].reserved_usd == 0


# -- the provider's headroom, shared -----------------------------------------------------------


def send(state: SharedState, permit: str, now: float, tokens: int = 10) -> float:
    ask = RateAsk("dep", permit, None, None, None, tokens, 300.0)
    wait = state.admit_call(CallPlan(rate=ask), now).rate_wait
    assert wait is not None
    return wait


def said(permit: str, headroom: Headroom) -> RateDone:
    return RateDone("dep", permit, 0, headroom)


def test_the_providers_remaining_requests_are_the_fleets(state: SharedState) -> None:
    assert send(state, "p1", T0) == 0.0
    assert send(state, "p2", T0) == 0.0
    # The answer to p1: 3 requests left until T0 + 21. p2 went after p1, so the provider
    # had not counted it yet: the fleet has 2 left.
    state.finish_call(None, said("p1", Headroom(5, 3, 20.0)), T0 + 1)
    assert send(state, "p3", T0 + 1) == 0.0
    assert send(state, "p4", T0 + 1) == 0.0
    assert send(state, "p5", T0 + 2) == pytest.approx(19.0)
    # p2 and p3 are answered (without headers); the answer to p4 (the newest): 1 left,
    # nothing sent after it.
    state.finish_call(None, RateDone("dep", "p2"), T0 + 2)
    state.finish_call(None, RateDone("dep", "p3"), T0 + 2)
    state.finish_call(None, said("p4", Headroom(5, 1, 19.0)), T0 + 2)
    assert send(state, "p6", T0 + 2) == 0.0
    # Older news (an answer to p1 again, sent before p4) changes nothing.
    state.finish_call(None, said("p1", Headroom(5, 4, 19.0)), T0 + 2)
    assert send(state, "p7", T0 + 2) == pytest.approx(19.0)
    # At the reset the whole limit is back (5), until the next reset.
    for n in range(5):
        assert send(state, f"q{n}", T0 + 21.5) == 0.0
    assert send(state, "q5", T0 + 21.5) == pytest.approx(20.0)


def test_a_reply_that_overtook_an_earlier_send_leaves_room_for_it(state: SharedState) -> None:
    # p1 is admitted first but reaches the provider after p2 (its process stalled between
    # the store and the request). p2's answer, 8 of 10 left, has not seen p1, which is
    # still in flight and will take one of them: the fleet may send 7 more, not 8.
    assert send(state, "p1", T0, tokens=100) == 0.0
    assert send(state, "p2", T0, tokens=30) == 0.0
    news = Headroom(10, 8, 30.0, 10_000, 5_000, 30.0)
    state.finish_call(None, said("p2", news), T0 + 0.5)
    sent = [send(state, f"q{n}", T0 + 1, tokens=1) for n in range(9)]
    assert sent[:7] == [0.0] * 7 and sent[7] == pytest.approx(29.5)
    # p1's own answer is older news than p2's: it changes nothing.
    state.finish_call(None, said("p1", Headroom(10, 9, 30.0)), T0 + 2)
    assert send(state, "r1", T0 + 2, tokens=1) == pytest.approx(28.5)


def test_the_tokens_of_an_overtaken_send_are_held_back_too(state: SharedState) -> None:
    assert send(state, "p1", T0, tokens=300) == 0.0
    assert send(state, "p2", T0, tokens=100) == 0.0
    # p2's answer: 1,000 tokens left, without p1's 300 (in flight): 700 for the fleet.
    state.finish_call(
        None, said("p2", Headroom(tokens_limit=10_000, tokens_left=1_000, tokens_reset_s=6.0)), T0
    )
    assert send(state, "p3", T0, tokens=701) == pytest.approx(6.0)
    assert send(state, "p4", T0, tokens=700) == 0.0


def test_a_send_long_in_flight_no_longer_holds_headroom_back(state: SharedState) -> None:
    # A send admitted a while ago (a long answer still streaming) reached the provider long
    # ago: a newer send's answer counts it already.
    assert send(state, "long", T0) == 0.0
    assert send(state, "p2", T0 + 30) == 0.0
    state.finish_call(None, said("p2", Headroom(10, 5, 30.0)), T0 + 30.5)
    sent = [send(state, f"q{n}", T0 + 31) for n in range(6)]
    assert sent[:5] == [0.0] * 5 and sent[5] > 0


def test_an_answer_from_before_a_reset_folds_into_the_refilled_limit(state: SharedState) -> None:
    assert send(state, "p1", T0) == 0.0
    state.finish_call(None, said("p1", Headroom(5, 4, 10.0)), T0)  # 4 left until T0 + 10
    assert send(state, "p2", T0 + 1) == 0.0  # 3 left
    # The reset passes without news: the whole limit (5) is back, p3 draws one of it.
    assert send(state, "p3", T0 + 12) == 0.0
    # Then p2's answer, sent before the reset: 3 left as of p2, p3 not seen: 2, until 20 s on.
    state.finish_call(None, said("p2", Headroom(5, 3, 20.0)), T0 + 12.5)
    assert send(state, "p4", T0 + 13) == 0.0
    assert send(state, "p5", T0 + 13) == 0.0
    assert send(state, "p6", T0 + 13) == pytest.approx(19.5)
    # p6 waited: nothing drawn; the next reset refills again.
    for n in range(5):
        assert send(state, f"q{n}", T0 + 33) == 0.0
    assert send(state, "q5", T0 + 33) > 0.0


def test_the_providers_remaining_tokens_are_the_fleets(state: SharedState) -> None:
    assert send(state, "p1", T0, tokens=100) == 0.0
    state.finish_call(
        None, said("p1", Headroom(tokens_limit=10_000, tokens_left=250, tokens_reset_s=6.0)), T0
    )
    assert send(state, "p2", T0, tokens=200) == 0.0
    assert send(state, "p3", T0, tokens=100) == pytest.approx(6.0)  # 50 left
    assert send(state, "p4", T0, tokens=50) == 0.0
    # A request larger than the provider's whole limit is the provider's to judge.
    assert send(state, "big", T0, tokens=20_000) == 0.0


def test_a_headroom_wait_takes_nothing_and_a_budget_refusal_no_headroom(
    state: SharedState,
) -> None:
    assert send(state, "p1", T0) == 0.0
    state.finish_call(None, said("p1", Headroom(5, 1, 30.0)), T0)
    full = CallPlan(
        rate=RateAsk("dep", "p2", None, None, None, 10, 300.0), hold=hold("h2", 2000, DAILY)
    )  # more than the budget has
    assert state.admit_call(full, T0).refusal is not None
    assert send(state, "p3", T0) == 0.0  # the refused call drew nothing from the headroom
    assert send(state, "p4", T0) == pytest.approx(30.0)


def test_a_request_refitted_for_its_deployment_is_still_one_trip_each_way(
    state: SharedState, fake: FakeProviderServer
) -> None:
    # reasoning= is dropped for a model that does not reason: the deployment's layers see a
    # rewritten request, which must still carry the call's admission (it did not: 5 trips).
    store = CountingStore(state)
    router = Router(
        deployments=[limited(fake, rpm=1000)],
        budgets=[Budget(100.0, period="day")],
        state=store,  # type: ignore[arg-type]
    )
    with router, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "reasoning was not sent to ..."
        assert router.complete("Say hi.", max_tokens=20, reasoning="low").text
        assert router.settler is not None and router.settler.drain()
    assert store.calls == ["admit_call", "finish_call"]


def _second_view(state: SharedState) -> SharedState:
    """Another process's view of the same store (the memory store is one process's own)."""
    if isinstance(state, SQLiteState):
        return SQLiteState(state.path)
    if isinstance(state, RedisState):
        return RedisState(state._client, prefix=state.prefix)
    return state


def test_a_send_that_reaches_the_provider_late_is_not_sent_twice_over(
    state: SharedState, fake: FakeProviderServer
) -> None:
    # The provider takes 10 requests a minute. Router A's call is admitted first but reaches
    # the provider after router B's (the fake holds it back before counting it); B's answer
    # says 9 left, not knowing A's. The fleet has 8, and 8 concurrent calls are all it sends:
    # the 9th is held back here instead of drawing a 429 from the provider.
    fake.reset()  # a fresh minute at the provider
    fake.set_behavior("gpt-4o-mini", ModelBehavior(rate_limit=10, latency_s=1.0))
    options = {"retry": RetryPolicy(max_attempts=1), "rate_limit_wait": 0.0}
    other = _second_view(state)
    late = Router(deployments=[limited(fake)], state=other, **options)  # type: ignore[arg-type]
    router = Router(deployments=[limited(fake)], state=state, **options)  # type: ignore[arg-type]

    async def scenario() -> list[object]:
        held_back = asyncio.ensure_future(late.achat(PROMPT_LATE, max_tokens=20))
        while fake.request_count("gpt-4o-mini") < 1:
            await asyncio.sleep(0.005)
        fake.update_behavior("gpt-4o-mini", latency_s=0.0)
        await router.achat(PROMPT_LATE, max_tokens=20)  # "9 left": A not counted yet
        await held_back
        await late.aclose()
        fake.update_behavior("gpt-4o-mini", latency_s=0.3)  # all 9 are admitted before news
        calls = [router.achat(PROMPT_LATE, max_tokens=20) for _ in range(9)]
        return await asyncio.gather(*calls, return_exceptions=True)

    try:
        outcomes = asyncio.run(scenario())
        received = fake.request_count("gpt-4o-mini")
    finally:
        router.close()
        fake.reset()
    failed = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    assert received == 10, failed  # no request the provider refused
    assert len(failed) == 1 and not isinstance(failed[0], RateLimitError), failed


PROMPT_LATE = "Which of two sends reached the provider first?"
