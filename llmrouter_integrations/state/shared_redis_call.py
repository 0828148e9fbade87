"""One round trip before a call and one after it, on Redis: `RedisState.admit_call` and
`finish_call` as two Lua scripts (their KEYS and ARGV are packed in `shared_redis_pack`).

`admit_call` looks at the circuit, checks every budget account, counts the send in the
rate windows and against the provider's headroom, takes the hold and claims the probe, in
that order and atomically (a refused circuit or budget returns before anything is
written). `finish_call` frees the concurrency slot, corrects the send's tokens, folds the
provider's headers into the fleet's headroom and settles (or releases) the hold.
`RedisState.acquire_rate` and `release_rate` are these scripts with only their rate part. The keys
are `RedisState`'s own (one hash tag), so both scripts run on Redis Cluster too.

    >>> ScriptWire(client, _ADMIT_CALL)
"""

from __future__ import annotations

__all__: list[str] = []

# Budget accounts: created on first sight (spend from the ledger, alerts already passed
# marked), holds whose lease ended dropped. `first` is the index of the account's first
# ARGV (limit, initial spend, key expiry in ms, alert levels), `k` of its first KEY.
_VIEW = """
-- The provider's headroom (state/headroom.py, in Lua): hash V holds sends, tsent, mark
-- and per limit k ('r' requests, 't' tokens): k_limit, k_left, k_reset, k_hint.
local function hnum(v, field) return tonumber(redis.call('HGET', v, field) or '') end
-- The wait for `need` more, and whether a remaining count is kept (a send draws from it).
-- One HMGET reads the four fields; a reset that has come refills the count (hint: the
-- longest reset the provider named, else the window).
local function hwait(v, k, need, now, window)
  local f = redis.call('HMGET', v, k .. '_left', k .. '_reset', k .. '_limit', k .. '_hint')
  local left, reset, limit = tonumber(f[1] or ''), tonumber(f[2] or ''), f[3]
  local kept = f[1] ~= false
  if reset ~= nil and now >= reset then
    if not limit then redis.call('HDEL', v, k .. '_left', k .. '_reset'); return 0, false end
    local hint = tonumber(f[4] or '') or 0
    if hint <= 0 then hint = window end
    left, reset, kept = tonumber(limit), now + hint, true
    redis.call('HSET', v, k .. '_left', limit, k .. '_reset', reset)
  end
  if left == nil or reset == nil or left >= need then return 0, kept end
  local cap = tonumber(limit or '')
  if cap ~= nil and need > cap then return 0, kept end
  return math.max(0, reset - now), kept
end
local function hnote(v, k, limit, left, reset_s, since, now, window)
  if limit ~= '' then redis.call('HSET', v, k .. '_limit', limit) end
  local hint = hnum(v, k .. '_hint') or 0
  if reset_s ~= '' then
    hint = math.max(hint, tonumber(reset_s))
    redis.call('HSET', v, k .. '_hint', hint)
  end
  if left == '' then return end
  redis.call('HSET', v, k .. '_left', tonumber(left) - since)
  if reset_s ~= '' then redis.call('HSET', v, k .. '_reset', now + tonumber(reset_s))
  else
    local reset = hnum(v, k .. '_reset')
    if reset == nil or reset <= now then
      if hint <= 0 then hint = window end
      redis.call('HSET', v, k .. '_reset', now + hint)
    end
  end
end
"""

_PREP = """
local function prep(k, first, now)
  local a, h, m = KEYS[k], KEYS[k+1], KEYS[k+2]
  local kexp = tonumber(ARGV[first+2])
  local levels = {}
  for v in string.gmatch(ARGV[first+3], '[^,]+') do levels[#levels+1] = tonumber(v) end
  local got = redis.call('HMGET', a, 'spent', 'reserved')
  local spent, reserved = tonumber(got[1] or ''), tonumber(got[2] or '')
  if spent == nil then
    spent, reserved = tonumber(ARGV[first+1]), 0
    local crossed = 0
    for _, l in ipairs(levels) do if spent >= l then crossed = crossed + 1 end end
    redis.call('HSET', a, 'spent', ARGV[first+1], 'reserved', 0, 'alerted', crossed)
    if kexp > 0 then redis.call('PEXPIREAT', a, kexp) end
  end
  local expired = redis.call('ZRANGEBYSCORE', h, '-inf', now)
  for _, id in ipairs(expired) do
    reserved = redis.call('HINCRBY', a, 'reserved', -tonumber(redis.call('HGET', m, id) or '0'))
    redis.call('HDEL', m, id)
  end
  if #expired > 0 then redis.call('ZREMRANGEBYSCORE', h, '-inf', now) end
  return a, h, m, tonumber(ARGV[first]), kexp, levels, spent, reserved
end
"""

