"""The Redis outbox (claim, lease expiry, delivered, backoff, dead letters) and the dispatcher,
on fakeredis and on a real redis-server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import orjson
import pytest
import redis

from engine.channels.base import DeliveryError
from engine.core.effects import ActionEffect
from engine.redis import keys as k
from engine.redis.dispatch import Dispatcher
from engine.redis.keys import ShardKeys, shard_of
from engine.redis.outbox import BACKOFF_CAP_S, Outbox, backoff_window
from engine.redis.store import RedisStore
from engine.runtime.store import Commit

SHARDS = 16
SHARD = 5
KEYS = ShardKeys(SHARD)
ACCOUNT = next(f"acct-{i}" for i in range(1000) if shard_of(f"acct-{i}", SHARDS) == SHARD)
NOW = 1_800_000_000.0


@pytest.fixture
def client(either_redis: redis.Redis) -> redis.Redis:
    return either_redis


class Jitter:
    """An injectable jitter: always ``value``."""

    def __init__(self, value: float = 0.5) -> None:
        self.value = value

    def __call__(self) -> float:
        return self.value


@pytest.fixture
def jitter() -> Jitter:
    return Jitter()


@pytest.fixture
def outbox(client: redis.Redis, jitter: Jitter) -> Outbox:
    return Outbox(client, SHARDS, jitter=jitter)


def action(key: str, at: float = NOW, kind: str = "email") -> ActionEffect:
    payload: dict[str, Any] = {"to": "csm@vendor.example", "subject": "s", "body": "b"}
    return ActionEffect(key, at, ACCOUNT, "pb", 1, kind, "live", payload, "0.0")


def commit(client: redis.Redis, *actions: ActionEffect) -> None:
    """Put actions in the outbox the way the engine does: the store's commit script."""
    RedisStore(client, shards=SHARDS).commit(Commit(actions=list(actions)))


def queue_score(client: redis.Redis, key: str) -> float | None:
    return client.zscore(KEYS.outbox_queue, key)


# -- claim and leases --------------------------------------------------------------------------


def test_claim_takes_due_entries_earliest_first_and_leases_them(
    client: redis.Redis, outbox: Outbox
) -> None:
    commit(client, action("late", NOW + 5), action("b", NOW - 1), action("a", NOW - 2))
    claimed = outbox.claim(SHARD, NOW, lease_s=30, limit=10)
    assert [c.key for c in claimed] == ["a", "b"]
    assert claimed[0].action() == action("a", NOW - 2)
    assert orjson.loads(claimed[0].raw)["key"] == "a"
    assert all(c.attempts == 0 and c.until == NOW + 30 for c in claimed)
    assert queue_score(client, "a") == NOW + 30
    assert queue_score(client, "late") == NOW + 5
    assert [c.key for c in outbox.claim(SHARD, NOW + 10, lease_s=30, limit=10)] == ["late"]


def test_a_claim_is_exclusive_until_its_lease_expires_then_taken_again(
    client: redis.Redis, outbox: Outbox
) -> None:
    commit(client, action("a"))
    assert [c.key for c in outbox.claim(SHARD, NOW, lease_s=10, limit=5)] == ["a"]
    assert outbox.claim(SHARD, NOW + 9.9, lease_s=10, limit=5) == []
    assert not outbox.has_due(SHARD, NOW + 9.9)
    assert outbox.has_due(SHARD, NOW + 10)  # the dispatcher holding it died: due again
    again = outbox.claim(SHARD, NOW + 10, lease_s=10, limit=5)
    assert [(c.key, c.until) for c in again] == [("a", NOW + 20)]


def test_claim_respects_the_limit(client: redis.Redis, outbox: Outbox) -> None:
    commit(client, *(action(f"k{i}", NOW - 10 + i) for i in range(5)))
    assert [c.key for c in outbox.claim(SHARD, NOW, 60, limit=2)] == ["k0", "k1"]
    assert [c.key for c in outbox.claim(SHARD, NOW, 60, limit=10)] == ["k2", "k3", "k4"]
    assert outbox.claim(SHARD, NOW, 60, limit=0) == []


