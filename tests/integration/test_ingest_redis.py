"""Ingest on a real redis-server: the Lua script, parity with the pure Router, cluster slots."""

from __future__ import annotations

import random
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from conftest import require_redis_server
from ingestkit import SEQUENCES, on_redis, pure, random_calls
from redis.backoff import NoBackoff
from redis.retry import Retry
from redisproc import EXECUTABLE, RedisServer, free_port

from engine.redis.ingest import BacklogFull, Ingestor, IngestUnavailable
from engine.redis.ingest_lua import SHA, SOURCE, ShardEvents, append_shards, appended_ms
from engine.redis.keys import USERS, ShardKeys, parked_events, seen_field, shard_of

pytestmark = pytest.mark.integration
NO_RETRY = Retry(NoBackoff(), 0)


def track(mid: str, account: str | None = "acme", user: str = "u1") -> dict[str, Any]:
    body: dict[str, Any] = {"type": "track", "event": "E", "messageId": mid, "userId": user}
    if account is not None:
        body["context"] = {"groupId": account}
    return body


def test_script_dedupes_appends_and_flags(redis_client: redis.Redis) -> None:
    events = ShardEvents()
    for message_id, json in [("m1", b'{"k":"track","m":"m1"}'), ("m1", b"{}"), ("m2", b"{}")]:
        events.add(message_id, json)
    done = append_shards(redis_client, {3: events}, window_s=60, kick_ttl_s=300)[3]
    assert (done.appended, done.duplicates, done.kicked, done.new) == (2, 1, True, (1, 0, 1))
    keys = ShardKeys(3)
    entries = redis_client.xrange(keys.stream)
    assert [f for _, f in entries] == [{b"e": b'{"k":"track","m":"m1"}'}, {b"e": b"{}"}]
    stamps = [redis_client.hget(name, seen_field("m1")) for name in keys.seen]
    (stamp,) = [at for at in stamps if at is not None]
    assert abs(appended_ms(stamp) - int(entries[0][0].decode().partition("-")[0])) <= 5
    assert 295 < redis_client.ttl(keys.kicked) <= 300
    again = ShardEvents()
    again.add("m2", b"{}")
    repeat = append_shards(redis_client, {3: again}, window_s=60, kick_ttl_s=300)[3]
    assert (repeat.appended, repeat.duplicates, repeat.kicked) == (0, 1, False)


def test_script_refuses_hashes_and_jsons_that_do_not_pair_up(redis_client: redis.Redis) -> None:
    assert redis_client.script_load(SOURCE) == SHA
    keys = ShardKeys(0)
    names = [keys.stream, keys.kicked, *keys.seen]
    for ids, jsons in [(seen_field("x"), b"{}\n{}"), (seen_field("x") * 2, b"{}"), (b"x", b"{}")]:
        with pytest.raises(redis.ResponseError, match="a 12-byte hash per JSON"):
            redis_client.evalsha(SHA, len(names), *names, 60_000, 300, ids, jsons)
    assert not redis_client.exists(keys.stream, *keys.seen)


def test_periods_follow_the_servers_clock(redis_client: redis.Redis) -> None:
    ingestor = Ingestor(redis_client, shards=1, dedupe_window_s=2)  # periods of 1 s
    ingestor.ingest([track("m1")])
    time.sleep(1.05)
    result = ingestor.ingest([track("m1"), track("m2")])
    assert (result.duplicates, result.message_ids) == (1, ["m2"])
    keys = ShardKeys(0)
    (first,) = [name for name in keys.seen if redis_client.hexists(name, seen_field("m1"))]
    (second,) = [name for name in keys.seen if redis_client.hexists(name, seen_field("m2"))]
    periods = [int(redis_client.hget(name, "period") or 0) for name in (first, second)]
    assert first != second and periods[1] > periods[0]


def test_dedupe_window_expires(redis_client: redis.Redis) -> None:
    ingestor = Ingestor(redis_client, shards=2, dedupe_window_s=1)
    assert ingestor.ingest([track("m1")]).accepted == 1
    assert ingestor.ingest([track("m1")]).duplicates == 1
    time.sleep(1.2)
    assert ingestor.ingest([track("m1")]).accepted == 1


def test_script_cache_flush_falls_back_to_eval(redis_client: redis.Redis) -> None:
    ingestor = Ingestor(redis_client, shards=1)
    ingestor.ingest([track("1")])
    redis_client.script_flush()
    assert ingestor.ingest([track("2")]).accepted == 1
    assert redis_client.xlen(ShardKeys(0).stream) == 2


@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_parity_with_pure_router(redis_client: redis.Redis, name: str) -> None:
    raws = SEQUENCES[name]
    expected, _ = pure(raws)
    assert on_redis(redis_client, raws, [1] * len(raws)) == expected


