"""Shared state kept in this process (`MemoryState`): the reference semantics, and the local fallback.

It shares nothing across processes; the SQLite and Redis backends do the same operations
atomically in their store, and the tests hold all three to the same results.

    >>> state = MemoryState()
    >>> state.acquire_rate("a", "p1", rpm=1, tpm=None, concurrency=None, tokens=0, now=0.0,
    ...                    lease_s=60)
    0.0
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from .headroom import UNSEEN_S, HeadroomRecord
from .shared import (
    SETTLED_TTL_S,
    WINDOW_S,
    Account,
    AccountState,
    Admission,
    CallDone,
    CallPlan,
    CallVerdict,
    RateAsk,
    RateDone,
    Refusal,
    Settled,
    window_wait,
)

__all__ = ["MemoryState"]


@dataclass(slots=True)
class _Account:
    spent: int
    alerted: int
    holds: dict[str, tuple[int, float]] = field(default_factory=dict)  # id -> (amount, expiry)

    def expire(self, now: float) -> int:
        for hold_id in [h for h, (_, until) in self.holds.items() if until <= now]:
            del self.holds[hold_id]
        return sum(amount for amount, _ in self.holds.values())


@dataclass(slots=True)
class _Rate:
    # permit id -> (time, requests, tokens) counted in the one-minute window
    spends: dict[str, tuple[float, int, int]] = field(default_factory=dict)
    permits: dict[str, float] = field(default_factory=dict)  # id -> lease expiry
    paused_until: float = -math.inf
    view: HeadroomRecord = field(default_factory=HeadroomRecord)  # the provider's headroom
    sent: dict[str, tuple[int, int, float]] = field(default_factory=dict)  # id -> send, time
    # The sends in flight by number (lowest first): number -> (tokens sent before it, time)
    flight: OrderedDict[int, tuple[int, float]] = field(default_factory=OrderedDict)


def _lowest_in_flight(
    flight: OrderedDict[int, tuple[int, float]], now: float
) -> tuple[int, int] | None:
    """The lowest-numbered send still in flight and unseen (number, tokens sent before it);
    sends admitted `UNSEEN_S` ago or more are dropped on the way (each once)."""
    while flight:
        seq, (before, at) = next(iter(flight.items()))
        if at > now - UNSEEN_S:
            return seq, before
        flight.popitem(last=False)
    return None


class MemoryState:
    """All four kinds of shared state in dicts under one lock (see `SharedState`).

    >>> state = MemoryState()
    """

    backend = "memory"

    def __init__(self, *, lease_s: float = 300.0) -> None:
        self.lease_s = lease_s
        self._lock = threading.Lock()
        self._accounts: dict[str, _Account] = {}
        self._rates: dict[str, _Rate] = {}
        self._circuits: dict[str, tuple[float, float]] = {}  # name -> (open until, probe until)
        self._failures: dict[str, int] = {}  # name -> consecutive failures, fleet-wide
        self._locks: dict[str, tuple[str, float]] = {}
        self._settled: dict[str, float] = {}  # hold id -> when to forget it was settled
        self._members: dict[str, float] = {}  # process id -> lease end

    def __repr__(self) -> str:
        return "MemoryState()"

    # -- budgets --------------------------------------------------------------------------------
    def _account(self, spec: Account) -> _Account:
        account = self._accounts.get(spec.key)
        if account is None:
            crossed = sum(1 for level in spec.alerts if spec.initial >= level)
            account = self._accounts[spec.key] = _Account(spec.initial, crossed)
        return account

    def _refusal(self, accounts: Sequence[Account], amount: int, now: float) -> Refusal | None:
        for index, spec in enumerate(accounts):
            account = self._account(spec)
            reserved = account.expire(now)
            if amount and account.spent + reserved + amount > spec.limit:
                return Refusal(index, account.spent, reserved)
        return None

    def _hold(self, hold_id: str, accounts: Sequence[Account], amount: int, until: float) -> None:
        for spec in accounts:
            self._account(spec).holds[hold_id] = (amount, until)

    def reserve(
        self, hold_id: str, accounts: Sequence[Account], amount: int, now: float, lease_s: float
    ) -> Refusal | None:
        with self._lock:
            refusal = self._refusal(accounts, amount, now)
            if refusal is None:
                self._hold(hold_id, accounts, amount, now + lease_s)
        return refusal

    def settle(self, hold_id: str, accounts: Sequence[Account], actual: int, now: float) -> Settled:
        with self._lock:
            return self._settle(hold_id, accounts, actual, now)

    def _settle(
        self, hold_id: str, accounts: Sequence[Account], actual: int, now: float
    ) -> Settled:
        # The caller holds the lock.
        crossed: list[tuple[int, int]] = []
        spent: list[int] = []
        for old in [h for h, until in self._settled.items() if until <= now]:
            del self._settled[old]
        fresh = hold_id not in self._settled
        self._settled[hold_id] = now + SETTLED_TTL_S
        for index, spec in enumerate(accounts):
            account = self._account(spec)
            account.holds.pop(hold_id, None)
            if fresh:
                account.spent += actual
            reached = sum(1 for level in spec.alerts if account.spent >= level)
            crossed += [(index, a) for a in range(account.alerted, reached)]
            account.alerted = max(account.alerted, reached)
            spent.append(account.spent)
        return Settled(spent, crossed)

    def release(self, hold_id: str, accounts: Sequence[Account], now: float) -> None:
        with self._lock:
            self._release(hold_id, accounts)

    def _release(self, hold_id: str, accounts: Sequence[Account]) -> None:
        for spec in accounts:
            account = self._accounts.get(spec.key)
            if account is not None:
                account.holds.pop(hold_id, None)

    def read(self, accounts: Sequence[Account], now: float) -> list[AccountState]:
        with self._lock:
            result = []
            for spec in accounts:
                account = self._account(spec)
                result.append(AccountState(account.spent, account.expire(now)))
            return result

    def join(self, member: str, now: float, lease_s: float) -> int:
        with self._lock:
            for gone in [m for m, until in self._members.items() if until <= now]:
                del self._members[gone]
            self._members[member] = now + lease_s
            return len(self._members)

    # -- rate windows ---------------------------------------------------------------------------
    def acquire_rate(
        self,
        name: str,
        permit_id: str,
        *,
        rpm: int | None,
        tpm: int | None,
        concurrency: int | None,
        tokens: int,
        now: float,
        lease_s: float,
    ) -> float:
        ask = RateAsk(name, permit_id, rpm, tpm, concurrency, tokens, lease_s)
        with self._lock:
            return self._acquire(ask, now)

    def _acquire(self, ask: RateAsk, now: float) -> float:
        name, permit_id, tokens, lease_s = ask.name, ask.permit_id, ask.tokens, ask.lease_s
        rpm, tpm, concurrency = ask.rpm, ask.tpm, ask.concurrency
        # The caller holds the lock.
        rate = self._rates.setdefault(name, _Rate())
        since = now - WINDOW_S
        for old in [i for i, spend in rate.spends.items() if spend[0] <= since]:
            del rate.spends[old]
        for expired in [p for p, until in rate.permits.items() if until <= now]:
            del rate.permits[expired]
        for old in [i for i, sent in rate.sent.items() if sent[2] <= since - WINDOW_S]:
            del rate.sent[old]
        if concurrency is not None and len(rate.permits) >= concurrency:
            return math.inf
        wait = max(0.0, rate.paused_until - now, rate.view.wait(now, tokens))
        if rpm is not None or tpm is not None:
            spends = sorted(rate.spends.values())
            wait = max(wait, window_wait(spends, rpm, tpm, tokens, now))
        if wait > 0.0:
            return wait
        if rpm is not None or tpm is not None:
            rate.spends[permit_id] = (now, 1, tokens if tpm is not None else 0)
        if concurrency is not None:
            rate.permits[permit_id] = now + lease_s
        seq, token_mark = rate.view.take(tokens)
        rate.sent[permit_id] = (seq, token_mark, now)
        rate.flight[seq] = (token_mark - tokens, now)
        _lowest_in_flight(rate.flight, now)  # keeps the sends that never return from piling up
        return 0.0

    def release_rate(self, name: str, permit_id: str, token_delta: int, now: float) -> None:
        with self._lock:
            self._release_rate(RateDone(name, permit_id, token_delta), now)

    def _release_rate(self, done: RateDone, now: float) -> None:
        # The caller holds the lock.
        rate = self._rates.get(done.name)
        if rate is None:
            return
        permit_id, token_delta = done.permit_id, done.token_delta
        rate.permits.pop(permit_id, None)
        spend = rate.spends.get(permit_id)
        if spend is not None and token_delta:
            rate.spends[permit_id] = (spend[0], spend[1], max(0, spend[2] + token_delta))
        sent = rate.sent.pop(permit_id, None)  # answered: forgotten
        if sent is None:
            return
        own = rate.flight.pop(sent[0], None)
        if done.headroom is not None:
            behind = (0, 0)
            low = _lowest_in_flight(rate.flight, now)
            if own is not None and low is not None and low[0] < sent[0]:
                behind = (sent[0] - low[0], own[0] - low[1])
            rate.view.note(sent[:2], done.headroom, now, behind)

    def pause_rate(self, name: str, until: float) -> None:
        with self._lock:
            rate = self._rates.setdefault(name, _Rate())
            rate.paused_until = max(rate.paused_until, until)

    # -- circuits -------------------------------------------------------------------------------
    def _circuit(self, name: str, now: float) -> Admission:
        """The verdict, without claiming the probe (the caller holds the lock)."""
        circuit = self._circuits.get(name)
        if circuit is None:
            return Admission("closed", failures=self._failures.get(name, 0))
        until, probe_until = circuit
        if now < until:
            return Admission("open", until)
        if now < probe_until:
            return Admission("busy")
        return Admission("probe")

    def admit_circuit(self, name: str, now: float, probe_lease_s: float) -> Admission:
        with self._lock:
            verdict = self._circuit(name, now)
            if verdict.state == "probe":
                self._circuits[name] = (self._circuits[name][0], now + probe_lease_s)
            return verdict

    # -- one call -------------------------------------------------------------------------------
    def admit_call(self, plan: CallPlan, now: float) -> CallVerdict:
        with self._lock:
            circuit = None if plan.circuit is None else self._circuit(plan.circuit, now)
            if circuit is not None and circuit.state in ("open", "busy"):
                return CallVerdict(circuit)
            hold = plan.hold
            if hold is not None:
                refusal = self._refusal(hold.accounts, hold.amount, now)
                if refusal is not None:
                    return CallVerdict(circuit, refusal)
                self._hold(hold.hold_id, hold.accounts, hold.amount, now + hold.lease_s)
            wait = None if plan.rate is None else self._acquire(plan.rate, now)
            if plan.circuit is not None and circuit is not None and circuit.state == "probe":
                until = self._circuits[plan.circuit][0]
                self._circuits[plan.circuit] = (until, now + plan.probe_lease_s)
            return CallVerdict(circuit, None, wait)

    def finish_call(
        self,
        hold: tuple[str, Sequence[Account], int | None] | None,
        rate: RateDone | None,
        now: float,
    ) -> Settled | None:
        with self._lock:
            if rate is not None:
                self._release_rate(rate, now)
            if hold is None:
                return None
            hold_id, accounts, actual = hold
            if actual is None:
                self._release(hold_id, accounts)
                return None
            return self._settle(hold_id, accounts, actual, now)

    def finish_calls(self, calls: Sequence[CallDone]) -> list[Settled | None]:
        return [self.finish_call(call.hold, call.rate, call.now) for call in calls]

    def finish_and_admit(
        self, calls: Sequence[CallDone], plan: CallPlan, now: float
    ) -> tuple[list[Settled | None], CallVerdict]:
        return self.finish_calls(calls), self.admit_call(plan, now)

    def open_circuit(self, name: str, until: float) -> None:
        with self._lock:
            self._circuits[name] = (until, 0.0)
            self._failures.pop(name, None)

    def close_circuit(self, name: str) -> None:
        with self._lock:
            self._circuits.pop(name, None)
            self._failures.pop(name, None)

    def count_failure(self, name: str) -> int:
        with self._lock:
            count = self._failures[name] = self._failures.get(name, 0) + 1
            return count

    def reset_failures(self, name: str) -> None:
        with self._lock:
            self._failures.pop(name, None)

    # -- locks ----------------------------------------------------------------------------------
    def acquire_lock(self, key: str, owner: str, now: float, lease_s: float) -> bool:
        with self._lock:
            held = self._locks.get(key)
            if held is not None and held[1] > now and held[0] != owner:
                return False
            self._locks[key] = (owner, now + lease_s)
            return True

    def lock_held(self, key: str, now: float) -> bool:
        with self._lock:
            held = self._locks.get(key)
            return held is not None and held[1] > now

    def release_lock(self, key: str, owner: str) -> None:
        with self._lock:
            held = self._locks.get(key)
            if held is not None and held[0] == owner:
                del self._locks[key]

    def close(self) -> None:
        pass
