"""Shard leases: one consumer holds a shard at a time, identified by a token, with a TTL.

Only the holder renews or releases (compare-and-act in Lua); the commit script is fenced by
the same key, so a consumer whose lease expired cannot write.
"""

from __future__ import annotations

from redis import Redis

from engine.redis.keys import ShardKeys
from engine.redis.scripts import LEASE_RELEASE, LEASE_RENEW


def acquire(client: Redis, keys: ShardKeys, token: str, ttl_ms: int) -> bool:
    """Take the shard's lease if nobody holds it (SET NX PX)."""
    return bool(client.set(keys.lease, token, nx=True, px=ttl_ms))


def renew(client: Redis, keys: ShardKeys, token: str, ttl_ms: int) -> bool:
    """Extend the lease to ``ttl_ms`` from now, if ``token`` still holds it."""
    return bool(LEASE_RENEW(client, [keys.lease], [token, ttl_ms]))


def release(client: Redis, keys: ShardKeys, token: str) -> bool:
    """Give the lease up, if ``token`` holds it."""
    return bool(LEASE_RELEASE(client, [keys.lease], [token]))


def holder(client: Redis, keys: ShardKeys) -> str | None:
    """The token holding the shard's lease, or None."""
    raw = client.get(keys.lease)
    if raw is None:
        return None
    return raw.decode() if isinstance(raw, bytes) else str(raw)
