"""Celery tasks of the outbox: dispatch one shard's due actions; a beat sweeper that queues
dispatches for shards with due entries (expired claims included), so a dispatcher that died
mid-delivery is replaced within a lease plus a sweep, never after Celery's visibility timeout.

Everything runs on ``hourglass.dispatch``: the outbox queue is per shard, not per channel, and
the claim lease (with channel timeouts) bounds how long a slow channel holds an entry.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from functools import lru_cache
from typing import Any

import redis

from engine.channels.registry import build_channels
from engine.redis import keys as k
from engine.redis.dispatch import Dispatcher
from engine.redis.outbox import Outbox
from engine.redis.store import RedisStore
from engine.settings import settings
from workers.app import DISPATCH_QUEUE, app
from workers.tasks import _client, _playbooks

log = logging.getLogger(__name__)

#: A queued dispatch's flag expires after this long, so a lost task message only delays.
KICK_TTL_S = 30


@lru_cache(maxsize=1)
def _outbox() -> Outbox:
    config = settings()
    return Outbox(_client(), config.shards, receipt_retention_s=config.receipt_retention_s)


@lru_cache(maxsize=1)
def _store() -> RedisStore:
    config = settings()
    return RedisStore(
        _client(),
        shards=config.shards,
        dedupe_window_s=config.dedupe_window_s,
        receipt_retention_s=config.receipt_retention_s,
    )


def _dispatcher() -> Dispatcher:
    """A dispatcher over the channels of the current playbook set's destinations (cheap)."""
    config = settings()
    channels = build_channels(_store(), _playbooks().destinations, config)
    return Dispatcher(
        _outbox(), channels, lease_s=config.dispatch_lease_s, attempts=config.dispatch_attempts
    )


def kick_dispatch(shard: int) -> bool:
    """Queue a dispatch of ``shard`` unless one is already queued; whether one was queued."""
    if not _client().set(k.dispatch_kicked(shard), 1, nx=True, ex=KICK_TTL_S):
        return False
    dispatch.apply_async((shard,), queue=DISPATCH_QUEUE)
    return True


@app.task(name="hourglass.dispatch", bind=True, max_retries=None)
def dispatch(self: Any, shard: int) -> dict[str, Any]:
    """Deliver the shard's due outbox entries for a while; queue itself again if more are due."""
    client = _client()
    client.delete(k.dispatch_kicked(shard))  # from here on, a sweep may queue the next one
    try:
        report = _dispatcher().dispatch(shard)
    except redis.RedisError as error:
        log.warning("outbox %s: Redis unavailable (%s); backing off", shard, error)
        raise self.retry(countdown=min(30, 2 ** min(self.request.retries, 5)), exc=error) from None
    if report.more:
        kick_dispatch(shard)
    return asdict(report)


@app.task(name="hourglass.dispatch_sweep")
def dispatch_sweep() -> int:
    """Queue a dispatch for every shard with a due outbox entry; how many were queued."""
    return sum(kick_dispatch(shard) for shard in _outbox().due_shards(time.time()))
