"""Where cached answers live: the `CacheStore` protocol, in memory (LRU + TTL), SQLite, Redis.

Values are JSON-able dicts (the cache layer's entries). A store may keep them as they
are (memory) or as JSON text (SQLite, Redis); callers treat what `get` returns as
read-only. Every store is safe to use from several threads and event loops at once.

    >>> store = cache_store_from_spec("sqlite:///cache.db")     # or "memory", "redis://..."
    >>> await store.set("k", {"text": "hi"}, ttl_s=3600)
    >>> await store.get("k")
    {'text': 'hi'}
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar, runtime_checkable

from ..core.clock import SYSTEM_CLOCK, Clock
from ..errors import ConfigurationError

__all__ = [
    "CacheStore",
    "CacheValue",
    "MemoryCacheStore",
    "RedisCacheStore",
    "SQLiteCacheStore",
    "cache_store_from_spec",
]

log = logging.getLogger("llmrouter_integrations")

CacheValue = dict[str, Any]
T = TypeVar("T")

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


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


class MemoryCacheStore:
    """In-process LRU with a time-to-live: the default store, and the fastest.

    `max_entries` bounds memory (least recently used go first); `ttl_s=None` keeps
    entries until evicted. Expiry uses the injected clock's monotonic `now()`.

        >>> store = MemoryCacheStore(max_entries=10_000, ttl_s=3600)
    """

    def __init__(
        self, max_entries: int = 10_000, ttl_s: float | None = None, *, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        if max_entries < 1:
            raise ConfigurationError("MemoryCacheStore: max_entries must be at least 1")
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float | None, CacheValue]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> CacheValue | None:
        with self._lock:
            item = self._entries.get(key)
            if item is None:
                return None
            expires, value = item
            if expires is not None and self.clock.now() >= expires:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return value

    async def set(self, key: str, value: CacheValue, ttl_s: float | None = None) -> None:
        ttl = self.ttl_s if ttl_s is None else ttl_s
        expires = None if ttl is None else self.clock.now() + ttl
        with self._lock:
            self._entries[key] = (expires, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    async def delete(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    async def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    async def aclose(self) -> None:
        """Nothing to release."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS llm_cache (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL
)
"""
_PURGE_EVERY = 256  # writes between sweeps of expired rows


class SQLiteCacheStore:
    """A cache file that survives restarts and is shared by processes on one machine.

    WAL mode lets readers and one writer work at once; a busy timeout makes concurrent
    processes wait for each other instead of failing. All SQLite calls run on one worker
    thread of this store, never on an event loop. Expiry uses wall-clock time, so it
    holds across restarts. `max_entries` (optional) trims the oldest rows.

        >>> store = SQLiteCacheStore("~/.cache/llmrouter.db", ttl_s=7 * 24 * 3600)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        ttl_s: float | None = None,
        max_entries: int | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.path = os.path.expanduser(os.fspath(path))
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmrouter-sqlite")
        self._connection: sqlite3.Connection | None = None
        self._writes = 0
        self._closed = False

    def __repr__(self) -> str:
        return f"SQLiteCacheStore({self.path!r})"

    # Everything below `_run` executes on the store's single worker thread.
    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            directory = os.path.dirname(self.path)
            if directory:
                os.makedirs(directory, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA busy_timeout=30000")
            with connection:
                connection.execute(_SCHEMA)
            self._connection = connection
        return self._connection

    async def _run(self, function: Callable[[], T]) -> T:
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, function)

    async def get(self, key: str) -> CacheValue | None:
        now = self.clock.wall()

        def read() -> str | None:
            db = self._db()
            row = db.execute(
                "SELECT value, expires_at FROM llm_cache WHERE key = ?", (key,)
            ).fetchone()
            if row is None:
                return None
            if row[1] is not None and row[1] <= now:
                with db:
                    db.execute("DELETE FROM llm_cache WHERE key = ?", (key,))
                return None
            return str(row[0])

        text = await self._run(read)
        if text is None:
            return None
        value = json.loads(text)
        return value if isinstance(value, dict) else None

    async def set(self, key: str, value: CacheValue, ttl_s: float | None = None) -> None:
        text = _encode(value)
        now = self.clock.wall()
        ttl = self.ttl_s if ttl_s is None else ttl_s
        expires = None if ttl is None else now + ttl

        def write() -> None:
            db = self._db()
            with db:
                db.execute(
                    "INSERT OR REPLACE INTO llm_cache (key, value, created_at, expires_at) "
                    "VALUES (?, ?, ?, ?)",
                    (key, text, now, expires),
                )
            self._writes += 1
            if self._writes % _PURGE_EVERY == 0:
                self._purge(now)

        await self._run(write)

    def _purge(self, now: float) -> None:
        db = self._db()
        with db:
            db.execute(
                "DELETE FROM llm_cache WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
            )
            if self.max_entries is not None:
                db.execute(
                    "DELETE FROM llm_cache WHERE key IN (SELECT key FROM llm_cache "
                    "ORDER BY created_at DESC LIMIT -1 OFFSET ?)",
                    (self.max_entries,),
                )

    async def delete(self, key: str) -> None:
        def remove() -> None:
            db = self._db()
            with db:
                db.execute("DELETE FROM llm_cache WHERE key = ?", (key,))

        await self._run(remove)

    async def clear(self) -> None:
        def wipe() -> None:
            db = self._db()
            with db:
                db.execute("DELETE FROM llm_cache")

        await self._run(wipe)

    async def purge(self) -> None:
        """Delete expired rows now (and trim to `max_entries`); it also runs every 256 writes."""
        now = self.clock.wall()
        await self._run(lambda: self._purge(now))

    async def aclose(self) -> None:
        """Close the database and stop the worker thread."""
        if self._closed:
            return

        def close() -> None:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

        await self._run(close)
        self._closed = True
        self._executor.shutdown(wait=False)


