"""Stores from settings: `"memory"`, `"sqlite:///path.db"`, a Redis URL or a store object.

Every setting goes through the one parser (`url.parse_store_url`); each backend module is
imported only when a setting names it.

    >>> cache_store_from_spec("redis://localhost:6379/0")
    >>> ledger_store_from_spec("sqlite:///costs.db")
    >>> shared_state_from_spec("redis://localhost:6379/0")
"""

from __future__ import annotations

from ..core.clock import SYSTEM_CLOCK, Clock
from ..errors import ConfigurationError
from .cache import CacheStore
from .ledger import LedgerStore
from .shared import SharedState
from .url import ROUTER_OPTIONS, parse_store_url

__all__ = ["cache_store_from_spec", "ledger_store_from_spec", "shared_state_from_spec"]


def cache_store_from_spec(spec: str | CacheStore, *, clock: Clock = SYSTEM_CLOCK) -> CacheStore:
    """`Router(cache=...)`: "memory", "sqlite:///relative.db", "sqlite:////abs/path.db"
    (SQLAlchemy's spelling, as for the ledger), "redis://...", "redis+cluster://...",
    "redis+sentinel://...", or a ready store. A Redis URL may set `?timeout=` (seconds per
    call, 1 by default) and `?prefix=` (keys start `prefix:cache:`; "llmrouter" by default).

    >>> cache_store_from_spec("sqlite:////tmp/llm-cache.db")
    SQLiteCacheStore('/tmp/llm-cache.db')
    >>> cache_store_from_spec("redis://localhost:6379/0?prefix=app1")
    RedisCacheStore(prefix='app1:cache:')
    """
    if not isinstance(spec, str):
        if _is_redis_client(spec):
            raise ConfigurationError(
                "cache= takes a redis-py client wrapped in a store: "
                "cache=RedisCacheStore(client), with a redis.asyncio client "
                "(from llmrouter_integrations.state import RedisCacheStore)"
            )
        return spec
    where = parse_store_url(spec, setting="cache", options=ROUTER_OPTIONS)
    if where.backend == "sqlite" and where.timeout_s is not None:
        # The SQLite cache waits for the file's lock in its own worker thread, off the call.
        raise ConfigurationError("cache= takes no timeout= option for this store (valid: none)")
    if where.backend == "sqlite":
        from .cache_sqlite import SQLiteCacheStore

        return SQLiteCacheStore(where.path, clock=clock)
    if where.backend == "redis":
        from .cache_redis import RedisCacheStore

        return RedisCacheStore(
            where.url,
            prefix=f"{where.prefix or 'llmrouter'}:cache:",
            timeout_s=where.timeout_s or 1.0,
        )
    from .cache_memory import MemoryCacheStore

    return MemoryCacheStore(clock=clock)


def ledger_store_from_spec(spec: str | LedgerStore | None) -> LedgerStore:
    """`Router(ledger=...)`: "memory" (or None), "sqlite:///relative.db",
    "sqlite:////abs/path.db", or a ready store.

    >>> ledger_store_from_spec("sqlite:///costs.db")
    """
    if spec is None:
        spec = "memory"
    if isinstance(spec, str):
        where = parse_store_url(spec, setting="ledger", backends=("memory", "sqlite"))
        if where.backend == "sqlite":
            from .ledger_sqlite import SQLiteLedgerStore

            return SQLiteLedgerStore(where.path)
        from .ledger_memory import MemoryLedgerStore

        return MemoryLedgerStore()
    if isinstance(spec, LedgerStore):
        return spec
    raise ConfigurationError(f"unknown ledger {spec!r}")


def shared_state_from_spec(
    spec: str | SharedState | None, *, timeout_s: float = 0.25, prefix: str = "llmrouter"
) -> SharedState | None:
    """A store from `Router(state=...)`: None, "memory", "sqlite:///path.db",
    "redis://host:port/db", "rediss://...", "redis+cluster://host:port,host:port",
    "redis+sentinel://host:26379,host:26379/service_name/db" or a ready store object.
    The URL's `?timeout=` (seconds per store call) and, for Redis, `?prefix=` (the keys'
    prefix and hash tag) take the place of `timeout_s` and `prefix`.

    >>> shared_state_from_spec("sqlite:///var/lib/app/state.db").backend
    'sqlite'
    >>> shared_state_from_spec("redis://localhost:6379/0?timeout=0.5&prefix=app1")
    RedisState(prefix='app1')
    """
    if spec is None or isinstance(spec, SharedState):
        return spec
    if _is_redis_client(spec):
        raise ConfigurationError(
            "state= takes a redis-py client wrapped in a store: state=RedisState(client), "
            "with a synchronous client (from llmrouter_integrations.state.shared_redis "
            "import RedisState)"
        )
    if not isinstance(spec, str):
        raise ConfigurationError(f"state= must be None, a URL or a store, not {type(spec)}")
    where = parse_store_url(spec, setting="state", options=ROUTER_OPTIONS)
    timeout_s = where.timeout_s or timeout_s
    if where.backend == "sqlite":
        if where.path == ":memory:":
            raise ConfigurationError(
                "state='sqlite:///path/state.db' needs a file path (every process opens it)"
            )
        from .shared_sqlite import SQLiteState

        return SQLiteState(where.path, timeout_s=timeout_s)
    if where.backend == "redis":
        from .shared_redis import RedisState

        return RedisState(where.url, timeout_s=timeout_s, prefix=where.prefix or prefix)
    from .shared_memory import MemoryState

    return MemoryState()


def _is_redis_client(spec: object) -> bool:
    # A bare redis-py client is not a store; said here rather than failing on first use.
    return type(spec).__module__.split(".")[0] == "redis"
