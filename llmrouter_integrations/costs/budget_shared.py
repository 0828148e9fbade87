"""Budgets held in the shared state store (`Router(state=...)`), for `BudgetManager`.

A call's worst case is held atomically on every applicable account in the store, with a
lease; settling adds the real cost and reports the alerts crossed first fleet-wide. The
fleet's spend seen on each settle is mirrored into the manager's local accounts, for the
planner's check. Costs of held calls settled while the store was down are pushed to it
when it is back; with `state_failure="local"`, so is what was spent from the process's
outage allowance (costs/budget_allowance.py).

    >>> shared = SharedBudgets(guard, lease_s=300)
    >>> hold = shared.reserve(specs, Decimal("0.02"), wall)   # a Refusal, or the hold id
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Sequence
from decimal import ROUND_FLOOR, Decimal

from ..state.guard import StateGuard
from ..state.ids import new_id
from ..state.settler import Settler
from ..state.shared import (
    Account,
    AccountState,
    CallDone,
    HoldAsk,
    RateDone,
    Refusal,
    Settled,
    StoreUnavailable,
    to_nano,
)
from .budget_allowance import OutageAllowance

# Takes the hold in the store as part of a larger trip (`admission.store_trip.StoreTrip`).
HoldVia = Callable[[HoldAsk], Refusal | None]
RateRelease = RateDone  # the limiter's release, sent with a settle

__all__ = ["HoldVia", "RateRelease", "SharedBudgets", "account_spec"]

_NANO = Decimal("1e9")
_LEASE_MARGIN_S = 30.0  # a hold outlives its call's deadline by this much
_KEEP_S = 2 * 86_400  # the store keeps an account two days past its period, then forgets it


def account_spec(
    label: str,
    scope_value: str,
    period_start: float,
    period_end: float,
    limit: Decimal,
    alert_levels: Sequence[Decimal],
    initial: Decimal,
) -> Account:
    """The store's account for one budget, scope value and period.

    The key names the period, so every process moves to the new period at the same
    instant (UTC), however long it has been running.
    """
    start = "all" if math.isinf(period_start) else str(int(period_start))
    return Account(
        key=f"{label}|{scope_value}|{start}",
        limit=int((limit * _NANO).to_integral_value(rounding=ROUND_FLOOR)),
        initial=to_nano(initial) if initial else 0,
        alerts=tuple(to_nano(level) for level in alert_levels),
        expires_at=period_end + _KEEP_S,
    )


class SharedBudgets:
    """The store side of budgets: holds, settles, releases, and costs waiting to be pushed.

    >>> SharedBudgets(StateGuard(SQLiteState("state.db")), lease_s=300)
    """

    def __init__(
        self, guard: StateGuard, *, lease_s: float = 300.0, settler: Settler | None = None
    ) -> None:
        self.guard = guard
        self.lease_s = lease_s
        # Sends settles and releases off the caller's path (None: on it, synchronously).
        self.settler = settler
        # Set by BudgetManager for state_failure="local": what an outage may spend.
        self.allowance: OutageAllowance | None = None
        self._lock = threading.Lock()
        # (hold id, accounts, cost) settled while the store was down: pushed when it is back,
        # under the same hold id, so a settle the store did carry out is not counted twice.
        self._pending: list[tuple[str, tuple[Account, ...], int]] = []
        self._orphans: list[tuple[str, tuple[Account, ...]]] = []  # holds that timed out

    @property
    def backend(self) -> str:
        return self.guard.backend

    def reserve(
        self,
        specs: tuple[Account, ...],
        needed: Decimal,
        wall: float,
        time_left_s: float | None = None,
        via: HoldVia | None = None,
    ) -> Refusal | str:
        """Hold `needed` on every account: the hold id, or the store's `Refusal`.

        The hold's lease outlasts the call's own deadline (`time_left_s`, when it has one),
        so a live call's money is never handed out twice. `via` takes the hold as part of
        the call's one trip to the store. Raises `StoreUnavailable` when the store cannot
        answer."""
        if self._pending:
            self._push_pending(wall)
        if self._orphans:
            self._release_orphans(wall)
        allowance = self.allowance
        if allowance is not None and allowance.pending:
            allowance.push(wall)
        hold = new_id()
        lease = self.lease_s
        if time_left_s is not None:
            lease = max(lease, time_left_s + _LEASE_MARGIN_S)
        refusal = self._hold(HoldAsk(hold, specs, to_nano(needed), lease), wall, via)
        # This process's own settles may still be on their way (their worst case still
        # held): let them land and ask once more, so a process never refuses on its own lag.
        settler = self.settler
        if refusal is not None and settler is not None and settler.busy and settler.drain():
            refusal = self._hold(HoldAsk(hold, specs, to_nano(needed), lease), wall, via)
        # This process's own allowance may be what is in the way: free it and try once more
        # (the refused trip took nothing, so it may be made again).
        if refusal is not None and allowance and allowance.make_room(specs[refusal.index], wall):
            refusal = self._hold(HoldAsk(hold, specs, to_nano(needed), lease), wall, via)
        # This process's own settles may still be on their way (their worst case still
        # held): let them land and ask once more, so a process never refuses on its own lag.
        settler = self.settler
        if refusal is not None and settler is not None and settler.busy and settler.drain():
            refusal = self._hold(HoldAsk(hold, specs, to_nano(needed), lease), wall, via)
        if refusal is None and allowance is not None:
            allowance.refresh(specs, wall)  # a heartbeat on a call the process makes anyway
        return hold if refusal is None else refusal

    def _hold(self, ask: HoldAsk, wall: float, via: HoldVia | None) -> Refusal | None:
        tried = not self.guard.down
        try:
            if via is not None:
                return via(ask)
            store = self.guard.store
            return self.guard.run(
                store.reserve, ask.hold_id, ask.accounts, ask.amount, wall, ask.lease_s
            )
        except StoreUnavailable:
            # A hold that timed out may still be carried out by the store (a frozen server
            # answering late): release it once the store answers, rather than after its lease.
            if tried:
                with self._lock:
                    self._orphans.append((ask.hold_id, ask.accounts))
            raise

    def _release_orphans(self, wall: float) -> None:
        with self._lock:
            orphans, self._orphans = self._orphans, []
        for index, (hold, specs) in enumerate(orphans):
            try:
                self.guard.run(self.guard.store.release, hold, specs, wall)
            except StoreUnavailable:
                with self._lock:
                    self._orphans[:0] = orphans[index:]
                raise

    def settle(
        self,
        hold: str | None,
        specs: tuple[Account, ...],
        actual: Decimal,
        wall: float,
        rate: RateRelease | None = None,
        then: Callable[[Settled | None], None] | None = None,
    ) -> None:
        """Add the real cost (dropping the hold), and free `rate`'s slot, in one trip (sent
        by the settler, if any, once the caller has moved on); `then(settled)` follows,
        with None when the store is down (the cost is kept to push; the slot's lease ends
        it)."""
        amount = to_nano(actual) if actual > 0 else 0
        key = hold or new_id()

        def landed(result: Settled | StoreUnavailable | None) -> None:
            if isinstance(result, StoreUnavailable):
                if amount:
                    with self._lock:
                        self._pending.append((key, specs, amount))
                result = None
            if then is not None:
                then(result)

        self._finish(CallDone((key, specs, amount), rate, wall), landed)

    def release(
        self, hold: str | None, specs: tuple[Account, ...], wall: float, rate: RateRelease | None
    ) -> None:
        """Drop the hold (and free `rate`'s slot); if the store is down, leases end them."""
        if hold is None and rate is None:
            return
        self._finish(CallDone(None if hold is None else (hold, specs, None), rate, wall), None)

    def _finish(
        self, call: CallDone, then: Callable[[Settled | StoreUnavailable | None], None] | None
    ) -> None:
        if self.settler is not None:
            self.settler.submit(call, then)
            return
        result: Settled | StoreUnavailable | None
        try:
            result = self.guard.run(self.guard.store.finish_call, call.hold, call.rate, call.now)
        except StoreUnavailable as error:
            result = error
        if then is not None:
            then(result)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait for this process's queued settles to land (False: `timeout` ended first)."""
        return self.settler.drain(timeout) if self.settler is not None else True

    def read(self, specs: Sequence[Account], wall: float) -> list[AccountState]:
        """Each account's fleet-wide state (raises `StoreUnavailable`)."""
        return self.guard.run(self.guard.store.read, specs, wall)

    def close(self, wall: float) -> None:
        """Land the queued settles, push what the store has not seen yet, and give back
        the outage allowance."""
        if self.settler is not None:
            self.settler.close()
        with contextlib.suppress(StoreUnavailable):
            if self._pending:
                self._push_pending(wall)
            if self._orphans:
                self._release_orphans(wall)
            if self.allowance is not None:
                self.allowance.close(wall)

    def _push_pending(self, wall: float) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        store = self.guard.store
        for index, (hold, specs, amount) in enumerate(pending):
            try:
                self.guard.run(store.settle, hold, specs, amount, wall)
            except StoreUnavailable:
                with self._lock:
                    self._pending[:0] = pending[index:]
                raise
