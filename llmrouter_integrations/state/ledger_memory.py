"""The default ledger store: rows in this process's memory, gone when it ends.

>>> ledger = CostLedger(MemoryLedgerStore(max_entries=10_000))
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence

from .ledger import (
    LedgerEntry,
    LedgerFilter,
    Summary,
    _group_keys,
    check_grouping,
)

__all__ = ["MemoryLedgerStore"]

_DAY = 86_400
# The memory store counts appended rows into its totals in batches of this many (and
# before every read): off the path of most requests, at most a few dozen rows at a time.
_CATCH_UP_EVERY = 32


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
