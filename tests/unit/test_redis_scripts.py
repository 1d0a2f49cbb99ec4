"""The Redis scripts and the shard API, on fakeredis and on a real redis-server."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import redis
from redisproc import RedisServer

from engine.core.effects import ActionEffect, Effects, TimerArm, TimerCancel
from engine.core.state import COMPRESSED, AccountState, Timer
from engine.redis import lease
from engine.redis.keys import GROUP, ShardKeys, shard_of
from engine.redis.store import DeadLetter, RedisStore, ShardCommit
from engine.runtime.store import Commit, DueTimer

SHARD = 3
KEYS = ShardKeys(SHARD)


@pytest.fixture
def client(either_redis: redis.Redis) -> redis.Redis:
    return either_redis


@pytest.fixture
def store(client: redis.Redis) -> RedisStore:
    return RedisStore(client)


def accounts_on(shard: int, count: int, shards: int = 16) -> list[str]:
    """The first ``count`` account ids ``acct-N`` that live on ``shard``."""
    found = (f"acct-{i}" for i in range(10_000) if shard_of(f"acct-{i}", shards) == shard)
    return [next(found) for _ in range(count)]


A, B = accounts_on(SHARD, 2)


def action(key: str, account: str = A, at: float = 100.0) -> ActionEffect:
    return ActionEffect(key, at, account, "p", 1, "email", "live", {"to": "x@example.com"}, "0.0")


def big_state(account: str) -> AccountState:
    """A state whose stored form is deflated (binary, behind a NUL marker)."""
    return AccountState(account, created=1.0, traits={f"t{i}": "v" * 20 for i in range(20)})


def armed(state: AccountState, *arms: TimerArm) -> AccountState:
    """The state with these timers armed, as the core leaves it when it arms them."""
    for arm in arms:
        state.timers[arm.timer_id] = Timer(arm.generation, arm.due)
    return state


def entries(client: redis.Redis, count: int) -> list[str]:
    """Append ``count`` events to the shard stream; their ids."""
    return [
        client.xadd(KEYS.stream, {"e": orjson.dumps({"k": "track", "m": f"m{i}", "t": i})}).decode()
        for i in range(count)
    ]


def read(client: redis.Redis, count: int) -> list[str]:
    """Read ``count`` entries with the group (they become pending); their ids."""
    reply: Any = client.xreadgroup(GROUP, "c1", {KEYS.stream: ">"}, count=count)
    return [entry_id.decode() for entry_id, _ in reply[0][1]] if reply else []


def snapshot(client: redis.Redis) -> dict[bytes, Any]:
    """Every key's content (streams with their groups and pending summary)."""
    out: dict[bytes, Any] = {}
    for key in sorted(client.keys("*")):
        kind = client.type(key).decode()
        if kind == "string":
            out[key] = client.get(key)
        elif kind == "hash":
            out[key] = client.hgetall(key)
        elif kind == "zset":
            out[key] = client.zrange(key, 0, -1, withscores=True)
        elif kind == "set":
            out[key] = client.smembers(key)
        elif kind == "list":
            out[key] = client.lrange(key, 0, -1)
        else:
            groups = client.xinfo_groups(key)
            pending = [client.xpending(key, g["name"]) for g in groups]
            out[key] = (client.xrange(key), groups, pending)
    return out


def full_commit(client: redis.Redis) -> ShardCommit:
    """A batch touching everything the commit script writes."""
    ids = entries(client, 3)
    read(client, 3)
    commit = ShardCommit(
        acks=ids[:2],
        dead_letters=[DeadLetter(ids[2], {b"e": b"\xffnot json"}, B, "JSONDecodeError: bad")],
        applied=2,
    )
    arm = TimerArm("t1", 1, 50.5)
    commit.add(armed(big_state(A), arm), Effects(timers_armed=[arm], actions=[action("k1")]))
    commit.add(AccountState(B, created=2.0), Effects(timers_cancelled=[TimerCancel("old")]))
    return commit


# -- fenced commit ----------------------------------------------------------------------------


def test_commit_with_a_wrong_token_writes_nothing(client: redis.Redis, store: RedisStore) -> None:
    store.ensure_group(SHARD)
    store.commit(Commit(states=[armed(AccountState(B, 2.0), TimerArm("old", 1, 10.0))]))
    assert lease.acquire(client, KEYS, "owner", 30_000)
    commit = full_commit(client)
    before = snapshot(client)
    assert store.fenced_commit(SHARD, "intruder", commit) is False
    assert snapshot(client) == before
    assert client.zscore(KEYS.timers, B) == 10.0


def test_commit_with_an_expired_lease_writes_nothing(
    client: redis.Redis, store: RedisStore
) -> None:
    store.ensure_group(SHARD)
    assert lease.acquire(client, KEYS, "owner", 20)
    commit = full_commit(client)
    time.sleep(0.05)
    before = snapshot(client)
    assert store.fenced_commit(SHARD, "owner", commit) is False
    assert snapshot(client) == before
    assert store.load([A, B]) == {}


