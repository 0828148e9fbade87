"""Circuit breakers and health tracking, driven by scripted backends and a manual clock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from llmrouter_integrations.core.clock import ManualClock
from llmrouter_integrations.core.events import EventHub, RouterEvent
from llmrouter_integrations.errors import (
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    CircuitOpenError,
    ConfigurationError,
    ContextWindowExceededError,
    NotFoundError,
    ProviderConnectionError,
    ProviderTimeoutError,
    ServerError,
)
from llmrouter_integrations.layers.breaker import CircuitBreakerBackend
from llmrouter_integrations.routing.health import BreakerPolicy, HealthTracker, classify_failure
from llmrouter_integrations.testing import ScriptedBackend, ScriptedStep
from llmrouter_integrations.types import ChatChunk, ChatRequest, ChatResponse, Message


def _request() -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content="hi")])


def _boom() -> ServerError:
    return ServerError("upstream exploded", status_code=500)


class Setup:
    def __init__(self, script: list[Any], policy: BreakerPolicy | None = None) -> None:
        self.clock = ManualClock()
        self.events: list[RouterEvent] = []
        self.tracker = HealthTracker(
            ["a"], policy=policy, clock=self.clock, events=EventHub([self.events.append])
        )
        self.backend = ScriptedBackend("a", script, clock=self.clock)
        self.breaker = CircuitBreakerBackend(self.backend, deployment="a", health=self.tracker)

    def transitions(self) -> list[str]:
        return [e.data["state"] for e in self.events if e.type == "circuit"]


class Gated:
    """A backend whose calls wait for `release`, then answer or raise `error`."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = 0
        self.error: BaseException | None = None

    async def chat(self, request: ChatRequest) -> ChatResponse:
        self.started += 1
        await self.release.wait()
        if self.error is not None:
            raise self.error
        return ChatResponse(message=Message(role="assistant", content="ok"), deployment="a")

    def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


async def test_opens_after_consecutive_failures_and_stops_calling() -> None:
    setup = Setup([_boom()], BreakerPolicy(failure_threshold=3, cooldown_s=30))
    for _ in range(3):
        with pytest.raises(ServerError):
            await setup.breaker.chat(_request())
    assert setup.tracker.state("a") == "open"
    with pytest.raises(CircuitOpenError, match="retry in 30 s"):
        await setup.breaker.chat(_request())
    assert len(setup.backend.calls) == 3  # the open circuit made no call
    assert setup.transitions() == ["open"]
    assert "3 consecutive failures" in setup.events[0].data["reason"]
    assert setup.events[0].data["cooldown_s"] == 30


async def test_opens_on_error_rate_without_a_failure_streak() -> None:
    script = ["ok", _boom()] * 10
    setup = Setup(script, BreakerPolicy(failure_threshold=5, min_calls=10, window=20))
    for n in range(10):
        with contextlib.suppress(ServerError):
            await setup.breaker.chat(_request())
        if n < 9:
            assert setup.tracker.state("a") == "closed"
    # 10 calls, 5 failed, never 2 in a row: the 50% error rate opened it.
    assert setup.tracker.state("a") == "open"
    assert "error rate 50%" in setup.events[0].data["reason"]


async def test_half_open_lets_one_probe_through_and_closes_on_success() -> None:
    clock = ManualClock()
    events: list[RouterEvent] = []
    tracker = HealthTracker(
        ["a"],
        policy=BreakerPolicy(failure_threshold=1, cooldown_s=10),
        clock=clock,
        events=EventHub([events.append]),
    )
    gated = Gated()
    breaker = CircuitBreakerBackend(gated, deployment="a", health=tracker)
    tracker.record_failure("a")
    assert tracker.state("a") == "open"
    assert tracker.time_to_recovery("a") == pytest.approx(10)

    clock.advance(10)
    assert tracker.state("a") == "half_open"
    probe = asyncio.create_task(breaker.chat(_request()))
    await asyncio.sleep(0)
    assert gated.started == 1
    with pytest.raises(CircuitOpenError, match="probe"):
        await breaker.chat(_request())  # only probe traffic while half-open
    assert gated.started == 1
    gated.release.set()
    await probe
    assert tracker.state("a") == "closed"
    assert [e.data["state"] for e in events] == ["open", "half_open", "closed"]
    await breaker.chat(_request())  # closed again: traffic flows
    assert gated.started == 2


