"""``hourglass validate``: every kind of mistake is one ``file:line: message`` and exit 1,
never a traceback; the shipped playbooks validate cleanly."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest
from corekit import SHIPPED, yaml
from typer.testing import CliRunner

from engine.cli import app
from engine.core.loader import load_playbook_set

runner = CliRunner()


def base(root: Path) -> Path:
    """A valid set: the shipped schema, destinations, flywheel journey and templates."""
    for name in ("account.yaml", "destinations.yaml", "journeys/flywheel.yaml"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SHIPPED / name, root / name)
    shutil.copytree(SHIPPED / "templates", root / "templates")
    return root


def validate(*paths: Path) -> tuple[int, list[str], str]:
    result = runner.invoke(app, ["validate", *map(str, paths)])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    output = result.output
    assert "Traceback" not in output
    problems = [line for line in result.stderr.splitlines() if re.match(r"^.+:\d+: ", line)]
    return result.exit_code, problems, output


def only_problem(tmp_path: Path, text: str, name: str = "pb.yaml") -> str:
    """Validate the base set plus one file; the single problem, without the file prefix."""
    root = base(tmp_path)
    (root / name).write_text(yaml(text))
    code, problems, output = validate(root)
    assert code == 1, output
    assert len(problems) == 1, problems
    prefix = f"{root / name}:"
    assert problems[0].startswith(prefix), problems
    assert output.rstrip().endswith("1 problem(s) in 4 file(s)")
    return problems[0][len(prefix) :]


def playbook(*, trigger: str = "{event: x}", body: str = "actions: [{set_flag: y}]", more=""):
    return f"""