def test_accepted_commit_writes_states_timers_outbox_acks_dead_letters_and_counters(
    client: redis.Redis, store: RedisStore
) -> None:
    store.ensure_group(SHARD)
    store.commit(Commit(states=[armed(AccountState(B, 2.0), TimerArm("old", 1, 10.0))]))
    assert lease.acquire(client, KEYS, "owner", 30_000)
    commit = full_commit(client)
    dead = commit.dead_letters[0].entry_id
    assert store.fenced_commit(SHARD, "owner", commit) is True

    raw = client.get(KEYS.account(A))
    assert raw is not None and raw.startswith(COMPRESSED)
    loaded = store.load([A, B])
    assert loaded[A].to_dict() == armed(big_state(A), TimerArm("t1", 1, 50.5)).to_dict()
    assert loaded[B].to_dict() == AccountState(B, created=2.0).to_dict()
    assert client.smembers(KEYS.accounts) == {A.encode(), B.encode()}
    assert client.zrange(KEYS.timers, 0, -1, withscores=True) == [(A.encode(), 50.5)]
    assert client.exists(KEYS.timer_generations) == 0
    assert orjson.loads(client.hget(KEYS.outbox, "k1") or b"") == action("k1").to_dict()
    assert client.zrange(KEYS.outbox_queue, 0, -1, withscores=True) == [(b"k1", 100.0)]
    assert client.xpending(KEYS.stream, GROUP)["pending"] == 0
    [(_, fields)] = client.xrange(KEYS.dead_letters)
    assert fields == {
        b"entry": b"\xffnot json",
        b"error": b"JSONDecodeError: bad",
        b"account": B.encode(),
        b"id": dead.encode(),
    }
    assert store.counters(SHARD) == {"applied": 2, "dead_letters": 1}


def test_fenced_commit_refuses_foreign_accounts_and_empty_tokens(store: RedisStore) -> None:
    [stranger] = accounts_on(SHARD + 1, 1)
    with pytest.raises(ValueError, match="not on shard"):
        store.fenced_commit(SHARD, "t", ShardCommit(states=[AccountState(stranger, 1.0)]))
    with pytest.raises(ValueError, match="token"):
        store.fenced_commit(SHARD, "", ShardCommit())


def test_outbox_skips_delivered_and_known_keys(client: redis.Redis, store: RedisStore) -> None:
    store.commit(Commit(actions=[action("k1", at=5.0)]))
    assert store.deliver(SHARD, "k1", "250 OK") is True
    store.commit(Commit(actions=[action("k2", at=7.0)]))
    store.commit(Commit(actions=[action("k1", at=9.0), action("k2", at=8.0), action("k3")]))
    assert sorted(client.hkeys(KEYS.outbox)) == [b"k2", b"k3"]
    assert client.zrange(KEYS.outbox_queue, 0, -1, withscores=True) == [
        (b"k2", 7.0),
        (b"k3", 100.0),
    ]
    assert [a.key for a in store.pending_actions()] == ["k2", "k3"]


def test_commit_spanning_shards_writes_each_on_its_own_shard(store: RedisStore) -> None:
    [other] = accounts_on(SHARD + 1, 1)
    commit = Commit()
    for account, arm in [(A, TimerArm("t", 1, 5.0)), (other, TimerArm("t", 2, 6.0))]:
        commit.add(armed(AccountState(account, 1.0), arm), Effects(timers_armed=[arm]))
    store.commit(commit)
    assert sorted(store.load([A, other])) == sorted([A, other])
    assert store.client.zcard(KEYS.timers) == 1
    assert store.client.zcard(ShardKeys(SHARD + 1).timers) == 1
    assert sorted(store.account_ids()) == sorted([A, other])


def test_unknown_delivered_keys_are_recorded_on_every_shard(store: RedisStore) -> None:
    store.mark_delivered("ghost", "sent")
    assert store.delivery("ghost") == "sent"
    store.commit(Commit(actions=[action("ghost")]))
    assert store.pending_actions() == []


def test_scripts_reload_after_the_script_cache_is_flushed(
    client: redis.Redis, store: RedisStore
) -> None:
    client.script_flush()
    store.commit(Commit(states=[AccountState(A, 1.0)]))
    assert list(store.load([A])) == [A]


# -- timers (more in test_redis_timers.py) ---------------------------------------------------


def arm(store: RedisStore, account: str, *arms: TimerArm) -> None:
    """Arm timers of a stored account (created if need be) and commit it."""
    state = store.load([account]).get(account) or AccountState(account, 1.0)
    store.commit(Commit(states=[armed(state, *arms)]))


# -- streams ----------------------------------------------------------------------------------


def test_trim_keeps_pending_and_unread_entries(client: redis.Redis, store: RedisStore) -> None:
    ids = entries(client, 6)
    assert store.trim(SHARD) == 0  # no group yet: nothing is known to be read
    store.ensure_group(SHARD)
    store.ensure_group(SHARD)  # BUSYGROUP is fine
    read(client, 4)
    client.xack(KEYS.stream, GROUP, ids[0], ids[2])
    assert store.trim(SHARD) == 1
    assert [i.decode() for i, _ in client.xrange(KEYS.stream)] == ids[1:]
    client.xack(KEYS.stream, GROUP, ids[1], ids[3])
    assert store.trim(SHARD) == 2
    assert [i.decode() for i, _ in client.xrange(KEYS.stream)] == ids[3:]


