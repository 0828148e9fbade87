"""One budget's running totals for one scope value in one period, and the refusals it words.

`BudgetManager` (costs/budget.py) keeps one `BudgetAccount` per budget and scope value
(a user, a tag...) and checks, holds and settles against it under its lock.

    >>> account = BudgetAccount(budget, "", *period_bounds(budget.period, wall))
    >>> account.fits(Decimal("0.02")), account.shortfall(Decimal("0.02"))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal

from ..errors import BudgetExceededError
from .budget_rules import PERIOD_WORDS, Budget, period_bounds
from .report import money

__all__ = ["BudgetAccount", "BudgetRefusal"]

_ZERO = Decimal(0)


@dataclass(slots=True)
class BudgetAccount:
    """One budget's running totals for one scope value (a user, a tag...) in one period."""

    budget: Budget
    scope_value: str
    period_start: float
    period_end: float
    spent: Decimal = _ZERO
    reserved: Decimal = _ZERO
    alerted: set[float] = field(default_factory=set)

    def roll(self, wall: float) -> None:
        # Money still reserved by calls in flight stays reserved into the new period.
        if wall >= self.period_end:
            self.period_start, self.period_end = period_bounds(self.budget.period, wall)
            self.spent = _ZERO
            self.alerted.clear()

    def fits(self, needed: Decimal) -> bool:
        # A free call always fits, even in a budget already overspent by a bad estimate.
        return not needed or self.spent + self.reserved + needed <= self.budget.limit

    def left(self) -> Decimal:
        return max(_ZERO, self.budget.limit - self.spent - self.reserved)

    def shortfall(self, needed: Decimal) -> str:
        """The planner's one-line reason: "would exceed budget 'daily': $x left, needs $y"."""
        return f"would exceed budget {self.budget.name!r}: {money(self.left())} left, needs {money(needed)}"

    def refusal(self, needed: Decimal) -> BudgetExceededError:
        budget = self.budget
        return _error(
            self,
            needed,
            f"budget {budget.name!r} ({money(budget.limit)} {PERIOD_WORDS[budget.period]}) would "
            f"be exceeded: {money(self.left())} left ({money(self.spent)} spent, "
            f"{money(self.reserved)} held by calls in flight) and this call needs up to "
            f"{money(needed)}. Nothing was sent.",
        )

    def unpriced(self, deployment: str) -> BudgetExceededError:
        return _error(
            self,
            math.inf,
            f"budget {self.budget.name!r} cannot bound a call to deployment {deployment!r}: no "
            "price is known for its model (set Deployment(price={'input': ..., 'output': ...}) "
            "in USD per million tokens). Nothing was sent.",
        )

    def crossed_thresholds(self) -> list[float]:
        if not self.spent:
            return []
        levels = self.budget._alert_levels
        crossed = [t for t, level in levels if self.spent >= level and t not in self.alerted]
        self.alerted.update(crossed)
        return crossed


def _error(account: BudgetAccount, needed: Decimal | float, message: str) -> BudgetExceededError:
    return BudgetExceededError(
        message,
        limit_usd=float(account.budget.limit),
        spent_usd=float(account.spent),
        needed_usd=float(needed),
        budget=account.budget.name,
    )


class BudgetRefusal(str):
    """`BudgetManager.check`'s reason: a plain string for a planner's route explanation, that
    also carries the `BudgetExceededError` to raise if budgets leave no candidate at all.

    >>> reasons = {name: r for name, r in planner_reasons.items()}
    >>> if reasons and all(isinstance(r, BudgetRefusal) for r in reasons.values()):
    ...     raise next(iter(reasons.values())).error
    """

    error: BudgetExceededError

    def __new__(cls, reason: str, error: BudgetExceededError) -> BudgetRefusal:
        refusal = super().__new__(cls, reason)
        refusal.error = error
        return refusal