def test_claim_drops_queue_members_without_an_outbox_entry(
    client: redis.Redis, outbox: Outbox
) -> None:
    commit(client, action("a"))
    client.zadd(KEYS.outbox_queue, {"orphan": NOW - 1})
    assert [c.key for c in outbox.claim(SHARD, NOW, 60, 10)] == ["a"]
    assert queue_score(client, "orphan") is None


def test_release_makes_a_claimed_entry_due_again_without_an_attempt(
    client: redis.Redis, outbox: Outbox
) -> None:
    commit(client, action("a"))
    outbox.claim(SHARD, NOW, 60, 10)
    assert outbox.release(SHARD, "a", NOW + 1)
    assert [(c.key, c.attempts) for c in outbox.claim(SHARD, NOW + 1, 60, 10)] == [("a", 0)]
    outbox.delivered(SHARD, "a", "r")
    assert not outbox.release(SHARD, "a", NOW + 2)  # never re-queues a delivered key
    assert queue_score(client, "a") is None


def test_due_shards_finds_due_entries_and_expired_claims(
    client: redis.Redis, outbox: Outbox
) -> None:
    other = next(f"o-{i}" for i in range(1000) if shard_of(f"o-{i}", SHARDS) == 9)
    later = ActionEffect("x", NOW + 100, other, "pb", 1, "task", "live", {}, "0.0")
    commit(client, action("a"), later)
    assert outbox.due_shards(NOW) == [SHARD]
    outbox.claim(SHARD, NOW, lease_s=50, limit=10)
    assert outbox.due_shards(NOW) == []
    assert outbox.due_shards(NOW + 100) == [SHARD, 9]


# -- delivered -------------------------------------------------------------------------------


def test_delivered_moves_the_entry_and_is_idempotent(client: redis.Redis, outbox: Outbox) -> None:
    commit(client, action("a"), action("b"))
    outbox.claim(SHARD, NOW, 60, 10)
    outbox.failed(SHARD, "a", "boom", 5, NOW)
    assert outbox.delivered(SHARD, "a", "receipt-1") is True
    assert outbox.delivered(SHARD, "a", "receipt-2") is False
    assert outbox.receipt(SHARD, "a") == "receipt-1"
    assert client.hexists(KEYS.outbox, "a") == 0
    assert queue_score(client, "a") is None
    assert outbox.attempts(SHARD, "a") == 0 and outbox.last_error(SHARD, "a") is None
    assert outbox.pending(SHARD) == 1
    commit(client, action("a"))  # the same action decided again: not queued again
    assert outbox.pending(SHARD) == 1


def test_a_delivery_that_races_a_dead_letter_wins(client: redis.Redis, outbox: Outbox) -> None:
    commit(client, action("a"))
    outbox.failed(SHARD, "a", "nope", 1, NOW)
    assert [d.key for d in outbox.dead_letters(SHARD)] == ["a"]
    assert outbox.delivered(SHARD, "a", "late receipt") is True
    assert outbox.dead_letters() == []
    assert outbox.receipt(SHARD, "a") == "late receipt"


# -- failures, backoff, dead letters -----------------------------------------------------------


def test_backoff_is_exponential_with_full_jitter_injected(
    client: redis.Redis, outbox: Outbox, jitter: Jitter
) -> None:
    commit(client, action("a"))
    dues = []
    for attempt in range(1, 6):
        failure = outbox.failed(SHARD, "a", f"error {attempt}", 10, NOW)
        assert (failure.outcome, failure.attempts) == ("retry", attempt)
        dues.append(failure.at)
        assert queue_score(client, "a") == failure.at
    assert dues == [NOW + 1, NOW + 2, NOW + 4, NOW + 8, NOW + 16]  # 0.5 * 2 * 2^(n-1)
    assert outbox.last_error(SHARD, "a") == "error 5"
    assert [c.attempts for c in outbox.claim(SHARD, NOW + 16, 60, 10)] == [5]
    jitter.value = 0.0
    assert outbox.failed(SHARD, "a", "e", 10, NOW).at == NOW  # full jitter reaches zero
    jitter.value = 1.0
    assert outbox.failed(SHARD, "a", "e", 20, NOW).at == NOW + 128  # 7th: 2 * 2^6
    for _ in range(4):
        last = outbox.failed(SHARD, "a", "e", 20, NOW)
    assert last.attempts == 11 and last.at == NOW + BACKOFF_CAP_S


