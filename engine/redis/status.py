"""What a running deployment looks like right now: per shard backlog, lag, lease, dead letters,
timers and outbox; the Celery queues' depths on a Redis broker; the workers that answer.

Read-only, a few pipelined round trips whatever the number of shards. Times come from the
state Redis's own clock (``TIME``), so a status taken on another host is not skewed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import redis
from kombu.transport.redis import PRIORITY_STEPS, Channel
from redis.client import Pipeline

from engine.redis import keys as k
from engine.redis.drain import EVENT_CLOCK
from engine.redis.keys import GROUP, ShardKeys

#: kombu's Redis transport keeps a queue's messages in one list per priority step: the queue's
#: name for step 0, then ``name + "\x06\x16" + step`` (3, 6, 9); ``Channel._q_for_pri``.
KOMBU_PRIORITY_STEPS: tuple[int, ...] = tuple(PRIORITY_STEPS)
KOMBU_SEP: str = Channel.sep
#: kombu's hash of messages delivered to a worker and not yet acknowledged (every queue).
KOMBU_UNACKED: str = Channel.unacked_key
#: A timer due at least this long ago counts as overdue (beat's sweep wakes accounts with due
#: timers every second, so older ones mean the sweep or the workers are behind).
OVERDUE_AFTER_S = 5.0
#: When Redis cannot say how many entries a group has not read (``lag`` null), count at most
#: this many by reading them.
UNREAD_CAP = 10_000

Clock = Literal["wall", "event", "virtual"]
Ping = Callable[[float], list[str]]


@dataclass(frozen=True, slots=True)
class ShardStatus:
    """One shard. Counts are exact at the moment of the read."""

    shard: int
    #: Entries in the stream (unapplied ones, plus the few a trim keeps).
    stream: int
    #: Entries no consumer has read yet.
    unread: int
    #: Entries read by a consumer and not yet acknowledged (applying, or its consumer died).
    pending: int
    #: Age of the oldest unapplied entry (its id's milliseconds vs Redis's clock); None if none.
    lag_ms: int | None
    #: The consumer token holding the shard's lease, and how long the lease has left.
    lease_holder: str | None
    lease_ttl_ms: int | None
    #: Stream entries that failed to apply (``hourglass dlq``).
    dead_letters: int
    #: Accounts waiting on at least one timer (the timers sorted set holds one member per
    #: account, scored with its earliest timer); of those, accounts with a timer due by now,
    #: and with one due for more than OVERDUE_AFTER_S. An account being woken (its wake entry
    #: not applied yet) is in none of them: its entry counts in ``backlog``.
    timers: int
    timers_due: int
    timers_overdue: int
    #: Outbox: not yet delivered (retries included); due now; with a failed attempt; dead.
    outbox_pending: int
    outbox_due: int
    outbox_retrying: int
    outbox_dead: int
    #: The shard's counters since the deployment started.
    applied: int
    fenced_out: int

    @property
    def backlog(self) -> int:
        """Entries not yet applied: unread plus pending."""
        return self.unread + self.pending


#: ShardStatus fields summed into the totals (lag is the maximum, not a sum).
SUMMED = (
    "stream", "unread", "pending", "dead_letters", "timers", "timers_due", "timers_overdue",
    "outbox_pending", "outbox_due", "outbox_retrying", "outbox_dead", "applied", "fenced_out",
)  # fmt: skip


@dataclass
class DeploymentStatus:
    """Every shard, the broker's queues and the workers, as read at ``at`` (Redis time)."""

    at: float
    clock: Clock
    shards: list[ShardStatus]
    #: Queue name -> messages waiting (all priority steps); None when the broker is not Redis.
    queues: dict[str, int] | None = None
    #: Messages delivered to workers and not yet acknowledged (kombu's ``unacked``).
    unacked: int | None = None
    #: Names of the workers that answered the ping; None when nobody asked.
    workers: list[str] | None = None
    probe: str = ""
    notes: list[str] = field(default_factory=list)

    def totals(self) -> dict[str, Any]:
        """Sums over shards, the largest lag, and how many shards are leased right now."""
        out: dict[str, Any] = {name: sum(getattr(s, name) for s in self.shards) for name in SUMMED}
        out["backlog"] = out["unread"] + out["pending"]
        lags = [s.lag_ms for s in self.shards if s.lag_ms is not None]
        out["lag_ms"] = max(lags) if lags else None
        out["leased"] = sum(s.lease_holder is not None for s in self.shards)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON form ``hourglass status --json`` prints."""
        return {
            "at": self.at,
            "clock": self.clock,
            "totals": self.totals(),
            "shards": [{**asdict(s), "backlog": s.backlog} for s in self.shards],
            "queues": self.queues,
            "unacked": self.unacked,
            "workers": None
            if self.workers is None
            else {"alive": len(self.workers), "names": self.workers, "probe": self.probe},
            "notes": self.notes,
        }


def queue_keys(queue: str) -> list[str]:
    """The Redis lists kombu keeps ``queue``'s messages in, one per priority step."""
    return [queue if step == 0 else f"{queue}{KOMBU_SEP}{step}" for step in KOMBU_PRIORITY_STEPS]


