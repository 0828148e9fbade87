"""The cost ledger users read (`router.costs`): totals, groupings, views and a report.

A `CostLedger` is a view over a `LedgerStore` (rows live in `state/`), optionally filtered.

>>> ledger = ledger_from_url("sqlite:///costs.db")      # or "memory" (the default)
>>> ledger.record(LedgerEntry(time=time.time(), deployment="openai/gpt-4o-mini",
...                           provider="openai", model="gpt-4o-mini", cost=Decimal("0.0002")))
>>> ledger.total_usd, ledger.by_provider()["openai"].requests
(0.0002, 1)
>>> print(ledger.since(datetime(2026, 11, 1)).report(by="model"))
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from ..state.ledger import (
    GROUPINGS,
    LedgerEntry,
    LedgerFilter,
    LedgerStore,
    Summary,
    check_grouping,
    utc_epoch,
)
from ..state.ledger_memory import MemoryLedgerStore
from ..state.stores import ledger_store_from_spec
from ..types import ChatRequest
from .report import format_report

__all__ = [
    "GROUPINGS",
    "CostLedger",
    "LedgerEntry",
    "LedgerFilter",
    "LedgerStore",
    "MemoryLedgerStore",
    "Summary",
    "ledger_from_url",
    "request_tags",
    "request_user",
]

_NO_FILTER = LedgerFilter()


class CostLedger:
    """What the router spent: `router.costs`. A view over a `LedgerStore`, optionally filtered.

    >>> router.costs.total_usd, router.costs.requests, router.costs.saved_usd
    >>> router.costs.by_provider()["anthropic"].cost_usd
    >>> print(router.costs.since(datetime(2026, 11, 1)).report(by="user"))
    """

    def __init__(
        self, store: LedgerStore | None = None, *, filters: LedgerFilter | None = None
    ) -> None:
        self.store: LedgerStore = store if store is not None else MemoryLedgerStore()
        self.filters = filters or _NO_FILTER

    def __repr__(self) -> str:
        return f"CostLedger(store={type(self.store).__name__}, filters={self.filters})"

    def record(self, entry: LedgerEntry) -> None:
        """Add one row (cheap: stores that write to disk do it in the background)."""
        self.store.append((entry,))

    def record_many(self, entries: Sequence[LedgerEntry]) -> None:
        """Add several rows at once."""
        self.store.append(entries)

    # -- totals -------------------------------------------------------------------------

    def summary(self) -> Summary:
        """Totals over every row this view covers."""
        return self.store.aggregate(self.filters, None).get("all") or Summary()

    @property
    def total_usd(self) -> float:
        """Spend in USD (rows with an unknown cost are not in it; see `unknown_cost_requests`)."""
        return self.summary().cost_usd

    @property
    def total(self) -> Decimal:
        """Spend in USD, exact."""
        return self.summary().cost

    @property
    def requests(self) -> int:
        return self.summary().requests

    @property
    def saved_usd(self) -> float:
        """What cache hits saved: the cost of the calls they replaced."""
        return self.summary().saved_usd

    @property
    def failed_requests(self) -> int:
        return self.summary().failed_requests

    @property
    def unknown_cost_requests(self) -> int:
        return self.summary().unknown_cost_requests

    # -- groupings ----------------------------------------------------------------------

    def group_by(self, by: str) -> dict[str, Summary]:
        """Totals per provider, model, deployment, user, tag or (UTC) day, biggest spend first."""
        groups = self.store.aggregate(self.filters, by)
        if by == "day":
            return dict(sorted(groups.items()))
        return dict(sorted(groups.items(), key=lambda item: (-item[1].cost, item[0])))

    def by_provider(self) -> dict[str, Summary]:
        return self.group_by("provider")

    def by_model(self) -> dict[str, Summary]:
        return self.group_by("model")

    def by_deployment(self) -> dict[str, Summary]:
        return self.group_by("deployment")

    def by_user(self) -> dict[str, Summary]:
        """Per `request.user`; requests without one are under "(no user)"."""
        return self.group_by("user")

    def by_tag(self) -> dict[str, Summary]:
        """Per tag; a request with two tags counts in both, one without any in "(untagged)"."""
        return self.group_by("tag")

    def by_day(self) -> dict[str, Summary]:
        """Per UTC day ('YYYY-MM-DD'), oldest first."""
        return self.group_by("day")

    # -- views --------------------------------------------------------------------------

    def since(self, when: datetime | float) -> CostLedger:
        """The rows from `when` on (a naive datetime is UTC)."""
        return self.where(LedgerFilter(since=utc_epoch(when)))

    def until(self, when: datetime | float) -> CostLedger:
        """The rows before `when` (a naive datetime is UTC)."""
        return self.where(LedgerFilter(until=utc_epoch(when)))

    def where(
        self,
        filters: LedgerFilter | None = None,
        *,
        user: str | None = None,
        tag: str | None = None,
        deployment: str | None = None,
        provider: str | None = None,
        model: str | None = None,
    ) -> CostLedger:
        """A narrower view: `ledger.where(user="alice")`, `ledger.where(tag="search")`."""
        fields = LedgerFilter(
            user=user, tag=tag, deployment=deployment, provider=provider, model=model
        )
        narrowed = self.filters.narrow(filters or _NO_FILTER).narrow(fields)
        return CostLedger(self.store, filters=narrowed)

    def entries(self, limit: int | None = None) -> list[LedgerEntry]:
        """The rows themselves, oldest first (the newest `limit` if given)."""
        return self.store.query(self.filters, limit)

    def report(self, by: str = "provider") -> str:
        """A printable table: totals, one row per group, cache savings, unknown-cost count."""
        check_grouping(by)
        return format_report(self.summary(), self.group_by(by), by=by, filters=self.filters)

    def flush(self) -> None:
        """Write buffered rows now."""
        self.store.flush()

    def close(self) -> None:
        """Write buffered rows and release the store."""
        self.store.close()


def ledger_from_url(spec: str | LedgerStore | CostLedger | None = "memory") -> CostLedger:
    """A `CostLedger` from `"memory"`, `"sqlite:///relative.db"`, `"sqlite:////abs/path.db"`,
    a store object or a ledger.

    >>> ledger_from_url("sqlite:///costs.db").total_usd
    """
    if isinstance(spec, CostLedger):
        return spec
    return CostLedger(ledger_store_from_spec(spec))


def request_user(request: ChatRequest) -> str | None:
    """Who a request is for: `request.user`, else `metadata["user"]`."""
    if request.user:
        return request.user
    user = request.metadata.get("user") if request.metadata else None
    return str(user) if user else None


def request_tags(request: ChatRequest) -> tuple[str, ...]:
    """A request's tags: `request.tags` plus `metadata["tags"]`, each once, in order."""
    extra = request.metadata.get("tags") if request.metadata else None
    if not extra:
        return tuple(request.tags)
    if isinstance(extra, str):
        extra = (extra,)
    return tuple(dict.fromkeys((*request.tags, *(str(t) for t in extra))))
