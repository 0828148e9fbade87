"""The fleet's view of a provider's rate-limit headers, kept in the shared store.

A response's `x-ratelimit-remaining-*` / `anthropic-ratelimit-*-remaining` headers say how
many requests and tokens the provider will still take until each limit resets. With
`state=`, that view is the fleet's: the store numbers every send to a deployment, a
header report names the send it answers (sends the store counted after it were not yet
seen by the provider, so they are taken off), and every send draws one request and its
tokens from what is left, atomically, so N processes together send no more than the
provider said remains. When a reset passes without news, the full limit is assumed back
until the next reset (estimated from the longest reset reported), as the per-process
view does.

Sends do not reach the provider in the order the store numbered them: a process may stall
between its admission and its request. So a report also takes off every send numbered
before it that is still in flight (admitted, unanswered, admitted less than `UNSEEN_S`
ago): the provider may not have counted them either. The caller finds the lowest such send
(`behind`); without it the fleet would overestimate what is left by those sends.

This module is the arithmetic on one deployment's record, shared by the memory and
SQLite stores; the Redis store does the same in Lua (state/shared_redis_call.py).

    >>> view = HeadroomRecord()
    >>> view.wait(now=0.0, tokens=100)                      # nothing known: no wait
    0.0
    >>> seq = view.take(tokens=100)
    >>> view.note(seq, Headroom(requests_left=0, requests_reset_s=20.0), now=1.0)
    >>> view.wait(now=2.0, tokens=100)
    19.0
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .shared import WINDOW_S, Headroom

__all__ = ["UNSEEN_S", "HeadroomRecord", "Limit"]

# How long after its admission a send may still not have reached the provider (so may be
# uncounted in another send's report); older sends in flight were counted long ago.
UNSEEN_S = WINDOW_S / 6


@dataclass(slots=True)
class Limit:
    """One limit (requests or tokens) as the provider last reported it, kept current."""

    limit: int | None = None
    left: int | None = None
    reset_at: float | None = None
    hint: float = 0.0  # the longest reset ever reported: when the next one comes

    def roll(self, now: float) -> None:
        if self.reset_at is None or now < self.reset_at:
            return
        if self.limit is None:
            self.left = self.reset_at = None
        else:
            self.left = self.limit
            self.reset_at = now + (self.hint or WINDOW_S)

    def wait(self, now: float, need: int) -> float:
        self.roll(now)
        if self.left is None or self.left >= need or self.reset_at is None:
            return 0.0
        if self.limit is not None and need > self.limit:
            return 0.0  # larger than the whole limit: the provider judges it
        return max(0.0, self.reset_at - now)

    def note(
        self, now: float, limit: int | None, left: int | None, reset_s: float | None, since: int
    ) -> None:
        if limit is not None:
            self.limit = limit
        if reset_s is not None:
            self.hint = max(self.hint, reset_s)
        if left is None:
            return
        self.left = left - since
        if reset_s is not None:
            self.reset_at = now + reset_s
        elif self.reset_at is None or self.reset_at <= now:
            self.reset_at = now + (self.hint or WINDOW_S)


@dataclass(slots=True)
class HeadroomRecord:
    """One deployment's sends and what its provider said is left (see the module docstring)."""

    sends: int = 0
    tokens_sent: int = 0
    mark: int = 0  # the newest send whose headers were applied
    requests: Limit | None = None
    tokens: Limit | None = None

    def wait(self, now: float, tokens: int) -> float:
        """Seconds until one more send of `tokens` fits what the provider said is left."""
        wait = 0.0
        if self.requests is not None:
            wait = self.requests.wait(now, 1)
        if self.tokens is not None and tokens > 0:
            wait = max(wait, self.tokens.wait(now, tokens))
        return wait

    def take(self, tokens: int) -> tuple[int, int]:
        """Count one send; returns its (send number, tokens sent up to it) for `note`."""
        self.sends += 1
        self.tokens_sent += tokens
        if self.requests is not None and self.requests.left is not None:
            self.requests.left -= 1
        if self.tokens is not None and self.tokens.left is not None:
            self.tokens.left -= tokens
        return self.sends, self.tokens_sent

    def note(
        self,
        sent: tuple[int, int],
        headroom: Headroom,
        now: float,
        behind: tuple[int, int] = (0, 0),
    ) -> None:
        """Apply the headers of the response to send `sent`; older news than applied is dropped.

        `behind`: the sends (count, tokens) from the lowest-numbered one still in flight up to
        `sent`, which the provider may not have counted yet (see the module docstring)."""
        seq, token_mark = sent
        if seq < self.mark:
            return
        self.mark = seq
        if self.requests is None:
            self.requests = Limit()
        if self.tokens is None:
            self.tokens = Limit()
        self.requests.note(
            now,
            headroom.requests_limit,
            headroom.requests_left,
            headroom.requests_reset_s,
            self.sends - seq + behind[0],
        )
        self.tokens.note(
            now,
            headroom.tokens_limit,
            headroom.tokens_left,
            headroom.tokens_reset_s,
            self.tokens_sent - token_mark + behind[1],
        )

    def dumps(self) -> str:
        """The record as JSON text (how the SQLite store keeps it): a flat list, no keys."""
        flat: list[object] = [self.sends, self.tokens_sent, self.mark]
        for limit in (self.requests, self.tokens):
            flat += (
                [None] * 4
                if limit is None
                else [limit.limit, limit.left, limit.reset_at, limit.hint]
            )
        return json.dumps(flat, separators=(",", ":"))

    @classmethod
    def loads(cls, text: str | None) -> HeadroomRecord:
        """A record back from `dumps` (a fresh one for None)."""
        if not text:
            return cls()
        flat = json.loads(text)
        limits = [None if flat[at + 3] is None else Limit(*flat[at : at + 4]) for at in (3, 7)]
        return cls(flat[0], flat[1], flat[2], limits[0], limits[1])
