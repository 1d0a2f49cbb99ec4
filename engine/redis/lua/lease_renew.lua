-- Extend a shard lease, only if the caller still holds it.
-- KEYS  1 lease    ARGV  1 token  2 ttl in milliseconds
-- Returns 1 when renewed, 0 when the lease is held by someone else or has expired.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
