"""Request queue: priority then arrival order, timeouts, depth and events, several loops."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from llmrouter_integrations.admission import RateLimits, RequestQueue
from llmrouter_integrations.core.clock import ManualClock
from llmrouter_integrations.core.events import EventHub, RouterEvent
from llmrouter_integrations.errors import QueueTimeoutError
from llmrouter_integrations.layers.queue import QueueBackend
from llmrouter_integrations.layers.ratelimit import RateLimitBackend
from llmrouter_integrations.testing import ScriptedBackend
from llmrouter_integrations.types import ChatRequest, Deployment, Message


def ask(priority: int = 0, text: str = "hi") -> ChatRequest:
    return ChatRequest(
        messages=[Message(role="user", content=text)], max_tokens=20, priority=priority
    )


def limits_for(clock: ManualClock | None = None, **per_name: dict[str, Any]) -> RateLimits:
    deployments = [Deployment(provider="p", model=n, name=n, **kw) for n, kw in per_name.items()]
    return RateLimits(deployments, clock=clock) if clock else RateLimits(deployments)


async def settle_loop() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_higher_priority_first_then_first_come_first_served() -> None:
    clock = ManualClock()
    limits = limits_for(clock, a={"max_concurrency": 1})
    queue = RequestQueue(limits, clock=clock, max_wait=None)
    held = limits.try_acquire("a", 10)
    assert held is not None
    order: list[str] = []

    async def one(label: str, priority: int) -> None:
        grant = await queue.wait_for_capacity(ask(priority), ["a"], 10)
        permit = limits.try_acquire("a", 10)
        assert permit is not None
        queue.settle(grant)
        order.append(label)
        await asyncio.sleep(0)
        limits.release(permit)

    arrivals = [("low-1", 0), ("low-2", 0), ("high-1", 5), ("low-3", 0), ("high-2", 5), ("mid", 1)]
    tasks = []
    for label, priority in arrivals:
        tasks.append(asyncio.create_task(one(label, priority)))
        await settle_loop()
    assert queue.depth("a") == 6 and order == []

    limits.release(held)
    await asyncio.gather(*tasks)
    assert order == ["high-1", "high-2", "mid", "low-1", "low-2", "low-3"]
    assert queue.depth() == 0 and clock.sleeps == []


async def test_a_newcomer_does_not_jump_the_line() -> None:
    clock = ManualClock()
    limits = limits_for(clock, a={"rpm": 1})
    queue = RequestQueue(limits, clock=clock, max_wait=None)
    assert await queue.wait_for_capacity(ask(), ["a"], 10) is not None
    assert limits.try_acquire("a", 10) is not None
    order: list[str] = []

    async def one(label: str) -> None:
        grant = await queue.wait_for_capacity(ask(), ["a"], 10)
        assert limits.try_acquire("a", 10) is not None
        queue.settle(grant)
        order.append(label)

    first = asyncio.create_task(one("first"))
    await settle_loop()
    second = asyncio.create_task(one("second"))
    await asyncio.gather(first, second)
    assert order == ["first", "second"]
    assert clock.now() == 120.0


async def test_queue_timeout_after_max_wait() -> None:
    clock = ManualClock()
    events: list[RouterEvent] = []
    limits = limits_for(clock, a={"max_concurrency": 1})
    queue = RequestQueue(limits, clock=clock, events=EventHub([events.append]), max_wait=5.0)
    assert limits.try_acquire("a", 10) is not None

    with pytest.raises(QueueTimeoutError, match="after waiting 5s"):
        await queue.wait_for_capacity(ask(), ["a"], 10)

    assert clock.now() == 5.0
    assert queue.depth() == 0 and queue.stats()["timeouts"] == 1
    states = [e.data["state"] for e in events if e.type == "queued"]
    assert states == ["waiting", "timeout"]


async def test_the_request_deadline_also_bounds_the_wait() -> None:
    clock = ManualClock()
    limits = limits_for(clock, a={"max_concurrency": 1})
    queue = RequestQueue(limits, clock=clock, max_wait=60.0)
    assert limits.try_acquire("a", 10) is not None
    request = ask()
    request.deadline = 2.0
    with pytest.raises(QueueTimeoutError):
        await queue.wait_for_capacity(request, ["a"], 10)
    assert clock.now() == 2.0


async def test_rate_refills_wake_the_line_with_one_timer() -> None:
    clock = ManualClock()
    limits = limits_for(clock, a={"rpm": 2})
    queue = RequestQueue(limits, clock=clock, max_wait=None)
    granted_at: list[float] = []

    async def one() -> None:
        grant = await queue.wait_for_capacity(ask(), ["a"], 10)
        assert limits.try_acquire("a", 10) is not None  # take the capacity, then settle
        queue.settle(grant)
        granted_at.append(clock.now())

    await asyncio.gather(*(one() for _ in range(5)))
    assert granted_at == [0.0, 0.0, 60.0, 60.0, 120.0]
    assert clock.sleeps == [60.0, 60.0]


async def test_any_candidate_with_room_serves_the_waiter() -> None:
    clock = ManualClock()
    limits = limits_for(clock, a={"max_concurrency": 1}, b={"max_concurrency": 1})
    queue = RequestQueue(limits, clock=clock, max_wait=None)
    held_a, held_b = limits.try_acquire("a", 1), limits.try_acquire("b", 1)
    assert held_a is not None and held_b is not None
    waiter = asyncio.create_task(queue.wait_for_capacity(ask(), ["a", "b"], 1))
    await settle_loop()
    assert not waiter.done() and queue.depth("a") == queue.depth("b") == 1
    limits.release(held_b)
    grant = await waiter
    assert grant is not None and grant.deployment == "b"


async def test_depth_stats_and_queued_events() -> None:
    clock = ManualClock()
    events: list[RouterEvent] = []
    limits = limits_for(clock, a={"max_concurrency": 1})
    queue = RequestQueue(limits, clock=clock, events=EventHub([events.append]), max_wait=None)
    held = limits.try_acquire("a", 10)
    assert held is not None

    async def wait_then_give_up_the_capacity() -> None:
        queue.settle(await queue.wait_for_capacity(ask(), ["a"], 10))

    waiters = [asyncio.create_task(wait_then_give_up_the_capacity()) for _ in range(3)]
    await settle_loop()
    assert queue.depth() == 3 and queue.depth("a") == 3 and queue.depth("b") == 0
    assert queue.stats()["depth"] == 3

    clock.advance(2.0)
    limits.release(held)
    await asyncio.gather(*waiters)
    stats = queue.stats()
    assert stats["granted"] == 3 and stats["max_depth"] == 3 and stats["depth"] == 0
    assert stats["max_wait_s"] == pytest.approx(2.0)
    granted = [e for e in events if e.type == "queued" and e.data["state"] == "granted"]
    assert len(granted) == 3 and granted[0].deployment == "a"
    assert granted[0].data["waited_s"] == pytest.approx(2.0)


async def test_a_cancelled_waiter_leaves_the_line() -> None:
    clock = ManualClock()
    limits = limits_for(clock, a={"max_concurrency": 1})
    queue = RequestQueue(limits, clock=clock, max_wait=None)
    held = limits.try_acquire("a", 10)
    assert held is not None
    first = asyncio.create_task(queue.wait_for_capacity(ask(), ["a"], 10))
    await settle_loop()
    second = asyncio.create_task(queue.wait_for_capacity(ask(), ["a"], 10))
    await settle_loop()
    first.cancel()
    await settle_loop()
    assert queue.depth("a") == 1
    limits.release(held)
    assert (await second) is not None
    assert queue.stats()["cancelled"] == 1


async def test_waiters_on_another_event_loop_are_woken() -> None:
    limits = limits_for(None, a={"max_concurrency": 1})
    queue = RequestQueue(limits, max_wait=30.0)
    held = limits.try_acquire("a", 10)
    assert held is not None
    got: list[object] = []

    thread = threading.Thread(
        target=lambda: got.append(asyncio.run(queue.wait_for_capacity(ask(), ["a"], 10)))
    )
    thread.start()
    while queue.depth("a") == 0:
        await asyncio.sleep(0.001)
    limits.release(held)
    await asyncio.to_thread(thread.join, 10)
    assert len(got) == 1 and got[0] is not None


async def test_queue_layer_holds_requests_until_a_candidate_frees() -> None:
    clock = ManualClock()
    events: list[RouterEvent] = []
    hub = EventHub([events.append])
    limits = RateLimits([Deployment(provider="p", model="m", rpm=2)], clock=clock, events=hub)
    queue = RequestQueue(limits, clock=clock, events=hub, max_wait=120.0)
    sent: list[float] = []
    inner = ScriptedBackend("p/m", ["ok"], clock=clock, on_call=lambda r: sent.append(clock.now()))
    per_deployment = RateLimitBackend(inner, deployment="p/m", limits=limits, queue=queue)
    layer = QueueBackend(per_deployment, queue, candidate_names=lambda r: ["p/m"])

    answers = await asyncio.gather(*(layer.chat(ask()) for _ in range(5)))
    streamed = [c async for c in layer.stream(ask())]

    assert [a.text for a in answers] == ["ok"] * 5 and streamed[-1].is_final
    assert sent == [0.0, 0.0, 60.0, 60.0, 120.0, 120.0]
    assert clock.sleeps == [60.0, 60.0]
    assert {e.data["state"] for e in events if e.type == "queued"} == {"waiting", "granted"}
    assert not [e for e in events if e.type == "rate_limited"]  # the queue did the waiting