def test_backlog_means_unread_pending_or_due(client: redis.Redis, store: RedisStore) -> None:
    assert store.has_backlog(SHARD) is False
    ids = entries(client, 2)
    assert store.has_backlog(SHARD) is True
    store.ensure_group(SHARD)
    read(client, 2)
    assert store.has_backlog(SHARD) is True
    client.xack(KEYS.stream, GROUP, *ids)
    assert store.has_backlog(SHARD) is False
    arm(store, A, TimerArm("t", 1, 50.0))
    assert store.has_backlog(SHARD, now=40.0) is False
    assert store.has_backlog(SHARD, now=50.0) is True


# -- dead letters -----------------------------------------------------------------------------


def dead_letter(client: redis.Redis, store: RedisStore, payload: bytes) -> str:
    """Dead-letter one fresh entry whose event is ``payload``; its dead-letter id."""
    store.ensure_group(SHARD)
    entry_id = client.xadd(KEYS.stream, {"e": payload}).decode()
    read(client, 1)
    assert lease.acquire(client, KEYS, "tok", 10_000)
    commit = ShardCommit(dead_letters=[DeadLetter(entry_id, {b"e": payload}, A, "boom")])
    assert store.fenced_commit(SHARD, "tok", commit)
    assert lease.release(client, KEYS, "tok")
    [letter] = [d for d in store.dead_letters() if d["entry_id"] == entry_id]
    assert (letter["shard"], letter["account"], letter["error"]) == (SHARD, A, "boom")
    return str(letter["id"])


def test_replay_reappends_the_original_entry_once(client: redis.Redis, store: RedisStore) -> None:
    payload = b'{"k":"track","m":"m1","t":1,"a":"x"}\xff'
    letter = dead_letter(client, store, payload)
    assert client.xpending(KEYS.stream, GROUP)["pending"] == 0
    assert store.replay_dead_letter(SHARD, letter) is True
    assert store.replay_dead_letter(SHARD, letter) is False
    assert store.dead_letters(SHARD) == []
    assert [f[b"e"] for _, f in client.xrange(KEYS.stream)][-1] == payload
    assert read(client, 10) != []


def test_discard_drops_a_dead_letter(client: redis.Redis, store: RedisStore) -> None:
    letter = dead_letter(client, store, b"{}")
    assert store.discard_dead_letter(SHARD, "not-an-id") is False
    assert store.discard_dead_letter(SHARD, letter) is True
    assert store.discard_dead_letter(SHARD, letter) is False
    assert store.dead_letters() == []


def test_dead_letters_without_an_event_field_keep_all_fields() -> None:
    letter = DeadLetter("1-0", {"x": "1", "y": "2"}, None, "no event")
    assert orjson.loads(letter.entry) == {"x": "1", "y": "2"}
    assert DeadLetter("1-0", {"e": "ev"}, None, "").entry == b"ev"


# -- leases -----------------------------------------------------------------------------------


def test_only_the_holder_renews_and_releases(client: redis.Redis) -> None:
    assert lease.acquire(client, KEYS, "a", 1_000) is True
    assert lease.acquire(client, KEYS, "b", 1_000) is False
    assert lease.holder(client, KEYS) == "a"
    assert lease.renew(client, KEYS, "b", 60_000) is False
    assert client.pttl(KEYS.lease) <= 1_000
    assert lease.renew(client, KEYS, "a", 60_000) is True
    assert client.pttl(KEYS.lease) > 1_000
    assert lease.release(client, KEYS, "b") is False
    assert lease.holder(client, KEYS) == "a"
    assert lease.release(client, KEYS, "a") is True
    assert lease.holder(client, KEYS) is None
    assert lease.renew(client, KEYS, "a", 1_000) is False


def test_an_expired_lease_can_be_taken_and_not_renewed(client: redis.Redis) -> None:
    assert lease.acquire(client, KEYS, "a", 20)
    time.sleep(0.05)
    assert lease.holder(client, KEYS) is None
    assert lease.renew(client, KEYS, "a", 1_000) is False
    assert lease.acquire(client, KEYS, "b", 1_000) is True
    assert lease.release(client, KEYS, "a") is False
    assert lease.holder(client, KEYS) == "b"


# -- a server of the test's own -------------------------------------------------------------


def test_committed_batches_survive_a_restart_with_aof(
    redis_process: Callable[..., RedisServer],
) -> None:
    server = redis_process(appendonly=True)
    store = RedisStore(server.client())
    arm(store, A, TimerArm("t", 2, 30.0))
    server.restart(kill=False)
    store = RedisStore(server.client())
    assert list(store.load([A])) == [A]
    assert store.pop_due(30.0) == [DueTimer(A, "t", 2, 30.0)]
    assert store.load([A])[A].timers == {"t": Timer(2, 30.0)}  # until its firing is applied
    server.stop()
    with pytest.raises(redis.ConnectionError):
        store.load([A])
