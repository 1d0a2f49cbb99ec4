"""Every trigger kind the core knows: event, call, stage_entered/exited, inactivity, date,
schedule (threshold crossings are in test_apply_thresholds.py)."""

from __future__ import annotations

import itertools
from pathlib import Path

from corekit import DAY, HOUR, T0, Driver, at, build, group, identify, reasons, track

from engine.core.apply import apply, new_account


def playbook(pid: str, trigger: str, actions: str = "- set_flag: hit", **extra: str) -> str:
    more = "\n".join(f"{k}: {v}" for k, v in extra.items())
    return f"""
kind: playbook
id: {pid}
name: {pid}
journey: life
{more}
triggers:
{trigger}
actions:
{actions}
"""


# -- event and call ------------------------------------------------------------------------


def test_event_trigger_fires_only_when_its_filter_holds(tmp_path: Path) -> None:
    pset = build(
        tmp_path,
        playbook(
            "detractor",
            "  - event: nps_submitted\n    filter: event.properties.score <= 6",
            "- set_trait: {name: nps, value: 0}\n- set_flag: detractor",
        ),
    )
    d = Driver(pset)
    high = d.apply(track("nps_submitted", T0, score=9))
    assert high.actions == []
    assert "detractor" not in d.state.flags
    assert any(r.startswith("filter false") for r in reasons(high.near_misses))
    low = d.apply(track("nps_submitted", T0 + 1, score=3))
    assert [a.type for a in low.actions] == ["set_trait", "set_flag"]
    assert d.state.flag_set("detractor", d.now)
    assert d.state.books["detractor"].fired == 1


def test_event_trigger_ignores_other_events(tmp_path: Path) -> None:
    pset = build(tmp_path, playbook("p", "  - event: report_created"))
    d = Driver(pset)
    assert d.apply(track("login", T0)).actions == []
    assert len(d.apply(track("report_created", T0 + 1)).actions) == 1


def test_call_triggers_fire_on_identify_and_group(tmp_path: Path) -> None:
    pset = build(
        tmp_path,
        playbook(
            "left",
            "  - call: identify\n    filter: event.traits.active == false",
            "- set_flag: champion_left",
        ),
        playbook(
            "seats",
            "  - call: group\n    filter: has(event.traits.seats)",
            "- set_flag: seats_changed",
        ),
    )
    d = Driver(pset)
    d.apply(identify("u1", T0, email="a@acme.io", role="champion"))
    assert d.state.flags == {}
    d.apply(group(T0 + 1, name="Acme"))
    assert d.state.flags == {}
    d.apply(group(T0 + 2, seats=10))
    assert "seats_changed" in d.state.flags
    d.apply(identify("u1", T0 + 3, active=False))
    assert "champion_left" in d.state.flags
    assert d.state.contacts["u1"].active is False
    assert d.state.traits["seats"] == 10


# -- stages --------------------------------------------------------------------------------


def test_stage_entered_and_exited_fire_on_transitions(tmp_path: Path) -> None:
    pset = build(
        tmp_path,
        playbook("in", "  - stage_entered: onboarding", "- set_flag: entered"),
        playbook("out", "  - stage_exited: onboarding", "- set_flag: exited"),
        playbook("renewal", "  - stage_entered: not_due\n    track: renewal", "- set_flag: nd"),
    )
    d = Driver(pset)
    d.apply(track("signed_up", T0))
    assert d.state.flags == {}
    e = d.apply(track("kickoff", T0 + 1))
    assert set(d.state.flags) == {"entered", "nd"}
    assert {(c.track, c.to_stage) for c in e.stage_changes} == {
        ("life.lifecycle", "onboarding"),
        ("life.renewal", "not_due"),
    }
    d.apply(track("integrated", T0 + 2))
    assert d.stage() == "adoption"
    assert "exited" in d.state.flags


def test_move_stage_action_fires_stage_triggers(tmp_path: Path) -> None:
    pset = build(
        tmp_path,
        playbook("flag", "  - event: risk_seen", "- move_stage: {track: renewal, stage: at_risk}"),
        playbook("react", "  - stage_entered: at_risk\n    track: renewal", "- set_flag: risky"),
    )
    d = Driver(pset)
    d.send(track("signed_up", T0), track("kickoff", T0 + 1), track("risk_seen", T0 + 2))
    assert d.stage("life.renewal") == "at_risk"
    assert d.stage() == "onboarding"
    assert "risky" in d.state.flags
    assert d.stage_changes()[-1].cause == "playbook flag"


