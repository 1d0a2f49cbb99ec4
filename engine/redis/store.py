"""The Redis store: account states, timers, outbox and dead letters per shard, on Redis.

Everything of an account lives on its shard (``shard_of(account_id)``), under the shard's hash
tag. Two ways in:

- the ``Store`` interface (embedded runner, contract tests): ``commit`` splits a ``Commit`` by
  shard and writes each shard's part atomically (the commit script, unfenced);
- the shard API a drain task uses while it holds a shard's lease: ``load`` a batch's accounts
  (one round trip), ``fenced_commit`` its ``ShardCommit`` (states, timers, outbox, acks, dead
  letters and counters, only if the lease is still held), ``pop_due_timers`` (wakes of the
  accounts with due timers) into the shard stream, ``ensure_group`` and ``trim`` the stream,
  and inspect, ``discard_dead_letter`` or ``replay_dead_letter`` dead letters.

Timers are kept in the accounts' states; Redis indexes them with one member per account (see
engine/redis/timers.py).
"""

from __future__ import annotations

import heapq
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

import orjson
from redis import Redis
from redis.client import Pipeline
from redis.exceptions import ResponseError

from engine.core.effects import ActionEffect
from engine.core.state import AccountState
from engine.redis import keys as k
from engine.redis.keys import GROUP, ShardKeys, shard_of
from engine.redis.outbox import RECEIPT_RETENTION_S, Outbox
from engine.redis.scripts import (
    BACKLOG,
    COMMIT,
    POP_TIMERS,
    REPLAY,
    SAVE_TASK,
    TRIM,
    DeadLetter,
    ShardCommit,
    commit_call,
)
from engine.redis.timers import due_timers
from engine.runtime.store import Commit, DueTimer, Store

__all__ = ["DeadLetter", "RedisStore", "ShardCommit"]

_ENTRY_ID = re.compile(r"\d+-\d+")


