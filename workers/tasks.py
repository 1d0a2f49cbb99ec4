"""Celery tasks. Thin: they move batches between Redis and the core."""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from typing import Any

import redis

from engine.core.clock import Clock, SystemClock
from engine.core.collector import settle
from engine.core.playbook_set import PlaybookSet
from engine.redis import lease
from engine.redis.clock import RedisClock
from engine.redis.drain import ShardDrainer
from engine.redis.keys import ShardKeys
from engine.redis.playbook_sets import LivePlaybooks, PlaybookSets
from engine.redis.store import RedisStore
from engine.settings import settings
from workers.app import SHARDS_QUEUE, app

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _client() -> redis.Redis:
    url = settings().redis_url
    if url is None:
        raise RuntimeError("REDIS_URL is not set")
    return redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)


@lru_cache(maxsize=1)
def _live_playbooks() -> LivePlaybooks:
    """The published set in Redis, followed live (the directory is published if none is)."""
    return LivePlaybooks(PlaybookSets(_client()), settings().playbooks)


def _playbooks() -> PlaybookSet:
    """The playbook set to apply now: a new published version is picked up within a second.
    Once a set is loaded, everything alive is settled out of the collector's sight."""
    pset = _live_playbooks()()
    if _SETTLED_FOR[0] is not pset:
        _SETTLED_FOR[0] = pset
        settle()
    return pset


#: The playbook set the heap was last settled for.
_SETTLED_FOR: list[PlaybookSet | None] = [None]


def _clock() -> Clock:
    """Wall time live; the deployment's virtual clock in Redis when driven through a replay."""
    return RedisClock(_client()) if settings().clock == "virtual" else SystemClock()


@lru_cache(maxsize=1)
def _drainer() -> ShardDrainer:
    config = settings()
    store = RedisStore(
        _client(),
        shards=config.shards,
        dedupe_window_s=config.dedupe_window_s,
        receipt_retention_s=config.receipt_retention_s,
    )
    return ShardDrainer(
        _client(),
        store,
        _playbooks,
        _clock(),
        batch_size=config.batch_size,
        lease_ms=config.lease_ms,
        mode=config.clock,
        consumer=f"{os.uname().nodename}-{os.getpid()}",
    )


def kick(shard: int) -> None:
    """Queue a drain of ``shard`` (ingest calls this when it newly sets the shard's flag)."""
    drain_shard.apply_async((shard,), queue=SHARDS_QUEUE)


@app.task(name="hourglass.drain_shard", bind=True, max_retries=None)
def drain_shard(self: Any, shard: int) -> dict[str, Any]:
    """Drain one shard for a while, then re-enqueue itself if it still has a backlog."""
    client = _client()
    keys = ShardKeys(shard)
    try:
        report = _drainer().drain(shard, settings().batches_per_task)
    except redis.RedisError as error:
        log.warning("shard %s: Redis unavailable (%s); backing off", shard, error)
        raise self.retry(countdown=min(30, 2 ** min(self.request.retries, 5)), exc=error) from None
    if not report.held:
        pass  # another consumer is draining it; the sweep covers a holder that died
    elif report.backlog:
        drain_shard.apply_async((shard,), queue=SHARDS_QUEUE)  # more: come back, never hog
    else:
        client.delete(keys.kicked)
        # An event may have arrived between the last read and the flag's removal.
        if _drainer().store.has_backlog(shard) and client.set(keys.kicked, 1, nx=True, ex=300):
            kick(shard)
    return {
        "shard": shard,
        "applied": report.applied,
        "dead_letters": report.dead_letters,
        "fenced_out": report.fenced_out,
    }


@app.task(name="hourglass.sweep")
def sweep() -> int:
    """Kick every shard with unread or pending entries or a due timer (so a lost kick only
    delays, and a timer fires within about a second of its due time)."""
    config = settings()
    store = _drainer().store
    client = _client()
    kicked = 0
    now = _drainer().clock.now() if config.clock != "event" else None
    for shard in range(config.shards):
        keys = ShardKeys(shard)
        if store.has_backlog(shard, now) and lease.holder(client, keys) is None:
            client.set(keys.kicked, 1, ex=300)
            kick(shard)
            kicked += 1
    return kicked
