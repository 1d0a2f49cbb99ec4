-- Pop a shard's due timers, earliest first: each is removed with its generation and either
-- appended to the shard stream as a timer event (mode 'stream') or returned (mode 'return').
--
-- KEYS  1 timers  2 timer generations  3 stream
-- ARGV  1 now  2 limit  3 mode ('stream' | 'return')
-- Returns the number moved (stream), or a flat list member, generation, due (return).
--
-- The event is Event.to_dict() of a timer firing: {"k","m","t","a","x"}. Strings go through
-- cjson.encode; the due time is spliced in as Redis formats the score, so it round-trips
-- exactly (cjson would round numbers to 14 digits).
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES',
  'LIMIT', 0, ARGV[2])
local popped = {}
for i = 1, #due, 2 do
  local member, score = due[i], due[i + 1]
  local generation = redis.call('HGET', KEYS[2], member) or '0'
  redis.call('ZREM', KEYS[1], member)
  redis.call('HDEL', KEYS[2], member)
  if ARGV[3] == 'stream' then
    local cut = string.find(member, '|[^|]*$')
    local account, timer = string.sub(member, 1, cut - 1), string.sub(member, cut + 1)
    local message = 'timer:' .. account .. ':' .. timer .. '#' .. generation
    local event = '{"k":"timer","m":' .. cjson.encode(message)
      .. ',"t":' .. score
      .. ',"a":' .. cjson.encode(account)
      .. ',"x":[' .. cjson.encode(timer) .. ',' .. generation .. ',' .. score .. ']}'
    redis.call('XADD', KEYS[3], '*', 'e', event)
  else
    popped[#popped + 1] = member
    popped[#popped + 1] = generation
    popped[#popped + 1] = score
  end
end
if ARGV[3] == 'stream' then
  return #due / 2
end
return popped
