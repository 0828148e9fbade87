"""The shared-state stores (memory, SQLite file, real redis-server) give the same answers.

Each store is driven with explicit wall-clock times, so leases and windows expire without
sleeping. Where sharing matters, two store objects on the same file or server stand in
for two processes (the real multi-process tests are in test_state_processes.py).
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _redis import free_port

from llmrouter_integrations.errors import ConfigurationError
from llmrouter_integrations.state.shared import (
    Account,
    AccountState,
    Admission,
    Refusal,
    SharedState,
    StoreUnavailable,
)
from llmrouter_integrations.state.shared_memory import MemoryState
from llmrouter_integrations.state.shared_redis import RedisState
from llmrouter_integrations.state.shared_sqlite import SQLiteState
from llmrouter_integrations.state.stores import shared_state_from_spec

T0 = 1_800_000_000.0


Factory = Callable[[], SharedState]


@pytest.fixture(params=["memory", "sqlite", "redis", "redis-cluster", "redis-sentinel"])
def make_state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    """Makes store objects that share one store (two objects = two processes' views)."""
    made: list[SharedState] = []
    if request.param == "memory":
        shared = MemoryState()

        def make() -> SharedState:
            return shared
    elif request.param == "sqlite":
        path = str(tmp_path / "state.db")

        def make() -> SharedState:
            made.append(SQLiteState(path))
            return made[-1]
    else:
        # One server, a 3-master cluster, or a master found through a sentinel.
        url = {
            "redis": lambda: request.getfixturevalue("redis_server").url,
            "redis-cluster": lambda: request.getfixturevalue("redis_cluster").url,
            "redis-sentinel": lambda: request.getfixturevalue("redis_sentinel").url(db=1),
        }[request.param]()
        prefix = f"t{uuid.uuid4().hex[:8]}"

        def make() -> SharedState:
            made.append(RedisState(url, prefix=prefix))
            return made[-1]

    yield make
    for state in made:
        state.close()


def account(key: str = "daily", limit: int = 1000, **kw: object) -> Account:
    return Account(key, limit=limit, **kw)  # type: ignore[arg-type]


def test_reserve_holds_until_settled_and_refuses_what_does_not_fit(make_state: Factory) -> None:
    one, other = make_state(), make_state()
    acc = account(limit=1000)
    assert one.reserve("h1", [acc], 600, T0, 60) is None
    # Another process sees the hold: 600 held, 500 more does not fit.
    assert other.reserve("h2", [acc], 500, T0, 60) == Refusal(0, 0, 600)
    assert other.reserve("h3", [acc], 400, T0, 60) is None
    assert one.read([acc], T0) == [AccountState(0, 1000)]
    assert one.settle("h1", [acc], 250, T0).crossed == []
    assert other.read([acc], T0) == [AccountState(250, 400)]
    other.release("h3", [acc], T0)
    assert one.read([acc], T0) == [AccountState(250, 0)]
    # Settling a hold again (a retry after a timeout the store did carry out) adds nothing.
    assert other.settle("h1", [acc], 250, T0).spent == [250]
    # A free call always fits, even in a full account.
    assert one.reserve("h4", [acc], 750, T0, 60) is None
    assert one.reserve("h5", [acc], 1, T0, 60) == Refusal(0, 250, 750)
    assert one.reserve("h6", [acc], 0, T0, 60) is None


def test_reserve_is_all_or_nothing_across_accounts(make_state: Factory) -> None:
    state = make_state()
    daily, user = account("daily", 1000), account("user|bob", 300)
    assert state.reserve("h1", [daily, user], 200, T0, 60) is None
    assert state.reserve("h2", [daily, user], 200, T0, 60) == Refusal(1, 0, 200)
    # The refused call held nothing on the daily account either.
    assert state.read([daily, user], T0) == [AccountState(0, 200), AccountState(0, 200)]


def test_a_dead_process_holds_expire_after_the_lease(make_state: Factory) -> None:
    dead, alive = make_state(), make_state()
    acc = account(limit=1000)
    assert dead.reserve("dead-hold", [acc], 900, T0, lease_s=30) is None
    assert alive.reserve("h", [acc], 200, T0 + 29, 30) == Refusal(0, 0, 900)
    assert alive.reserve("h", [acc], 200, T0 + 30.5, 30) is None
    assert alive.read([acc], T0 + 31) == [AccountState(0, 200)]
    # A settle arriving after its lease ended still counts the spend (and frees nothing twice).
    alive.settle("dead-hold", [acc], 100, T0 + 31)
    assert alive.read([acc], T0 + 31) == [AccountState(100, 200)]


def test_alerts_fire_once_fleet_wide(make_state: Factory) -> None:
    one, other = make_state(), make_state()
    acc = account(limit=1000, alerts=(500, 800, 1000))
    assert one.settle("a", [acc], 400, T0).crossed == []
    assert other.settle("b", [acc], 150, T0).crossed == [(0, 0)]
    assert one.settle("c", [acc], 10, T0).crossed == []
    assert one.settle("d", [acc], 500, T0).crossed == [(0, 1), (0, 2)]
    settled = other.settle("e", [acc, account("other", 10)], 1, T0)
    assert settled.crossed == [] and settled.spent == [1061, 1]


def test_initial_spend_seeds_a_new_account_once(make_state: Factory) -> None:
    state = make_state()
    seeded = account(limit=1000, initial=600, alerts=(500, 900))
    assert state.read([seeded], T0) == [AccountState(600, 0)]
    # A later process's different opinion of the initial spend does not reset it.
    assert state.read([account(limit=1000, initial=0)], T0) == [AccountState(600, 0)]
    # The 50% alert was crossed before: it does not fire again, 90% does.
    assert state.settle("h", [seeded], 350, T0).crossed == [(0, 1)]


def test_big_sums_stay_exact(make_state: Factory) -> None:
    state = make_state()
    acc = account(limit=9_000_000_000_000_000)  # $9M in nano-USD: beyond Lua's %.14g
    state.settle("h", [acc], 1_234_567_890_123_457, T0)
    state.settle("h2", [acc], 1, T0)
    assert state.read([acc], T0)[0].spent == 1_234_567_890_123_458


def test_rpm_window_is_shared_and_slides(make_state: Factory) -> None:
    one, other = make_state(), make_state()
    kw = {"rpm": 2, "tpm": None, "concurrency": None, "tokens": 10, "lease_s": 60}
    assert one.acquire_rate("d", "p1", now=T0, **kw) == 0.0  # type: ignore[arg-type]
    assert other.acquire_rate("d", "p2", now=T0 + 10, **kw) == 0.0  # type: ignore[arg-type]
    assert one.acquire_rate("d", "p3", now=T0 + 20, **kw) == pytest.approx(40.0)  # type: ignore[arg-type]
    assert other.acquire_rate("d", "p3", now=T0 + 60.01, **kw) == 0.0  # type: ignore[arg-type]
    # Another deployment has its own window.
    assert one.acquire_rate("e", "p4", now=T0 + 61, **kw) == 0.0  # type: ignore[arg-type]


def test_tpm_window_counts_corrected_tokens(make_state: Factory) -> None:
    one, other = make_state(), make_state()
    kw = {"rpm": None, "tpm": 1000, "concurrency": None, "lease_s": 60}
    assert one.acquire_rate("d", "p1", tokens=800, now=T0, **kw) == 0.0  # type: ignore[arg-type]
    assert other.acquire_rate("d", "p2", tokens=300, now=T0 + 5, **kw) == pytest.approx(55.0)  # type: ignore[arg-type]
    one.release_rate("d", "p1", -600, T0 + 6)  # it used 200, not 800
    assert other.acquire_rate("d", "p2", tokens=300, now=T0 + 7, **kw) == 0.0  # type: ignore[arg-type]
    # One request larger than the whole limit goes alone, once the window is empty.
    assert one.acquire_rate("d", "big", tokens=5000, now=T0 + 8, **kw) == pytest.approx(59.0)  # type: ignore[arg-type]
    assert one.acquire_rate("d", "big", tokens=5000, now=T0 + 70, **kw) == 0.0  # type: ignore[arg-type]


def test_concurrency_slots_are_leased(make_state: Factory) -> None:
    one, other = make_state(), make_state()
    kw = {"rpm": None, "tpm": None, "concurrency": 1, "tokens": 1, "lease_s": 30}
    assert one.acquire_rate("d", "p1", now=T0, **kw) == 0.0  # type: ignore[arg-type]
    assert other.acquire_rate("d", "p2", now=T0 + 1, **kw) == math.inf  # type: ignore[arg-type]
    one.release_rate("d", "p1", 0, T0 + 2)
    assert other.acquire_rate("d", "p2", now=T0 + 2, **kw) == 0.0  # type: ignore[arg-type]
    # p2's process dies holding the slot: it comes back when the lease ends.
    assert one.acquire_rate("d", "p3", now=T0 + 31, **kw) == math.inf  # type: ignore[arg-type]
    assert one.acquire_rate("d", "p3", now=T0 + 32.5, **kw) == 0.0  # type: ignore[arg-type]


def test_retry_after_pauses_every_process(make_state: Factory) -> None:
    one, other = make_state(), make_state()
    kw = {"rpm": None, "tpm": None, "concurrency": None, "tokens": 1, "lease_s": 30}
    one.pause_rate("d", T0 + 20)
    one.pause_rate("d", T0 + 5)  # an earlier end does not shorten the pause
    assert other.acquire_rate("d", "p", now=T0 + 1, **kw) == pytest.approx(19.0)  # type: ignore[arg-type]
    assert other.acquire_rate("d", "p", now=T0 + 20, **kw) == 0.0  # type: ignore[arg-type]


def test_circuit_opens_everywhere_and_lets_one_probe_through(make_state: Factory) -> None:
    one, other = make_state(), make_state()
    assert other.admit_circuit("d", T0, 10).state == "closed"
    one.open_circuit("d", T0 + 30)
    seen = other.admit_circuit("d", T0 + 1, 10)
    assert (seen.state, seen.until) == ("open", T0 + 30)
    assert other.admit_circuit("d", T0 + 30, 10).state == "probe"
    assert one.admit_circuit("d", T0 + 31, 10).state == "busy"
    # The probing process died: after the probe's lease another may probe.
    assert one.admit_circuit("d", T0 + 41, 10).state == "probe"
    one.open_circuit("d", T0 + 100)  # the probe failed: open again, longer
    assert other.admit_circuit("d", T0 + 50, 10).state == "open"
    other.close_circuit("d")
    assert one.admit_circuit("d", T0 + 51, 10).state == "closed"


def test_consecutive_failures_are_counted_fleet_wide(make_state: Factory) -> None:
    one, other = make_state(), make_state()
    assert other.admit_circuit("d", T0, 10).failures == 0
    assert one.count_failure("d") == 1
    assert other.count_failure("d") == 2  # another process's failure adds to the same count
    assert one.admit_circuit("d", T0, 10) == Admission("closed", 0.0, 2)
    other.reset_failures("d")  # a success anywhere starts it again
    assert one.admit_circuit("d", T0, 10).failures == 0
    assert one.count_failure("d") == 1 and other.count_failure("e") == 1  # per deployment
    one.open_circuit("d", T0 + 30)  # opening restarts the count, and so does closing
    assert other.count_failure("d") == 1
    other.close_circuit("d")
    assert one.admit_circuit("d", T0 + 1, 10) == Admission("closed", 0.0, 0)
    assert one.admit_circuit("e", T0 + 1, 10).failures == 1


def test_members_are_counted_while_their_lease_lasts(make_state: Factory) -> None:
    one, other = make_state(), make_state()
    assert one.join("p1", T0, 10) == 1
    assert other.join("p2", T0 + 1, 10) == 2
    assert one.join("p1", T0 + 5, 10) == 2  # a heartbeat: still two
    assert other.join("p2", T0 + 14, 10) == 2
    assert other.join("p2", T0 + 15, 10) == 1  # p1 stopped saying so: its lease ended


def test_locks_have_an_owner_and_a_lease(make_state: Factory) -> None:
    one, other = make_state(), make_state()
    assert one.acquire_lock("k", "a", T0, 10)
    assert not other.acquire_lock("k", "b", T0 + 1, 10)
    assert other.lock_held("k", T0 + 1)
    other.release_lock("k", "b")  # not the owner: no effect
    assert one.lock_held("k", T0 + 2)
    assert other.acquire_lock("k", "b", T0 + 10.5, 10)  # a's lease ended
    one.release_lock("k", "a")
    assert other.lock_held("k", T0 + 11)
    other.release_lock("k", "b")
    assert not one.lock_held("k", T0 + 11)


def test_concurrent_threads_never_overshoot(make_state: Factory) -> None:
    views = [make_state() for _ in range(4)]
    acc = account(limit=10_000)
    held: list[int] = []
    lock = threading.Lock()

    def spend(view: SharedState) -> None:
        for _ in range(50):
            hold = uuid.uuid4().hex
            if view.reserve(hold, [acc], 300, T0, 60) is None:
                with lock:
                    held.append(300)
                view.settle(hold, [acc], 300, T0)

    threads = [threading.Thread(target=spend, args=(v,)) for v in views]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(held) == 9_900
    assert views[0].read([acc], T0) == [AccountState(9_900, 0)]


def test_stopped_redis_is_unavailable_fast_and_says_nothing_secret() -> None:
    state = RedisState(f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0", timeout_s=0.2)
    assert "hunter2" not in repr(state)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        state.reserve("h", [account()], 1, T0, 60)
    assert time.monotonic() - started < 1.0
    assert "hunter2" not in str(caught.value) and caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_a_locked_sqlite_file_is_unavailable_within_the_timeout(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    state = SQLiteState(path, timeout_s=0.1)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            state.reserve("h", [account()], 1, T0, 60)
        assert time.monotonic() - started < 1.0
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert state.reserve("h", [account()], 1, T0, 60) is None


def test_state_urls(tmp_path: Path) -> None:
    assert shared_state_from_spec(None) is None
    assert isinstance(shared_state_from_spec("memory"), MemoryState)
    sqlite_state = shared_state_from_spec(f"sqlite:///{tmp_path}/s.db")
    assert isinstance(sqlite_state, SQLiteState) and sqlite_state.path == f"{tmp_path}/s.db"
    ready = MemoryState()
    assert shared_state_from_spec(ready) is ready
    with pytest.raises(ConfigurationError, match="needs a file path"):
        shared_state_from_spec("sqlite://")
    with pytest.raises(ConfigurationError) as caught:
        shared_state_from_spec("postgres://user:pw-secret@db/0")
    assert "pw-secret" not in str(caught.value)


def test_finish_calls_does_in_one_trip_what_each_finish_call_would(
    make_state: Factory, request: pytest.FixtureRequest
) -> None:
    from llmrouter_integrations.state.shared import CallDone, CallPlan, HoldAsk, RateAsk, RateDone

    one, reader = make_state(), make_state()  # `one` has sent no script yet
    daily = account("daily", 10_000, alerts=(1000,))
    for i in range(3):  # three calls take the deployment's three concurrency slots
        rate = RateAsk("dep", f"p{i}", None, None, 3, 10, 300.0)
        plan = CallPlan(rate=rate, hold=HoldAsk(f"h{i}", (daily,), 2000, 300.0))
        assert one.admit_call(plan, T0).rate_wait == 0.0
    busy = CallPlan(rate=RateAsk("dep", "x", None, None, 3, 10, 300.0))
    assert one.admit_call(busy, T0).rate_wait == math.inf
    calls = [
        CallDone(("h0", (daily,), 300), RateDone("dep", "p0"), T0 + 1),
        CallDone(("h1", (daily,), 300), RateDone("dep", "p1"), T0 + 1),
        CallDone(("h2", (daily,), None), RateDone("dep", "p2"), T0 + 1),
    ]
    results = one.finish_calls(calls)
    # Settled 300 and 600 (the alert at 1000 not yet crossed); the third hold released.
    assert [r.spent if r else None for r in results] == [[300], [600], None]
    assert reader.read([daily], T0 + 1) == [AccountState(600, 0)]
    again = one.finish_calls([calls[0], CallDone(("h9", (daily,), 500), None, T0 + 2)])
    assert again[0] is not None and again[0].spent == [600]  # sent twice, counted once
    assert again[1] is not None and again[1].spent == [1100] and again[1].crossed == [(0, 0)]
    # Every slot is free again: three new sends fit at once.
    for i in range(3):
        ask = RateAsk("dep", f"q{i}", None, None, 3, 10, 300.0)
        assert reader.admit_call(CallPlan(rate=ask), T0 + 2).rate_wait == 0.0
    if request.node.callspec.params["make_state"] == "redis":
        # A server that forgot its scripts (restarted): the pipeline loads it and goes on.
        one._client.script_flush()  # type: ignore[attr-defined]
        late = [CallDone((f"l{i}", (daily,), 100), None, T0 + 3) for i in range(3)]
        assert [r.spent if r else None for r in one.finish_calls(late)] == [
            [1200],
            [1300],
            [1400],
        ]
