"""Metric and health threshold crossings, caused by an event or by time passing alone."""

from __future__ import annotations

from pathlib import Path

from corekit import DAY, HOUR, T0, Driver, build, group, track


def crossing(pid: str, trigger: str, flag: str = "hit") -> str:
    return f"""
kind: playbook
id: {pid}
name: {pid}
journey: life
triggers:
  - {trigger}
actions:
  - set_flag: {flag}
"""


def logins(d: Driver, *times: float) -> None:
    for ts in times:
        d.apply(track("login", ts))


def test_metric_crossing_caused_by_an_event(tmp_path: Path) -> None:
    d = Driver(build(tmp_path, crossing("busy", "metric: {name: logins_7d, above: 3}")))
    logins(d, T0, T0 + 1, T0 + 2)
    assert d.actions("busy") == []
    e = d.apply(track("login", T0 + 3))
    assert [a.type for a in e.actions] == ["set_flag"]
    logins(d, T0 + 4, T0 + 5)  # still above: not a new crossing
    assert len(d.actions("busy")) == 1
    assert d.state.books["busy"].marks == {0: 1.0}


def test_a_crossing_needs_an_earlier_observation_on_the_other_side(tmp_path: Path) -> None:
    d = Driver(build(tmp_path, crossing("quiet", "metric: {name: logins_7d, below: 2}")))
    d.apply(group(T0, name="Acme"))  # 0 logins from the start is not a drop
    d.run_until(T0 + 30 * DAY)
    assert d.actions("quiet") == []
    assert d.state.books["quiet"].marks == {0: 1.0}


def test_metric_crossing_caused_by_time_alone(tmp_path: Path) -> None:
    d = Driver(build(tmp_path, crossing("quiet", "metric: {name: logins_7d, below: 2}")))
    logins(d, T0 + HOUR, T0 + 2 * HOUR, T0 + 2 * DAY)
    assert d.state.books["quiet"].marks == {0: 0.0}
    # the two day-0 logins leave the 7-day window at the end of day 7: 1 left, below 2
    assert d.state.timers["win"].due == T0 + 8 * DAY
    d.run_until(T0 + 8 * DAY - 1)
    assert d.actions("quiet") == []
    d.run_until(T0 + 30 * DAY)
    assert [a.at for a in d.actions("quiet")] == [T0 + 8 * DAY]
    assert d.fired_at("win") == [T0 + 8 * DAY, T0 + 10 * DAY]
    assert "win" not in d.state.timers  # nothing left in any window
    assert d.state.flag_set("hit", d.now)


def test_time_crossing_fires_again_after_a_recovery(tmp_path: Path) -> None:
    d = Driver(build(tmp_path, crossing("quiet", "metric: {name: logins_7d, below: 2}")))
    logins(d, T0, T0 + 1)
    d.run_until(T0 + 20 * DAY)
    logins(d, T0 + 21 * DAY, T0 + 21 * DAY + 1, T0 + 21 * DAY + 2)
    assert len(d.actions("quiet")) == 1
    d.run_until(T0 + 40 * DAY)
    assert [a.at for a in d.actions("quiet")] == [T0 + 8 * DAY, T0 + 29 * DAY]
    assert len({a.key for a in d.actions("quiet")}) == 2


def test_window_timer_only_when_a_threshold_watches_the_metric(tmp_path: Path) -> None:
    unwatched = build(tmp_path, crossing("x", "event: ping"), schema=SCHEMA_NO_HEALTH)
    d = Driver(unwatched)
    logins(d, T0)
    assert "win" not in d.state.timers


SCHEMA_NO_HEALTH = """
kind: account
metrics:
  logins_7d: {kind: count, event: login, window: 7d}
"""

SCHEMA_HEALTH = """
kind: account
traits:
  nps: integer
metrics:
  logins_7d: {kind: count, event: login, window: 7d}
health:
  components:
    - {name: usage, weight: 1, metric: logins_7d, good: 10, bad: 0}
    - {name: sentiment, weight: 1, trait: nps, good: 10, bad: 0}
  bands: {green: 70, yellow: 40}
"""


def test_health_band_crossing_caused_by_time(tmp_path: Path) -> None:
    pset = build(tmp_path, crossing("red", "health: {band: red}"), schema=SCHEMA_HEALTH)
    d = Driver(pset)
    d.apply(group(T0, nps=10))
    assert d.state.health == 50.0  # usage 0, sentiment 100
    logins(d, *(T0 + i for i in range(1, 9)))
    assert d.state.health == 90.0
    d.apply(group(T0 + DAY, nps=4))  # 80 + 40 -> 60: yellow, not red
    assert d.state.health == 60.0
    assert d.actions("red") == []
    d.run_until(T0 + 30 * DAY)  # the logins age out: usage 0, health 20
    assert d.state.health == 20.0
    assert [a.at for a in d.actions("red")] == [T0 + 8 * DAY]
    assert d.state.health_history[-1] == (T0 + 8 * DAY, 20.0)


def test_health_band_crossing_caused_by_an_event(tmp_path: Path) -> None:
    pset = build(
        tmp_path,
        crossing("yellow", "health: {band: yellow}", "yellow"),
        crossing("red", "health: {band: red}", "red"),
        schema=SCHEMA_HEALTH,
    )
    d = Driver(pset)
    d.apply(group(T0, nps=10))
    logins(d, *(T0 + i for i in range(1, 11)))
    assert d.state.health == 100.0
    d.apply(group(T0 + 20, nps=5))  # 100 + 50 -> 75, still green
    assert d.state.flags == {}
    d.apply(group(T0 + 30, nps=0))  # 50: yellow
    assert set(d.state.flags) == {"yellow"}
    d.apply(group(T0 + 40, nps=10))  # back to green: nothing fires
    assert len(d.actions()) == 1
    d.apply(group(T0 + 50, nps=0))  # yellow again: a new crossing
    assert len(d.actions("yellow")) == 2
    assert d.actions("red") == []


def test_health_threshold_below_a_score_and_adjustments_count(tmp_path: Path) -> None:
    adjust = """
kind: playbook
id: hit
name: hit
journey: life
triggers:
  - event: champion_left
actions:
  - adjust_health: {by: -30, reason: champion left, ttl: 10d}
"""
    pset = build(
        tmp_path,
        adjust,
        crossing("low", "health: {below: 40}", "low"),
        schema=SCHEMA_HEALTH,
    )
    d = Driver(pset)
    d.apply(group(T0, nps=6))
    logins(d, *(T0 + i for i in range(1, 7)))  # (60 + 60) / 2 = 60
    assert d.state.health == 60.0
    d.apply(track("champion_left", T0 + HOUR))  # 60 - 30 = 30 < 40
    assert d.state.health == 30.0
    assert d.state.flag_set("low", d.now)
    assert [a.playbook for a in d.actions()] == ["hit", "low"]
