"""One round trip before a call and one after it, on Redis: `RedisState.admit_call` and
`finish_call` as two Lua scripts (their KEYS and ARGV are packed in `shared_redis_pack`).

`admit_call` looks at the circuit, checks every budget account, counts the send in the
rate windows and against the provider's headroom, takes the hold and claims the probe, in
that order and atomically (a refused circuit or budget returns before anything is
written). `finish_call` frees the concurrency slot, corrects the send's tokens, folds the
provider's headers into the fleet's headroom and settles (or releases) the hold.
`RedisState.acquire_rate` and `release_rate` are these scripts with only their rate part. The keys
are `RedisState`'s own (one hash tag), so both scripts run on Redis Cluster too.

Written for server time: each `redis.call` costs the server about a microsecond beyond the
command itself (its arguments become Redis objects, its reply is encoded and parsed back
into Lua), and each field read or written about half that. So the scripts read a hash once
(one HMGET) and write it once (one multi-field HSET), skip writes that would change
nothing, and renew the rate keys' expiry only when a key may have just been created or
half a window has passed since the last renewal (the headroom view's `renewed` field).
Money stays in `HINCRBY` (Lua numbers are doubles; Redis keeps the exact integers).

    >>> ScriptWire(client, _ADMIT_CALL)
"""

from __future__ import annotations

__all__: list[str] = []

# Budget accounts: created on first sight (spend from the ledger, alerts already passed
# marked), holds whose lease ended dropped. `first` is the index of the account's first
# ARGV (limit, initial spend, key expiry in ms, alert levels), `k` of its first KEY.
# `prep` returns the keys, the limit, the key expiry, spent and reserved (Lua numbers), spent
# as stored (exact, for replies) and the count of alerts already fired.
_PREP = """
-- How many of the account's alert levels (ascending) `spent` has reached.
local function passed(first, spent)
  local count = 0
  for v in string.gmatch(ARGV[first+3], '[^,]+') do
    if spent < tonumber(v) then break end
    count = count + 1
  end
  return count
end
-- HINCRBY by minus a Lua number: -0 would print as '-0', which Redis refuses as an integer.
local function minus(x) if x == 0 then return 0 end return -x end
-- Takes zset z's members scored up to `upto` out of z and out of hash hsh, and returns the
-- sum of their numbers in hsh. In parts: unpack's stack is bounded (a long outage's holds).
local function reap(z, hsh, upto)
  local gone = redis.call('ZRANGEBYSCORE', z, '-inf', upto)
  if #gone == 0 then return 0 end
  local freed = 0
  for at = 1, #gone, 1000 do
    local part = {unpack(gone, at, math.min(at + 999, #gone))}
    for _, n in ipairs(redis.call('HMGET', hsh, unpack(part))) do
      freed = freed + (tonumber(n or '') or 0)
    end
    redis.call('HDEL', hsh, unpack(part))
  end
  redis.call('ZREMRANGEBYSCORE', z, '-inf', upto)
  return freed
end
local function prep(k, first, now)
  local a, h, m = KEYS[k], KEYS[k+1], KEYS[k+2]
  local kexp = tonumber(ARGV[first+2])
  local got = redis.call('HMGET', a, 'spent', 'reserved', 'alerted')
  local spent_s = got[1]
  local spent, reserved = tonumber(spent_s or ''), tonumber(got[2] or '')
  local alerted = tonumber(got[3] or '') or 0
  if spent == nil then
    spent_s = ARGV[first+1]
    spent, reserved = tonumber(spent_s), 0
    alerted = passed(first, spent)
    redis.call('HSET', a, 'spent', spent_s, 'reserved', 0, 'alerted', alerted)
    if kexp > 0 then redis.call('PEXPIREAT', a, kexp) end
  end
  -- Nothing reserved: no hold whose expiry would give anything back (left for later).
  if reserved > 0 then
    local freed = reap(h, m, now)
    if freed ~= 0 then reserved = redis.call('HINCRBY', a, 'reserved', minus(freed)) end
  end
  return a, h, m, tonumber(ARGV[first]), kexp, spent, reserved, spent_s, alerted
end
"""

