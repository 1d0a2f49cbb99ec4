"""Published playbook sets on fakeredis: publish or refuse (nothing stored), versions, history,
rollback, loading with earlier versions retained for runs in flight, and what workers use
(``LivePlaybooks``): a cached set, refreshed within a second, bootstrapped from the directory,
and never replaced by a set that does not load."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
import redis
from corekit import DAY, DESTINATIONS, JOURNEY, SCHEMA, SHIPPED, T0, Driver, group, track, yaml
from typer.testing import CliRunner

import engine.redis.playbook_sets as playbook_sets
from engine.cli import app
from engine.cli import playbooks as playbooks_cli
from engine.core.loader import load_playbook_set, load_texts
from engine.redis.keys import PLAYBOOKS_CURRENT, playbook_files
from engine.redis.playbook_sets import (
    BOOTSTRAP_AUTHOR,
    LivePlaybooks,
    PlaybookInfo,
    PlaybookSets,
    Published,
    Refused,
    SetError,
    directory_files,
)


def cadence(version: int, on_change: str = "finish", subject: str = "hello") -> str:
    """A sequence: an email, a day's wait, then a flag naming the version that ran the step."""
    return f"""
kind: playbook
id: cadence
name: Cadence
journey: life
version: {version}
on_change: {on_change}
triggers: [{{event: start}}]
steps:
  - actions: [{{email: {{to: csm, subject: "v{version} {subject}", body: "hi"}}}}]
  - wait: 1d
  - actions: [{{set_flag: v{version}_second}}]
"""


OTHER = """
kind: playbook
id: other
name: Other
mode: dry_run
triggers: [{event: ping}]
actions: [{set_flag: pinged}]
"""


def files(*playbooks: str, **extra: str) -> dict[str, str]:
    """A set's files: schema, journey, destinations, and one file per playbook."""
    out = {
        "account.yaml": yaml(SCHEMA),
        "journeys/life.yaml": yaml(JOURNEY),
        "destinations.yaml": yaml(DESTINATIONS),
    }
    out.update({f"playbooks/pb_{i}.yaml": yaml(text) for i, text in enumerate(playbooks)})
    out.update(extra)
    return out


