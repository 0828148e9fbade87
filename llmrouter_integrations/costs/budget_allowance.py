"""A process's outage allowance (`state_failure="local"`): money held in the store for when it is down.

While the store answers, each process keeps one ordinary hold per budget account it
uses, its allowance: `free / (4 x members)`, where `free` is the account's limit minus its
spend and every live hold (calls in flight and other processes' allowances) and
`members` the processes that said they were alive within the lease. The allowance is
renewed (released and taken again at the new size) at most every `renew_s` (1 s), on
calls the process makes anyway: four store trips a second at most. With N processes
renewing, the allowances together settle near a fifth of what is free; a call that does
not fit beside them frees its own process's allowance and tries again. Because it is a hold, no other process can spend that money, so when the
store goes down each process spends at most its own allowance and the fleet together at
most what was free: no overshoot, however many processes. A process that never reached
the store holds no allowance and spends nothing during an outage.

What was spent from an allowance is added to the store by settling the allowance's own
hold, in one atomic step, at the first call after the store is back: the money is never
free in between. A process stops spending from an allowance `lease_s / 2` after taking
it, so the store still holds it when the spend is pushed (for outages shorter than that).

    >>> allowance = OutageAllowance(guard, lease_s=300)
    >>> allowance.refresh(specs, wall)          # store up: take or renew, push outage spend
    >>> allowance.take(specs, 20_000_000, wall)  # store down: None, or why not
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from ..state.guard import StateGuard
from ..state.ids import new_id
from ..state.shared import Account, StoreUnavailable

__all__ = ["OutageAllowance", "Shortfall"]


@dataclass(frozen=True, slots=True)
class Shortfall:
    """Why `take` held nothing; `left` (nano-USD) is None when no allowance is held at all."""

    reason: str
    left: int | None = None


@dataclass(slots=True)
class _Held:
    """One account's allowance: held in the store as `hold`, `amount` nano-USD."""

    hold: str
    amount: int
    taken: float  # wall time it was taken
    used: int = 0  # settled by calls during an outage, not yet pushed
    in_flight: int = 0  # held by calls during an outage, not yet settled


