"""Draining a shard: read a batch with the shard's consumer group, apply it with the pure core,
and commit everything behind the shard's lease (a fence), all or nothing.

Only the lease holder reads a shard. Taking the lease means any earlier holder has lost it,
so its unacknowledged entries are claimed at once and applied first (in stream order); if
that earlier holder wakes up, its commit is refused by the fence and it writes nothing.

A wake entry (engine/redis/timers.py) is applied as the timer firings it stands for: every
timer of the account's state due by the wake's time, each an ordinary timer event of the core.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis

from engine.core.apply import apply, new_account
from engine.core.clock import Clock
from engine.core.event import Event
from engine.core.playbook_set import PlaybookSet
from engine.core.state import AccountState
from engine.redis import lease
from engine.redis.keys import GROUP, ShardKeys
from engine.redis.store import DeadLetter, RedisStore, ShardCommit
from engine.redis.timers import WAKE, due_timers, firing
from engine.runtime.store import Commit

log = logging.getLogger(__name__)

Entry = tuple[str, dict[bytes, bytes]]
#: The shard counter holding the event clock's high-water mark (replays only).
EVENT_CLOCK = "event_clock"


@dataclass
class DrainReport:
    """What one drain of a shard did."""

    shard: int
    held: bool = True
    batches: int = 0
    applied: int = 0
    dead_letters: int = 0
    fenced_out: bool = False
    #: Accounts with due timers whose wake entries were appended to the stream.
    woken: int = 0
    backlog: bool = False
    errors: list[str] = field(default_factory=list)


class ShardDrainer:
    """Applies one shard's stream to its accounts, batch by batch, behind a lease."""

    def __init__(
        self,
        client: redis.Redis,
        store: RedisStore,
        playbooks: Callable[[], PlaybookSet],
        clock: Clock,
        *,
        batch_size: int = 500,
        lease_ms: int = 30_000,
        mode: str = "wall",
        consumer: str | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.playbooks = playbooks
        self.clock = clock
        self.batch_size = batch_size
        self.lease_ms = lease_ms
        self.mode = mode
        self.consumer = consumer or f"drain-{uuid.uuid4().hex[:12]}"
        #: The newest event time the shard being drained has applied (replays' clock).
        self.newest = 0.0

    def drain(self, shard: int, max_batches: int = 20) -> DrainReport:
        """Apply batches until the shard is caught up (a batch short of the batch size) or
        ``max_batches`` ran; ``backlog`` says whether entries remain. Stopping once caught up
        keeps a busy shard from holding a worker while other shards' events wait."""
        keys = ShardKeys(shard)
        report = DrainReport(shard)
        token = f"{self.consumer}:{uuid.uuid4().hex[:8]}"
        if not lease.acquire(self.client, keys, token, self.lease_ms):
            report.held = False
            return report
        try:
            self.store.ensure_group(shard)
            if self.mode == "event":
                self.newest = float(self.client.hget(keys.counters, EVENT_CLOCK) or 0.0)
            report.woken = self.store.pop_due_timers(shard, self._timer_now(), 1000)
            claimed = self._claim(keys, token)
            for _ in range(max_batches):
                entries = claimed or self._read(keys, token)
                claimed = []
                if not entries:
                    break
                commit = self._apply(entries)
                if not self.store.fenced_commit(shard, token, commit):
                    report.fenced_out = True
                    self.client.hincrby(keys.counters, "fenced_out", 1)
                    log.warning("shard %s: lease lost, batch of %d refused", shard, len(entries))
                    return report
                if self.mode == "event" and self.newest:
                    self.client.hset(keys.counters, EVENT_CLOCK, repr(self.newest))
                report.batches += 1
                report.applied += commit.applied
                report.dead_letters += len(commit.dead_letters)
                if len(entries) < self.batch_size:
                    break  # caught up: what arrives now waits its turn behind other shards
                lease.renew(self.client, keys, token, self.lease_ms)
            self.store.trim(shard)
            report.backlog = self.store.has_backlog(shard)
        finally:
            lease.release(self.client, keys, token)
        return report

    def _timer_now(self) -> float:
        """Timers due by this time fire: wall time live; in replays, the newest event time the
        shard has applied (so a replayed history does not fire every timer at once)."""
        return self.newest if self.mode == "event" else self.clock.now()

    def _claim(self, keys: ShardKeys, token: str) -> list[Entry]:
        """Every entry an earlier holder read but never acknowledged, oldest first."""
        claimed: list[Entry] = []
        start = "0-0"
        while True:
            reply: Any = self.client.xautoclaim(
                keys.stream, GROUP, token, 0, start_id=start, count=self.batch_size
            )
            start_raw, entries = reply[0], reply[1]
            claimed += [(_text(i), f) for i, f in entries if f is not None]
            start = _text(start_raw)
            if start == "0-0" or len(claimed) >= self.batch_size:
                break
        claimed.sort(key=lambda e: _entry_order(e[0]))
        return claimed

    def _read(self, keys: ShardKeys, token: str) -> list[Entry]:
        reply: Any = self.client.xreadgroup(GROUP, token, {keys.stream: ">"}, count=self.batch_size)
        if not reply:
            return []
        return [(_text(i), f) for i, f in reply[0][1]]

    def _apply(self, entries: list[Entry]) -> ShardCommit:
        """Apply a batch in stream order; a poison event becomes a dead letter, alone."""
        pset = self.playbooks()
        events: list[tuple[str, Event]] = []
        raw = dict(entries)
        dead: list[DeadLetter] = []
        for entry_id, fields in entries:
            try:
                events.append((entry_id, _decode(fields)))
            except Exception as error:  # a malformed entry never blocks its shard
                dead.append(DeadLetter(entry_id, fields, None, f"undecodable entry: {error}"))
        self.newest = max((self._now(e) for _, e in events), default=self.newest)
        ids = list(dict.fromkeys(e.account_id for _, e in events if e.account_id))
        states = self.store.load(ids)
        applied_by_account: dict[str, list[Event]] = {}
        commit = Commit()
        applied = 0
        for entry_id, event in events:
            account = event.account_id
            if account is None:
                dead.append(DeadLetter(entry_id, raw[entry_id], None, "event has no account"))
                continue
            failed = False
            for item in _expand(event, states.get(account)):
                now = self._now(item)
                state = states.get(account) or new_account(account, now)
                try:
                    effects = apply(state, item, now, pset)
                except Exception as error:
                    log.exception("shard entry %s for %s failed", entry_id, account)
                    dead.append(
                        DeadLetter(
                            entry_id, _fields(item), account, f"{type(error).__name__}: {error}"
                        )
                    )
                    states[account] = self._rebuild(
                        account, applied_by_account.get(account, []), pset, item
                    )
                    failed = True
                    continue
                states[account] = state
                applied_by_account.setdefault(account, []).append(item)
                commit.add(state, effects)
            if not failed:
                applied += 1
        return ShardCommit(
            states=[states[a] for a in ids if a in states],
            actions=commit.actions,
            acks=[entry_id for entry_id, _ in entries],
            dead_letters=dead,
            applied=applied,
        )

    def _now(self, event: Event) -> float:
        """The runner's time for this event: wall time live; in replays a timer firing applies
        at its due time, and an app event at its own time (``event``) or the clock's."""
        if self.mode == "wall":
            return self.clock.now()
        if event.timer is not None:
            return event.timer.due
        return event.ts if self.mode == "event" else self.clock.now()

    def _rebuild(
        self, account: str, good: list[Event], pset: PlaybookSet, failed: Event
    ) -> AccountState:
        """The account as stored, with this batch's good events applied again (deterministic),
        one more dead letter counted, and the timer of a failed firing dropped: it would wake
        the account again at once, and fail again."""
        state = self.store.load([account]).get(account)
        for event in good:
            now = self._now(event)
            state = state or new_account(account, now)
            apply(state, event, now, pset)
        state = state or new_account(account, self.clock.now())
        state.dead_letters += 1
        fired = failed.timer
        armed = state.timers.get(fired.timer_id) if fired is not None else None
        if fired is not None and armed is not None and armed.generation == fired.generation:
            del state.timers[fired.timer_id]
        return state


def _expand(event: Event, state: AccountState | None) -> list[Event]:
    """The events an entry stands for: a wake, the firings of the timers due by its time
    (none for an account without a state); any other event, itself."""
    if event.kind != WAKE:
        return [event]
    return [firing(timer) for timer in due_timers(state, event.ts)] if state else []


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entry_order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _decode(fields: dict[bytes, bytes]) -> Event:
    raw = fields.get(b"e")
    if raw is None:
        raise ValueError("no 'e' field")
    return Event.from_dict(orjson.loads(raw))


def _fields(event: Event) -> dict[bytes, bytes]:
    return {b"e": orjson.dumps(event.to_dict())}
