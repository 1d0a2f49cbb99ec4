-- Write one shard's part of a batch, all or nothing: states (with their accounts' places in
-- the timers sorted set), outbox entries, dead letters, acks and counters. Fenced: with a
-- token, nothing is written unless the shard's lease is still held by that token (an expired
-- or stolen lease writes nothing).
--
-- KEYS  1 lease  2 accounts  3 timers  4 outbox  5 outbox queue  6 the earlier versions'
--       receipts hash  7 stream  8 dead letters  9 counters  10.. one account key per state,
--       then the ring of receipt hashes (receipts.lua)
-- ARGV  1 token ('' = unfenced)  2 consumer group  3 applied (counter increment)
--       then four counted sections, each "n, items...":
--       states        (account id, state blob, earliest due timer or '')
--                                                      -> SET + SADD accounts, and ZADD the
--                                                         account to timers (ZREM with '')
--       actions       (idempotency key, json, score)   -> HSETNX outbox + ZADD NX queue,
--                                                         unless a live receipt has the key
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

local states = tonumber(take())
for s = 1, states do
  local account, blob, due = take(), take(), take()
  redis.call('SET', KEYS[9 + s], blob)
  redis.call('SADD', KEYS[2], account)
  if due == '' then
    redis.call('ZREM', KEYS[3], account)
  else
    redis.call('ZADD', KEYS[3], due, account)
  end
end

local actions = tonumber(take())
local delivered = {}
if actions > 0 then
  delivered = live_receipts({KEYS[6], unpack(KEYS, 10 + states)}, receipts_now())
end
for _ = 1, actions do
  local key, action, score = take(), take(), take()
  if not find_receipt(delivered, key)
      and redis.call('HSETNX', KEYS[4], key, action) == 1 then
    redis.call('ZADD', KEYS[5], 'NX', score, key)
  end
end

local acks = {}
for _ = 1, tonumber(take()) do
  acks[#acks + 1] = take()
end

local dead = tonumber(take())
for _ = 1, dead do
  local id, entry, account, err = take(), take(), take(), take()
  redis.call('XADD', KEYS[8], '*', 'entry', entry, 'error', err, 'account', account, 'id', id)
  acks[#acks + 1] = id
end

for first = 1, #acks, 500 do
  redis.call('XACK', KEYS[7], ARGV[2], unpack(acks, first, math.min(first + 499, #acks)))
end

local applied = tonumber(ARGV[3])
if applied > 0 then
  redis.call('HINCRBY', KEYS[9], 'applied', applied)
end
if dead > 0 then
  redis.call('HINCRBY', KEYS[9], 'dead_letters', dead)
end
return 1
