"""Journeys as the core moves accounts through them: parallel tracks, entry at any
pre-purchase stage, skips, guarded back moves, terminal outcomes, and late events."""

from __future__ import annotations

from pathlib import Path

import pytest
from corekit import DAY, HOUR, JOURNEY, SHIPPED, T0, Driver, build, group, reasons, shipped, track

HOURGLASS = (SHIPPED / "journeys" / "hourglass.yaml").read_text()


# -- parallel tracks -----------------------------------------------------------------------


def test_onboarding_stall_moves_the_renewal_track_while_lifecycle_stays(tmp_path: Path) -> None:
    pset = shipped(
        tmp_path, "account.yaml", "destinations.yaml", "journeys/flywheel.yaml", "onboarding.yaml"
    )
    d = Driver(pset)
    d.apply(group(T0, name="Acme", segment="mid_market", csm_email="csm@vendor.io"))
    d.apply(track("subscription_started", T0 + HOUR))
    assert d.stage("flywheel.lifecycle") == "conversion"
    assert d.stage("flywheel.renewal") == "not_due"
    d.apply(track("kickoff_completed", T0 + DAY))
    d.run_until(T0 + 16 * DAY)
    assert d.stage("flywheel.lifecycle") == "onboarding"
    assert d.stage("flywheel.renewal") == "at_risk"
    assert d.state.flag_set("renewal_risk", d.now)
    tasks = d.actions("onboarding-stalled", "task")
    assert [a.at for a in tasks] == [T0 + 15 * DAY]
    assert "Onboarding stalled at Acme" in tasks[0].payload["title"]
    moved = [c for c in d.stage_changes() if c.track == "flywheel.renewal"]
    assert (moved[-1].from_stage, moved[-1].to_stage) == ("not_due", "at_risk")
    # the integration ends the sequence (its goal) and moves lifecycle on; renewal stays
    d.apply(track("integration_connected", T0 + 17 * DAY))
    assert d.stage("flywheel.lifecycle") == "adoption"
    assert d.stage("flywheel.renewal") == "at_risk"
    assert d.state.books["onboarding-stalled"].goals == 1
    assert "seq:onboarding-stalled" not in d.state.timers
    assert not d.state.flag_set("renewal_risk", d.now)  # onboarding-complete cleared it


# -- non-linear movement -------------------------------------------------------------------

ENTRY = [
    ("content_engaged", "engagement"),
    ("webinar_attended", "education"),
    ("pricing_viewed", "research"),
    ("trial_started", "evaluation"),
    ("roi_calculator_used", "justification"),
    ("contract_signed", "purchase"),
]


@pytest.mark.parametrize(("event", "stage"), ENTRY)
def test_hourglass_entry_at_any_pre_purchase_stage(tmp_path: Path, event: str, stage: str) -> None:
    d = Driver(build(tmp_path, journey=HOURGLASS))
    e = d.apply(track(event, T0))
    assert d.stage("hourglass.lifecycle") == stage
    assert [(c.from_stage, c.to_stage) for c in e.stage_changes] == [(None, stage)]


@pytest.mark.parametrize("event", ["first_value_reached", "renewal_signed", "review_left"])
def test_hourglass_no_entry_at_a_post_purchase_stage(tmp_path: Path, event: str) -> None:
    d = Driver(build(tmp_path, journey=HOURGLASS))
    assert d.apply(track(event, T0)).stage_changes == []
    assert d.state.tracks == {}


def test_hourglass_skips_stages_and_moves_back_only_where_allowed(tmp_path: Path) -> None:
    d = Driver(build(tmp_path, journey=HOURGLASS))
    stage = lambda: d.stage("hourglass.lifecycle")  # noqa: E731
    d.apply(track("content_engaged", T0))
    d.apply(track("demo_requested", T0 + 1))  # skips education and research
    assert stage() == "evaluation"
    d.apply(track("webinar_attended", T0 + 2))  # back to education: listed in back_to
    assert stage() == "education"
    d.apply(track("contract_signed", T0 + 3))  # a big skip forward
    assert stage() == "purchase"
    d.apply(track("pricing_viewed", T0 + 4))  # research is not in purchase's back_to
    assert stage() == "purchase"
    d.apply(track("business_case_requested", T0 + 5))  # justification is
    assert stage() == "justification"
    d.apply(track("contract_signed", T0 + 6))
    d.apply(track("first_value_reached", T0 + 7))
    assert stage() == "adoption"
    d.apply(track("content_engaged", T0 + 8))  # never back to pre-purchase from a customer
    assert stage() == "adoption"
    history = d.state.tracks["hourglass.lifecycle"].history
    assert [h.stage for h in history] == [
        "engagement",
        "evaluation",
        "education",
        "purchase",
        "justification",
        "purchase",
    ]


