-- Pop a shard's due accounts, earliest first: each member of the timers sorted set is an
-- account scored with its earliest due timer. Each popped account is either woken with one
-- wake entry appended to the shard stream (mode 'stream': the drain fires its due timers from
-- its state) or returned (mode 'return').
--
-- KEYS  1 timers  2 timer generations (the old format's, see below)  3 stream
-- ARGV  1 now  2 limit  3 mode ('stream' | 'return')
-- Returns the number of accounts woken (stream), or their ids, earliest first (return).
--
-- Members of the old format (one per timer, 'account|timer_id', with its generation in
-- KEYS[2]) are recognised by that generation, which is dropped, and wake their account.
--
-- The wake is an Event.to_dict(): {"k":"wake","m","t","a"}, t = now: the drain fires the
-- timers due by then. Strings go through cjson.encode; now is spliced in as the caller sent
-- it, so it round-trips exactly (cjson would round numbers to 14 digits).
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
if #due == 0 then
  return ARGV[3] == 'stream' and 0 or {}
end
for first = 1, #due, 500 do
  redis.call('ZREM', KEYS[1], unpack(due, first, math.min(first + 499, #due)))
end
local old = redis.call('EXISTS', KEYS[2]) == 1
local woken, seen = {}, {}
for _, member in ipairs(due) do
  local account = member
  if old and redis.call('HDEL', KEYS[2], member) == 1 then
    account = string.sub(member, 1, string.find(member, '|[^|]*$') - 1)
  end
  if not seen[account] then
    seen[account] = true
    woken[#woken + 1] = account
  end
end
if ARGV[3] ~= 'stream' then
  return woken
end
for _, account in ipairs(woken) do
  local wake = '{"k":"wake","m":' .. cjson.encode('wake:' .. account .. '@' .. ARGV[1])
    .. ',"t":' .. ARGV[1] .. ',"a":' .. cjson.encode(account) .. '}'
  redis.call('XADD', KEYS[3], '*', 'e', wake)
end
return #woken
