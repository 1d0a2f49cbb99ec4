"""The status reader on fakeredis: backlog, lag, leases, timers per clock, outbox, queues."""

from __future__ import annotations

import time

import pytest
import redis
from kombu.transport.redis import Channel
from redis.backoff import NoBackoff
from redis.retry import Retry

from engine.redis import keys as k
from engine.redis.drain import EVENT_CLOCK
from engine.redis.keys import GROUP, ShardKeys
from engine.redis.status import SHARD_FIELDS, Clock, StatusReader, queue_depths, queue_keys

S0, S1 = ShardKeys(0), ShardKeys(1)


def test_an_empty_deployment_reads_as_idle(fake_redis: redis.Redis) -> None:
    status = StatusReader(fake_redis, 3).read()
    assert [s.shard for s in status.shards] == [0, 1, 2]
    totals = status.totals()
    assert totals["backlog"] == 0 and totals["lag_ms"] is None and totals["leased"] == 0
    assert status.queues is None and status.workers is None
    assert status.notes == ["queue depths need a Redis broker"]


def test_unread_pending_and_lag_of_a_stream(fake_redis: redis.Redis) -> None:
    old = int(time.time() * 1000) - 60_000  # an entry a minute old
    fake_redis.xadd(S0.stream, {"e": b"1"}, id=f"{old}-0")
    for n in range(4):
        fake_redis.xadd(S0.stream, {"e": str(n).encode()})
    fake_redis.xgroup_create(S0.stream, GROUP, id="0")
    fake_redis.xreadgroup(GROUP, "stalled", {S0.stream: ">"}, count=2)
    shard = StatusReader(fake_redis, 2).read().shards[0]
    assert (shard.stream, shard.pending, shard.unread, shard.backlog) == (5, 2, 3, 5)
    assert shard.lag_ms is not None and 60_000 <= shard.lag_ms < 70_000


def test_a_stream_nobody_read_is_all_unread(fake_redis: redis.Redis) -> None:
    for n in range(3):
        fake_redis.xadd(S1.stream, {"e": str(n).encode()})
    shard = StatusReader(fake_redis, 2).read().shards[1]
    assert (shard.unread, shard.pending) == (3, 0)
    assert shard.lag_ms is not None and 0 <= shard.lag_ms < 10_000


def test_the_lease_holder_and_its_time_left(fake_redis: redis.Redis) -> None:
    fake_redis.set(S1.lease, "host-42:abc", px=20_000)
    status = StatusReader(fake_redis, 2).read()
    assert status.shards[0].lease_holder is None and status.shards[0].lease_ttl_ms is None
    assert status.shards[1].lease_holder == "host-42:abc"
    assert 0 < (status.shards[1].lease_ttl_ms or 0) <= 20_000
    assert status.totals()["leased"] == 1


@pytest.mark.parametrize(
    ("clock", "due", "overdue"),
    [("wall", 2, 1), ("virtual", 1, 0), ("event", 3, 2)],
)
def test_timers_due_and_overdue_follow_the_deployment_clock(
    fake_redis: redis.Redis, clock: Clock, due: int, overdue: int
) -> None:
    now = time.time()
    # Due 60 s ago, 1 s ago and in an hour, by wall time. The virtual clock (hg:clock) reads
    # 58 s ago; the event clock is the shard's newest applied event time, just past the third.
    fake_redis.zadd(S0.timers, {"acct-a": now - 60, "acct-b": now - 1, "acct-c": now + 3600})
    fake_redis.set(k.CLOCK, repr(now - 58))
    fake_redis.hset(S0.counters, EVENT_CLOCK, repr(now + 3602))
    shard = StatusReader(fake_redis, 1, clock).read().shards[0]
    assert (shard.timers, shard.timers_due, shard.timers_overdue) == (3, due, overdue)


def test_outbox_pending_due_retrying_and_dead(fake_redis: redis.Redis) -> None:
    now = time.time()
    fake_redis.hset(S1.outbox, mapping={"a": b"{}", "b": b"{}"})
    fake_redis.zadd(S1.outbox_queue, {"a": now - 5, "b": now + 30})
    fake_redis.hset(k.outbox_attempts(1), "b", 2)
    fake_redis.hset(k.outbox_dead(1), "c", b"{}")
    shard = StatusReader(fake_redis, 2).read().shards[1]
    assert (shard.outbox_pending, shard.outbox_due, shard.outbox_retrying) == (2, 1, 1)
    assert shard.outbox_dead == 1


def test_queue_keys_are_kombus_priority_lists() -> None:
    sep = Channel.sep
    assert queue_keys("hourglass.shards") == [
        "hourglass.shards", f"hourglass.shards{sep}3", f"hourglass.shards{sep}6",
        f"hourglass.shards{sep}9",
    ]  # fmt: skip


def test_queue_depths_add_every_priority_list_and_count_unacked(fake_redis: redis.Redis) -> None:
    low, high, *_ = queue_keys("q1")
    fake_redis.lpush(low, b"m1", b"m2")
    fake_redis.lpush(high, b"m3")
    fake_redis.lpush("q2", b"m4")
    fake_redis.hset("unacked", mapping={"tag1": b"x", "tag2": b"y"})
    depths, unacked = queue_depths(fake_redis, ["q1", "q2", "q3"])
    assert depths == {"q1": 3, "q2": 1, "q3": 0}
    assert unacked == 2


def test_the_json_form_has_every_field(fake_redis: redis.Redis) -> None:
    fake_redis.xadd(S0.stream, {"e": b"1"})
    fake_redis.hset(S0.counters, mapping={"applied": 7, "fenced_out": 1})
    doc = (
        StatusReader(fake_redis, 2)
        .read(broker=fake_redis, queues=["hourglass.shards"], ping=lambda timeout: ["w2@h", "w1@h"])
        .to_dict()
    )
    assert set(doc) == {"at", "clock", "totals", "shards", "queues", "unacked", "workers", "notes"}
    assert [list(s) for s in doc["shards"]] == [SHARD_FIELDS, SHARD_FIELDS]
    assert doc["shards"][0]["applied"] == 7 and doc["shards"][0]["fenced_out"] == 1
    assert doc["totals"]["backlog"] == 1 and doc["totals"]["applied"] == 7
    assert doc["queues"] == {"hourglass.shards": 0} and doc["unacked"] == 0
    assert doc["workers"]["alive"] == 2 and doc["workers"]["names"] == ["w1@h", "w2@h"]
    assert "control.ping" in doc["workers"]["probe"]


def test_shards_must_be_positive(fake_redis: redis.Redis) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        StatusReader(fake_redis, 0)


def test_a_broker_or_ping_failure_is_a_note_not_a_crash(fake_redis: redis.Redis) -> None:
    def ping(timeout: float) -> list[str]:
        raise ConnectionError("broker down")

    down = redis.Redis(port=1, retry=Retry(NoBackoff(), 0))  # nothing listens on port 1
    status = StatusReader(fake_redis, 1).read(broker=down, queues=["q"], ping=ping)
    assert status.queues is None and status.workers == []
    assert status.notes[0].startswith("broker unavailable: ")
    assert status.notes[1] == "worker ping failed: broker down"