def test_backoff_window_matches_the_script(outbox: Outbox) -> None:
    assert [backoff_window(n) for n in (1, 2, 3, 9, 10, 50)] == [2, 4, 8, 512, 600, 600]


def test_jitter_outside_zero_one_is_refused(client: redis.Redis, jitter: Jitter) -> None:
    commit(client, action("a"))
    jitter.value = 1.5
    with pytest.raises(ValueError, match="jitter"):
        Outbox(client, SHARDS, jitter=jitter).failed(SHARD, "a", "e", 3, NOW)
    assert outbox_attempts(client, "a") == 0


def outbox_attempts(client: redis.Redis, key: str) -> int:
    return int(client.hget(k.outbox_attempts(SHARD), key) or 0)


def test_the_last_attempt_dead_letters_the_entry(client: redis.Redis, outbox: Outbox) -> None:
    commit(client, action("a"), action("b"))
    assert outbox.failed(SHARD, "a", "503 one", 3, NOW).outcome == "retry"
    assert outbox.failed(SHARD, "a", "503 two", 3, NOW + 1).outcome == "retry"
    failure = outbox.failed(SHARD, "a", "503 three", 3, NOW + 2)
    assert (failure.outcome, failure.attempts, failure.at) == ("dead", 3, NOW + 2)
    assert client.hexists(KEYS.outbox, "a") == 0 and queue_score(client, "a") is None
    assert outbox_attempts(client, "a") == 0 and outbox.last_error(SHARD, "a") is None
    [letter] = outbox.dead_letters()
    assert (letter.shard, letter.key, letter.error, letter.attempts) == (SHARD, "a", "503 three", 3)
    assert letter.at == NOW + 2 and letter.action == action("a").to_dict()
    assert outbox.claim(SHARD, NOW + 1000, 60, 10)[0].key == "b"
    assert outbox.failed(SHARD, "a", "again", 3, NOW).outcome == "gone"
    assert len(outbox.dead_letters()) == 1


def test_a_non_retryable_error_dead_letters_at_once(client: redis.Redis, outbox: Outbox) -> None:
    commit(client, action("a"))
    failure = outbox.failed(SHARD, "a", "400 bad request", 6, NOW, retryable=False)
    assert (failure.outcome, failure.attempts) == ("dead", 1)
    assert [d.error for d in outbox.dead_letters(SHARD)] == ["400 bad request"]


def test_failed_on_a_delivered_key_writes_nothing(client: redis.Redis, outbox: Outbox) -> None:
    commit(client, action("a"))
    outbox.delivered(SHARD, "a", "ok")
    failure = outbox.failed(SHARD, "a", "stale dispatcher", 1, NOW)
    assert (failure.outcome, failure.attempts, failure.at) == ("gone", 0, None)
    assert outbox.dead_letters() == [] and outbox_attempts(client, "a") == 0


def test_replay_puts_a_dead_letter_back_due_now_with_attempts_reset(
    client: redis.Redis, outbox: Outbox
) -> None:
    commit(client, action("a"))
    outbox.failed(SHARD, "a", "e1", 2, NOW)
    outbox.failed(SHARD, "a", "e2", 2, NOW)
    assert outbox.replay(SHARD, "a", NOW + 50) is True
    assert outbox.dead_letters() == []
    assert queue_score(client, "a") == NOW + 50
    [claimed] = outbox.claim(SHARD, NOW + 50, 60, 10)
    assert (claimed.key, claimed.attempts, claimed.action()) == ("a", 0, action("a"))
    assert outbox.replay(SHARD, "a", NOW) is False  # no longer a dead letter


