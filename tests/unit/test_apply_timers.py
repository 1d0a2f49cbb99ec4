"""Timer generations (stale firings are dropped), idempotency keys, and what a run in flight
does when the playbook set is reloaded with a new version (``on_change``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from corekit import DAY, HOUR, T0, Driver, build, group, reasons, timer_event, track

from engine.core.apply import apply, new_account
from engine.core.effects import idempotency_key
from engine.core.event import Event

STALL = """
kind: playbook
id: stall
name: stall
journey: life
triggers: [{inactivity: {events: [step_done], for: 14d}}]
actions: [{set_flag: stalled}]
"""


def versioned(version: int, on_change: str = "finish", subject: str = "first") -> str:
    return f"""
kind: playbook
id: cadence
name: cadence
journey: life
version: {version}
on_change: {on_change}
triggers: [{{event: start}}]
steps:
  - actions:
      - email: {{to: csm, subject: "v{version} {subject}", body: "hello"}}
  - wait: 1d
  - actions: [{{set_flag: v{version}_second}}]
  - actions: [{{set_trait: {{name: plan, value: growth}}}}]
"""


# -- stale timers --------------------------------------------------------------------------


def test_a_firing_of_an_earlier_generation_is_dropped(tmp_path: Path) -> None:
    d = Driver(build(tmp_path, STALL))
    d.apply(group(T0, name="Acme"))
    old = d.state.timers["trg:stall:0"]
    d.apply(track("step_done", T0 + 5 * DAY))  # re-armed: a new generation
    new = d.state.timers["trg:stall:0"]
    assert new.generation > old.generation
    assert new.due == T0 + 19 * DAY
    before = d.state.to_dict()
    e = apply(d.state, timer_event("trg:stall:0", old.generation, old.due), old.due, d.pset)
    assert e.dropped == f"stale timer trg:stall:0 generation {old.generation}"
    assert (e.actions, e.timers_armed, e.timers_cancelled, e.near_misses) == ([], [], [], [])
    assert e.stage_changes == []
    assert d.state.to_dict() == before
    # the live generation still fires, once
    d.run_until(T0 + 30 * DAY)
    assert [a.at for a in d.actions("stall")] == [T0 + 19 * DAY]


def test_a_firing_of_a_cancelled_or_unknown_timer_is_dropped(tmp_path: Path) -> None:
    pset = build(tmp_path, versioned(1))
    d = Driver(pset)
    d.send(group(T0, csm_email="csm@vendor.io"), track("signed_up", T0), track("start", T0))
    timer = d.state.timers["seq:cadence"]
    d.apply(track("cancelled", T0 + HOUR))  # churned: every timer cancelled
    assert d.state.timers == {}
    before = d.state.to_dict()
    e = apply(d.state, timer_event("seq:cadence", timer.generation, timer.due), timer.due, pset)
    assert e.dropped == f"stale timer seq:cadence generation {timer.generation}"
    assert (e.actions, e.timers_armed, e.near_misses) == ([], [], [])
    assert d.state.to_dict() == before
    e = apply(d.state, timer_event("trg:nope:0", 1, T0), T0 + DAY, pset)
    assert e.dropped == "stale timer trg:nope:0 generation 1"


def test_a_live_firing_is_not_dropped(tmp_path: Path) -> None:
    d = Driver(build(tmp_path, STALL))
    d.apply(group(T0, name="Acme"))
    timer = d.state.timers["trg:stall:0"]
    e = apply(d.state, timer_event("trg:stall:0", timer.generation, timer.due), timer.due, d.pset)
    assert e.dropped is None
    assert [a.type for a in e.actions] == ["set_flag"]
    assert "trg:stall:0" not in d.state.timers


# -- idempotency keys ----------------------------------------------------------------------


def keys_for(pset, mid: str, account: str = "acme") -> list[str]:  # type: ignore[no-untyped-def]
    state = new_account(account, T0)
    apply(state, Event("group", "g", T0, account, traits={"csm_email": "c@v.io"}), T0, pset)
    effects = apply(state, Event("track", mid, T0, account, name="start"), T0, pset)
    return [a.key for a in effects.actions]


def test_keys_are_stable_across_a_version_bump(tmp_path: Path) -> None:
    v1 = build(tmp_path / "v1", versioned(1))
    v2 = build(tmp_path / "v2", versioned(2, subject="rewritten"))
    first = keys_for(v1, "m1")
    assert len(first) == 1
    assert keys_for(v2, "m1") == first
    assert first == [idempotency_key("cadence", "acme", "m1", "0.0")]


def test_keys_differ_across_occurrences_steps_and_accounts(tmp_path: Path) -> None:
    pset = build(tmp_path, versioned(1))
    assert keys_for(pset, "m1") != keys_for(pset, "m2")
    assert keys_for(pset, "m1", "acme") != keys_for(pset, "m1", "globex")
    assert keys_for(pset, "m1") == keys_for(pset, "m1")  # a redelivery: the same key
    d = Driver(pset)
    d.send(group(T0, csm_email="c@v.io"), track("start", T0, mid="m1"))
    d.run_until(T0 + 2 * DAY)
    keys = [a.key for a in d.actions("cadence")]
    assert len(keys) == len(set(keys)) == 3
    # steps after a wait keep the occurrence of the event that started the run
    assert keys[1] == idempotency_key("cadence", "acme", "m1", "2.0")


def test_timer_occurrences_give_one_key_per_due_time(tmp_path: Path) -> None:
    date = """
