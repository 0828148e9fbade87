"""Real OS processes sharing one budget (and limits, circuits) through SQLite and Redis.

Each worker (tests/_state_worker.py) is its own Python process running its own Router
against one FakeProviderServer in this process; the fake's request log shows what was
really sent.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from _processes import KEY, PROMPT, Workers, ask_all, open_store, results, together, worst_case
from _redis import SERVER, SKIP_REASON, RedisServer

from llmrouter_integrations import Budget, BudgetExceededError, Deployment, ManualClock, Router
from llmrouter_integrations.state.shared import Account, from_nano
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(valid_keys=[KEY]) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake: FakeProviderServer) -> None:
    fake.reset()
    fake.set_behavior("gpt-4o-mini", ModelBehavior(usage={"output": 60}))


def test_four_processes_of_200_calls_never_overshoot(
    fake: FakeProviderServer, state_url: str, workers: Workers
) -> None:
    limit = worst_case() * 100  # room for about 100 calls at their worst case, of 800
    spec = {"mode": "budget", "state": state_url, "base_url": fake.openai_base_url,
            "limit": str(limit), "calls": 200}
    done = results(workers.spawn(spec, count=4))
    ok = sum(r["outcomes"].get("ok", 0) for r in done)
    refused = sum(r["outcomes"].get("refused", 0) for r in done)
    spent = sum(Decimal(r["cost"]) for r in done)
    assert ok + refused == 800, done
    # $0 overshoot: what all four spent together is within the one limit...
    assert spent <= limit
    assert ok >= 100  # ...and the budget was used (actual costs are below the worst case)
    # Refused calls sent nothing: the fake saw exactly the calls that were served.
    assert fake.request_count("gpt-4o-mini") == ok
    # Any process reading the store sees the fleet's spend.
    with Router(
        deployments=[Deployment("openai", "gpt-4o-mini", api_key=KEY,
                                base_url=fake.openai_base_url)],
        budgets=[Budget(limit, period="day", name="daily")],
        state=state_url,
    ) as reader:
        (status,) = reader.budgets.status()
    assert Decimal(str(status.spent_usd)) == pytest.approx(spent)
    assert status.reserved_usd == 0


def test_a_killed_process_frees_its_hold_after_the_lease(
    fake: FakeProviderServer, state_url: str, workers: Workers
) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(latency_s=30, usage={"output": 60}))
    limit = worst_case() * Decimal("1.5")  # one call's hold leaves too little for another
    spec = {"mode": "hold", "state": state_url, "base_url": fake.openai_base_url,
            "limit": str(limit), "lease_s": 5.0}
    (holder,) = workers.spawn(spec)
    try:
        holder.expect("sent")
        deadline = time.monotonic() + 30  # a fresh interpreter on a loaded machine
        while fake.request_count() < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert fake.request_count() == 1  # the call is at the provider, its worst case held
    finally:
        holder.kill()
    fake.set_behavior("gpt-4o-mini", ModelBehavior(usage={"output": 60}))
    # This process's clock: moving it past the lease stands in for waiting 5 s.
    clock = ManualClock(wall_start=time.time())
    with Router(
        deployments=[Deployment("openai", "gpt-4o-mini", api_key=KEY,
                                base_url=fake.openai_base_url)],
        budgets=[Budget(limit, period="day", name="daily")],
        state=open_store(state_url, lease_s=5.0),
        clock=clock,
    ) as survivor:
        with pytest.raises(BudgetExceededError, match="held by calls in flight"):
            survivor.complete(PROMPT, max_tokens=60)
        clock.advance(5.5)
        assert survivor.complete(PROMPT, max_tokens=60).text
    assert fake.request_count() == 2


def test_shared_rpm_holds_across_four_processes(
    fake: FakeProviderServer, redis_server: RedisServer, workers: Workers
) -> None:
    # One backend here to keep the suite quick; test_state_stores holds both to the same windows.
    state_url = redis_server.fresh(13)
    spec = {"mode": "rpm", "state": state_url, "base_url": fake.openai_base_url, "rpm": 10,
            "calls": 10}
    done = results(workers.spawn(spec, count=4))
    ok = sum(r["outcomes"].get("ok", 0) for r in done)
    # Each process alone would send its 10; the fleet's one-minute window lets 10 through.
    assert ok == 10 and fake.request_count() == 10, done
    assert sum(sum(r["outcomes"].values()) for r in done) == 40


def test_a_circuit_opened_in_one_process_is_seen_by_another(
    fake: FakeProviderServer, tmp_path: Path, workers: Workers
) -> None:
    state_url = f"sqlite:///{tmp_path / 'state.db'}"  # Redis: test_state_router, test_state_stores
    fake.set_behavior("gpt-4o-mini", ModelBehavior(permanent_error=500))
    fake.set_behavior("gpt-4o", ModelBehavior())
    spec = {"mode": "breaker", "state": state_url, "base_url": fake.openai_base_url,
            "calls": 8, "models": ["gpt-4o-mini", "gpt-4o"]}
    (first,) = results(workers.spawn(spec))
    # The first deployment failed 5 times (each call then fell back), and its circuit opened.
    assert first["circuit"] == "open" and first["outcomes"] == {"ok": 8}
    assert fake.request_count("gpt-4o-mini") == 5
    (second,) = results(workers.spawn(spec))
    # A fresh process that never saw it fail skips it from its first call.
    assert second["circuit"] == "open" and second["outcomes"] == {"ok": 8}
    assert fake.request_count("gpt-4o-mini") == 5 and fake.request_count("gpt-4o") == 16


@pytest.mark.parametrize("stream", [False, True])
def test_identical_requests_in_four_processes_make_one_call(
    fake: FakeProviderServer, redis_server: RedisServer, tmp_path: Path, stream: bool,
    workers: Workers,
) -> None:
    # Answers through Redis locks; streams through SQLite ones.
    state_url = f"sqlite:///{tmp_path / 'state.db'}" if stream else redis_server.fresh(12)
    fake.set_behavior("gpt-4o-mini", ModelBehavior(latency_s=0.5))
    spec = {"mode": "cache", "state": state_url, "base_url": fake.openai_base_url,
            "cache": f"sqlite:///{tmp_path / 'cache.db'}", "stream": stream}
    fleet = workers.spawn(spec, count=4)
    together(fleet)  # all four are running before any of them asks
    done = results(fleet)
    assert fake.request_count() == 1
    assert len({r["text"] for r in done}) == 1
    assert sorted(r["cached"] for r in done) == [False, True, True, True]


def test_redis_stopped_mid_run(fake: FakeProviderServer, workers: Workers) -> None:
    if SERVER is None:
        pytest.skip(SKIP_REASON)
    server = RedisServer.start()  # its own server: this test stops it
    try:
        limit = worst_case() * 100
        base = {"mode": "outage", "state": server.url, "base_url": fake.openai_base_url,
                "limit": str(limit), "calls": 3, "timeout_s": 0.25}
        (closed,) = workers.spawn(base)
        (local,) = workers.spawn({**base, "state_failure": "local"})
        for worker in (closed, local):
            assert worker.json() == {"ok": 3}
        server.stop()
        sent_before = fake.request_count()
        for worker in (closed, local):
            worker.say("go")
        after_closed, after_local = results([closed, local])
    finally:
        server.stop()
    # Budgeted calls fail fast with the typed error and send nothing (state_failure="closed")...
    assert after_closed["outcomes"] == {"StateUnavailableError": 3}
    assert after_closed["slowest_s"] < 1.0
    # ...or spend from the local allowance (state_failure="local").
    assert after_local["outcomes"] == {"ok": 3}
    assert fake.request_count() == sent_before + 3


def test_failures_in_four_processes_add_up_to_one_threshold(
    fake: FakeProviderServer, state_url: str, workers: Workers
) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(permanent_error=500))
    fake.set_behavior("gpt-4o", ModelBehavior())
    spec = {"mode": "turns", "state": state_url, "base_url": fake.openai_base_url,
            "models": ["gpt-4o-mini", "gpt-4o"], "threshold": 5}
    fleet = workers.spawn(spec, count=4)
    seen: list[list[dict[str, Any]]] = [[] for _ in fleet]
    for _ in range(3):  # the workers take turns: one call each, in order
        for worker, log in zip(fleet, seen):
            worker.say("call")
            log.append(worker.json())
    for worker in fleet:
        worker.result(last_word="")
    # Each process failed at most twice itself, but the fleet's fifth failure opened the
    # circuit: the failing deployment got exactly 5 requests, then nothing (each process
    # alone would have sent it 5, 20 in all).
    assert fake.request_count("gpt-4o-mini") == 5
    assert fake.request_count("gpt-4o") == 12
    assert [log[1]["circuit"] for log in seen] == ["open"] * 4  # all see it from round two
    assert all(entry["deployment"] == "openai/gpt-4o" for log in seen for entry in log)


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_four_processes_spending_through_an_outage_stay_within_the_budget(
    fake: FakeProviderServer, backend: str, tmp_path: Path, workers: Workers
) -> None:
    if backend == "redis" and SERVER is None:
        pytest.skip(SKIP_REASON)
    server = RedisServer.start() if backend == "redis" else None  # its own: this test stops it
    url = server.url if server is not None else f"sqlite:///{tmp_path / 'state.db'}"
    limit = worst_case() * 100
    base = {"mode": "outage", "state": url, "base_url": fake.openai_base_url, "limit": str(limit),
            "state_failure": "local", "calls": 5, "outage_calls": 25, "after": 1,
            "timeout_s": 0.1, "retry_s": 0.0}
    locker: sqlite3.Connection | None = None
    fleet = workers.spawn(base, count=4)
    try:
        for worker in fleet:  # 20 calls while the store answers: most of the budget left
            assert worker.json() == {"ok": 5}
        before = fake.request_count()
        if server is not None:
            server.pause()  # frozen: every store call times out
        else:  # another process holds the file's write lock: every hold times out
            locker = sqlite3.connect(url[len("sqlite:///"):], isolation_level=None)
            locker.execute("BEGIN IMMEDIATE")
        for worker in fleet:
            worker.say("go")
        # A process started during the outage never reached the store: it holds no allowance.
        (late,) = results(workers.spawn({**base, "mode": "budget", "calls": 10}))
        during = [worker.json() for worker in fleet]
        sent_during = fake.request_count() - before
        if server is not None:
            server.resume()
        elif locker is not None:
            locker.execute("ROLLBACK")
        for worker in fleet:
            worker.say("go")
        after = results(fleet)
        store = open_store(url)
        (fleet,) = store.read([Account("daily|global|||" + str(int(time.time() // 86_400
                                                                   * 86_400)), 0)], time.time())
        store.close()
    finally:
        if locker is not None:
            locker.close()
        if server is not None:
            server.stop()
    served = sum(d["outcomes"].get("ok", 0) for d in during)
    assert served == sent_during > 0, during  # each process spent some of its allowance...
    assert all(set(d["outcomes"]) <= {"ok", "refused", "StateUnavailableError"} for d in during)
    # ...and then was refused: together they stayed within the one budget (each process
    # alone would have spent what was left, four times over).
    spent = sum(Decimal(r["cost"]) for r in after)
    assert spent <= limit, (spent, limit, during)
    assert late["outcomes"] == {"StateUnavailableError": 10} and Decimal(late["cost"]) == 0
    assert fake.request_count() == 20 + served + 4  # every call sent was one the fleet paid for
    # What was spent during the outage reached the store with the first calls after it.
    # Each process gave its allowance back when it closed.
    assert from_nano(fleet.spent) == spent and fleet.reserved == 0


def test_eight_processes_opening_one_new_file_at_the_same_instant_all_open_it(
    tmp_path: Path, workers: Workers
) -> None:
    # Eight web-server workers starting together on a new state, ledger and cache file: each
    # round, every worker gets the folder in the same instant. Switching a new file to WAL
    # was refused at once ("database is locked", no busy wait) to all but one of them.
    fleet = workers.spawn({"mode": "open"}, count=8)
    for worker in fleet:
        worker.expect("ready")
    for round_ in range(40):
        folder = tmp_path / str(round_)
        folder.mkdir()
        assert ask_all(fleet, str(folder)) == ["ok"] * 8, round_
    for worker in fleet:
        worker.result(last_word="")
