-- Record that an outbox entry was delivered. Idempotent: the first receipt stays.
--
-- KEYS  1 outbox  2 outbox queue  3 attempts  4 errors  5 dead letters  6 the earlier
--       versions' receipts hash  7 the account's recent-deliveries list  8.. the ring of
--       receipt hashes (receipts.lua)
-- ARGV  1 idempotency key  2 receipt  3 summary JSON for the account page ('' = none)
--       4 how many recent deliveries the list keeps  5 receipt retention (ms)
-- Drops the key from the outbox, the queue, its attempt count and last error, and the dead
-- letters (a delivery that raced with a dead-lettering wins), then records the receipt; the
-- account's recent-deliveries list expires a receipt retention after its latest delivery.
-- Returns 1 when the entry was pending (or dead), 0 when it was not (already delivered).
local key = ARGV[1]
local pending = redis.call('HDEL', KEYS[1], key) + redis.call('HDEL', KEYS[5], key)
redis.call('ZREM', KEYS[2], key)
redis.call('HDEL', KEYS[3], key)
redis.call('HDEL', KEYS[4], key)
record_receipt(KEYS[6], {unpack(KEYS, 8)}, tonumber(ARGV[5]), key, ARGV[2])
if pending > 0 then
  if ARGV[3] ~= '' then
    redis.call('LPUSH', KEYS[7], ARGV[3])
    redis.call('LTRIM', KEYS[7], 0, tonumber(ARGV[4]) - 1)
    redis.call('PEXPIRE', KEYS[7], ARGV[5])  -- kept as long as the latest delivery's receipt
  end
  return 1
end
return 0
