-- Trim a shard stream below the group's oldest pending entry, and never past the group's
-- last-delivered id, so nothing pending or unread is removed (XTRIM MINID, never MAXLEN).
--
-- KEYS  1 stream
-- ARGV  1 consumer group
-- Returns the number of entries removed (0 when the stream or the group does not exist).
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end

local last = nil
for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local info = {}
  for j = 1, #group, 2 do
    info[group[j]] = group[j + 1]
  end
  if info['name'] == ARGV[1] then
    last = info['last-delivered-id']
  end
end
if last == nil then
  return 0
end

local function before(a, b)
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
  if tonumber(ams) ~= tonumber(bms) then
    return tonumber(ams) < tonumber(bms)
  end
  return tonumber(aseq) < tonumber(bseq)
end

local floor = last
local pending = redis.call('XPENDING', KEYS[1], ARGV[1])
if tonumber(pending[1]) > 0 and before(pending[2], floor) then
  floor = pending[2]
end
return redis.call('XTRIM', KEYS[1], 'MINID', floor)
