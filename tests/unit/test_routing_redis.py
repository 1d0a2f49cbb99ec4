"""Account resolution on Redis: parity with the pure Router, parking bounds, concurrency."""

from __future__ import annotations

import random
from typing import Any

import fakeredis
import orjson
import pytest
import redis
from ingestkit import (
    SEQUENCES,
    call,
    counts,
    on_redis,
    parked_ids,
    pure,
    random_calls,
    stream,
    track,
)

from engine.core.events import parse_event, to_core
from engine.redis.ingest import Ingestor, IngestUnavailable
from engine.redis.keys import PARKED_INDEX, USERS, parked_events
from engine.redis.routing import INDEX_SLACK_S, RedisRouter


@pytest.mark.parametrize("name", sorted(SEQUENCES))
@pytest.mark.parametrize("chunking", ["one by one", "one batch"])
def test_parity_with_pure_router(fake_redis: redis.Redis, name: str, chunking: str) -> None:
    raws = SEQUENCES[name]
    expected, router = pure(raws)
    chunks = [1] * len(raws) if chunking == "one by one" else [len(raws)]
    assert on_redis(fake_redis, raws, chunks) == expected
    links = {k.decode(): v.decode() for k, v in fake_redis.hgetall(USERS).items()}
    assert links == dict(router.directory.to_dict()["links"])


@pytest.mark.parametrize("seed", range(12))
def test_parity_on_random_sequences(seed: int) -> None:
    rng = random.Random(seed)
    raws = random_calls(rng, 80)
    chunks: list[int] = []
    while sum(chunks) < len(raws):
        chunks.append(min(rng.choice([1, 1, 2, 3, 7, 20]), len(raws) - sum(chunks)))
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    expected, router = pure(raws, per_user=3)
    assert on_redis(client, raws, chunks, per_user=3) == expected
    links = {k.decode(): v.decode() for k, v in client.hgetall(USERS).items()}
    assert links == dict(router.directory.to_dict()["links"])
    lot = router.parking
    for user in [f"{kind}{i}" for kind in "ua" for i in range(6)]:
        assert parked_ids(client, user) == [e.message_id for e in lot.release(user)]
    assert counts(client).get("dropped", 0) == lot.dropped


def test_random_sequences_park_drop_and_alias() -> None:
    runs = [pure(random_calls(random.Random(seed), 80), per_user=3)[1] for seed in range(12)]
    assert sum(router.parking.parked for router in runs) > 0
    assert sum(router.parking.dropped for router in runs) > 0


def test_parking_is_bounded_counted_and_released_in_order(fake_redis: redis.Redis) -> None:
    ingestor = Ingestor(fake_redis, shards=1)
    result = ingestor.ingest([track(str(i), userId="u1") for i in range(60)])
    assert (result.accepted, result.parked) == (60, 60)
    result = ingestor.ingest([track(str(i), userId="u1") for i in range(60, 105)])
    assert (result.parked, result.dropped) == (45, 0)
    assert fake_redis.llen(parked_events("u1")) == 100
    assert counts(fake_redis) == {"parked": 105, "dropped": 5}
    assert fake_redis.ttl(parked_events("u1")) > 0
    assert stream(fake_redis) == []
    result = ingestor.ingest([call("group", "g", groupId="acme", userId="u1")])
    assert (result.accepted, result.released) == (1, 100)
    assert stream(fake_redis) == [("acme", "g")] + [("acme", str(i)) for i in range(5, 105)]
    assert not fake_redis.exists(parked_events("u1"))
    assert counts(fake_redis) == {"parked": 105, "dropped": 5, "released": 100}


def test_one_batch_over_the_bound_drops_its_oldest(fake_redis: redis.Redis) -> None:
    ingestor = Ingestor(fake_redis, shards=1, router=RedisRouter(fake_redis, per_user=2))
    result = ingestor.ingest([track(str(i), userId="u1") for i in range(5)])
    assert (result.accepted, result.parked, result.dropped) == (2, 2, 3)
    assert result.message_ids == ["3", "4"]
    assert parked_ids(fake_redis, "u1") == ["3", "4"]
    assert counts(fake_redis) == {"parked": 2, "dropped": 3}


