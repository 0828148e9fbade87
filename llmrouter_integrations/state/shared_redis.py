"""Shared state in Redis (`RedisState`): a fleet of processes on many machines.

Every operation is one Lua script, so it is atomic and costs one round trip. All keys of
a router share one hash tag (`{llmrouter}`), so the scripts also run on Redis Cluster.
Money is integer nano-USD kept with `HINCRBY` (Lua's numbers would round big integers on
the way back to strings). Every call has a short socket timeout and no retries: an
unreachable or slow server raises `StoreUnavailable` quickly and the caller decides.

    >>> state = RedisState("redis://localhost:6379/0", timeout_s=0.25)
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigurationError
from .redis_clients import sync_client
from .redis_wire import ScriptWire, call_many
from .shared import (
    SETTLED_TTL_S,
    WINDOW_S,
    Account,
    AccountState,
    Admission,
    CallDone,
    CallPlan,
    CallVerdict,
    RateAsk,
    RateDone,
    Refusal,
    Settled,
    StoreUnavailable,
)
from .shared_redis_call import _PREP
from .shared_redis_pack import CallScripts, parse_settled

__all__ = ["RedisState"]

# The four single-purpose budget operations (reserve, settle, release, read) in one script;
# `prep` (create the account if new, drop expired holds) is the per-call scripts' own.
_BUDGET = (
    _PREP
    + """
local mode, hold, amount, now, hexp, n = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5],
    tonumber(ARGV[6])
local out = {}
-- Account i's keys are KEYS[3i-2..3i]; its limit, initial spend, expiry and alert levels
-- are ARGV[7+4(i-1)..]: the shared `prep` (shared_redis_call._PREP) reads them there.
local function prep_account(i) return prep(3*i-2, 7 + 4*(i-1), now) end
local function drop(a, h, m)
  local held = redis.call('HGET', m, hold)
  if held then
    redis.call('HINCRBY', a, 'reserved', minus(tonumber(held)))
    redis.call('HDEL', m, hold)
    redis.call('ZREM', h, hold)
  end
end
if mode == 'reserve' then
  local need = tonumber(amount)
  for i = 1, n do
    local a, h, m, limit, kexp, spent, reserved = prep_account(i)
    if need > 0 and spent + reserved + need > limit then
      return {i - 1, redis.call('HGET', a, 'spent'), redis.call('HGET', a, 'reserved')}
    end
  end
  for i = 1, n do
    local a, h, m, limit, kexp = KEYS[3*i-2], KEYS[3*i-1], KEYS[3*i], 0,
        tonumber(ARGV[6 + 4*(i-1) + 3])
    redis.call('ZADD', h, hexp, hold)
    redis.call('HSET', m, hold, amount)
    redis.call('HINCRBY', a, 'reserved', amount)
    if kexp > 0 then
      redis.call('PEXPIREAT', h, kexp)
      redis.call('PEXPIREAT', m, kexp)
    end
  end
  return {-1}