# -- inactivity ----------------------------------------------------------------------------

INACTIVE = "  - inactivity: {events: [integrated, step_done], for: 14d, in_stage: onboarding}"


def test_inactivity_in_stage_fires_once_per_quiet_period(tmp_path: Path) -> None:
    d = Driver(build(tmp_path, playbook("stalled", INACTIVE, "- set_flag: stalled")))
    d.send(track("signed_up", T0), track("kickoff", T0 + HOUR))
    assert d.state.timers["trg:stalled:0"].due == T0 + HOUR + 14 * DAY
    d.run_until(T0 + 100 * DAY)
    assert d.fired_at("trg:stalled") == [T0 + HOUR + 14 * DAY]
    assert len(d.actions("stalled")) == 1
    assert "trg:stalled:0" not in d.state.timers
    # a progress event starts a new quiet period, which fires once more
    d.apply(track("step_done", T0 + 101 * DAY))
    assert d.state.timers["trg:stalled:0"].due == T0 + 115 * DAY
    d.run_until(T0 + 200 * DAY)
    assert d.fired_at("trg:stalled") == [T0 + HOUR + 14 * DAY, T0 + 115 * DAY]
    assert len(d.actions("stalled")) == 2


def test_inactivity_is_reset_by_a_progress_event(tmp_path: Path) -> None:
    d = Driver(build(tmp_path, playbook("stalled", INACTIVE, "- set_flag: stalled")))
    d.send(track("signed_up", T0), track("kickoff", T0))
    for day in (10, 20, 30):
        d.apply(track("step_done", T0 + day * DAY))
    d.run_until(T0 + 43 * DAY)
    assert d.actions("stalled") == []
    assert d.state.timers["trg:stalled:0"].due == T0 + 44 * DAY
    d.run_until(T0 + 44 * DAY)
    assert len(d.actions("stalled")) == 1
    # other events do not reset the clock
    d2 = Driver(d.pset)
    d2.send(track("signed_up", T0), track("kickoff", T0), track("login", T0 + 10 * DAY))
    d2.run_until(T0 + 14 * DAY)
    assert len(d2.actions("stalled")) == 1


def test_a_late_progress_event_does_not_pull_the_deadline_earlier(tmp_path: Path) -> None:
    trigger = "  - inactivity: {events: [step_done], for: 14d}"
    d = Driver(build(tmp_path, playbook("quiet", trigger, "- set_flag: quiet")))
    d.apply(group(T0, name="Acme"))
    d.apply(track("step_done", T0 + 10 * DAY))
    d.apply(track("step_done", T0 + 2 * DAY), now=T0 + 11 * DAY)  # arrives 9 days late
    assert d.state.timers["trg:quiet:0"].due == T0 + 24 * DAY
    d.run_until(T0 + 30 * DAY)
    assert [a.at for a in d.actions("quiet")] == [T0 + 24 * DAY]


def test_inactivity_in_stage_only_runs_while_in_that_stage(tmp_path: Path) -> None:
    d = Driver(build(tmp_path, playbook("stalled", INACTIVE, "- set_flag: stalled")))
    d.apply(track("signed_up", T0))
    assert "trg:stalled:0" not in d.state.timers
    d.apply(track("kickoff", T0 + DAY))
    assert "trg:stalled:0" in d.state.timers
    e = d.apply(track("integrated", T0 + 5 * DAY))  # leaves onboarding
    assert "trg:stalled:0" not in d.state.timers
    assert any(c.timer_id == "trg:stalled:0" for c in e.timers_cancelled)
    d.run_until(T0 + 60 * DAY)
    assert d.actions("stalled") == []


def test_inactivity_without_stage_counts_from_first_sight(tmp_path: Path) -> None:
    trigger = "  - inactivity: {events: [login], for: 7d}"
    d = Driver(build(tmp_path, playbook("quiet", trigger, "- set_flag: quiet")))
    d.apply(group(T0 + HOUR, name="Acme"))
    assert d.state.timers["trg:quiet:0"].due == T0 + HOUR + 7 * DAY
    d.apply(track("login", T0 + 3 * DAY))
    d.run_until(T0 + 9 * DAY)
    assert d.actions("quiet") == []
    d.run_until(T0 + 10 * DAY)
    assert [a.at for a in d.actions("quiet")] == [T0 + 10 * DAY]


# -- date ----------------------------------------------------------------------------------


def date_playbook(trigger: str) -> str:
    return playbook("renewal", f"  - date: {trigger}", "- set_flag: renewal_soon")


