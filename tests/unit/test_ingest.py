"""Ingest on fakeredis: validation, size limit, dedupe, shards, kicks, backpressure, outages."""

from __future__ import annotations

import gc
import time
import zlib
from typing import Any

import fakeredis
import orjson
import pytest
import redis
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.retry import Retry
from redisproc import free_port

from engine.core.events import BatchProblem
from engine.redis.ingest import BacklogFull, Ingestor, IngestUnavailable
from engine.redis.ingest_lua import SHA, ShardEvents, appended_ms, script_args
from engine.redis.keys import REJECTED, ShardKeys, seen_field, shard_of

T = "2026-01-05T09:00:00Z"
T_EPOCH = 1767603600.0


def track(mid: str, account: str | None = "acme", **fields: Any) -> dict[str, Any]:
    """A track call, grouped with ``account`` through context.groupId unless None."""
    body: dict[str, Any] = {"type": "track", "event": "Used", "messageId": mid, "timestamp": T}
    body["userId"] = fields.pop("userId", "u1")
    if account is not None:
        body["context"] = {"groupId": account}
    return {**body, **fields}


def entries(client: redis.Redis, shard: int) -> list[dict[str, Any]]:
    """The decoded events of a shard's stream."""
    return [orjson.loads(f[b"e"]) for _, f in client.xrange(ShardKeys(shard).stream)]


def everything(client: redis.Redis) -> dict[bytes, Any]:
    """Every key with its type and content, to compare before and after."""
    out: dict[bytes, Any] = {}
    for key in client.keys("*"):
        kind = client.type(key)
        if kind == b"stream":
            out[key] = client.xrange(key)
        elif kind == b"hash":
            out[key] = client.hgetall(key)
        elif kind == b"list":
            out[key] = client.lrange(key, 0, -1)
        elif kind == b"zset":
            out[key] = client.zrange(key, 0, -1, withscores=True)
        else:
            out[key] = client.get(key)
    return out


# --- validation --------------------------------------------------------------------------


def test_invalid_events_are_reported_by_index_and_kept(fake_redis: redis.Redis) -> None:
    ingestor = Ingestor(fake_redis, shards=4)
    result = ingestor.ingest(
        [
            track("1"),
            {"type": "track", "messageId": "2", "userId": "u1"},  # no event name
            track("3", timestamp="yesterday"),
            "not an object",  # type: ignore[list-item]
            {"type": "group", "messageId": "5", "userId": "u1"},  # no groupId
            track("6"),
        ],
        received_at=T_EPOCH,
    )
    assert [(p.index, p.field) for p in result.rejected] == [
        (1, "event"),
        (2, "timestamp"),
        (3, "payload"),
        (4, "groupId"),
    ]
    assert (result.accepted, result.message_ids) == (2, ["1", "6"])
    assert [e["m"] for e in entries(fake_redis, shard_of("acme", 4))] == ["1", "6"]
    kept = fake_redis.xrange(REJECTED)
    assert [int(f[b"index"]) for _, f in kept] == [1, 2, 3, 4]
    first = kept[0][1]
    assert orjson.loads(first[b"raw"]) == {"type": "track", "messageId": "2", "userId": "u1"}
    assert (first[b"field"], first[b"reason"]) == (b"event", b"field required")
    assert float(first[b"at"]) == T_EPOCH
    assert b"invalid datetime" in kept[1][1][b"reason"]
    assert kept[2][1][b"raw"] == b'"not an object"'


def test_endpoint_kind_is_enforced_and_filled_in(fake_redis: redis.Redis) -> None:
    ingestor = Ingestor(fake_redis, shards=1)
    result = ingestor.ingest(
        [{"messageId": "1", "userId": "u1", "event": "E", "context": {"groupId": "a"}}, track("2")],
        kind="track",
    )
    assert result.message_ids == ["1", "2"]
    result = ingestor.ingest([track("3")], kind="page")
    assert [(p.index, p.field) for p in result.rejected] == [(0, "type")]


def test_event_size_limit_is_measured_on_json(fake_redis: redis.Redis) -> None:
    ingestor = Ingestor(fake_redis, shards=1)
    base = track("fits", properties={"pad": ""})
    room = 32 * 1024 - len(orjson.dumps(base))
    fits = track("fits", properties={"pad": "a" * room})
    over = track("over", properties={"pad": "a" * (room + 1)})  # same length id
    assert len(orjson.dumps(fits)) == 32 * 1024
    result = ingestor.ingest([fits, over])
    assert result.message_ids == ["fits"]
    (problem,) = result.rejected
    assert (problem.index, problem.field) == (1, "payload")
    assert "32769 bytes" in problem.reason and "32768-byte limit" in problem.reason
    (_, kept), *_ = fake_redis.xrange(REJECTED)
    assert orjson.loads(kept[b"raw"])["messageId"] == "over"


