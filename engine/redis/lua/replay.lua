-- Replay a dead letter: re-append its original entry to the shard stream and remove it from
-- the dead-letter stream, together.
--
-- KEYS  1 dead letters  2 stream
-- ARGV  1 dead letter id
-- Returns the new stream entry id, or nil when there is no such dead letter.
local found = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #found == 0 then
  return nil
end
local fields = found[1][2]
local entry = nil
for j = 1, #fields, 2 do
  if fields[j] == 'entry' then
    entry = fields[j + 1]
  end
end
if entry == nil then
  return nil
end
local id = redis.call('XADD', KEYS[2], '*', 'e', entry)
redis.call('XDEL', KEYS[1], ARGV[1])
return id
