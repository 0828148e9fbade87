"""One router's door to its shared state: remembers an outage so callers fall back at once.

A store call that fails (unreachable, slower than its timeout, locked) marks the store
down for `retry_s`; until then every call raises `StoreUnavailable` without touching the
network, so an outage costs one timeout, not one per request. The first failure of an
outage logs ONE warning; the first success after it logs that the store is back.

    >>> guard = StateGuard(RedisState("redis://localhost:6379/0"), clock=router.clock)
    >>> guard.run(guard.store.close_circuit, "openai/gpt-4o")   # raises StoreUnavailable if down
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from ..core.clock import SYSTEM_CLOCK, Clock
from .shared import SharedState, StoreUnavailable

__all__ = ["StateGuard"]

log = logging.getLogger("llmrouter_integrations")

P = ParamSpec("P")
T = TypeVar("T")


class StateGuard:
    """Wraps a `SharedState`: `run(operation, ...)` calls it, or raises `StoreUnavailable`.

    `on_change(up)` is called (outside any lock) when the store goes down or comes back.

    >>> guard = StateGuard(store, clock=clock, retry_s=2.0)
    """

    def __init__(
        self,
        store: SharedState,
        *,
        clock: Clock = SYSTEM_CLOCK,
        retry_s: float = 2.0,
        on_change: Callable[[bool, str], None] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.retry_s = retry_s
        self.on_change = on_change
        self._lock = threading.Lock()
        self._down_until: float | None = None
        self.outages = 0

    @property
    def backend(self) -> str:
        return self.store.backend

    @property
    def down(self) -> bool:
        """Whether the last call failed and the retry time has not come yet."""
        until = self._down_until
        return until is not None and self.clock.now() < until

    def run(self, operation: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        until = self._down_until
        if until is not None and self.clock.now() < until:
            raise StoreUnavailable(f"shared state ({self.store.backend}) is unavailable")
        try:
            result = operation(*args, **kwargs)
        except StoreUnavailable as error:
            self._failed(error)
            raise
        if until is not None:
            self._recovered()
        return result

    def _failed(self, error: StoreUnavailable) -> None:
        with self._lock:
            first = self._down_until is None
            self._down_until = self.clock.now() + self.retry_s
            if first:
                self.outages += 1
        if first:
            log.warning(
                "shared state (%s) unavailable (%s): budgeted requests follow state_failure; "
                "rate limits, circuit breakers and single-flight use per-process state "
                "until it is back",
                self.store.backend,
                error,
            )
            if self.on_change is not None:
                self.on_change(False, str(error))

    def _recovered(self) -> None:
        with self._lock:
            was_down = self._down_until is not None
            self._down_until = None
        if was_down:
            log.warning("shared state (%s) is available again", self.store.backend)
            if self.on_change is not None:
                self.on_change(True, "")
