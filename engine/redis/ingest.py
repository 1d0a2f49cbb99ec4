"""Ingest: validate Segment calls, route them to accounts, dedupe and append to shard streams.

The one entry point the HTTP API, the Python client and the CLI share. Nothing is reported
as accepted before it is in Redis: a Redis error raises :class:`IngestUnavailable`.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis
from redis.typing import EncodableT

from engine.core.collector import collector_paused
from engine.core.event import Event
from engine.core.events import BatchProblem, EventError, corrected_timestamp, parse_event, to_core
from engine.redis.ingest_lua import ShardEvents, append_shards
from engine.redis.keys import REJECTED, ShardKeys, shard_of
from engine.redis.routing import RedisRouter, Routed, RoutePlan

#: Segment's limit on one event, measured on its JSON.
MAX_EVENT_BYTES = 32 * 1024
#: The rejected stream keeps about this many entries, each raw JSON cut to this many bytes.
REJECTED_MAX = 10_000
REJECTED_RAW_BYTES = 64 * 1024


class IngestUnavailable(Exception):
    """Redis could not take the events: nothing in this call may be reported as stored."""


class BacklogFull(Exception):
    """A shard's stream is over its backlog limit: retry after ``retry_after_s`` (HTTP 429)."""

    def __init__(self, retry_after_s: int, shard: int, backlog: int, limit: int) -> None:
        super().__init__(f"shard {shard} has {backlog} entries (limit {limit})")
        self.retry_after_s = retry_after_s
        self.shard = shard
        self.backlog = backlog
        self.limit = limit


@dataclass
class IngestResult:
    """What one call did. ``accepted`` counts events stored (appended or parked)."""

    accepted: int = 0
    duplicates: int = 0
    parked: int = 0
    rejected: list[BatchProblem] = field(default_factory=list)
    kicked: set[int] = field(default_factory=set)
    #: The messageId of each accepted event, in input order.
    message_ids: list[str] = field(default_factory=list)
    #: Valid events dropped at once by the per-user parking bound.
    dropped: int = 0
    #: Events parked by earlier calls and appended by this one.
    released: int = 0


@dataclass(slots=True)
class _Valid:
    """A valid input item: its index, its core event and that event's stored JSON."""

    index: int
    event: Event
    payload: bytes