def test_transition_from_only_applies_from_those_stages(tmp_path: Path) -> None:
    d = Driver(build(tmp_path))
    d.apply(track("signed_up", T0))
    d.apply(track("integrated", T0 + 1))  # integrated: from [onboarding] only
    assert d.stage() == "lead"
    d.apply(track("kickoff", T0 + 2))
    d.apply(track("integrated", T0 + 3))
    assert d.stage() == "adoption"


# -- outcomes ------------------------------------------------------------------------------

BUSY = [
    """
kind: playbook
id: seq
name: seq
journey: life
triggers: [{event: start}]
steps:
  - actions: [{set_flag: started}]
  - wait: 30d
  - actions: [{set_flag: followed_up}]
""",
    """
kind: playbook
id: quiet
name: quiet
journey: life
triggers: [{inactivity: {events: [login], for: 14d}}]
actions: [{set_flag: quiet}]
""",
    """
kind: playbook
id: low
name: low
journey: life
triggers: [{metric: {name: logins_7d, below: 1}}]
actions: [{set_flag: low}]
""",
    """
kind: playbook
id: weekly
name: weekly
journey: life
triggers: [{schedule: {cron: "0 9 * * *"}}]
actions: [{set_flag: weekly}]
""",
]


def test_outcome_cancels_every_timer_and_ends_running_sequences(tmp_path: Path) -> None:
    d = Driver(build(tmp_path, *BUSY))
    d.send(track("signed_up", T0), track("login", T0 + 1), track("start", T0 + 2))
    assert set(d.state.timers) == {"seq:seq", "trg:quiet:0", "trg:weekly:0", "win"}
    assert d.state.books["seq"].run is not None
    e = d.apply(track("cancelled", T0 + HOUR))  # before the first 09:00 tick
    assert d.stage() == "churned"
    assert d.state.timers == {}
    assert e.timers_armed == []
    assert d.state.books["seq"].run is None
    assert any("entered outcome 'churned'" in r for r in reasons(e.near_misses))
    # still terminal after more events and time: nothing re-arms, nothing fires
    d.apply(track("login", T0 + 2 * DAY))
    d.run_until(T0 + 90 * DAY)
    assert d.state.timers == {}
    assert set(d.state.flags) == {"started"}


def test_outcomes_are_left_only_by_transitions_that_name_them(tmp_path: Path) -> None:
    d = Driver(build(tmp_path))
    d.send(track("signed_up", T0), track("kickoff", T0 + 1), track("cancelled", T0 + 2))
    for name in ("signed_up", "kickoff", "integrated", "renewal_opened"):
        d.apply(track(name, d.now + 1))
        assert d.stage() == "churned"
    lost = Driver(d.pset)
    lost.send(track("signed_up", T0), track("opp_lost", T0 + 1))
    assert lost.stage() == "lost"
    lost.apply(track("trial_started", T0 + 2))  # {to: trial, from: [lost]}
    assert lost.stage() == "trial"


# -- accounts pinned to one journey ----------------------------------------------------------

OTHER = """
kind: journey
id: other
name: Another journey
tracks:
  lifecycle:
    stages: [{id: start}]
    transitions: [{event: begun, to: start}]
"""


def scoped(pid: str, journey: str | None, trigger: str) -> str:
    on = f"journey: {journey}" if journey else ""
    return f"""
kind: playbook
id: {pid}
name: {pid}
{on}
triggers: [{trigger}]
actions: [{{set_flag: {pid}}}]
"""


SCOPED = [
    scoped("life-idle", "life", "{inactivity: {events: [report], for: 3d}}"),
    scoped("life-busy", "life", "{metric: {name: logins_7d, above: 1}}"),
    scoped("other-busy", "other", "{metric: {name: logins_7d, above: 1}}"),
    scoped("any-busy", None, "{metric: {name: logins_7d, above: 1}}"),
]


