-- Record a failed delivery attempt: retry later with backoff, or dead-letter the entry.
--
-- KEYS  1 outbox  2 outbox queue  3 attempts  4 errors  5 dead letters
-- ARGV  1 idempotency key  2 error  3 attempts max  4 now  5 jitter in [0, 1]
--       6 backoff base (s)  7 backoff cap (s)  8 retryable ('1' | '0')
-- Counts the attempt (HINCRBY attempts). While the error is retryable and attempts < max, the
-- entry is re-scored to now + jitter * min(cap, base * 2^(attempts - 1)) ("full jitter"; the
-- caller draws the jitter, so the script stays deterministic) and the error is kept. Else the
-- entry moves to the dead letters as JSON {key, action, error, attempts, at} (action is the
-- entry's JSON as a string, at the time as a string) and leaves outbox, queue, attempts, errors.
-- Returns {'retry', attempts, due} | {'dead', attempts, now} | {'gone', 0, ''} when the key is
-- not in the outbox (delivered or dead-lettered meanwhile): nothing is written then.
local key = ARGV[1]
local action = redis.call('HGET', KEYS[1], key)
if not action then
  return {'gone', 0, ''}
end
local attempts = redis.call('HINCRBY', KEYS[3], key, 1)
if ARGV[8] == '1' and attempts < tonumber(ARGV[3]) then
  local window = math.min(tonumber(ARGV[7]), tonumber(ARGV[6]) * 2 ^ (attempts - 1))
  local due = string.format('%.6f', tonumber(ARGV[4]) + tonumber(ARGV[5]) * window)
  redis.call('ZADD', KEYS[2], due, key)
  redis.call('HSET', KEYS[4], key, ARGV[2])
  return {'retry', attempts, due}
end
local letter = cjson.encode({
  key = key, action = action, error = ARGV[2], attempts = attempts, at = ARGV[4]
})
redis.call('HSET', KEYS[5], key, letter)
redis.call('HDEL', KEYS[1], key)
redis.call('ZREM', KEYS[2], key)
redis.call('HDEL', KEYS[3], key)
redis.call('HDEL', KEYS[4], key)
return {'dead', attempts, ARGV[4]}