@pytest.mark.parametrize("seed", range(4))
def test_parity_on_random_sequences(redis_client: redis.Redis, seed: int) -> None:
    rng = random.Random(seed)
    raws = random_calls(rng, 80)
    chunks = [5] * 16
    expected, router = pure(raws, per_user=3)
    assert on_redis(redis_client, raws, chunks, per_user=3) == expected
    links = {k.decode(): v.decode() for k, v in redis_client.hgetall(USERS).items()}
    assert links == dict(router.directory.to_dict()["links"])


def test_backlog_refusal_on_a_real_server(redis_client: redis.Redis) -> None:
    ingestor = Ingestor(redis_client, shards=2, max_backlog=1)
    ingestor.ingest([track("1"), track("2")])
    keys_before = sorted(redis_client.keys("*"))
    with pytest.raises(BacklogFull):
        ingestor.ingest([track("3"), track("p", account=None, user="nobody")])
    assert sorted(redis_client.keys("*")) == keys_before
    assert redis_client.xlen(ShardKeys(shard_of("acme", 2)).stream) == 2


def test_outage_raises_and_recovery_works(redis_process: Callable[..., RedisServer]) -> None:
    server = redis_process()
    client = redis.Redis(
        port=server.port, socket_connect_timeout=0.5, socket_timeout=2, retry=NO_RETRY
    )
    ingestor = Ingestor(client, shards=1)
    assert ingestor.ingest([track("1")]).accepted == 1
    server.stop()
    with pytest.raises(IngestUnavailable):
        ingestor.ingest([track("2")])
    server.start()
    assert ingestor.ingest([track("2")]).accepted == 1


# --- Redis Cluster: every multi-key script call stays inside one slot ----------------------


def _start_cluster_node(directory: Path) -> tuple[subprocess.Popen[bytes], redis.Redis]:
    """Start a cluster-mode redis-server on a free port and wait for it to answer."""
    port = free_port()
    while port + 10_000 > 65_535:  # cluster mode also listens on port + 10000 (the bus)
        port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    command = [EXECUTABLE, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--cluster-enabled", "yes", "--dir", str(directory), "--appendonly", "no"]
    log = (directory / "redis.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    client = redis.Redis(port=port, socket_connect_timeout=0.5, retry=NO_RETRY)
    deadline = time.monotonic() + 30  # a loaded machine can be slow to start a server
    while process.poll() is None and time.monotonic() < deadline:
        try:
            client.ping()
            return process, client
        except (redis.ConnectionError, redis.TimeoutError):
            time.sleep(0.05)
    code = process.poll()
    process.kill()
    process.wait()
    log_text = (directory / "redis.log").read_text()
    raise RuntimeError(f"cluster node did not start (exit {code}): {log_text}")


@pytest.fixture
def cluster_node(tmp_path: Path) -> Iterator[redis.Redis]:
    """A one-node redis-server in cluster mode owning every slot: it refuses CROSSSLOT calls."""
    require_redis_server()
    for attempt in range(3):  # a free port may be taken before the server binds it
        try:
            process, client = _start_cluster_node(tmp_path / f"node-{attempt}")
            break
        except RuntimeError:
            if attempt == 2:
                raise
    try:
        client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        deadline = time.monotonic() + 10
        while b"cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
            assert time.monotonic() < deadline, "cluster state did not become ok"
            time.sleep(0.05)
        yield client
    finally:
        client.close()
        process.terminate()
        process.wait(10)


def test_cluster_node_refuses_cross_slot_scripts(cluster_node: redis.Redis) -> None:
    with pytest.raises(redis.ResponseError, match="same slot"):
        cluster_node.eval("return 1", 2, "hg:{s00}:stream", "hg:{s01}:stream")


def test_ingest_runs_on_a_cluster_node(cluster_node: redis.Redis) -> None:
    kicks: list[int] = []
    ingestor = Ingestor(cluster_node, shards=16, kick=kicks.append)
    parked = ingestor.ingest([track("p1", account=None), track("p2", account=None, user="u2")])
    assert parked.parked == 2
    accounts = [f"acct-{i}" for i in range(12)]
    result = ingestor.ingest(
        [{"type": "group", "groupId": "acme", "userId": "u1", "messageId": "g"}]
        + [track(f"m{i}", account=a, user="u2") for i, a in enumerate(accounts)]
        + [track("m1", account="acct-1", user="u2")]
    )
    assert (result.accepted, result.duplicates, result.released) == (13, 1, 2)
    assert sorted(kicks) == sorted({shard_of(a, 16) for a in ["acme", *accounts]})
    acme = ShardKeys(shard_of("acme", 16)).stream
    assert [orjson.loads(f[b"e"])["m"] for _, f in cluster_node.xrange(acme)][:2] == ["g", "p1"]
    assert not cluster_node.exists(parked_events("u1"))
