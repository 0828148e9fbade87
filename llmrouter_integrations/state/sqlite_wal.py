"""Switching an SQLite file to WAL when many processes open the same new file at once."""

from __future__ import annotations

import random
import sqlite3
import time

__all__ = ["use_wal"]


def use_wal(db: sqlite3.Connection, timeout_s: float) -> None:
    """Put `db`'s file in WAL mode, waiting up to `timeout_s` for other processes doing it too.

    The switch reads the file header under a read lock, then asks for the write lock while
    still holding the read lock. SQLite refuses that at once with "database is locked" and
    does not call the busy handler (two connections doing it would wait for each other
    forever), so `busy_timeout` does not cover it: eight gunicorn workers opening one new
    file together would see some of them fail. A file already in WAL mode takes no write
    lock, so the loop only ever turns while a new file is being set up.

    >>> use_wal(sqlite3.connect("state.db"), timeout_s=0.25)
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            busy = error.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() >= deadline:
                raise
        # The other process holds the lock for the few writes of its own switch.
        time.sleep(random.uniform(0.0005, 0.003))