def test_huge_rejected_event_is_kept_truncated(fake_redis: redis.Redis) -> None:
    ingestor = Ingestor(fake_redis, shards=1)
    huge = track("h", properties={"pad": "a" * 200_000})
    ingestor.ingest([huge])
    (_, kept), *_ = fake_redis.xrange(REJECTED)
    assert len(kept[b"raw"]) == 64 * 1024
    assert int(kept[b"truncated"]) == len(orjson.dumps(huge))


def test_unknown_fields_are_kept(fake_redis: redis.Redis) -> None:
    ingestor = Ingestor(fake_redis, shards=1)
    result = ingestor.ingest([track("1", someSdkField={"x": 1})])
    assert result.accepted == 1 and not result.rejected


# --- time --------------------------------------------------------------------------------


def test_clock_skew_is_corrected_with_sent_at(fake_redis: redis.Redis) -> None:
    ingestor = Ingestor(fake_redis, shards=1)
    skewed = track("1", timestamp="2026-01-05T10:00:00Z", sentAt="2026-01-05T10:00:30Z")
    plain = track("2", timestamp="2026-01-05T10:00:00Z")
    ingestor.ingest([skewed, plain], received_at=T_EPOCH)  # the device clock is 1h ahead
    ts = {e["m"]: e["t"] for e in entries(fake_redis, 0)}
    assert ts["1"] == T_EPOCH - 30
    assert ts["2"] == T_EPOCH + 3600


def test_missing_timestamp_takes_received_at(fake_redis: redis.Redis) -> None:
    ingestor = Ingestor(fake_redis, shards=1, clock=lambda: 1234.5)
    event = track("1")
    del event["timestamp"]
    ingestor.ingest([event])
    assert entries(fake_redis, 0)[0]["t"] == 1234.5


# --- dedupe ------------------------------------------------------------------------------


def test_same_message_id_is_stored_once(fake_redis: redis.Redis) -> None:
    ingestor = Ingestor(fake_redis, shards=1)
    result = ingestor.ingest([track("m1"), track("m1"), track("m2")])
    assert (result.accepted, result.duplicates, result.message_ids) == (2, 1, ["m1", "m2"])
    result = ingestor.ingest([track("m2"), track("m3")])
    assert (result.accepted, result.duplicates, result.message_ids) == (1, 1, ["m3"])
    assert [e["m"] for e in entries(fake_redis, 0)] == ["m1", "m2", "m3"]
    ((holder, at),) = holders(fake_redis, "m1")
    period = int(fake_redis.hget(holder, "period") or 0)
    assert period == at // 43_200_000  # half a window
    assert fake_redis.pexpiretime(holder) == (period + 4) * 43_200_000


def stamp(ms: int) -> bytes:
    """An append time as the dedupe hashes hold it."""
    return ms.to_bytes(6, "big")


def holders(client: redis.Redis, message_id: str, shard: int = 0) -> list[tuple[str, int]]:
    """The shard's dedupe hashes that hold ``message_id``, with its append time (ms)."""
    found = [(name, client.hget(name, seen_field(message_id))) for name in ShardKeys(shard).seen]
    return [(name, appended_ms(at)) for name, at in found if at is not None]


def test_an_id_of_an_earlier_period_is_a_duplicate_for_a_window(fake_redis: redis.Redis) -> None:
    ingestor = Ingestor(fake_redis, shards=1, dedupe_window_s=60)
    ingestor.ingest([track("m1")])
    ((current, at),) = holders(fake_redis, "m1")
    period = int(fake_redis.hget(current, "period") or 0)
    earlier = ShardKeys(0).seen[(period - 1) % 3]
    fake_redis.hdel(current, seen_field("m1"))  # as if appended in the period before
    fake_redis.hset(earlier, mapping={"period": period - 1, seen_field("m1"): stamp(at)})
    assert ingestor.ingest([track("m1")]).duplicates == 1
    fake_redis.hset(earlier, seen_field("m1"), stamp(at - 60_000))  # appended a window ago
    assert ingestor.ingest([track("m1")]).message_ids == ["m1"]
    assert [e["m"] for e in entries(fake_redis, 0)] == ["m1", "m1"]