def test_discard_deletes_a_dead_letter(client: redis.Redis, outbox: Outbox) -> None:
    commit(client, action("a"), action("b"))
    outbox.failed(SHARD, "a", "e", 1, NOW + 3)
    outbox.failed(SHARD, "b", "e", 1, NOW + 1)
    assert [d.key for d in outbox.dead_letters()] == ["b", "a"]  # oldest first
    assert [d.key for d in outbox.dead_letters(limit=1)] == ["b"]
    assert outbox.discard(SHARD, "b") is True
    assert outbox.discard(SHARD, "b") is False
    assert [d.key for d in outbox.dead_letters(SHARD)] == ["a"]
    assert outbox.replay(SHARD, "b", NOW) is False


def test_shards_out_of_range_and_decoding_clients_are_refused(client: redis.Redis) -> None:
    with pytest.raises(ValueError, match="shard 16"):
        Outbox(client, SHARDS).claim(16, NOW, 60, 1)
    with pytest.raises(ValueError, match="decode_responses"):
        Outbox(redis.Redis(decode_responses=True), SHARDS)  # never connects


# -- the dispatcher ----------------------------------------------------------------------------


class Clock:
    """A settable clock; ``step`` is added after every reading."""

    def __init__(self, now: float = NOW, step: float = 0.0) -> None:
        self.now = now
        self.step = step

    def __call__(self) -> float:
        value = self.now
        self.now += self.step
        return value