# KEYS: circuit, its failure count, the rate keys (spends, tokens, total, permits, pause,
# headroom view, sends), then three per account. ARGV: now, circuit?, probe end, rate?, permit, rpm, tpm, concurrency, tokens,
# permit lease end, window, hold id, amount, hold end, accounts, then four per account.
# Returns one string (a flat array costs redis-py a parse per element): circuit state, open
# until, refused account (-1: none), its spent, its reserved, rate wait ('' when not asked),
# the fleet's consecutive failures, joined by '|'.
_ADMIT_CALL = (
    _PREP
    + _VIEW
    + """
local now = tonumber(ARGV[1])
local cstate = ''
if ARGV[2] == '1' then
  local ends = redis.call('HGET', KEYS[1], 'until')
  if not ends then cstate = 'closed'
  elseif now < tonumber(ends) then return 'open|' .. ends .. '|-1|0|0||0'
  elseif now < tonumber(redis.call('HGET', KEYS[1], 'probe') or '0') then
    return 'busy|0|-1|0|0||0'
  else cstate = 'probe' end
end
local failures = '0'
if cstate == 'closed' then failures = redis.call('GET', KEYS[2]) or '0' end
local n, need = tonumber(ARGV[15]), tonumber(ARGV[13])
for i = 1, n do
  local a, h, m, limit, kexp, levels, spent, reserved = prep(7 + 3*i, 12 + 4*i, now)
  if need > 0 and spent + reserved + need > limit then
    local spent_s, reserved_s = redis.call('HGET', a, 'spent'), redis.call('HGET', a, 'reserved')
    return table.concat({cstate, '0', i - 1, spent_s, reserved_s, '', failures}, '|')
  end
end
for i = 1, n do
  local a, h, m = KEYS[7 + 3*i], KEYS[8 + 3*i], KEYS[9 + 3*i]
  local kexp = tonumber(ARGV[12 + 4*i + 2])
  redis.call('ZADD', h, ARGV[14], ARGV[12])
  redis.call('HSET', m, ARGV[12], ARGV[13])
  redis.call('HINCRBY', a, 'reserved', ARGV[13])
  if kexp > 0 then
    redis.call('PEXPIREAT', h, kexp)
    redis.call('PEXPIREAT', m, kexp)
  end
end
local wait = ''
if ARGV[4] == '1' then
  local s, st, total, c, p, v, sq = KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
  local id = ARGV[5]
  local rpm, tpm, conc = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
  local tokens, window = tonumber(ARGV[9]), tonumber(ARGV[11])
  local since = now - window
  local old = redis.call('ZRANGEBYSCORE', s, '-inf', since)
  for _, o in ipairs(old) do
    redis.call('DECRBY', total, tonumber(redis.call('HGET', st, o) or '0'))
    redis.call('HDEL', st, o)
  end
  if #old > 0 then redis.call('ZREMRANGEBYSCORE', s, '-inf', since) end
  local w, rkept, tkept = 0, false, false
  if conc >= 0 then
    redis.call('ZREMRANGEBYSCORE', c, '-inf', now)
    if redis.call('ZCARD', c) >= conc then w = math.huge end
  end
  if w == 0 then
    local pause = tonumber(redis.call('GET', p) or '0')
    if pause > now then w = pause - now end
    local rw, tw
    rw, rkept = hwait(v, 'r', 1, now, window)
    w = math.max(w, rw)
    if tokens > 0 then
      tw, tkept = hwait(v, 't', tokens, now, window)
      w = math.max(w, tw)
    end
    local count = redis.call('ZCARD', s)
    if rpm >= 0 and count + 1 > rpm then
      local idx = math.max(count - rpm, 0)
      local oldest = redis.call('ZRANGE', s, idx, idx, 'WITHSCORES')
      if #oldest == 0 then w = math.max(w, window)
      else w = math.max(w, tonumber(oldest[2]) + window - now) end
    end
    if tpm >= 0 and tokens > 0 then
      local used = tonumber(redis.call('GET', total) or '0')
      if used + tokens > tpm and count > 0 then
        local excess, freed = used + tokens - tpm, 0
        local all = redis.call('ZRANGE', s, 0, -1, 'WITHSCORES')
        local at = tonumber(all[#all])
        for k = 1, #all, 2 do
          freed = freed + tonumber(redis.call('HGET', st, all[k]) or '0')
          if freed >= excess then at = tonumber(all[k+1]); break end
        end
        w = math.max(w, at + window - now)
      end
    end
  end
  if w == 0 then
    if rpm >= 0 or tpm >= 0 then
      local t = 0
      if tpm >= 0 then t = tokens end
      redis.call('ZADD', s, now, id)
      redis.call('HSET', st, id, t)
      redis.call('INCRBY', total, t)
      for _, k in ipairs({s, st, total}) do redis.call('PEXPIRE', k, math.floor(window * 2000)) end
    end
    if conc >= 0 then
      redis.call('ZADD', c, ARGV[10], id)
      redis.call('PEXPIRE', c, math.floor(window * 2000))
    end
    local seq = redis.call('HINCRBY', v, 'sends', 1)
    local tsent = redis.call('HINCRBY', v, 'tsent', tokens)
    if rkept then redis.call('HINCRBYFLOAT', v, 'r_left', -1) end
    if tkept then redis.call('HINCRBYFLOAT', v, 't_left', -tokens) end
    redis.call('PEXPIRE', v, math.floor(window * 1440000))
    redis.call('HSET', sq, id, seq .. ',' .. tsent)
    redis.call('PEXPIRE', sq, math.floor(window * 2000))
  end
  if w == math.huge then wait = 'inf' else wait = tostring(w) end
end
if cstate == 'probe' then redis.call('HSET', KEYS[1], 'probe', ARGV[3]) end
return table.concat({cstate, '0', -1, '0', '0', wait, failures}, '|')
"""
)

