"""The baseline run: one Celery task per event (bench/naive.py), on the same Redis, store code,
core and playbooks; the clock runs from the first task sent until its counter says all ran."""

from __future__ import annotations

import time
from typing import Any

import orjson
import redis
from celery import Celery

QUEUE = "bench.naive"
TASK = "bench.apply_one"
#: Events the baseline applied (one INCR per task; the drain counts in its commit script).
APPLIED = "bench:naive:applied"


def core_events(calls: list[dict[str, Any]]) -> list[str]:
    """Each call validated and routed once (as ingest would), as the task's JSON argument."""
    from engine.core.events import parse_event, to_core

    now = time.time()
    return [orjson.dumps(to_core(parse_event(call), now).to_dict()).decode() for call in calls]


def run_baseline(client: redis.Redis, broker_url: str, events: list[str], timeout: float) -> float:
    """Send one task per event and wait until every one has run; events per second."""
    producer = Celery("bench", broker=broker_url)
    client.delete(APPLIED)
    started = time.perf_counter()
    with producer.connection_for_write() as connection:
        for event in events:
            producer.send_task(TASK, args=(event,), queue=QUEUE, connection=connection)
    deadline = started + timeout
    last_report = started
    while int(client.get(APPLIED) or 0) < len(events):
        now = time.perf_counter()
        if now > deadline:
            raise SystemExit(f"timed out: the baseline ran {int(client.get(APPLIED) or 0)} tasks")
        if now - last_report > 5:
            print(f"    baseline applied {int(client.get(APPLIED) or 0):,}", flush=True)
            last_report = now
        time.sleep(0.02)
    return len(events) / (time.perf_counter() - started)
