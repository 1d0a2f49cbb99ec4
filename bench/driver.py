"""What the benchmark's own process does to a running deployment: ingest, kick, read counters."""

from __future__ import annotations

import time
from typing import Any

import redis
from celery import Celery

from engine.redis.ingest import Ingestor
from engine.redis.keys import ShardKeys

SHARDS_QUEUE = "hourglass.shards"


class Driver:
    """Ingests as the API does (kicking drains over the broker), sends beat's sweep, and reads
    the shards' ``applied`` counters."""

    def __init__(self, client: redis.Redis, broker_url: str, shards: int) -> None:
        self.client = client
        self.shards = shards
        self.celery = Celery("bench", broker=broker_url)
        self.ingestor = Ingestor(client, shards=shards, kick=self.kick, max_backlog=None)
        self._swept = 0.0

    def kick(self, shard: int) -> None:
        """Queue a drain of ``shard`` (what ingest does for a shard it newly flagged)."""
        self.celery.send_task("hourglass.drain_shard", args=(shard,), queue=SHARDS_QUEUE)

    def sweep(self, every: float = 1.0) -> None:
        """What beat's ``sweep-shards`` entry does every second (a lost kick only delays)."""
        now = time.monotonic()
        if now - self._swept >= every:
            self._swept = now
            self.celery.send_task("hourglass.sweep", queue=SHARDS_QUEUE)

    def ingest(self, calls: list[dict[str, Any]]) -> int:
        """Store a batch of Segment calls; how many were accepted."""
        return self.ingestor.ingest(calls).accepted

    def applied(self) -> list[int]:
        """Each shard's ``applied`` counter (entries committed as applied), in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for shard in range(self.shards):
            pipe.hget(ShardKeys(shard).counters, "applied")
        return [int(v or 0) for v in pipe.execute()]

    def wait_applied(self, target: int, base: int, timeout: float, every: float = 0.02) -> float:
        """Poll until ``target`` entries past ``base`` are applied; the time (perf_counter) it
        was first seen. Sweeps as beat would meanwhile; exits the benchmark on timeout."""
        deadline = time.perf_counter() + timeout
        last_report = time.perf_counter()
        while True:
            done = sum(self.applied()) - base
            now = time.perf_counter()
            if done >= target:
                return now
            if now > deadline:
                raise SystemExit(f"timed out: {done} of {target} events applied")
            if now - last_report > 5:
                print(f"    applied {done:,} of {target:,}", flush=True)
                last_report = now
            self.sweep()
            time.sleep(every)
