"""Runtime I on a real redis-server with real Celery worker processes: parity with the embedded
runner, crashes, stalls, poison events, ordering, and a Redis outage."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from timelines import timeline, write
from workerproc import ROOT, WorkerProcess, kicker, wait_until, worker_env

from engine.core.clock import VirtualClock
from engine.core.effects import ActionEffect
from engine.core.events import parse_event, to_core
from engine.core.loader import load_playbook_set
from engine.core.playbooks import DELIVERED
from engine.core.state import AccountState
from engine.redis.ingest import Ingestor, IngestUnavailable
from engine.redis.keys import ShardKeys
from engine.redis.store import RedisStore
from engine.runtime.runner import Runner

SHARDS = 4
pytestmark = pytest.mark.integration


@pytest.fixture
def workers(redis_server: str, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start Celery workers on the session's Redis; all stopped at the end of the test."""
    started: list[WorkerProcess] = []

    def start(name: str = "w1", url: str = redis_server, **settings: str) -> WorkerProcess:
        settings.setdefault("shards", str(SHARDS))
        process = WorkerProcess(url, name, tmp_path / f"{name}.log", **settings).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def embedded(calls: list[dict[str, Any]]) -> tuple[dict[str, AccountState], set[str]]:
    """What the embedded runner computes for the same calls: states and delivered action keys."""
    pset = load_playbook_set([ROOT / "playbooks"]).pset
    assert pset is not None
    runner = Runner(pset, clock=VirtualClock())
    keys: set[str] = set()

    def collect(action: ActionEffect) -> None:
        if action.mode == "live" and action.type in DELIVERED:
            keys.add(action.key)

    runner.on_action = collect
    for raw in calls:
        runner.submit(to_core(parse_event(raw), now=0.0))
    store = runner.store
    return store.load(store.account_ids()), keys


def applied(client: redis.Redis) -> int:
    """Entries committed as applied, over every shard."""
    return sum(int(client.hget(ShardKeys(s).counters, "applied") or 0) for s in range(SHARDS))


def counter(client: redis.Redis, name: str) -> int:
    return sum(int(client.hget(ShardKeys(s).counters, name) or 0) for s in range(SHARDS))


def drained(store: RedisStore) -> bool:
    return not any(store.has_backlog(s) for s in range(SHARDS))


def sweep(redis_url: str) -> None:
    """What beat does every few seconds: kick every shard that has work and no holder."""
    Celery("hourglass-test", broker=redis_url).send_task(
        "hourglass.sweep", queue="hourglass.shards"
    )


def ingest(client: redis.Redis, url: str, calls: list[dict[str, Any]]) -> int:
    ingestor = Ingestor(client, shards=SHARDS, kick=kicker(url))
    accepted = 0
    for start in range(0, len(calls), 500):
        accepted += ingestor.ingest(calls[start : start + 500]).accepted
    return accepted


def logins(store: RedisStore, accounts: list[str]) -> dict[str, float]:
    """Each account's 30-day login count (a count that doubles if an event applies twice)."""
    states = store.load(accounts)
    return {a: sum(states[a].metrics.get("logins_30d", {}).values()) for a in accounts}


def assert_same_states(store: RedisStore, expected: dict[str, AccountState]) -> None:
    actual = store.load(sorted(expected))
    assert sorted(actual) == sorted(expected)
    for account, state in expected.items():
        assert actual[account].to_dict() == state.to_dict(), account