def test_a_dedupe_hash_is_emptied_when_its_slot_comes_round(fake_redis: redis.Redis) -> None:
    ingestor = Ingestor(fake_redis, shards=1, dedupe_window_s=60)
    ingestor.ingest([track("m1")])
    ((current, _),) = holders(fake_redis, "m1")
    period = int(fake_redis.hget(current, "period") or 0)
    fake_redis.hset(current, "period", period - 3)  # as if it held the period three before
    ingestor.ingest([track("m2")])
    assert fake_redis.hgetall(current) == {
        b"period": str(period).encode(),
        seen_field("m2"): stamp(holders(fake_redis, "m2")[0][1]),
    }


def test_derived_message_ids_dedupe_retries(fake_redis: redis.Redis) -> None:
    ingestor = Ingestor(fake_redis, shards=1)
    event = track("")
    del event["messageId"]
    first = ingestor.ingest([event])
    retry = ingestor.ingest([{**event, "sentAt": "2026-01-05T09:00:05Z"}])
    assert (first.accepted, retry.duplicates) == (1, 1)


def test_message_id_is_accepted_again_after_the_window(fake_redis: redis.Redis) -> None:
    ingestor = Ingestor(fake_redis, shards=1, dedupe_window_s=1)
    assert ingestor.ingest([track("m1")]).accepted == 1
    assert ingestor.ingest([track("m1")]).duplicates == 1
    time.sleep(1.1)
    assert ingestor.ingest([track("m1")]).accepted == 1
    assert len(entries(fake_redis, 0)) == 2


# --- shards and kicks --------------------------------------------------------------------


def test_each_shard_stream_gets_its_accounts_events(fake_redis: redis.Redis) -> None:
    accounts = [f"acct-{i}" for i in range(20)]
    ingestor = Ingestor(fake_redis, shards=8)
    result = ingestor.ingest([track(f"m{i}", account=a) for i, a in enumerate(accounts)])
    assert result.accepted == 20
    for shard in range(8):
        got = [e["a"] for e in entries(fake_redis, shard)]
        assert got == [a for a in accounts if zlib.crc32(a.encode()) % 8 == shard]
    assert result.kicked == {zlib.crc32(a.encode()) % 8 for a in accounts}


def test_every_script_key_is_in_the_shards_slot() -> None:
    keys = ShardKeys(7)
    events = ShardEvents()
    assert [events.add("m1", b"{}"), events.add("other:id", b'{"a":1}')] == [0, 1]
    names, args = script_args(keys, events, 60, 300)
    assert names == [keys.stream, keys.kicked, *keys.seen]
    assert all(name.startswith("hg:{s07}:") for name in names)
    assert len({key_slot(name.encode()) for name in names}) == 1
    assert args == [60_000, 300, seen_field("m1") + seen_field("other:id"), b'{}\n{"a":1}']


def test_kick_is_called_once_per_newly_flagged_shard(fake_redis: redis.Redis) -> None:
    kicks: list[int] = []
    ingestor = Ingestor(fake_redis, shards=4, kick=kicks.append)
    acme = shard_of("acme", 4)
    other = next(a for a in ("b", "c", "d", "e", "f") if shard_of(a, 4) != acme)
    assert ingestor.ingest([track("1"), track("2"), track("3", account=other)]).kicked == {
        acme,
        shard_of(other, 4),
    }
    assert ingestor.ingest([track("4")]).kicked == set()  # flag still set: a drain is queued
    assert ingestor.ingest([track("1")]).kicked == set()  # nothing new
    fake_redis.delete(ShardKeys(acme).kicked)  # the drain finished
    assert ingestor.ingest([track("5")]).kicked == {acme}
    assert sorted(kicks) == sorted([acme, shard_of(other, 4), acme])
    assert 0 < fake_redis.ttl(ShardKeys(acme).kicked) <= 300


def test_failed_kick_unflags_the_shard_and_raises(fake_redis: redis.Redis) -> None:
    calls: list[int] = []

    def kick(shard: int) -> None:
        calls.append(shard)
        if len(calls) == 1:
            raise RuntimeError("broker down")

    ingestor = Ingestor(fake_redis, shards=1, kick=kick)
    with pytest.raises(RuntimeError, match="broker down"):
        ingestor.ingest([track("1")])
    assert not fake_redis.exists(ShardKeys(0).kicked)
    retry = ingestor.ingest([track("1")])  # stored already: deduplicated, and kicks again
    assert (retry.duplicates, retry.kicked, calls) == (1, {0}, [0, 0])
    assert ingestor.ingest([track("2")]).kicked == set()


