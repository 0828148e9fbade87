"""Single-flight across processes: one upstream call per cache key in the whole fleet.

The first process to miss the cache takes a lock on the key in the shared state store
(with a lease, so a dead leader does not block anyone for longer) and makes the call;
the others poll the shared cache until the answer is there, or the lock is free again
(the leader failed without storing anything: then one of them calls). It needs a cache
all the processes read (`cache="sqlite:///..."` or `"redis://..."`).

    >>> layer = CacheBackend(inner, store, flights=SharedFlights(guard))
"""

from __future__ import annotations

import contextlib

from ..state.guard import StateGuard
from ..state.ids import new_id
from ..state.shared import StoreUnavailable

__all__ = ["FIRST_POLL_S", "MAX_POLL_S", "SharedFlights"]

FIRST_POLL_S = 0.01
MAX_POLL_S = 0.2


class SharedFlights:
    """The store side of cross-process single-flight (see the module docstring).

    >>> SharedFlights(StateGuard(RedisState("redis://localhost:6379/0")))
    """

    def __init__(self, guard: StateGuard, *, lease_s: float | None = None) -> None:
        self.guard = guard
        self.lease_s = lease_s if lease_s is not None else guard.store.lease_s

    def lead(self, key: str) -> str | None:
        """Our lock token if this process should call (an empty one when the store is
        down: then every process calls), or None while another process leads."""
        owner = new_id()
        store = self.guard.store
        try:
            taken = self.guard.run(
                store.acquire_lock, "flight:" + key, owner, self.guard.clock.wall(), self.lease_s
            )
        except StoreUnavailable:
            return ""
        return owner if taken else None

    def done(self, key: str, owner: str) -> None:
        """Free the lock (the answer is stored, or the call failed)."""
        if owner:
            with contextlib.suppress(StoreUnavailable):  # if down, its lease ends it
                self.guard.run(self.guard.store.release_lock, "flight:" + key, owner)