def _json(value: Any) -> bytes:
    """Compact JSON of a raw payload (stdlib fallback for what orjson refuses)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, default=str, separators=(",", ":")).encode()


class Ingestor:
    """Validates, routes, dedupes and appends batches of Segment calls on one Redis."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        shards: int = 16,
        dedupe_window_s: int = 86_400,
        max_event_bytes: int = MAX_EVENT_BYTES,
        kick: Callable[[int], None] | None = None,
        max_backlog: int | None = None,
        retry_after_s: int = 5,
        kick_ttl_s: int = 300,
        router: RedisRouter | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if shards < 1 or dedupe_window_s < 1 or max_event_bytes < 1:
            raise ValueError("shards, dedupe_window_s and max_event_bytes must be at least 1")
        self.client = client
        self.shards = shards
        self.dedupe_window_s = dedupe_window_s
        self.max_event_bytes = max_event_bytes
        self.kick = kick
        self.max_backlog = max_backlog
        self.retry_after_s = retry_after_s
        self.kick_ttl_s = kick_ttl_s
        self.router = router if router is not None else RedisRouter(client)
        self.clock = clock

    def ingest(
        self,
        raw: list[dict[str, Any]],
        *,
        received_at: float | None = None,
        kind: str | None = None,
    ) -> IngestResult:
        """Store a batch: the valid events go on, the invalid are reported and kept."""
        # A collection in the middle of a batch would promote its objects to older generations,
        # and so bring on full collections over the whole heap (~4 us an event on a large one);
        # the batch's objects are gone when _store returns.
        with collector_paused():
            return self._store(raw, received_at, kind)

    def _store(
        self, raw: list[dict[str, Any]], received_at: float | None, kind: str | None
    ) -> IngestResult:
        """Validate, route, dedupe, append and kick (:meth:`ingest`, the collector paused)."""
        received = self.clock() if received_at is None else received_at
        valid, rejected = self._validate(raw, received, kind)
        result = IngestResult(rejected=[problem for problem, _ in rejected])
        if not raw:
            return result
        try:
            plan = self.router.plan([item.event for item in valid])
            for position in plan.unroutable:
                problem = BatchProblem(valid[position].index, "userId", "nobody to route by")
                rejected.append((problem, raw[valid[position].index]))
                result.rejected.append(problem)
            result.rejected.sort(key=lambda problem: problem.index)
            self._check_backlog(plan.routed)
            self._keep_rejected(rejected, received)
            self.router.write(plan)
            new, result.kicked = self._append(plan.routed, valid)
            self.router.settle(plan)
        except redis.RedisError as error:
            raise IngestUnavailable(f"Redis unavailable: {error}") from error
        self._count(result, valid, plan, new)
        self._kick(sorted(result.kicked))
        return result

    def _validate(
        self, raw: list[dict[str, Any]], received: float, kind: str | None
    ) -> tuple[list[_Valid], list[tuple[BatchProblem, Any]]]:
        """Each item as a core event (clock skew corrected), or its problem."""
        valid: list[_Valid] = []
        rejected: list[tuple[BatchProblem, Any]] = []
        for index, item in enumerate(raw):
            try:
                valid.append(self._event(index, item, received, kind))
            except EventError as error:
                rejected.append((BatchProblem(index, error.field, error.reason), item))
        return valid, rejected

    def _event(self, index: int, item: Any, received: float, kind: str | None) -> _Valid:
        """One valid core event with its stored JSON, or EventError naming the field."""
        if not isinstance(item, dict):
            raise EventError("payload", f"expected an object, got {type(item).__name__}")
        size = len(_json(item))
        if size > self.max_event_bytes:
            raise EventError(
                "payload", f"event is {size} bytes, over the {self.max_event_bytes}-byte limit"
            )
        call = parse_event(item, kind)
        event = to_core(call, received)
        if call.sent_at is not None:  # without it, the corrected time is to_core's own
            event.ts = corrected_timestamp(call, received)
        try:
            return _Valid(index, event, orjson.dumps(event.to_dict()))
        except TypeError as error:
            raise EventError("payload", f"cannot be stored: {error}") from None

    def _check_backlog(self, routed: Iterable[Routed]) -> None:
        """Refuse (before any write) if a target shard's stream is over the backlog limit."""
        limit = self.max_backlog
        if limit is None:
            return
        accounts = {item.account_id for item in routed}
        shards = sorted({shard_of(account, self.shards) for account in accounts})
        if not shards:
            return
        pipe = self.client.pipeline(transaction=False)
        for shard in shards:
            pipe.xlen(ShardKeys(shard).stream)
        for shard, length in zip(shards, pipe.execute(), strict=True):
            if int(length) > limit:
                raise BacklogFull(self.retry_after_s, shard, int(length), limit)

    def _keep_rejected(self, rejected: list[tuple[BatchProblem, Any]], received: float) -> None:
        """Append each invalid event to the bounded ``hg:rejected`` stream with its reason."""
        if not rejected:
            return
        pipe = self.client.pipeline(transaction=False)
        for problem, item in rejected:
            body = _json(item)
            entry: dict[EncodableT, EncodableT] = {
                "raw": body[:REJECTED_RAW_BYTES],
                "index": problem.index,
                "field": problem.field,
                "reason": problem.reason,
                "at": received,
            }
            if len(body) > REJECTED_RAW_BYTES:
                entry["truncated"] = len(body)
            pipe.xadd(REJECTED, entry, maxlen=REJECTED_MAX, approximate=True)
        pipe.execute()

    def _append(self, routed: list[Routed], valid: list[_Valid]) -> tuple[list[bool], set[int]]:
        """Run the ingest script per shard: whether each event was new, and the shards kicked.

        An event routed as validated is stored as the JSON validation made of it.
        """
        stored = {item.index: item for item in valid}
        batches: dict[int, ShardEvents] = {}
        where: list[tuple[int, int]] = []
        for item in routed:
            shard = shard_of(item.account_id, self.shards)
            events = batches.get(shard)
            if events is None:
                events = batches[shard] = ShardEvents()
            known = stored.get(item.index) if item.index is not None else None
            if known is not None and known.event is item.event:
                payload = known.payload
            else:
                payload = orjson.dumps(item.event.to_dict())
            where.append((shard, events.add(item.event.message_id, payload)))
        done = append_shards(
            self.client, batches, window_s=self.dedupe_window_s, kick_ttl_s=self.kick_ttl_s
        )
        kicked = {shard for shard, outcome in done.items() if outcome.kicked}
        return [done[shard].new[position] for shard, position in where], kicked

    def _count(
        self, result: IngestResult, valid: list[_Valid], plan: RoutePlan, new: list[bool]
    ) -> None:
        """Fill the result from the plan and the scripts' per-event answers."""
        stored: dict[int, bool] = {position: True for position in plan.parked}
        for item, fresh in zip(plan.routed, new, strict=True):
            if item.index is None:
                result.released += 1
            elif fresh:
                stored[item.index] = True
            else:
                result.duplicates += 1
        result.parked = len(plan.parked)
        result.dropped = len(plan.dropped)
        result.message_ids = [valid[p].event.message_id for p in sorted(stored)]
        result.accepted = len(result.message_ids)

    def _kick(self, shards: list[int]) -> None:
        """Enqueue a drain per newly flagged shard; a failed one is unflagged, then re-raised.

        The events are stored by then: a client that retries is deduplicated, and its call
        sets the flag again and kicks.
        """
        if self.kick is None:
            return
        failure: Exception | None = None
        for shard in shards:
            try:
                self.kick(shard)
            except Exception as error:
                failure = failure or error
                with contextlib.suppress(redis.RedisError):
                    self.client.delete(ShardKeys(shard).kicked)
        if failure is not None:
            raise failure
