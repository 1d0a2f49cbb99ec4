"""The ingest script: dedupe by messageId and append to one shard's stream, then flag a kick."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import NoScriptError

from engine.redis.keys import ShardKeys

#: KEYS and ARGV line up from 3 on: the i-th event's dedupe key is KEYS[i], its JSON ARGV[i].
SOURCE = """\
-- Append a batch of events to one shard's stream, each only if its messageId is new, then
-- flag the shard for a drain. Every key is the shard's (hash tag {sNN}): valid on a cluster.
--
-- KEYS  1 stream  2 kicked flag  3..n+2 each event's dedupe key (hg:{sNN}:seen:<messageId>)
-- ARGV  1 dedupe window (s)  2 kicked flag TTL (s)  3..n+2 each event's JSON (field 'e')
-- Returns {appended, duplicates, kicked, flags}: kicked is 1 when this call set the flag
-- (also on all-duplicate calls: a client retrying after a failed kick re-kicks); flags has
-- one character per event, '1' appended, '0' duplicate.
if #KEYS ~= #ARGV then
  return redis.error_reply('ingest: KEYS and ARGV must have the same length')
end
local appended, duplicates, flags = 0, 0, {}
for i = 3, #KEYS do
  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[1]) then
    redis.call('XADD', KEYS[1], '*', 'e', ARGV[i])
    appended = appended + 1
    flags[#flags + 1] = '1'
  else
    duplicates = duplicates + 1
    flags[#flags + 1] = '0'
  end
end
local kicked = 0
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then
  kicked = 1
end
return {appended, duplicates, kicked, table.concat(flags)}
"""
SHA = hashlib.sha1(SOURCE.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ShardAppend:
    """What the script did on one shard: counts, whether it set the kick flag, per-event news."""

    shard: int
    appended: int
    duplicates: int
    kicked: bool
    new: tuple[bool, ...]


def script_args(
    keys: ShardKeys, items: Sequence[tuple[str, bytes]], window_s: int, kick_ttl_s: int
) -> tuple[list[str], list[bytes | int]]:
    """KEYS and ARGV for one shard's call, from ``(message_id, event JSON)`` pairs."""
    names = [keys.stream, keys.kicked, *(keys.dedupe(message_id) for message_id, _ in items)]
    args: list[bytes | int] = [window_s, kick_ttl_s, *(payload for _, payload in items)]
    return names, args


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
    batches: Mapping[int, Sequence[tuple[str, bytes]]],
    *,
    window_s: int,
    kick_ttl_s: int,
) -> dict[int, ShardAppend]:
    """Run the script once per shard, all in one pipeline (EVAL where the script is not cached)."""
    calls = {
        shard: script_args(ShardKeys(shard), items, window_s, kick_ttl_s)
        for shard, items in batches.items()
        if items
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
