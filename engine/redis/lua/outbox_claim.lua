-- Claim a shard's due outbox entries for delivery, under a lease.
--
-- KEYS  1 outbox (hash key -> action JSON)  2 outbox queue (zset key -> when due)
--       3 attempts (hash key -> failed attempts)
-- ARGV  1 now  2 lease end (now + lease seconds)  3 limit (>= 1)
-- Takes up to `limit` entries whose queue score is <= now, earliest first, and re-scores each
-- to the lease end: while the claim lasts nobody else takes them, and if the dispatcher dies
-- holding them they come due again when it expires (the sweeper then re-dispatches them).
-- A queued key that is no longer in the outbox hash is dropped from the queue.
-- Returns a flat list: key, action JSON, failed attempts so far (a string), key, ...
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local claimed = {}
for _, key in ipairs(due) do
  local action = redis.call('HGET', KEYS[1], key)
  if action then
    redis.call('ZADD', KEYS[2], 'XX', ARGV[2], key)
    claimed[#claimed + 1] = key
    claimed[#claimed + 1] = action
    claimed[#claimed + 1] = redis.call('HGET', KEYS[3], key) or '0'
  else
    redis.call('ZREM', KEYS[2], key)
  end
end
return claimed
