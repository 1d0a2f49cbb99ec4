"""The Redis outbox as the source of truth for delivery: claim, record, retry, dead-letter.

The fenced commit writes each action into its shard's ``outbox`` hash (key -> action JSON) and
``outbox_queue`` (key -> when it may next be attempted). Dispatchers ``claim`` due entries
under a lease (their queue score moves to the lease's end, so a dispatcher that dies holding
them lets them come due again), then record ``delivered`` or ``failed``. Failed attempts are
counted per key; a retry waits ``jitter * min(cap, base * 2^(attempts-1))`` seconds, and after
the last attempt (or a non-retryable error) the entry becomes an outbox dead letter that ops can
list, replay or discard. Every state change is one Lua script over the shard's keys.

A delivery leaves a receipt under its idempotency key, which the commit reads so that an action
decided again (a redelivered or replayed event) is not queued again. Receipts are kept for a
retention, then dropped a period's worth at a time (``lua/receipts.lua``): one to 1.5
retentions, 30 days by default (``HOURGLASS_RECEIPT_RETENTION_S``).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from redis import Redis
from redis.typing import EncodableT

from engine.core.effects import ActionEffect
from engine.redis import keys as k
from engine.redis.keys import ShardKeys
from engine.redis.scripts import MAX_ERROR, RECEIPTS, LuaScript

CLAIM = LuaScript.load("outbox_claim")
DELIVERED = LuaScript.load("outbox_delivered", RECEIPTS)
FAILED = LuaScript.load("outbox_failed")
REPLAY = LuaScript.load("outbox_replay", RECEIPTS)
RECEIPT = LuaScript.load("receipt", RECEIPTS)

#: How long a delivery's receipt is honoured at least (the setting's default).
RECEIPT_RETENTION_S = 30 * 86_400

#: Backoff of the first retry, doubled per failed attempt, capped.
BACKOFF_BASE_S = 2.0
BACKOFF_CAP_S = 600.0

Jitter = Callable[[], float]


def backoff_window(
    attempts: int, base_s: float = BACKOFF_BASE_S, cap_s: float = BACKOFF_CAP_S
) -> float:
    """The longest wait after ``attempts`` failed attempts: ``min(cap, base * 2^(attempts-1))``."""
    return min(cap_s, base_s * 2.0 ** (max(attempts, 1) - 1))


@dataclass(frozen=True, slots=True)
class Claimed:
    """An outbox entry claimed for delivery until ``until`` (the lease's end)."""

    shard: int
    key: str
    raw: bytes
    attempts: int
    until: float

    def action(self) -> ActionEffect:
        """The entry's action (raises if its JSON is not an action)."""
        return ActionEffect.from_dict(orjson.loads(self.raw))


@dataclass(frozen=True, slots=True)
class Failure:
    """What ``failed`` did: ``retry`` at ``at``, ``dead`` (dead-lettered), or ``gone``."""

    outcome: Literal["retry", "dead", "gone"]
    attempts: int
    at: float | None


#: Delivered actions kept per account for its page.
RECENT_DELIVERIES = 20


@dataclass(frozen=True, slots=True)
class OutboxDeadLetter:
    """An action whose delivery was given up, with the last error."""

    shard: int
    key: str
    action: dict[str, Any]
    error: str
    attempts: int
    at: float


class Outbox:
    """Claims and records deliveries of the outbox entries of ``shards`` shards."""

    def __init__(
        self,
        client: Redis,
        shards: int,
        *,
        jitter: Jitter = random.random,
        base_s: float = BACKOFF_BASE_S,
        cap_s: float = BACKOFF_CAP_S,
        receipt_retention_s: float = RECEIPT_RETENTION_S,
    ) -> None:
        if shards < 1:
            raise ValueError(f"shards must be at least 1, not {shards}")
        if receipt_retention_s < 0.001:
            raise ValueError(f"receipt retention must be at least 1 ms, not {receipt_retention_s}")
        if client.get_encoder().decode_responses:
            raise ValueError("Outbox needs decode_responses=False: entries are raw JSON bytes")
        self.client = client
        self.shards = shards
        self.jitter = jitter
        self.base_s = base_s
        self.cap_s = cap_s
        self.receipt_retention_ms = round(receipt_retention_s * 1000)

    def _keys(self, shard: int) -> ShardKeys:
        if not 0 <= shard < self.shards:
            raise ValueError(f"shard {shard} is not in 0..{self.shards - 1}")
        return ShardKeys(shard)

    # -- dispatch ----------------------------------------------------------------------------

    def claim(self, shard: int, now: float, lease_s: float, limit: int) -> list[Claimed]:
        """Take up to ``limit`` entries due by ``now``; they are ours until ``now + lease_s``."""
        keys = self._keys(shard)
        if limit <= 0:
            return []
        until = now + lease_s
        script_keys = [keys.outbox, keys.outbox_queue, k.outbox_attempts(shard)]
        flat = CLAIM(self.client, script_keys, [repr(float(now)), repr(until), limit])
        return [
            Claimed(shard, flat[i].decode(), bytes(flat[i + 1]), int(flat[i + 2]), until)
            for i in range(0, len(flat), 3)
        ]

    def delivered(
        self, shard: int, key: str, receipt: str, action: ActionEffect | None = None
    ) -> bool:
        """Record the delivery (the first receipt stays); True if the entry was still pending.

        With the ``action``, its summary joins the account's recent deliveries (bounded).
        """
        keys = self._keys(shard)
        script_keys = [
            keys.outbox,
            keys.outbox_queue,
            k.outbox_attempts(shard),
            k.outbox_errors(shard),
            k.outbox_dead(shard),
            keys.legacy_receipts,
            keys.recent(action.account if action else ""),
            *keys.receipts,
        ]
        summary = b""
        if action is not None:
            summary = orjson.dumps(
                {"key": action.key, "type": action.type, "playbook": action.playbook,
                 "at": action.at, "receipt": receipt[:200]}
            )  # fmt: skip
        args: list[EncodableT] = [key, receipt, summary]
        args += [RECENT_DELIVERIES, self.receipt_retention_ms]
        return bool(DELIVERED(self.client, script_keys, args))

    def failed(
        self,
        shard: int,
        key: str,
        error: str,
        attempts_max: int,
        now: float,
        *,
        retryable: bool = True,
    ) -> Failure:
        """Count a failed attempt: reschedule with backoff, or dead-letter after the last one."""
        keys = self._keys(shard)
        jitter = self.jitter()
        if not 0.0 <= jitter <= 1.0:
            raise ValueError(f"jitter must be in [0, 1], not {jitter}")
        script_keys = [
            keys.outbox,
            keys.outbox_queue,
            k.outbox_attempts(shard),
            k.outbox_errors(shard),
            k.outbox_dead(shard),
        ]
        args: list[EncodableT] = [key, error[:MAX_ERROR], attempts_max, repr(float(now))]
        args.append(repr(jitter))
        args += [repr(self.base_s), repr(self.cap_s), "1" if retryable else "0"]
        outcome, attempts, at = FAILED(self.client, script_keys, args)
        name = outcome.decode()
        assert name in ("retry", "dead", "gone")
        return Failure(name, int(attempts), float(at) if at else None)

    def release(self, shard: int, key: str, now: float) -> bool:
        """Give a claimed entry back, due at ``now``, without counting an attempt."""
        return bool(self.client.zadd(self._keys(shard).outbox_queue, {key: now}, xx=True, ch=True))

    def has_due(self, shard: int, now: float) -> bool:
        """Whether the shard has an entry due by ``now`` (expired claims included)."""
        queue = self._keys(shard).outbox_queue
        return bool(self.client.zrangebyscore(queue, "-inf", now, start=0, num=1))

    def due_shards(self, now: float) -> list[int]:
        """The shards with an entry due by ``now`` (one pipelined round trip)."""
        pipe = self.client.pipeline(transaction=False)
        for shard in range(self.shards):
            pipe.zrangebyscore(ShardKeys(shard).outbox_queue, "-inf", now, start=0, num=1)
        return [shard for shard, due in enumerate(pipe.execute()) if due]

    # -- inspection ----------------------------------------------------------------------------

    def pending(self, shard: int) -> int:
        """How many entries of the shard are waiting for delivery (claimed ones included)."""
        return int(self.client.hlen(self._keys(shard).outbox))

    def attempts(self, shard: int, key: str) -> int:
        """Failed attempts of a pending entry so far."""
        return int(self.client.hget(k.outbox_attempts(shard), key) or 0)

    def last_error(self, shard: int, key: str) -> str | None:
        """The last delivery error of a pending entry, if any."""
        return _text(self.client.hget(k.outbox_errors(shard), key))

    def receipt(self, shard: int, key: str) -> str | None:
        """The receipt recorded for a delivered key, while it is honoured."""
        keys = self._keys(shard)
        return _text(RECEIPT(self.client, [keys.legacy_receipts, *keys.receipts], [key]))

    # -- dead letters --------------------------------------------------------------------------

    def dead_letters(self, shard: int | None = None, limit: int = 100) -> list[OutboxDeadLetter]:
        """Dead letters of one shard or all, oldest first, at most ``limit``."""
        found = [letter for s in self._shards(shard) for letter in self._dead(s)]
        return sorted(found, key=lambda d: (d.at, d.shard, d.key))[:limit]

    def _shards(self, shard: int | None) -> list[int]:
        return list(range(self.shards)) if shard is None else [self._keys(shard).shard]

    def _dead(self, shard: int) -> Iterator[OutboxDeadLetter]:
        for raw_key, raw in self.client.hscan_iter(k.outbox_dead(shard)):
            letter = json.loads(raw.decode(errors="replace"))
            try:
                action = json.loads(letter["action"])
            except ValueError:
                action = {"raw": letter["action"]}
            yield OutboxDeadLetter(
                shard,
                raw_key.decode(),
                action,
                str(letter["error"]),
                int(letter["attempts"]),
                float(letter["at"]),
            )

    def replay(self, shard: int, key: str, now: float) -> bool:
        """Put a dead letter back in the outbox, due at ``now``, attempts reset."""
        keys = self._keys(shard)
        script_keys = [
            keys.outbox,
            keys.outbox_queue,
            k.outbox_dead(shard),
            keys.legacy_receipts,
            *keys.receipts,
        ]
        return bool(REPLAY(self.client, script_keys, [key, repr(float(now))]))

    def discard(self, shard: int, key: str) -> bool:
        """Delete a dead letter; False if there is no such dead letter."""
        return bool(self.client.hdel(k.outbox_dead(self._keys(shard).shard), key))


def _text(raw: bytes | str | None) -> str | None:
    """A Redis reply as text (None stays None)."""
    if raw is None or isinstance(raw, str):
        return raw
    return raw.decode(errors="replace")
