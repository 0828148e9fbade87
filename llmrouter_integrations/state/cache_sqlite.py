"""A cache store in a SQLite file: survives restarts, shared by the processes of one machine.

>>> store = SQLiteCacheStore("cache.db", ttl_s=86_400)
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ..core.clock import SYSTEM_CLOCK, Clock
from .cache import CacheValue, encode_entry
from .sqlite_wal import use_wal

__all__ = ["SQLiteCacheStore"]

log = logging.getLogger("llmrouter_integrations")

T = TypeVar("T")

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
            use_wal(connection, 30.0)
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
        text = encode_entry(value)
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