def test_released_after_group_even_in_one_batch(fake_redis: redis.Redis) -> None:
    ingestor = Ingestor(fake_redis, shards=1)
    ingestor.ingest([track("old", userId="u1")])
    result = ingestor.ingest(
        [
            track("1", userId="u1"),
            call("group", "g", groupId="acme", userId="u1"),
            track("2", userId="u1"),
        ]
    )
    assert stream(fake_redis) == [("acme", x) for x in ("g", "old", "1", "2")]
    assert (result.accepted, result.parked, result.released) == (3, 0, 1)


def test_lazily_loaded_alias_chain(fake_redis: redis.Redis) -> None:
    ingestor = Ingestor(fake_redis, shards=1)
    ingestor.ingest([call("page", "p", anonymousId="anon-1")])
    ingestor.ingest([call("alias", "al", userId="u1", previousId="anon-1")])
    ingestor.ingest([call("group", "g", groupId="acme", userId="u1")])
    assert stream(fake_redis) == [("acme", "g"), ("acme", "al"), ("acme", "p")]
    assert fake_redis.hget(USERS, "anon-1") == b"acme"


def test_event_parked_while_a_group_is_planned_is_released(fake_redis: redis.Redis) -> None:
    linker = RedisRouter(fake_redis)
    group = to_core(parse_event(call("group", "g", groupId="acme", userId="u1")), 1.0)
    plan = linker.plan([group])
    Ingestor(fake_redis, shards=1).ingest([track("late", userId="u1")])  # parks: no link yet
    assert parked_ids(fake_redis, "u1") == ["late"]
    linker.write(plan)
    assert [(r.account_id, r.event.message_id, r.index) for r in plan.routed] == [
        ("acme", "g", 0),
        ("acme", "late", None),
    ]
    linker.settle(plan)
    assert parked_ids(fake_redis, "u1") == []


def test_parker_that_missed_a_new_link_releases_its_own_event(fake_redis: redis.Redis) -> None:
    parker = RedisRouter(fake_redis)
    event = to_core(parse_event(track("1", userId="u1")), 1.0)
    plan = parker.plan([event])
    assert plan.parked == [0]
    Ingestor(fake_redis, shards=1).ingest([call("group", "g", groupId="acme", userId="u1")])
    parker.write(plan)  # pushes, then sees the link made meanwhile
    assert plan.parked == []
    assert [(r.account_id, r.event.message_id, r.index) for r in plan.routed] == [("acme", "1", 0)]


