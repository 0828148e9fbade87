"""The cost ledger: one row per request (answer, failure, cache hit), kept in a pluggable store.

>>> ledger = ledger_from_url("sqlite:///costs.db")      # or "memory" (the default)
>>> ledger.record(LedgerEntry(time=time.time(), deployment="openai/gpt-4o-mini",
...                           provider="openai", model="gpt-4o-mini", cost=Decimal("0.0002")))
>>> ledger.total_usd, ledger.by_provider()["openai"].requests
(0.0002, 1)
>>> print(ledger.since(datetime(2026, 11, 1)).report(by="model"))
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from ..errors import ConfigurationError

__all__ = [
    "GROUPINGS",
    "CostLedger",
    "LedgerEntry",
    "LedgerFilter",
    "LedgerStore",
    "MemoryLedgerStore",
    "Summary",
    "ledger_from_url",
]

_ZERO = Decimal(0)
_DAY = 86_400
# The memory store counts appended rows into its totals in batches of this many (and
# before every read): off the path of most requests, at most a few dozen rows at a time.
_CATCH_UP_EVERY = 32
NO_USER = "(no user)"
UNTAGGED = "(untagged)"
GROUPINGS = ("provider", "model", "deployment", "user", "tag", "day")


@dataclass(slots=True)
class LedgerEntry:
    """One request as it was billed. `cost` is None when no price is known for the model.

    `time` is wall-clock seconds (UTC epoch). Tokens are billed tokens: a cache hit has
    none, `cost` 0 and `saved` the cost of the original call.

    >>> LedgerEntry(time=1.8e9, deployment="fast", provider="groq", model="llama-3.1-8b-instant")
    """

    time: float
    deployment: str
    provider: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost: Decimal | None = _ZERO
    latency_s: float = 0.0
    user: str | None = None
    tags: tuple[str, ...] = ()
    cached: bool = False
    saved: Decimal | None = None
    error_type: str | None = None
    request_id: str | None = None


@dataclass(slots=True)
class Summary:
    """Totals over a set of ledger rows. `cost` excludes rows whose cost is unknown.

    >>> s = ledger.by_provider()["openai"]
    >>> s.requests, s.cost_usd, s.input_tokens, s.cache_hits, s.saved_usd
    """

    requests: int = 0
    cost: Decimal = _ZERO
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cache_hits: int = 0
    saved: Decimal = _ZERO
    failed_requests: int = 0
    unknown_cost_requests: int = 0
    latency_s: float = 0.0  # summed; see mean_latency_s
    first_time: float | None = None
    last_time: float | None = None

    @property
    def cost_usd(self) -> float:
        return float(self.cost)

    @property
    def saved_usd(self) -> float:
        return float(self.saved)

    @property
    def mean_latency_s(self) -> float:
        return self.latency_s / self.requests if self.requests else 0.0

    def add(self, entry: LedgerEntry) -> None:
        """Count one more row."""
        # Runs for every request (twice once old rows fold): zero counts are skipped.
        self.requests += 1
        cost = entry.cost
        if cost is None:
            self.unknown_cost_requests += 1
        else:
            self.cost += cost
        self.input_tokens += entry.input_tokens
        self.output_tokens += entry.output_tokens
        if entry.cached_input_tokens:
            self.cached_input_tokens += entry.cached_input_tokens
        if entry.cache_write_tokens:
            self.cache_write_tokens += entry.cache_write_tokens
        if entry.reasoning_tokens:
            self.reasoning_tokens += entry.reasoning_tokens
        if entry.cached:
            self.cache_hits += 1
        if entry.saved is not None:
            self.saved += entry.saved
        if entry.error_type is not None:
            self.failed_requests += 1
        self.latency_s += entry.latency_s
        when = entry.time
        if self.first_time is None or when < self.first_time:
            self.first_time = when
        if self.last_time is None or when > self.last_time:
            self.last_time = when

    def merge(self, other: Summary) -> None:
        """Add another summary's totals into this one."""
        for name in _SUMMED_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        if other.first_time is not None and other.last_time is not None:
            self._span(other.first_time, other.last_time)

    def _span(self, first: float, last: float) -> None:
        if self.first_time is None or first < self.first_time:
            self.first_time = first
        if self.last_time is None or last > self.last_time:
            self.last_time = last