# KEYS: the rate keys (spends, tokens, total, permits, pause, headroom view, sends), the
# hold's settled marker, then three per account. ARGV: rate?, permit, token delta, hold
# mode ('settle', 'release' or ''), hold id, actual, now, settled marker ttl ms, accounts,
# headroom?, its six numbers ('' when not said: requests limit, left, reset s, then
# tokens), window, then four per account.
# Returns as `settle` does: each account's spend (a string), then its crossed alerts as
# pairs (-index - 1, alert).
_FINISH_CALL = (
    _PREP
    + _VIEW
    + """
if ARGV[1] == '1' then
  redis.call('ZREM', KEYS[4], ARGV[2])
  local delta = tonumber(ARGV[3])
  local held = redis.call('HGET', KEYS[2], ARGV[2])
  if delta ~= 0 and held then
    local new = math.max(0, tonumber(held) + delta)
    redis.call('HSET', KEYS[2], ARGV[2], new)
    redis.call('INCRBY', KEYS[3], new - tonumber(held))
  end
end
local mode, hold, now, n = ARGV[4], ARGV[5], tonumber(ARGV[7]), tonumber(ARGV[9])
local sent = false
if ARGV[1] == '1' then
  -- The send's number is read once, here: forgotten, it cannot pile up under steady traffic.
  sent = redis.call('HGET', KEYS[7], ARGV[2])
  if sent then redis.call('HDEL', KEYS[7], ARGV[2]) end
end
if ARGV[10] == '1' then
  local v, window = KEYS[6], tonumber(ARGV[17])
  if sent then
    local comma = string.find(sent, ',')
    local seq, tmark = tonumber(string.sub(sent, 1, comma - 1)), tonumber(string.sub(sent, comma + 1))
    if seq >= (hnum(v, 'mark') or 0) then
      redis.call('HSET', v, 'mark', seq)
      local sends, tsent = hnum(v, 'sends') or seq, hnum(v, 'tsent') or tmark
      hnote(v, 'r', ARGV[11], ARGV[12], ARGV[13], sends - seq, now, window)
      hnote(v, 't', ARGV[14], ARGV[15], ARGV[16], tsent - tmark, now, window)
    end
  end
end
local out = {}
if mode == '' then return out end
local fresh = false
if mode == 'settle' then
  -- Once per hold: the marker says it was settled (a settle retried after a timeout).
  fresh = redis.call('SET', KEYS[8], '1', 'NX', 'PX', ARGV[8])
end
for i = 1, n do
  local a, h, m, limit, kexp, levels = KEYS[6 + 3*i], KEYS[7 + 3*i], KEYS[8 + 3*i]
  if mode == 'settle' then a, h, m, limit, kexp, levels = prep(6 + 3*i, 14 + 4*i, now) end
  local held = redis.call('HGET', m, hold)
  if held then
    redis.call('HINCRBY', a, 'reserved', -tonumber(held))
    redis.call('HDEL', m, hold)
    redis.call('ZREM', h, hold)
  end
  if mode == 'settle' then
    local spent
    if fresh then spent = redis.call('HINCRBY', a, 'spent', ARGV[6])
    else spent = tonumber(redis.call('HGET', a, 'spent')) end
    out[#out+1] = redis.call('HGET', a, 'spent')
    local alerted = tonumber(redis.call('HGET', a, 'alerted'))
    local reached = 0
    for _, l in ipairs(levels) do if spent >= l then reached = reached + 1 end end
    for j = alerted, reached - 1 do out[#out+1] = -(i - 1) - 1; out[#out+1] = j end
    if reached > alerted then redis.call('HSET', a, 'alerted', reached) end
  end
end
return out
"""
)