# The provider's headroom (state/headroom.py, in Lua): hash V holds sends, tsent, mark, the
# time its keys' expiry was last renewed, per limit k ('r' requests, 't' tokens): k_limit,
# k_left, k_reset, k_hint, and per send in flight 'sent:<permit id>': its number, tokens sent
# up to it and before it, tokens charged to the window, whether it holds a concurrency slot. Both scripts read V with one HMGET into `f` (`at` is
# where limit k's four fields start) and collect their changes in `put` for one HSET.
_VIEW = """
-- The wait for `need` more, and the count a send draws from (nil: none kept). A reset
-- that has come refills the count (hint: the longest reset the provider named, else the
-- window); a refilled count is left in `put` for the caller to write.
local function hwait(v, f, at, k, need, now, window, put)
  local left, reset, limit = tonumber(f[at] or ''), tonumber(f[at+1] or ''), f[at+2]
  local kept = f[at] ~= false
  if reset ~= nil and now >= reset then
    if not limit then redis.call('HDEL', v, k .. '_left', k .. '_reset'); return 0, nil end
    local hint = tonumber(f[at+3] or '') or 0
    if hint <= 0 then hint = window end
    left, reset, kept = tonumber(limit), now + hint, true
    put[k .. '_left'], put[k .. '_reset'] = left, reset
  end
  if not kept then left = nil end
  if left == nil or reset == nil or left >= need then return 0, left end
  local cap = tonumber(limit or '')
  if cap ~= nil and need > cap then return 0, left end
  return math.max(0, reset - now), left
end
-- A response's headers for limit k, as of `since` sends it had not seen yet.
local function hnote(f, at, k, limit, left, reset_s, since, now, window, put)
  if limit ~= '' and limit ~= f[at+2] then put[k .. '_limit'] = limit end
  local hint = tonumber(f[at+3] or '') or 0
  if reset_s ~= '' and tonumber(reset_s) > hint then
    hint = tonumber(reset_s)
    put[k .. '_hint'] = hint
  end
  if left == '' then return end
  put[k .. '_left'] = tonumber(left) - since
  if reset_s ~= '' then put[k .. '_reset'] = now + tonumber(reset_s)
  else
    local reset = tonumber(f[at+1] or '')
    if reset == nil or reset <= now then
      if hint <= 0 then hint = window end
      put[k .. '_reset'] = now + hint
    end
  end
end
local function hset(v, put)
  local flat = {}
  for field, value in pairs(put) do flat[#flat+1] = field; flat[#flat+1] = value end
  if #flat > 0 then redis.call('HSET', v, unpack(flat)) end
end
"""

# KEYS: circuit, its failure count, the rate keys (spends, tokens, total, permits, pause,
# headroom view, sends in flight), then three per account. ARGV: now, circuit?, probe end, rate?,
# permit, rpm, tpm, concurrency, tokens, permit lease end, window, hold id, amount, hold
# end, accounts, then four per account.
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
  local c = redis.call('HMGET', KEYS[1], 'until', 'probe')
  if not c[1] then cstate = 'closed'
  elseif now < tonumber(c[1]) then return 'open|' .. c[1] .. '|-1|0|0||0'
  elseif now < tonumber(c[2] or '0') then return 'busy|0|-1|0|0||0'
  else cstate = 'probe' end
end
local failures = '0'
if cstate == 'closed' then failures = redis.call('GET', KEYS[2]) or '0' end
local n, need = tonumber(ARGV[15]), tonumber(ARGV[13])
for i = 1, n do
  local a, h, m, limit, kexp, spent, reserved = prep(7 + 3*i, 12 + 4*i, now)
  if need > 0 and spent + reserved + need > limit then
    local spent_s, reserved_s = redis.call('HGET', a, 'spent'), redis.call('HGET', a, 'reserved')
    return table.concat({cstate, '0', i - 1, spent_s, reserved_s, '', failures}, '|')
  end
end
for i = 1, n do
  local a, h, m = KEYS[7 + 3*i], KEYS[8 + 3*i], KEYS[9 + 3*i]
  local kexp = tonumber(ARGV[12 + 4*i + 2])
  -- '~' (expiry +inf, amount 0) keeps the holds' keys from vanishing with their last hold:
  -- a key that lacked it is new, and gets the period's expiry.
  local fresh = redis.call('ZADD', h, ARGV[14], ARGV[12], '+inf', '~')
  fresh = redis.call('HSET', m, ARGV[12], ARGV[13], '~', 0) + fresh
  redis.call('HINCRBY', a, 'reserved', ARGV[13])
  if kexp > 0 and fresh > 2 then
    redis.call('PEXPIREAT', h, kexp)
    redis.call('PEXPIREAT', m, kexp)
  end
