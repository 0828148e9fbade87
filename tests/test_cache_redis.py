"""The Redis cache store against a real `redis-server` started on a free loopback port.

Needs the `redis-server` binary (Debian package `redis-server`); without it these tests
are skipped, so CI must install it to run them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from _redis import SERVER, SKIP_REASON, RedisServer
from pydantic import SecretStr

from llmrouter_integrations.core.clock import ManualClock
from llmrouter_integrations.layers.cache import CacheBackend
from llmrouter_integrations.state import RedisCacheStore, cache_store_from_spec
from llmrouter_integrations.types import ChatChunk, ChatRequest, ChatResponse, Deployment, Message

pytestmark = pytest.mark.skipif(SERVER is None, reason=SKIP_REASON)
SECRET = "sk-live-SECRET-redis-0123456789"


@pytest.fixture(scope="module")
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


class Counting:
    def __init__(self) -> None:
        self.calls = 0

    async def chat(self, request: ChatRequest) -> ChatResponse:
        self.calls += 1
        return ChatResponse(message=Message(role="assistant", content="from upstream"), cost=0.01)

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        raise NotImplementedError
        yield ChatChunk()

    async def aclose(self) -> None:
        pass


async def test_store_operations_and_expiry(redis_url: str) -> None:
    store = cache_store_from_spec(redis_url)
    assert isinstance(store, RedisCacheStore) and "127.0.0.1" not in repr(store)
    await store.clear()
    await store.set("a", {"n": 1}, ttl_s=30)
    await store.set("b", {"n": 2})
    assert await store.get("a") == {"n": 1}
    ttl_ms = await store._client().pttl(store.prefix + "a")
    assert 0 < ttl_ms <= 30_000
    await store.delete("a")
    assert await store.get("a") is None
    await store.clear()
    assert await store.get("b") is None
    await store.aclose()


async def test_cache_layer_on_redis_hits_across_event_loops_and_keeps_no_key(
    redis_url: str,
) -> None:
    store = RedisCacheStore(redis_url, ttl_s=60, prefix="test-layer:")
    await store.clear()
    upstream = Counting()
    deployments = [Deployment(provider="openai", model="gpt-4o-mini", api_key=SecretStr(SECRET))]
    cache = CacheBackend(upstream, store, deployments=deployments, clock=ManualClock())
    request = ChatRequest(messages=[Message(role="user", content="hi")])
    assert not (await cache.chat(request)).cached

    def other_loop() -> ChatResponse:
        return asyncio.run(cache.chat(request))  # a client of its own, on its own loop

    hit = await asyncio.to_thread(other_loop)
    assert hit.cached and hit.text == "from upstream" and upstream.calls == 1
    client = store._client()
    keys = [key async for key in client.scan_iter(match="test-layer:*")]
    assert len(keys) == 1
    stored = await client.get(keys[0])
    assert SECRET.encode() not in stored and SECRET.encode() not in keys[0]
    await store.clear()
    await store.aclose()
