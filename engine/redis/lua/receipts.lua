-- Receipts of delivered actions: a library, put before the scripts that read or record them.
--
-- A shard keeps its receipts (idempotency key -> receipt) in a ring of hashes, each holding the
-- deliveries of one period of retention / (#ring - 1) on this server's clock, with a field
-- 'live_until': when its newest receipt is one retention old (ms). A hash is read while
-- live_until is ahead of now. The delivery that brings its slot round again UNLINKs it (freed in
-- the background, however many receipts it holds); on a shard with no deliveries it expires one
-- period later. So a receipt is honoured for one to #ring / (#ring - 1) retentions.
--
-- The earlier versions' single hash (no live_until) is read as it is until the first delivery
-- of this version gives it the current period's live_until; it then ages out with that period.

local function receipts_now()
  local clock = redis.call('TIME')
  return tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
end

-- The hashes among `hashes` whose receipts are honoured at `now` (ms).
local function live_receipts(hashes, now)
  local live = {}
  for _, hash in ipairs(hashes) do
    local live_until = redis.call('HGET', hash, 'live_until')
    if live_until then
      if tonumber(live_until) > now then
        live[#live + 1] = hash
      end
    elseif redis.call('EXISTS', hash) == 1 then
      live[#live + 1] = hash
    end
  end
  return live
end

-- The receipt of `key` in the `live` hashes, or false.
local function find_receipt(live, key)
  for _, hash in ipairs(live) do
    local receipt = redis.call('HGET', hash, key)
    if receipt then
      return receipt
    end
  end
  return false
end

-- Give `hash` a new period: empty but for its live_until, and an expiry one period after it.
local function start_period(hash, live_until, span)
  redis.call('UNLINK', hash)
  redis.call('HSET', hash, 'live_until', live_until)
  redis.call('PEXPIREAT', hash, live_until + math.ceil(span))
end

-- The earlier versions' hash: given the current period's live_until (and expiry) the first
-- time, UNLINKed once that period is over.
local function age_legacy(legacy, now, live_until, span)
  local held = redis.call('HGET', legacy, 'live_until')
  if held then
    if tonumber(held) <= now then
      redis.call('UNLINK', legacy)
    end
  elseif redis.call('EXISTS', legacy) == 1 then
    redis.call('HSET', legacy, 'live_until', live_until)
    redis.call('PEXPIREAT', legacy, live_until + math.ceil(span))
  end
end

-- Record `receipt` for `key` in the ring hash of the current period of `retention` (ms), unless
-- a live receipt is there already (the first one stays).
local function record_receipt(legacy, ring, retention, key, receipt)
  local now = receipts_now()
  local span = retention / (#ring - 1)
  local period = math.floor(now / span)
  local live_until = math.ceil((period + #ring) * span)
  local current = ring[period % #ring + 1]
  if tonumber(redis.call('HGET', current, 'live_until')) ~= live_until then
    start_period(current, live_until, span)
  end
  age_legacy(legacy, now, live_until, span)
  if not find_receipt(live_receipts({legacy, unpack(ring)}, now), key) then
    redis.call('HSET', current, key, receipt)
  end
end
