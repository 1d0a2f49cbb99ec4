-- Give up a shard lease, only if the caller holds it.
-- KEYS  1 lease    ARGV  1 token
-- Returns 1 when released, 0 when the lease is held by someone else or has expired.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
