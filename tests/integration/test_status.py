"""``hourglass status`` on a real redis-server: a deployment with a known backlog, pending
entries, a dead letter, a held lease, timers, outbox entries, queued Celery messages and one
live worker, read back exactly through the command line."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from timelines import timeline
from workerproc import ROOT, WorkerProcess, wait_until, worker_env

from engine.core.clock import SystemClock
from engine.core.effects import ActionEffect
from engine.core.loader import load_playbook_set
from engine.redis.drain import ShardDrainer
from engine.redis.ingest import Ingestor
from engine.redis.keys import GROUP, ShardKeys, shard_of
from engine.redis.outbox import Outbox
from engine.redis.status import SHARD_FIELDS
from engine.redis.store import RedisStore
from engine.runtime.store import Commit

SHARDS = 4
HOURGLASS = str(Path(sys.executable).parent / "hourglass")
pytestmark = pytest.mark.integration


def status(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``hourglass status`` against the deployment at ``url`` (wall clock, 4 shards), as
    in a terminal 160 columns wide."""
    env = {**worker_env(url, shards=str(SHARDS), clock="wall"), "COLUMNS": "160"}
    command = [HOURGLASS, "status", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def status_json(url: str, ping_timeout: str = "0.5") -> dict[str, Any]:
    done = status(url, "--json", "--ping-timeout", ping_timeout)
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def account_of(call: dict[str, Any]) -> str:
    return str(call.get("groupId") or call["context"]["groupId"])


def action(key: str, account: str, at: float) -> ActionEffect:
    return ActionEffect(key, at, account, "nps-detractor", 1, "task", "live", {"title": key}, "0.0")


@pytest.fixture
def slow_worker(redis_server: str, tmp_path: Path) -> Iterator[WorkerProcess]:
    """A real Celery worker on the (otherwise unused) slow queue: alive, and touching nothing."""
    worker = WorkerProcess(redis_server, "w-status", tmp_path / "w.log", queues="hourglass.slow")
    yield worker.start()
    worker.stop()


def test_status_reports_a_known_deployment_exactly(
    redis_client: redis.Redis, redis_server: str, slow_worker: WorkerProcess
) -> None:
    calls = timeline(accounts=12)
    per_shard = Counter(shard_of(account_of(c), SHARDS) for c in calls)
    stalled, poisoned = (shard for shard, _ in per_shard.most_common(2))
    began = time.time()
    assert Ingestor(redis_client, shards=SHARDS).ingest(calls).accepted == len(calls)

    # No worker on the shard queue: everything is unread, nothing pending.
    first = status_json(redis_server, ping_timeout="0")
    assert first["totals"]["unread"] == len(calls) == first["totals"]["backlog"]
    assert first["totals"]["pending"] == 0 and first["workers"] is None
    assert [s["unread"] for s in first["shards"]] == [per_shard[s] for s in range(SHARDS)]

    # A consumer reads 3 entries of one shard and never acknowledges them; it holds the lease.
    store = RedisStore(redis_client, shards=SHARDS)
    keys = ShardKeys(stalled)
    store.ensure_group(stalled)
    redis_client.xreadgroup(GROUP, "stalled-consumer", {keys.stream: ">"}, count=3)
    redis_client.set(keys.lease, "stalled-consumer:1234", px=60_000)

    # A poison entry on another shard, drained: one dead letter, the good events applied.
    redis_client.xadd(ShardKeys(poisoned).stream, {b"e": b"{not json"})
    pset = load_playbook_set([ROOT / "playbooks"]).pset
    assert pset is not None
    drained = ShardDrainer(redis_client, store, lambda: pset, SystemClock(), mode="event")
    report = drained.drain(poisoned)
    assert (report.applied, report.dead_letters, report.backlog) == (per_shard[poisoned], 1, False)

    # Accounts waiting on timers on the stalled shard, their earliest overdue (a minute ago),
    # due (just now), and in an hour.
    now = time.time()
    redis_client.zadd(keys.timers, {"acct-x": now - 60, "acct-y": now - 1, "acct-z": now + 3600})

    # Outbox on the stalled shard: one entry waiting, one retrying, one dead.
    account = next(a for a in map(account_of, calls) if shard_of(a, SHARDS) == stalled)
    store.commit(Commit(actions=[action(n, account, now - 30 + i) for i, n in enumerate("rdw")]))
    outbox = Outbox(redis_client, SHARDS, jitter=lambda: 1.0, base_s=600)  # retry in 10 min
    assert [c.key for c in outbox.claim(stalled, now, 60, 2)] == ["r", "d"]
    assert outbox.failed(stalled, "r", "timeout", 6, now).outcome == "retry"
    assert (
        outbox.failed(stalled, "d", "550 no such user", 6, now, retryable=False).outcome == "dead"
    )

    # Two drain kicks waiting in the broker's shard queue, one of them at priority 9.
    producer = Celery("status-test", broker=redis_server)
    producer.send_task("hourglass.drain_shard", args=(0,), queue="hourglass.shards")
    producer.send_task("hourglass.drain_shard", args=(1,), queue="hourglass.shards", priority=9)

    wait_until(lambda: len(Celery(broker=redis_server).control.ping(timeout=0.5)) == 1, 60, "w")
    time.sleep(0.3)  # so the oldest entries are at least this old
    doc = status_json(redis_server, ping_timeout="2")
    took = time.time() - began

    assert set(doc) == {"at", "clock", "totals", "shards", "queues", "unacked", "workers", "notes"}
    assert doc["clock"] == "wall" and doc["notes"] == []
    assert [list(s) for s in doc["shards"]] == [SHARD_FIELDS] * SHARDS
    shards = {s["shard"]: s for s in doc["shards"]}
    idle = [s for s in range(SHARDS) if s not in (stalled, poisoned)]

    held = shards[stalled]
    assert (held["stream"], held["pending"], held["unread"]) == (
        per_shard[stalled], 3, per_shard[stalled] - 3,
    )  # fmt: skip
    assert held["backlog"] == per_shard[stalled]
    assert 300 <= held["lag_ms"] <= took * 1000 + 50
    assert held["lease_holder"] == "stalled-consumer:1234" and 0 < held["lease_ttl_ms"] <= 60_000
    assert (held["timers"], held["timers_due"], held["timers_overdue"]) == (3, 2, 1)
    assert (held["outbox_pending"], held["outbox_due"], held["outbox_retrying"]) == (2, 1, 1)
    assert (held["outbox_dead"], held["dead_letters"], held["applied"]) == (1, 0, 0)

    done = shards[poisoned]
    assert (done["unread"], done["pending"], done["backlog"], done["lag_ms"]) == (0, 0, 0, None)
    assert done["dead_letters"] == 1 and done["applied"] == per_shard[poisoned]
    assert done["stream"] == redis_client.xlen(ShardKeys(poisoned).stream)
    assert done["lease_holder"] is None and done["fenced_out"] == 0
    assert done["timers"] == redis_client.zcard(ShardKeys(poisoned).timers)
    assert done["outbox_pending"] == redis_client.hlen(ShardKeys(poisoned).outbox)

    for shard in idle:
        assert shards[shard]["unread"] == per_shard[shard] and shards[shard]["pending"] == 0
        assert shards[shard]["lag_ms"] is not None and shards[shard]["lease_holder"] is None

    totals = doc["totals"]
    assert totals["backlog"] == len(calls) - per_shard[poisoned]
    assert totals["pending"] == 3 and totals["dead_letters"] == 1 and totals["outbox_dead"] == 1
    assert totals["applied"] == per_shard[poisoned] and totals["leased"] == 1
    assert totals["lag_ms"] == max(s["lag_ms"] for s in doc["shards"] if s["lag_ms"] is not None)

    assert doc["queues"] == {"hourglass.shards": 2, "hourglass.dispatch": 0, "hourglass.slow": 0}
    assert redis_client.llen("hourglass.shards\x06\x169") == 1  # the priority-9 list counted
    assert doc["unacked"] == 0
    assert doc["workers"]["alive"] == 1
    assert doc["workers"]["names"][0].startswith("w-status@")

    text = status(redis_server, "--ping-timeout", "2")
    assert text.returncode == 0, text.stderr
    assert f"backlog {totals['backlog']} " in text.stdout
    assert "dead letters: events 1, outbox 1" in text.stdout
    assert "stalled-consumer:1234" in text.stdout and "workers alive: 1" in text.stdout


def test_outbox_dead_letters_replay_through_the_command_line(
    redis_client: redis.Redis, redis_server: str
) -> None:
    store = RedisStore(redis_client, shards=SHARDS)
    now = time.time()
    store.commit(Commit(actions=[action("dead-1", "acct-001", now)]))
    shard = shard_of("acct-001", SHARDS)
    outbox = Outbox(redis_client, SHARDS)
    assert [c.key for c in outbox.claim(shard, now, 60, 5)] == ["dead-1"]
    outbox.failed(shard, "dead-1", "550 mailbox unavailable", 6, now, retryable=False)
    env = worker_env(redis_server, shards=str(SHARDS))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [HOURGLASS, "outbox", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    listed = run("list")
    assert listed.returncode == 0 and "550 mailbox unavailable" in listed.stdout
    assert f"{shard}:dead-1" in listed.stdout
    assert run("replay", f"{shard}:dead-1").returncode == 0
    assert outbox.dead_letters() == [] and redis_client.hexists(ShardKeys(shard).outbox, "dead-1")
    again = run("replay", f"{shard}:dead-1")
    assert again.returncode == 1 and "no outbox dead letter" in again.stderr
    assert run("discard", "not-an-id").returncode == 1


def test_workers_send_the_task_events_flower_reads(redis_server: str, tmp_path: Path) -> None:
    env = worker_env(redis_server)
    probe = (
        "from workers.app import app; "
        "print(app.conf.worker_send_task_events, app.conf.task_send_sent_event)"
    )
    flags = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert flags.stdout.split() == ["True", "True"], flags.stderr
    worker = WorkerProcess(redis_server, "w-events", tmp_path / "w.log").start()
    app = Celery("flower-like", broker=redis_server)
    app.conf.task_send_sent_event = True  # as workers.app sets it for every producer
    seen: list[str] = []
    with app.connection() as connection:
        receiver = app.events.Receiver(
            connection, handlers={"*": lambda event: seen.append(event["type"])}
        )

        def capture() -> None:
            """What Flower does: read the broker's ``celeryev`` exchange."""
            with contextlib.suppress(socket.timeout, TimeoutError):
                receiver.capture(limit=None, timeout=30, wakeup=True)

        listener = threading.Thread(target=capture, daemon=True)
        listener.start()
        try:
            wait_until(lambda: bool(app.control.ping(timeout=0.5)), 60, "the worker")
            expected = {"task-sent", "task-received", "task-started", "task-succeeded"}

            def delivered() -> bool:
                app.send_task("hourglass.sweep", queue="hourglass.shards")
                time.sleep(0.5)
                return expected <= set(seen)

            wait_until(delivered, 30, f"task events {expected}")
        finally:
            receiver.should_stop = True
            listener.join(10)
            worker.stop()
