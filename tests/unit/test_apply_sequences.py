"""Sequences: waits (durations and business days), if/then/else, exit_if, exit_when events and
conditions, goals by event and by condition."""

from __future__ import annotations

from pathlib import Path

from corekit import DAY, HOUR, T0, Driver, at, build, group, reasons, track


def seq(steps: str, extra: str = "", pid: str = "seq") -> str:
    return f"""
kind: playbook
id: {pid}
name: {pid}
journey: life
triggers: [{{event: start}}]
{extra}
steps:
{steps}
"""


WAIT_3D = """
  - actions: [{set_flag: first}]
  - wait: 3d
  - actions: [{set_flag: second}]
"""


def flags_set(d: Driver) -> list[tuple[str, float]]:
    return [(a.payload["name"], a.at) for a in d.actions() if a.type == "set_flag"]


# -- waits ---------------------------------------------------------------------------------


def test_wait_resumes_the_sequence_when_its_timer_fires(tmp_path: Path) -> None:
    d = Driver(build(tmp_path, seq(WAIT_3D)))
    e = d.apply(track("start", T0 + HOUR))
    assert [a.step for a in e.actions] == ["0.0"]
    assert [(t.timer_id, t.due) for t in e.timers_armed] == [("seq:seq", T0 + HOUR + 3 * DAY)]
    run = d.state.books["seq"].run
    assert run is not None and run.step == 2
    d.run_until(T0 + 10 * DAY)
    assert flags_set(d) == [("first", T0 + HOUR), ("second", T0 + HOUR + 3 * DAY)]
    assert d.state.books["seq"].run is None  # no goal: the run ends with its last step
    assert "seq:seq" not in d.state.timers


def test_a_running_sequence_is_not_started_twice(tmp_path: Path) -> None:
    d = Driver(build(tmp_path, seq(WAIT_3D)))
    d.apply(track("start", T0))
    again = d.apply(track("start", T0 + DAY))
    assert again.actions == []
    assert reasons(again.near_misses) == ["already running since 2026-01-05T00:00:00Z"]
    d.run_until(T0 + 4 * DAY)
    assert len(d.actions()) == 2
    assert len(d.apply(track("start", T0 + 5 * DAY)).actions) == 1  # finished: may run again


def test_wait_in_business_days_skips_the_weekend(tmp_path: Path) -> None:
    steps = "  - wait: 2 business days\n  - actions: [{set_flag: done}]"
    d = Driver(build(tmp_path, seq(steps)))
    d.apply(track("start", at("2026-01-09T10:00:00Z")))  # a Friday
    assert d.state.timers["seq:seq"].due == at("2026-01-13T10:00:00Z")  # Tuesday
    d.run_until(at("2026-01-20T00:00:00Z"))
    assert flags_set(d) == [("done", at("2026-01-13T10:00:00Z"))]


def test_business_days_count_in_the_account_time_zone(tmp_path: Path) -> None:
    steps = "  - wait: 2 business days\n  - actions: [{set_flag: done}]"
    d = Driver(build(tmp_path, seq(steps)))
    d.apply(group(T0, timezone="America/New_York"))
    # Sunday 22:00 in New York is already Monday 03:00 UTC
    d.apply(track("start", at("2026-01-11T22:00:00-05:00")))
    assert d.state.timers["seq:seq"].due == at("2026-01-14T22:00:00-05:00")


# -- branches and exit_if ------------------------------------------------------------------

BRANCH = """
  - wait: 1d
  - if: account.traits.plan == "enterprise"
    then: [{set_flag: vip}]
    else: [{set_flag: standard}, {set_trait: {name: segment, value: smb}}]
  - actions: [{set_flag: after}]
"""


def test_if_then_else_is_decided_when_the_step_runs(tmp_path: Path) -> None:
    pset = build(tmp_path, seq(BRANCH))
    vip = Driver(pset)
    vip.send(group(T0, plan="starter"), track("start", T0))
    vip.apply(group(T0 + HOUR, plan="enterprise"))  # changes during the wait count
    vip.run_until(T0 + 2 * DAY)
    assert [a.step for a in vip.actions()] == ["1.then.0", "2.0"]
    assert set(vip.state.flags) == {"vip", "after"}
    standard = Driver(pset)
    standard.send(group(T0, plan="starter"), track("start", T0))
    standard.run_until(T0 + 2 * DAY)
    assert [a.step for a in standard.actions()] == ["1.else.0", "1.else.1", "2.0"]
    assert standard.state.traits["segment"] == "smb"


EXIT_IF = """
  - wait: 7d
  - exit_if: has(account.flags.detractor)
  - actions: [{set_flag: asked}]
"""


