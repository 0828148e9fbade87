"""What the per-call scripts are sent (`CallScripts`): their KEYS and ARGV, packed, and
their replies read back.

The scripts are in `shared_redis_call` (what each KEY and ARGV is). What repeats every call
(a deployment's keys, an account set's keys and limits) is encoded once and kept; only the
time, the ids and the amounts are encoded per call (`redis_wire.Encoded`).

    >>> scripts = CallScripts(client)
    >>> verdict = scripts.admit(state, CallPlan(circuit="a", rate=ask), now=time.time())
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

from .redis_wire import Encoded, Item, ScriptWire
from .shared import (
    SETTLED_TTL_S,
    WINDOW_S,
    Account,
    Admission,
    CallDone,
    CallPlan,
    CallVerdict,
    RateDone,
    Refusal,
    Settled,
)
from .shared_redis_call import _ADMIT_CALL, _FINISH_CALL

__all__ = ["CallScripts", "parse_settled"]

_SETTLED_TTL_MS = int(SETTLED_TTL_S * 1000)


def _num(value: float) -> str:
    return repr(float(value))


def _said(value: float | None) -> str:
    return "" if value is None else repr(value)


def _limit(value: int | None) -> int:
    return -1 if value is None else value


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _account_args(accounts: Sequence[Account]) -> list[Any]:
    args: list[Any] = []
    for spec in accounts:
        expiry = 0 if math.isinf(spec.expires_at) else int(spec.expires_at * 1000)
        args += [spec.limit, spec.initial, expiry, ",".join(map(str, spec.alerts))]
    return args


def parse_settled(flat: Sequence[Any]) -> Settled:
    """A settle's flat reply: each account's spend (a string), then (-index - 1, alert) pairs."""
    spent: list[int] = []
    crossed: list[tuple[int, int]] = []
    position = 0
    while position < len(flat):
        item = flat[position]
        if isinstance(item, int):
            crossed.append((-item - 1, int(flat[position + 1])))
            position += 2
        else:
            spent.append(int(item))
            position += 1
    return Settled(spent, crossed)


class KeySpace(Protocol):
    """What the scripts need of `RedisState`: its keys and its guarded call."""

    def _circuit_key(self, name: str) -> str: ...
    def _failures_key(self, name: str) -> str: ...
    def _rate_keys(self, name: str) -> list[str]: ...
    def _view_keys(self, name: str) -> list[str]: ...
    def _account_keys(self, accounts: Sequence[Account]) -> list[str]: ...
    def _settled_key(self, hold_id: str) -> str: ...
    def _call(self, script: Any, keys: list[Any], args: list[Any]) -> Any: ...
    def _call_many(self, calls: list[tuple[Any, list[Any], list[Any]]]) -> list[Any]: ...


# Encoded keys and arguments kept per deployment and per account set: a budget scoped per
# user makes an account set per user, so past this many they are made again.
_KEPT = 1024


def _keep(memo: dict[Any, Any], key: Any, value: Any) -> None:
    if len(memo) >= _KEPT:
        # Start over rather than drop the oldest: the caller's and the settler's threads
        # pack at once, and both dropping the same oldest one would raise KeyError.
        memo.clear()
    memo[key] = value


class CallScripts:
    """The two per-call scripts, registered on one redis-py client, for one `RedisState`.

    What repeats every call (a deployment's keys, an account set's keys and limits) is
    encoded once and kept; only the time, the ids and the amounts are encoded per call.

    >>> CallScripts(redis.Redis.from_url("redis://localhost:6379/0"))
    """

    def __init__(self, client: Any) -> None:
        self._admit = ScriptWire(client, _ADMIT_CALL)
        self._finish = ScriptWire(client, _FINISH_CALL)
        encode = self._admit.encode  # both scripts' client: one encoding
        self._window = encode([_num(WINDOW_S)])
        self._no_rate = encode(["0", "", -1, -1, -1, 0, "0", _num(WINDOW_S)])
        self._no_hold = encode(["", 0, "0", 0])
        self._no_headroom = encode(["0", "", "", "", "", "", ""])
        self._names: dict[tuple[str, str], Encoded] = {}
        self._rates: dict[str, Encoded] = {}
        self._accounts: dict[tuple[Account, ...], tuple[Encoded, Encoded]] = {}

    def _name_keys(self, state: KeySpace, name: str, rate_name: str) -> Encoded:
        """The admit script's first keys: the circuit's two, the rate windows' seven."""
        found = self._names.get((name, rate_name))
        if found is None:
            keys = [state._circuit_key(name), state._failures_key(name)]
            keys += [*state._rate_keys(rate_name), *state._view_keys(rate_name)]
            found = self._admit.encode(keys)
            _keep(self._names, (name, rate_name), found)
        return found

    def _rate_items(self, state: KeySpace, name: str) -> Encoded:
        """The finish script's first keys: the rate windows' seven."""
        found = self._rates.get(name)
        if found is None:
            found = self._admit.encode([*state._rate_keys(name), *state._view_keys(name)])
            _keep(self._rates, name, found)
        return found

    def _account_items(
        self, state: KeySpace, accounts: Sequence[Account]
    ) -> tuple[Encoded, Encoded]:
        """Three keys and four arguments per account (the same in both scripts)."""
        kept = accounts if type(accounts) is tuple else tuple(accounts)
        found = self._accounts.get(kept)
        if found is None:
            encode = self._admit.encode
            found = (encode(state._account_keys(kept)), encode(_account_args(kept)))
            _keep(self._accounts, kept, found)
        return found

    def admit(self, state: KeySpace, plan: CallPlan, now: float) -> CallVerdict:
        rate, hold = plan.rate, plan.hold
        name = plan.circuit or (rate.name if rate is not None else "")
        keys: list[Item] = [self._name_keys(state, name, rate.name if rate else name)]
        args: list[Item] = [_num(now), "1" if plan.circuit else "0", _num(now + plan.probe_lease_s)]
        if rate is None:
            args.append(self._no_rate)
        else:
            args += [
                "1",
                rate.permit_id,
                _limit(rate.rpm),
                _limit(rate.tpm),
                _limit(rate.concurrency),
                rate.tokens,
                _num(now + rate.lease_s),
                self._window,
            ]
        if hold is None:
            args.append(self._no_hold)
        else:
            account_keys, account_args = self._account_items(state, hold.accounts)
            keys.append(account_keys)
            args += [hold.hold_id, hold.amount, _num(now + hold.lease_s), len(hold.accounts)]
            args.append(account_args)
        reply = _text(state._call(self._admit, keys, args))
        state_name, until, index, spent, reserved, waited, failures = reply.split("|")
        circuit = None
        if plan.circuit:
            circuit = Admission(state_name, float(until), int(failures))
        refusal = None
        if int(index) >= 0:
            refusal = Refusal(int(index), int(spent), int(reserved))
        return CallVerdict(circuit, refusal, float(waited) if waited else None)

    def finish(
        self,
        state: KeySpace,
        hold: tuple[str, Sequence[Account], int | None] | None,
        rate: RateDone | None,
        now: float,
    ) -> Settled | None:
        keys, args = self._finish_packed(state, hold, rate, now)
        return _settled(hold, state._call(self._finish, keys, args))

    def finish_many(self, state: KeySpace, calls: Sequence[CallDone]) -> list[Settled | None]:
        """Several `finish`es in one write (one round trip)."""
        replies = state._call_many(self._finishes(state, calls))
        return [_settled(call.hold, reply) for call, reply in zip(calls, replies, strict=True)]

    def _finishes(
        self, state: KeySpace, calls: Sequence[CallDone]
    ) -> list[tuple[Any, list[Any], list[Any]]]:
        return [
            (self._finish, *self._finish_packed(state, call.hold, call.rate, call.now))
            for call in calls
        ]

    def finish_and_admit(
        self, state: KeySpace, calls: Sequence[CallDone], plan: CallPlan, now: float
    ) -> tuple[list[Settled | None], CallVerdict]:
        """`finish_many`, then `admit`, in one write (one round trip)."""
        riding = _Riding(state, self._finishes(state, calls))
        verdict = self.admit(riding, plan, now)
        settled = [
            _settled(call.hold, reply) for call, reply in zip(calls, riding.replies, strict=True)
        ]
        return settled, verdict

    def _finish_packed(
        self,
        state: KeySpace,
        hold: tuple[str, Sequence[Account], int | None] | None,
        rate: RateDone | None,
        now: float,
    ) -> tuple[list[Item], list[Item]]:
        """The finish script's KEYS and ARGV for one call."""
        keys: list[Item] = [self._rate_items(state, rate.name if rate is not None else "")]
        args: list[Item] = ["0", "", 0] if rate is None else ["1", rate.permit_id, rate.token_delta]
        account_args = None
        if hold is None:
            keys.append(state._settled_key(""))
            args += ["", "", 0, _num(now), 0, 0]
        else:
            hold_id, accounts, actual = hold
            account_keys, account_args = self._account_items(state, accounts)
            # A marker per hold: encoded here, not kept among the remembered keys.
            keys += [self._admit.encode([state._settled_key(hold_id)]), account_keys]
            mode = "release" if actual is None else "settle"
            args += [mode, hold_id, actual or 0, _num(now), _SETTLED_TTL_MS, len(accounts)]
        said = rate.headroom if rate is not None else None
        if said is None:
            args.append(self._no_headroom)
        else:
            args.append("1")
            args += [_said(value) for value in (said.requests_limit, said.requests_left)]
            args.append(_said(said.requests_reset_s))
            args += [_said(value) for value in (said.tokens_limit, said.tokens_left)]
            args.append(_said(said.tokens_reset_s))
        args.append(self._window)
        if account_args is not None:
            args.append(account_args)
        return keys, args


class _Riding:
    """`admit`'s key space whose one script call also carries other calls before it (in
    one write); their replies are left in `replies`."""

    def __init__(self, state: KeySpace, before: list[tuple[Any, list[Any], list[Any]]]) -> None:
        self._state = state
        self._before = before
        self.replies: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._state, name)

    def _call(self, script: Any, keys: list[Any], args: list[Any]) -> Any:
        *self.replies, reply = self._state._call_many([*self._before, (script, keys, args)])
        return reply


def _settled(
    hold: tuple[str, Sequence[Account], int | None] | None, flat: Sequence[Any]
) -> Settled | None:
    return None if hold is None or hold[2] is None else parse_settled(flat)
