"""Policy around a firing: conditions and near-misses, cooldown, cross-playbook ``unless``,
priority, dry run, comms hold and recipients."""

from __future__ import annotations

from pathlib import Path

from corekit import DAY, T0, Driver, build, group, identify, reasons, track


def pb(pid: str, body: str, *, on: str = "ping", priority: int = 0, extra: str = "") -> str:
    return f"""
kind: playbook
id: {pid}
name: {pid}
journey: life
priority: {priority}
triggers: [{{event: {on}}}]
{extra}
actions:
{body}
"""


# -- conditions and near-misses ------------------------------------------------------------


def test_near_miss_names_the_missing_path_then_the_false_condition(tmp_path: Path) -> None:
    extra = 'conditions:\n  - account.traits.segment == "enterprise"\n  - account.traits.seats > 10'
    d = Driver(build(tmp_path, pb("p", "  - set_flag: hit", extra=extra)))
    first = d.apply(track("ping", T0, mid="m1"))
    assert [(m.playbook, m.occurrence) for m in first.near_misses] == [("p", "m1")]
    assert reasons(first.near_misses) == ["missing value: account.traits.segment"]
    d.apply(group(T0 + 1, segment="smb", seats=20))
    second = d.apply(track("ping", T0 + 2))
    assert reasons(second.near_misses) == [
        'condition false: account.traits.segment == "enterprise"'
    ]
    d.apply(group(T0 + 3, segment="enterprise", seats=5))
    assert reasons(d.apply(track("ping", T0 + 4)).near_misses) == [
        "condition false: account.traits.seats > 10"
    ]
    d.apply(group(T0 + 5, seats=50))
    passed = d.apply(track("ping", T0 + 6))
    assert passed.near_misses == []
    assert [a.type for a in passed.actions] == ["set_flag"]
    assert d.state.books["p"].fired == 1


# -- cooldown ------------------------------------------------------------------------------


def test_cooldown_holds_a_playbook_back_until_it_has_passed(tmp_path: Path) -> None:
    d = Driver(build(tmp_path, pb("p", "  - set_flag: hit", extra="cooldown: 7d")))
    assert len(d.apply(track("ping", T0)).actions) == 1
    held = d.apply(track("ping", T0 + 3 * DAY))
    assert held.actions == []
    assert reasons(held.near_misses) == ["cooling down until 2026-01-12T00:00:00Z"]
    assert d.state.books["p"].last_fired == T0  # a near-miss does not restart the cooldown
    assert len(d.apply(track("ping", T0 + 7 * DAY)).actions) == 1
    assert d.state.books["p"].fired == 2


# -- unless and priority -------------------------------------------------------------------

STALL = pb("stall", '  - task: {title: "Call them", assignee: csm}', on="stalled")
PROMO = pb(
    "promo",
    "  - set_flag: asked_for_review",
    on="nps_high",
    extra='unless:\n  - account.open_tasks.exists(t, t.playbook == "stall")',
)


def test_unless_suppresses_while_another_playbook_has_an_open_task(tmp_path: Path) -> None:
    d = Driver(build(tmp_path, STALL, PROMO))
    d.apply(group(T0, csm_email="csm@vendor.io"))
    task = d.apply(track("stalled", T0 + 1)).actions[0]
    assert task.payload["assignee_email"] == "csm@vendor.io"
    assert list(d.state.tasks) == [task.key]
    held = d.apply(track("nps_high", T0 + 2))
    assert held.actions == []
    assert reasons(held.near_misses) == [
        'suppressed by unless: account.open_tasks.exists(t, t.playbook == "stall")'
    ]
    d.apply(track("task_completed", T0 + 3, task_id=task.key))
    assert d.state.tasks == {}
    assert [a.playbook for a in d.apply(track("nps_high", T0 + 4)).actions] == ["promo"]


