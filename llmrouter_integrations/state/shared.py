"""The protocol of shared state (`Router(state=...)`): budget holds, rate windows, circuits, locks.

Four kinds of state that every process of a fleet must agree on, each a few atomic
operations. A backend implements all four: `MemoryState` (one process, the default),
`SQLiteState` (the processes of one machine) and `RedisState` (many machines). Times are
wall-clock seconds (`time.time()`, so every process and machine reads the same scale);
money is integer nano-USD, so sums are exact in SQLite and in Lua.

    >>> state = shared_state_from_spec("sqlite:///state.db")   # state/stores.py; or "redis://..."
    >>> account = Account("daily|2026-12-07", limit=to_nano(Decimal("0.50")))
    >>> state.reserve("hold-1", [account], 1_000_000, now=time.time(), lease_s=60)   # None: held
    >>> state.settle("hold-1", [account], 420_000, now=time.time())                  # alerts crossed
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Protocol, runtime_checkable

__all__ = [
    "SETTLED_TTL_S",
    "Account",
    "AccountState",
    "Admission",
    "CallDone",
    "CallPlan",
    "CallVerdict",
    "Headroom",
    "HoldAsk",
    "RateAsk",
    "RateDone",
    "Refusal",
    "Settled",
    "SharedState",
    "StoreUnavailable",
    "from_nano",
    "to_nano",
    "window_wait",
]

WINDOW_S = 60.0  # the providers' rate-limit window
SETTLED_TTL_S = 3600.0  # how long a store remembers that a hold was settled

_NANO = Decimal("1e9")


def to_nano(usd: Decimal) -> int:
    """USD to integer nano-USD, rounded up (a hold or a cost never comes out smaller)."""
    return int((usd * _NANO).to_integral_value(rounding=ROUND_CEILING))


def from_nano(nano: int) -> Decimal:
    """Integer nano-USD back to USD."""
    return Decimal(nano) / _NANO


class StoreUnavailable(Exception):
    """A store call failed or took longer than its timeout (internal: callers fall back)."""


@dataclass(frozen=True, slots=True)
class Account:
    """One budget account in one period, as the store sees it.

    `key` names the budget, the scope value and the period start, so a new period is a
    new account in every process at once. `initial` is the spend to start from when the
    store has never seen the account (from the ledger); `alerts` are the spend levels,
    ascending, at which an alert fires once fleet-wide; the store may forget the account
    after `expires_at`.

    >>> Account("daily||1796601600", limit=500_000_000, alerts=(250_000_000, 400_000_000))
    """

    key: str
    limit: int
    initial: int = 0
    alerts: tuple[int, ...] = ()
    expires_at: float = math.inf


@dataclass(frozen=True, slots=True)
class AccountState:
    """Spent (settled) and reserved (held by calls in flight), in nano-USD."""

    spent: int
    reserved: int


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why `reserve` held nothing: account `index` has `spent` + `reserved` + the amount over its limit."""

    index: int
    spent: int
    reserved: int


@dataclass(frozen=True, slots=True)
class Admission:
    """`admit_circuit`'s verdict: "closed" (go), "probe" (go, as the one fleet-wide probe),
    "open" (refuse until `until`) or "busy" (half-open, another process is probing).
    `failures`: the fleet's consecutive failures of `name` counted so far (`count_failure`)."""

    state: str
    until: float = 0.0
    failures: int = 0


@dataclass(frozen=True, slots=True)
class Settled:
    """What `settle` did: each account's spend after it, and the alerts it crossed first,
    fleet-wide, as (account index, alert index)."""

    spent: list[int]
    crossed: list[tuple[int, int]]


@dataclass(frozen=True, slots=True)
class RateAsk:
    """One send to `name` to count in its windows (and a concurrency slot), as `acquire_rate`."""

    name: str
    permit_id: str
    rpm: int | None
    tpm: int | None
    concurrency: int | None
    tokens: int
    lease_s: float


@dataclass(frozen=True, slots=True)
class Headroom:
    """What a provider's rate-limit headers said was left after one send (None: not said).

    >>> Headroom(requests_limit=500, requests_left=499, requests_reset_s=0.12)
    """

    requests_limit: int | None = None
    requests_left: int | None = None
    requests_reset_s: float | None = None
    tokens_limit: int | None = None
    tokens_left: int | None = None
    tokens_reset_s: float | None = None