kind: playbook
id: p
name: P
journey: flywheel
{more}
triggers:
  - {trigger}
{body}
"""


# -- the shipped set -----------------------------------------------------------------------


def test_shipped_playbooks_validate() -> None:
    loaded = load_playbook_set([SHIPPED])
    assert loaded.pset is not None
    result = runner.invoke(app, ["validate", str(SHIPPED)])
    assert result.exit_code == 0, result.output
    pset = loaded.pset
    expected = (
        f"ok: {len(pset.journeys)} journey(s), {len(pset.playbooks)} playbook(s) "
        f"in {len(loaded.files)} file(s); set {pset.digest}"
    )
    assert result.stdout.strip() == expected
    assert len(pset.journeys) == 2 and len(pset.playbooks) >= 14
    assert result.stderr == ""


def test_a_valid_base_validates(tmp_path: Path) -> None:
    (base(tmp_path) / "pb.yaml").write_text(yaml(playbook()))
    code, problems, output = validate(tmp_path)
    assert (code, problems) == (0, [])
    assert "1 playbook(s)" in output


# -- one test per kind of mistake ----------------------------------------------------------


def test_yaml_syntax_error(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, "kind: playbook\nid: p\ntriggers: [{event: x}\nname: P\n")
    assert re.match(r"\d+: could not parse YAML: ", problem), problem


def test_unknown_kind(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, "kind: playbok\nid: p\n")
    assert problem == (
        "1: kind: expected one of journey, account, destinations, playbook, found 'playbok'"
    )


@pytest.mark.parametrize(
    ("more", "trigger", "expected"),
    [
        ("", '{event: x, filtr: "true"}', "7: triggers[0].filtr: unknown field"),
        ("conditons: [true]", "{event: x}", "5: conditons: unknown field"),
    ],
)
def test_unknown_field_is_a_typo(tmp_path: Path, more: str, trigger: str, expected: str) -> None:
    problem = only_problem(tmp_path, playbook(more=more, trigger=trigger))
    assert problem.startswith(expected), problem
    assert "check the spelling" in problem


def test_bad_duration(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, playbook(more="cooldown: 3 fortnights"))
    assert problem.startswith("5: cooldown: invalid duration '3 fortnights'"), problem


def test_bad_cel_syntax(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, playbook(more="conditions: ['account.traits.plan ==']"))
    assert problem.startswith("5: conditions[0]: invalid condition: <input>:1:"), problem
    assert "Syntax error" in problem


def test_unknown_cel_path_names_the_declared_traits(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, playbook(more="conditions: ['account.traits.pln == \"x\"']"))
    assert problem.startswith(
        "5: conditions[0]: invalid condition: unknown field 'account.traits.pln'"
    ), problem
    assert "plan" in problem


def test_unknown_stage(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, playbook(trigger="stage_entered: onbording"))
    assert problem.startswith("7: triggers[0].stage_entered: unknown stage 'onbording'"), problem
    assert "onboarding" in problem


def test_unknown_metric(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, playbook(trigger="metric: {name: logins_1y, below: 2}"))
    assert problem.startswith("7: triggers[0].metric.name: unknown metric 'logins_1y'"), problem


def test_unknown_destination(tmp_path: Path) -> None:
    body = "actions: [{webhook: {destination: https://evil.example, payload: {}}}]"
    problem = only_problem(tmp_path, playbook(body=body))
    assert problem.startswith(
        "8: actions[0].webhook.destination: unknown webhook destination 'https://evil.example'"
    ), problem
    assert "crm, billing" in problem


def test_template_syntax_error(tmp_path: Path) -> None:
    body = 'actions: [{slack: {destination: cs-alerts, text: "{{ account.traits.name "}}]'
    problem = only_problem(tmp_path, playbook(body=body))
    assert problem.startswith("8: actions[0].slack.text: template: text, line 1: syntax error"), (
        problem
    )


def test_template_referencing_an_undeclared_trait(tmp_path: Path) -> None:
    body = 'actions: [{task: {title: "Call {{ account.traits.nam }}"}}]'
    problem = only_problem(tmp_path, playbook(body=body))
    assert problem == (
        "8: actions[0].task.title: template: title, line 1: 'account.traits' has no attribute 'nam'"
    )


def test_template_attack_is_refused_fast(tmp_path: Path) -> None:
    body = "actions: [{task: {title: \"{{ 'x' * 50000000 }}\"}}]"
    started = time.perf_counter()
    problem = only_problem(tmp_path, playbook(body=body))
    assert time.perf_counter() - started < 5
    assert problem.endswith("'x' * 50000000: string repetition is not allowed"), problem


def test_non_date_trait_in_a_date_trigger(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, playbook(trigger="date: {trait: plan, before: 30d}"))
    assert problem == (
        "7: triggers[0].date.trait: 'plan' is not a declared date trait "
        "(date traits: renewal_date, go_live_date)"
    )


def test_invalid_cron(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, playbook(trigger='schedule: {cron: "61 * * * *"}'))
    assert problem == "7: triggers[0].schedule.cron: invalid cron '61 * * * *'"


def test_unknown_schedule_time_zone(tmp_path: Path) -> None:
    trigger = 'schedule: {cron: "0 9 * * *", timezone: Mars/Olympus}'
    problem = only_problem(tmp_path, playbook(trigger=trigger))
    assert problem == "7: triggers[0].schedule.timezone: unknown time zone 'Mars/Olympus'"


def test_duplicate_playbook_id(tmp_path: Path) -> None:
    root = base(tmp_path)
    (root / "one.yaml").write_text(yaml(playbook()))
    (root / "two.yaml").write_text(yaml(playbook()))
    code, problems, _ = validate(root)
    assert code == 1
    assert problems == [
        f"{root / 'two.yaml'}:2: id: playbook 'p' is also defined at {root / 'one.yaml'}:2"
    ]


def test_missing_template_file(tmp_path: Path) -> None:
    body = "actions: [{email: {to: champion, subject: Hi, template: nope.txt.j2}}]"
    problem = only_problem(tmp_path, playbook(body=body))
    assert problem.startswith("8: actions[0].email.template: template 'nope.txt.j2' not found"), (
        problem
    )


def test_missing_path(tmp_path: Path) -> None:
    code, problems, _ = validate(tmp_path / "nowhere")
    assert code == 1
    assert problems == [f"{tmp_path / 'nowhere'}:1: no such file or directory"]


def test_every_problem_of_every_file_is_reported(tmp_path: Path) -> None:
    root = base(tmp_path)
    (root / "a.yaml").write_text(yaml(playbook(trigger="date: {trait: plan}")))
    (root / "b.yaml").write_text("kind: widget\n")
    (root / "c.yaml").write_text(yaml(playbook(more="cooldown: soon").replace("id: p", "id: q")))
    code, problems, output = validate(root)
    assert code == 1
    assert [p.split(":")[0] for p in problems] == [
        str(root / n) for n in ("a.yaml", "b.yaml", "c.yaml")
    ]
    assert "3 problem(s) in 6 file(s)" in output
