-- Whether a shard has work: entries read but not acknowledged, entries the group has not
-- read yet, or (given a time) a timer due by then.
--
-- KEYS  1 stream  2 timers
-- ARGV  1 consumer group  2 now ('' = do not look at timers)
-- Returns 1 or 0.
if ARGV[2] ~= '' and #redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2], 'LIMIT', 0, 1) > 0 then
  return 1
end
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
  return redis.call('XLEN', KEYS[1]) > 0 and 1 or 0
end
if tonumber(redis.call('XPENDING', KEYS[1], ARGV[1])[1]) > 0 then
  return 1
end

local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #newest == 0 then
  return 0
end
local lms, lseq = string.match(last, '^(%d+)-(%d+)$')
local nms, nseq = string.match(newest[1][1], '^(%d+)-(%d+)$')
if tonumber(nms) ~= tonumber(lms) then
  return tonumber(nms) > tonumber(lms) and 1 or 0
end
return tonumber(nseq) > tonumber(lseq) and 1 or 0
