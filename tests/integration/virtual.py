"""Driving a real deployment (Redis + Celery workers) on a virtual clock, the way ``simulate``
drives the embedded runner: before each event, every timer due by its time fires, in due
order, at its due time."""

from __future__ import annotations

from typing import Any

import redis
from celery import Celery
from workerproc import wait_until

from engine.core.events import parse_event, to_core
from engine.redis.clock import RedisClock
from engine.redis.ingest import Ingestor
from engine.redis.keys import ShardKeys
from engine.redis.store import RedisStore


class VirtualDeployment:
    """A deployment whose workers run with ``HOURGLASS_CLOCK=virtual``."""

    def __init__(self, client: redis.Redis, url: str, shards: int) -> None:
        self.client = client
        self.shards = shards
        self.store = RedisStore(client, shards=shards)
        self.clock = RedisClock(client)
        self.celery = Celery("hourglass-test", broker=url)
        self.ingestor = Ingestor(client, shards=shards, kick=self._kick)

    def _kick(self, shard: int) -> None:
        self.celery.send_task("hourglass.drain_shard", args=(shard,), queue="hourglass.shards")

    def _sweep(self) -> None:
        self.celery.send_task("hourglass.sweep", queue="hourglass.shards")

    def next_due(self) -> float | None:
        """The earliest open timer of the deployment."""
        dues = []
        for shard in range(self.shards):
            first: Any = self.client.zrange(ShardKeys(shard).timers, 0, 0, withscores=True)
            if first:
                dues.append(float(first[0][1]))
        return min(dues) if dues else None

    def settled(self) -> bool:
        now = self.clock.now()
        return not any(self.store.has_backlog(s, now) for s in range(self.shards))

    def settle(self, what: str) -> None:
        def check() -> bool:
            if self.settled():
                return True
            self._sweep()
            return False

        wait_until(check, 60, what)

    def advance(self, when: float) -> None:
        """Fire every timer due by ``when`` at its due time, one due time at a time."""
        while (due := self.next_due()) is not None and due <= when:
            self.clock.advance_to(due)
            self.settle(f"timers due at {due}")
        self.clock.advance_to(when)

    def send(self, raw: dict[str, Any]) -> None:
        """One event at its own time: due timers first, then the event, applied."""
        event = to_core(parse_event(raw), now=self.clock.now())
        self.advance(event.ts)
        self.ingestor.ingest([raw])
        self.settle(f"event {event.message_id} applied")
