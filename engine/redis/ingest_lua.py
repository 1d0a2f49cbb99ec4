"""The ingest script: dedupe by messageId and append to one shard's stream, then flag a kick.

A shard remembers the messageIds it appended in a ring of :data:`SEEN_SLOTS` hashes
(:attr:`ShardKeys.seen`), each holding the ids of one period of a window / (SEEN_SLOTS - 1) on
the server's clock: a 12-byte hash of the id (:func:`seen_field`) -> its append time (ms, read
by :func:`appended_ms`). A period's hash is emptied when its slot comes round again,
SEEN_SLOTS - 1 periods (one window) after that period ended, so every id appended less than a
window ago is found, and an id is kept for one to SEEN_SLOTS / (SEEN_SLOTS - 1) windows. Two
different ids collide with a probability of n / 2**96 for an id checked against n remembered
ones: about 10**-20 per event at n = 10**9, never in practice.

The periods follow from the window: changing the window can forget ids appended before the
change (a retry of one is appended again), as moving to these hashes forgot the one key per id
of earlier versions (``hg:{sNN}:seen:<id>``, left to expire).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from redis import Redis
from redis.exceptions import NoScriptError

from engine.redis.keys import ShardKeys, seen_field

SOURCE = """\
-- Append a batch of events to one shard's stream, each only if its messageId was not appended
-- within the dedupe window, then flag the shard for a drain. Every key is the shard's (hash tag
-- {sNN}): valid on a cluster.
--
-- KEYS  1 stream  2 kicked flag  3.. the ring of seen hashes (at least 2)
-- ARGV  1 dedupe window (ms)  2 kicked flag TTL (s)  3 the events' messageId hashes, 12 bytes
--       each, end to end  4 their JSONs (field 'e'), joined by newlines (JSON has none raw)
-- A window is split into (#KEYS - 3) periods on this server's clock; period p's ids go to
-- KEYS[3 + p % (#KEYS - 2)], an id's hash -> its append time (ms in 6 bytes, big-endian: less
-- memory than 13 digits), with field 'period' = p. A hash still holding an older period holds
-- nothing appended within the window: it is emptied when it comes round again, and not searched
-- meanwhile.
-- Returns {appended, duplicates, kicked, flags}: kicked is 1 when this call set the flag
-- (also on all-duplicate calls: a client retrying after a failed kick re-kicks); flags has
-- one character per event, '1' appended, '0' duplicate.
local ids, jsons, from = ARGV[3], {}, 1
while true do
  local newline = string.find(ARGV[4], '\\n', from, true)
  jsons[#jsons + 1] = string.sub(ARGV[4], from, (newline or 0) - 1)
  if not newline then
    break
  end
  from = newline + 1
end
if #ARGV ~= 4 or #KEYS < 4 or #ids ~= 12 * #jsons then
  return redis.error_reply('ingest: a 12-byte hash per JSON, and at least two seen hashes')
end
local function stamp(ms)
  local bytes = {}
  for i = 6, 1, -1 do
    bytes[i] = ms % 256
    ms = math.floor(ms / 256)
  end
  return string.char(bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6])
end
local function ms_of(stamped)
  local ms = 0
  for i = 1, 6 do
    ms = ms * 256 + string.byte(stamped, i)
  end
  return ms
end
local window = tonumber(ARGV[1])
local slots = #KEYS - 2
local span = window / (slots - 1)
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local period = math.floor(now / span)
local current = KEYS[3 + period % slots]
if tonumber(redis.call('HGET', current, 'period')) ~= period then
  redis.call('UNLINK', current)
  redis.call('HSET', current, 'period', period)
  -- needed until its last id is a window old; normally emptied by the call that reuses it
  redis.call('PEXPIREAT', current, math.ceil((period + slots + 1) * span))
end
local others = {}
for i = 3, #KEYS do
  if KEYS[i] ~= current then
    local held = tonumber(redis.call('HGET', KEYS[i], 'period'))
    if held and held > period - slots then
      others[#others + 1] = KEYS[i]
    end
  end
end
local appended, duplicates, flags, at_now = 0, 0, {}, stamp(now)
for i, json in ipairs(jsons) do
  local id = string.sub(ids, 12 * i - 11, 12 * i)
  local seen = false
  for _, key in ipairs(others) do
    local at = redis.call('HGET', key, id)
    if at and now - ms_of(at) < window then
      seen = true
      break
    end
  end
  if seen or redis.call('HSETNX', current, id, at_now) == 0 then
    duplicates = duplicates + 1
    flags[#flags + 1] = '0'
  else
    redis.call('XADD', KEYS[1], '*', 'e', json)
    appended = appended + 1
    flags[#flags + 1] = '1'
  end
end
local kicked = 0
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then
  kicked = 1
end
return {appended, duplicates, kicked, table.concat(flags)}
"""
SHA = hashlib.sha1(SOURCE.encode()).hexdigest()


def appended_ms(stamp: bytes) -> int:
    """The append time (ms) a seen hash holds for an id: 6 bytes, big-endian."""
    return int.from_bytes(stamp, "big")


@dataclass(frozen=True, slots=True)
class ShardAppend:
    """What the script did on one shard: counts, whether it set the kick flag, per-event news."""

    shard: int
    appended: int
    duplicates: int
    kicked: bool
    new: tuple[bool, ...]


@dataclass(slots=True)
class ShardEvents:
    """One shard's events for the script, in order: their messageIds' fields and their JSON."""

    ids: list[bytes] = field(default_factory=list)
    jsons: list[bytes] = field(default_factory=list)

    def add(self, message_id: str, json: bytes) -> int:
        """Add an event (compact JSON, as orjson writes it); its position in the batch."""
        self.ids.append(seen_field(message_id))
        self.jsons.append(json)
        return len(self.jsons) - 1


def script_args(
    keys: ShardKeys, events: ShardEvents, window_s: int, kick_ttl_s: int
) -> tuple[list[str], list[bytes | int]]:
    """KEYS and ARGV for one shard's call."""
    names = [keys.stream, keys.kicked, *keys.seen]
    return names, [window_s * 1000, kick_ttl_s, b"".join(events.ids), b"\n".join(events.jsons)]


def _result(shard: int, reply: Sequence[object]) -> ShardAppend:
    appended, duplicates, kicked, flags = reply
    text = flags.decode() if isinstance(flags, bytes) else str(flags)
    return ShardAppend(
        shard,
        int(str(appended)),
        int(str(duplicates)),
        str(kicked) == "1",
        tuple(flag == "1" for flag in text),
    )


def append_shards(
    client: Redis,
    batches: Mapping[int, ShardEvents],
    *,
    window_s: int,
    kick_ttl_s: int,
) -> dict[int, ShardAppend]:
    """Run the script once per shard, all in one pipeline (EVAL where the script is not cached)."""
    calls = {
        shard: script_args(ShardKeys(shard), events, window_s, kick_ttl_s)
        for shard, events in batches.items()
        if events.jsons
    }
    if not calls:
        return {}
    pipe = client.pipeline(transaction=False)
    for names, args in calls.values():
        pipe.evalsha(SHA, len(names), *names, *args)
    replies = dict(zip(calls, pipe.execute(raise_on_error=False), strict=True))
    missing = [shard for shard, reply in replies.items() if isinstance(reply, NoScriptError)]
    if missing:  # the script never ran for these: running it now is safe
        pipe = client.pipeline(transaction=False)
        for shard in missing:
            names, args = calls[shard]
            pipe.eval(SOURCE, len(names), *names, *args)
        replies.update(zip(missing, pipe.execute(raise_on_error=False), strict=True))
    for reply in replies.values():
        if isinstance(reply, Exception):
            raise reply
    return {shard: _result(shard, reply) for shard, reply in replies.items()}
