"""A cache store on Redis: shared by every machine of a fleet (the `redis` extra).

>>> store = RedisCacheStore("redis://localhost:6379/0", prefix="llmrouter:cache:")
>>> store = RedisCacheStore("redis+cluster://10.0.0.7:6379,10.0.0.8:6379")
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from .cache import CacheValue, encode_entry
from .redis_clients import async_client

__all__ = ["RedisCacheStore"]


class RedisCacheStore:
    """A cache shared by processes and machines, in Redis (`pip install llmrouter_integrations[redis]`).

    Entries are JSON under `prefix + key`, expiring through Redis's own TTL. `url` is
    any URL `RedisState` takes (one server, `redis+cluster://`, `redis+sentinel://`): a
    client is opened per event loop (redis-py's asyncio clients belong to one loop), each
    call bounded by `timeout_s`. Or `url` is a ready `redis.asyncio` client (a
    `RedisCluster`, a Sentinel `master_for(...)`), used as is and left open. Entries are
    single keys without a hash tag, so a cluster spreads them over its nodes.

        >>> store = RedisCacheStore("redis://localhost:6379/0", ttl_s=86_400)
    """

    def __init__(
        self,
        url: str | Any,
        *,
        ttl_s: float | None = None,
        prefix: str = "llmrouter:cache:",
        timeout_s: float = 1.0,
    ) -> None:
        self.url = url if isinstance(url, str) else ""
        self.ttl_s = ttl_s
        self.prefix = prefix
        self.timeout_s = timeout_s
        self._given = None if isinstance(url, str) else url
        self._lock = threading.Lock()
        self._clients: dict[asyncio.AbstractEventLoop, Any] = {}

    def __repr__(self) -> str:
        return f"RedisCacheStore(prefix={self.prefix!r})"  # the URL may hold a password

    def _client(self) -> Any:
        if self._given is not None:
            return self._given
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._clients.get(loop)
            if client is None:
                for gone in [old for old in self._clients if old.is_closed()]:
                    del self._clients[gone]  # their loops are over: nothing left to close
                client = async_client(self.url, timeout_s=self.timeout_s)
                self._clients[loop] = client
            return client

    async def get(self, key: str) -> CacheValue | None:
        data = await self._client().get(self.prefix + key)
        if data is None:
            return None
        value = json.loads(data)
        return value if isinstance(value, dict) else None

    async def set(self, key: str, value: CacheValue, ttl_s: float | None = None) -> None:
        ttl = self.ttl_s if ttl_s is None else ttl_s
        milliseconds = None if ttl is None else max(1, int(ttl * 1000))
        await self._client().set(self.prefix + key, encode_entry(value), px=milliseconds)

    async def delete(self, key: str) -> None:
        await self._client().delete(self.prefix + key)

    async def clear(self) -> None:
        client = self._client()
        batch: list[Any] = []
        async for name in client.scan_iter(match=self.prefix + "*", count=500):
            batch.append(name)
            if len(batch) >= 500:
                await client.delete(*batch)
                batch = []
        if batch:
            await client.delete(*batch)

    async def aclose(self) -> None:
        """Close this loop's client (clients of other loops close with their loops)."""
        if self._given is not None:
            return  # the caller's client: the caller closes it
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._clients.pop(loop, None)
        if client is not None:
            await client.aclose()