async def test_failed_probe_reopens_with_growing_capped_cooldown() -> None:
    policy = BreakerPolicy(failure_threshold=1, cooldown_s=10, max_cooldown_s=35)
    setup = Setup([_boom()], policy)
    with pytest.raises(ServerError):
        await setup.breaker.chat(_request())
    cooldowns = [setup.tracker.time_to_recovery("a")]
    for _ in range(3):
        setup.clock.advance(setup.tracker.time_to_recovery("a"))
        assert setup.tracker.state("a") == "half_open"
        with pytest.raises(ServerError):
            await setup.breaker.chat(_request())  # the probe fails
        assert setup.tracker.state("a") == "open"
        cooldowns.append(setup.tracker.time_to_recovery("a"))
    assert cooldowns == [10, 20, 35, 35]
    reasons = [e.data["reason"] for e in setup.events if e.data["state"] == "open"]
    assert reasons[1].startswith("probe failed")


async def test_success_after_recovery_resets_the_cooldown() -> None:
    policy = BreakerPolicy(failure_threshold=1, cooldown_s=10)
    setup = Setup([_boom(), _boom(), "ok", _boom()], policy)
    with pytest.raises(ServerError):
        await setup.breaker.chat(_request())
    setup.clock.advance(10)
    with pytest.raises(ServerError):
        await setup.breaker.chat(_request())  # probe fails: 20 s now
    assert setup.tracker.time_to_recovery("a") == 20
    setup.clock.advance(20)
    await setup.breaker.chat(_request())  # probe succeeds
    assert setup.tracker.state("a") == "closed"
    with pytest.raises(ServerError):
        await setup.breaker.chat(_request())
    assert setup.tracker.time_to_recovery("a") == 10  # back to the base cooldown


@pytest.mark.parametrize(
    "error",
    [
        AuthenticationError("bad key", status_code=401),
        NotFoundError("no such model", status_code=404),
    ],
)
async def test_deployment_error_takes_it_out_of_rotation_at_once(error: Exception) -> None:
    setup = Setup([error], BreakerPolicy(failure_threshold=5, max_cooldown_s=600))
    with pytest.raises(type(error)):
        await setup.breaker.chat(_request())
    assert setup.tracker.state("a") == "open"
    assert setup.tracker.time_to_recovery("a") == 600
    assert "deployment error" in setup.events[0].data["reason"]


@pytest.mark.parametrize(
    "error",
    [
        BadRequestError("messages must not be empty", status_code=400),
        ContextWindowExceededError("too long", status_code=400),
        BudgetExceededError("over budget", limit_usd=1, spent_usd=1, needed_usd=0.1),
    ],
)
async def test_the_requests_own_faults_do_not_count(error: Exception) -> None:
    setup = Setup([error], BreakerPolicy(failure_threshold=1))
    for _ in range(5):
        with pytest.raises(type(error)):
            await setup.breaker.chat(_request())
    health = setup.tracker.snapshot()["a"]
    assert health.circuit == "closed"
    assert health.consecutive_failures == 0 and health.error_rate == 0
    assert health.in_flight == 0


def test_classify_failure() -> None:
    assert classify_failure(ProviderConnectionError("reset")) == "failure"
    assert classify_failure(asyncio.CancelledError()) is None
    assert classify_failure(CircuitOpenError("open")) is None


async def test_latency_is_an_average_of_observed_calls() -> None:
    setup = Setup([ScriptedStep(text="ok", delay_s=1.0), ScriptedStep(text="ok", delay_s=2.0)])
    await setup.breaker.chat(_request())
    assert setup.tracker.snapshot()["a"].latency_s == pytest.approx(1.0)
    await setup.breaker.chat(_request())
    health = setup.tracker.snapshot()["a"]
    assert health.latency_s == pytest.approx(0.3 * 2.0 + 0.7 * 1.0)
    assert health.last_latency_s == pytest.approx(2.0)
    assert health.latency_samples == 2


async def test_stream_success_needs_the_final_chunk_and_records_ttft() -> None:
    setup = Setup(
        [
            ScriptedStep(text="one two three", delay_s=0.5),
            ScriptedStep(text="one two three", fail_after_chunks=1, error=_boom()),
        ],
        BreakerPolicy(failure_threshold=1),
    )
    chunks = [c async for c in setup.breaker.stream(_request())]
    assert chunks[-1].is_final
    health = setup.tracker.snapshot()["a"]
    assert health.ttft_s == pytest.approx(0.5)
    assert health.circuit == "closed" and health.latency_samples == 1

    with pytest.raises(ServerError):
        async for _ in setup.breaker.stream(_request()):
            pass
    assert setup.tracker.state("a") == "open"  # a stream broken midway is a failure


