"""The default cache store: an in-process LRU with a time-to-live.

>>> store = MemoryCacheStore(max_entries=10_000, ttl_s=3600)
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from ..core.clock import SYSTEM_CLOCK, Clock
from ..errors import ConfigurationError
from .cache import CacheValue

__all__ = ["MemoryCacheStore"]


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