def queue_depths(broker: redis.Redis, queues: Sequence[str]) -> tuple[dict[str, int], int]:
    """Messages waiting per queue (LLEN over its priority lists), and kombu's unacked count."""
    pipe = broker.pipeline(transaction=False)
    for queue in queues:
        for key in queue_keys(queue):
            pipe.llen(key)
    pipe.hlen(KOMBU_UNACKED)
    *lengths, unacked = pipe.execute()
    steps = len(KOMBU_PRIORITY_STEPS)
    depths = {q: sum(lengths[i * steps : (i + 1) * steps]) for i, q in enumerate(queues)}
    return depths, int(unacked)


def _entry_ms(entry_id: bytes | str) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.partition("-")[0])


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class StatusReader:
    """Reads a deployment's status from its state Redis (and its broker, when that is Redis)."""

    def __init__(
        self,
        client: redis.Redis,
        shards: int,
        clock: Clock = "wall",
        grace_s: float = OVERDUE_AFTER_S,
    ) -> None:
        if shards < 1:
            raise ValueError(f"shards must be at least 1, not {shards}")
        self.client = client
        self.shards = shards
        self.clock = clock
        self.grace_s = grace_s
        self.keys = [ShardKeys(s) for s in range(shards)]

    def read(
        self,
        *,
        broker: redis.Redis | None = None,
        queues: Sequence[str] = (),
        ping: Ping | None = None,
        ping_timeout: float = 1.0,
    ) -> DeploymentStatus:
        """The status now; ``broker`` and ``ping`` add queue depths and live workers."""
        server_now, nows = self._now()
        status = DeploymentStatus(server_now, self.clock, self._shards(server_now, nows))
        if broker is None:
            status.notes.append("queue depths need a Redis broker")
        else:
            try:
                status.queues, status.unacked = queue_depths(broker, queues)
            except redis.RedisError as error:
                status.notes.append(f"broker unavailable: {error}")
        if ping is not None:
            status.probe = f"celery control.ping, {ping_timeout:g} s timeout"
            try:
                status.workers = sorted(ping(ping_timeout))
            except Exception as error:  # the broker transport's own errors: nobody answered
                status.workers = []
                status.notes.append(f"worker ping failed: {error}")
        return status

    def _now(self) -> tuple[float, list[float]]:
        """Redis's clock, and each shard's runner time (what timers are due against)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.time()
        pipe.get(k.CLOCK)
        for keys in self.keys:
            pipe.hget(keys.counters, EVENT_CLOCK)
        (seconds, micros), virtual, *events = pipe.execute()
        server_now = seconds + micros / 1e6
        if self.clock == "virtual":
            return server_now, [float(virtual or 0.0)] * self.shards
        if self.clock == "event":
            return server_now, [float(e or 0.0) for e in events]
        return server_now, [server_now] * self.shards

    def _shards(self, server_now: float, nows: list[float]) -> list[ShardStatus]:
        pipe = self.client.pipeline(transaction=False)
        for shard, keys in enumerate(self.keys):
            _queue_shard(pipe, shard, keys, nows[shard], self.grace_s)
        replies = pipe.execute(raise_on_error=False)
        width = len(replies) // self.shards
        rows = [replies[i * width : (i + 1) * width] for i in range(self.shards)]
        oldest = self._oldest_unapplied(rows)
        return [
            _shard_status(shard, row, oldest[shard], server_now) for shard, row in enumerate(rows)
        ]

    def _oldest_unapplied(self, rows: list[list[Any]]) -> list[tuple[int, bytes | None]]:
        """Per shard: (unread entries, id of the oldest unapplied entry), in one more round trip.

        Pending entries are older than unread ones, so the oldest unapplied entry is the oldest
        pending one if any, else the first entry after the group's last-delivered id.
        """
        pipe = self.client.pipeline(transaction=False)
        plans: list[tuple[int | None, bytes | None]] = []
        for shard, row in enumerate(rows):
            stream = self.keys[shard].stream
            length, group, pending = int(row[0]), _group(row[1]), row[2]
            if group is None:  # no consumer has read the shard yet: everything is unread
                plans.append((length, None))
                pipe.xrange(stream, count=1)
                continue
            after = b"(" + _bytes(group["last-delivered-id"])
            lag = group.get("lag")
            if lag is None:  # Redis cannot tell (or is older than 7.0): count them
                pipe.xrange(stream, after, "+", count=UNREAD_CAP)
            else:
                pipe.xrange(stream, after, "+", count=1)
            oldest = pending.get("min") if isinstance(pending, dict) else None
            if oldest is not None and int(pending.get("pending", 0)):
                plans.append((lag, _bytes(oldest)))
            else:
                plans.append((lag, None))
        found: list[tuple[int, bytes | None]] = []
        for (unread, oldest), entries in zip(plans, pipe.execute(), strict=True):
            count = len(entries) if unread is None else unread
            first = entries[0][0] if entries else None
            found.append((count, oldest or (first if count else None)))
        return found


def _queue_shard(pipe: Pipeline, shard: int, keys: ShardKeys, now: float, grace_s: float) -> None:
    """Queue the reads of one shard, in the order :func:`_shard_status` takes them."""
    pipe.xlen(keys.stream)
    pipe.xinfo_groups(keys.stream)
    pipe.xpending(keys.stream, GROUP)
    pipe.get(keys.lease)
    pipe.pttl(keys.lease)
    pipe.xlen(keys.dead_letters)
    pipe.zcard(keys.timers)
    pipe.zcount(keys.timers, "-inf", now)
    pipe.zcount(keys.timers, "-inf", now - grace_s)
    pipe.hlen(keys.outbox)
    pipe.zcount(keys.outbox_queue, "-inf", now)
    pipe.hlen(k.outbox_attempts(shard))
    pipe.hlen(k.outbox_dead(shard))
    pipe.hmget(keys.counters, ["applied", "fenced_out"])


def _shard_status(
    shard: int, row: list[Any], oldest: tuple[int, bytes | None], server_now: float
) -> ShardStatus:
    """One shard's figures from its replies (missing stream or group: zero, not an error)."""
    (length, _, pending, holder, ttl, dead, timers, due, overdue) = row[:9]
    (outbox, outbox_due, retrying, outbox_dead, counters) = row[9:]
    unread, oldest_id = oldest
    lag = None if oldest_id is None else max(0, int(server_now * 1000) - _entry_ms(oldest_id))
    pending_count = int(pending.get("pending", 0)) if isinstance(pending, dict) else 0
    applied, fenced = (int(c or 0) for c in counters)
    return ShardStatus(
        shard=shard,
        stream=int(length),
        unread=unread,
        pending=pending_count,
        lag_ms=lag,
        lease_holder=_text(holder),
        lease_ttl_ms=int(ttl) if holder is not None and int(ttl) >= 0 else None,
        dead_letters=int(dead),
        timers=int(timers),
        timers_due=int(due),
        timers_overdue=int(overdue),
        outbox_pending=int(outbox),
        outbox_due=int(outbox_due),
        outbox_retrying=int(retrying),
        outbox_dead=int(outbox_dead),
        applied=applied,
        fenced_out=fenced,
    )


def _group(groups: Any) -> dict[str, Any] | None:
    """The appliers' group from an XINFO GROUPS reply (None: no stream, or no such group)."""
    if not isinstance(groups, list):
        return None
    for group in groups:
        if _text(group.get("name")) == GROUP:
            return dict(group)
    return None


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


#: The shard fields, in order: what ``hourglass status`` prints and the tests check.
SHARD_FIELDS = [f.name for f in fields(ShardStatus)] + ["backlog"]
