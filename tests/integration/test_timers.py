"""Durable timers on a real redis-server with real Celery workers, on a virtual clock: they fire
once, are reset by progress, are dropped when a cancelling event races them, fire once however
many workers and pollers run, and survive a Redis restart."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from celery import Celery
from virtual import VirtualDeployment
from workerproc import ROOT, WorkerProcess, wait_until

from engine.core.events import parse_event, to_core
from engine.core.loader import load_playbook_set
from engine.core.playbooks import DELIVERED
from engine.redis.keys import ShardKeys
from engine.redis.store import RedisStore
from engine.redis.timers import WAKE
from engine.runtime.simulate import simulate

SHARDS = 2
DAY = 86400.0
pytestmark = pytest.mark.integration
FIXTURES = ROOT / "tests" / "fixtures" / "timelines"


@pytest.fixture
def workers(redis_server: str, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(name: str = "w1", url: str = redis_server) -> WorkerProcess:
        process = WorkerProcess(
            url, name, tmp_path / f"{name}.log", shards=str(SHARDS), clock="virtual"
        ).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def at(day: float, hour: int = 10) -> str:
    return f"2026-03-{2 + int(day):02d}T{hour:02d}:00:00Z"


def evaluation(account: str) -> list[dict[str, Any]]:
    """An hourglass prospect that enters at evaluation (the evaluation-stalled play's stage)."""
    return [
        {"type": "group", "messageId": f"{account}-g", "groupId": account, "userId": f"{account}-u",
         "timestamp": at(0, 9), "traits": {"name": account, "journey": "hourglass",
         "ae_email": "ae@vendor.example", "csm_email": "csm@vendor.example"}},
        {"type": "track", "messageId": f"{account}-t", "userId": f"{account}-u",
         "event": "trial_started", "timestamp": at(0), "context": {"groupId": account}},
    ]  # fmt: skip


def progress(account: str, day: float, name: str = "demo_requested") -> dict[str, Any]:
    return {"type": "track", "messageId": f"{account}-{name}-{day}", "userId": f"{account}-u",
            "event": name, "timestamp": at(day), "context": {"groupId": account}}  # fmt: skip


def outbox(store: RedisStore, playbook: str) -> list[Any]:
    return [a for a in store.pending_actions(limit=10_000) if a.playbook == playbook]


def ts(raw: dict[str, Any]) -> float:
    return to_core(parse_event(raw), now=0.0).ts


def test_an_inactivity_timer_fires_once_and_is_reset_by_progress(
    redis_client: redis.Redis, redis_server: str, workers: Callable[..., WorkerProcess]
) -> None:
    workers()
    deployment = VirtualDeployment(redis_client, redis_server, SHARDS)
    for raw in evaluation("acme"):
        deployment.send(raw)
    start = ts(evaluation("acme")[1])
    deployment.send(progress("acme", 5))  # resets the 10-day wait: now due on day 15
    deployment.advance(start + 12 * DAY)
    assert outbox(deployment.store, "evaluation-stalled") == []
    deployment.advance(start + 16 * DAY)
    [task] = outbox(deployment.store, "evaluation-stalled")
    assert task.at == pytest.approx(start + 15 * DAY)
    deployment.advance(start + 60 * DAY)
    assert len(outbox(deployment.store, "evaluation-stalled")) == 1  # once per quiet period


def test_a_firing_that_races_a_cancelling_event_is_dropped(
    redis_client: redis.Redis, redis_server: str, workers: Callable[..., WorkerProcess]
) -> None:
    worker = workers()
    deployment = VirtualDeployment(redis_client, redis_server, SHARDS)
    for raw in evaluation("acme"):
        deployment.send(raw)
    start = ts(evaluation("acme")[1])
    worker.stop()  # nothing applies while the race is set up
    deployment.clock.advance_to(start + 11 * DAY)
    moving_on = progress("acme", 10.5, "business_case_requested")  # leaves evaluation
    deployment.ingestor.ingest([moving_on])
    shard = deployment.store.shard_of("acme")
    assert deployment.store.pop_due_timers(shard, start + 11 * DAY) >= 1  # wakes, queued
    entries = [orjson.loads(f[b"e"]) for _, f in redis_client.xrange(ShardKeys(shard).stream)]
    cancel = next(i for i, e in enumerate(entries) if e.get("e") == "business_case_requested")
    woken = next(i for i, e in enumerate(entries) if (e["k"], e["a"]) == (WAKE, "acme"))
    assert cancel < woken  # the wake (its due firing) is queued behind the event that cancels it
    workers("w2")
    deployment.settle("the race applied")
    assert outbox(deployment.store, "evaluation-stalled") == []
    state = deployment.store.load(["acme"])["acme"]
    assert state.tracks["hourglass.lifecycle"].stage == "justification"
    assert not any(t.startswith("trg:evaluation-stalled") for t in state.timers)


def test_each_timer_fires_once_with_two_workers_and_two_pollers(
    redis_client: redis.Redis, redis_server: str, workers: Callable[..., WorkerProcess]
) -> None:
    workers("w1")
    workers("w2")
    deployment = VirtualDeployment(redis_client, redis_server, SHARDS)
    accounts = [f"acct-{i:02d}" for i in range(24)]
    raws = sorted((r for a in accounts for r in evaluation(a)), key=lambda r: r["timestamp"])
    deployment.clock.advance_to(ts(raws[-1]))
    deployment.ingestor.ingest(raws)
    deployment.settle("every prospect in evaluation")
    stop = threading.Event()
    celery = Celery("poller", broker=redis_server)

    def poll() -> None:  # a second beat, or a stray one: extra sweeps must not double-fire
        while not stop.is_set():
            celery.send_task("hourglass.sweep", queue="hourglass.shards")
            stop.wait(0.05)

    pollers = [threading.Thread(target=poll) for _ in range(2)]
    for poller in pollers:
        poller.start()
    try:
        deployment.clock.advance_to(ts(raws[-1]) + 11 * DAY)
        wait_until(
            lambda: len(outbox(deployment.store, "evaluation-stalled")) >= len(accounts),
            60,
            "every account's timer fired",
        )
        deployment.settle("every firing applied")
    finally:
        stop.set()
        for poller in pollers:
            poller.join()
    tasks = outbox(deployment.store, "evaluation-stalled")
    assert sorted(t.account for t in tasks) == accounts  # exactly one each


def test_timers_and_outbox_survive_a_redis_restart_with_aof(
    redis_process: Callable[..., Any], workers: Callable[..., WorkerProcess]
) -> None:
    server = redis_process(appendonly=True)
    client = redis.Redis.from_url(server.url)
    worker = workers("w1", url=server.url)
    deployment = VirtualDeployment(client, server.url, SHARDS)
    for raw in evaluation("acme") + evaluation("globex"):
        deployment.send(raw)
    deployment.send(progress("acme", 1, "nps_submitted") | {"properties": {"score": 2}})
    store = deployment.store
    timers = {s: client.zrange(ShardKeys(s).timers, 0, -1, withscores=True) for s in range(SHARDS)}
    pending = {a.key for a in store.pending_actions()}
    assert any(timers.values()) and pending
    worker.stop()
    server.restart()
    client = redis.Redis.from_url(server.url)
    store = RedisStore(client, shards=SHARDS)
    after = {s: client.zrange(ShardKeys(s).timers, 0, -1, withscores=True) for s in range(SHARDS)}
    assert after == timers
    assert {a.key for a in store.pending_actions()} == pending
    workers("w2", url=server.url)
    deployment = VirtualDeployment(client, server.url, SHARDS)
    deployment.advance(ts(evaluation("acme")[1]) + 11 * DAY)
    fired = sorted(a.account for a in outbox(store, "evaluation-stalled"))
    assert fired == ["acme", "globex"]


@pytest.mark.parametrize("fixture", ["onboarding-stalled", "renewal-cadence", "low-adoption"])
def test_the_runtime_on_a_virtual_clock_acts_as_simulate(
    fixture: str,
    redis_client: redis.Redis,
    redis_server: str,
    workers: Callable[..., WorkerProcess],
) -> None:
    path = FIXTURES / f"{fixture}.jsonl"
    pset = load_playbook_set([ROOT / "playbooks"]).pset
    assert pset is not None
    buffer = io.BytesIO()
    result = simulate(pset, path, out=buffer)
    expected = {
        (a["idempotency_key"], a["time"])
        for a in map(orjson.loads, buffer.getvalue().splitlines())
        if a["mode"] == "live" and a["type"] in DELIVERED
    }
    assert expected
    workers()
    deployment = VirtualDeployment(redis_client, redis_server, SHARDS)
    for line in path.read_text().splitlines():
        deployment.send(orjson.loads(line))
    deployment.advance(result.ended)
    from engine.core.clock import iso

    actual = {(a.key, iso(a.at)) for a in deployment.store.pending_actions(limit=10_000)}
    assert actual == expected
