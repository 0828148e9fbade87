"""Where state lives: one protocol per kind of state, one module per backend, one URL parser.

Kinds: cache entries (`cache`: `CacheStore`; backends `cache_memory`, `cache_sqlite`,
`cache_redis`) and ledger rows (`ledger`: `LedgerStore`; `ledger_memory`, `ledger_sqlite`).
Shared state across processes (`Router(state=...)`: budget holds, rate windows, circuits,
in-flight locks) has its protocol in `shared` and one module per backend (`shared_memory`,
`shared_sqlite`, `shared_redis`); `guard` turns a store outage into a quick fallback.
`stores` opens the cache or ledger store a setting names; `url.parse_store_url` reads every
`"memory" | "sqlite:///..." | "redis://..."` setting (and Redis Cluster and Sentinel URLs,
which `redis_clients` turns into redis-py clients); `sqlite_wal` sets up a new SQLite file that
many processes open at once. SQLite and Redis load only when used.

    >>> from llmrouter_integrations.state import SQLiteCacheStore, cache_store_from_spec
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .cache import CacheStore, CacheValue
from .ledger import LedgerEntry, LedgerFilter, LedgerStore, Summary
from .ledger_memory import MemoryLedgerStore
from .stores import cache_store_from_spec, ledger_store_from_spec
from .url import StoreURL, parse_store_url

if TYPE_CHECKING:
    from .cache_memory import MemoryCacheStore
    from .cache_redis import RedisCacheStore
    from .cache_sqlite import SQLiteCacheStore
    from .ledger_sqlite import SQLiteLedgerStore

__all__ = [
    "CacheStore",
    "CacheValue",
    "LedgerEntry",
    "LedgerFilter",
    "LedgerStore",
    "MemoryCacheStore",
    "MemoryLedgerStore",
    "RedisCacheStore",
    "SQLiteCacheStore",
    "SQLiteLedgerStore",
    "StoreURL",
    "Summary",
    "cache_store_from_spec",
    "ledger_store_from_spec",
    "parse_store_url",
]

_LAZY = {
    "MemoryCacheStore": "cache_memory",
    "RedisCacheStore": "cache_redis",
    "SQLiteCacheStore": "cache_sqlite",
    "SQLiteLedgerStore": "ledger_sqlite",
}


def __getattr__(name: str) -> Any:
    # sqlite3 and the store classes load on first use, keeping `import` light.
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