end
local wait = ''
if ARGV[4] == '1' then
  local s, st, total, c, p, v, q = KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
  local id = ARGV[5]
  local rpm, tpm, conc = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
  local tokens, window = tonumber(ARGV[9]), tonumber(ARGV[11])
  local since = now - window
  local freed = reap(s, st, since)
  if freed ~= 0 then redis.call('DECRBY', total, freed) end
  local w, busy, count, f, rleft, tleft = 0, -1, 0, nil, nil, nil
  local put = {}
  if conc >= 0 then
    redis.call('ZREMRANGEBYSCORE', c, '-inf', now)
    busy = redis.call('ZCARD', c)
    if busy >= conc then w = math.huge end
  end
  if w == 0 then
    local pause = tonumber(redis.call('GET', p) or '0')
    if pause > now then w = pause - now end
    f = redis.call('HMGET', v, 'r_left', 'r_reset', 'r_limit', 'r_hint',
      't_left', 't_reset', 't_limit', 't_hint', 'sends', 'tsent', 'renewed')
    local rw, tw
    rw, rleft = hwait(v, f, 1, 'r', 1, now, window, put)
    w = math.max(w, rw)
    if tokens > 0 then
      tw, tleft = hwait(v, f, 5, 't', tokens, now, window, put)
      w = math.max(w, tw)
    end
    count = redis.call('ZCARD', s)
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
    -- Keys live 2.5 windows from a renewal, renewed every half window: at least two
    -- windows after their last write, as when every send renewed them.
    local renewed = tonumber(f[11] or '')
    local renew = renewed == nil or now - renewed >= window / 2 or now < renewed
    local ttl = math.floor(window * 2500)
    local t_charged = 0
    if rpm >= 0 or tpm >= 0 then
      local t = 0
      if tpm >= 0 then t = tokens end
      t_charged = t
      redis.call('ZADD', s, now, id)
      redis.call('HSET', st, id, t)
      local fresh = false
      if t ~= 0 then fresh = redis.call('INCRBY', total, t) == t end
      if renew or count == 0 then
        for _, k in ipairs({s, st, total}) do redis.call('PEXPIRE', k, ttl) end
      elseif fresh then redis.call('PEXPIRE', total, ttl) end
    end
    if conc >= 0 then
      redis.call('ZADD', c, ARGV[10], id)
      if renew or busy == 0 then redis.call('PEXPIRE', c, ttl) end
    end
    local seq = (tonumber(f[9] or '') or 0) + 1
    local tsent = (tonumber(f[10] or '') or 0) + tokens
    put.sends, put.tsent = seq, tsent
    if rleft ~= nil then put.r_left = rleft - 1 end
    if tleft ~= nil then put.t_left = tleft - tokens end
    -- The send in flight: its numbers for its answer's fold (a field of V), and in Q by
    -- admission time for other answers' folds (member: its number, zero-padded so equal
    -- times sort by it, the tokens sent before it, its id). Across machines, admission
    -- times are each process's clock: the order is the store's up to their skew.
    local seq_s, before_s = string.format('%.0f', seq), string.format('%.0f', tsent - tokens)
    local conc_s, tch = '0', 0
    if conc >= 0 then conc_s = '1' end
    if rpm >= 0 or tpm >= 0 then tch = t_charged end
    put['sent:' .. id] = table.concat({seq_s, string.format('%.0f', tsent), before_s, tch, conc_s}, ',')
    -- '~' (score +inf) keeps Q from vanishing when nothing is in flight: a fresh Q is seen.
    local member = string.format('%015d', seq) .. ',' .. before_s .. ',' .. id
    local added = redis.call('ZADD', q, now, member, '+inf', '~')
    local vttl = math.floor(window * 1440000) + ttl
    if renew then
      put.renewed = now
      -- Sends never answered (no headers came back, a process died): forgotten after two windows.
      local cut = now - 2 * window
      local gone = redis.call('ZRANGEBYSCORE', q, '-inf', cut)
      if #gone > 0 then
        for at = 1, #gone, 1000 do
          local fields = {}
          for k = at, math.min(at + 999, #gone) do
            fields[#fields+1] = 'sent:' .. string.match(gone[k], '^[^,]*,[^,]*,(.*)$')
          end
          redis.call('HDEL', v, unpack(fields))
        end
        redis.call('ZREMRANGEBYSCORE', q, '-inf', cut)
      end
    end
    hset(v, put)
    if renew then redis.call('PEXPIRE', v, vttl) end
    if renew or added > 1 then redis.call('PEXPIRE', q, vttl) end
  else
    hset(v, put)
  end
  if w == math.huge then wait = 'inf' else wait = tostring(w) end
end
if cstate == 'probe' then redis.call('HSET', KEYS[1], 'probe', ARGV[3]) end
return table.concat({cstate, '0', -1, '0', '0', wait, failures}, '|')
"""
)

# KEYS: the rate keys (spends, tokens, total, permits, pause, headroom view, sends in
# flight), the hold's settled marker, then three per account. ARGV: rate?, permit, token delta, hold
# mode ('settle', 'release' or ''), hold id, actual, now, settled marker ttl ms, accounts,
# headroom?, its six numbers ('' when not said: requests limit, left, reset s, then
# tokens), window, then four per account.
# Returns as `settle` does: each account's spend (a string), then its crossed alerts as
# pairs (-index - 1, alert).
_FINISH_CALL = (
    _PREP
    + _VIEW
    + """
local mode, hold, now, n = ARGV[4], ARGV[5], tonumber(ARGV[7]), tonumber(ARGV[9])
if ARGV[1] == '1' then
  local v, q, id, window = KEYS[6], KEYS[7], ARGV[2], tonumber(ARGV[17])
  local f = {}
  local fold = ARGV[10] == '1'
  if fold then
    f = redis.call('HMGET', v, 'r_left', 'r_reset', 'r_limit', 'r_hint',
      't_left', 't_reset', 't_limit', 't_hint', 'sends', 'tsent', 'mark', 'sent:' .. id)
  else f[12] = redis.call('HGET', v, 'sent:' .. id) end
  -- The send's numbers are read once, here: answered, it is no longer in flight.
  local sent, seq, tmark, before, tch, conc = f[12], nil, nil, nil, nil, '1'
  if sent then
    local seq_s, tmark_s, before_s, tch_s, conc_s = string.match(sent, '^([^,]*),([^,]*),([^,]*),([^,]*),([^,]*)')
    seq, tmark, before, tch, conc = tonumber(seq_s), tonumber(tmark_s), tonumber(before_s), tonumber(tch_s), conc_s
    redis.call('ZREM', q, string.format('%015d', seq) .. ',' .. before_s .. ',' .. id)
    redis.call('HDEL', v, 'sent:' .. id)
  end
  if conc == '1' then redis.call('ZREM', KEYS[4], id) end
  local delta = tonumber(ARGV[3])
  -- The tokens charged at admission, corrected: nothing to write when nothing changes.
  if delta ~= 0 and not (tch ~= nil and math.max(0, tch + delta) == tch) then
    local held = redis.call('HGET', KEYS[2], id)
    if held then
      local new = math.max(0, tonumber(held) + delta)
      if new ~= tonumber(held) then
        redis.call('HSET', KEYS[2], id, new)
        redis.call('INCRBY', KEYS[3], new - tonumber(held))
      end
    end
  end
  if fold and sent and seq >= (tonumber(f[11] or '') or 0) then
    -- The lowest send admitted before this one and still in flight, unseen (admitted less
    -- than headroom.UNSEEN_S = window / 6 ago): the provider may not have counted it, nor
    -- any send after it.
    local br, bt = 0, 0
    local cut = '(' .. string.format('%.17g', now - window / 6)
    local low = redis.call('ZRANGEBYSCORE', q, cut, '+inf', 'LIMIT', 0, 1)
    if #low > 0 and low[1] ~= '~' then
      local seq2, before2 = string.match(low[1], '^([^,]*),([^,]*),')
      seq2, before2 = tonumber(seq2), tonumber(before2)
      if seq2 < seq then br, bt = seq - seq2, before - before2 end
    end
    local put = {mark = seq}
    local sends, tsent = tonumber(f[9] or '') or seq, tonumber(f[10] or '') or tmark
    hnote(f, 1, 'r', ARGV[11], ARGV[12], ARGV[13], sends - seq + br, now, window, put)
    hnote(f, 5, 't', ARGV[14], ARGV[15], ARGV[16], tsent - tmark + bt, now, window, put)
    hset(v, put)
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
  local a, h, m = KEYS[6 + 3*i], KEYS[7 + 3*i], KEYS[8 + 3*i]
  local first = 14 + 4*i
  local spent, spent_s, alerted
  if mode == 'settle' then
    local _l, _k, _r
    a, h, m, _l, _k, spent, _r, spent_s, alerted = prep(6 + 3*i, first, now)
  end
  local held = redis.call('HGET', m, hold)
  if held then
    redis.call('HINCRBY', a, 'reserved', minus(tonumber(held)))
    redis.call('HDEL', m, hold)
    redis.call('ZREM', h, hold)
  end
  if mode == 'settle' then
    if fresh then
      spent = redis.call('HINCRBY', a, 'spent', ARGV[6])
      -- Replies carry spend exactly: a Lua number prints so only below 2^53.
      if math.abs(spent) < 2^53 then spent_s = string.format('%.0f', spent)
      else spent_s = redis.call('HGET', a, 'spent') end
    end
    out[#out+1] = spent_s
    local reached = passed(first, spent)
    for j = alerted, reached - 1 do out[#out+1] = -(i - 1) - 1; out[#out+1] = j end
    if reached > alerted then redis.call('HSET', a, 'alerted', reached) end
  end
end
return out
"""
)