def test_failure_after_release_keeps_entries_and_dedupes_the_retry(
    fake_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingestor = Ingestor(fake_redis, shards=1)
    ingestor.ingest([track("1", userId="u1"), track("2", userId="u1")])

    def fail(plan: object) -> None:
        raise redis.ConnectionError("gone")

    monkeypatch.setattr(ingestor.router, "settle", fail)
    with pytest.raises(IngestUnavailable):
        ingestor.ingest([call("group", "g", groupId="acme", userId="u1")])
    assert parked_ids(fake_redis, "u1") == ["1", "2"]  # appended, but not yet removed
    monkeypatch.undo()
    result = ingestor.ingest([call("group", "g", groupId="acme", userId="u1")])
    assert (result.accepted, result.duplicates) == (0, 1)
    assert stream(fake_redis) == [("acme", "g"), ("acme", "1"), ("acme", "2")]
    assert parked_ids(fake_redis, "u1") == []


def test_one_event_object_given_twice_is_planned_twice(fake_redis: redis.Redis) -> None:
    parked = to_core(parse_event(track("1", userId="u1")), 0.0)
    grouped = to_core(parse_event(call("group", "g", groupId="acme", userId="u2")), 0.0)
    plan = RedisRouter(fake_redis).plan([parked, parked, grouped, grouped])
    assert plan.parked == [0, 1]
    assert [(item.index, item.event.message_id) for item in plan.routed] == [(2, "g"), (3, "g")]
    assert len(plan.new_parks["u1"]) == 2


def test_undecodable_parked_entry_is_removed_and_counted(fake_redis: redis.Redis) -> None:
    fake_redis.rpush(parked_events("u1"), b"not json")
    ingestor = Ingestor(fake_redis, shards=1)
    ingestor.ingest([track("1", userId="u1")])
    ingestor.ingest([call("group", "g", groupId="acme", userId="u1")])
    assert stream(fake_redis) == [("acme", "g"), ("acme", "1")]
    assert not fake_redis.exists(parked_events("u1"))
    assert counts(fake_redis)["dropped"] == 1


def test_user_named_count_does_not_collide_with_the_counter(fake_redis: redis.Redis) -> None:
    ingestor = Ingestor(fake_redis, shards=1)
    ingestor.ingest([track("1", userId="count"), track("2", userId="u2")])
    assert parked_ids(fake_redis, "count") == ["1"]
    assert counts(fake_redis) == {"parked": 2}


def test_router_bounds_must_be_positive(fake_redis: redis.Redis) -> None:
    with pytest.raises(ValueError):
        RedisRouter(fake_redis, per_user=0)


def lranges(client: redis.Redis) -> int:
    """LRANGE calls the server has run since its stats were reset."""
    stats: Any = client.info("commandstats")
    return int(stats.get("cmdstat_lrange", {}).get("calls", 0))


def test_only_users_in_the_parked_index_have_their_lists_read(redis_client: redis.Redis) -> None:
    ingestor = Ingestor(redis_client, shards=1)
    ingestor.ingest([call("group", "g", groupId="acme", userId="u1")])
    redis_client.config_resetstat()
    grouped = {"context": {"groupId": "acme"}}  # events that name their account
    ingestor.ingest([track(str(i), userId="u1", **grouped) for i in range(50)])
    assert lranges(redis_client) == 0  # nothing parked: no list read
    ingestor.ingest([track("p", userId="u2")])  # parks, and indexes u2
    assert redis_client.zscore(PARKED_INDEX, "u2") is not None
    ingestor.ingest([track("x", userId="u1", **grouped), track("y", userId="u2", **grouped)])
    assert lranges(redis_client) == 2  # u2's list: read while planning, again once linked
    assert stream(redis_client)[-3:] == [("acme", "x"), ("acme", "y"), ("acme", "p")]


def test_a_list_the_index_does_not_know_is_released_when_its_user_is_linked(
    fake_redis: redis.Redis,
) -> None:
    """Events parked before the index existed: the link's own read of the list finds them."""
    old = track("old", userId="u1")
    entry = orjson.dumps([1, to_core(parse_event(old), 1.0).to_dict()])
    fake_redis.rpush(parked_events("u1"), entry)
    result = Ingestor(fake_redis, shards=1).ingest(
        [call("group", "g", groupId="acme", userId="u1")]
    )
    assert (result.accepted, result.released) == (1, 1)
    assert stream(fake_redis) == [("acme", "g"), ("acme", "old")]
    assert not fake_redis.exists(parked_events("u1"))


def test_the_parked_index_outlives_the_lists_and_is_pruned(fake_redis: redis.Redis) -> None:
    now = [1_767_571_200]
    router = RedisRouter(fake_redis, park_ttl_s=60, now_ns=lambda: now[0] * 1_000_000_000)
    ingestor = Ingestor(fake_redis, shards=1, router=router)
    ingestor.ingest([track("1", userId="u1")])
    assert fake_redis.zscore(PARKED_INDEX, "u1") == now[0] + 60 + INDEX_SLACK_S
    now[0] += 60 + INDEX_SLACK_S + 1  # u1's list expired long ago
    ingestor.ingest([track("2", userId="u2")])
    assert fake_redis.zrange(PARKED_INDEX, 0, -1) == [b"u2"]
