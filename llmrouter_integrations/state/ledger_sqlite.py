"""A ledger store in a SQLite file: survives restarts, shared safely by several processes.

Rows are buffered in memory and written behind, in one short transaction per batch, by a
background thread (every `flush_interval` seconds, or sooner once `batch_size` rows wait),
so the request path only appends to a list. Every read writes the buffer first, so totals
always include the latest rows. WAL mode and a busy timeout let processes write at once.

    >>> store = SQLiteLedgerStore("costs.db")
    >>> ledger = CostLedger(store)            # or ledger_from_url("sqlite:///costs.db")
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import sqlite3
import threading
import weakref
from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from .ledger import NO_USER, UNTAGGED, LedgerEntry, LedgerFilter, Summary, check_grouping
from .sqlite_wal import use_wal

__all__ = ["SQLiteLedgerStore"]

log = logging.getLogger("llmrouter_integrations")

# Costs are stored as integer pico-dollars (USD x 10^12): exact for any per-token price with
# up to six decimals per million tokens, and summed exactly by SQLite (up to $9.2 million
# per query; beyond that a sum falls back to floating point).
_PICO = Decimal(10) ** 12
_SCHEMA = """
CREATE TABLE IF NOT EXISTS llm_requests (
    id INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    deployment TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cached_input_tokens INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens INTEGER NOT NULL DEFAULT 0,
    cost_pico INTEGER,
    latency_s REAL NOT NULL DEFAULT 0,
    user TEXT,
    tags TEXT,
    cached INTEGER NOT NULL DEFAULT 0,
    saved_pico INTEGER,
    error_type TEXT,
    request_id TEXT
);
CREATE INDEX IF NOT EXISTS llm_requests_time ON llm_requests (time);
"""
_COLUMNS = (
    "time, deployment, provider, model, input_tokens, output_tokens, cached_input_tokens, "
    "cache_write_tokens, reasoning_tokens, cost_pico, latency_s, user, tags, cached, saved_pico, "
    "error_type, request_id"
)
_INSERT = f"INSERT INTO llm_requests ({_COLUMNS}) VALUES ({', '.join('?' * 17)})"
_GROUP_SQL = {
    None: "'all'",
    "provider": "provider",
    "model": "model",
    "deployment": "deployment",
    "user": f"COALESCE(user, '{NO_USER}')",
    "day": "strftime('%Y-%m-%d', time, 'unixepoch')",
    "tag": f"COALESCE(tag.value, '{UNTAGGED}')",
}


def _to_pico(value: Decimal | None) -> int | None:
    if value is None:
        return None
    return int((value * _PICO).to_integral_value(ROUND_HALF_EVEN))


def _from_pico(value: int | float | None) -> Decimal | None:
    if value is None:
        return None
    return Decimal(value) / _PICO if isinstance(value, int) else Decimal(str(value)) / _PICO


def _row(entry: LedgerEntry) -> tuple[Any, ...]:
    return (
        entry.time,
        entry.deployment,
        entry.provider,
        entry.model,
        entry.input_tokens,
        entry.output_tokens,
        entry.cached_input_tokens,
        entry.cache_write_tokens,
        entry.reasoning_tokens,
        _to_pico(entry.cost),
        entry.latency_s,
        entry.user,
        _tags_json(entry.tags) if entry.tags else None,
        int(entry.cached),
        _to_pico(entry.saved),
        entry.error_type,
        entry.request_id,
    )


@functools.lru_cache(maxsize=1024)
def _tags_json(tags: tuple[str, ...]) -> str:
    # Requests mostly repeat a few tag sets; encoding them once keeps the writer thread light.
    return json.dumps(list(tags))


def _where(filters: LedgerFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if filters.since is not None:
        clauses.append("time >= ?")
        params.append(filters.since)
    if filters.until is not None:
        clauses.append("time < ?")
        params.append(filters.until)
    for name in ("user", "deployment", "provider", "model"):
        value = getattr(filters, name)
        if value is not None:
            clauses.append(f"{name} = ?")
            params.append(value)
    if filters.tag is not None:
        clauses.append("EXISTS (SELECT 1 FROM json_each(llm_requests.tags) WHERE value = ?)")
        params.append(filters.tag)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


class SQLiteLedgerStore:
    """Ledger rows in a SQLite file (table `llm_requests`), written behind in batches.

    Safe for several threads and processes writing the same file. A process that ends
    without `close()` still writes its buffer at interpreter exit; a hard kill loses at most
    the last `flush_interval` seconds of rows.

    >>> store = SQLiteLedgerStore("costs.db", flush_interval=0.1, batch_size=512)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        flush_interval: float = 0.1,
        batch_size: int = 512,
        busy_timeout: float = 30.0,
    ) -> None:
        self.path = Path(path)
        self.flush_interval = flush_interval
        self.batch_size = max(1, batch_size)
        self.busy_timeout = busy_timeout
        self._pending: list[LedgerEntry] = []
        self._pending_lock = threading.Lock()
        self._db_lock = threading.RLock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._db: sqlite3.Connection | None = self._connect()  # fail fast on a bad path
        _OPEN_STORES.add(self)

    def __repr__(self) -> str:
        return f"SQLiteLedgerStore({str(self.path)!r})"

    def _connect(self) -> sqlite3.Connection:
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        use_wal(db, self.busy_timeout)
        # With WAL, NORMAL never corrupts the file; a power cut may lose the last batch.
        db.execute("PRAGMA synchronous = NORMAL")
        db.executescript(_SCHEMA)
        return db

    def _connection(self) -> sqlite3.Connection:
        """The open connection (reopened after `close()`); call with `_db_lock` held."""
        if self._db is None:
            self._db = self._connect()
        return self._db

    def _check_process(self) -> None:
        if self._pid != os.getpid():
            # A forked child inherits neither the writer thread nor a usable connection,
            # and the rows buffered before the fork are the parent's to write.
            self._pid = os.getpid()
            self._pending_lock = threading.Lock()
            self._db_lock = threading.RLock()
            self._wake = threading.Event()
            self._pending = []
            self._thread = None
            self._db = None

    # -- writing ------------------------------------------------------------------------

    def append(self, entries: Sequence[LedgerEntry]) -> None:
        self._check_process()
        with self._pending_lock:
            self._pending.extend(entries)
            full = len(self._pending) >= self.batch_size
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._write_behind,
                    name=f"llmrouter-ledger-{self.path.name}",
                    daemon=True,
                )
                self._thread.start()
                return
        if full:
            self._wake.set()

    def _write_behind(self) -> None:
        me = threading.current_thread()
        while self._thread is me:  # close() detaches the thread to stop it
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                self.flush()
            except sqlite3.Error:
                # Kept in the buffer and retried on the next tick; never dropped.
                log.exception("could not write the cost ledger to %s; will retry", self.path)

    def flush(self) -> None:
        """Write every buffered row now, in one transaction."""
        self._check_process()
        with self._db_lock:
            with self._pending_lock:
                batch, self._pending = self._pending, []
            if not batch:
                return
            db = self._connection()
            try:
                db.execute("BEGIN IMMEDIATE")
                db.executemany(_INSERT, [_row(entry) for entry in batch])
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                with self._pending_lock:  # put them back, in order, ahead of newer rows
                    self._pending[:0] = batch
                raise

    def close(self) -> None:
        """Write the buffer, stop the writer thread and close the file.

        The store stays usable: reading (or appending) afterwards reopens the file, so
        `router.costs` still answers after the router is closed.
        """
        self._check_process()
        with self._pending_lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._wake.set()
            if thread is not threading.current_thread():
                thread.join()
        with self._db_lock:
            try:
                self.flush()
            finally:
                if self._db is not None:
                    self._db.close()
                    self._db = None

    # -- reading ------------------------------------------------------------------------

    def query(self, filters: LedgerFilter, limit: int | None = None) -> list[LedgerEntry]:
        where, params = _where(filters)
        if limit is None:
            sql = f"SELECT {_COLUMNS} FROM llm_requests{where} ORDER BY time, id"
        else:  # the newest `limit` rows, still oldest first
            newest = f"SELECT * FROM llm_requests{where} ORDER BY time DESC, id DESC LIMIT ?"
            sql = f"SELECT {_COLUMNS} FROM ({newest}) ORDER BY time, id"
            params.append(limit)
        rows = self._read(sql, params)
        return [_entry(row) for row in rows]

    def aggregate(self, filters: LedgerFilter, by: str | None = None) -> dict[str, Summary]:
        check_grouping(by)
        where, params = _where(filters)
        source = "llm_requests"
        if by == "tag":
            source += " LEFT JOIN json_each(llm_requests.tags) AS tag"
        group = _GROUP_SQL[by]

        def sql(sum_money: str) -> str:
            return (
                f"SELECT {group}, COUNT(*), {sum_money}(cost_pico), SUM(input_tokens), "
                "SUM(output_tokens), SUM(cached_input_tokens), SUM(cache_write_tokens), "
                f"SUM(reasoning_tokens), SUM(cached), {sum_money}(saved_pico), "
                "SUM(error_type IS NOT NULL), SUM(cost_pico IS NULL), TOTAL(latency_s), "
                f"MIN(time), MAX(time) FROM {source}{where} GROUP BY 1"
            )

        try:
            rows = self._read(sql("SUM"), params)
        except sqlite3.OperationalError as error:
            if "overflow" not in str(error):
                raise
            rows = self._read(sql("TOTAL"), params)
        groups = {str(row[0]): _summary(row[1:]) for row in rows if row[1]}
        if by is None and not groups:
            groups["all"] = Summary()
        return groups

    def _read(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        with self._db_lock:
            self.flush()
            return self._connection().execute(sql, params).fetchall()


def _summary(row: Sequence[Any]) -> Summary:
    return Summary(
        requests=row[0],
        cost=_from_pico(row[1]) or Decimal(0),
        input_tokens=row[2] or 0,
        output_tokens=row[3] or 0,
        cached_input_tokens=row[4] or 0,
        cache_write_tokens=row[5] or 0,
        reasoning_tokens=row[6] or 0,
        cache_hits=row[7] or 0,
        saved=_from_pico(row[8]) or Decimal(0),
        failed_requests=row[9] or 0,
        unknown_cost_requests=row[10] or 0,
        latency_s=row[11] or 0.0,
        first_time=row[12],
        last_time=row[13],
    )


def _entry(row: Sequence[Any]) -> LedgerEntry:
    return LedgerEntry(
        time=row[0],
        deployment=row[1],
        provider=row[2],
        model=row[3],
        input_tokens=row[4],
        output_tokens=row[5],
        cached_input_tokens=row[6],
        cache_write_tokens=row[7],
        reasoning_tokens=row[8],
        cost=_from_pico(row[9]),
        latency_s=row[10],
        user=row[11],
        tags=tuple(json.loads(row[12])) if row[12] else (),
        cached=bool(row[13]),
        saved=_from_pico(row[14]),
        error_type=row[15],
        request_id=row[16],
    )


# Stores still open when the interpreter exits write their buffers then.
_OPEN_STORES: weakref.WeakSet[SQLiteLedgerStore] = weakref.WeakSet()


@atexit.register
def _close_open_stores() -> None:
    for store in list(_OPEN_STORES):
        try:
            store.close()  # a store with nothing buffered and no thread just closes its file
        except Exception:  # exiting anyway; say what was lost
            log.exception("could not write the cost ledger to %s at exit", store.path)