def test_exit_if_ends_the_sequence_when_its_condition_holds(tmp_path: Path) -> None:
    detractor = """
kind: playbook
id: nps
name: nps
journey: life
triggers: [{event: nps_low}]
actions: [{set_flag: detractor}]
"""
    pset = build(tmp_path, seq(EXIT_IF), detractor)
    d = Driver(pset)
    d.apply(track("start", T0))
    d.apply(track("nps_low", T0 + DAY))
    fired = d.run_until(T0 + 8 * DAY)
    assert d.actions("seq") == []
    assert reasons(fired.near_misses) == [
        "sequence ended: exit_if at step 1: has(account.flags.detractor)"
    ]
    assert d.state.books["seq"].run is None
    happy = Driver(pset)
    happy.apply(track("start", T0))
    happy.run_until(T0 + 8 * DAY)
    assert [a.step for a in happy.actions("seq")] == ["2.0"]


# -- exit_when -----------------------------------------------------------------------------


def test_exit_when_event_ends_the_run_and_cancels_its_wait(tmp_path: Path) -> None:
    d = Driver(build(tmp_path, seq(WAIT_3D, "exit_when: {events: [replied]}")))
    d.apply(track("start", T0))
    e = d.apply(track("replied", T0 + DAY))
    assert [c.timer_id for c in e.timers_cancelled] == ["seq:seq"]
    assert reasons(e.near_misses) == ["sequence ended: exit_when replied"]
    d.run_until(T0 + 10 * DAY)
    assert flags_set(d) == [("first", T0)]


def test_exit_when_condition_ends_the_run(tmp_path: Path) -> None:
    extra = "exit_when:\n  conditions: [account.traits.seats >= 10]"
    d = Driver(build(tmp_path, seq(WAIT_3D, extra)))
    d.send(group(T0, seats=3), track("start", T0))
    d.apply(group(T0 + HOUR, seats=5))
    assert d.state.books["seq"].run is not None
    e = d.apply(group(T0 + DAY, seats=12))
    assert reasons(e.near_misses) == ["sequence ended: exit_when condition"]
    assert d.state.books["seq"].run is None
    d.run_until(T0 + 10 * DAY)
    assert flags_set(d) == [("first", T0)]


# -- goals ---------------------------------------------------------------------------------


def test_goal_by_event_is_counted_and_ends_the_run(tmp_path: Path) -> None:
    extra = "goal: {event: integrated, within: 30d}"
    d = Driver(build(tmp_path, seq(WAIT_3D, extra)))
    d.apply(track("integrated", T0))  # before any run: not a goal
    d.apply(track("start", T0 + HOUR))
    d.run_until(T0 + 10 * DAY)
    assert flags_set(d)[-1][0] == "second"
    assert d.state.books["seq"].run is not None  # steps done, goal still open
    e = d.apply(track("integrated", T0 + 12 * DAY))
    assert d.state.books["seq"].goals == 1
    assert d.state.books["seq"].run is None
    assert reasons(e.near_misses) == ["sequence ended: goal reached"]


def test_goal_by_condition_mid_sequence(tmp_path: Path) -> None:
    extra = 'goal: {condition: account.traits.plan == "enterprise", within: 30d}'
    d = Driver(build(tmp_path, seq(WAIT_3D, extra)))
    d.send(group(T0, plan="starter"), track("start", T0))
    d.apply(group(T0 + DAY, plan="enterprise"))
    assert d.state.books["seq"].goals == 1
    assert "seq:seq" not in d.state.timers
    d.run_until(T0 + 10 * DAY)
    assert flags_set(d) == [("first", T0)]


def test_goal_window_passing_ends_the_run_without_a_goal(tmp_path: Path) -> None:
    extra = "goal: {event: integrated, within: 5d}"
    d = Driver(build(tmp_path, seq(WAIT_3D, extra)))
    d.apply(track("start", T0))
    d.run_until(T0 + 10 * DAY)
    e = d.apply(track("integrated", T0 + 10 * DAY))
    assert d.state.books["seq"].goals == 0
    assert d.state.books["seq"].run is None
    assert reasons(e.near_misses) == ["sequence ended: goal window passed"]
    # and the playbook may run again
    assert len(d.apply(track("start", T0 + 11 * DAY)).actions) == 1


def test_an_unknown_time_zone_trait_falls_back_to_utc(tmp_path: Path) -> None:
    steps = "  - wait: 2 business days\n  - actions: [{set_flag: done}]"
    d = Driver(build(tmp_path, seq(steps, "cooldown: 1d")))
    d.apply(group(T0, timezone="Mars/Olympus_Mons"))  # apps send anything
    d.apply(track("start", at("2026-01-09T10:00:00Z")))
    assert d.state.timers["seq:seq"].due == at("2026-01-13T10:00:00Z")
    d.run_until(at("2026-01-20T00:00:00Z"))
    assert flags_set(d) == [("done", at("2026-01-13T10:00:00Z"))]