@dataclass(frozen=True, slots=True)
class RateDone:
    """A send to `name` is over: free its concurrency slot, correct its tokens by
    `token_delta`, and fold what its response's headers said is left (`headroom`) into the
    fleet's view, as of that send."""

    name: str
    permit_id: str
    token_delta: int = 0
    headroom: Headroom | None = None


@dataclass(frozen=True, slots=True)
class HoldAsk:
    """A budget hold of `amount` on every account, as `reserve`."""

    hold_id: str
    accounts: tuple[Account, ...]
    amount: int
    lease_s: float


@dataclass(frozen=True, slots=True)
class CallPlan:
    """What one call to one deployment needs from the store before it is sent: `admit_call`
    asks for all of it in one round trip.

    >>> CallPlan(circuit="openai/gpt-4o", rate=RateAsk("openai/gpt-4o", "p1", 500, None,
    ...          None, 1200, 300.0), hold=HoldAsk("h1", (account,), 20_000_000, 300.0))
    """

    circuit: str | None = None  # the deployment whose circuit admits the call, if shared
    probe_lease_s: float = 60.0
    rate: RateAsk | None = None
    hold: HoldAsk | None = None


@dataclass(frozen=True, slots=True)
class CallVerdict:
    """`admit_call`'s answer. All or nothing where it matters: a circuit that refuses ("open",
    "busy") or a budget `refusal` means nothing was taken (no slot, no hold, no probe).
    Otherwise the hold is held, the probe claimed, and `rate_wait` says whether the send
    was counted (0.0), or how long to wait before asking `acquire_rate` again (nothing
    counted; `math.inf`: every concurrency slot is busy). None where the plan asked nothing.
    """

    circuit: Admission | None = None
    refusal: Refusal | None = None
    rate_wait: float | None = None

    @property
    def admitted(self) -> bool:
        """Whether the circuit and the budget let the call go (the hold, if asked, is held)."""
        circuit = self.circuit
        return self.refusal is None and (circuit is None or circuit.state in ("closed", "probe"))


@dataclass(frozen=True, slots=True)
class CallDone:
    """One call's trip after it, as `finish_call`'s arguments: an item of `finish_calls`.

    >>> CallDone(("h1", (account,), 420_000), RateDone("openai/gpt-4o", "p1"), time.time())
    """

    hold: tuple[str, Sequence[Account], int | None] | None
    rate: RateDone | None
    now: float