class RedisCacheStore:
    """A cache shared by processes and machines, in Redis (`pip install llmrouter_integrations[redis]`).

    Entries are JSON under `prefix + key`, expiring through Redis's own TTL. A client
    is opened per event loop (redis-py's asyncio clients belong to one loop).

        >>> store = RedisCacheStore("redis://localhost:6379/0", ttl_s=86_400)
    """

    def __init__(
        self, url: str, *, ttl_s: float | None = None, prefix: str = "llmrouter:cache:"
    ) -> None:
        self.url = url
        self.ttl_s = ttl_s
        self.prefix = prefix
        self._lock = threading.Lock()
        self._clients: dict[asyncio.AbstractEventLoop, Any] = {}

    def __repr__(self) -> str:
        return f"RedisCacheStore(prefix={self.prefix!r})"  # the URL may hold a password

    def _client(self) -> Any:
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._clients.get(loop)
            if client is None:
                for gone in [old for old in self._clients if old.is_closed()]:
                    del self._clients[gone]  # their loops are over: nothing left to close
                try:
                    import redis.asyncio as aioredis
                except ImportError as error:  # pragma: no cover - depends on the extra
                    raise ConfigurationError(
                        "the Redis cache needs the redis package: "
                        "pip install 'llmrouter_integrations[redis]'"
                    ) from error
                client = aioredis.Redis.from_url(self.url)
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
        await self._client().set(self.prefix + key, _encode(value), px=milliseconds)

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
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._clients.pop(loop, None)
        if client is not None:
            await client.aclose()


def cache_store_from_spec(spec: str | CacheStore, *, clock: Clock = SYSTEM_CLOCK) -> CacheStore:
    """`Router(cache=...)`: "memory", "sqlite:///relative.db", "sqlite:////abs/path.db"
    (SQLAlchemy's spelling, as for the ledger), "redis://...", or a ready store.

    >>> cache_store_from_spec("sqlite:////tmp/llm-cache.db")
    SQLiteCacheStore('/tmp/llm-cache.db')
    """
    if not isinstance(spec, str):
        return spec
    if spec in ("memory", "memory://"):
        return MemoryCacheStore(clock=clock)
    if spec.startswith("sqlite://"):
        path = spec[len("sqlite://") :]
        path = path[1:] if path.startswith("/") else path
        if not path:
            raise ConfigurationError("cache='sqlite:///...' needs a file path")
        return SQLiteCacheStore(path, clock=clock)
    if spec.startswith(("redis://", "rediss://", "unix://")):
        return RedisCacheStore(spec)
    raise ConfigurationError(
        f"unknown cache {spec!r}: use 'memory', 'sqlite:///path.db' or 'redis://host:port/db'"
    )