async def test_abandoned_stream_frees_its_slot_without_a_verdict() -> None:
    setup = Setup([ScriptedStep(text="one two three four", chunks=4)])
    stream = setup.breaker.stream(_request())
    first = await anext(stream)  # type: ignore[call-overload]
    assert first.text
    assert setup.tracker.snapshot()["a"].in_flight == 1
    await stream.aclose()  # type: ignore[attr-defined]
    health = setup.tracker.snapshot()["a"]
    assert health.in_flight == 0
    assert health.latency_samples == 0 and health.error_rate == 0


async def test_a_call_from_before_the_opening_cannot_close_the_circuit() -> None:
    clock = ManualClock()
    tracker = HealthTracker(["a"], policy=BreakerPolicy(failure_threshold=1), clock=clock)
    gated = Gated()
    breaker = CircuitBreakerBackend(gated, deployment="a", health=tracker)
    slow = asyncio.create_task(breaker.chat(_request()))
    await asyncio.sleep(0)
    tracker.record_failure("a")  # another call fails meanwhile: open
    gated.release.set()
    await slow  # the old call succeeds, but it says nothing about now
    assert tracker.state("a") == "open"


async def test_early_probe_lets_one_call_through_an_open_circuit() -> None:
    setup = Setup([_boom(), "ok"], BreakerPolicy(failure_threshold=1, cooldown_s=100))
    with pytest.raises(ServerError):
        await setup.breaker.chat(_request())
    assert not setup.tracker.is_available("a")
    setup.tracker.allow_early_probe("a")
    assert setup.tracker.is_available("a")
    await setup.breaker.chat(_request())
    assert setup.tracker.state("a") == "closed"


async def test_in_flight_counts_overlapping_calls() -> None:
    tracker = HealthTracker(["a"], clock=ManualClock())
    gated = Gated()
    breaker = CircuitBreakerBackend(gated, deployment="a", health=tracker)
    tasks = [asyncio.create_task(breaker.chat(_request())) for _ in range(3)]
    await asyncio.sleep(0)
    assert tracker.snapshot()["a"].in_flight == 3
    gated.release.set()
    await asyncio.gather(*tasks)
    assert tracker.snapshot()["a"].in_flight == 0


def test_snapshot_is_a_copy_and_capacity_is_reported() -> None:
    tracker = HealthTracker(["a"], clock=ManualClock())
    tracker.update_capacity("a", remaining_requests=7, queued=2)
    snapshot = tracker.snapshot()
    snapshot["a"].in_flight = 99
    fresh = tracker.snapshot()["a"]
    assert fresh.in_flight == 0
    assert (fresh.remaining_requests, fresh.queued) == (7, 2)


def test_bad_policy_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        BreakerPolicy(error_rate_threshold=0)
    with pytest.raises(ConfigurationError):
        BreakerPolicy(cooldown_s=100, max_cooldown_s=10)


async def test_a_timeout_from_the_requests_own_deadline_is_not_held_against_a_fast_deployment() -> (
    None
):
    timeout = ProviderTimeoutError("no response within 0.1 s")
    setup = Setup(
        [ScriptedStep(error=timeout, delay_s=0.1), ScriptedStep(error=timeout, delay_s=1.0)],
        BreakerPolicy(failure_threshold=1),
    )
    setup.tracker.record_success("a", latency_s=0.2)

    # Handed the last 0.1 s of someone's budget: the deadline ran out, not the deployment.
    request = _request()
    request.deadline = setup.clock.now() + 0.1
    with pytest.raises(ProviderTimeoutError):
        await setup.breaker.chat(request)
    health = setup.tracker.snapshot()["a"]
    assert health.circuit == "closed" and health.consecutive_failures == 0

    # Given 5x its usual time and still silent: that is the deployment's failure.
    request = _request()
    request.deadline = setup.clock.now() + 1.0
    with pytest.raises(ProviderTimeoutError):
        await setup.breaker.chat(request)
    assert setup.tracker.state("a") == "open"
