-- Write one shard's part of a batch, all or nothing: states, timer changes, outbox entries,
-- dead letters, acks and counters. Fenced: with a token, nothing is written unless the
-- shard's lease is still held by that token (an expired or stolen lease writes nothing).
--
-- KEYS  1 lease  2 accounts  3 timers  4 timer generations  5 outbox  6 outbox queue
--       7 delivered  8 stream  9 dead letters  10 counters  11.. one account key per state
-- ARGV  1 token ('' = unfenced)  2 consumer group  3 applied (counter increment)
--       then five counted sections, each "n, items...":
--       states        (account id, state blob)         -> SET + SADD accounts
--       cancels       (member)                         -> ZREM + HDEL generation
--       arms          (member, generation, due)        -> ZADD + HSET generation
--       actions       (idempotency key, json, score)   -> HSETNX outbox + ZADD NX queue,
--                                                         unless already delivered
--       acks          (entry id)                       -> XACK
--       dead letters  (entry id, entry, account, error) -> XADD dlq + XACK
-- Returns 1, or 0 when the lease is not held by the token.
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end

local cursor = 4
local function take()
  local value = ARGV[cursor]
  cursor = cursor + 1
  return value
end

for s = 1, tonumber(take()) do
  local account, blob = take(), take()
  redis.call('SET', KEYS[10 + s], blob)
  redis.call('SADD', KEYS[2], account)
end

for _ = 1, tonumber(take()) do
  local member = take()
  redis.call('ZREM', KEYS[3], member)
  redis.call('HDEL', KEYS[4], member)
end

for _ = 1, tonumber(take()) do
  local member, generation, due = take(), take(), take()
  redis.call('ZADD', KEYS[3], due, member)
  redis.call('HSET', KEYS[4], member, generation)
end

for _ = 1, tonumber(take()) do
  local key, action, score = take(), take(), take()
  if redis.call('HEXISTS', KEYS[7], key) == 0
      and redis.call('HSETNX', KEYS[5], key, action) == 1 then
    redis.call('ZADD', KEYS[6], 'NX', score, key)
  end
end

local acks = {}
for _ = 1, tonumber(take()) do
  acks[#acks + 1] = take()
end

local dead = tonumber(take())
for _ = 1, dead do
  local id, entry, account, err = take(), take(), take(), take()
  redis.call('XADD', KEYS[9], '*', 'entry', entry, 'error', err, 'account', account, 'id', id)
  acks[#acks + 1] = id
end

for first = 1, #acks, 500 do
  redis.call('XACK', KEYS[8], ARGV[2], unpack(acks, first, math.min(first + 499, #acks)))
end

local applied = tonumber(ARGV[3])
if applied > 0 then
  redis.call('HINCRBY', KEYS[10], 'applied', applied)
end
if dead > 0 then
  redis.call('HINCRBY', KEYS[10], 'dead_letters', dead)
end
return 1