@pytest.mark.parametrize(
    ("pinned", "played", "timers"),
    [
        (None, {"life-busy", "other-busy", "any-busy"}, {"trg:life-idle:0", "win"}),
        ("life", {"life-busy", "any-busy"}, {"trg:life-idle:0", "win"}),
        ("other", {"other-busy", "any-busy"}, {"win"}),
        ("elsewhere", {"any-busy"}, {"win"}),
    ],
)
def test_playbooks_on_a_journey_leave_accounts_pinned_to_another_alone(
    tmp_path: Path, pinned: str | None, played: set[str], timers: set[str]
) -> None:
    d = Driver(build(tmp_path, *SCOPED, journey=JOURNEY + "---\n" + OTHER))
    if pinned:
        d.apply(group(T0, journey=pinned))
    d.send(track("login", T0 + 1), track("login", T0 + 2))  # 2 logins: over 1 on the second
    assert set(d.state.flags) == played
    assert set(d.state.books) == played  # no bookkeeping for the playbooks left alone
    assert set(d.state.timers) == timers
    d.run_until(T0 + 30 * DAY)
    assert set(d.state.flags) == played | ({"life-idle"} if "trg:life-idle:0" in timers else set())


# -- late events ---------------------------------------------------------------------------


def test_late_event_counts_in_metrics_at_its_own_time(tmp_path: Path) -> None:
    d = Driver(build(tmp_path))
    d.apply(track("login", T0 + 20 * DAY))
    d.apply(track("login", T0 + 10 * DAY), now=T0 + 20 * DAY)  # 10 days late
    d.apply(track("login", T0 + 17 * DAY), now=T0 + 20 * DAY)  # 3 days late
    view = d.state.metrics
    assert sum(view["logins_30d"].values()) == 3
    from engine.core.metrics import metric_values

    values = metric_values(d.state, d.pset.schema, T0 + 20 * DAY)
    assert values["logins_7d"] == 2  # the 10-day-old login is outside the 7-day window
    assert values["logins_30d"] == 3
    assert values["last_login"] == T0 + 20 * DAY  # a late event does not move "last seen"
    # the 3-day-late login leaves the window 7 days after its own day, not after arrival
    assert metric_values(d.state, d.pset.schema, T0 + 25 * DAY)["logins_7d"] == 1


def test_late_event_does_not_move_a_stage_backwards(tmp_path: Path) -> None:
    d = Driver(build(tmp_path))
    d.send(track("signed_up", T0), track("kickoff", T0 + DAY), track("integrated", T0 + 10 * DAY))
    assert d.stage() == "adoption"
    late = d.apply(track("kickoff", T0 + 5 * DAY), now=T0 + 11 * DAY)
    assert d.stage() == "adoption"
    assert late.stage_changes == []
    on_time = d.apply(track("kickoff", T0 + 12 * DAY))  # adoption may go back to onboarding
    assert d.stage() == "onboarding"
    assert on_time.stage_changes[0].from_stage == "adoption"


def test_late_event_still_moves_forward(tmp_path: Path) -> None:
    d = Driver(build(tmp_path))
    d.send(track("signed_up", T0), track("login", T0 + 10 * DAY))
    d.apply(track("kickoff", T0 + 5 * DAY), now=T0 + 10 * DAY)
    assert d.stage() == "onboarding"
    assert d.state.tracks["life.lifecycle"].entered == T0 + 10 * DAY


def test_a_manual_stage_override_moves_the_account_even_backwards() -> None:
    from engine.core.apply import STAGE_OVERRIDE, apply, new_account
    from engine.core.event import Event
    from engine.core.loader import load_playbook_set

    pset = load_playbook_set([SHIPPED]).pset
    assert pset is not None
    state = new_account("acme", 1000.0)

    def track(name: str, ts: float, **props: object) -> Event:
        return Event("track", f"{name}-{ts}", ts, account_id="acme", name=name, properties=props)

    apply(state, track("subscription_started", 1000.0), 1000.0, pset)
    apply(state, track("kickoff_completed", 2000.0), 2000.0, pset)
    assert state.tracks["flywheel.lifecycle"].stage == "onboarding"
    effects = apply(
        state,
        track(STAGE_OVERRIDE, 3000.0, track="flywheel.lifecycle", stage="consideration", by="ana"),
        3000.0,
        pset,
    )
    assert state.tracks["flywheel.lifecycle"].stage == "consideration"
    [change] = effects.stage_changes
    assert change.cause == "manual override by ana"
    refused = apply(
        state,
        track(STAGE_OVERRIDE, 4000.0, track="flywheel.lifecycle", stage="nowhere"),
        4000.0,
        pset,
    )
    assert refused.dropped == "stage override: unknown stage 'nowhere' on flywheel.lifecycle"
    assert state.tracks["flywheel.lifecycle"].stage == "consideration"