_SUMMED_FIELDS = tuple(f.name for f in fields(Summary) if f.name not in ("first_time", "last_time"))


def _utc(when: datetime | float) -> float:
    """Epoch seconds; a naive datetime is read as UTC, like the ledger's days."""
    if isinstance(when, datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return when.timestamp()
    return float(when)


def day_of(epoch: float) -> str:
    """The UTC day of a wall-clock time, as 'YYYY-MM-DD'."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d")


@dataclass(frozen=True, slots=True)
class LedgerFilter:
    """Which rows a query covers: a time window [since, until) and exact-match fields.

    >>> LedgerFilter(since=time.time() - 86_400, user="alice")
    """

    since: float | None = None
    until: float | None = None
    user: str | None = None
    tag: str | None = None
    deployment: str | None = None
    provider: str | None = None
    model: str | None = None

    @property
    def is_empty(self) -> bool:
        return self == _NO_FILTER

    def narrow(self, other: LedgerFilter) -> LedgerFilter:
        """Rows matching both filters (an exact field set in both must agree)."""
        since = max((t for t in (self.since, other.since) if t is not None), default=None)
        until = min((t for t in (self.until, other.until) if t is not None), default=None)
        values: dict[str, Any] = {"since": since, "until": until}
        for name in ("user", "tag", "deployment", "provider", "model"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is not None and theirs is not None and mine != theirs:
                theirs = "\x00no match"  # contradictory: matches nothing
            values[name] = theirs if theirs is not None else mine
        return LedgerFilter(**values)

    def matches(self, entry: LedgerEntry) -> bool:
        if self.since is not None and entry.time < self.since:
            return False
        if self.until is not None and entry.time >= self.until:
            return False
        return self._fields_match(
            entry.user, entry.tags, entry.deployment, entry.provider, entry.model
        )

    def _fields_match(
        self, user: str | None, tags: tuple[str, ...], deployment: str, provider: str, model: str
    ) -> bool:
        return (
            (self.user is None or user == self.user)
            and (self.tag is None or self.tag in tags)
            and (self.deployment is None or deployment == self.deployment)
            and (self.provider is None or provider == self.provider)
            and (self.model is None or model == self.model)
        )


_NO_FILTER = LedgerFilter()


@runtime_checkable
class LedgerStore(Protocol):
    """Where ledger rows live. `append` must be cheap (callers are on the request path):
    stores that do I/O buffer and write behind, and every read sees buffered rows.

    `aggregate(filters, by)` groups by one of GROUPINGS (a row with two tags counts in
    both), or returns {"all": totals} when `by` is None.
    """

    def append(self, entries: Sequence[LedgerEntry]) -> None: ...

    def query(self, filters: LedgerFilter, limit: int | None = None) -> list[LedgerEntry]: ...

    def aggregate(self, filters: LedgerFilter, by: str | None = None) -> dict[str, Summary]: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


def _group_keys(by: str | None, entry: LedgerEntry) -> Iterable[str]:
    if by is None:
        return ("all",)
    if by == "tag":
        return entry.tags or (UNTAGGED,)
    if by == "day":
        return (day_of(entry.time),)
    if by == "user":
        return (entry.user or NO_USER,)
    return (getattr(entry, by),)


def check_grouping(by: str | None) -> None:
    """Raise ValueError unless `by` is None or one of GROUPINGS."""
    if by is not None and by not in GROUPINGS:
        raise ValueError(f"cannot group the ledger by {by!r}; choose one of {', '.join(GROUPINGS)}")


class MemoryLedgerStore:
    """The default store: in this process only, gone when it ends.

    Memory stays flat: the newest `max_entries` rows are kept whole; older rows are folded
    into per-UTC-day totals (per deployment, provider, model, user and tags), so all-time
    totals and groupings stay exact, while a time window over folded rows is day-granular.

    Appending only queues the row; totals and folding catch up every few dozen rows, and
    before any read, so every read sees every row.

    >>> ledger = CostLedger(MemoryLedgerStore(max_entries=100_000))
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max(1, max_entries)
        self._recent: deque[LedgerEntry] = deque()
        self._folded: dict[tuple[float, str, str, str, str | None, tuple[str, ...]], Summary] = {}
        self._total = Summary()
        self._uncounted: list[LedgerEntry] = []  # in `_recent` but not yet in the totals
        self._lock = threading.Lock()

    def append(self, entries: Sequence[LedgerEntry]) -> None:
        with self._lock:
            self._recent.extend(entries)
            uncounted = self._uncounted
            uncounted.extend(entries)
            if len(uncounted) >= _CATCH_UP_EVERY:
                self._catch_up()

    def _catch_up(self) -> None:
        """Count queued rows into the totals and fold what is past `max_entries` (locked)."""
        total = self._total
        for entry in self._uncounted:
            total.add(entry)
        self._uncounted.clear()
        recent = self._recent
        while len(recent) > self.max_entries:
            self._fold(recent.popleft())

    def _fold(self, entry: LedgerEntry) -> None:
        day = entry.time // _DAY * _DAY
        key = (day, entry.deployment, entry.provider, entry.model, entry.user, entry.tags)
        bucket = self._folded.get(key)
        if bucket is None:
            bucket = self._folded[key] = Summary()
        bucket.add(entry)

    def query(self, filters: LedgerFilter, limit: int | None = None) -> list[LedgerEntry]:
        """The matching rows still kept whole, oldest first."""
        with self._lock:
            if self._uncounted:
                self._catch_up()
            rows = [e for e in self._recent if filters.matches(e)]
        return rows if limit is None else rows[-limit:]

    def aggregate(self, filters: LedgerFilter, by: str | None = None) -> dict[str, Summary]:
        check_grouping(by)
        groups: dict[str, Summary] = {}
        with self._lock:
            if self._uncounted:
                self._catch_up()
            if by is None and filters.is_empty:
                total = Summary()
                total.merge(self._total)
                return {"all": total}
            for (day, deployment, provider, model, user, tags), bucket in self._folded.items():
                if filters.since is not None and day + _DAY <= filters.since:
                    continue
                if filters.until is not None and day >= filters.until:
                    continue
                if not filters._fields_match(user, tags, deployment, provider, model):
                    continue
                stand_in = LedgerEntry(day, deployment, provider, model, user=user, tags=tags)
                for key in _group_keys(by, stand_in):
                    groups.setdefault(key, Summary()).merge(bucket)
            for entry in self._recent:
                if filters.matches(entry):
                    for key in _group_keys(by, entry):
                        summary = groups.get(key)
                        if summary is None:
                            summary = groups[key] = Summary()
                        summary.add(entry)
        if by is None and not groups:
            groups["all"] = Summary()
        return groups

    def flush(self) -> None:
        """Nothing to write: rows are stored as they are appended."""

    def close(self) -> None:
        """Nothing to release."""


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
        return self.where(LedgerFilter(since=_utc(when)))

    def until(self, when: datetime | float) -> CostLedger:
        """The rows before `when` (a naive datetime is UTC)."""
        return self.where(LedgerFilter(until=_utc(when)))

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
        from .report import format_report

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
    if spec is None or spec in ("memory", "memory://"):
        return CostLedger(MemoryLedgerStore())
    if isinstance(spec, str):
        if spec.startswith("sqlite://"):
            path = spec[len("sqlite://") :]
            path = path[1:] if path.startswith("/") else path
            if not path:
                raise ConfigurationError("a SQLite ledger needs a path: 'sqlite:///costs.db'")
            from ..state.ledger_sqlite import SQLiteLedgerStore

            return CostLedger(SQLiteLedgerStore(path))
        if spec.startswith(("redis://", "rediss://")):
            raise ConfigurationError(
                "a Redis ledger store is not available yet; use 'memory' or 'sqlite:///path.db'"
            )
        raise ConfigurationError(
            f"unknown ledger {spec!r}: use 'memory', 'sqlite:///path.db' or a LedgerStore object"
        )
    if isinstance(spec, LedgerStore):
        return CostLedger(spec)
    raise ConfigurationError(f"unknown ledger {spec!r}")
