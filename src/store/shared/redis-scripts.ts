/**
 * The Lua scripts of the Redis store (store/shared/redis.ts): every check-and-set is one script,
 * so Redis runs it with nothing in between, and every time is the server's (redis.call('TIME')),
 * so hosts with skewed clocks agree on who holds a lease. They mirror postgres.ts statement by
 * statement. Keys: KEYS[1] the account's hash, KEYS[2] the set of account ids, KEYS[3] the refresh
 * log (a stream). An absent optional value is passed as ''. Numbers are written with %.0f (Lua's
 * own tostring would cut a millisecond time to 14 digits).
 *
 * Owns: Lua. Must not: talk to Redis.
 */

const LIB = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function n(x) return string.format('%.0f', x) end
local function append(stream, id, at, event, owner, fence, version, detail)
  local f = {'account', id, 'at', n(at), 'event', event, 'owner', owner}
  if fence and fence ~= '' then f[#f + 1] = 'fence'; f[#f + 1] = fence end
  if version and version ~= '' then f[#f + 1] = 'version'; f[#f + 1] = version end
  if detail and detail ~= '' then f[#f + 1] = 'detail'; f[#f + 1] = detail end
  -- capped (about the newest 100,000 lines): with no eviction allowed, an endless log would end in
  -- OOM answers to every script, the whole fleet down
  redis.call('XADD', stream, 'MAXLEN', '~', '100000', '*', unpack(f))
end
local function ours(k, fence)
  return redis.call('HGET', k, 'fence') == fence
end
`

/** ARGV: id. Returns {now, HGETALL}. */
export const GET = `${LIB}
return {n(now_ms()), redis.call('HGETALL', KEYS[1])}`

/** KEYS: account hashes. Returns {now, HGETALL, HGETALL, ...}. */
export const GET_MANY = `${LIB}
local out = {n(now_ms())}
for i, k in ipairs(KEYS) do out[#out + 1] = redis.call('HGETALL', k) end
return out`

/**
 * KEYS[4]: the fence counter (one for the store: a removed and re-added account never repeats a
 * fence, so a host paused across both cannot match). ARGV: id, owner, leaseMs, reserve ('1').
 * Returns {'mine'|'held'|'missing', now, HGETALL}.
 */
export const CLAIM = `${LIB}
local k = KEYS[1]
local now = now_ms()
if redis.call('EXISTS', k) == 1 then
  local held = tonumber(redis.call('HGET', k, 'lease_until'))
  if held ~= nil and held > now then return {'held', n(now), redis.call('HGETALL', k)} end
  redis.call('HSET', k, 'fence', redis.call('INCR', KEYS[4]))
  redis.call('HSET', k, 'lease_owner', ARGV[2], 'lease_until', n(now + tonumber(ARGV[3])))
  return {'mine', n(now), redis.call('HGETALL', k)}
end
if ARGV[4] ~= '1' then return {'missing', n(now), {}} end
redis.call('HSET', k, 'id', ARGV[1], 'version', '0', 'fence', redis.call('INCR', KEYS[4]), 'lease_owner', ARGV[2],
  'lease_until', n(now + tonumber(ARGV[3])), 'state', 'active', 'created_at', n(now), 'updated_at', n(now))
redis.call('SADD', KEYS[2], ARGV[1])
return {'mine', n(now), redis.call('HGETALL', k)}`

/** ARGV: id, fence, owner. Returns 1, or 0 when the fence moved. */
export const MARK_INTENT = `${LIB}
local k = KEYS[1]
if not ours(k, ARGV[2]) then return 0 end
local now = now_ms()
redis.call('HSET', k, 'intent_fence', ARGV[2], 'intent_owner', ARGV[3], 'intent_at', n(now))
append(KEYS[3], ARGV[1], now, 'intent', ARGV[3], ARGV[2], redis.call('HGET', k, 'version'), '')
return 1`

/**
 * ARGV: id, fence, version, sealed, state, last_error, expires_at, refresh_token_at, granted_at,
 * event, owner, detail. Returns 1, or 0 when the fence or the version moved (nothing written).
 */
export const WRITE = `${LIB}
local k = KEYS[1]
if not ours(k, ARGV[2]) or redis.call('HGET', k, 'version') ~= ARGV[3] then return 0 end
local now = now_ms()
local v = redis.call('HINCRBY', k, 'version', 1)
redis.call('HSET', k, 'sealed', ARGV[4], 'state', ARGV[5], 'updated_at', n(now))
local optional = {'last_error', 'expires_at', 'refresh_token_at', 'granted_at'}
for i, name in ipairs(optional) do
  local value = ARGV[5 + i]
  if value == '' then redis.call('HDEL', k, name) else redis.call('HSET', k, name, value) end
end
-- a re-seal or a migration copies the record as it is: an unfinished refresh stays marked
if ARGV[10] ~= 'rekey' and ARGV[10] ~= 'migrate' then redis.call('HDEL', k, 'intent_fence', 'intent_owner', 'intent_at') end
redis.call('SADD', KEYS[2], ARGV[1])
append(KEYS[3], ARGV[1], now, ARGV[10], ARGV[11], ARGV[2], n(v), ARGV[12])
return 1`

/** ARGV: id, fence. A reservation (version 0) is deleted; else the lease is given up. */
export const RELEASE = `${LIB}
local k = KEYS[1]
if not ours(k, ARGV[2]) then return 0 end
if redis.call('HGET', k, 'version') == '0' then
  redis.call('DEL', k)
  redis.call('SREM', KEYS[2], ARGV[1])
  return 1
end
redis.call('HDEL', k, 'lease_owner', 'lease_until')
return 1`

/** ARGV: id, fence, owner. Returns 1, or 0 when the fence moved or the row is a reservation. */
export const REMOVE = `${LIB}
local k = KEYS[1]
if not ours(k, ARGV[2]) then return 0 end
local v = redis.call('HGET', k, 'version')
if tonumber(v) == nil or tonumber(v) <= 0 then return 0 end
redis.call('DEL', k)
redis.call('SREM', KEYS[2], ARGV[1])
append(KEYS[3], ARGV[1], now_ms(), 'remove', ARGV[3], ARGV[2], v, '')
return 1`

/** ARGV: id, event, owner, fence, version, detail. */
export const LOG = `${LIB}
append(KEYS[3], ARGV[1], now_ms(), ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
return 1`

/** KEYS: the schema key. ARGV: the version this mailkey writes. Returns {from, to}. */
export const INIT = `
local from = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local want = tonumber(ARGV[1])
if from < want then redis.call('SET', KEYS[1], ARGV[1]) end
return {from, math.max(from, want)}`
