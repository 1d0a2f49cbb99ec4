"""Loading a playbook set: all or nothing, every problem with file and line, indexes by
trigger, versions retained for runs in flight."""

from __future__ import annotations

from pathlib import Path

import pytest
from corekit import JOURNEY, SHIPPED, build, load, write_set, yaml

from engine.core.loader import load_playbook_set


def pb(pid: str = "p", *, more: str = "", trigger: str = "{event: x}", body: str = "") -> str:
    body = body or "actions: [{set_flag: y}]"
    return f"kind: playbook\nid: {pid}\nname: {pid}\n{more}\ntriggers:\n  - {trigger}\n{body}\n"


def messages(root: Path, *playbooks: str, **kw: object) -> list[str]:
    result = load(write_set(root, *playbooks, **kw))  # type: ignore[arg-type]
    assert result.pset is None
    assert result.problems == sorted(set(result.problems))
    return [p.message for p in result.problems]


# -- the shipped set -----------------------------------------------------------------------


def test_shipped_set_loads_and_is_indexed_by_trigger() -> None:
    result = load_playbook_set([SHIPPED])
    assert result.ok and result.pset is not None
    pset = result.pset
    assert result.files == sorted(SHIPPED.rglob("*.yaml"))
    assert set(pset.journeys) == {"flywheel", "hourglass"}
    assert {"onboarding-stalled", "renewal-cadence", "health-red", "churned"} <= set(pset.by_id)
    priorities = [p.spec.priority for p in pset.playbooks]
    assert priorities == sorted(priorities, reverse=True)
    assert [p.id for p, _ in pset.on_event["nps_submitted"]] == [
        "nps-detractor",
        "nps-promoter-review",
    ]
    assert {p.id for p, _ in pset.on_call["identify"]} >= {"champion-left"}
    assert {p.id for p, _ in pset.on_stage[("entered", "flywheel.lifecycle", "churned")]} == {
        "churned"
    }
    assert {p.id for p, _ in pset.thresholds} >= {"health-red", "usage-drop"}
    assert {p.id for p, _ in pset.timed} >= {"onboarding-stalled", "renewal-cadence"}
    assert "integration_connected" in pset.inactivity_events
    assert len(pset.transitions["subscription_started"]) == 3
    assert pset.version_of("churned", 1) is pset.by_id["churned"]


def test_digest_is_stable_and_follows_the_content(tmp_path: Path) -> None:
    first = build(tmp_path / "a", pb()).digest
    assert build(tmp_path / "b", pb()).digest == first
    assert build(tmp_path / "c", pb(more="priority: 3")).digest != first
    assert len(first) == 16


# -- all or nothing ------------------------------------------------------------------------


def test_one_bad_playbook_stops_the_whole_set(tmp_path: Path) -> None:
    result = load(write_set(tmp_path, pb("good"), pb("bad", more="cooldown: later")))
    assert result.pset is None and not result.ok
    assert len(result.problems) == 1
    problem = result.problems[0]
    assert (Path(problem.file).name, problem.line) == ("pb_1.yaml", 4)
    assert str(problem).startswith(f"{problem.file}:4: cooldown: invalid duration 'later'")


def test_a_document_that_is_not_a_mapping(tmp_path: Path) -> None:
    assert messages(tmp_path, "- just\n- a list\n") == ["expected a mapping with a 'kind' field"]


def test_only_one_schema_and_one_destinations(tmp_path: Path) -> None:
    root = write_set(tmp_path, pb())
    (root / "more.yaml").write_text("kind: account\n---\nkind: destinations\n")
    result = load(root)
    assert {p.message for p in result.problems} == {
        "only one account schema may be loaded",
        "only one destinations document may be loaded",
    }


def test_duplicate_journey_id(tmp_path: Path) -> None:
    root = write_set(tmp_path, pb())
    (root / "again.yaml").write_text(yaml(JOURNEY))
    msgs = [p.message for p in load(root).problems]
    assert msgs == ["id: journey 'life' is defined twice"]


# -- journeys and tracks -------------------------------------------------------------------


def test_the_only_journey_is_the_default(tmp_path: Path) -> None:
    pset = build(tmp_path, pb(trigger="stage_entered: onboarding"))
    assert pset.by_id["p"].journey == "life"
    assert ("entered", "life.lifecycle", "onboarding") in pset.on_stage


def test_stages_need_a_journey_when_several_are_loaded(tmp_path: Path) -> None:
    root = write_set(tmp_path, pb(trigger="stage_entered: onboarding"))
    (root / "second.yaml").write_text(yaml(JOURNEY).replace("id: life", "id: other"))
    msgs = [p.message for p in load(root).problems]
    assert msgs == ["triggers[0].stage_entered: name the playbook's 'journey' to use stages"]


def test_unknown_journey_and_track(tmp_path: Path) -> None:
    assert messages(tmp_path / "a", pb(more="journey: flywheel")) == [
        "journey: unknown journey 'flywheel' (life)"
    ]
    assert messages(tmp_path / "b", pb(more="track: risk")) == [
        "track: unknown track 'risk' (tracks: lifecycle, renewal)"
    ]


