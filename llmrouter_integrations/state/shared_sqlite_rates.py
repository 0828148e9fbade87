"""Rate windows and the provider's headroom in SQLite: the rate half of `SQLiteState`.

Functions on an open transaction (`SQLiteState` runs them inside `BEGIN IMMEDIATE`, alone or
as part of a call's one trip): count a send in the one-minute windows, take a concurrency
slot, draw the send from what the provider's headers said is left (`state/headroom.py`),
and, after the call, free the slot, correct the tokens and record the new headroom.

    >>> wait = acquire_send(db, RateAsk("openai/gpt-4o", "p1", 500, None, None, 1200, 300.0), now)
    >>> release_send(db, RateDone("openai/gpt-4o", "p1", -200), now)
"""

from __future__ import annotations

import math
import random
import sqlite3

from .headroom import UNSEEN_S, HeadroomRecord
from .shared import WINDOW_S, RateAsk, RateDone, window_wait

__all__ = ["acquire_send", "load_view", "release_send"]


def acquire_send(db: sqlite3.Connection, ask: RateAsk, now: float) -> float:
    name, permit_id, tokens, lease_s = ask.name, ask.permit_id, ask.tokens, ask.lease_s
    rpm, tpm, concurrency = ask.rpm, ask.tpm, ask.concurrency
    # Running totals of the window, so a call costs the same however busy the
    # minute was; the spends themselves are read only to say how long to wait.
    since = now - WINDOW_S
    gone, requests_gone, tokens_gone = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(requests), 0), COALESCE(SUM(tokens), 0) "
        "FROM rate_spends WHERE name = ? AND t <= ?",
        (name, since),
    ).fetchone()
    if gone:
        db.execute("DELETE FROM rate_spends WHERE name = ? AND t <= ?", (name, since))
        db.execute(
            "UPDATE rate_totals SET requests = requests - ?, tokens = tokens - ? WHERE name = ?",
            (requests_gone, tokens_gone, name),
        )
    if concurrency is not None:
        db.execute("DELETE FROM rate_permits WHERE name = ? AND expires <= ?", (name, now))
        (busy,) = db.execute("SELECT COUNT(*) FROM rate_permits WHERE name = ?", (name,)).fetchone()
        if busy >= concurrency:
            return math.inf
    row = db.execute("SELECT until FROM rate_pauses WHERE name = ?", (name,)).fetchone()
    wait = max(0.0, row[0] - now) if row else 0.0
    view = load_view(db, name)
    wait = max(wait, view.wait(now, tokens))
    counted = rpm is not None or tpm is not None
    if counted:
        totals = db.execute(
            "SELECT requests, tokens FROM rate_totals WHERE name = ?", (name,)
        ).fetchone()
        used_requests, used_tokens = totals if totals else (0, 0)
        over = (rpm is not None and used_requests + 1 > rpm) or (
            tpm is not None and tokens > 0 and used_tokens + tokens > tpm
        )
        if over:
            spends = db.execute(
                "SELECT t, requests, tokens FROM rate_spends WHERE name = ? ORDER BY t",
                (name,),
            ).fetchall()
            wait = max(wait, window_wait(spends, rpm, tpm, tokens, now))
    if wait > 0.0:
        return wait
    if counted:
        charged = tokens if tpm is not None else 0
        db.execute(
            "INSERT OR REPLACE INTO rate_spends VALUES (?, ?, ?, 1, ?)",
            (name, permit_id, now, charged),
        )
        db.execute(
            "INSERT INTO rate_totals VALUES (?, 1, ?) ON CONFLICT (name) DO UPDATE "
            "SET requests = requests + 1, tokens = tokens + excluded.tokens",
            (name, charged),
        )
    if concurrency is not None:
        db.execute(
            "INSERT OR REPLACE INTO rate_permits VALUES (?, ?, ?)",
            (name, permit_id, now + lease_s),
        )
    seq, token_mark = view.take(tokens)
    db.execute("INSERT OR REPLACE INTO rate_views VALUES (?, ?)", (name, view.dumps()))
    db.execute(
        "INSERT OR REPLACE INTO rate_sent VALUES (?, ?, ?, ?, ?)",
        (name, permit_id, seq, token_mark, now),
    )
    db.execute(
        "INSERT OR REPLACE INTO rate_flight VALUES (?, ?, ?, ?, ?)",
        (name, permit_id, seq, token_mark - tokens, now),
    )
    if random.random() < 0.01:  # now and then, forget sends no header will answer
        db.execute("DELETE FROM rate_sent WHERE t < ?", (now - 2 * WINDOW_S,))
        db.execute("DELETE FROM rate_flight WHERE t <= ?", (now - UNSEEN_S,))
    return 0.0


def load_view(db: sqlite3.Connection, name: str) -> HeadroomRecord:
    row = db.execute("SELECT record FROM rate_views WHERE name = ?", (name,)).fetchone()
    return HeadroomRecord.loads(row[0] if row else None)


def release_send(db: sqlite3.Connection, done: RateDone, now: float) -> None:
    name, permit_id, token_delta = done.name, done.permit_id, done.token_delta
    # Answered: no longer in flight (its own numbers stay in rate_sent, pruned with age).
    own = None
    if done.headroom is not None:
        own = db.execute(
            "SELECT before FROM rate_flight WHERE name = ? AND id = ?", (name, permit_id)
        ).fetchone()
    db.execute("DELETE FROM rate_flight WHERE name = ? AND id = ?", (name, permit_id))
    if done.headroom is not None:
        sent = db.execute(
            "SELECT seq, token_mark FROM rate_sent WHERE name = ? AND id = ?",
            (name, permit_id),
        ).fetchone()
        if sent is not None:
            behind = (0, 0)
            low = _lowest_in_flight(db, name, now)
            if own is not None and low is not None and low[0] < sent[0]:
                behind = (sent[0] - low[0], own[0] - low[1])
            view = load_view(db, name)
            view.note((sent[0], sent[1]), done.headroom, now, behind)
            db.execute("INSERT OR REPLACE INTO rate_views VALUES (?, ?)", (name, view.dumps()))
    db.execute("DELETE FROM rate_permits WHERE name = ? AND id = ?", (name, permit_id))
    if not token_delta:
        return
    row = db.execute(
        "SELECT tokens FROM rate_spends WHERE name = ? AND id = ?", (name, permit_id)
    ).fetchone()
    if row is not None:
        new = max(0, row[0] + token_delta)
        db.execute(
            "UPDATE rate_spends SET tokens = ? WHERE name = ? AND id = ?",
            (new, name, permit_id),
        )
        db.execute(
            "UPDATE rate_totals SET tokens = tokens + ? WHERE name = ?",
            (new - row[0], name),
        )


def _lowest_in_flight(db: sqlite3.Connection, name: str, now: float) -> tuple[int, int] | None:
    """The lowest-numbered send still in flight and unseen (number, tokens sent before it);
    sends admitted `UNSEEN_S` ago or more are dropped on the way (each once)."""
    while True:
        row = db.execute(
            "SELECT seq, before, t, id FROM rate_flight WHERE name = ? ORDER BY seq LIMIT 1",
            (name,),
        ).fetchone()
        if row is None:
            return None
        if row[2] > now - UNSEEN_S:
            return row[0], row[1]
        db.execute("DELETE FROM rate_flight WHERE name = ? AND id = ?", (name, row[3]))