def test_priority_orders_the_playbooks_one_event_fires(tmp_path: Path) -> None:
    guard = "unless:\n  - has(account.flags.handled)"
    pset = build(
        tmp_path,
        pb("a-low", "  - set_flag: low_ran", priority=1, extra=guard),
        pb("z-high", "  - set_flag: handled", priority=10),
        pb("m-mid", "  - set_trait: {name: plan, value: growth}", priority=5),
        pb("b-mid", "  - set_trait: {name: plan, value: starter}", priority=5),
    )
    d = Driver(pset)
    e = d.apply(track("ping", T0))
    assert [a.playbook for a in e.actions] == ["z-high", "b-mid", "m-mid"]
    assert d.state.traits["plan"] == "growth"  # equal priority: by id, so m-mid acts last
    assert "low_ran" not in d.state.flags
    assert reasons(e.near_misses) == ["suppressed by unless: has(account.flags.handled)"]


def test_a_lower_priority_runs_when_nothing_above_suppresses_it(tmp_path: Path) -> None:
    guard = "unless:\n  - has(account.flags.handled)"
    pset = build(
        tmp_path,
        pb("first", "  - set_flag: low_ran", priority=10, extra=guard),
        pb("second", "  - set_flag: handled", priority=1),
    )
    d = Driver(pset)
    assert [a.playbook for a in d.apply(track("ping", T0)).actions] == ["first", "second"]


def test_firings_caused_by_a_firing_take_their_turn_by_priority(tmp_path: Path) -> None:
    """The playbooks a stage change fires run before the queued ones of lower priority."""
    entered = "triggers: [{stage_entered: onboarding}, {stage_entered: onboarding}]"
    pset = build(
        tmp_path,
        pb("a-low", "  - set_flag: a", priority=1),
        pb("b-high", "  - move_stage: {stage: onboarding}", priority=5),
        pb("c-mid", "  - set_flag: c", priority=3).replace("triggers: [{event: ping}]", entered),
        pb("d-top", "  - set_flag: d", priority=9).replace("triggers: [{event: ping}]", entered),
    )
    d = Driver(pset)
    e = d.apply(track("ping", T0))
    # the stage playbooks fire twice each (two triggers), both ahead of lower priorities
    assert [a.playbook for a in e.actions] == [
        "b-high",
        "d-top",
        "d-top",
        "c-mid",
        "c-mid",
        "a-low",
    ]


# -- dry run -------------------------------------------------------------------------------

EVERYTHING = """
  - set_flag: risky
  - set_trait: {name: plan, value: enterprise}
  - move_stage: {track: renewal, stage: at_risk}
  - adjust_health: {by: -20}
  - task: {title: "Look at {{ account.traits.name }}", assignee: csm}
  - email: {to: champion, subject: "Hi {{ recipient.name }}", body: "Hello"}
"""


def test_dry_run_records_actions_but_changes_nothing(tmp_path: Path) -> None:
    dry = pb("p", EVERYTHING, extra="mode: dry_run")
    d = Driver(build(tmp_path, dry))
    d.send(
        group(T0, name="Acme", plan="starter", csm_email="csm@vendor.io"),
        identify("u1", T0, email="c@acme.io", role="champion", name="Cleo"),
        track("signed_up", T0),
        track("kickoff", T0 + 1),
    )
    before = d.state.to_dict()
    e = d.apply(track("ping", T0 + 2))
    assert [a.type for a in e.actions] == [
        "set_flag",
        "set_trait",
        "move_stage",
        "adjust_health",
        "task",
        "email",
    ]
    assert {a.mode for a in e.actions} == {"dry_run"}
    assert e.actions[4].payload["title"] == "Look at Acme"
    assert e.actions[5].payload["subject"] == "Hi Cleo"
    assert e.stage_changes == []
    assert d.state.flags == {}
    assert d.state.tasks == {}
    assert d.state.traits["plan"] == "starter"
    assert d.state.adjustments == []
    assert d.stage("life.renewal") == "not_due"
    after = d.state.to_dict()
    for key in ("s", "t", "f", "k", "ha", "p", "m"):
        assert after.get(key) == before.get(key), key