def test_script_is_loaded_when_the_server_lost_it(fake_redis: redis.Redis) -> None:
    ingestor = Ingestor(fake_redis, shards=1)
    ingestor.ingest([track("1")])
    fake_redis.script_flush()
    assert fake_redis.script_exists(SHA) == [False]
    assert ingestor.ingest([track("2")]).accepted == 1
    assert [e["m"] for e in entries(fake_redis, 0)] == ["1", "2"]


# --- backpressure and outages ------------------------------------------------------------


def test_backlog_over_limit_refuses_and_writes_nothing(fake_redis: redis.Redis) -> None:
    ingestor = Ingestor(fake_redis, shards=4, max_backlog=2, retry_after_s=7)
    ingestor.ingest([track("1"), track("2"), track("3"), track("p", account=None, userId="x")])
    before = everything(fake_redis)
    with pytest.raises(BacklogFull) as caught:
        ingestor.ingest(
            [
                track("4"),
                track("q", account=None, userId="y"),  # would park
                {"type": "track"},  # would be kept as rejected
                {"type": "group", "groupId": "g2", "userId": "x", "messageId": "g"},
            ]
        )
    assert (caught.value.retry_after_s, caught.value.shard) == (7, shard_of("acme", 4))
    assert (caught.value.backlog, caught.value.limit) == (3, 2)
    assert everything(fake_redis) == before


def test_backlog_only_checks_the_shards_written(fake_redis: redis.Redis) -> None:
    ingestor = Ingestor(fake_redis, shards=4, max_backlog=1)
    ingestor.ingest([track("1"), track("2")])
    other = next(a for a in ("b", "c", "d", "e", "f") if shard_of(a, 4) != shard_of("acme", 4))
    assert ingestor.ingest([track("3", account=other)]).accepted == 1
    assert ingestor.ingest([track("4", account=None, userId="new")]).parked == 1


def test_redis_down_raises_ingest_unavailable() -> None:
    client = redis.Redis(port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    ingestor = Ingestor(client, shards=1)
    with pytest.raises(IngestUnavailable) as caught:
        ingestor.ingest([track("1")])
    assert isinstance(caught.value.__cause__, redis.ConnectionError)
    assert ingestor.ingest([]).accepted == 0  # nothing to store: no round trip


def test_redis_error_mid_call_is_not_swallowed(
    fake_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingestor = Ingestor(fake_redis, shards=1)

    def fail(*args: object, **kwargs: object) -> None:
        raise redis.TimeoutError("slow")

    monkeypatch.setattr("engine.redis.ingest.append_shards", fail)
    with pytest.raises(IngestUnavailable):
        ingestor.ingest([track("1")])


def test_a_batch_runs_with_the_collector_paused_and_leaves_it_as_it_was(
    fake_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingestor = Ingestor(fake_redis, shards=1)
    seen: list[bool] = []
    plan = ingestor.router.plan
    monkeypatch.setattr(
        ingestor.router, "plan", lambda events: seen.append(gc.isenabled()) or plan(events)
    )
    ingestor.ingest([track("1")])
    assert seen == [False] and gc.isenabled()
    gc.disable()
    try:
        ingestor.ingest([track("2")])
        assert not gc.isenabled()
    finally:
        gc.enable()
    monkeypatch.setattr("engine.redis.ingest.append_shards", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        ingestor.ingest([track("3")])
    assert gc.isenabled()


# --- clients and arguments ---------------------------------------------------------------


def test_decoding_client_works_too() -> None:
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    ingestor = Ingestor(client, shards=1)
    ingestor.ingest([track("1", account=None)])
    result = ingestor.ingest([track("g", account="acme"), track("1", account=None)])
    assert (result.released, result.duplicates, result.message_ids) == (1, 1, ["g"])


def test_result_lists_problems_as_batch_problems(fake_redis: redis.Redis) -> None:
    result = Ingestor(fake_redis, shards=1).ingest([{"type": "nope"}])
    assert result.rejected == [
        BatchProblem(
            0,
            "type",
            "unknown event type 'nope' (expected one of track, identify, group, page, screen, "
            "alias)",
        )
    ]


@pytest.mark.parametrize("field", ["shards", "dedupe_window_s", "max_event_bytes"])
def test_arguments_must_be_positive(fake_redis: redis.Redis, field: str) -> None:
    with pytest.raises(ValueError):
        Ingestor(fake_redis, **{field: 0})
