"""End-to-end throughput: push every event as fast as ingest allows while the workers drain;
the clock runs from the first ingest call until the shard counters say all are applied."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bench.driver import Driver

BATCH = 500


@dataclass(frozen=True, slots=True)
class Throughput:
    """What one throughput run measured (seconds from ``time.perf_counter``)."""

    events: int
    seconds: float
    ingest_seconds: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds

    @property
    def ingest_events_per_s(self) -> float:
        return self.events / self.ingest_seconds


def run_throughput(driver: Driver, calls: list[dict[str, Any]], timeout: float) -> Throughput:
    """Ingest ``calls`` in batches of 500, then wait until all of them are applied."""
    base = sum(driver.applied())
    started = time.perf_counter()
    accepted = 0
    last_report = started
    for start in range(0, len(calls), BATCH):
        accepted += driver.ingest(calls[start : start + BATCH])
        now = time.perf_counter()
        if now - last_report > 5:
            applied = sum(driver.applied()) - base
            print(f"    ingested {accepted:,}, applied {applied:,}", flush=True)
            last_report = now
        driver.sweep()
    ingested = time.perf_counter()
    if accepted != len(calls):
        raise SystemExit(f"ingest accepted {accepted} of {len(calls)} events")
    done = driver.wait_applied(accepted, base, timeout)
    return Throughput(accepted, done - started, ingested - started)
