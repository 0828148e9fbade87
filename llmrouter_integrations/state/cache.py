"""Where cached answers live: the `CacheStore` protocol and `cache_store_from_spec`.

Values are JSON-able dicts (the cache layer's entries). A store may keep them as they
are (memory) or as JSON text (SQLite, Redis); callers treat what `get` returns as
read-only. Every store is safe to use from several threads and event loops at once.
Backends: `cache_memory.MemoryCacheStore` (LRU + TTL, the default),
`cache_sqlite.SQLiteCacheStore`, `cache_redis.RedisCacheStore`.

    >>> store = cache_store_from_spec("sqlite:///cache.db")     # state/stores.py
    >>> await store.set("k", {"text": "hi"}, ttl_s=3600)
    >>> await store.get("k")
    {'text': 'hi'}
"""

from __future__ import annotations

import json
from typing import Any, Protocol, runtime_checkable

__all__ = ["CacheStore", "CacheValue", "encode_entry"]

CacheValue = dict[str, Any]

# Compact JSON, as the SQLite and Redis stores keep entries.
encode_entry = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@runtime_checkable
class CacheStore(Protocol):
    """Async key-value storage with expiry. `ttl_s=None` on `set` means the store's default.

    >>> class MyStore:   # anything with these five coroutines is a store
    ...     async def get(self, key): ...
    ...     async def set(self, key, value, ttl_s=None): ...
    ...     async def delete(self, key): ...
    ...     async def clear(self): ...
    ...     async def aclose(self): ...
    """

    async def get(self, key: str) -> CacheValue | None: ...

    async def set(self, key: str, value: CacheValue, ttl_s: float | None = None) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def clear(self) -> None: ...

    async def aclose(self) -> None: ...