def test_a_timeline_pushed_with_hourglass_ingest_ends_in_the_embedded_states(
    redis_client: redis.Redis, redis_server: str, workers: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:  # fmt: skip
    calls = timeline(accounts=24)
    path = write(calls, tmp_path / "timeline.jsonl")
    env = worker_env(redis_server, shards=str(SHARDS))
    hourglass = Path(sys.executable).parent / "hourglass"
    pushed = subprocess.run(
        [str(hourglass), "ingest", str(path)], env=env, capture_output=True, text=True, check=False
    )
    assert pushed.returncode == 0, pushed.stderr
    assert f"{len(calls)} accepted" in pushed.stdout
    store = RedisStore(redis_client, shards=SHARDS)
    workers()
    wait_until(lambda: applied(redis_client) == len(calls), 60, "every event applied")
    wait_until(lambda: drained(store), 30, "every shard drained")
    expected, action_keys = embedded(calls)
    assert_same_states(store, expected)
    outbox = {a.key for a in store.pending_actions(limit=10_000)}
    assert outbox == action_keys and outbox  # the same emails and tasks decided, once each


def test_two_workers_keep_every_account_in_order(
    redis_client: redis.Redis, redis_server: str, workers: Callable[..., WorkerProcess]
) -> None:
    calls = timeline(accounts=40, logins=12)
    workers("w1", batch_size="25")
    workers("w2", batch_size="25")
    assert ingest(redis_client, redis_server, calls) == len(calls)
    store = RedisStore(redis_client, shards=SHARDS)
    wait_until(lambda: applied(redis_client) == len(calls), 90, "every event applied")
    expected, _ = embedded(calls)
    assert_same_states(store, expected)


def test_a_worker_killed_mid_batch_loses_nothing_and_applies_nothing_twice(
    redis_client: redis.Redis, redis_server: str, workers: Callable[..., WorkerProcess]
) -> None:
    calls = timeline(accounts=30, logins=120)
    assert ingest(redis_client, redis_server, calls) == len(calls)
    first = workers("w1", batch_size="40", lease_ms="1500")
    wait_until(lambda: applied(redis_client) > 200, 60, "the first batches applied")
    first.signal(signal.SIGKILL)
    assert applied(redis_client) < len(calls), "the worker finished before it could be killed"
    workers("w2", batch_size="40", lease_ms="1500")

    def done() -> bool:
        sweep(redis_server)
        return applied(redis_client) == len(calls)

    wait_until(done, 120, "every event applied after the crash")
    store = RedisStore(redis_client, shards=SHARDS)
    wait_until(lambda: drained(store), 30, "every shard drained")
    accounts = sorted({c["groupId"] for c in calls if c["type"] == "group"})
    assert logins(store, accounts) == dict.fromkeys(accounts, 120.0)
    expected, _ = embedded(calls)
    assert_same_states(store, expected)


def test_a_stalled_consumer_past_its_lease_cannot_commit_its_batch(
    redis_client: redis.Redis, redis_server: str, workers: Callable[..., WorkerProcess]
) -> None:
    calls = timeline(accounts=30, logins=150)
    assert ingest(redis_client, redis_server, calls) == len(calls)
    stalled = workers("w1", batch_size="1500", lease_ms="1000")
    stream_keys = [ShardKeys(s).stream for s in range(SHARDS)]

    def mid_batch() -> bool:
        try:
            return any(redis_client.xpending(k, "appliers")["pending"] for k in stream_keys)
        except redis.ResponseError:  # no consumer group yet
            return False

    wait_until(mid_batch, 60, "the worker to read a batch")
    stalled.signal(signal.SIGSTOP)
    before = applied(redis_client)
    time.sleep(1.5)  # its lease expires
    workers("w2", batch_size="1500", lease_ms="1000")

    def done() -> bool:
        sweep(redis_server)
        return applied(redis_client) == len(calls)

    wait_until(done, 120, "the other worker to apply everything")
    assert applied(redis_client) > before
    stalled.signal(signal.SIGCONT)
    wait_until(lambda: counter(redis_client, "fenced_out") >= 1, 30, "the stale commit refused")
    time.sleep(0.5)
    assert applied(redis_client) == len(calls)
    store = RedisStore(redis_client, shards=SHARDS)
    accounts = sorted({c["groupId"] for c in calls if c["type"] == "group"})
    assert logins(store, accounts) == dict.fromkeys(accounts, 150.0)


def test_a_poison_event_becomes_a_dead_letter_and_the_rest_flows(
    redis_client: redis.Redis, redis_server: str, workers: Callable[..., WorkerProcess]
) -> None:
    calls = timeline(accounts=6)
    victim = "acct-002"
    shard = RedisStore(redis_client, shards=SHARDS).shard_of(victim)
    assert ingest(redis_client, redis_server, calls[: len(calls) // 2]) > 0
    stream = ShardKeys(shard).stream
    redis_client.xadd(stream, {b"e": b"{not json"})
    redis_client.xadd(
        stream,
        {b"e": b'{"k":"track","m":"poison-1","t":1772524800,"a":"acct-002","e":"api_used","p":7}'},
    )
    assert ingest(redis_client, redis_server, calls[len(calls) // 2 :]) > 0
    workers()
    store = RedisStore(redis_client, shards=SHARDS)
    wait_until(lambda: applied(redis_client) == len(calls), 60, "every good event applied")
    letters = store.dead_letters()
    assert len(letters) == 2
    assert {letter["account"] for letter in letters} == {None, victim}
    assert any("undecodable" in letter["error"] for letter in letters)
    assert any("AttributeError" in letter["error"] for letter in letters)
    expected, _ = embedded(calls)
    actual = store.load([victim])[victim]
    assert actual.dead_letters == 1
    actual.dead_letters = 0
    assert actual.to_dict() == expected[victim].to_dict()  # its other events all applied
    env = worker_env(redis_server, shards=str(SHARDS))
    hourglass = str(Path(sys.executable).parent / "hourglass")
    listed = subprocess.run([hourglass, "dlq", "list"], env=env, capture_output=True, text=True)
    assert listed.returncode == 0 and "AttributeError" in listed.stdout
    ident = f"{letters[0]['shard']}:{letters[0]['id']}"
    gone = subprocess.run([hourglass, "dlq", "discard", ident], env=env, capture_output=True)
    assert gone.returncode == 0
    assert len(store.dead_letters()) == 1
    again = subprocess.run([hourglass, "dlq", "discard", ident], env=env, capture_output=True)
    assert again.returncode == 1


def test_redis_down_fails_ingest_and_workers_resume_when_it_returns(
    redis_process: Callable[..., Any], workers: Callable[..., WorkerProcess]
) -> None:
    server = redis_process(appendonly=True)
    client = redis.Redis.from_url(server.url)
    calls = timeline(accounts=10)
    half = len(calls) // 2
    worker = workers("w1", url=server.url)
    assert ingest(client, server.url, calls[:half]) == half
    wait_until(lambda: applied(client) == half, 60, "the first half applied")
    server.stop()
    with pytest.raises(IngestUnavailable):
        Ingestor(client, shards=SHARDS).ingest(calls[half:])
    time.sleep(2)
    assert worker.alive(), "the worker died when Redis went away"
    server.start()
    wait_until(lambda: _pings(client), 30, "Redis back")
    assert ingest(client, server.url, calls[half:]) == len(calls) - half

    def done() -> bool:
        sweep(server.url)
        return applied(client) == len(calls)

    wait_until(done, 90, "the second half applied after the outage")
    assert worker.alive()
    store = RedisStore(client, shards=SHARDS)
    expected, _ = embedded(calls)
    assert_same_states(store, expected)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