kind: playbook
id: renewal
name: renewal
journey: life
triggers: [{date: {trait: renewal_date, before: 10d}}]
actions: [{set_flag: soon}]
"""
    d = Driver(build(tmp_path, date))
    d.apply(group(T0, renewal_date="2026-02-01"))
    d.run_until(T0 + 40 * DAY)
    d.apply(group(T0 + 41 * DAY, renewal_date="2026-03-01"))  # moved: a new occurrence
    d.apply(group(T0 + 42 * DAY, renewal_date="2026-03-01"))
    d.run_until(T0 + 90 * DAY)
    keys = [a.key for a in d.actions("renewal")]
    assert len(keys) == 2
    assert keys[0] != keys[1]


# -- on_change -----------------------------------------------------------------------------


def reload_mid_run(tmp_path: Path, policy: str) -> tuple[Driver, list[str]]:
    v1 = build(tmp_path / "v1", versioned(1, policy))
    d = Driver(v1)
    d.send(group(T0, csm_email="csm@vendor.io"), track("start", T0, mid="m1"))
    run = d.state.books["cadence"].run
    assert run is not None and run.version == 1
    v2 = build(tmp_path / "v2", versioned(2, policy), retained=v1.retained)
    assert set(v2.retained) == {("cadence", 1), ("cadence", 2)}
    d.pset = v2
    d.run_until(T0 + 2 * DAY)
    return d, [a.step for a in d.actions("cadence")]


def test_on_change_finish_completes_the_run_on_its_old_version(tmp_path: Path) -> None:
    d, steps = reload_mid_run(tmp_path, "finish")
    assert steps == ["0.0", "2.0", "3.0"]
    assert [a.version for a in d.actions("cadence")] == [1, 1, 1]
    assert "v1_second" in d.state.flags and "v2_second" not in d.state.flags


def test_on_change_migrate_continues_on_the_new_version(tmp_path: Path) -> None:
    d, steps = reload_mid_run(tmp_path, "migrate")
    assert steps == ["0.0", "2.0", "3.0"]
    assert [a.version for a in d.actions("cadence")] == [1, 2, 2]
    assert "v2_second" in d.state.flags and "v1_second" not in d.state.flags
    # the key of a step does not depend on the version that ran it
    assert d.actions("cadence")[1].key == idempotency_key("cadence", "acme", "m1", "2.0")


def test_on_change_exit_ends_the_run(tmp_path: Path) -> None:
    d, steps = reload_mid_run(tmp_path, "exit")
    assert steps == ["0.0"]
    assert d.state.books["cadence"].run is None
    assert "sequence ended: playbook changed to version 2" in reasons(d.misses("cadence"))


def test_a_new_run_after_the_reload_uses_the_new_version(tmp_path: Path) -> None:
    d, _ = reload_mid_run(tmp_path, "finish")
    e = d.apply(track("start", T0 + 3 * DAY))
    assert [(a.version, a.payload["subject"]) for a in e.actions] == [(2, "v2 first")]


def test_removing_a_playbook_ends_its_run_and_cancels_its_wait(tmp_path: Path) -> None:
    v1 = build(tmp_path / "v1", versioned(1))
    d = Driver(v1)
    d.send(group(T0, csm_email="csm@vendor.io"), track("start", T0))
    d.pset = build(tmp_path / "v2", STALL)
    e = d.apply(track("login", T0 + HOUR))
    assert "seq:cadence" not in d.state.timers
    assert d.state.books["cadence"].run is None
    assert reasons(e.near_misses) == ["sequence ended: playbook removed"]


@pytest.mark.parametrize("policy", ["finish", "migrate", "exit"])
def test_on_change_is_a_no_op_when_the_version_did_not_change(tmp_path: Path, policy: str) -> None:
    v1 = build(tmp_path / "a", versioned(1, policy))
    d = Driver(v1)
    d.send(group(T0, csm_email="csm@vendor.io"), track("start", T0))
    d.pset = build(tmp_path / "b", versioned(1, policy), retained=v1.retained)
    d.run_until(T0 + 2 * DAY)
    assert [a.step for a in d.actions("cadence")] == ["0.0", "2.0", "3.0"]
