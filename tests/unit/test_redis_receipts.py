"""Delivery receipts: honoured for a retention, then dropped a period's hash at a time; the earlier
versions' single receipts hash honoured until it ages out. On fakeredis and on redis-server.

A shard's receipts live in a ring of RECEIPT_SLOTS hashes, one per period of retention /
(RECEIPT_SLOTS - 1); each hash is read until its ``live_until``. Tests age receipts by moving
``live_until`` back by whole periods, as if the receipts had been delivered that much earlier.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis

from engine.core.effects import ActionEffect
from engine.core.state import AccountState
from engine.redis.keys import RECEIPT_SLOTS, ShardKeys
from engine.redis.outbox import RECEIPT_RETENTION_S
from engine.redis.store import RedisStore
from engine.runtime.store import Commit

#: One shard, so every account is on it.
KEYS = ShardKeys(0)
PERIOD_MS = RECEIPT_RETENTION_S * 1000 // (RECEIPT_SLOTS - 1)


@pytest.fixture
def client(either_redis: redis.Redis) -> redis.Redis:
    return either_redis


@pytest.fixture
def store(client: redis.Redis) -> RedisStore:
    return RedisStore(client, shards=1)


def action(key: str) -> ActionEffect:
    payload: dict[str, Any] = {"to": "csm@vendor.example", "subject": "s", "body": "b"}
    return ActionEffect(key, 100.0, "acme", "pb", 1, "email", "live", payload, "0.0")


def decide(store: RedisStore, *keys: str) -> set[str]:
    """Commit the actions as the engine does (with their account's state); the keys queued."""
    actions = [action(key) for key in keys]
    store.commit(Commit(states=[AccountState("acme", 1.0)], actions=actions))
    return {key.decode() for key in store.client.hkeys(KEYS.outbox)}


def deliver(store: RedisStore, *keys: str) -> None:
    """Decide the actions, then record each one delivered."""
    decide(store, *keys)
    for key in keys:
        assert store.outbox.delivered(0, key, f"250 OK {key}")


def holding(client: redis.Redis, key: str) -> list[str]:
    """The receipt hashes (ring and legacy) holding ``key``."""
    hashes = [*KEYS.receipts, KEYS.legacy_receipts]
    return [name for name in hashes if client.hexists(name, key)]


def age(client: redis.Redis, periods: int) -> None:
    """Move every receipt hash ``periods`` periods into the past."""
    for name in [*KEYS.receipts, KEYS.legacy_receipts]:
        live_until = client.hget(name, "live_until")
        if live_until is not None:
            client.hset(name, "live_until", int(float(live_until)) - periods * PERIOD_MS)


def test_a_delivered_action_decided_again_within_retention_is_not_queued(
    client: redis.Redis, store: RedisStore
) -> None:
    deliver(store, "k1")
    assert decide(store, "k1", "k2") == {"k2"}
    assert store.load(["acme"])  # the state in the same commit is written
    assert store.outbox.receipt(0, "k1") == store.delivery("k1") == "250 OK k1"
    [ring_hash] = holding(client, "k1")
    assert ring_hash in KEYS.receipts and not client.exists(KEYS.legacy_receipts)
    age(client, RECEIPT_SLOTS - 1)  # delivered two periods ago: still within its retention
    assert decide(store, "k1") == {"k2"}
    assert store.outbox.receipt(0, "k1") == "250 OK k1"


def test_a_receipt_is_dropped_once_its_retention_is_over(
    client: redis.Redis, store: RedisStore
) -> None:
    deliver(store, "k1")
    age(client, RECEIPT_SLOTS)  # one retention after the end of its period
    assert store.outbox.receipt(0, "k1") is None and store.delivery("k1") is None
    assert decide(store, "k1") == {"k1"}  # decided again: queued again
    assert holding(client, "k1")  # still stored, not read: the next delivery frees its hash
    deliver(store, "k2")
    assert holding(client, "k1") == [] and holding(client, "k2")
    deliver(store, "k1")
    assert store.outbox.receipt(0, "k1") == "250 OK k1"


def test_receipts_are_dropped_in_real_time(client: redis.Redis) -> None:
    retention = 0.4
    store = RedisStore(client, shards=1, receipt_retention_s=retention)
    deliver(store, "k1")
    assert decide(store, "k1") == set()
    time.sleep(retention * RECEIPT_SLOTS / (RECEIPT_SLOTS - 1) + 0.1)
    assert decide(store, "k1") == {"k1"}
    time.sleep(retention / (RECEIPT_SLOTS - 1) + 0.1)  # and the hash's own expiry
    assert client.exists(*KEYS.receipts) == 0


def test_the_first_receipt_stays(client: redis.Redis, store: RedisStore) -> None:
    deliver(store, "k1")
    assert store.outbox.delivered(0, "k1", "250 again") is False
    assert store.delivery("k1") == "250 OK k1" and len(holding(client, "k1")) == 1


def test_receipts_in_the_old_single_hash_are_honoured_until_they_age_out(
    client: redis.Redis, store: RedisStore
) -> None:
    client.hset(KEYS.legacy_receipts, "old", "250 old")
    assert decide(store, "old") == set()
    assert store.outbox.receipt(0, "old") == store.delivery("old") == "250 old"
    assert client.pttl(KEYS.legacy_receipts) == -1  # commits leave it as it is
    assert store.outbox.delivered(0, "old", "250 new") is False
    assert holding(client, "old") == [KEYS.legacy_receipts]  # the first receipt stays
    current = next(name for name in KEYS.receipts if client.exists(name))
    assert client.hget(KEYS.legacy_receipts, "live_until") == client.hget(current, "live_until")
    assert client.pttl(KEYS.legacy_receipts) > 0
    age(client, RECEIPT_SLOTS)
    assert decide(store, "old") == {"old"}
    deliver(store, "new")
    assert not client.exists(KEYS.legacy_receipts)


@pytest.mark.parametrize("where", ["legacy", "ring"])
def test_a_dead_letter_whose_key_has_a_receipt_is_not_replayed(
    client: redis.Redis, store: RedisStore, where: str
) -> None:
    deliver(store, "other")
    decide(store, "a")
    assert store.outbox.failed(0, "a", "550 no", 1, time.time()).outcome == "dead"
    receipts = KEYS.legacy_receipts if where == "legacy" else holding(client, "other")[0]
    client.hset(receipts, "a", "250 meanwhile")
    assert store.outbox.replay(0, "a", time.time()) is False
    assert store.outbox.dead_letters() == [] and client.hlen(KEYS.outbox) == 0


def rotation_commands(client: redis.Redis, receipts: int) -> dict[str, int]:
    """Commands (calls) of the delivery that frees a stale hash holding ``receipts`` receipts."""
    client.flushall()
    store = RedisStore(client, shards=1)
    deliver(store, "k0")
    [stale] = holding(client, "k0")
    for first in range(0, receipts, 10_000):
        client.hset(stale, mapping={f"r{i}": "250" for i in range(first, first + 10_000)})
    age(client, RECEIPT_SLOTS)
    decide(store, "k1")
    client.config_resetstat()
    store.outbox.delivered(0, "k1", "250 OK")
    assert set(client.hkeys(stale)) == {b"live_until", b"k1"}  # its slot's new period
    stats: Any = client.info("commandstats")
    return {name: int(row["calls"]) for name, row in stats.items()}


def test_pruning_unlinks_one_hash_whatever_it_holds(redis_client: redis.Redis) -> None:
    small = rotation_commands(redis_client, 10_000)
    large = rotation_commands(redis_client, 200_000)
    assert small == large
    assert large["cmdstat_unlink"] == 1 and "cmdstat_del" not in large