elseif mode == 'settle' then
  -- Once per hold: the marker says it was settled (a settle retried after a timeout).
  local fresh = redis.call('SET', KEYS[3*n+1], '1', 'NX', 'PX', math.floor(tonumber(hexp)))
  for i = 1, n do
    local a, h, m, limit, kexp, spent, reserved, spent_s, alerted = prep_account(i)
    drop(a, h, m)
    if fresh then spent = redis.call('HINCRBY', a, 'spent', amount) end
    out[#out+1] = redis.call('HGET', a, 'spent')
    local reached = passed(7 + 4*(i-1), spent)
    for j = alerted, reached - 1 do out[#out+1] = -(i - 1) - 1; out[#out+1] = j end
    if reached > alerted then redis.call('HSET', a, 'alerted', reached) end
  end
  return out
elseif mode == 'release' then
  for i = 1, n do
    drop(KEYS[3*i-2], KEYS[3*i-1], KEYS[3*i])
  end
  return out
else
  for i = 1, n do
    local a = prep_account(i)
    out[#out+1] = redis.call('HGET', a, 'spent')
    out[#out+1] = redis.call('HGET', a, 'reserved')
  end
  return out
end
"""
)

_PAUSE = """
if tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 0
"""

_ADMIT = """
local ends = redis.call('HGET', KEYS[1], 'until')
if not ends then return {'closed', '0', redis.call('GET', KEYS[2]) or '0'} end
local now = tonumber(ARGV[1])
if now < tonumber(ends) then return {'open', ends} end
if now < tonumber(redis.call('HGET', KEYS[1], 'probe') or '0') then return {'busy', '0'} end
redis.call('HSET', KEYS[1], 'probe', ARGV[2])
return {'probe', '0'}
"""

# The circuit opens and its failure count restarts together.
_OPEN = """
redis.call('HSET', KEYS[1], 'until', ARGV[1], 'probe', '0')
redis.call('DEL', KEYS[2])
return 0
"""

_FAIL = """
local count = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return count
"""

_FORGET = """
for _, key in ipairs(KEYS) do redis.call('DEL', key) end
return 0
"""

_JOIN = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return redis.call('ZCARD', KEYS[1])
"""

_LOCK = """
local owner, expires = redis.call('HGET', KEYS[1], 'owner'), redis.call('HGET', KEYS[1], 'expires')
if owner and owner ~= ARGV[1] and tonumber(expires) > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'expires', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""

_UNLOCK = """
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""


# A failure count nobody added to for a day is forgotten (a deployment that is not called).
_FAILURES_TTL_S = 86_400


def _unavailable(error: Exception) -> StoreUnavailable:
    # A server's error reply (e.g. a script error) is worth reading; connection errors may
    # name the host, so only their type is kept.
    detail = f": {error}" if type(error).__name__ == "ResponseError" else ""
    return StoreUnavailable(f"Redis state: {type(error).__name__}{detail}")


def _num(value: float) -> str:
    return repr(float(value))


class RedisState:
    """All four kinds of shared state in Redis (see `SharedState`).

    `url` is a redis-py URL (`redis://`, `rediss://`, `unix://`), a Cluster
    (`redis+cluster://host:port,host:port`) or Sentinel one
    (`redis+sentinel://host:26379,host:26379/service_name/db`), or a ready synchronous
    redis-py client (a `RedisCluster`, or `Sentinel(...).master_for(...)`). `timeout_s`
    bounds every call; there are no retries, the caller falls back instead.

    >>> state = RedisState("rediss://:password@cache.internal:6380/0")
    """

    backend = "redis"

    def __init__(
        self,
        url: str | Any,
        *,
        timeout_s: float = 0.25,
        prefix: str = "llmrouter",
        lease_s: float = 300.0,
    ) -> None:
        self.prefix = prefix
        self.lease_s = lease_s
        self.timeout_s = timeout_s
        if not prefix:  # "{}" is no hash tag: keys would scatter over a cluster's slots
            raise ConfigurationError("RedisState needs a non-empty prefix (its keys' hash tag)")
        self._tag = "{" + prefix + "}"
        if isinstance(url, str):
            self._client: Any = sync_client(url, timeout_s=timeout_s)
        else:
            self._client = url
        self._budget = ScriptWire(self._client, _BUDGET)
        self._pause = ScriptWire(self._client, _PAUSE)
        self._admit = ScriptWire(self._client, _ADMIT)
        self._open = ScriptWire(self._client, _OPEN)
        self._fail = ScriptWire(self._client, _FAIL)
        self._forget = ScriptWire(self._client, _FORGET)
        self._join = ScriptWire(self._client, _JOIN)
        self._lock = ScriptWire(self._client, _LOCK)
        self._unlock = ScriptWire(self._client, _UNLOCK)
        self._calls = CallScripts(self._client)

    def __repr__(self) -> str:
        return f"RedisState(prefix={self.prefix!r})"  # the URL may hold a password

    def _call(self, script: ScriptWire, keys: list[Any], args: list[Any]) -> Any:
        try:
            return call_many([(script, keys, args)])[0]
        except Exception as error:  # redis errors, OSError, timeouts: all mean "not now"
            raise _unavailable(error) from None

    def _call_many(self, calls: list[tuple[ScriptWire, list[Any], list[Any]]]) -> list[Any]:
        """Each (script, keys, args), in one write and one round trip (`redis_wire.call_many`)."""
        try:
            return call_many(calls)
        except Exception as error:  # as `_call`
            raise _unavailable(error) from None

    # -- budgets --------------------------------------------------------------------------------
    def _budget_call(
        self,
        mode: str,
        hold_id: str,
        accounts: Sequence[Account],
        amount: int,
        now: float,
        hold_end: float,
    ) -> Any:
        keys = self._account_keys(accounts)
        args: list[Any] = [mode, hold_id, amount, _num(now), _num(hold_end), len(accounts)]
        for spec in accounts:
            expiry = 0 if math.isinf(spec.expires_at) else int(spec.expires_at * 1000)
            args += [spec.limit, spec.initial, expiry, ",".join(map(str, spec.alerts))]
        keys.append(self._settled_key(hold_id))
        return self._call(self._budget, keys, args)

    def _account_keys(self, accounts: Sequence[Account]) -> list[str]:
        keys: list[str] = []
        for spec in accounts:
            base = f"{self._tag}:budget:{spec.key}"
            keys += [base, base + ":holds", base + ":amounts"]
        return keys

    def _settled_key(self, hold_id: str) -> str:
        return f"{self._tag}:settled:{hold_id}"

    def reserve(
        self, hold_id: str, accounts: Sequence[Account], amount: int, now: float, lease_s: float
    ) -> Refusal | None:
        result = self._budget_call("reserve", hold_id, accounts, amount, now, now + lease_s)
        if int(result[0]) < 0:
            return None
        return Refusal(int(result[0]), int(result[1]), int(result[2]))

    def settle(self, hold_id: str, accounts: Sequence[Account], actual: int, now: float) -> Settled:
        ttl_ms = SETTLED_TTL_S * 1000
        flat = self._budget_call("settle", hold_id, accounts, actual, now, ttl_ms)
        return parse_settled(flat)

    def release(self, hold_id: str, accounts: Sequence[Account], now: float) -> None:
        self._budget_call("release", hold_id, accounts, 0, now, now)

    def read(self, accounts: Sequence[Account], now: float) -> list[AccountState]:
        flat = self._budget_call("read", "", accounts, 0, now, now)
        return [AccountState(int(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)]

    def join(self, member: str, now: float, lease_s: float) -> int:
        args = [member, _num(now), _num(now + lease_s), max(1, int(lease_s * 2000))]
        return int(self._call(self._join, [f"{self._tag}:members"], args))

    # -- rate windows ---------------------------------------------------------------------------
    def _rate_keys(self, name: str) -> list[str]:
        base = f"{self._tag}:rate:{name}"
        return [
            base + ":spends",
            base + ":tokens",
            base + ":total",
            base + ":permits",
            base + ":pause",
        ]

    def _view_keys(self, name: str) -> list[str]:
        base = f"{self._tag}:rate:{name}"
        return [base + ":view", base + ":flight"]

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
        wait = self._calls.admit(self, CallPlan(rate=ask), now).rate_wait
        return 0.0 if wait is None else wait

    def release_rate(self, name: str, permit_id: str, token_delta: int, now: float) -> None:
        self._calls.finish(self, None, RateDone(name, permit_id, token_delta), now)

    def pause_rate(self, name: str, until: float) -> None:
        keys = self._rate_keys(name)[4:]
        self._call(self._pause, keys, [_num(until), int(WINDOW_S * 10_000)])

    # -- circuits -------------------------------------------------------------------------------
    def _circuit_key(self, name: str) -> str:
        return f"{self._tag}:circuit:{name}"

    def _failures_key(self, name: str) -> str:
        return f"{self._tag}:failures:{name}"

    def admit_circuit(self, name: str, now: float, probe_lease_s: float) -> Admission:
        keys = [self._circuit_key(name), self._failures_key(name)]
        reply = self._call(self._admit, keys, [_num(now), _num(now + probe_lease_s)])
        state = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
        failures = int(reply[2]) if len(reply) > 2 else 0
        return Admission(state, float(reply[1]), failures)

    def open_circuit(self, name: str, until: float) -> None:
        keys = [self._circuit_key(name), self._failures_key(name)]
        self._call(self._open, keys, [_num(until)])

    def close_circuit(self, name: str) -> None:
        keys = [self._circuit_key(name), self._failures_key(name)]
        self._call(self._forget, keys, [])

    def count_failure(self, name: str) -> int:
        return int(self._call(self._fail, [self._failures_key(name)], [_FAILURES_TTL_S]))

    def reset_failures(self, name: str) -> None:
        self._call(self._forget, [self._failures_key(name)], [])

    # -- one call (state/shared_redis_call.py, packed by shared_redis_pack.py) ----------------
    def admit_call(self, plan: CallPlan, now: float) -> CallVerdict:
        return self._calls.admit(self, plan, now)

    def finish_call(
        self,
        hold: tuple[str, Sequence[Account], int | None] | None,
        rate: RateDone | None,
        now: float,
    ) -> Settled | None:
        return self._calls.finish(self, hold, rate, now)

    def finish_and_admit(
        self, calls: Sequence[CallDone], plan: CallPlan, now: float
    ) -> tuple[list[Settled | None], CallVerdict]:
        return self._calls.finish_and_admit(self, calls, plan, now)

    def finish_calls(self, calls: Sequence[CallDone]) -> list[Settled | None]:
        return self._calls.finish_many(self, calls)

    # -- locks ----------------------------------------------------------------------------------
    def _lock_key(self, key: str) -> str:
        return f"{self._tag}:lock:{key}"

    def acquire_lock(self, key: str, owner: str, now: float, lease_s: float) -> bool:
        args = [owner, _num(now), _num(now + lease_s), max(1, int(lease_s * 2000))]
        return bool(self._call(self._lock, [self._lock_key(key)], args))

    def lock_held(self, key: str, now: float) -> bool:
        try:
            expires = self._client.hget(self._lock_key(key), "expires")
        except Exception as error:
            raise _unavailable(error) from None
        return expires is not None and float(expires) > now

    def release_lock(self, key: str, owner: str) -> None:
        self._call(self._unlock, [self._lock_key(key)], [owner])

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a broken connection must not raise
            self._client.close()
