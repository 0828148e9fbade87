"""Spending limits that concurrent calls cannot overshoot: reserve the worst case, then settle.

Before a call is sent, its worst-case cost (input tokens estimated locally + `max_tokens`,
at that deployment's price) is reserved against every budget that applies; if it does not
fit, `BudgetExceededError` is raised and nothing is sent. After the call the reservation is
settled to the real cost (or released, if the call failed). Check-and-reserve is one atomic
step under a lock, so N concurrent calls can never together pass a limit.

    >>> router = Router(deployments=[...], budgets=[
    ...     Budget(10.0, period="day"),                        # $10 a day, all requests
    ...     Budget(1.0, period="month", scope="user"),         # $1 a month per user
    ...     Budget(0.5, scope="tag", key="experiments"),       # $0.50 ever for that tag
    ... ])
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from ..core.clock import SYSTEM_CLOCK, Clock
from ..core.events import EventHub, RouterEvent
from ..errors import ConfigurationError, StateUnavailableError
from ..types import ChatRequest, Deployment
from .budget_account import BudgetAccount, BudgetRefusal, _error
from .budget_rules import Budget, period_bounds
from .ledger import CostLedger, LedgerFilter, LedgerStore
from .report import money

if TYPE_CHECKING:
    from ..state.shared import Account, Settled
    from .budget_shared import HoldVia, RateRelease, SharedBudgets

__all__ = ["Budget", "BudgetManager", "BudgetRefusal", "BudgetStatus", "Reservation"]

_ZERO = Decimal(0)
# Store accounts kept made (a budget scoped per user has one per user and period).
_SPECS_KEPT = 1024


@dataclass(slots=True)
class Reservation:
    """Money held for one call until it is settled or released (each happens once).

    With shared state, `hold` names the hold in the store and `specs` its accounts there
    (`hold` None with `specs`: held locally while the store was down)."""

    amount: Decimal
    accounts: tuple[BudgetAccount, ...] = ()
    deployment: str = ""
    done: bool = False
    hold: str | None = None
    specs: tuple[Account, ...] = ()
    allowance: bool = False  # held from this process's outage allowance


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """Where one budget account stands now."""

    budget: str
    scope_value: str
    limit_usd: float
    spent_usd: float
    reserved_usd: float
    period_start: float | None


class BudgetManager:
    """Holds every budget's spend and reservations; one per Router, shared by its layers.

    Thread-safe (one lock), so it works across event loops. Spend counts settled costs.
    Given the router's ledger (`store=`), each budget starts from the ledger's spend in the
    current period, so a restart does not reset it. Without `shared`, the limit is enforced
    within this process only. With `shared` (the router's `state=`), every hold and spend
    is in the shared store, so all the processes using it together stay within the limit;
    when the store cannot answer, `state_failure="closed"` refuses budgeted calls with
    `StateUnavailableError` and `"local"` spends from the allowance this process holds in
    the store for outages (costs/budget_allowance.py), so the fleet cannot overshoot.

    >>> manager = BudgetManager([Budget(10, period="day")], clock=clock, events=hub, store=ledger)
    >>> reservation = manager.reserve(request, "openai/gpt-4o-mini", Decimal("0.01"))
    >>> manager.settle(reservation, Decimal("0.0042"))
    """

    def __init__(
        self,
        budgets: Iterable[Budget | Mapping[str, Any]] = (),
        *,
        clock: Clock = SYSTEM_CLOCK,
        events: EventHub | None = None,
        store: CostLedger | LedgerStore | None = None,
        shared: SharedBudgets | None = None,
        state_failure: Literal["closed", "local"] = "closed",
    ) -> None:
        self.budgets: tuple[Budget, ...] = tuple(
            b if isinstance(b, Budget) else Budget(**dict(b)) for b in budgets
        )
        if state_failure not in ("closed", "local"):
            raise ConfigurationError(
                f"state_failure must be 'closed' or 'local', not {state_failure!r}"
            )
        self.shared = shared
        self.state_failure = state_failure
        if shared is not None and state_failure == "local":
            from .budget_allowance import OutageAllowance

            shared.allowance = OutageAllowance(shared.guard, lease_s=shared.lease_s)
        self._clock = clock
        self._events = events
        self._lock = threading.Lock()
        self._accounts: dict[tuple[int, str], BudgetAccount] = {}
        self._loaded: list[tuple[float, dict[str, Decimal]]] = []
        self._kept_specs: dict[tuple[int, str, float, Decimal], Account] = {}
        if store is not None and self.budgets:
            self._load_spend(store.store if isinstance(store, CostLedger) else store)

    def _load_spend(self, store: LedgerStore) -> None:
        wall = self._clock.wall()
        for budget in self.budgets:
            start, _ = period_bounds(budget.period, wall)
            since = None if math.isinf(start) else start
            key = budget.key
            filters = LedgerFilter(
                since=since,
                user=key if budget.scope == "user" else None,
                tag=key if budget.scope == "tag" else None,
                deployment=key if budget.scope == "deployment" else None,
            )
            by = None if budget.scope == "global" else budget.scope
            groups = store.aggregate(filters, by)
            spend = {("" if by is None else name): s.cost for name, s in groups.items()}
            self._loaded.append((start, spend))

    def _account(self, index: int, scope_value: str, wall: float) -> BudgetAccount:
        account = self._accounts.get((index, scope_value))
        if account is None:
            budget = self.budgets[index]
            start, end = period_bounds(budget.period, wall)
            account = BudgetAccount(budget, scope_value, start, end)
            if self._loaded and self._loaded[index][0] == start:
                account.spent = self._loaded[index][1].get(scope_value, _ZERO)
                # Thresholds passed before a restart were announced then.
                account.crossed_thresholds()
            self._accounts[(index, scope_value)] = account
        else:
            account.roll(wall)
        return account

    def _applicable(
        self, request: ChatRequest, deployment: str, wall: float
    ) -> list[BudgetAccount]:
        return [
            self._account(index, value, wall)
            for index, budget in enumerate(self.budgets)
            for value in budget.scope_values(request, deployment)
        ]

    def applies(self, request: ChatRequest, deployment: Deployment | str) -> bool:
        """Whether any budget covers this request on this deployment."""
        name = deployment if isinstance(deployment, str) else deployment.key
        return any(b.scope_values(request, name) for b in self.budgets)

    def reserve(
        self,
        request: ChatRequest,
        deployment: Deployment | str,
        worst_case_usd: Decimal,
        *,
        via: HoldVia | None = None,
    ) -> Reservation:
        """Hold `worst_case_usd` against every applicable budget, or raise BudgetExceededError.

        With shared state, `via` takes the hold in the store as part of the call's one trip
        (`admission.store_trip`); without it the hold is a trip of its own."""
        name = deployment if isinstance(deployment, str) else deployment.key
        if not self.budgets:
            return Reservation(_ZERO, deployment=name)
        needed = Decimal(worst_case_usd)
        wall = self._clock.wall()
        with self._lock:
            accounts = self._applicable(request, name, wall)
            specs = self._specs(accounts) if self.shared is not None and accounts else ()
        if specs and self.shared is not None:
            deadline = request.deadline
            left = None if deadline is None else max(0.0, deadline - self._clock.now())
            return self._reserve_shared(self.shared, accounts, specs, needed, name, wall, left, via)
        with self._lock:
            for account in accounts:
                if not account.fits(needed):
                    raise account.refusal(needed)
            for account in accounts:
                account.reserved += needed
        return Reservation(needed, tuple(accounts), name, specs=specs)

    def _specs(self, accounts: list[BudgetAccount]) -> tuple[Account, ...]:
        from .budget_shared import account_spec

        specs = []
        kept = self._kept_specs
        for account in accounts:
            budget = account.budget
            index = self.budgets.index(budget)
            initial = _ZERO
            if self._loaded and self._loaded[index][0] == account.period_start:
                initial = self._loaded[index][1].get(account.scope_value, _ZERO)
            # The same account in the same period is the same spec: made once, not per call.
            key = (index, account.scope_value, account.period_start, initial)
            spec = kept.get(key)
            if spec is None:
                if len(kept) >= _SPECS_KEPT:
                    del kept[next(iter(kept))]
                spec = kept[key] = account_spec(
                    f"{budget.name}|{budget.scope}|{budget.key or ''}",
                    account.scope_value,
                    account.period_start,
                    account.period_end,
                    budget.limit,
                    [level for _, level in budget._alert_levels],
                    initial,
                )
            specs.append(spec)
        return tuple(specs)

    def _reserve_shared(
        self,
        shared: SharedBudgets,
        accounts: list[BudgetAccount],
        specs: tuple[Account, ...],
        needed: Decimal,
        name: str,
        wall: float,
        time_left_s: float | None,
        via: HoldVia | None,
    ) -> Reservation:
        """Hold in the store, or (it is down, state_failure="local") in the outage allowance."""
        from ..state.shared import StoreUnavailable, from_nano, to_nano

        try:
            outcome = shared.reserve(specs, needed, wall, time_left_s, via)
        except StoreUnavailable:
            why = "Router(state_failure='local') spends from a per-process allowance instead"
            if shared.allowance is not None:
                short = shared.allowance.take(specs, to_nano(needed), wall)
                if short is None:
                    with self._lock:
                        for account in accounts:
                            account.reserved += needed
                    return Reservation(needed, tuple(accounts), name, specs=specs, allowance=True)
                if short.left is not None:  # a smaller call, or a cheaper deployment, may fit
                    raise _error(
                        accounts[0],
                        needed,
                        f"shared state ({shared.backend}) did not answer and this call needs up "
                        f"to {money(needed)}, but {short.reason}. Nothing was sent.",
                    ) from None
                why = short.reason
            raise StateUnavailableError(
                f"shared state ({shared.backend}) did not answer, and a budget covers this "
                f"call, so it was not sent ({why})",
                backend=shared.backend,
            ) from None
        if isinstance(outcome, str):
            return Reservation(needed, tuple(accounts), name, hold=outcome, specs=specs)
        account = accounts[outcome.index]
        with self._lock:
            account.spent = max(account.spent, from_nano(outcome.spent))
            account.crossed_thresholds()  # announced by whoever crossed them
        fleet = BudgetAccount(
            account.budget,
            account.scope_value,
            account.period_start,
            account.period_end,
            spent=from_nano(outcome.spent),
            reserved=from_nano(outcome.reserved),
        )
        raise fleet.refusal(needed)

    def check(
        self, request: ChatRequest, deployment: Deployment | str, worst_case_usd: Decimal | None
    ) -> BudgetRefusal | None:
        """Why this call would be refused, or None if it fits (reserves nothing).

        Its signature is the routing planner's `budget_check` hook. `worst_case_usd=None`
        means the price is unknown: refused if any budget applies.
        """
        name = deployment if isinstance(deployment, str) else deployment.key
        if not self.budgets:
            return None
        with self._lock:
            for account in self._applicable(request, name, self._clock.wall()):
                if worst_case_usd is None:
                    return BudgetRefusal(
                        f"no price known, so budget {account.budget.name!r} cannot be checked",
                        account.unpriced(name),
                    )
                needed = Decimal(worst_case_usd)
                if not account.fits(needed):
                    return BudgetRefusal(account.shortfall(needed), account.refusal(needed))
        return None

    def refuse_unpriced(self, request: ChatRequest, deployment: Deployment | str) -> None:
        """Raise BudgetExceededError if a budget covers a call whose price is unknown."""
        name = deployment if isinstance(deployment, str) else deployment.key
        with self._lock:
            accounts = self._applicable(request, name, self._clock.wall())
        if accounts:
            raise accounts[0].unpriced(name)

    def settle(
        self,
        reservation: Reservation,
        actual_usd: Decimal | None,
        *,
        rate: RateRelease | None = None,
    ) -> None:
        """The call is over and cost `actual_usd` (None: unknown, so the reservation counts).

        `rate`: the call's rate-window release in the store, sent in the same trip."""
        if reservation.done or not reservation.accounts or reservation.hold is None:
            self._release_rate(rate)
        if reservation.done:
            return
        reservation.done = True
        if not reservation.accounts:
            return
        actual = reservation.amount if actual_usd is None else Decimal(actual_usd)
        if reservation.hold is not None and self.shared is not None:
            self._settle_shared(self.shared, reservation, actual, rate)
            return
        if reservation.allowance and self.shared is not None and self.shared.allowance:
            from ..state.shared import to_nano

            amount, spent = to_nano(reservation.amount), to_nano(actual) if actual > 0 else 0
            self.shared.allowance.settle(reservation.specs, amount, spent)
        alerts: list[tuple[BudgetAccount, float]] = []
        with self._lock:
            wall = self._clock.wall()
            for account in reservation.accounts:
                account.roll(wall)
                account.reserved = max(_ZERO, account.reserved - reservation.amount)
                account.spent += actual
                alerts += [(account, t) for t in account.crossed_thresholds()]
        for account, threshold in alerts:
            self._alert(account, threshold, reservation.deployment, wall)

    def _release_rate(self, rate: RateRelease | None) -> None:
        if rate is not None and self.shared is not None:
            self.shared.release(None, (), self._clock.wall(), rate)

    def _settle_shared(
        self,
        shared: SharedBudgets,
        reservation: Reservation,
        actual: Decimal,
        rate: RateRelease | None,
    ) -> None:
        from ..state.shared import from_nano

        wall = self._clock.wall()

        # Runs once the settle landed (on the settler's thread, in the caller's context,
        # so the call's own alert reaches its listeners).
        def landed(settled: Settled | None) -> None:
            if settled is None:  # the store went down: the local view counts it meanwhile
                with self._lock:
                    for account in reservation.accounts:
                        account.spent += actual
                        account.crossed_thresholds()
                return
            alerts: list[tuple[BudgetAccount, float]] = []
            with self._lock:
                for account, spent in zip(reservation.accounts, settled.spent):
                    account.spent = from_nano(spent)  # the fleet's spend, for check()
                    account.crossed_thresholds()
                for index, alert in settled.crossed:
                    account = reservation.accounts[index]
                    alerts.append((account, account.budget._alert_levels[alert][0]))
            for account, threshold in alerts:
                self._alert(account, threshold, reservation.deployment, wall)

        shared.settle(reservation.hold, reservation.specs, actual, wall, rate, landed)

    def release(self, reservation: Reservation, *, rate: RateRelease | None = None) -> None:
        """The call failed without being billed: give its reservation back (and `rate`'s
        slot, in the same trip)."""
        if reservation.done or reservation.hold is None:
            self._release_rate(rate)
        if reservation.done:
            return
        reservation.done = True
        if reservation.hold is not None and self.shared is not None:
            self.shared.release(reservation.hold, reservation.specs, self._clock.wall(), rate)
            return
        if reservation.allowance and self.shared is not None and self.shared.allowance:
            from ..state.shared import to_nano

            self.shared.allowance.release(reservation.specs, to_nano(reservation.amount))
        with self._lock:
            for account in reservation.accounts:
                account.reserved = max(_ZERO, account.reserved - reservation.amount)

    def close(self) -> None:
        """Push costs the store has not seen yet and give back the outage allowance (best
        effort: if the store is down, the allowance's lease ends it)."""
        if self.shared is not None:
            self.shared.close(self._clock.wall())

    def status(self) -> list[BudgetStatus]:
        """Every account with activity: spent and reserved in its current period.

        With shared state: every process's spend and holds, read from the store (global
        budgets and budgets with a `key` are listed even before this process used them);
        this process's view if the store does not answer. This process's own settles
        still on their way land first, so it always reads its own spend.
        """
        if self.shared is not None:
            self.shared.flush()
        with self._lock:
            wall = self._clock.wall()
            for index, budget in enumerate(self.budgets):
                if self.shared is not None and (budget.scope == "global" or budget.key):
                    self._account(index, budget.key or "", wall)
            accounts = list(self._accounts.values())
            for account in accounts:
                account.roll(wall)
            specs = self._specs(accounts) if self.shared is not None and accounts else ()
        fleet = None
        if specs and self.shared is not None:
            from ..state.shared import StoreUnavailable, from_nano

            try:
                fleet = [
                    (from_nano(s.spent), from_nano(s.reserved))
                    for s in self.shared.read(specs, wall)
                ]
            except StoreUnavailable:
                fleet = None
        result = []
        for position, account in enumerate(accounts):
            spent, reserved = fleet[position] if fleet else (account.spent, account.reserved)
            result.append(
                BudgetStatus(
                    budget=account.budget.name or "",
                    scope_value=account.scope_value,
                    limit_usd=float(account.budget.limit),
                    spent_usd=float(spent),
                    reserved_usd=float(reserved),
                    period_start=None if math.isinf(account.period_start) else account.period_start,
                )
            )
        return result

    def _alert(
        self, account: BudgetAccount, threshold: float, deployment: str, wall: float
    ) -> None:
        if self._events is None:
            return
        budget = account.budget
        self._events.emit(
            RouterEvent(
                type="budget_alert",
                deployment=deployment or None,
                data={
                    "budget": budget.name,
                    "threshold": threshold,
                    "spent_usd": float(account.spent),
                    "limit_usd": float(budget.limit),
                    "scope": budget.scope,
                    "key": account.scope_value or None,
                    "period": budget.period,
                    "period_start": None
                    if math.isinf(account.period_start)
                    else account.period_start,
                },
                time=wall,
            )
        )
