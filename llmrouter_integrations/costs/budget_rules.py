"""What a budget is: the `Budget` a user writes (limit, period, scope) and its UTC periods.

>>> Budget(25, period="month", scope="user")              # $25 per user per month
>>> period_bounds("day", 1_800_000_000.0)                 # [start, end) of that UTC day
(1799971200.0, 1800057600.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Literal

from ..errors import ConfigurationError
from ..types import ChatRequest
from .ledger import request_tags, request_user

__all__ = ["PERIOD_WORDS", "Budget", "Period", "Scope", "period_bounds"]

Period = Literal["day", "month"]
Scope = Literal["global", "user", "tag", "deployment"]
_ZERO = Decimal(0)
_DAY = 86_400
PERIOD_WORDS = {"day": "daily", "month": "monthly", None: "total"}


@dataclass(frozen=True)
class Budget:
    """A spending limit in USD, over a period ("day" or "month", UTC; None = forever).

    `scope` says whose spend counts: "global" (every request), "user", "tag" or
    "deployment". With `key` the budget covers that one user/tag/deployment; without it,
    each user (tag, deployment) gets its own limit. Requests without a user are not
    covered by user budgets. `alert_thresholds` are fractions of the limit at which a
    "budget_alert" event fires, once per period.

    >>> Budget(25, period="month", scope="user")              # $25 per user per month
    >>> Budget(5, period="day", scope="deployment", key="openai/gpt-4o")
    """

    limit_usd: Decimal | float | int | str
    period: Period | None = None
    scope: Scope = "global"
    key: str | None = None
    alert_thresholds: tuple[float, ...] = (0.5, 0.8, 1.0)
    name: str | None = None
    # Derived in __post_init__: the exact limit, and the spend at which each alert fires.
    _limit: Decimal = field(init=False, repr=False, compare=False, default=_ZERO)
    _alert_levels: tuple[tuple[float, Decimal], ...] = field(
        init=False, repr=False, compare=False, default=()
    )

    def __post_init__(self) -> None:
        limit = Decimal(str(self.limit_usd))
        if not limit.is_finite() or limit < 0:
            raise ConfigurationError(
                f"a budget limit must be a sum of USD >= 0, got {self.limit_usd!r}"
            )
        if self.period not in ("day", "month", None):
            raise ConfigurationError(
                f"budget period must be 'day', 'month' or None, not {self.period!r}"
            )
        if self.scope not in ("global", "user", "tag", "deployment"):
            raise ConfigurationError(
                f"budget scope must be 'global', 'user', 'tag' or 'deployment', not {self.scope!r}"
            )
        if self.scope == "global" and self.key is not None:
            raise ConfigurationError("a global budget takes no key")
        thresholds = tuple(sorted(float(t) for t in self.alert_thresholds))
        if any(t <= 0 for t in thresholds):
            raise ConfigurationError("alert thresholds are fractions of the limit, above 0")
        object.__setattr__(self, "limit_usd", limit)
        object.__setattr__(self, "_limit", limit)
        object.__setattr__(self, "alert_thresholds", thresholds)
        levels = tuple((t, limit * Decimal(str(t))) for t in thresholds)
        object.__setattr__(self, "_alert_levels", levels)
        if self.name is None:
            object.__setattr__(self, "name", self._default_name())

    @property
    def limit(self) -> Decimal:
        """The limit as an exact Decimal."""
        return self._limit

    def _default_name(self) -> str:
        words = PERIOD_WORDS[self.period]
        if self.scope == "global":
            return words
        if self.key is None:
            return f"{words} per {self.scope}"
        return f"{words} for {self.scope} {self.key}"

    def scope_values(self, request: ChatRequest, deployment: str) -> tuple[str, ...]:
        """Which accounts of this budget a request draws on (none: it does not apply)."""
        if self.scope == "global":
            return ("",)
        if self.scope == "user":
            values: tuple[str, ...] = (user,) if (user := request_user(request)) else ()
        elif self.scope == "tag":
            values = request_tags(request)
        else:
            values = (deployment,)
        if self.key is not None:
            return (self.key,) if self.key in values else ()
        return values


def period_bounds(period: str | None, wall: float) -> tuple[float, float]:
    """[start, end) of the UTC period containing `wall`."""
    if period is None:
        return -math.inf, math.inf
    if period == "day":
        start = wall // _DAY * _DAY
        return start, start + _DAY
    now = datetime.fromtimestamp(wall, timezone.utc)
    start_dt = datetime(now.year, now.month, 1, tzinfo=timezone.utc)
    end_dt = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=timezone.utc)
    return start_dt.timestamp(), end_dt.timestamp()
