"""Rate limiter and queue overhead per request, uncontended and under contention.

- `try_acquire` + `release` on a deployment with no limits and with rpm + tpm + concurrency;
- the token estimate every limited request pays (`request_tokens`);
- `RateLimitBackend.chat` and `QueueBackend -> RateLimitBackend` around a do-nothing
  backend, minus that backend alone (the layers' added cost per call);
- 64 concurrent callers through a concurrency cap of 8 (waiting in the queue): requests/s.

    python benchmarks/bench_ratelimit.py            # ~10 s
    python benchmarks/bench_ratelimit.py --quick    # ~2 s
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from llmrouter_integrations.admission import RateLimits, RequestQueue, request_tokens
from llmrouter_integrations.layers.queue import QueueBackend
from llmrouter_integrations.layers.ratelimit import RateLimitBackend
from llmrouter_integrations.types import ChatChunk, ChatRequest, ChatResponse, Deployment, Message

REQUEST = ChatRequest(
    messages=[
        Message(role="system", content="You are a helpful assistant."),
        Message(role="user", content="Explain quantum computing in one sentence."),
    ],
    max_tokens=200,
)
LIMITED = Deployment(
    provider="openai", model="gpt-4o-mini", rpm=10**9, tpm=10**12, max_concurrency=10**6
)
OPEN = Deployment(provider="openai", model="gpt-4o", name="open")
ANSWER = ChatResponse(message=Message(role="assistant", content="ok"))


class Nothing:
    """A backend that answers at once (yielding to the loop once, like real I/O would)."""

    def __init__(self, yield_once: bool = False) -> None:
        self.yield_once = yield_once

    async def chat(self, request: ChatRequest) -> ChatResponse:
        if self.yield_once:
            await asyncio.sleep(0)
        return ANSWER

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        yield ChatChunk(is_final=True)

    async def aclose(self) -> None:
        pass


def sync_us(call: Callable[[], Any], n: int) -> float:
    for _ in range(min(1_000, n)):
        call()
    start = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - start) / n * 1e6


async def async_us(call: Callable[[], Awaitable[Any]], n: int, rounds: int = 5) -> float:
    """Median over `rounds` of the mean time per call, in microseconds."""
    for _ in range(min(1_000, n)):
        await call()
    means = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n // rounds):
            await call()
        means.append((time.perf_counter() - start) / (n // rounds) * 1e6)
    return statistics.median(means)


async def contended(total: int) -> float:
    capped = Deployment(provider="openai", model="capped", max_concurrency=8)
    limits = RateLimits([capped])
    queue = RequestQueue(limits, max_wait=None)
    per_deployment = RateLimitBackend(
        Nothing(yield_once=True), deployment="openai/capped", limits=limits, queue=queue
    )
    layer = QueueBackend(per_deployment, queue, candidate_names=lambda r: ["openai/capped"])
    remaining = total

    async def caller() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await layer.chat(REQUEST)

    start = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(64)))
    elapsed = time.perf_counter() - start
    assert limits.snapshot("openai/capped")["in_flight"] == 0
    return total / elapsed


async def main(quick: bool) -> None:
    n = 20_000 if quick else 200_000
    limits = RateLimits([LIMITED, OPEN])
    tokens = request_tokens(REQUEST)

    def cycle(name: str) -> Callable[[], None]:
        def run() -> None:
            permit = limits.try_acquire(name, tokens)
            assert permit is not None
            limits.release(permit, actual_tokens=tokens // 2)

        return run

    print(f"rate limiter overhead per request ({n} calls each)")
    print(
        f"  request_tokens (estimate)             {sync_us(lambda: request_tokens(REQUEST), n):6.2f} us"
    )
    print(f"  try_acquire+release, no limits        {sync_us(cycle('open'), n):6.2f} us")
    print(f"  try_acquire+release, rpm+tpm+conc.    {sync_us(cycle(LIMITED.key), n):6.2f} us")

    queue = RequestQueue(limits, max_wait=None)
    bare = Nothing()
    limited = RateLimitBackend(bare, deployment=LIMITED.key, limits=limits, queue=queue)
    queued = QueueBackend(limited, queue, candidate_names=lambda r: [LIMITED.key, "open"])
    base = await async_us(lambda: bare.chat(REQUEST), n)
    with_limit = await async_us(lambda: limited.chat(REQUEST), n)
    with_queue = await async_us(lambda: queued.chat(REQUEST), n)
    print(f"  backend alone                         {base:6.2f} us")
    print(f"  + RateLimitBackend                    {with_limit - base:6.2f} us added")
    print(f"  + QueueBackend + RateLimitBackend     {with_queue - base:6.2f} us added")
    rate = await contended(n // 4)
    print(f"  64 callers, concurrency cap 8         {rate:8.0f} requests/s through the queue")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    asyncio.run(main(parser.parse_args().quick))