class Ticks:
    """A clock that moves only when told."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sets(fake_redis: redis.Redis) -> PlaybookSets:
    return PlaybookSets(fake_redis, clock=Ticks(1_772_000_000.0))


def published(outcome: Published | Refused) -> int:
    assert isinstance(outcome, Published), outcome
    return outcome.info.version


def snapshot(client: redis.Redis) -> dict[bytes, Any]:
    """Every key with its value (all playbook keys are strings, hashes or lists)."""
    out: dict[bytes, Any] = {}
    for key in sorted(client.keys()):
        kind = client.type(key)
        if kind == b"hash":
            out[key] = client.hgetall(key)
        elif kind == b"list":
            out[key] = client.lrange(key, 0, -1)
        else:
            out[key] = client.get(key)
    return out


# -- publish and refuse ----------------------------------------------------------------------


def test_a_valid_set_becomes_version_1_with_its_metadata(sets: PlaybookSets) -> None:
    given = files(cadence(3), OTHER)
    outcome = sets.publish(given, author="ana", note="first cut")
    assert isinstance(outcome, Published)
    info = outcome.info
    assert (info.version, info.author, info.note) == (1, "ana", "first cut")
    assert info.published == 1_772_000_000.0
    assert info.playbooks == (
        PlaybookInfo("cadence", 3, "live", "life"),
        PlaybookInfo("other", 1, "dry_run", "life"),
    )
    assert len(info.digest) == 16
    assert sets.current() == info
    assert sets.current_version() == 1
    assert sets.files(1) == given
    assert sets.history() == [info]


def test_an_invalid_set_is_refused_with_file_and_line_and_nothing_is_stored(
    sets: PlaybookSets, fake_redis: redis.Redis
) -> None:
    broken = cadence(1).replace("wait: 1d", "wait: soon")
    outcome = sets.publish(files(broken, OTHER), author="ana")
    assert isinstance(outcome, Refused)
    assert [str(p) for p in outcome.problems] == [
        "playbooks/pb_0.yaml:10: steps[1].wait: invalid duration 'soon': expected e.g. '14d', "
        "'2h', '30m', '2 business days'"
    ]
    assert fake_redis.keys() == []
    assert sets.current() is None


def test_a_refused_set_leaves_the_running_set_and_history_untouched(
    sets: PlaybookSets, fake_redis: redis.Redis
) -> None:
    published(sets.publish(files(cadence(1)), author="ana"))
    before = snapshot(fake_redis)
    unknown_stage = cadence(2).replace("set_flag: v2_second", "move_stage: nowhere")
    outcome = sets.publish(files(unknown_stage), author="bo")
    assert isinstance(outcome, Refused)
    assert [(p.file, p.line) for p in outcome.problems] == [("playbooks/pb_0.yaml", 11)]
    assert "unknown stage 'nowhere'" in outcome.problems[0].message
    assert snapshot(fake_redis) == before
    current = sets.current()
    assert current is not None and current.version == 1


def test_problems_across_files_come_back_sorted_with_a_yaml_syntax_error(
    sets: PlaybookSets,
) -> None:
    outcome = sets.publish(
        files(cadence(1), **{"zz.yaml": "kind: [unclosed\n", "a.yaml": "kind: widget\n"}),
        author="ana",
    )
    assert isinstance(outcome, Refused)
    assert [p.file for p in outcome.problems] == ["a.yaml", "zz.yaml"]
    assert outcome.problems[0].message.startswith("kind: expected one of journey")
    assert "could not parse YAML" in outcome.problems[1].message


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("../escape.yaml", "kind: x", "normalized relative path"),
        ("/etc/hourglass.yaml", "kind: x", "expected a relative path"),
        ("a//b.yaml", "kind: x", "normalized relative path"),
        ("notes.md", "# notes", "expected a .yaml/.yml file, or a template under templates/"),
        (".hidden.yaml", "kind: x", "hidden files are not part of a set"),
        ("big.yaml", "#" * (playbook_sets.MAX_FILE_BYTES + 1), "bytes: at most"),
        ("bad.yaml", "\udcff", "not valid Unicode text"),
    ],
)
def test_file_names_and_sizes_are_checked_before_compiling(
    sets: PlaybookSets, fake_redis: redis.Redis, name: str, text: str, expected: str
) -> None:
    outcome = sets.publish(files(cadence(1), **{name: text}), author="ana")
    assert isinstance(outcome, Refused)
    assert len(outcome.problems) == 1 and expected in outcome.problems[0].message
    assert outcome.problems[0].file == name and outcome.problems[0].line == 1
    assert fake_redis.keys() == []


def test_a_set_without_yaml_files_is_refused(sets: PlaybookSets) -> None:
    outcome = sets.publish({"templates/a.txt.j2": "hi"}, author="ana")
    assert isinstance(outcome, Refused)
    assert [str(p) for p in outcome.problems] == ["<set>:1: the set holds no YAML files"]


def test_templates_are_read_from_the_stored_texts_and_never_outside_templates(
    sets: PlaybookSets,
) -> None:
    body = "actions: [{email: {to: csm, subject: s, template: %s}}]"
    pb = "kind: playbook\nid: t\nname: t\njourney: life\ntriggers: [{event: x}]\n" + body
    good = files(pb % "welcome.txt.j2", **{"templates/welcome.txt.j2": "Hi {{ account.id }}"})
    assert published(sets.publish(good, author="ana")) == 1
    _, pset = sets.load()
    assert pset.by_id["t"].steps[0].actions[0].texts["body"].source == "Hi {{ account.id }}"
    escape = files(pb % "../account.yaml", **{"templates/welcome.txt.j2": "Hi"})
    refused = sets.publish(escape, author="ana")
    assert isinstance(refused, Refused)
    assert [p.message for p in refused.problems] == [
        "actions[0].email.template: template '../account.yaml' not found (looked in templates/)"
    ]


def test_the_shipped_directory_compiles_the_same_from_its_texts() -> None:
    texts, problems = directory_files(SHIPPED)
    assert problems == []
    assert "templates/welcome.txt.j2" in texts and "journeys/flywheel.yaml" in texts
    from_disk = load_playbook_set([SHIPPED]).pset
    from_texts = load_texts(texts).pset
    assert from_disk is not None and from_texts is not None
    assert from_texts.digest == from_disk.digest
    assert list(from_texts.by_id) == list(from_disk.by_id)
    for pid, playbook in from_disk.by_id.items():
        assert from_texts.by_id[pid].spec == playbook.spec


def test_an_unreadable_template_on_disk_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    body = "actions: [{email: {to: csm, subject: s, template: bad.txt.j2}}]"
    pb = "kind: playbook\nid: t\nname: t\njourney: life\ntriggers: [{event: x}]\n" + body
    root = write_dir(tmp_path, files(pb))
    (root / "templates").mkdir()
    (root / "templates" / "bad.txt.j2").write_bytes(b"caf\xe9")
    result = load_playbook_set([root])
    assert [str(p) for p in result.problems] == [
        f"{root / 'playbooks' / 'pb_0.yaml'}:6: actions[0].email.template: "
        "template 'bad.txt.j2': not a UTF-8 text file"
    ]


def test_directory_files_skips_hidden_and_unrelated_files_and_reports_binary_ones(
    tmp_path: Path,
) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / ".git").mkdir()
    (tmp_path / "templates").mkdir()
    (tmp_path / "a.yaml").write_text("kind: x\n")
    (tmp_path / "sub" / "b.YML").write_text("kind: y\n")
    (tmp_path / ".git" / "c.yaml").write_text("kind: z\n")
    (tmp_path / ".d.yaml").write_text("kind: z\n")
    (tmp_path / "README.md").write_text("read me\n")
    (tmp_path / "templates" / "t.txt.j2").write_bytes(b"\xef\xbb\xbfHi")
    (tmp_path / "templates" / "logo.png").write_bytes(b"\x89PNG\xff")
    texts, problems = directory_files(tmp_path)
    assert texts == {"a.yaml": "kind: x\n", "sub/b.YML": "kind: y\n", "templates/t.txt.j2": "Hi"}
    assert [str(p) for p in problems] == [
        f"{tmp_path / 'templates' / 'logo.png'}:1: not a UTF-8 text file"
    ]
    assert directory_files(tmp_path / "nope")[1][0].message == "not a directory"


# -- versions, history, rollback -------------------------------------------------------------


def test_versions_are_monotonic_and_history_is_newest_first(sets: PlaybookSets) -> None:
    versions = [published(sets.publish(files(cadence(v)), author=f"a{v}")) for v in (1, 2, 3)]
    assert versions == [1, 2, 3]
    assert [s.version for s in sets.history()] == [3, 2, 1]
    assert [s.author for s in sets.history(limit=2)] == ["a3", "a2"]
    assert sets.history(limit=0) == []
    assert sets.current_version() == 3


def test_rollback_publishes_the_old_files_as_a_new_version(sets: PlaybookSets) -> None:
    first = files(cadence(1))
    published(sets.publish(first, author="ana"))
    published(sets.publish(files(cadence(2)), author="bo"))
    info = sets.rollback(1, author="cy")
    assert (info.version, info.author, info.note) == (3, "cy", "rollback to version 1")
    assert sets.files(3) == first
    assert sets.current_version() == 3
    assert [s.version for s in sets.history()] == [3, 2, 1]
    _, pset = sets.load()
    assert pset.by_id["cadence"].version == 1
    with pytest.raises(SetError, match="no stored playbook set version 9"):
        sets.rollback(9, author="cy")
    assert sets.current_version() == 3


def test_only_the_newest_sets_are_kept_and_numbers_are_never_reused(
    fake_redis: redis.Redis,
) -> None:
    sets = PlaybookSets(fake_redis, keep=3)
    for v in range(1, 6):
        published(sets.publish(files(cadence(v)), author="ana"))
    assert [s.version for s in sets.history()] == [5, 4, 3]
    with pytest.raises(SetError):
        sets.files(2)
    with pytest.raises(SetError):
        sets.info(1)
    assert not fake_redis.exists(playbook_files(1), playbook_files(2))
    assert published(sets.publish(files(cadence(6)), author="ana")) == 6
    _, pset = sets.load()
    assert sorted(pset.retained) == [("cadence", 4), ("cadence", 5), ("cadence", 6)]


def test_publish_first_only_publishes_while_nothing_is(sets: PlaybookSets) -> None:
    assert published(sets.publish(files(cadence(1)), author="ana")) == 1
    assert sets.publish_first(files(cadence(2)), author=BOOTSTRAP_AUTHOR) is None
    assert sets.current_version() == 1 and len(sets.history()) == 1


# -- loading with earlier versions retained --------------------------------------------------


def start_run(sets: PlaybookSets, policy: str) -> Driver:
    """A sequence starts on version 1; version 2 is published while it waits."""
    published(sets.publish(files(cadence(1, policy)), author="ana"))
    info, v1 = sets.load()
    assert info.version == 1
    d = Driver(v1)
    d.send(group(T0, csm_email="csm@vendor.io"), track("start", T0, mid="m1"))
    published(sets.publish(files(cadence(2, policy), OTHER), author="bo"))
    info, d.pset = sets.load()
    assert info.version == 2
    assert set(d.pset.retained) == {("cadence", 1), ("cadence", 2), ("other", 1)}
    d.run_until(T0 + 2 * DAY)
    return d


def test_finish_completes_a_running_sequence_on_the_version_it_started(
    sets: PlaybookSets,
) -> None:
    d = start_run(sets, "finish")
    assert [(a.step, a.version) for a in d.actions("cadence")] == [("0.0", 1), ("2.0", 1)]
    assert "v1_second" in d.state.flags and "v2_second" not in d.state.flags
    assert d.state.books["cadence"].run is None
    again = d.apply(track("start", T0 + 3 * DAY))
    assert [(a.version, a.payload["subject"]) for a in again.actions] == [(2, "v2 hello")]


def test_migrate_moves_a_running_sequence_to_the_new_version(sets: PlaybookSets) -> None:
    d = start_run(sets, "migrate")
    assert [(a.step, a.version) for a in d.actions("cadence")] == [("0.0", 1), ("2.0", 2)]
    assert "v2_second" in d.state.flags and "v1_second" not in d.state.flags


def test_exit_ends_a_running_sequence(sets: PlaybookSets) -> None:
    d = start_run(sets, "exit")
    assert [(a.step, a.version) for a in d.actions("cadence")] == [("0.0", 1)]
    assert not {"v1_second", "v2_second"} & set(d.state.flags)
    assert d.state.books["cadence"].run is None
    assert "sequence ended: playbook changed to version 2" in [m.reason for m in d.misses()]


def test_an_older_version_is_retained_from_the_newest_set_that_defines_it(
    sets: PlaybookSets,
) -> None:
    published(sets.publish(files(cadence(1, subject="old")), author="ana"))
    published(sets.publish(files(cadence(1, subject="fixed")), author="ana"))  # no bump
    published(sets.publish(files(cadence(2)), author="ana"))
    _, pset = sets.load()
    v1 = pset.version_of("cadence", 1)
    assert v1 is not None
    assert v1.steps[0].actions[0].spec.subject == "v1 fixed"
    _, first = sets.load(1)
    assert set(first.retained) == {("cadence", 1)}  # later sets are not "earlier"


def test_earlier_sets_are_compiled_only_when_they_add_a_version_and_only_once(
    fake_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = PlaybookSets(fake_redis)
    published(writer.publish(files(cadence(1)), author="ana"))
    published(writer.publish(files(cadence(2)), author="ana"))
    published(writer.publish(files(cadence(2)), author="ana", note="same again"))
    compiled: list[str] = []

    def counting(texts: dict[str, str], **kw: Any) -> Any:
        compiled.append(texts["playbooks/pb_0.yaml"].split("version: ")[1][0])
        return load_texts(texts, **kw)

    monkeypatch.setattr(playbook_sets, "load_texts", counting)
    reader = PlaybookSets(fake_redis)
    reader.load()
    assert compiled == ["1", "2"]  # version 1's set, then the current; version 2's is covered
    reader.load()
    assert compiled == ["1", "2", "2"]  # earlier sets come from the cache


def test_an_earlier_set_that_no_longer_compiles_is_skipped(
    sets: PlaybookSets, fake_redis: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    published(sets.publish(files(cadence(1)), author="ana"))
    published(sets.publish(files(cadence(2)), author="ana"))
    fake_redis.hset(playbook_files(1), "playbooks/pb_0.yaml", "kind: [")
    fresh = PlaybookSets(fake_redis)
    with caplog.at_level(logging.WARNING):
        _, pset = fresh.load()
    assert set(pset.retained) == {("cadence", 2)}
    assert "stored set version 1 no longer compiles" in caplog.text


def test_load_without_a_published_set_or_of_an_unknown_version_fails(sets: PlaybookSets) -> None:
    with pytest.raises(SetError, match="no playbook set is published"):
        sets.load()
    published(sets.publish(files(cadence(1)), author="ana"))
    with pytest.raises(SetError, match="no stored playbook set version 7"):
        sets.load(7)


# -- LivePlaybooks: what workers use ---------------------------------------------------------


def write_dir(root: Path, texts: dict[str, str]) -> Path:
    for name, text in texts.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


class Counted:
    """Counts how often the live set asks Redis for the current version."""

    def __init__(self, sets: PlaybookSets) -> None:
        self.calls = 0
        self.original = sets.current_version
        self.error: Exception | None = None

    def __call__(self) -> int | None:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.original()


def live(sets: PlaybookSets, directory: Path) -> tuple[LivePlaybooks, Ticks, Counted]:
    ticks = Ticks()
    counted = Counted(sets)
    sets.current_version = counted  # type: ignore[method-assign]
    return LivePlaybooks(sets, directory, monotonic=ticks), ticks, counted


def test_with_nothing_published_the_directory_becomes_version_1(
    sets: PlaybookSets, tmp_path: Path
) -> None:
    directory = write_dir(tmp_path, files(cadence(1)))
    playbooks, _, _ = live(sets, directory)
    pset = playbooks()
    assert pset.by_id["cadence"].version == 1
    info = sets.current()
    assert info is not None
    assert (info.version, info.author) == (1, BOOTSTRAP_AUTHOR)
    assert str(directory) in info.note
    assert playbooks.version == 1


def test_the_current_version_is_checked_at_most_once_a_second(
    sets: PlaybookSets, tmp_path: Path
) -> None:
    published(sets.publish(files(cadence(1)), author="ana"))
    playbooks, ticks, counted = live(sets, tmp_path)
    first = playbooks()
    assert counted.calls == 1
    published(sets.publish(files(cadence(2)), author="bo"))
    ticks.now += 0.5
    assert playbooks() is first and counted.calls == 1  # cached: no Redis call at all
    ticks.now += 0.6
    second = playbooks()
    assert counted.calls == 2
    assert second is not first and second.by_id["cadence"].version == 2
    assert second.version_of("cadence", 1) is not None
    ticks.now += 1.1
    assert playbooks() is second and counted.calls == 3  # unchanged: not recompiled
    assert playbooks.version == 2


def test_a_stored_set_that_does_not_load_leaves_the_previous_set_running(
    sets: PlaybookSets, fake_redis: redis.Redis, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    published(sets.publish(files(cadence(1)), author="ana"))
    playbooks, ticks, _ = live(sets, tmp_path)
    running = playbooks()
    published(sets.publish(files(cadence(2)), author="bo"))
    fake_redis.hset(playbook_files(2), "playbooks/pb_0.yaml", "kind: playbook\nid: [")
    ticks.now += 1.5
    with caplog.at_level(logging.ERROR):
        assert playbooks() is running
    assert "PLAYBOOK SET VERSION 2 DOES NOT LOAD" in caplog.text
    assert "playbooks/pb_0.yaml:2:" in caplog.text
    assert playbooks.version == 1
    caplog.clear()
    ticks.now += 1.5
    assert playbooks() is running and caplog.text == ""  # not retried every second
    published(sets.publish(files(cadence(3)), author="cy"))
    ticks.now += 1.5
    assert playbooks().by_id["cadence"].version == 3


def test_with_no_previous_set_a_broken_stored_set_falls_back_to_the_directory(
    sets: PlaybookSets, fake_redis: redis.Redis, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    published(sets.publish(files(cadence(1)), author="ana"))
    fake_redis.hset(playbook_files(1), "account.yaml", "kind: account\ntraits: 7\n")
    directory = write_dir(tmp_path, files(cadence(5)))
    playbooks, _, _ = live(sets, directory)
    with caplog.at_level(logging.ERROR):
        assert playbooks().by_id["cadence"].version == 5
    assert "running the directory set" in caplog.text
    assert playbooks.version is None


def test_a_broken_directory_with_nothing_published_raises_and_stores_nothing(
    sets: PlaybookSets, fake_redis: redis.Redis, tmp_path: Path
) -> None:
    directory = write_dir(tmp_path, files(cadence(1).replace("1d", "tomorrow")))
    playbooks, _, _ = live(sets, directory)
    with pytest.raises(RuntimeError, match="no playbook set is published"):
        playbooks()
    assert fake_redis.keys() == []


def test_redis_unreachable_keeps_the_running_set(sets: PlaybookSets, tmp_path: Path) -> None:
    published(sets.publish(files(cadence(1)), author="ana"))
    playbooks, ticks, counted = live(sets, tmp_path)
    running = playbooks()
    counted.error = redis.ConnectionError("gone")
    ticks.now += 2
    assert playbooks() is running
    fresh, _, again = live(PlaybookSets(sets.client), tmp_path)
    again.error = redis.ConnectionError("gone")
    with pytest.raises(redis.ConnectionError):
        fresh()  # nothing to run yet: the drain task retries


def test_another_worker_publishing_first_wins_the_bootstrap(
    sets: PlaybookSets, fake_redis: redis.Redis, tmp_path: Path
) -> None:
    directory = write_dir(tmp_path, files(cadence(1)))
    playbooks, _, _ = live(sets, directory)
    original = sets.publish_first

    def raced(texts: dict[str, str], **kw: Any) -> Any:
        sets.publish(files(cadence(7)), author="other-worker")
        return original(texts, **kw)

    sets.publish_first = raced  # type: ignore[method-assign]
    assert playbooks().by_id["cadence"].version == 7
    assert [s.author for s in sets.history()] == ["other-worker"]
    assert fake_redis.get(PLAYBOOKS_CURRENT) == b"1"


# -- the CLI ---------------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def cli(sets: PlaybookSets, monkeypatch: pytest.MonkeyPatch) -> PlaybookSets:
    """The playbooks commands on fakeredis."""
    monkeypatch.setattr(playbooks_cli, "_sets", lambda: sets)
    return sets


def test_cli_load_list_history_and_rollback(cli: PlaybookSets, tmp_path: Path) -> None:
    directory = tmp_path / "set"
    shutil.copytree(SHIPPED, directory)
    loaded = runner.invoke(app, ["playbooks", "load", str(directory), "--author", "ana"])
    assert loaded.exit_code == 0, loaded.output
    assert "published version 1 (14 playbooks" in loaded.stdout
    listed = runner.invoke(app, ["playbooks", "list"])
    assert listed.exit_code == 0
    assert "set version 1, by ana" in listed.stdout
    assert "onboarding-stalled" in listed.stdout and "dry_run" in listed.stdout
    again = runner.invoke(app, ["playbooks", "load", str(directory), "--note", "again"])
    assert again.exit_code == 0
    back = runner.invoke(app, ["playbooks", "rollback", "1", "--author", "bo"])
    assert back.exit_code == 0 and "published version 3" in back.stdout
    history = runner.invoke(app, ["playbooks", "history"])
    assert history.exit_code == 0
    cells = [line.split("│")[1].strip() for line in history.stdout.splitlines() if "│" in line]
    assert [c for c in cells if c] == ["3*", "2", "1"]
    missing = runner.invoke(app, ["playbooks", "rollback", "42"])
    assert missing.exit_code == 1 and "no stored playbook set version 42" in missing.stderr


def test_cli_load_of_a_broken_directory_exits_1_with_file_and_line(
    cli: PlaybookSets, tmp_path: Path
) -> None:
    directory = tmp_path / "set"
    shutil.copytree(SHIPPED, directory)
    assert runner.invoke(app, ["playbooks", "load", str(directory)]).exit_code == 0
    onboarding = directory / "onboarding.yaml"
    onboarding.write_text(onboarding.read_text().replace("for: 14d", "for: fortnight", 1))
    refused = runner.invoke(app, ["playbooks", "load", str(directory)])
    assert refused.exit_code == 1
    lines = refused.stderr.splitlines()
    assert lines[0].startswith(f"{onboarding}:") and "for" in lines[0], lines
    assert lines[-1] == "refused: 1 problem(s); running set: version 1"
    assert cli.current_version() == 1


def test_cli_list_with_nothing_published_exits_1(cli: PlaybookSets) -> None:
    result = runner.invoke(app, ["playbooks", "list"])
    assert result.exit_code == 1 and "no playbook set is published" in result.stderr
