"""Redis memory per account, measured three ways.

- ``bytes_per_account`` (the headline): MEMORY USAGE of what is kept per account for good —
  its state key (its timers are in it), its member of the shard's timers sorted set (one per
  account with open timers) and its membership of the shard's accounts set — per account.
  This is the design's budget ("everything stored per account, not counting streams in
  flight"), in Redis's own accounting of keys (values, key names, per-key overhead).
- ``used_memory_per_account``: INFO ``used_memory`` after the run minus before it (both with
  the workers connected and idle), divided by the accounts. Everything the run left in Redis
  counts, including what is not kept per account: the dedupe hashes (each event's id for one
  to 1.5 dedupe windows, 24 h by default), outbox entries not delivered (no dispatcher runs in
  the benchmark), the user directory, the streams' trimmed remains, what MEMORY USAGE leaves
  out (expiry entries, hash-table slots), and allocator overhead.
- ``avg_state_len``: the mean STRLEN of the stored states (engine/core/state.py's stored
  form), so the blob alone.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import redis

#: Key kinds, by a fragment of their names (engine/redis/keys.py), first match wins.
KINDS = (
    (b":acct:", "states"),
    (b":seen:", "dedupe keys"),
    (b":timers", "timers"),
    (b":accounts", "accounts sets"),
    (b":outbox", "outbox"),
    (b":delivered", "receipts"),
    (b":recent:", "receipts"),
    (b":stream", "streams"),
    (b"hg:users", "user directory"),
    (b"hg:parked", "user directory"),
)
#: Kinds kept for as long as the account exists (the per-account budget).
PER_ACCOUNT = ("states", "timers", "accounts sets")
SAMPLE = 2000


@dataclass
class Memory:
    """Memory figures after a run (see the module's docstring for what each counts)."""

    accounts: int
    used_delta: int
    avg_state_len: float
    kinds: dict[str, int] = field(default_factory=dict)

    @property
    def kept_per_account(self) -> float:
        """What each account keeps for good (the design's budget)."""
        return sum(self.kinds.get(kind, 0) for kind in PER_ACCOUNT) / self.accounts

    @property
    def used_per_account(self) -> float:
        """The ``used_memory`` delta, per account: everything the run left."""
        return self.used_delta / self.accounts


def used_memory(client: redis.Redis) -> int:
    """INFO memory ``used_memory``: bytes the allocator holds for the data set and buffers."""
    return int(client.info("memory")["used_memory"])


def kind_of(key: bytes) -> str:
    for fragment, kind in KINDS:
        if fragment in key:
            return kind
    return "other"


def measure(client: redis.Redis, before: int, accounts: int) -> Memory:
    """The memory figures now, against ``used_memory`` taken before the run."""
    delta = used_memory(client) - before
    by_kind: dict[str, list[bytes]] = defaultdict(list)
    for key in client.scan_iter(count=5000):
        by_kind[kind_of(key)].append(key)
    kinds: Counter[str] = Counter()
    for kind, names in by_kind.items():
        sample = names if len(names) <= SAMPLE else random.Random(1).sample(names, SAMPLE)
        pipe = client.pipeline(transaction=False)
        for name in sample:
            pipe.memory_usage(name, samples=0)
        used = sum(int(u or 0) for u in pipe.execute())
        kinds[kind] = round(used * len(names) / len(sample))
    states = by_kind.get("states", [])
    pipe = client.pipeline(transaction=False)
    for name in states:
        pipe.strlen(name)
    lengths = pipe.execute() if states else []
    average = sum(lengths) / len(lengths) if lengths else 0.0
    return Memory(accounts, delta, average, dict(kinds))
