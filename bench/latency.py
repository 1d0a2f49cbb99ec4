"""Ingest-to-applied latency at a steady rate.

Every 10 ms the benchmark sends the tick's share of events (``rate`` x 10 ms) through ingest,
noting each event's send time (just before the ingest call; the event's ``timestamp`` is set to
it too), then reads every shard's ``applied`` counter (one pipelined round trip). A shard's
entries are applied in stream order and the benchmark is the only writer, so the k-th event
sent to a shard is applied once that shard's counter has grown by k: its apply time is the
first read that shows it. Latency = apply time - send time; it includes ingest, the kick, the
Celery queue, batching and the fenced commit, and is late by at most one read interval.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bench.driver import Driver
from engine.redis.keys import shard_of

TICK_S = 0.01


@dataclass(frozen=True, slots=True)
class Latency:
    """Latencies (ms) of one steady run, and the rate actually sent."""

    events: int
    sent_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of ``values`` (sorted or not)."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))
    return ordered[rank]


def run_latency(
    driver: Driver, calls: list[dict[str, Any]], rate: float, timeout: float
) -> Latency:
    """Send ``calls`` at ``rate`` events/s and time each one until it is applied."""
    shards = [shard_of(c["context"]["groupId"], driver.shards) for c in calls]
    base = driver.applied()
    per_tick = max(1, round(rate * TICK_S))
    sent = [0.0] * len(calls)
    reads: list[tuple[float, list[int]]] = []
    started = time.perf_counter()
    for tick, first in enumerate(range(0, len(calls), per_tick)):
        pause = started + tick * per_tick / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        batch = calls[first : first + per_tick]
        at = time.perf_counter()
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        for call in batch:
            call["timestamp"] = stamp
        driver.ingest(batch)
        sent[first : first + len(batch)] = [at] * len(batch)
        reads.append((time.perf_counter(), driver.applied()))
        driver.sweep()
    sending = time.perf_counter() - started
    deadline = time.perf_counter() + timeout
    while not _all_applied(reads[-1][1], base, shards):
        if time.perf_counter() > deadline:
            raise SystemExit("timed out waiting for the latency run's events to be applied")
        time.sleep(0.005)
        reads.append((time.perf_counter(), driver.applied()))
        driver.sweep()
    latencies = _latencies(shards, sent, reads, base)
    return Latency(
        events=len(calls),
        sent_per_s=len(calls) / sending,
        p50_ms=percentile(latencies, 0.50),
        p99_ms=percentile(latencies, 0.99),
        max_ms=max(latencies),
    )


def _all_applied(applied: list[int], base: list[int], shards: list[int]) -> bool:
    expected = [0] * len(base)
    for shard in shards:
        expected[shard] += 1
    return all(a - b >= e for a, b, e in zip(applied, base, expected, strict=True))


def _latencies(
    shards: list[int], sent: list[float], reads: list[tuple[float, list[int]]], base: list[int]
) -> list[float]:
    """Each event's latency (ms): the first read whose counter covers its place in its shard."""
    per_shard: list[list[int]] = [[] for _ in base]
    for index, shard in enumerate(shards):
        per_shard[shard].append(index)
    out: list[float] = []
    for shard, indexes in enumerate(per_shard):
        position = 0
        for at, applied in reads:
            covered = min(applied[shard] - base[shard], len(indexes))
            while position < covered and at >= sent[indexes[position]]:
                out.append((at - sent[indexes[position]]) * 1000)
                position += 1
    return out
