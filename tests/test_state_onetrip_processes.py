"""One trip before a call and one after it, with real OS processes, SQLite and a real redis-server.

Counted, not assumed: SQLite transactions in each worker (tests/_state_worker.py wraps
the store's one entry point), Redis commands at the server (`INFO commandstats`). Also:
the provider's headroom shared by four processes, a SIGKILLed process's concurrency slot,
calls cancelled between admit and settle, and Redis frozen between admit and settle.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal

import pytest
from _processes import KEY, PROMPT, Workers, open_store, results, spawn, worst_case
from _redis import RedisServer

from llmrouter_integrations import (
    AllDeploymentsFailedError,
    Budget,
    Deployment,
    ManualClock,
    Router,
)
from llmrouter_integrations.admission.limits import RateLimitWaitError
from llmrouter_integrations.testing import FakeProviderServer, ModelBehavior


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer(valid_keys=[KEY]) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake: FakeProviderServer) -> None:
    fake.reset()
    fake.set_behavior("gpt-4o-mini", ModelBehavior(usage={"output": 60}))


def deployment(fake: FakeProviderServer, **limits: int) -> Deployment:
    return Deployment("openai", "gpt-4o-mini", api_key=KEY, base_url=fake.openai_base_url, **limits)


class Monitor:
    """The commands clients send to a redis-server (`MONITOR`), not those its scripts run."""

    STOP = "llmrouter-test-monitor-stop"

    def __init__(self, server: RedisServer) -> None:
        import redis

        self.url = server.url
        self.commands: list[str] = []
        self._client = redis.Redis.from_url(server.url)
        self._monitor = self._client.monitor()
        self._monitor.__enter__()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        for entry in self._monitor.listen():
            if self.STOP in entry["command"]:
                return
            if entry["client_type"] != "lua":
                self.commands.append(entry["command"].split(" ", 1)[0].upper())

    def stop(self) -> Counter[str]:
        import redis

        other = redis.Redis.from_url(self.url)
        try:
            other.echo(self.STOP)
        finally:
            other.close()
        self._thread.join(10)
        self._monitor.__exit__(None, None, None)
        self._client.close()
        return Counter(self.commands)


def test_four_processes_make_one_store_trip_before_and_one_after_each_call(
    fake: FakeProviderServer, state_url: str, request: pytest.FixtureRequest, workers: Workers
) -> None:
    calls = 50
    spec = {
        "mode": "budget",
        "state": state_url,
        "base_url": fake.openai_base_url,
        "limit": str(worst_case() * 10_000),
        "calls": calls,
        "rpm": 100_000,
        "max_concurrency": 1_000,
    }
    monitor = None
    if state_url.startswith("redis"):
        monitor = Monitor(request.getfixturevalue("redis_server"))
    try:
        done = results(workers.spawn(spec, count=4))
    finally:
        sent = monitor.stop() if monitor is not None else Counter[str]()
    assert [r["outcomes"] for r in done] == [{"ok": calls}] * 4, done
    # A budgeted call to a deployment with rpm, max_concurrency and its breaker on: one
    # trip before (hold, circuit, rate count), one after (settle, slot, tokens, headroom).
    # The trips after calls are sent in the background, several in one trip when they
    # queue up: at most 2 trips per call, and never fewer than one before each.
    if monitor is None:
        assert all(calls < r["trips"] <= 2 * calls for r in done), done
        return
    # Each script call is one command (those after calls may share a pipeline's round
    # trip); a script the server has not seen yet is loaded (SCRIPT LOAD) at most once per
    # process and script, after a refused call (NOSCRIPT) or before a first pipeline.
    loads = sent.pop("SCRIPT", 0)
    assert loads <= 2 * 4, sent
    assert 2 * calls * 4 <= sent.pop("EVALSHA") <= 2 * calls * 4 + loads, sent
    assert set(sent) <= {"CLIENT", "SELECT", "HELLO", "ECHO"}, sent  # connecting


def test_four_processes_share_what_the_provider_said_is_left(
    fake: FakeProviderServer, state_url: str
) -> None:
    # The provider takes 10 requests a minute; its headers say how many are left.
    fake.set_behavior("gpt-4o-mini", ModelBehavior(rate_limit=10, usage={"output": 60}))
    with Router(deployments=[deployment(fake)], state=state_url) as first:
        assert first.complete(PROMPT, max_tokens=60).text  # "9 left" reaches the store
    spec = {"mode": "rpm", "state": state_url, "base_url": fake.openai_base_url, "calls": 5}
    done = results([spawn(spec) for _ in range(4)])
    ok = sum(r["outcomes"].get("ok", 0) for r in done)
    # 20 calls from 4 processes that never saw a header themselves: the fleet sent the 9
    # the provider had left, and nothing it would have refused with a 429.
    assert ok == 9 and fake.request_count("gpt-4o-mini") == 10, done
    assert sum(sum(r["outcomes"].values()) for r in done) == 20


def test_a_killed_process_frees_its_concurrency_slot_after_the_lease(
    fake: FakeProviderServer, state_url: str, workers: Workers
) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(latency_s=30, usage={"output": 60}))
    spec = {
        "mode": "hold",
        "state": state_url,
        "base_url": fake.openai_base_url,
        "max_concurrency": 1,
        "lease_s": 5.0,
    }
    (holder,) = workers.spawn(spec)
    try:
        holder.expect("sent")
        deadline = time.monotonic() + 10
        while fake.request_count() < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert fake.request_count() == 1  # in flight, holding the fleet's one slot
    finally:
        holder.kill()
    fake.set_behavior("gpt-4o-mini", ModelBehavior(usage={"output": 60}))
    clock = ManualClock(wall_start=time.time())
    with Router(
        deployments=[deployment(fake, max_concurrency=1)],
        state=open_store(state_url, lease_s=5.0),
        rate_limit_wait=0.0,
        clock=clock,
    ) as survivor:
        with pytest.raises(AllDeploymentsFailedError) as refused:
            survivor.complete(PROMPT, max_tokens=60)
        (why,) = refused.value.exceptions
        assert isinstance(why, RateLimitWaitError), why  # the fleet's one slot is taken
        clock.advance(5.5)  # past the dead process's lease
        assert survivor.complete(PROMPT, max_tokens=60).text
    assert fake.request_count() == 2


async def test_calls_cancelled_between_admit_and_settle_leave_nothing_held(
    fake: FakeProviderServer, state_url: str
) -> None:
    fake.set_behavior("gpt-4o-mini", ModelBehavior(latency_s=0.05, usage={"output": 60}))
    limit = worst_case() * 1000
    rng = random.Random(13)
    async with Router(
        deployments=[deployment(fake, rpm=100_000, max_concurrency=4)],
        budgets=[Budget(limit, period="day", name="daily")],
        state=state_url,
        rate_limit_wait=5.0,
    ) as router:

        async def call() -> None:
            await router.achat(PROMPT, max_tokens=60)

        for _ in range(5):
            tasks = [asyncio.ensure_future(call()) for _ in range(12)]
            await asyncio.sleep(0)
            for task in tasks:
                await asyncio.sleep(rng.uniform(0, 0.03))
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        (status,) = router.budgets.status()
        assert status.reserved_usd == 0
        # Every concurrency slot is free again: four calls at once all go now.
        answers = await asyncio.gather(*(call() for _ in range(4)))
        assert len(answers) == 4


async def test_redis_frozen_between_admit_and_settle_settles_later_exactly_once(
    fake: FakeProviderServer, redis_server: RedisServer
) -> None:
    url = redis_server.fresh(11)
    fake.set_behavior("gpt-4o-mini", ModelBehavior(latency_s=0.3, usage={"output": 60}))
    limit = worst_case() * 100
    clock = ManualClock(wall_start=time.time())
    budget = Budget(limit, period="day", name="daily")
    async with Router(
        deployments=[deployment(fake)],
        budgets=[budget],
        state=open_store(url, timeout_s=0.2),
        clock=clock,
    ) as router:
        call = asyncio.ensure_future(router.achat(PROMPT, max_tokens=60))
        while fake.request_count() < 1:
            await asyncio.sleep(0.01)
        redis_server.pause()  # admitted and sent: the settle will find no store
        try:
            first = await call
        finally:
            redis_server.resume()
        assert first.cost
        clock.advance(3.0)  # past the guard's retry time: the next call tries the store
        second = await router.achat(PROMPT, max_tokens=60)
    with Router(deployments=[deployment(fake)], budgets=[budget], state=url) as reader:
        (status,) = reader.budgets.status()
    # Pushed once (under the same hold id), never lost, never counted twice.
    assert Decimal(str(status.spent_usd)) == pytest.approx(Decimal(str(first.cost + second.cost)))
    assert status.reserved_usd == 0