class Recorder:
    """A channel that records deliveries and fails as told (a list of exceptions, then ok)."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.delivered: list[str] = []

    def deliver(self, action: ActionEffect) -> str:
        if self.failures:
            raise self.failures.pop(0)
        self.delivered.append(action.key)
        return f"recorded {action.key}"


def dispatcher(outbox: Outbox, clock: Clock, **channels: Recorder) -> Dispatcher:
    return Dispatcher(outbox, channels, lease_s=60, attempts=3, batch=2, clock=clock)


def test_dispatch_delivers_every_due_entry_and_records_receipts(
    client: redis.Redis, outbox: Outbox
) -> None:
    commit(client, *(action(f"k{i}", NOW - 1) for i in range(5)), action("later", NOW + 99))
    email = Recorder()
    report = dispatcher(outbox, Clock(), email=email).dispatch(SHARD)
    assert email.delivered == ["k0", "k1", "k2", "k3", "k4"]
    assert (report.claimed, report.delivered, report.more) == (5, 5, False)
    assert outbox.receipt(SHARD, "k3") == "recorded k3"
    assert outbox.pending(SHARD) == 1


def test_dispatch_retries_then_dead_letters_by_the_channel_s_verdict(
    client: redis.Redis, outbox: Outbox
) -> None:
    commit(client, action("flaky"), action("bad", kind="webhook"), action("odd", kind="fax"))
    clock = Clock()
    email = Recorder(DeliveryError("421 busy"), DeliveryError("421 busy"))
    webhook = Recorder(DeliveryError("HTTP 400", retryable=False))
    run = dispatcher(outbox, clock, email=email, webhook=webhook)
    first = run.dispatch(SHARD)
    assert (first.retried, first.dead, first.delivered) == (1, 2, 0)
    assert {d.key: d.error for d in outbox.dead_letters()} == {
        "bad": "HTTP 400",
        "odd": "no channel delivers 'fax' actions",
    }
    assert outbox.attempts(SHARD, "flaky") == 1
    clock.now += 2  # jitter 0.5: the first retry waits 1 s, the second 2 s
    assert run.dispatch(SHARD).retried == 1
    clock.now += 2
    assert run.dispatch(SHARD).delivered == 1
    assert email.delivered == ["flaky"] and outbox.receipt(SHARD, "flaky") == "recorded flaky"


def test_a_crashing_channel_counts_as_a_retryable_failure(
    client: redis.Redis, outbox: Outbox
) -> None:
    commit(client, action("a"))
    report = dispatcher(outbox, Clock(), email=Recorder(RuntimeError("bug"))).dispatch(SHARD)
    assert report.retried == 1
    assert outbox.last_error(SHARD, "a") == "RuntimeError: bug"


def test_an_undecodable_entry_becomes_a_dead_letter(client: redis.Redis, outbox: Outbox) -> None:
    client.hset(KEYS.outbox, "junk", b"{not json")
    client.zadd(KEYS.outbox_queue, {"junk": NOW})
    report = dispatcher(outbox, Clock(), email=Recorder()).dispatch(SHARD)
    assert report.dead == 1
    [letter] = outbox.dead_letters()
    assert letter.key == "junk" and "undecodable" in letter.error
    assert letter.action == {"raw": "{not json"}


def test_entries_past_half_their_lease_are_released_not_delivered(
    client: redis.Redis, outbox: Outbox
) -> None:
    commit(client, action("a"), action("b"))
    clock = Clock()

    class Slow(Recorder):
        def deliver(self, action: ActionEffect) -> str:
            clock.now += 40  # a slow server: 40 s of a 60 s lease
            return super().deliver(action)

    email = Slow()
    run = Dispatcher(outbox, {"email": email}, lease_s=60, batch=2, budget_s=30, clock=clock)
    report = run.dispatch(SHARD)
    assert email.delivered == ["a"]
    assert (report.delivered, report.released, report.more) == (1, 1, True)
    assert outbox.attempts(SHARD, "b") == 0 and queue_score(client, "b") == NOW + 40


def test_the_celery_app_routes_dispatch_and_beats_the_sweeper_every_2_s() -> None:
    """Checked in a child process, so that no test imports the app with a made-up broker."""
    script = (
        "import json; from workers.app import app; c = app.conf; print(json.dumps("
        "[list(c.include), c.task_routes, c.beat_schedule['sweep-outbox']]))"
    )
    env = {**os.environ, "REDIS_URL": "redis://127.0.0.1:1/0"}  # never connected to
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    include, routes, sweep = json.loads(done.stdout)
    assert "workers.dispatch" in include
    assert (
        routes["hourglass.dispatch"]
        == routes["hourglass.dispatch_sweep"]
        == {"queue": "hourglass.dispatch"}
    )
    assert sweep == {"task": "hourglass.dispatch_sweep", "schedule": 2.0}


def test_a_delivery_joins_the_accounts_recent_deliveries_once(fake_redis: redis.Redis) -> None:
    from engine.core.effects import ActionEffect
    from engine.redis.keys import ShardKeys
    from engine.redis.outbox import RECENT_DELIVERIES, Outbox
    from engine.redis.store import RedisStore
    from engine.runtime.store import Commit

    store = RedisStore(fake_redis)
    shard = store.shard_of("acme")
    actions = [
        ActionEffect(key=f"k{i}", at=100.0 + i, account="acme", playbook="p", version=1,
                     type="email", mode="live", payload={}, step="0.0")
        for i in range(RECENT_DELIVERIES + 3)
    ]  # fmt: skip
    store.commit(Commit(actions=actions))
    outbox = Outbox(fake_redis, store.shards)
    for action in actions:
        assert outbox.delivered(shard, action.key, "250 OK", action)
    assert not outbox.delivered(shard, "k0", "250 again", actions[0])  # once only
    recent = fake_redis.lrange(ShardKeys(shard).recent("acme"), 0, -1)
    assert len(recent) == RECENT_DELIVERIES
    assert b'"key":"k22"' in recent[0] and b'"receipt":"250 OK"' in recent[0]
    # the list goes when its latest receipt would: a receipt retention after that delivery
    ttl = fake_redis.pttl(ShardKeys(shard).recent("acme"))
    assert outbox.receipt_retention_ms - 60_000 < ttl <= outbox.receipt_retention_ms