def test_live_mode_applies_the_same_actions(tmp_path: Path) -> None:
    d = Driver(build(tmp_path, pb("p", EVERYTHING)))
    d.send(
        group(T0, name="Acme", plan="starter", csm_email="csm@vendor.io"),
        identify("u1", T0, email="c@acme.io", role="champion"),
        track("signed_up", T0),
        track("kickoff", T0 + 1),
        track("ping", T0 + 2),
    )
    assert {a.mode for a in d.actions()} == {"live"}
    assert "risky" in d.state.flags
    assert len(d.state.tasks) == 1
    assert d.state.traits["plan"] == "enterprise"
    assert d.state.adjustments == [(-20.0, 0.0)]
    assert d.stage("life.renewal") == "at_risk"


def test_disabled_playbook_never_fires(tmp_path: Path) -> None:
    d = Driver(build(tmp_path, pb("p", "  - set_flag: hit", extra="mode: disabled")))
    e = d.apply(track("ping", T0))
    assert (e.actions, e.near_misses, d.state.flags) == ([], [], {})


# -- comms hold and recipients -------------------------------------------------------------

NOTIFY = pb(
    "notify",
    """
  - email: {to: champion, subject: "For the customer", body: "Hello {{ recipient.name }}"}
  - email: {to: csm, subject: "For the CSM", body: "FYI"}
  - task: {title: "Follow up", assignee: csm}
""",
)
HOLD = pb("hold", "  - set_flag: {name: comms_hold, ttl: 10d}", on="hold_requested")


def test_comms_hold_silences_customer_emails_but_not_csm_work(tmp_path: Path) -> None:
    d = Driver(build(tmp_path, NOTIFY, HOLD))
    d.send(
        group(T0, csm_email="csm@vendor.io"),
        identify("u1", T0, email="c@acme.io", role="champion", name="Cleo"),
        track("hold_requested", T0 + 1),
    )
    held = d.apply(track("ping", T0 + 2))
    assert [(a.type, a.payload.get("to")) for a in held.actions] == [
        ("email", "csm@vendor.io"),
        ("task", None),
    ]
    assert reasons(held.near_misses) == ["email at step 0.0: comms hold"]
    assert len(d.state.tasks) == 1
    after = d.apply(track("ping", T0 + 11 * DAY))  # the hold expired
    assert [a.payload.get("to") for a in after.actions if a.type == "email"] == [
        "c@acme.io",
        "csm@vendor.io",
    ]
    assert after.near_misses == []


def test_missing_recipients_are_near_misses_with_a_reason(tmp_path: Path) -> None:
    d = Driver(build(tmp_path, NOTIFY))
    e = d.apply(track("ping", T0))
    assert e.actions == []
    assert reasons(e.near_misses) == [
        "email at step 0.0 skipped: no active contact with role 'champion' and a deliverable email",
        "email at step 0.1 skipped: the account has no 'csm_email' trait",
        "task at step 0.2 skipped: the account has no 'csm_email' trait",
    ]


def test_bounced_or_inactive_champions_are_not_emailed(tmp_path: Path) -> None:
    d = Driver(build(tmp_path, NOTIFY))
    d.send(
        group(T0, csm_email="csm@vendor.io"),
        identify("u1", T0, email="old@acme.io", role="champion"),
        identify("u2", T0 + 1, email="gone@acme.io", role="champion", active=False),
        track("email_bounced", T0 + 2, email="old@acme.io"),
    )
    assert d.state.contacts["u1"].bounced
    e = d.apply(track("ping", T0 + 3))
    assert "no active contact with role 'champion'" in reasons(e.near_misses)[0]
    d.apply(identify("u3", T0 + 4, email="new@acme.io", role="champion"))
    e = d.apply(track("ping", T0 + 5))
    assert next(a.payload["to"] for a in e.actions if a.type == "email") == "new@acme.io"
