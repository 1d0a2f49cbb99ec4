"""A virtual clock kept in Redis, so every worker of a deployment reads the same time.

Used to drive a deployment through a replayed history (parity with ``simulate``); live
deployments use wall time.
"""

from __future__ import annotations

import redis

from engine.redis.keys import CLOCK


class RedisClock:
    """The deployment's virtual time: whatever was last set, never moving backwards."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def now(self) -> float:
        raw = self.client.get(CLOCK)
        return float(raw) if raw is not None else 0.0

    def advance_to(self, when: float) -> None:
        """Move the clock forward to ``when`` (never backwards)."""
        self.client.eval(
            "local now = tonumber(redis.call('GET', KEYS[1]) or '0') "
            "if tonumber(ARGV[1]) > now then redis.call('SET', KEYS[1], ARGV[1]) end",
            1,
            CLOCK,
            repr(float(when)),
        )
