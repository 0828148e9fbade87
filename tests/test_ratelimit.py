"""Rate limits: RPM/TPM over simulated minutes, concurrency caps, provider headers and 429s."""

from __future__ import annotations

import asyncio
import random
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from llmrouter_integrations.admission import (
    RateLimits,
    RateLimitWaitError,
    RequestQueue,
    request_tokens,
)
from llmrouter_integrations.core.clock import SYSTEM_CLOCK, Clock, ManualClock
from llmrouter_integrations.core.events import EventHub, RouterEvent
from llmrouter_integrations.errors import QueueTimeoutError, RateLimitError
from llmrouter_integrations.layers.fallback import default_should_fallback
from llmrouter_integrations.layers.ratelimit import RateLimitBackend
from llmrouter_integrations.layers.retry import RetryBackend, RetryPolicy
from llmrouter_integrations.providers.base import RateLimitInfo
from llmrouter_integrations.testing import ScriptedBackend, ScriptedStep
from llmrouter_integrations.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Deployment,
    Message,
    Usage,
)

NAME = "p/m"


def ask(text: str = "hi", max_tokens: int | None = 20) -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content=text)], max_tokens=max_tokens)


def stack(
    inner: Any,
    clock: Clock,
    *,
    events: EventHub | None = None,
    max_wait: float | None = None,
    **limits: Any,
) -> tuple[RateLimitBackend, RateLimits]:
    deployment = Deployment(provider="p", model="m", **limits)
    rate_limits = RateLimits([deployment], clock=clock, events=events)
    queue = RequestQueue(rate_limits, clock=clock, events=events, max_wait=None)
    backend = RateLimitBackend(
        inner, deployment=NAME, limits=rate_limits, queue=queue, max_wait=max_wait
    )
    return backend, rate_limits


def most_in_any_window(times: list[float], amounts: list[int], window: float = 60.0) -> int:
    """The largest total of `amounts` sent within any `window`-second span."""
    pairs = sorted(zip(times, amounts, strict=True))
    return max(sum(a for t, a in pairs if start <= t < start + window) for start, _ in pairs)


