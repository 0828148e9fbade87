"""Ledger rows and where they live: `LedgerEntry`, `Summary`, `LedgerFilter`, `LedgerStore`.

One row per request (answer, failure, cache hit). A store keeps rows and adds them up; the
backends are `ledger_memory.MemoryLedgerStore` (the default) and
`ledger_sqlite.SQLiteLedgerStore` (a file several processes share). `costs.ledger.CostLedger`
is the view users read (`router.costs`).

    >>> store.append([LedgerEntry(time=time.time(), deployment="openai/gpt-4o-mini",
    ...                           provider="openai", model="gpt-4o-mini", cost=Decimal("0.0002"))])
    >>> store.aggregate(LedgerFilter(), "provider")["openai"].requests
    1
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "GROUPINGS",
    "NO_USER",
    "UNTAGGED",
    "LedgerEntry",
    "LedgerFilter",
    "LedgerStore",
    "Summary",
    "check_grouping",
    "day_of",
    "utc_epoch",
]

_ZERO = Decimal(0)
_DAY = 86_400
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


def utc_epoch(when: datetime | float) -> float:
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