# -- what is checked against the schema ----------------------------------------------------


def test_without_a_schema_no_trait_can_be_named(tmp_path: Path) -> None:
    msgs = messages(tmp_path, pb(more="conditions: [account.traits.plan == 'x']"), schema=None)
    assert len(msgs) == 1 and "unknown field 'account.traits.plan'" in msgs[0]


def test_recipients_must_be_roles_or_declared_owners(tmp_path: Path) -> None:
    email = "actions: [{email: {to: cfo, subject: s, body: b}}]"
    assert messages(tmp_path, pb(body=email)) == [
        "actions[0].email.to: 'cfo': expected a contact role (champion, decision_maker, admin, "
        "billing, user) or an owner with a declared 'cfo_email' trait"
    ]


def test_health_trigger_needs_health_components(tmp_path: Path) -> None:
    no_health = "kind: account\ntraits: {name: string}\n"
    msgs = messages(tmp_path, pb(trigger="health: {band: red}"), schema=no_health)
    assert msgs == ["triggers[0].health: the account schema declares no health components"]


def test_template_files_cannot_escape_the_templates_folder(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("top secret")
    body = "actions: [{email: {to: champion, subject: s, template: ../secret.txt}}]"
    msgs = messages(tmp_path / "set", pb(body=body), templates={"ok.txt": "fine"})
    assert len(msgs) == 1 and "template '../secret.txt' not found" in msgs[0]


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        ("{stage_entered: onboarding, filter: 'true'}", "filter only applies to event and call"),
        ("{event: x, track: renewal}", "track only applies to stage_entered and stage_exited"),
        ("{event: x, call: group}", "a trigger needs exactly one of"),
        ("{metric: {name: logins_7d, below: 1, above: 3}}", "a threshold needs exactly one of"),
        ("{metric: {name: logins_7d, band: red}}", "'band' only applies to health triggers"),
        ("{metric: {below: 1}}", "metric: needs 'name'"),
        ("{date: {trait: renewal_date, before: 1d, after: 1d}}", "give 'before' or 'after'"),
        ("{date: {trait: renewal_date, at: '9am'}}", "String should match pattern"),
    ],
)
def test_trigger_shapes(tmp_path: Path, trigger: str, expected: str) -> None:
    msgs = messages(tmp_path, pb(trigger=trigger))
    assert len(msgs) == 1 and expected in msgs[0], msgs


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ("[{wait: 1d, then: [{set_flag: x}]}]", "then/else only belong to an 'if' step"),
        ("[{if: 'true'}]", "an 'if' step needs 'then' or 'else' actions"),
        ("[{wait: 1d, exit_if: 'true'}]", "a step needs exactly one of"),
        ("[{exit_if: 'account.traits.nope'}]", "unknown field 'account.traits.nope'"),
    ],
)
def test_step_shapes(tmp_path: Path, steps: str, expected: str) -> None:
    msgs = messages(tmp_path, pb(body=f"steps: {steps}"))
    assert len(msgs) == 1 and expected in msgs[0], msgs


def test_schema_shapes(tmp_path: Path) -> None:
    bad = """
kind: account
timezone_trait: tz
traits: {tz: string}
metrics:
  m: {kind: count, event: login, window: 2 business days}
"""
    msgs = messages(tmp_path, pb(), schema=bad)
    joined = " ".join(msgs)
    assert "business days are not supported for metric windows" in joined


# -- versions ------------------------------------------------------------------------------


def test_retained_versions_survive_a_reload(tmp_path: Path) -> None:
    v1 = build(tmp_path / "a", pb(more="version: 1"))
    v2 = build(tmp_path / "b", pb(more="version: 2"), retained=v1.retained)
    assert v2.by_id["p"].version == 2
    assert v2.version_of("p", 1) is v1.by_id["p"]
    assert v2.version_of("p", 2) is v2.by_id["p"]
    v3 = build(tmp_path / "c", pb(more="version: 3"))
    assert v3.version_of("p", 1) is None


def test_disabled_playbooks_are_loaded_but_not_indexed(tmp_path: Path) -> None:
    pset = build(tmp_path, pb(more="mode: disabled"))
    assert "p" in pset.by_id
    assert pset.on_event.get("x", []) == []


def test_only_email_templates_may_name_the_recipient(tmp_path: Path) -> None:
    from engine.core.loader import load_playbook_set

    schema = "kind: account\ntraits: {csm_email: email}\n"
    playbook = """kind: playbook
id: p
name: p
triggers: [{event: x}]
actions:
  - email: {to: champion, subject: "Hi {{ recipient.name }}", body: "Hello {{ recipient.name }}"}
  - task: {title: "Call {{ recipient.name }}"}
"""
    (tmp_path / "account.yaml").write_text(schema)
    (tmp_path / "p.yaml").write_text(playbook)
    problems = [str(p) for p in load_playbook_set([tmp_path]).problems]
    assert len(problems) == 1
    assert "actions[1].task.title" in problems[0] and "recipient" in problems[0]
