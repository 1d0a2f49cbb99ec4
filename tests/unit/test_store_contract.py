"""The store contract: every Store implementation (in-memory now, Redis in the runtime) must
pass these. Add an implementation by adding it to the ``store`` fixture's params."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from engine.core.effects import ActionEffect, Effects, TimerArm, TimerCancel
from engine.core.state import AccountState, Timer, TrackState
from engine.runtime.memory import MemoryStore
from engine.runtime.store import Commit, Store

STORES: dict[str, Callable[[], Store]] = {"memory": MemoryStore}
#: Stores that need a fixture (a Redis server): param name -> fixture name in conftest.
FIXTURE_STORES = {"fakeredis": "fake_redis_store", "redis": "redis_store"}


@pytest.fixture(params=sorted(STORES) + sorted(FIXTURE_STORES))
def store(request: pytest.FixtureRequest) -> Store:
    if request.param in FIXTURE_STORES:
        fixture: Store = request.getfixturevalue(FIXTURE_STORES[request.param])
        return fixture
    return STORES[request.param]()


def action(key: str, kind: str = "email", mode: str = "live") -> ActionEffect:
    return ActionEffect(
        key=key,
        at=100.0,
        account="acme",
        playbook="p",
        version=1,
        type=kind,
        mode=mode,
        payload={"to": "a@example.com"},
        step="0.0",
    )


def commit_of(state: AccountState, **effects: list) -> Commit:  # type: ignore[type-arg]
    """A commit of these effects, with the state's timers changed as the core changes them
    when it decides them (a store may read the timers from either)."""
    done = Effects(**effects)
    for cancel in done.timers_cancelled:
        state.timers.pop(cancel.timer_id, None)
    for arm in done.timers_armed:
        state.timers[arm.timer_id] = Timer(arm.generation, arm.due)
    commit = Commit()
    commit.add(state, done)
    return commit


def test_unknown_accounts_are_absent(store: Store) -> None:
    assert store.load(["nobody"]) == {}


def test_committed_state_loads_back_equal(store: Store) -> None:
    state = AccountState("acme", created=1.0, traits={"plan": "growth"})
    state.tracks["flywheel.lifecycle"] = TrackState("onboarding", 5.0)
    store.commit(commit_of(state))
    loaded = store.load(["acme"])["acme"]
    assert loaded.to_dict() == state.to_dict()
    assert list(store.account_ids()) == ["acme"]


def test_due_timers_pop_once_in_due_order(store: Store) -> None:
    state = AccountState("acme", created=1.0)
    arms = [TimerArm("b", 2, 20.0), TimerArm("a", 1, 10.0), TimerArm("c", 3, 30.0)]
    store.commit(commit_of(state, timers_armed=arms))
    assert store.next_due() == 10.0
    due = store.pop_due(25.0)
    assert [(t.timer_id, t.generation, t.due) for t in due] == [("a", 1, 10.0), ("b", 2, 20.0)]
    assert store.pop_due(25.0) == []
    assert store.next_due() == 30.0


def test_rearming_replaces_the_earlier_generation(store: Store) -> None:
    state = AccountState("acme", created=1.0)
    store.commit(commit_of(state, timers_armed=[TimerArm("t", 1, 10.0)]))
    store.commit(commit_of(state, timers_armed=[TimerArm("t", 2, 50.0)]))
    assert store.pop_due(20.0) == []
    [timer] = store.pop_due(60.0)
    assert (timer.generation, timer.due) == (2, 50.0)


def test_cancelled_timers_never_fire(store: Store) -> None:
    state = AccountState("acme", created=1.0)
    store.commit(commit_of(state, timers_armed=[TimerArm("t", 1, 10.0)]))
    store.commit(commit_of(state, timers_cancelled=[TimerCancel("t")]))
    assert store.pop_due(100.0) == []
    assert store.next_due() is None


def test_outbox_takes_live_delivered_actions_once(store: Store) -> None:
    state = AccountState("acme", created=1.0)
    actions = [action("k1"), action("k2", mode="dry_run"), action("k3", kind="set_flag")]
    store.commit(commit_of(state, actions=actions))
    store.commit(commit_of(state, actions=[action("k1")]))
    assert [a.key for a in store.pending_actions()] == ["k1"]


def test_delivered_actions_leave_the_outbox_and_are_not_readded(store: Store) -> None:
    state = AccountState("acme", created=1.0)
    store.commit(commit_of(state, actions=[action("k1")]))
    store.mark_delivered("k1", "250 OK")
    assert store.pending_actions() == []
    assert store.delivery("k1") == "250 OK"
    store.commit(commit_of(state, actions=[action("k1")]))
    assert store.pending_actions() == []


def test_message_ids_are_remembered(store: Store) -> None:
    assert store.remember_message("m1") is True
    assert store.remember_message("m1") is False
    assert store.remember_message("m2") is True


def test_tasks_open_complete_and_filter(store: Store) -> None:
    store.save_task({"task_id": "t1", "title": "Call Acme", "account": "acme"})
    store.save_task({"task_id": "t1", "title": "changed"})
    store.save_task({"task_id": "t2", "title": "QBR", "account": "acme"})
    assert [t["title"] for t in store.tasks(status="open")] == ["Call Acme", "QBR"]
    done = store.complete_task("t1", at=500.0)
    assert done is not None and done["status"] == "done"
    assert [t["task_id"] for t in store.tasks(status="open")] == ["t2"]
    assert [t["task_id"] for t in store.tasks(status="done")] == ["t1"]
    assert store.complete_task("missing", at=1.0) is None
