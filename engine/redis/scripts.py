"""The Lua scripts (``engine/redis/lua/*.lua``), and the batch a shard's commit script writes.

Each script's header states its KEYS/ARGV contract. Every key a script touches is passed in
KEYS and belongs to one shard (or one hash tag), so the scripts are valid on Redis Cluster.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

import orjson
from redis import Redis
from redis.exceptions import NoScriptError
from redis.typing import EncodableT

from engine.redis.keys import GROUP, ShardKeys
from engine.redis.timers import earliest_due
from engine.runtime.store import Commit

#: The one field of a shard stream entry: the event as ``orjson(Event.to_dict())``.
EVENT_FIELD = b"e"
#: Dead-letter error texts are cut to this many characters.
MAX_ERROR = 2000


@dataclass(frozen=True, slots=True)
class LuaScript:
    """One Lua script: run by its SHA1, loaded into the server's script cache on first use."""

    name: str
    source: str
    sha: str

    @classmethod
    def load(cls, name: str, *libraries: str) -> LuaScript:
        """The script ``lua/<name>.lua`` shipped with this package, after the ``lua/*.lua``
        libraries (local functions) it uses."""
        lua = files("engine.redis").joinpath("lua")
        source = "".join(lua.joinpath(f"{part}.lua").read_text("utf-8") for part in libraries)
        source += lua.joinpath(f"{name}.lua").read_text("utf-8")
        return cls(name, source, hashlib.sha1(source.encode()).hexdigest())

    def __call__(self, client: Redis, keys: Sequence[str], args: Sequence[EncodableT]) -> Any:
        """Run the script (EVALSHA, falling back to EVAL when the server does not have it)."""
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return client.eval(self.source, len(keys), *keys, *args)


#: The library of the scripts that read or record delivery receipts.
RECEIPTS = "receipts"
COMMIT = LuaScript.load("commit", RECEIPTS)
POP_TIMERS = LuaScript.load("pop_timers")
TRIM = LuaScript.load("trim")
BACKLOG = LuaScript.load("backlog")
REPLAY = LuaScript.load("replay")
LEASE_RENEW = LuaScript.load("lease_renew")
LEASE_RELEASE = LuaScript.load("lease_release")
SAVE_TASK = LuaScript.load("save_task")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A stream entry that could not be applied: kept with its error for inspection and replay."""

    entry_id: str
    fields: Mapping[bytes, bytes] | Mapping[str, str]
    account: str | None
    error: str

    @property
    def entry(self) -> bytes:
        """The entry's event payload (field ``e``); a JSON of all its fields when it has none."""
        raw = {_bytes(name): _bytes(value) for name, value in self.fields.items()}
        if EVENT_FIELD in raw:
            return raw[EVENT_FIELD]
        text = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in raw.items()}
        return orjson.dumps(text)


@dataclass
class ShardCommit(Commit):
    """What a drain task writes for one shard's batch, fenced by the shard's lease.

    Besides a ``Commit``'s states and outbox entries: the stream entries to acknowledge, the
    entries that failed (dead letters, acknowledged too), and how many entries were applied.
    Timers are written from the states (see engine/redis/timers.py), so the netted timer
    changes a ``Commit`` also carries are not needed here.
    """

    acks: list[str] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    applied: int = 0


def commit_call(
    keys: ShardKeys, token: str, batch: ShardCommit
) -> tuple[list[str], list[EncodableT]]:
    """KEYS and ARGV of the commit script for one shard's part (``token=''``: unfenced)."""
    script_keys = [
        keys.lease,
        keys.accounts,
        keys.timers,
        keys.outbox,
        keys.outbox_queue,
        keys.legacy_receipts,
        keys.stream,
        keys.dead_letters,
        keys.counters,
        *(keys.account(s.account_id) for s in batch.states),
        *keys.receipts,
    ]
    args: list[EncodableT] = [token, GROUP, batch.applied, len(batch.states)]
    for state in batch.states:
        due = earliest_due(state)
        args += [state.account_id, state.dumps(), "" if due is None else due]
    args.append(len(batch.actions))
    for action in batch.actions:
        args += [action.key, orjson.dumps(action.to_dict()), float(action.deliver_at)]
    args.append(len(batch.acks))
    args += batch.acks
    args.append(len(batch.dead_letters))
    for dead in batch.dead_letters:
        args += [dead.entry_id, dead.entry, dead.account or "", dead.error[:MAX_ERROR]]
    return script_keys, args


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()
