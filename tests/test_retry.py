"""Retry schedule per deployment: backoff, jitter, retry-after, x-should-retry, deadline."""

from __future__ import annotations

import random

import pytest

from llmrouter_integrations import ManualClock, RetryPolicy
from llmrouter_integrations.core.events import EventHub, RouterEvent
from llmrouter_integrations.errors import (
    BadRequestError,
    OverloadedError,
    ProviderConnectionError,
    RateLimitError,
    ServerError,
)
from llmrouter_integrations.layers.retry import RetryBackend
from llmrouter_integrations.testing import ScriptedBackend, ScriptedStep
from llmrouter_integrations.types import ChatRequest, Message


def request(deadline: float | None = None) -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content="hi")], deadline=deadline)


def make(
    script: list[object], policy: RetryPolicy, clock: ManualClock, events: EventHub | None = None
):
    inner = ScriptedBackend("a", script, clock=clock)  # type: ignore[arg-type]
    return inner, RetryBackend(inner, deployment="a", policy=policy, clock=clock, events=events)


def server_error() -> ServerError:
    return ServerError("boom", status_code=500)


async def test_exponential_backoff_schedule_without_jitter() -> None:
    clock = ManualClock()
    policy = RetryPolicy(max_attempts=4, initial_backoff_s=0.5, multiplier=2, jitter=0)
    inner, backend = make([server_error(), server_error(), server_error(), "done"], policy, clock)
    response = await backend.chat(request())
    assert response.text == "done"
    assert len(inner.calls) == 4
    assert clock.sleeps == [0.5, 1.0, 2.0]


async def test_backoff_is_capped_and_jitter_only_shortens() -> None:
    clock = ManualClock()
    policy = RetryPolicy(
        max_attempts=6, initial_backoff_s=1, max_backoff_s=3, jitter=0.25, rng=random.Random(7)
    )
    _, backend = make([server_error()] * 5 + ["ok"], policy, clock)
    await backend.chat(request())
    nominal = [1, 2, 3, 3, 3]
    assert len(clock.sleeps) == 5
    for slept, cap in zip(clock.sleeps, nominal):
        assert cap * 0.75 <= slept <= cap


async def test_retry_after_is_honoured() -> None:
    clock = ManualClock()
    policy = RetryPolicy(max_attempts=3, jitter=0)
    limited = RateLimitError("slow down", status_code=429, retry_after=7.5)
    _, backend = make([limited, "ok"], policy, clock)
    assert (await backend.chat(request())).text == "ok"
    assert clock.sleeps == [7.5]


async def test_retry_after_beyond_cap_gives_up_at_once() -> None:
    clock = ManualClock()
    policy = RetryPolicy(max_attempts=3, max_retry_after_s=60)
    limited = RateLimitError("come back tomorrow", status_code=429, retry_after=3600)
    inner, backend = make([limited, "ok"], policy, clock)
    with pytest.raises(RateLimitError):
        await backend.chat(request())
    assert len(inner.calls) == 1
    assert clock.sleeps == []


async def test_not_retryable_errors_raise_immediately() -> None:
    clock = ManualClock()
    # x-should-retry: false makes even a 500 final; the dialect sets retryable=False.
    final = ServerError("do not retry", status_code=500, retryable=False)
    for error in (BadRequestError("bad", status_code=400), final):
        inner, backend = make([error, "ok"], RetryPolicy(), clock)
        with pytest.raises(type(error)):
            await backend.chat(request())
        assert len(inner.calls) == 1
    assert clock.sleeps == []


async def test_gives_up_after_max_attempts_with_last_error() -> None:
    clock = ManualClock()
    errors = [ServerError(f"boom {i}", status_code=500) for i in range(5)]
    inner, backend = make(list(errors), RetryPolicy(max_attempts=3, jitter=0), clock)
    with pytest.raises(ServerError, match="boom 2"):
        await backend.chat(request())
    assert len(inner.calls) == 3


async def test_deadline_stops_retries_that_would_overrun() -> None:
    clock = ManualClock()
    policy = RetryPolicy(max_attempts=10, initial_backoff_s=1, jitter=0)
    inner, backend = make([OverloadedError("busy", status_code=529)] * 10, policy, clock)
    with pytest.raises(OverloadedError):
        await backend.chat(request(deadline=4.0))
    # waits 1 and 2 fit in 4 s; the next (4) would cross the deadline.
    assert clock.sleeps == [1, 2]
    assert len(inner.calls) == 3


async def test_retry_events_are_emitted() -> None:
    clock = ManualClock()
    seen: list[RouterEvent] = []
    _, backend = make(
        [server_error(), "ok"], RetryPolicy(jitter=0), clock, events=EventHub([seen.append])
    )
    await backend.chat(request())
    assert [e.type for e in seen] == ["retry"]
    assert seen[0].deployment == "a" and seen[0].data["attempt"] == 2
    assert "ServerError" in seen[0].data["error"]


async def test_stream_retries_before_first_content_chunk() -> None:
    clock = ManualClock()
    script = [ProviderConnectionError("reset"), ScriptedStep(text="one two three")]
    inner, backend = make(script, RetryPolicy(jitter=0), clock)
    chunks = [c async for c in backend.stream(request())]
    assert "".join(c.text for c in chunks) == "one two three"
    assert chunks[-1].is_final and len(inner.calls) == 2


async def test_stream_error_after_content_is_raised_not_retried() -> None:
    clock = ManualClock()
    broken = ScriptedStep(
        text="one two three four",
        chunks=4,
        fail_after_chunks=2,
        error=ProviderConnectionError("cut"),
    )
    inner, backend = make([broken, "never"], RetryPolicy(jitter=0), clock)
    received: list[str] = []
    with pytest.raises(ProviderConnectionError):
        async for chunk in backend.stream(request()):
            received.append(chunk.text)
    assert "".join(received) == "one two"
    assert len(inner.calls) == 1