@runtime_checkable
class SharedState(Protocol):
    """Every operation is atomic across the processes sharing the store.

    A backend raises `StoreUnavailable` (never its own exception type) when it cannot
    answer within its timeout. `lease_s` is how long a budget hold, a concurrency slot or
    a lock outlives a process that died holding it: longer than your slowest call.
    """

    backend: str
    lease_s: float

    # -- budgets: holds with a lease -----------------------------------------------------------
    def reserve(
        self, hold_id: str, accounts: Sequence[Account], amount: int, now: float, lease_s: float
    ) -> Refusal | None:
        """Hold `amount` on every account if each has room, else hold nothing (a `Refusal`).

        Holds whose lease ended are dropped first (their process died)."""
        ...

    def settle(self, hold_id: str, accounts: Sequence[Account], actual: int, now: float) -> Settled:
        """Drop the hold and add `actual` to each account's spend (even if the lease ended).

        Once per `hold_id` (for an hour): a settle sent again after a timeout, which the
        store may have carried out, does not count the cost twice."""
        ...

    def release(self, hold_id: str, accounts: Sequence[Account], now: float) -> None:
        """Drop the hold without spending."""
        ...

    def read(self, accounts: Sequence[Account], now: float) -> list[AccountState]:
        """Each account's spend and live holds now."""
        ...

    def join(self, member: str, now: float, lease_s: float) -> int:
        """Say that process `member` is alive until `now + lease_s`: how many are alive now."""
        ...

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
        """Count one request of `tokens` to `name` in the one-minute windows and take a
        concurrency slot (leased), or take nothing and say how long to wait: 0.0 = taken,
        `math.inf` = every slot is busy (poll). Every send is also numbered and drawn from
        what the provider's headers said is left (`state/headroom.py`), limits or not."""
        ...

    def release_rate(self, name: str, permit_id: str, token_delta: int, now: float) -> None:
        """Free the permit's concurrency slot; correct its tokens by `token_delta`."""
        ...

    def pause_rate(self, name: str, until: float) -> None:
        """No request to `name` before `until` (a provider's retry-after), fleet-wide."""
        ...

    # -- circuits -------------------------------------------------------------------------------
    def admit_circuit(self, name: str, now: float, probe_lease_s: float) -> Admission:
        """May a call go to `name`? Claims the single half-open probe when the rest ended."""
        ...

    def open_circuit(self, name: str, until: float) -> None:
        """Open `name`'s circuit until `until` (ends any probe; the failure count restarts)."""
        ...

    def close_circuit(self, name: str) -> None:
        """Close `name`'s circuit (the failure count restarts)."""
        ...

    def count_failure(self, name: str) -> int:
        """Count one more consecutive failure of `name`, fleet-wide: the count now."""
        ...

    def reset_failures(self, name: str) -> None:
        """A call to `name` succeeded: its consecutive failures start again from 0."""
        ...

    # -- one call: everything before it, everything after it, one trip each -------------------
    def admit_call(self, plan: CallPlan, now: float) -> CallVerdict:
        """Circuit admission, rate count and budget hold for one call, atomically: the circuit
        is looked at first, then the budget; a refusal of either takes nothing at all."""
        ...

    def finish_call(
        self,
        hold: tuple[str, Sequence[Account], int | None] | None,
        rate: RateDone | None,
        now: float,
    ) -> Settled | None:
        """After the call, in one trip: `hold` = (hold id, accounts, actual cost) settles it
        as `settle` (actual None: `release`); `rate` frees the send's slot, corrects its
        tokens and records the provider's headroom. Returns the settle's result (None when
        nothing was settled)."""
        ...

    def finish_calls(self, calls: Sequence[CallDone]) -> list[Settled | None]:
        """Several `finish_call`s in one round trip (one Redis pipeline, one SQLite
        transaction): each result as `finish_call` alone gives it. A failure raises
        `StoreUnavailable` and may leave some done; a settle is once per hold, so sending
        it again is safe."""
        ...

    def finish_and_admit(
        self, calls: Sequence[CallDone], plan: CallPlan, now: float
    ) -> tuple[list[Settled | None], CallVerdict]:
        """`finish_calls(calls)` then `admit_call(plan, now)` in one round trip: the trips
        after earlier calls ride on the next call's trip before it. A failure raises
        `StoreUnavailable` (and may leave the finishes done, as `finish_calls`)."""
        ...

    # -- in-flight locks ------------------------------------------------------------------------
    def acquire_lock(self, key: str, owner: str, now: float, lease_s: float) -> bool:
        """Take the lock if free or its lease ended."""
        ...

    def lock_held(self, key: str, now: float) -> bool:
        """Whether someone holds the lock (with a live lease)."""
        ...

    def release_lock(self, key: str, owner: str) -> None:
        """Free the lock if `owner` still holds it."""
        ...

    def close(self) -> None:
        """Free connections."""
        ...


def window_wait(
    spends: Sequence[tuple[float, int, int]],
    rpm: int | None,
    tpm: int | None,
    tokens: int,
    now: float,
) -> float:
    """Seconds until one more request of `tokens` fits the one-minute windows of `spends`
    (oldest first: time, requests, tokens); 0.0 when it fits now.

    >>> window_wait([(0.0, 1, 500)], rpm=1, tpm=None, tokens=0, now=10.0)
    50.0
    """
    wait = 0.0
    for limit, column, amount in ((rpm, 1, 1), (tpm, 2, tokens)):
        if limit is None or amount <= 0:
            continue
        used = sum(int(spend[column]) for spend in spends)
        if used + amount <= limit or not spends:
            continue
        needed, freed = used + amount - limit, 0
        for spend in spends:
            freed += int(spend[column])
            if freed >= needed:
                wait = max(wait, spend[0] + WINDOW_S - now)
                break
        else:  # one request larger than the whole limit: it goes alone, once the window is empty
            wait = max(wait, spends[-1][0] + WINDOW_S - now)
    return wait
