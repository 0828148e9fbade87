"""Cache-hit latency through `CacheBackend`: memory store (target <= 50 us) and SQLite.

A hit's full path is measured: computing the key, reading the store, rebuilding the
`ChatResponse` (or replaying the stream), counting the saving and emitting the event.
The key alone is also timed, for a short request and a 10-turn (~4 KB) conversation.

    python benchmarks/bench_cache.py            # ~10 s
    python benchmarks/bench_cache.py --quick    # ~2 s
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

from llmrouter_integrations.core.events import EventHub
from llmrouter_integrations.layers.cache import CacheBackend
from llmrouter_integrations.state import CacheStore, MemoryCacheStore, SQLiteCacheStore
from llmrouter_integrations.state.cache_codec import cache_key
from llmrouter_integrations.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    CostDetail,
    Deployment,
    Message,
    ToolCall,
    ToolSpec,
    Usage,
)

DEPLOYMENTS = [
    Deployment(provider="openai", model="gpt-4o-mini", api_key="sk-bench-0000000000000000"),
    Deployment(provider="anthropic", model="claude-haiku-4-5", api_key="sk-ant-bench-000000000"),
]
TOOL = ToolSpec(
    name="get_weather",
    description="Current weather for a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)


class Answer:
    """Upstream stand-in: a typical reply (text, one tool call, usage, cost, raw JSON)."""

    async def chat(self, request: ChatRequest) -> ChatResponse:
        return ChatResponse(
            message=Message(
                role="assistant",
                content="Quantum computers use qubits, which can hold superpositions. " * 4,
                tool_calls=[ToolCall("call_1", "get_weather", {"city": "Paris"})],
            ),
            finish_reason="tool_calls",
            usage=Usage(120, 60, 180),
            cost=0.000054,
            cost_detail=CostDetail(Decimal("0.000018"), Decimal("0.000036")),
            provider="openai",
            model="gpt-4o-mini-2024-07-18",
            deployment="openai/gpt-4o-mini",
            latency_s=0.8,
            raw={"id": "chatcmpl-1", "object": "chat.completion", "usage": {"total_tokens": 180}},
            id="chatcmpl-1",
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        for word in ("Quantum ", "computers ", "use ", "qubits.") * 5:
            yield ChatChunk(text=word)
        yield ChatChunk(is_final=True, finish_reason="stop", usage=Usage(20, 20, 40), cost=1e-5)

    async def aclose(self) -> None:
        pass


def request(turns: int) -> ChatRequest:
    messages = [Message(role="system", content="You are a helpful assistant.")]
    for n in range(turns):
        messages.append(Message(role="user", content=f"Question {n}: explain qubits. " * 8))
        messages.append(Message(role="assistant", content=f"Answer {n}: superposition. " * 8))
    messages.append(Message(role="user", content="Explain quantum computing in one sentence."))
    return ChatRequest(messages=messages, max_tokens=200, temperature=0.2, tools=[TOOL])


async def per_call_us(call: Callable[[], Awaitable[Any]], n: int) -> tuple[float, float]:
    """Median and p99 of `n` timed calls, in microseconds (after a warm-up)."""
    for _ in range(min(200, n)):
        await call()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - start) * 1e6)
    samples.sort()
    return statistics.median(samples), samples[int(0.99 * (len(samples) - 1))]


async def hit_latency(store: CacheStore, n: int, label: str) -> None:
    hub = EventHub([lambda event: None])  # one subscriber, as a router with on_event has
    cache = CacheBackend(Answer(), store, deployments=DEPLOYMENTS, events=hub)
    for turns, shape in ((0, "short"), (10, "long")):
        req = request(turns)
        await cache.chat(req)

        async def chat_hit(req: ChatRequest = req) -> None:
            response = await cache.chat(req)
            assert response.cached

        async def stream_hit(req: ChatRequest = req) -> None:
            async for _chunk in cache.stream(req):
                pass

        p50, p99 = await per_call_us(chat_hit, n)
        print(f"  {label:<8} chat hit,   {shape:<5} request: p50 {p50:7.1f} us   p99 {p99:7.1f} us")
        p50, p99 = await per_call_us(stream_hit, n)
        print(f"  {label:<8} stream hit, {shape:<5} request: p50 {p50:7.1f} us   p99 {p99:7.1f} us")


async def key_only(n: int) -> None:
    for turns, shape in ((0, "short"), (10, "long")):
        req = request(turns)

        async def key(req: ChatRequest = req) -> None:
            cache_key(req, DEPLOYMENTS)

        p50, p99 = await per_call_us(key, n)
        size = sum(len(m.text) for m in req.messages)
        print(
            f"  cache_key, {shape:<5} request ({size:>5} chars): p50 {p50:6.1f} us  p99 {p99:6.1f} us"
        )


async def main(quick: bool) -> None:
    n = 2_000 if quick else 20_000
    print(f"cache hit latency ({n} calls each)")
    await key_only(n)
    await hit_latency(MemoryCacheStore(), n, "memory")
    with tempfile.TemporaryDirectory() as directory:
        store = SQLiteCacheStore(os.path.join(directory, "bench.db"))
        await hit_latency(store, max(500, n // 10), "sqlite")
        await store.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    asyncio.run(main(parser.parse_args().quick))
