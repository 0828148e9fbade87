"""Rate windows counted across processes: the fleet's RPM, TPM and concurrency, in the store.

`RateLimits` asks the store before each call (usually within the call's one trip,
`admission.store_trip`); the store counts every process's sends in the same one-minute
windows, leases each concurrency slot (a dead process's slot comes back when its lease
ends) and draws each send from what the provider's rate-limit headers said is left
(`state/headroom.py`). A provider's `retry-after` pauses the deployment for the whole
fleet. If the store cannot answer, each process keeps its own windows (which it always
counts too).

    >>> limits.shared = SharedRates(guard)
"""

from __future__ import annotations

import contextlib
import math

from ..state.guard import StateGuard
from ..state.ids import new_id
from ..state.settler import Settler
from ..state.shared import CallDone, RateDone, StoreUnavailable

__all__ = ["SharedRates"]

# With every concurrency slot of the fleet busy, nothing local says when one frees up:
# look again this often.
POLL_S = 0.05


class SharedRates:
    """The store side of rate limits (see the module docstring).

    >>> SharedRates(StateGuard(SQLiteState("state.db")))
    """

    def __init__(self, guard: StateGuard, *, settler: Settler | None = None) -> None:
        self.guard = guard
        self.settler = settler  # sends releases off the caller's path (None: on it)

    def acquire(
        self,
        name: str,
        rpm: int | None,
        tpm: int | None,
        concurrency: int | None,
        tokens: int,
    ) -> tuple[str, float] | None:
        """(permit id, seconds to wait: 0.0 = taken) or None when the store is down."""
        permit_id = new_id()
        store = self.guard.store
        try:
            wait = self.guard.run(
                store.acquire_rate,
                name,
                permit_id,
                rpm=rpm,
                tpm=tpm,
                concurrency=concurrency,
                tokens=tokens,
                now=self.guard.clock.wall(),
                lease_s=store.lease_s,
            )
        except StoreUnavailable:
            return None
        return permit_id, POLL_S if math.isinf(wait) else wait

    def release(self, done: RateDone) -> None:
        """Free the send's slot, correct its tokens, record the provider's headroom."""
        if self.settler is not None:  # if the store is down, the slot's lease ends it
            self.settler.submit(CallDone(None, done, self.guard.clock.wall()))
            return
        store = self.guard.store
        with contextlib.suppress(StoreUnavailable):  # if down, the slot's lease ends it
            self.guard.run(store.finish_call, None, done, self.guard.clock.wall())

    def pause(self, name: str, seconds: float) -> None:
        """No call to `name` from any process for `seconds`."""
        store = self.guard.store
        with contextlib.suppress(StoreUnavailable):
            self.guard.run(store.pause_rate, name, self.guard.clock.wall() + seconds)