class RedisStore(Store):
    """The production store, over a ``redis.Redis`` client that returns bytes."""

    def __init__(
        self,
        client: Redis,
        *,
        shards: int = 16,
        dedupe_window_s: int = 86400,
        receipt_retention_s: float = RECEIPT_RETENTION_S,
    ) -> None:
        if client.get_encoder().decode_responses:
            raise ValueError("RedisStore needs decode_responses=False: states are binary")
        if shards < 1:
            raise ValueError(f"shards must be at least 1, not {shards}")
        self.client = client
        self.shards = shards
        self.dedupe_window_s = dedupe_window_s
        #: Records and reads delivery receipts (for ``mark_delivered`` and ``delivery``).
        self.outbox = Outbox(client, shards, receipt_retention_s=receipt_retention_s)
        self._keys = [ShardKeys(s) for s in range(shards)]

    @classmethod
    def from_url(cls, url: str, *, shards: int = 16, dedupe_window_s: int = 86400) -> RedisStore:
        """A store on the Redis at ``url`` (``redis://host:port/db``)."""
        return cls(Redis.from_url(url), shards=shards, dedupe_window_s=dedupe_window_s)

    def keys(self, shard: int) -> ShardKeys:
        """The keys of one shard."""
        return self._keys[shard]

    def shard_of(self, account_id: str) -> int:
        """The shard an account lives on."""
        return shard_of(account_id, self.shards)

    # -- accounts and commits ----------------------------------------------------------------

    def load(self, account_ids: Iterable[str]) -> dict[str, AccountState]:
        by_shard: dict[int, list[str]] = defaultdict(list)
        for account in dict.fromkeys(account_ids):
            by_shard[self.shard_of(account)].append(account)
        pipe = self.client.pipeline(transaction=False)
        for shard, accounts in by_shard.items():
            pipe.mget([self._keys[shard].account(a) for a in accounts])
        out: dict[str, AccountState] = {}
        for accounts, blobs in zip(by_shard.values(), pipe.execute(), strict=True):
            for account, blob in zip(accounts, blobs, strict=True):
                if blob is not None:
                    out[account] = AccountState.loads(blob)
        return out

    def commit(self, commit: Commit) -> None:
        """Write each shard's part atomically (a commit spanning shards is atomic per shard).

        Timers are written from the states, which the core keeps in step with the timer
        changes it decides: a timer change whose account's state is not committed is ignored.
        """
        parts: dict[int, ShardCommit] = defaultdict(ShardCommit)
        for state in commit.states:
            parts[self.shard_of(state.account_id)].states.append(state)
        for action in commit.actions:
            parts[self.shard_of(action.account)].actions.append(action)
        for shard in sorted(parts):
            self._write(shard, "", parts[shard])

    def fenced_commit(self, shard: int, token: str, commit: ShardCommit) -> bool:
        """Write a shard's batch if ``token`` still holds its lease; else write nothing, False."""
        if not token:
            raise ValueError("a fenced commit needs the lease token")
        accounts = [s.account_id for s in commit.states] + [a.account for a in commit.actions]
        strays = sorted({a for a in accounts if self.shard_of(a) != shard})
        if strays:
            raise ValueError(f"accounts {strays} are not on shard {shard}")
        return self._write(shard, token, commit)

    def _write(self, shard: int, token: str, part: ShardCommit) -> bool:
        """Write one shard's part with the commit script: the one place shard data is written."""
        script_keys, args = commit_call(self._keys[shard], token, part)
        return bool(COMMIT(self.client, script_keys, args))

    def account_ids(self) -> Iterator[str]:
        for keys in self._keys:
            for member in self.client.sscan_iter(keys.accounts):
                yield member.decode()

    # -- timers ------------------------------------------------------------------------------

    def pop_due(self, now: float, limit: int = 1000) -> list[DueTimer]:
        """Remove and return the ``limit`` earliest timers due by ``now``, across shards.

        The accounts due first are popped, their due timers read from their states, and each
        account goes back into the timers sorted set scored with its earliest timer not
        returned. A returned timer stays in its account's state until the caller applies its
        firing (which removes it): hand every one to the core.
        """
        if limit <= 0:
            return []
        pipe = self.client.pipeline(transaction=False)
        for keys in self._keys:
            pipe.zrangebyscore(keys.timers, "-inf", now, start=0, num=limit, withscores=True)
        peeked = [(score, shard) for shard, rows in enumerate(pipe.execute()) for _, score in rows]
        per_shard = Counter(shard for _, shard in heapq.nsmallest(limit, peeked))
        accounts = [
            member.decode()
            for shard, count in sorted(per_shard.items())
            for member in self._pop(shard, now, count, "return")
        ]
        states = self.load(accounts)
        due = [timer for state in states.values() for timer in due_timers(state, now)]
        due.sort(key=lambda t: (t.due, t.account_id, t.timer_id))
        out = due[:limit]
        returned = {(t.account_id, t.timer_id) for t in out}
        for account, state in states.items():
            left = [t.due for i, t in state.timers.items() if (account, i) not in returned]
            if left:  # NX: a commit made meanwhile wrote a newer state's score
                pipe.zadd(self._keys[self.shard_of(account)].timers, {account: min(left)}, nx=True)
        pipe.execute()
        return out

    def pop_due_timers(self, shard: int, now: float, limit: int = 1000) -> int:
        """Wake up to ``limit`` of the shard's accounts with timers due by ``now``: one wake
        entry each in the shard stream (the drain fires their timers); how many."""
        return int(self._pop(shard, now, limit, "stream")) if limit > 0 else 0

    def _pop(self, shard: int, now: float, limit: int, mode: str) -> Any:
        keys = self._keys[shard]
        script_keys = [keys.timers, keys.timer_generations, keys.stream]
        return POP_TIMERS(self.client, script_keys, [float(now), limit, mode])

    def next_due(self) -> float | None:
        pipe = self.client.pipeline(transaction=False)
        for keys in self._keys:
            pipe.zrange(keys.timers, 0, 0, withscores=True)
        scores = [score for rows in pipe.execute() for _, score in rows]
        return min(scores, default=None)

    # -- outbox ------------------------------------------------------------------------------

    def pending_actions(self, limit: int = 1000) -> list[ActionEffect]:
        """Outbox entries across shards, earliest queue time first."""
        if limit <= 0:
            return []
        pipe = self.client.pipeline(transaction=False)
        for keys in self._keys:
            pipe.zrange(keys.outbox_queue, 0, limit - 1, withscores=True)
        queued = [
            (score, shard, key) for shard, rows in enumerate(pipe.execute()) for key, score in rows
        ]
        chosen = heapq.nsmallest(limit, queued)
        by_shard: dict[int, list[bytes]] = defaultdict(list)
        for _, shard, key in chosen:
            by_shard[shard].append(key)
        for shard, shard_keys in by_shard.items():
            pipe.hmget(self._keys[shard].outbox, shard_keys)
        found: dict[tuple[int, bytes], bytes] = {}
        for (shard, shard_keys), raws in zip(by_shard.items(), pipe.execute(), strict=True):
            found.update({(shard, key): raw for key, raw in zip(shard_keys, raws, strict=True)})
        raws = [found.get((shard, key)) for _, shard, key in chosen]
        return [ActionEffect.from_dict(orjson.loads(raw)) for raw in raws if raw is not None]

    def mark_delivered(self, key: str, receipt: str) -> None:
        """Record the receipt on the shard holding the key (every shard, if none knows it)."""
        pipe = self.client.pipeline(transaction=False)
        for keys in self._keys:
            pipe.hexists(keys.outbox, key)
        pending = pipe.execute()
        shards = [
            s for s in range(self.shards) if pending[s] or self.outbox.receipt(s, key) is not None
        ]
        for shard in shards or range(self.shards):
            self.deliver(shard, key, receipt)

    def deliver(self, shard: int, key: str, receipt: str) -> bool:
        """Move an outbox entry of the shard to its receipts; True if it was in the outbox."""
        return self.outbox.delivered(shard, key, receipt)

    def delivery(self, key: str) -> str | None:
        receipts = (self.outbox.receipt(shard, key) for shard in range(self.shards))
        return next((receipt for receipt in receipts if receipt is not None), None)

    # -- dedupe and tasks --------------------------------------------------------------------

    def remember_message(self, message_id: str) -> bool:
        key = k.message(message_id)
        return bool(self.client.set(key, 1, nx=True, ex=self.dedupe_window_s))

    def save_task(self, task: dict[str, Any]) -> None:
        blob = orjson.dumps({**task, "status": "open"})
        SAVE_TASK(self.client, [k.TASKS, k.TASK_ORDER], [task["task_id"], blob])

    def tasks(self, *, status: str | None = None) -> list[dict[str, Any]]:
        ids = self.client.lrange(k.TASK_ORDER, 0, -1)
        raws = self.client.hmget(k.TASKS, ids) if ids else []
        tasks = [orjson.loads(raw) for raw in raws if raw is not None]
        return [t for t in tasks if status in (None, t["status"])]

    def complete_task(self, task_id: str, at: float) -> dict[str, Any] | None:
        updated: list[dict[str, Any]] = []

        def complete(pipe: Pipeline) -> None:
            """Read, then write in MULTI; retried from scratch if the hash changed meanwhile."""
            updated.clear()
            raw = pipe.hget(k.TASKS, task_id)
            if raw is None:
                return
            updated.append({**orjson.loads(raw), "status": "done", "completed_at": at})
            pipe.multi()
            pipe.hset(k.TASKS, task_id, orjson.dumps(updated[0]))

        self.client.transaction(complete, k.TASKS)
        return updated[0] if updated else None

    # -- streams and dead letters ------------------------------------------------------------

    def ensure_group(self, shard: int) -> None:
        """Create the shard stream's consumer group (and the stream), reading from the start."""
        try:
            self.client.xgroup_create(self._keys[shard].stream, GROUP, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    def trim(self, shard: int) -> int:
        """Drop stream entries below the oldest pending one (never unread ones); how many."""
        return int(TRIM(self.client, [self._keys[shard].stream], [GROUP]))

    def has_backlog(self, shard: int, now: float | None = None) -> bool:
        """Whether the shard has unread or unacknowledged entries (or due timers, given now)."""
        keys = self._keys[shard]
        due = "" if now is None else float(now)
        return bool(BACKLOG(self.client, [keys.stream, keys.timers], [GROUP, due]))

    def counters(self, shard: int) -> dict[str, int]:
        """The shard's counters (``applied``, ``dead_letters``...)."""
        raw: Any = self.client.hgetall(self._keys[shard].counters)
        return {name.decode(): int(float(value)) for name, value in raw.items()}

    def dead_letters(self, shard: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Dead letters, oldest first, as dicts; ``id`` is what discard and replay take."""
        out: list[dict[str, Any]] = []
        for s in range(self.shards) if shard is None else [shard]:
            rows: Any = self.client.xrange(self._keys[s].dead_letters, count=limit)
            for dlq_id, fields in rows:
                text = {n.decode(): v.decode(errors="replace") for n, v in fields.items()}
                out.append(
                    {
                        "id": dlq_id.decode(),
                        "entry_id": text.get("id", ""),
                        "shard": s,
                        "account": text.get("account") or None,
                        "error": text.get("error", ""),
                        "entry": text.get("entry", ""),
                    }
                )
        return out

    def discard_dead_letter(self, shard: int, dead_letter_id: str) -> bool:
        """Delete a dead letter; False if there is no such dead letter."""
        if not _ENTRY_ID.fullmatch(dead_letter_id):
            return False
        return bool(self.client.xdel(self._keys[shard].dead_letters, dead_letter_id))

    def replay_dead_letter(self, shard: int, dead_letter_id: str) -> bool:
        """Re-append a dead letter's entry to the shard stream and drop it from the dead letters."""
        if not _ENTRY_ID.fullmatch(dead_letter_id):
            return False
        keys = self._keys[shard]
        return REPLAY(self.client, [keys.dead_letters, keys.stream], [dead_letter_id]) is not None