def test_date_before_fires_at_local_time_in_the_account_time_zone(tmp_path: Path) -> None:
    pset = build(tmp_path, date_playbook('{trait: renewal_date, before: 30d, at: "09:00"}'))
    d = Driver(pset)
    d.apply(group(T0, timezone="Europe/Paris", renewal_date="2026-04-30"))
    # 31 March 2026 09:00 in Paris (CEST, UTC+2)
    due = at("2026-03-31T07:00:00Z")
    assert d.state.timers["trg:renewal:0"].due == due
    d.run_until(due - 1)
    assert d.actions("renewal") == []
    d.run_until(due + 365 * DAY)
    assert [a.at for a in d.actions("renewal")] == [due]


def test_date_offset_keeps_the_local_hour_across_a_dst_change(tmp_path: Path) -> None:
    pset = build(tmp_path, date_playbook('{trait: renewal_date, before: 30d, at: "09:00"}'))
    d = Driver(pset)
    # the renewal falls in EST (UTC-5); thirty days earlier New York is on EDT (UTC-4)
    d.apply(group(T0, timezone="America/New_York", renewal_date="2026-11-16"))
    assert d.state.timers["trg:renewal:0"].due == at("2026-10-17T09:00:00-04:00")


def test_date_after_and_on_the_day(tmp_path: Path) -> None:
    after = build(tmp_path / "a", date_playbook('{trait: renewal_date, after: 7d, at: "10:30"}'))
    on_day = build(tmp_path / "b", date_playbook("{trait: renewal_date}"))
    state = new_account("acme", T0)
    apply(state, group(T0, renewal_date="2026-02-02"), T0, after)
    assert state.timers["trg:renewal:0"].due == at("2026-02-09T10:30:00Z")
    state = new_account("acme", T0)
    apply(state, group(T0, renewal_date="2026-02-02"), T0, on_day)
    assert state.timers["trg:renewal:0"].due == at("2026-02-02T09:00:00Z")


def test_date_trigger_fires_once_and_rearms_when_the_date_changes(tmp_path: Path) -> None:
    d = Driver(build(tmp_path, date_playbook("{trait: renewal_date, before: 10d}")))
    d.apply(group(T0, renewal_date="2026-02-01"))
    d.run_until(T0 + 60 * DAY)
    assert len(d.actions("renewal")) == 1
    assert "trg:renewal:0" not in d.state.timers
    d.apply(group(T0 + 61 * DAY, name="Acme"))  # unrelated change: no re-arm
    assert "trg:renewal:0" not in d.state.timers
    d.apply(group(T0 + 62 * DAY, renewal_date="2027-02-01"))  # renewed: next year's date
    assert d.state.timers["trg:renewal:0"].due == at("2027-01-22T09:00:00Z")
    d.run_until(at("2027-06-01T00:00:00Z"))
    assert len(d.actions("renewal")) == 2
    assert len({a.key for a in d.actions("renewal")}) == 2


def test_date_in_the_past_does_not_fire(tmp_path: Path) -> None:
    d = Driver(build(tmp_path, date_playbook("{trait: renewal_date, before: 10d}")))
    d.apply(group(T0, renewal_date="2026-01-10"))  # ten days before is already gone
    assert "trg:renewal:0" not in d.state.timers
    d.run_until(T0 + 30 * DAY)
    assert d.actions("renewal") == []


# -- schedule ------------------------------------------------------------------------------


def test_schedule_fires_on_each_tick_in_its_time_zone(tmp_path: Path) -> None:
    trigger = '  - schedule: {cron: "0 9 * * MON", timezone: America/New_York}'
    d = Driver(build(tmp_path, playbook("weekly", trigger, "- set_flag: weekly")))
    d.apply(group(T0, name="Acme"))
    assert d.state.timers["trg:weekly:0"].due == at("2026-01-05T09:00:00-05:00")
    d.run_until(at("2026-03-17T00:00:00Z"))
    ticks = d.fired_at("trg:weekly")
    assert len(ticks) == 11  # every Monday from 5 January to 16 March
    assert ticks[0] == at("2026-01-05T14:00:00Z")
    assert at("2026-03-09T13:00:00Z") in ticks  # 09:00 EDT after the DST change
    assert all(b - a in (7 * DAY, 7 * DAY - HOUR) for a, b in itertools.pairwise(ticks))
    assert len(d.actions("weekly")) == 11
    assert len({a.key for a in d.actions("weekly")}) == 11
    assert d.state.timers["trg:weekly:0"].due == at("2026-03-23T13:00:00Z")
