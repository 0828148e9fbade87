"""Shared state in one SQLite file (`SQLiteState`): every process of one machine, no server.

Each operation is one `BEGIN IMMEDIATE` transaction (the write lock is taken first, so a
check and the write it decides are never split by another process). WAL mode lets
readers run beside the writer; `busy_timeout` bounds every wait for the lock.

    >>> state = SQLiteState("/var/lib/app/state.db", timeout_s=0.25)
"""

from __future__ import annotations

import math
import os
import random
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from .shared import (
    SETTLED_TTL_S,
    Account,
    AccountState,
    Admission,
    CallDone,
    CallPlan,
    CallVerdict,
    HoldAsk,
    RateAsk,
    RateDone,
    Refusal,
    Settled,
    StoreUnavailable,
)
from .shared_sqlite_rates import acquire_send, release_send
from .sqlite_wal import use_wal

__all__ = ["SQLiteState"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS budget_accounts (
    key TEXT PRIMARY KEY, spent INTEGER NOT NULL, alerted INTEGER NOT NULL, expires REAL
);
CREATE TABLE IF NOT EXISTS budget_holds (
    key TEXT NOT NULL, id TEXT NOT NULL, amount INTEGER NOT NULL, expires REAL NOT NULL,
    PRIMARY KEY (key, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS budget_settled (id TEXT PRIMARY KEY, expires REAL NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rate_spends (
    name TEXT NOT NULL, id TEXT NOT NULL, t REAL NOT NULL, requests INTEGER NOT NULL,
    tokens INTEGER NOT NULL, PRIMARY KEY (name, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rate_spends_t ON rate_spends (name, t);
CREATE TABLE IF NOT EXISTS rate_totals (
    name TEXT PRIMARY KEY, requests INTEGER NOT NULL, tokens INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rate_permits (
    name TEXT NOT NULL, id TEXT NOT NULL, expires REAL NOT NULL, PRIMARY KEY (name, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rate_pauses (name TEXT PRIMARY KEY, until REAL NOT NULL);
CREATE TABLE IF NOT EXISTS rate_views (name TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rate_sent (
    name TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL, token_mark INTEGER NOT NULL,
    t REAL NOT NULL, PRIMARY KEY (name, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rate_flight (
    name TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL, before INTEGER NOT NULL,
    t REAL NOT NULL, PRIMARY KEY (name, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rate_flight_seq ON rate_flight (name, seq);
CREATE TABLE IF NOT EXISTS circuits (
    name TEXT PRIMARY KEY, until REAL NOT NULL, probe_until REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS circuit_failures (name TEXT PRIMARY KEY, count INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS members (id TEXT PRIMARY KEY, expires REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS locks (key TEXT PRIMARY KEY, owner TEXT NOT NULL, expires REAL NOT NULL);
"""


class SQLiteState:
    """All four kinds of shared state in one SQLite file (see `SharedState`).

    Safe from any thread and across `fork` (one connection per thread and process).
    A call that cannot get the write lock within `timeout_s` raises `StoreUnavailable`.

    >>> state = SQLiteState("state.db")
    """

    backend = "sqlite"

    def __init__(self, path: str, *, timeout_s: float = 0.25, lease_s: float = 300.0) -> None:
        self.path = path
        self.lease_s = lease_s
        self.timeout_s = timeout_s
        self._local = threading.local()
        self._writer, self._writer_pid = threading.Lock(), os.getpid()
        self._initialised = False
        self._run(lambda db: db.executescript(_SCHEMA), write=False)
        self._initialised = True

    def __repr__(self) -> str:
        return f"SQLiteState({self.path!r})"

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None or self._local.pid != os.getpid():
            db = sqlite3.connect(
                self.path, timeout=self.timeout_s, isolation_level=None, check_same_thread=False
            )
            use_wal(db, self.timeout_s)
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db, self._local.pid = db, os.getpid()
        return db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        # This process's own writers (the loop, the settler's thread) queue here, woken as
        # soon as the file is free, rather than in SQLite's busy handler, which sleeps 1 ms
        # and more between tries. A forked child starts with a fresh lock.
        if self._writer_pid != os.getpid():
            self._writer, self._writer_pid = threading.Lock(), os.getpid()
        writer = self._writer
        if not writer.acquire(timeout=self.timeout_s):
            raise sqlite3.OperationalError("database is locked (by this process's other writer)")
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            writer.release()

    def _run(self, operation: Callable[[sqlite3.Connection], T], *, write: bool = True) -> T:
        try:
            if not write:
                return operation(self._db())
            with self._transaction() as db:
                return operation(db)
        except sqlite3.Error as error:
            raise StoreUnavailable(f"SQLite state {self.path!r}: {error}") from None

    # -- budgets --------------------------------------------------------------------------------
    @staticmethod
    def _account(db: sqlite3.Connection, spec: Account, now: float) -> tuple[int, int]:
        """(spent, reserved) of an account, created if new; expired holds dropped."""
        row = db.execute("SELECT spent FROM budget_accounts WHERE key = ?", (spec.key,)).fetchone()
        if row is None:
            crossed = sum(1 for level in spec.alerts if spec.initial >= level)
            expires = None if math.isinf(spec.expires_at) else spec.expires_at
            db.execute(
                "INSERT INTO budget_accounts VALUES (?, ?, ?, ?)",
                (spec.key, spec.initial, crossed, expires),
            )
            spent = spec.initial
        else:
            spent = row[0]
        db.execute("DELETE FROM budget_holds WHERE key = ? AND expires <= ?", (spec.key, now))
        reserved = db.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM budget_holds WHERE key = ?", (spec.key,)
        ).fetchone()[0]
        return spent, reserved

    def reserve(
        self, hold_id: str, accounts: Sequence[Account], amount: int, now: float, lease_s: float
    ) -> Refusal | None:
        ask = HoldAsk(hold_id, tuple(accounts), amount, lease_s)
        return self._run(lambda db: self._reserve(db, ask, now))

    def _reserve(self, db: sqlite3.Connection, ask: HoldAsk, now: float) -> Refusal | None:
        for index, spec in enumerate(ask.accounts):
            spent, reserved = self._account(db, spec, now)
            if ask.amount and spent + reserved + ask.amount > spec.limit:
                return Refusal(index, spent, reserved)
        db.executemany(
            "INSERT OR REPLACE INTO budget_holds VALUES (?, ?, ?, ?)",
            [(spec.key, ask.hold_id, ask.amount, now + ask.lease_s) for spec in ask.accounts],
        )
        return None

    def settle(self, hold_id: str, accounts: Sequence[Account], actual: int, now: float) -> Settled:
        return self._run(lambda db: self._settle(db, hold_id, accounts, actual, now))

    def _settle(
        self,
        db: sqlite3.Connection,
        hold_id: str,
        accounts: Sequence[Account],
        actual: int,
        now: float,
    ) -> Settled:
        crossed: list[tuple[int, int]] = []
        spends: list[int] = []
        fresh = (
            db.execute(
                "INSERT OR IGNORE INTO budget_settled VALUES (?, ?)",
                (hold_id, now + SETTLED_TTL_S),
            ).rowcount
            == 1
        )
        for index, spec in enumerate(accounts):
            self._account(db, spec, now)
            db.execute("DELETE FROM budget_holds WHERE key = ? AND id = ?", (spec.key, hold_id))
            if fresh:
                db.execute(
                    "UPDATE budget_accounts SET spent = spent + ? WHERE key = ?",
                    (actual, spec.key),
                )
            spent, alerted = db.execute(
                "SELECT spent, alerted FROM budget_accounts WHERE key = ?", (spec.key,)
            ).fetchone()
            spends.append(spent)
            reached = sum(1 for level in spec.alerts if spent >= level)
            if reached > alerted:
                crossed += [(index, a) for a in range(alerted, reached)]
                db.execute(
                    "UPDATE budget_accounts SET alerted = ? WHERE key = ?", (reached, spec.key)
                )
        if random.random() < 0.01:  # now and then, forget accounts of periods long over
            db.execute("DELETE FROM budget_accounts WHERE expires < ?", (now,))
            db.execute("DELETE FROM budget_settled WHERE expires < ?", (now,))
        return Settled(spends, crossed)

    def release(self, hold_id: str, accounts: Sequence[Account], now: float) -> None:
        self._run(lambda db: self._release(db, hold_id, accounts))

    @staticmethod
    def _release(db: sqlite3.Connection, hold_id: str, accounts: Sequence[Account]) -> None:
        db.executemany(
            "DELETE FROM budget_holds WHERE key = ? AND id = ?",
            [(spec.key, hold_id) for spec in accounts],
        )

    def read(self, accounts: Sequence[Account], now: float) -> list[AccountState]:
        def run(db: sqlite3.Connection) -> list[AccountState]:
            return [AccountState(*self._account(db, spec, now)) for spec in accounts]

        return self._run(run)

    def join(self, member: str, now: float, lease_s: float) -> int:
        def run(db: sqlite3.Connection) -> int:
            db.execute("DELETE FROM members WHERE expires <= ?", (now,))
            db.execute("INSERT OR REPLACE INTO members VALUES (?, ?)", (member, now + lease_s))
            return int(db.execute("SELECT COUNT(*) FROM members").fetchone()[0])

        return self._run(run)

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
        return self._run(lambda db: acquire_send(db, ask, now))

    def release_rate(self, name: str, permit_id: str, token_delta: int, now: float) -> None:
        self._run(lambda db: release_send(db, RateDone(name, permit_id, token_delta), now))

    def pause_rate(self, name: str, until: float) -> None:
        self._run(
            lambda db: db.execute(
                "INSERT INTO rate_pauses VALUES (?, ?) ON CONFLICT (name) "
                "DO UPDATE SET until = MAX(until, excluded.until)",
                (name, until),
            )
        )

    # -- circuits -------------------------------------------------------------------------------
    @staticmethod
    def _circuit(db: sqlite3.Connection, name: str, now: float) -> Admission:
        """The verdict, without claiming the probe."""
        row = db.execute(
            "SELECT until, probe_until FROM circuits WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            return Admission("closed", failures=SQLiteState._failures(db, name))
        until, probe_until = row
        if now < until:
            return Admission("open", until)
        if now < probe_until:
            return Admission("busy")
        return Admission("probe")

    @staticmethod
    def _claim_probe(db: sqlite3.Connection, name: str, until: float) -> None:
        db.execute("UPDATE circuits SET probe_until = ? WHERE name = ?", (until, name))

    def admit_circuit(self, name: str, now: float, probe_lease_s: float) -> Admission:
        def run(db: sqlite3.Connection) -> Admission:
            verdict = self._circuit(db, name, now)
            if verdict.state == "probe":
                self._claim_probe(db, name, now + probe_lease_s)
            return verdict

        # Read first without the write lock: a closed circuit (the usual case) costs one SELECT.
        opened, failures = self._run(
            lambda db: db.execute(
                "SELECT (SELECT 1 FROM circuits WHERE name = ?), "
                "(SELECT count FROM circuit_failures WHERE name = ?)",
                (name, name),
            ).fetchone(),
            write=False,
        )
        return Admission("closed", failures=failures or 0) if opened is None else self._run(run)

    @staticmethod
    def _failures(db: sqlite3.Connection, name: str) -> int:
        row = db.execute("SELECT count FROM circuit_failures WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def open_circuit(self, name: str, until: float) -> None:
        def run(db: sqlite3.Connection) -> None:
            db.execute("INSERT OR REPLACE INTO circuits VALUES (?, ?, 0)", (name, until))
            db.execute("DELETE FROM circuit_failures WHERE name = ?", (name,))

        self._run(run)

    def close_circuit(self, name: str) -> None:
        def run(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM circuits WHERE name = ?", (name,))
            db.execute("DELETE FROM circuit_failures WHERE name = ?", (name,))

        self._run(run)

    def count_failure(self, name: str) -> int:
        def run(db: sqlite3.Connection) -> int:
            db.execute(
                "INSERT INTO circuit_failures VALUES (?, 1) ON CONFLICT (name) "
                "DO UPDATE SET count = count + 1",
                (name,),
            )
            return self._failures(db, name)

        return self._run(run)

    def reset_failures(self, name: str) -> None:
        self._run(lambda db: db.execute("DELETE FROM circuit_failures WHERE name = ?", (name,)))

    # -- one call -------------------------------------------------------------------------------
    def admit_call(self, plan: CallPlan, now: float) -> CallVerdict:
        return self._run(lambda db: self._admit(db, plan, now))

    def _admit(self, db: sqlite3.Connection, plan: CallPlan, now: float) -> CallVerdict:
        circuit = None if plan.circuit is None else self._circuit(db, plan.circuit, now)
        if circuit is not None and circuit.state in ("open", "busy"):
            return CallVerdict(circuit)
        if plan.hold is not None:
            refusal = self._reserve(db, plan.hold, now)
            if refusal is not None:
                return CallVerdict(circuit, refusal)
        wait = None if plan.rate is None else acquire_send(db, plan.rate, now)
        if plan.circuit is not None and circuit is not None and circuit.state == "probe":
            self._claim_probe(db, plan.circuit, now + plan.probe_lease_s)
        return CallVerdict(circuit, None, wait)

    def finish_and_admit(
        self, calls: Sequence[CallDone], plan: CallPlan, now: float
    ) -> tuple[list[Settled | None], CallVerdict]:
        def run(db: sqlite3.Connection) -> tuple[list[Settled | None], CallVerdict]:
            settled = [self._finish(db, call.hold, call.rate, call.now) for call in calls]
            return settled, self._admit(db, plan, now)

        return self._run(run)

    def finish_call(
        self,
        hold: tuple[str, Sequence[Account], int | None] | None,
        rate: RateDone | None,
        now: float,
    ) -> Settled | None:
        return self._run(lambda db: self._finish(db, hold, rate, now))

    def finish_calls(self, calls: Sequence[CallDone]) -> list[Settled | None]:
        def run(db: sqlite3.Connection) -> list[Settled | None]:
            return [self._finish(db, call.hold, call.rate, call.now) for call in calls]

        return self._run(run)

    def _finish(
        self,
        db: sqlite3.Connection,
        hold: tuple[str, Sequence[Account], int | None] | None,
        rate: RateDone | None,
        now: float,
    ) -> Settled | None:
        if rate is not None:
            release_send(db, rate, now)
        if hold is None:
            return None
        hold_id, accounts, actual = hold
        if actual is None:
            self._release(db, hold_id, accounts)
            return None
        return self._settle(db, hold_id, accounts, actual, now)

    # -- locks ----------------------------------------------------------------------------------
    def acquire_lock(self, key: str, owner: str, now: float, lease_s: float) -> bool:
        def run(db: sqlite3.Connection) -> bool:
            row = db.execute("SELECT owner, expires FROM locks WHERE key = ?", (key,)).fetchone()
            if row is not None and row[1] > now and row[0] != owner:
                return False
            db.execute("INSERT OR REPLACE INTO locks VALUES (?, ?, ?)", (key, owner, now + lease_s))
            return True

        return self._run(run)

    def lock_held(self, key: str, now: float) -> bool:
        return self._run(
            lambda db: (
                db.execute(
                    "SELECT 1 FROM locks WHERE key = ? AND expires > ?", (key, now)
                ).fetchone()
                is not None
            ),
            write=False,
        )

    def release_lock(self, key: str, owner: str) -> None:
        self._run(
            lambda db: db.execute("DELETE FROM locks WHERE key = ? AND owner = ?", (key, owner))
        )

    def close(self) -> None:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is not None and self._local.pid == os.getpid():
            db.close()
        self._local = threading.local()