class Gauge:
    """A backend that measures how many calls overlap."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.calls = 0

    async def chat(self, request: ChatRequest) -> ChatResponse:
        self.calls += 1
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            for _ in range(3):
                await asyncio.sleep(0)
        finally:
            self.now -= 1
        return ChatResponse(message=Message(role="assistant", content="ok"))

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        raise NotImplementedError
        yield ChatChunk()

    async def aclose(self) -> None:
        pass


class ProviderDouble:
    """An in-process provider allowing `limit` requests per sliding `window_s`.

    Like `DeploymentBackend`, it reports every reply's rate-limit headers through
    `on_headers` (remaining and reset as the provider saw them when it took the call),
    and answers 429 with retry-after past the limit.
    """

    def __init__(self, limit: int, window_s: float, clock: ManualClock) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self.admitted: deque[float] = deque()
        self.log: list[float] = []  # every admission, never pruned
        self.refused = 0
        self.answered = 0
        self.on_headers: Callable[[str, RateLimitInfo], None] = lambda name, info: None

    async def chat(self, request: ChatRequest) -> ChatResponse:
        now = self.clock.now()
        while self.admitted and self.admitted[0] <= now - self.window_s:
            self.admitted.popleft()
        full = len(self.admitted) >= self.limit
        if not full:
            self.admitted.append(now)
            self.log.append(now)
        info = RateLimitInfo(
            limit_requests=self.limit,
            remaining_requests=self.limit - len(self.admitted),
            reset_requests_s=self.admitted[-1] + self.window_s - now,
            retry_after_s=self.admitted[0] + self.window_s - now if full else None,
        )
        await asyncio.sleep(0)  # on the wire for a moment
        self.on_headers(NAME, info)
        if full:
            self.refused += 1
            raise RateLimitError("slow down", status_code=429, retry_after=info.retry_after_s)
        self.answered += 1
        return ChatResponse(message=Message(role="assistant", content="ok"), usage=Usage(5, 5, 10))

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        raise NotImplementedError
        yield ChatChunk()

    async def aclose(self) -> None:
        pass


# -- local limits --------------------------------------------------------------------------


async def test_rpm_holds_over_every_simulated_minute() -> None:
    clock = ManualClock()
    sent: list[float] = []
    inner = ScriptedBackend(NAME, ["ok"], clock=clock, on_call=lambda r: sent.append(clock.now()))
    backend, _ = stack(inner, clock, rpm=10)

    answers = await asyncio.gather(*(backend.chat(ask()) for _ in range(35)))

    assert len(answers) == 35
    assert most_in_any_window(sent, [1] * len(sent)) == 10
    assert sent == [0.0] * 10 + [60.0] * 10 + [120.0] * 10 + [180.0] * 5
    assert clock.sleeps == [60.0, 60.0, 60.0]  # one timer per refill, not one per waiter


async def test_tpm_holds_over_every_simulated_minute() -> None:
    clock = ManualClock()
    request = ask(max_tokens=190)
    cost = request_tokens(request)  # what the limiter charges before the call
    sent: list[float] = []
    step = ScriptedStep(text="ok", usage=Usage(cost - 190, 190, cost))  # uses all it may
    inner = ScriptedBackend(NAME, [step], clock=clock, on_call=lambda r: sent.append(clock.now()))
    backend, _ = stack(inner, clock, tpm=1_000)

    await asyncio.gather(*(backend.chat(request) for _ in range(12)))

    per_minute = 1_000 // cost
    assert most_in_any_window(sent, [cost] * len(sent)) <= 1_000
    assert sent[:per_minute] == [0.0] * per_minute and sent[per_minute] == 60.0


async def test_real_usage_corrects_the_token_estimate() -> None:
    clock = ManualClock()
    request = ask(max_tokens=190)
    cost = request_tokens(request)
    sent: list[float] = []
    step = ScriptedStep(text="ok", usage=Usage(20, 30, 50))  # far less than max_tokens
    inner = ScriptedBackend(NAME, [step], clock=clock, on_call=lambda r: sent.append(clock.now()))
    backend, limits = stack(inner, clock, tpm=1_000)

    for _ in range(25):
        await backend.chat(request)

    at_once = sent.count(0.0)
    assert at_once > 1_000 // cost  # more than the estimate alone would let through
    assert 50 * (at_once - 1) + cost <= 1_000  # ...and never past the limit in real tokens
    assert limits.snapshot(NAME)["remaining_tokens"] is not None


async def test_a_request_larger_than_the_token_limit_goes_alone_when_the_window_is_empty() -> None:
    clock = ManualClock()
    backend, _ = stack(ScriptedBackend(NAME, ["ok"], clock=clock), clock, tpm=100)
    await backend.chat(ask(max_tokens=20))
    answer = await backend.chat(ask(max_tokens=500))
    assert answer.text == "ok" and clock.now() == 60.0


async def test_the_concurrency_cap_is_never_exceeded() -> None:
    gauge = Gauge()
    backend, limits = stack(gauge, SYSTEM_CLOCK, max_concurrency=3, max_wait=30.0)

    answers = await asyncio.gather(*(backend.chat(ask()) for _ in range(30)))

    assert len(answers) == 30 and gauge.calls == 30
    assert gauge.peak == 3
    assert limits.snapshot(NAME)["in_flight"] == 0


async def test_a_stream_holds_its_permit_until_it_ends() -> None:
    clock = ManualClock()
    inner = ScriptedBackend(NAME, ["one two three"], clock=clock)
    backend, limits = stack(inner, clock, max_concurrency=1, max_wait=0.0)

    stream = backend.stream(ask())
    first = await anext(stream)
    assert first.text == "one" and limits.snapshot(NAME)["in_flight"] == 1
    with pytest.raises(RateLimitWaitError):
        await backend.chat(ask())
    rest = [chunk async for chunk in stream]
    assert rest[-1].is_final and limits.snapshot(NAME)["in_flight"] == 0
    assert (await backend.chat(ask())).text == "one two three"


async def test_waits_beyond_max_wait_fail_at_once_so_the_fallback_moves_on() -> None:
    clock = ManualClock()
    backend, _ = stack(ScriptedBackend(NAME, ["ok"], clock=clock), clock, rpm=1, max_wait=5.0)
    await backend.chat(ask())

    with pytest.raises(RateLimitWaitError) as caught:
        await backend.chat(ask())

    assert clock.now() == 0.0  # no pointless wait: the next slot is 60 s away
    assert caught.value.delay_s == 60.0 and caught.value.deployment == NAME
    assert isinstance(caught.value, QueueTimeoutError)
    assert default_should_fallback(caught.value)
    assert "sk-" not in str(caught.value)


async def test_short_waits_are_waited_on_the_injected_clock() -> None:
    clock = ManualClock()
    events: list[RouterEvent] = []
    inner = ScriptedBackend(NAME, ["ok"], clock=clock)
    backend, limits = stack(inner, clock, max_wait=5.0, events=EventHub([events.append]))
    limits.update_from_headers(NAME, RateLimitInfo(remaining_requests=0, reset_requests_s=3.0))

    answer = await backend.chat(ask())

    assert answer.text == "ok" and clock.sleeps == [3.0]
    waited = [e for e in events if e.type == "rate_limited" and e.data["reason"] == "local"]
    assert len(waited) == 1 and waited[0].data["waited_s"] == pytest.approx(3.0)


# -- what providers say ------------------------------------------------------------------------


async def test_headers_stop_sends_before_the_provider_refuses() -> None:
    clock = ManualClock()
    limits = RateLimits(clock=clock)
    assert limits.has_capacity("x", 100)

    limits.update_from_headers(
        "x", RateLimitInfo(limit_requests=50, remaining_requests=0, reset_requests_s=5.0)
    )
    assert not limits.has_capacity("x", 100)
    assert limits.delay("x", 100) == pytest.approx(5.0)
    assert limits.snapshot("x")["remaining_requests"] == 0

    clock.advance(5.0)
    assert limits.has_capacity("x", 100)
    assert limits.snapshot("x")["remaining_requests"] == 50


async def test_token_headers_limit_by_tokens() -> None:
    clock = ManualClock()
    limits = RateLimits(clock=clock)
    limits.update_from_headers(
        "x", RateLimitInfo(limit_tokens=10_000, remaining_tokens=900, reset_tokens_s=2.0)
    )
    assert limits.has_capacity("x", 800)
    assert limits.delay("x", 1_200) == pytest.approx(2.0)


async def test_a_429_pauses_the_deployment_for_its_retry_after() -> None:
    clock = ManualClock()
    events: list[RouterEvent] = []
    inner = ScriptedBackend(
        NAME, [RateLimitError("slow down", status_code=429, retry_after=7.0), "ok"], clock=clock
    )
    backend, limits = stack(inner, clock, events=EventHub([events.append]), max_wait=10.0)

    with pytest.raises(RateLimitError):
        await backend.chat(ask())
    assert limits.delay(NAME, 10) == pytest.approx(7.0)
    assert [e.data["retry_after_s"] for e in events if e.type == "rate_limited"] == [7.0]

    answer = await backend.chat(ask())  # waits out the pause on the clock, then goes
    assert answer.text == "ok" and clock.now() == pytest.approx(7.0)


async def test_a_burst_of_5n_after_warm_up_gets_no_429() -> None:
    clock = ManualClock()
    provider = ProviderDouble(limit=4, window_s=10.0, clock=clock)
    backend, limits = stack(provider, clock)  # no local rpm: only what the headers say
    provider.on_headers = limits.update_from_headers

    await backend.chat(ask())  # the first reply's headers teach the limit
    answers = await asyncio.gather(*(backend.chat(ask()) for _ in range(20)))

    assert len(answers) == 20
    assert provider.refused == 0
    assert most_in_any_window(provider.log, [1] * len(provider.log), 10.0) == 4


async def _cold_burst(with_limiter: bool, n: int = 4) -> tuple[int, int]:
    """A burst of 5n requests at a provider allowing n per 10 s, retried on 429."""
    clock = ManualClock()
    provider = ProviderDouble(limit=n, window_s=10.0, clock=clock)
    inner: Any = provider
    if with_limiter:
        inner, limits = stack(provider, clock)
        provider.on_headers = limits.update_from_headers
    policy = RetryPolicy(max_attempts=4, max_retry_after_s=60, rng=random.Random(1))
    backend = RetryBackend(inner, deployment=NAME, policy=policy, clock=clock)
    results = await asyncio.gather(
        *(backend.chat(ask()) for _ in range(5 * n)), return_exceptions=True
    )
    completed = sum(isinstance(r, ChatResponse) for r in results)
    return provider.refused, completed


async def test_a_cold_burst_gets_fewer_429s_with_the_adaptive_limiter() -> None:
    refused_with, completed_with = await _cold_burst(with_limiter=True)
    refused_without, _ = await _cold_burst(with_limiter=False)
    assert completed_with == 20
    assert refused_with == 16  # only the first wave, before any header was seen
    assert refused_with < refused_without


async def test_headers_count_sends_the_provider_had_not_seen() -> None:
    clock = ManualClock()
    limits = RateLimits(clock=clock)
    gate = asyncio.Event()

    class Slow(ProviderDouble):
        async def chat(self, request: ChatRequest) -> ChatResponse:
            index = len(self.admitted)
            self.admitted.append(clock.now())
            await gate.wait()
            # Every reply says what was left when *it* was taken: 10 - (index + 1).
            self.on_headers(NAME, RateLimitInfo(10, 9 - index, 30.0))
            return ChatResponse(message=Message(role="assistant", content="ok"))

    provider = Slow(limit=10, window_s=30.0, clock=clock)
    provider.on_headers = limits.update_from_headers
    backend = RateLimitBackend(provider, deployment=NAME, limits=limits, max_wait=0.0)
    tasks = [asyncio.create_task(backend.chat(ask())) for _ in range(6)]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(*tasks)
    # The first reply said 9 left, but 5 more were already on their way: 4 left.
    assert limits.snapshot(NAME)["remaining_requests"] == 4


# -- many loops ------------------------------------------------------------------------------


async def test_one_limiter_serves_two_event_loops() -> None:
    limits = RateLimits([Deployment(provider="p", model="m", max_concurrency=1)])
    queue = RequestQueue(limits, max_wait=30.0)
    held = limits.try_acquire(NAME, 10)
    assert held is not None
    gauge = Gauge()
    backend = RateLimitBackend(gauge, deployment=NAME, limits=limits, queue=queue, max_wait=30)
    done = threading.Event()

    def other_loop() -> None:
        asyncio.run(backend.chat(ask()))
        done.set()

    thread = threading.Thread(target=other_loop)
    thread.start()
    while queue.depth(NAME) == 0:
        await asyncio.sleep(0.001)
    assert not done.is_set()
    limits.release(held)  # freed on this loop: the waiter on the other loop must wake
    await asyncio.to_thread(thread.join, 10)
    assert done.is_set() and gauge.calls == 1


def test_snapshot_shows_limits_and_what_is_left() -> None:
    clock = ManualClock()
    limits = RateLimits(
        [Deployment(provider="p", model="m", rpm=10, tpm=1_000, max_concurrency=2)], clock=clock
    )
    permit = limits.try_acquire(NAME, 300)
    assert permit is not None
    snapshot = limits.snapshot(NAME)
    assert snapshot["remaining_requests"] == 9 and snapshot["remaining_tokens"] == 700
    assert snapshot["in_flight"] == 1 and snapshot["max_concurrency"] == 2
    limits.release(permit, actual_tokens=100)
    assert limits.snapshot(NAME)["remaining_tokens"] == 900
    limits.on_rate_limited(NAME, None)
    assert limits.snapshot(NAME)["paused_for_s"] == pytest.approx(limits.default_pause_s)


async def _held(backend: RateLimitBackend) -> AsyncIterator[ChatChunk]:
    """A stream that has taken the only permit (concurrency 1) and keeps it."""
    stream = backend.stream(ask())
    await anext(stream)
    return stream


async def test_a_deadline_that_cuts_the_wait_short_is_named_with_the_time_waited() -> None:
    # Before: "no capacity within 10.0s" after a 2 s wait cut short by the deadline.
    clock = ManualClock()
    inner = ScriptedBackend(NAME, ["one two"], clock=clock)
    backend, _ = stack(inner, clock, max_concurrency=1, max_wait=10.0)
    stream = await _held(backend)
    request = ask()
    request.deadline = clock.now() + 2.0

    with pytest.raises(RateLimitWaitError) as caught:
        await backend.chat(request)

    message = str(caught.value)
    assert clock.now() == pytest.approx(2.0)
    assert "before the request's deadline" in message and "waited 2s" in message
    assert "10" not in message
    await stream.aclose()


async def test_the_wait_limit_reached_says_how_long_it_waited() -> None:
    clock = ManualClock()
    inner = ScriptedBackend(NAME, ["one two"], clock=clock)
    backend, _ = stack(inner, clock, max_concurrency=1, max_wait=3.0)
    stream = await _held(backend)
    request = ask()
    request.deadline = clock.now() + 50.0  # further away than the wait limit

    with pytest.raises(RateLimitWaitError) as caught:
        await backend.chat(request)

    assert (
        str(caught.value)
        == f"[{NAME}] at its rate limit: no capacity before the 3s rate-limit wait; waited 3s"
    )
    await stream.aclose()


@pytest.mark.parametrize("deadline_s", [5.0, None])
async def test_giving_up_at_once_names_the_limit_that_is_too_close(
    deadline_s: float | None,
) -> None:
    # The next slot is 60 s away: nothing is waited, and the message says which limit
    # (the deadline or the wait) ends before it, and that nothing was waited.
    clock = ManualClock()
    backend, _ = stack(ScriptedBackend(NAME, ["ok"], clock=clock), clock, rpm=1, max_wait=30.0)
    await backend.chat(ask())
    request = ask()
    if deadline_s is not None:
        request.deadline = clock.now() + deadline_s

    with pytest.raises(RateLimitWaitError) as caught:
        await backend.chat(request)

    bound = "the request's deadline" if deadline_s is not None else "the 30s rate-limit wait"
    assert str(caught.value) == (
        f"[{NAME}] at its rate limit: next capacity in 60s, after {bound}; gave up after 0s"
    )
    assert clock.now() == 0.0 and caught.value.delay_s == 60.0
