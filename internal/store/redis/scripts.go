package redis

import goredis "github.com/redis/go-redis/v9"

// Every script touches exactly one key (KEYS[1]), so all of them run
// unchanged on Redis Cluster. Numbers that may exceed 2^53 (CAS uniques,
// values for incr) are never turned into Lua numbers: CAS uniques are
// compared as strings, and incr does its arithmetic in Go (see Store.Incr).
// Deadlines are clamped to 32 bits and now is a Unix time, both exact as
// Lua doubles.

// luaRecord reads a record, raising MALFORMED for data that is not one, and
// returns nil for a missing or (by the caller's clock) expired record.
// A hash with none of the four fields is treated as missing.
const luaRecord = `
local function malformed(what)
  error({err = 'MALFORMED ' .. what})
end

local function decimal(s, digits)
  return s and #s <= digits and string.match(s, '^%d+$') ~= nil
end

local function record(key, now)
  local r = redis.call('HMGET', key, 'v', 'f', 'c', 'd')
  if not (r[1] or r[2] or r[3] or r[4]) then return nil end
  if not r[1] then malformed('field v is missing') end
  if not decimal(r[2], 10) then malformed('field f is not a decimal') end
  if not decimal(r[3], 20) then malformed('field c is not a decimal') end
  if not decimal(r[4], 19) then malformed('field d is not a decimal') end
  local d = tonumber(r[4])
  if d ~= 0 and d <= now then return nil end
  return r
end
`

// Result codes of storeScript.
const (
	codeStored    = 0
	codeNotStored = 1
	codeNotFound  = 2
	codeExists    = 3
)

// storeScript implements every store.Mode.
//
//	KEYS[1] the record
//	ARGV[1] mode: set add replace cas append prepend
//	ARGV[2] value
//	ARGV[3] flags (decimal)
//	ARGV[4] deadline (decimal Unix seconds, 0 = never)
//	ARGV[5] PEXPIREAT argument (deadline in ms)
//	ARGV[6] the new CAS unique
//	ARGV[7] the CAS unique to compare (cas; append/prepend when not 0)
//	ARGV[8] now (the caller's clock)
//	ARGV[9] append/prepend: store.ItemSize of the item without its old value
//	ARGV[10] append/prepend: the item size limit
//
// Returns one of the code* constants. set, add, replace and cas replace the
// whole record (DEL, HSET, PEXPIREAT); a write whose deadline is not after
// now only deletes the key. append/prepend rewrite v and c, keeping f, d
// and the key's expiry.
var storeScript = goredis.NewScript(luaRecord + `
local key, mode, now = KEYS[1], ARGV[1], tonumber(ARGV[8])
if mode ~= 'set' then
  local r = record(key, now)
  if mode == 'add' then
    if r then return 1 end
  elseif mode == 'replace' then
    if not r then return 1 end
  elseif mode == 'cas' then
    if not r then return 2 end
    if r[3] ~= ARGV[7] then return 3 end
  elseif mode == 'append' or mode == 'prepend' then
    if not r then return 1 end
    if ARGV[7] ~= '0' and r[3] ~= ARGV[7] then return 3 end
    if tonumber(ARGV[9]) + #r[1] > tonumber(ARGV[10]) then return 1 end
    local v
    if mode == 'append' then v = r[1] .. ARGV[2] else v = ARGV[2] .. r[1] end
    redis.call('HSET', key, 'v', v, 'c', ARGV[6])
    return 0
  else
    return redis.error_reply('ERR unknown mode ' .. mode)
  end
end
redis.call('DEL', key)
local d = ARGV[4]
if d ~= '0' and tonumber(d) <= now then return 0 end
redis.call('HSET', key, 'v', ARGV[2], 'f', ARGV[3], 'c', ARGV[6], 'd', d)
if d ~= '0' then redis.call('PEXPIREAT', key, ARGV[5]) end
return 0
`)

// touchScript sets a record's deadline and returns {v, f, c}, or nil when
// the record is missing or expired. A deadline not after now deletes the
// record after answering with it once, as memcached does.
//
//	KEYS[1] the record
//	ARGV[1] deadline (decimal Unix seconds, 0 = never)
//	ARGV[2] PEXPIREAT argument
//	ARGV[3] now
var touchScript = goredis.NewScript(luaRecord + `
local key, d, now = KEYS[1], ARGV[1], tonumber(ARGV[3])
local r = record(key, now)
if not r then return nil end
if d ~= '0' and tonumber(d) <= now then
  redis.call('DEL', key)
else
  redis.call('HSET', key, 'd', d)
  if d == '0' then
    redis.call('PERSIST', key)
  else
    redis.call('PEXPIREAT', key, ARGV[2])
  end
end
return {r[1], r[2], r[3]}
`)

// deleteScript deletes a record and returns 1 if it was live, 0 if it was
// missing or expired. Whatever the key holds is deleted: foreign or
// malformed data under the prefix can be removed with a memcache delete.
//
//	KEYS[1] the record
//	ARGV[1] now
var deleteScript = goredis.NewScript(`
local key, now = KEYS[1], tonumber(ARGV[1])
local t = redis.call('TYPE', key)
t = t.ok or t
if t == 'none' then return 0 end
local live = 1
if t == 'hash' then
  local d = tonumber(redis.call('HGET', key, 'd') or '')
  if d and d ~= 0 and d <= now then live = 0 end
end
redis.call('DEL', key)
return live
`)