class OutageAllowance:
    """Per-account allowance holds of one process (see the module docstring).

    >>> OutageAllowance(StateGuard(SQLiteState("state.db")), lease_s=300, renew_s=1)
    """

    def __init__(self, guard: StateGuard, *, lease_s: float = 300.0, renew_s: float = 1.0) -> None:
        self.guard = guard
        self.lease_s = lease_s
        self.renew_s = renew_s
        self.member = new_id()
        self._lock = threading.Lock()
        self._held: dict[str, _Held] = {}
        self._specs: dict[str, Account] = {}
        self._renewing: set[str] = set()  # accounts a thread is renewing now
        self._orphans: list[tuple[str, Account]] = []  # allowance holds that timed out

    def held(self, key: str) -> int:
        """Nano-USD this process may still spend on account `key` during an outage."""
        with self._lock:
            entry = self._held.get(key)
            return 0 if entry is None else entry.amount - entry.used - entry.in_flight

    # -- while the store answers ------------------------------------------------------------
    def refresh(self, specs: Sequence[Account], wall: float) -> None:
        """Push outage spend, then take or renew the allowance of each account (best effort:
        a store failure here leaves things as they are)."""
        with self._lock:
            due = [spec for spec in specs if self._claim(spec.key, wall)]
        try:
            self.push(wall)
            with self._lock:
                orphans, self._orphans = self._orphans, []
            for hold, spec in orphans:
                self.guard.run(self.guard.store.release, hold, [spec], wall)
            if due:
                store = self.guard.store
                members = max(1, self.guard.run(store.join, self.member, wall, self.lease_s))
                for spec in due:
                    self._renew(spec, members, wall)
        except StoreUnavailable:
            return
        finally:
            with self._lock:
                self._renewing.difference_update(spec.key for spec in due)

    def _claim(self, key: str, wall: float) -> bool:
        """Whether `key`'s allowance is due for renewal; if so this thread renews it."""
        entry = self._held.get(key)
        if key in self._renewing or (
            entry is not None
            and (entry.used or entry.in_flight or wall - entry.taken < self.renew_s)
        ):
            return False
        if len(self._held) > 64:  # forget accounts not renewed for a lease (their hold ended)
            for old in [
                k
                for k, e in self._held.items()
                if not e.used and not e.in_flight and wall - e.taken > self.lease_s
            ]:
                del self._held[old]
                self._specs.pop(old, None)
        self._renewing.add(key)
        return True

    def _renew(self, spec: Account, members: int, wall: float) -> None:
        store = self.guard.store
        with self._lock:
            old = self._held.pop(spec.key, None)
            # Until a new one is held: nothing, and no new try before renew_s.
            self._held[spec.key] = _Held("", 0, wall)
        if old is not None and old.amount:
            self.guard.run(store.release, old.hold, [spec], wall)
        (state,) = self.guard.run(store.read, [spec], wall)
        amount = max(0, spec.limit - state.spent - state.reserved) // (4 * members)
        if not amount:
            return
        hold = new_id()
        try:
            refusal = self.guard.run(store.reserve, hold, [spec], amount, wall, self.lease_s)
        except StoreUnavailable:
            with self._lock:  # it may be carried out late: released on a later refresh
                self._orphans.append((hold, spec))
            raise
        if refusal is None:
            with self._lock:
                self._held[spec.key] = _Held(hold, amount, wall)
                self._specs[spec.key] = spec

    def make_room(self, spec: Account, wall: float) -> bool:
        """A call did not fit in `spec`: free this process's allowance there for it.

        True if there was one to free (the call may try again)."""
        with self._lock:
            entry = self._held.get(spec.key)
            if entry is None or not entry.amount or entry.used or entry.in_flight:
                return False
            self._held[spec.key] = _Held("", 0, wall)
        self.guard.run(self.guard.store.release, entry.hold, [spec], wall)
        return True

    def push(self, wall: float) -> None:
        """Add what was spent from allowances during an outage to the store: each allowance's
        hold is settled to its spend, atomically. Raises `StoreUnavailable`."""
        with self._lock:
            ready = [
                (key, entry)
                for key, entry in self._held.items()
                if entry.used and not entry.in_flight
            ]
        for key, entry in ready:
            self.guard.run(
                self.guard.store.settle, entry.hold, [self._specs[key]], entry.used, wall
            )
            with self._lock:
                if self._held.get(key) is entry:
                    del self._held[key]

    def close(self, wall: float) -> None:
        """Push outage spend and give every allowance back (raises `StoreUnavailable`)."""
        self.push(wall)
        with self._lock:
            held = [(self._specs[k], e.hold) for k, e in self._held.items() if e.amount]
            self._held.clear()
        for spec, hold in held:
            self.guard.run(self.guard.store.release, hold, [spec], wall)

    @property
    def pending(self) -> bool:
        """Whether some outage spend waits to be pushed."""
        with self._lock:
            return any(entry.used for entry in self._held.values())

    # -- while the store is down ----------------------------------------------------------------
    def take(self, specs: Sequence[Account], amount: int, wall: float) -> Shortfall | None:
        """Hold `amount` from the allowance of every account: None, or why it cannot."""
        with self._lock:
            entries = []
            for spec in specs:
                entry = self._held.get(spec.key)
                if entry is None or not entry.amount:
                    return Shortfall("this process holds no outage allowance for its budget")
                if wall >= entry.taken + self.lease_s / 2:
                    return Shortfall("this process's outage allowance has lapsed")
                left = entry.amount - entry.used - entry.in_flight
                if amount > left:
                    return Shortfall(
                        f"this process's outage allowance has ${left / 1e9:.6f} left", left
                    )
                entries.append(entry)
            for entry in entries:
                entry.in_flight += amount
        return None

    def settle(self, specs: Sequence[Account], amount: int, actual: int) -> None:
        """A call that `take` held `amount` for cost `actual`."""
        self._finish(specs, amount, actual)

    def release(self, specs: Sequence[Account], amount: int) -> None:
        """A call that `take` held `amount` for failed unbilled."""
        self._finish(specs, amount, 0)

    def _finish(self, specs: Sequence[Account], amount: int, actual: int) -> None:
        with self._lock:
            for spec in specs:
                entry = self._held.get(spec.key)
                if entry is not None:
                    entry.in_flight = max(0, entry.in_flight - amount)
                    entry.used += actual
