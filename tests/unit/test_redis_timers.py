"""Timers on Redis: one member per account scored with its earliest due timer, wake entries in
the shard stream, the drain firing a wake's timers from the account's state, and members of
the old one-per-timer format."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import redis
from corekit import SHIPPED
from test_redis_scripts import SHARD, A, B, accounts_on, arm, armed

from engine.core.clock import VirtualClock
from engine.core.effects import Effects, TimerArm, TimerCancel
from engine.core.event import TIMER, Event
from engine.core.loader import load_playbook_set
from engine.core.playbook_set import PlaybookSet
from engine.core.state import AccountState, Timer
from engine.redis import drain, lease
from engine.redis.drain import ShardDrainer
from engine.redis.keys import ShardKeys, shard_of
from engine.redis.store import RedisStore, ShardCommit
from engine.redis.timers import WAKE
from engine.runtime.store import Commit, DueTimer

KEYS = ShardKeys(SHARD)


@pytest.fixture
def client(either_redis: redis.Redis) -> redis.Redis:
    return either_redis


@pytest.fixture
def store(client: redis.Redis) -> RedisStore:
    return RedisStore(client)


def timers(client: redis.Redis) -> list[tuple[bytes, float]]:
    found: Any = client.zrange(KEYS.timers, 0, -1, withscores=True)
    return list(found)


def stream_events(client: redis.Redis) -> list[Event]:
    return [Event.from_dict(orjson.loads(f[b"e"])) for _, f in client.xrange(KEYS.stream)]


def wake(client: redis.Redis, account: str, at: float) -> None:
    """Append a wake entry for ``account`` by hand, as the pop script writes it."""
    event = Event(WAKE, f"wake:{account}@{at!r}", at, account)
    client.xadd(KEYS.stream, {"e": orjson.dumps(event.to_dict())})


# -- the commit writes one member per account --------------------------------------------------


def test_commit_scores_each_account_with_its_earliest_timer(
    client: redis.Redis, store: RedisStore
) -> None:
    arm(store, A, TimerArm("t", 1, 30.0), TimerArm("u", 2, 10.5))
    arm(store, B)
    assert timers(client) == [(A.encode(), 10.5)]
    store.commit(Commit(states=[AccountState(A, 1.0)]))  # every timer cancelled or fired
    assert timers(client) == []
    assert client.exists(KEYS.timer_generations) == 0


def test_a_batch_writes_the_timers_its_last_state_has(
    client: redis.Redis, store: RedisStore
) -> None:
    state = AccountState(A, 1.0)
    commit = ShardCommit()
    commit.add(armed(state, TimerArm("gone", 1, 5.0)), Effects())
    del state.timers["gone"]
    commit.add(
        armed(state, TimerArm("kept", 3, 9.0)), Effects(timers_cancelled=[TimerCancel("gone")])
    )
    assert store.fenced_commit(SHARD, "tok", commit) is False
    assert lease.acquire(client, KEYS, "tok", 10_000)
    assert store.fenced_commit(SHARD, "tok", commit) is True
    assert timers(client) == [(A.encode(), 9.0)]


# -- the pop script wakes accounts -------------------------------------------------------------


def test_pop_due_timers_wakes_each_due_account_once(client: redis.Redis, store: RedisStore) -> None:
    due = 1767571200.1234567
    arm(store, A, TimerArm("trg:p:0", 7, due), TimerArm("seq:p", 3, 10.0))
    arm(store, B, TimerArm("win", 9, due + 100))
    assert store.pop_due_timers(SHARD, due + 1) == 1
    assert store.pop_due_timers(SHARD, due + 1) == 0
    assert stream_events(client) == [Event(WAKE, f"wake:{A}@{due + 1!r}", due + 1, A)]
    assert timers(client) == [(B.encode(), due + 100)]


def test_wakes_keep_odd_account_ids_intact(client: redis.Redis, store: RedisStore) -> None:
    odd = next(a for a in (f'a|"/\\ü-{i}' for i in range(999)) if shard_of(a, 16) == SHARD)
    arm(store, odd, TimerArm("win", 1, 5.0))
    assert store.pop_due_timers(SHARD, 5.0) == 1
    [event] = stream_events(client)
    assert (event.kind, event.account_id, event.ts) == (WAKE, odd, 5.0)


def test_pop_due_timers_counts_its_limit_in_accounts(
    client: redis.Redis, store: RedisStore
) -> None:
    accounts = accounts_on(SHARD, 5)
    for i, account in enumerate(accounts):
        arm(store, account, TimerArm("a", 1, float(i)), TimerArm("b", 2, float(i)))
    assert store.pop_due_timers(SHARD, 10.0, limit=2) == 2
    assert [e.account_id for e in stream_events(client)] == accounts[:2]
    assert client.zcard(KEYS.timers) == 3


def test_old_format_members_wake_their_account(client: redis.Redis, store: RedisStore) -> None:
    piped = next(a for a in (f"x|{i}" for i in range(999)) if shard_of(a, 16) == SHARD)
    arm(store, A, TimerArm("trg:p:0", 4, 5.0), TimerArm("win", 6, 6.0))
    arm(store, piped, TimerArm("win", 1, 7.0))  # a new member that only looks like an old one
    client.zadd(KEYS.timers, {f"{A}|trg:p:0": 5.0, f"{A}|win": 6.0, f"{B}|win": 50.0})
    client.hset(KEYS.timer_generations, mapping={f"{A}|trg:p:0": 4, f"{A}|win": 6, f"{B}|win": 2})
    assert store.pop_due_timers(SHARD, 10.0) == 2
    assert [e.account_id for e in stream_events(client)] == [A, piped]
    assert timers(client) == [(f"{B}|win".encode(), 50.0)]
    assert client.hgetall(KEYS.timer_generations) == {f"{B}|win".encode(): b"2"}


def test_pop_due_also_reads_old_format_members(store: RedisStore) -> None:
    arm(store, A, TimerArm("win", 6, 6.0))
    store.client.zadd(KEYS.timers, {f"{A}|win": 6.0})
    store.client.hset(KEYS.timer_generations, f"{A}|win", 6)
    assert store.pop_due(10.0) == [DueTimer(A, "win", 6, 6.0)]
    assert store.client.exists(KEYS.timers, KEYS.timer_generations) == 0


# -- pop_due, the Store interface --------------------------------------------------------------


def fire(store: RedisStore, due: list[DueTimer]) -> None:
    """What a caller of pop_due does with each timer: apply its firing (the core removes it
    from the account's timers) and commit the account."""
    for timer in due:
        state = store.load([timer.account_id])[timer.account_id]
        del state.timers[timer.timer_id]
        store.commit(Commit(states=[state]))


def test_pop_due_hands_out_the_earliest_timers_and_rescores_the_rest(
    client: redis.Redis, store: RedisStore
) -> None:
    arm(store, A, TimerArm("t1", 1, 10.0), TimerArm("t2", 2, 20.0), TimerArm("t3", 3, 30.0))
    arm(store, B, TimerArm("u", 4, 15.0))
    first = store.pop_due(25.0, limit=2)
    assert first == [DueTimer(A, "t1", 1, 10.0), DueTimer(B, "u", 4, 15.0)]
    assert timers(client) == [(A.encode(), 20.0)]  # t2 is due, and was not handed out
    assert set(store.load([A])[A].timers) == {"t1", "t2", "t3"}  # until the firings apply
    fire(store, first)
    assert timers(client) == [(A.encode(), 20.0)]
    second = store.pop_due(25.0)
    assert second == [DueTimer(A, "t2", 2, 20.0)]
    assert timers(client) == [(A.encode(), 30.0)]
    fire(store, second)
    assert store.pop_due(25.0) == []
    assert store.next_due() == 30.0


# -- the drain fires a wake's timers from the state --------------------------------------------


@dataclass
class StandIn:
    """The core as far as timers go: a firing of the armed generation removes its timer, any
    other is dropped as stale. ``then`` plays a playbook: what an event (by timer id, or kind)
    does to the state after that. Records every event the drain applies."""

    then: dict[str, Callable[[AccountState], None]] = field(default_factory=dict)
    #: (kind, timer id, generation, runner time, dropped) of each event applied.
    seen: list[tuple[str, str | None, int | None, float, bool]] = field(default_factory=list)

    def apply(self, state: AccountState, event: Event, now: float, pset: PlaybookSet) -> Effects:
        effects = Effects()
        timer = event.timer
        if timer is not None:
            armed = state.timers.get(timer.timer_id)
            if armed is None or armed.generation != timer.generation:
                effects.dropped = "stale"
            else:
                del state.timers[timer.timer_id]
        name = timer.timer_id if timer is not None else event.kind
        self.seen.append((event.kind, timer and timer.timer_id, timer and timer.generation, now,
                          effects.dropped is not None))  # fmt: skip
        if name in self.then and effects.dropped is None:
            self.then[name](state)
        return effects


@pytest.fixture
def core(monkeypatch: pytest.MonkeyPatch) -> StandIn:
    stand_in = StandIn()
    monkeypatch.setattr(drain, "apply", stand_in.apply)
    return stand_in


@pytest.fixture(scope="module")
def pset() -> PlaybookSet:
    """Any playbook set: the stand-in core does not look at it."""
    loaded = load_playbook_set([SHIPPED]).pset
    assert loaded is not None
    return loaded


def drainer(client: redis.Redis, store: RedisStore, pset: PlaybookSet, now: float) -> ShardDrainer:
    """A drainer of the shard at a fixed wall time ``now``."""
    return ShardDrainer(client, store, lambda: pset, VirtualClock(now))


def test_a_wake_fires_the_due_timers_of_the_state_in_due_order(
    client: redis.Redis, store: RedisStore, pset: PlaybookSet, core: StandIn
) -> None:
    arm(store, A, TimerArm("b", 2, 20.0), TimerArm("a", 5, 20.0), TimerArm("c", 1, 10.0))
    arm(store, A, TimerArm("later", 3, 100.0))
    report = drainer(client, store, pset, 50.0).drain(SHARD)
    assert (report.woken, report.applied, report.dead_letters) == (1, 1, 0)
    assert core.seen == [
        (TIMER, "c", 1, 50.0, False),
        (TIMER, "a", 5, 50.0, False),
        (TIMER, "b", 2, 50.0, False),
    ]
    assert store.load([A])[A].timers == {"later": Timer(3, 100.0)}
    assert timers(client) == [(A.encode(), 100.0)]
    assert store.counters(SHARD) == {"applied": 1}


def test_timers_changed_before_they_fire_never_fire_stale(
    client: redis.Redis, store: RedisStore, pset: PlaybookSet, core: StandIn
) -> None:
    """An event ahead of the wake cancels one timer; the first firing cancels one and re-arms
    another."""
    arm(store, A, TimerArm("a", 1, 10.0), TimerArm("b", 2, 15.0), TimerArm("c", 3, 20.0))
    arm(store, A, TimerArm("x", 4, 12.0))

    def first_firing(state: AccountState) -> None:
        del state.timers["b"]
        state.timers["c"] = Timer(9, 30.0)

    core.then = {"track": lambda state: state.timers.pop("x"), "a": first_firing}
    client.xadd(KEYS.stream, {"e": orjson.dumps(Event("track", "m1", 40.0, A).to_dict())})
    assert drainer(client, store, pset, 50.0).drain(SHARD).applied == 2
    assert [(timer, generation, dropped) for _, timer, generation, _, dropped in core.seen] == [
        (None, None, False),  # the track event: x is never fired
        ("a", 1, False),
        ("b", 2, True),  # cancelled by the firing of a: dropped as stale
        ("c", 3, True),  # re-armed by it (generation 9, due 30): dropped as stale
    ]
    assert store.load([A])[A].timers == {"c": Timer(9, 30.0)}
    assert timers(client) == [(A.encode(), 30.0)]


def test_a_failing_firing_is_dead_lettered_and_its_timer_dropped(
    client: redis.Redis, store: RedisStore, pset: PlaybookSet, core: StandIn
) -> None:
    arm(store, A, TimerArm("bad", 1, 10.0), TimerArm("good", 2, 20.0))

    def boom(state: AccountState) -> None:
        raise RuntimeError("boom")

    core.then = {"bad": boom}
    report = drainer(client, store, pset, 50.0).drain(SHARD)
    assert (report.woken, report.applied, report.dead_letters) == (1, 0, 1)
    [letter] = store.dead_letters(SHARD)
    assert (letter["account"], letter["error"]) == (A, "RuntimeError: boom")
    assert orjson.loads(letter["entry"])["x"] == ["bad", 1, 10.0]  # the firing, to inspect
    state = store.load([A])[A]
    assert (state.timers, state.dead_letters) == ({}, 1)  # "good" fired, "bad" dropped
    assert timers(client) == []
    assert drainer(client, store, pset, 60.0).drain(SHARD).woken == 0  # no wake, no loop


def test_wakes_without_due_timers_apply_nothing(
    client: redis.Redis, store: RedisStore, pset: PlaybookSet, core: StandIn
) -> None:
    [ghost] = accounts_on(SHARD, 3)[2:]
    arm(store, A, TimerArm("t", 1, 80.0))
    wake(client, ghost, 50.0)  # an account without a state
    wake(client, A, 50.0)  # woken twice, say: its timer is not due by the wake's time
    assert drainer(client, store, pset, 50.0).drain(SHARD).applied == 2
    assert core.seen == []
    assert list(store.load([A, ghost])) == [A]
    assert timers(client) == [(A.encode(), 80.0)]


def test_wakes_fire_at_due_times_on_a_virtual_clock(
    client: redis.Redis, store: RedisStore, pset: PlaybookSet, core: StandIn
) -> None:
    arm(store, A, TimerArm("a", 1, 10.0), TimerArm("b", 2, 30.0), TimerArm("c", 3, 31.0))
    drained = ShardDrainer(client, store, lambda: pset, VirtualClock(30.0), mode="virtual")
    assert drained.drain(SHARD).woken == 1
    assert [(timer, now) for _, timer, _, now, _ in core.seen] == [("a", 10.0), ("b", 30.0)]
    assert timers(client) == [(A.encode(), 31.0)]


def test_pop_due_timers_pops_more_accounts_than_one_zrem_takes(
    client: redis.Redis, store: RedisStore
) -> None:
    client.zadd(KEYS.timers, {f"acct-{i}": float(i) for i in range(1200)})
    assert store.pop_due_timers(SHARD, 2000.0, limit=1200) == 1200
    assert client.zcard(KEYS.timers) == 0
