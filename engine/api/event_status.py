"""What became of a messageId: queued, processing, applied, a dead letter, rejected or parked.

How each is decided (Redis keeps no per-event record beyond these):

- **received**: one of the shard's dedupe hashes holds the messageId (its 12-byte hash) with an
  append time less than a dedupe window ago, as the ingest script decides duplicates. That time
  locates the stream entry (entry ids are append times) when it is still in the stream.
- **queued**: the entry is after the consumer group's last-delivered id (no worker read it).
- **processing**: the entry is in the group's pending list (read, not yet committed).
- **applied**: read and acknowledged — the fenced commit acknowledges an entry in the same
  script that writes the account's state — and not among the shard's dead letters.
- **dead_letter**: acknowledged as a dead letter (its error is the reason).
- **parked**: not in a shard yet, waiting in a user's parked list for a group call (checked
  only for the ``user`` ids given, since parked lists are per user).
- **rejected**: kept in ``hg:rejected`` (the newest 10,000 invalid events).
"""

from __future__ import annotations

from typing import Any

import orjson
import redis

from engine.api.models import EventStatus
from engine.core.clock import to_datetime
from engine.redis.ingest_lua import appended_ms
from engine.redis.keys import (
    GROUP,
    REJECTED,
    SEEN_SLOTS,
    ShardKeys,
    parked_events,
    seen_field,
)

#: How far around the estimated append time the stream is searched for the entry (ms).
SLACK_MS = 5_000
#: Entries of the rejected stream (and of a shard's dead letters) searched, newest first.
SCAN = 10_000


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class EventLookup:
    """Finds a messageId across shards, parked lists and the rejected stream."""

    def __init__(self, client: redis.Redis, shards: int, window_s: int) -> None:
        self.client = client
        self.shards = shards
        self.window_s = window_s

    def status(self, message_id: str, users: list[str]) -> EventStatus | None:
        """The event's status, or None when there is no record of it."""
        seen = self._seen(message_id)
        if seen is not None:
            return self._received(message_id, *seen)
        for user in users:
            if self._parked(user, message_id):
                return EventStatus(message_id=message_id, status="parked")
        return self._rejected(message_id)

    def _seen(self, message_id: str) -> tuple[int, int] | None:
        """(shard, append time in ms) of the shard that appended the messageId within the window."""
        field = seen_field(message_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.time()
        for shard in range(self.shards):
            for name in ShardKeys(shard).seen:
                pipe.hget(name, field)
        now, *stamps = pipe.execute()
        now_ms = int(now[0]) * 1000 + int(now[1]) // 1000
        for position, stamp in enumerate(stamps):
            if stamp is not None and now_ms - appended_ms(stamp) < self.window_s * 1000:
                return position // SEEN_SLOTS, appended_ms(stamp)
        return None

    def _received(self, message_id: str, shard: int, appended_ms: int) -> EventStatus:
        keys = ShardKeys(shard)
        entry_id, account = self._entry(keys, message_id, appended_ms)
        last = self._last_delivered(keys)
        out = EventStatus(
            message_id=message_id,
            status="applied",
            shard=shard,
            account=account,
            entry_id=entry_id,
            received_at=to_datetime(appended_ms / 1000),
        )
        if entry_id is not None and (last is None or _order(entry_id) > _order(last)):
            out.status = "queued"
        elif entry_id is None and last is None:
            out.status = "queued"  # no worker ever read this shard
        elif entry_id is not None and self._pending(keys, entry_id):
            out.status = "processing"
        else:  # acknowledged (trimming removes only acknowledged entries)
            error = self._dead(keys, message_id, entry_id)
            if error is not None:
                out.status, out.reason = "dead_letter", error
        return out

    def _entry(
        self, keys: ShardKeys, message_id: str, appended_ms: int
    ) -> tuple[str | None, str | None]:
        """The stream entry id and account of the event, if the stream still holds it."""
        marker = orjson.dumps(message_id)
        low, high = appended_ms - SLACK_MS, appended_ms + SLACK_MS
        rows: Any = self.client.xrange(keys.stream, f"{low}-0", f"{high}-0", count=SCAN)
        for entry_id, fields in rows:
            raw = fields.get(b"e", b"")
            if marker not in raw:
                continue
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if data.get("m") == message_id:
                return _text(entry_id), data.get("a")
        return None, None

    def _last_delivered(self, keys: ShardKeys) -> str | None:
        try:
            groups: Any = self.client.xinfo_groups(keys.stream)
        except redis.ResponseError:  # no stream yet
            return None
        for group in groups:
            if _text(group.get("name")) == GROUP:
                return _text(group.get("last-delivered-id"))
        return None

    def _pending(self, keys: ShardKeys, entry_id: str) -> bool:
        rows: Any = self.client.xpending_range(keys.stream, GROUP, entry_id, entry_id, 1)
        return bool(rows)

    def _dead(self, keys: ShardKeys, message_id: str, entry_id: str | None) -> str | None:
        """The error of the shard's dead letter for this event, if there is one."""
        marker = orjson.dumps(message_id)
        rows: Any = self.client.xrevrange(keys.dead_letters, count=SCAN)
        for _, fields in rows:
            if (entry_id and _text(fields.get(b"id", b"")) == entry_id) or marker in fields.get(
                b"entry", b""
            ):
                return _text(fields.get(b"error", b""))
        return None

    def _parked(self, user: str, message_id: str) -> bool:
        marker = orjson.dumps(message_id)
        for raw in self.client.lrange(parked_events(user), 0, -1):
            if marker in raw:
                try:
                    _, data = orjson.loads(raw)
                except (orjson.JSONDecodeError, ValueError):
                    continue
                if isinstance(data, dict) and data.get("m") == message_id:
                    return True
        return False

    def _rejected(self, message_id: str) -> EventStatus | None:
        marker = orjson.dumps(message_id)
        rows: Any = self.client.xrevrange(REJECTED, count=SCAN)
        for _, fields in rows:
            raw = fields.get(b"raw", b"")
            if marker not in raw:
                continue
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError:
                data = {}
            if not isinstance(data, dict):
                continue
            if message_id in (data.get("messageId"), data.get("message_id")):
                return EventStatus(
                    message_id=message_id,
                    status="rejected",
                    received_at=to_datetime(float(fields.get(b"at", 0.0))),
                    field=_text(fields.get(b"field", b"")),
                    reason=_text(fields.get(b"reason", b"")),
                )
        return None


def rejected_entries(client: redis.Redis, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` rejected events, newest first."""
    rows: Any = client.xrevrange(REJECTED, count=limit)
    return [
        {
            "id": _text(entry_id),
            "at": to_datetime(float(fields.get(b"at", 0.0))),
            "index": int(fields.get(b"index", 0)),
            "field": _text(fields.get(b"field", b"")),
            "reason": _text(fields.get(b"reason", b"")),
            "raw": _text(fields.get(b"raw", b"")),
        }
        for entry_id, fields in rows
    ]
