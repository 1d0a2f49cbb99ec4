-- Put an outbox dead letter back in the outbox, due at once, with no attempts counted.
--
-- KEYS  1 outbox  2 outbox queue  3 dead letters  4 the earlier versions' receipts hash
--       5.. the ring of receipt hashes (receipts.lua)
-- ARGV  1 idempotency key  2 now
-- Returns 1 when it was put back, 0 when there is no such dead letter (or the key has been
-- delivered meanwhile: the dead letter is dropped then, nothing is queued).
local key = ARGV[1]
local letter = redis.call('HGET', KEYS[3], key)
if not letter then
  return 0
end
redis.call('HDEL', KEYS[3], key)
if find_receipt(live_receipts({unpack(KEYS, 4)}, receipts_now()), key) then
  return 0
end
redis.call('HSET', KEYS[1], key, cjson.decode(letter)['action'])
redis.call('ZADD', KEYS[2], ARGV[2], key)
return 1
