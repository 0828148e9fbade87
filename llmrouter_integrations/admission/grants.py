"""Capacity the waiting line promised but nobody took yet: grants, per deployment, until settled.

A `Grant` counts against its deployment from the moment the line hands it out until the
request settles it (or it lapses, if a caller never does), so the line does not promise the
same capacity twice between a wake-up and the real acquisition. `Claims` is that ledger;
its caller (`RequestQueue`) holds the lock.

    >>> claims = Claims()
    >>> grant = claims.claim("a", 500, now=0.0)
    >>> claims.pending(now=1.0)
    {'a': (1, 500)}
    >>> claims.release(grant)
    True
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CLAIM_TTL_S", "Claims", "Grant"]

# A grant nobody settled (a caller bug) stops counting against capacity after this long.
CLAIM_TTL_S = 5.0


@dataclass(eq=False, slots=True)
class Grant:
    """Capacity on `deployment` promised to one request until it is `settle`d.

    While unsettled it counts against the deployment, so the line does not promise the
    same capacity twice in the moment between the wake-up and the real acquisition.

        >>> grant = await queue.wait_for_capacity(request, ["a"], tokens=500)
        >>> permit = limits.try_acquire(grant.deployment, 500); queue.settle(grant)
    """

    deployment: str
    tokens: int
    created: float
    settled: bool = False


class Claims:
    """The unsettled grants of each deployment; not thread-safe (the queue's lock guards it).

    >>> claims = Claims(); grant = claims.claim("a", 500, now=0.0)
    >>> claims.lapse_in("a", now=1.0)
    4.0
    """

    __slots__ = ("_by_name",)

    def __init__(self) -> None:
        self._by_name: dict[str, list[Grant]] = {}

    def __bool__(self) -> bool:
        return bool(self._by_name)

    def claim(self, name: str, tokens: int, now: float) -> Grant:
        """Promise `tokens` on deployment `name` from `now`."""
        grant = Grant(deployment=name, tokens=tokens, created=now)
        self._by_name.setdefault(name, []).append(grant)
        return grant

    def release(self, grant: Grant) -> bool:
        """Stop counting `grant`; False when it was already settled."""
        if grant.settled:
            return False
        grant.settled = True
        claims = self._by_name.get(grant.deployment)
        if claims is not None:
            if len(claims) == 1 and claims[0] is grant:
                del self._by_name[grant.deployment]  # the usual case: the only claim
                return True
            claims[:] = [g for g in claims if g is not grant]
            if not claims:
                del self._by_name[grant.deployment]
        return True

    def pending(self, now: float) -> dict[str, tuple[int, int]]:
        """Capacity promised but not yet taken, per deployment: (requests, tokens)."""
        if not self._by_name:
            return {}
        pending: dict[str, tuple[int, int]] = {}
        for name, grants in list(self._by_name.items()):
            live = [g for g in grants if now - g.created < CLAIM_TTL_S]
            if live:
                pending[name] = (len(live), sum(g.tokens for g in live))
                grants[:] = live
            else:
                del self._by_name[name]  # lapsed claims go, so nothing grows unsettled
        return pending

    def lapse_in(self, name: str, now: float) -> float:
        """Seconds until the first of `name`'s claims lapses (0 with none)."""
        grants = self._by_name.get(name, [])
        return max(0.0, min((g.created + CLAIM_TTL_S - now for g in grants), default=0.0))
