"""Tests for engine.core.source: located YAML loading and file:line problems."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from engine.core.source import (
    Problem,
    SourceDocument,
    find_files,
    load_file,
    load_text,
    problems_from_validation,
)


def one(text: str, display: str = "t.yaml") -> SourceDocument:
    """Load text that must hold exactly one valid document."""
    docs, problems = load_text(text, display)
    assert problems == []
    assert len(docs) == 1
    return docs[0]


# --- Problem -------------------------------------------------------------------------------


def test_problem_str_format() -> None:
    assert str(Problem("pb/a.yaml", 12, "id: field required")) == "pb/a.yaml:12: id: field required"


def test_problems_sort_by_file_then_numeric_line() -> None:
    problems = [
        Problem("b.yaml", 1, "x"),
        Problem("a.yaml", 10, "y"),
        Problem("a.yaml", 9, "z"),
    ]
    assert [(p.file, p.line) for p in sorted(problems)] == [
        ("a.yaml", 9),
        ("a.yaml", 10),
        ("b.yaml", 1),
    ]


def test_problem_is_frozen() -> None:
    problem = Problem("a.yaml", 1, "x")
    with pytest.raises(AttributeError):
        problem.line = 2  # type: ignore[misc]


# --- lines -----------------------------------------------------------------------------------

NESTED = """\
id: welcome
owner:
  team: cs
  contact:
    email: a@example.com
triggers:
  - event: signup
  - inactivity:
      for: 14 days
    then: nudge
"""


def test_line_of_nested_keys() -> None:
    doc = one(NESTED)
    assert doc.line_of(["id"]) == 1
    assert doc.line_of(["owner"]) == 2
    assert doc.line_of(["owner", "team"]) == 3
    assert doc.line_of(["owner", "contact", "email"]) == 5


def test_line_of_list_items() -> None:
    doc = one(NESTED)
    assert doc.line_of(["triggers", 0]) == 7
    assert doc.line_of(["triggers", 1]) == 8
    assert doc.line_of(["triggers", 1, "inactivity", "for"]) == 9
    assert doc.line_of(["triggers", 1, "then"]) == 10


def test_line_of_missing_key_points_at_parent() -> None:
    doc = one(NESTED)
    assert doc.line_of(["owner", "contact", "phone"]) == 4
    assert doc.line_of(["triggers", 1, "inactivity", "every"]) == 8
    assert doc.line_of(["triggers", 5]) == 6
    assert doc.line_of(["nope"]) == 1
    assert doc.line_of([]) == 1


def test_line_of_skips_parts_not_in_data() -> None:
    # pydantic union tags ("Inactivity") sit between real keys in error locations
    doc = one(NESTED)
    assert doc.line_of(["triggers", 1, "Inactivity", "then"]) == 10


def test_flow_collections_have_lines() -> None:
    doc = one("a: 1\nb: {c: 2,\n    d: [x,\n        y]}\n")
    assert doc.data == {"a": 1, "b": {"c": 2, "d": ["x", "y"]}}
    assert doc.line_of(["b", "d"]) == 3
    assert doc.line_of(["b", "d", 1]) == 4


def test_multi_document_line_offsets() -> None:
    text = "# header\nid: one\n---\nid: two\nsteps:\n  - a\n---\n\n---\nid: three\n"
    docs, problems = load_text(text, "m.yaml")
    assert problems == []
    assert [d.data["id"] for d in docs] == ["one", "two", "three"]
    assert [d.start_line for d in docs] == [2, 4, 10]
    assert docs[1].line_of(["steps", 0]) == 6
    assert docs[2].line_of(["id"]) == 10
    assert all(d.file == "m.yaml" for d in docs)


def test_empty_documents_are_skipped() -> None:
    docs, problems = load_text("---\n# nothing\n---\n~\n---\na: 1\n", "e.yaml")
    assert problems == []
    assert [d.data for d in docs] == [{"a": 1}]


def test_empty_text_gives_nothing() -> None:
    assert load_text("", "e.yaml") == ([], [])
    assert load_text("# only a comment\n", "e.yaml") == ([], [])


# --- scalar resolution -----------------------------------------------------------------------


def test_yaml11_booleans_stay_strings() -> None:
    doc = one("on: login\noff: x\ncountry: NO\nanswer: yes\ny: n\nflags: [true, false, True, On]\n")
    assert doc.data == {
        "on": "login",
        "off": "x",
        "country": "NO",
        "answer": "yes",
        "y": "n",
        "flags": [True, False, True, "On"],
    }
    assert doc.line_of(["on"]) == 1


def test_dates_and_times_stay_strings() -> None:
    doc = one("starts: 2026-01-31\nat: 2026-01-31T09:00:00Z\ntime: 12:30\n")
    assert doc.data == {"starts": "2026-01-31", "at": "2026-01-31T09:00:00Z", "time": "12:30"}


def test_numbers_null_and_strings() -> None:
    doc = one(
        "i: 42\nneg: -7\nhex: 0x1F\noct: 0o17\nbig: 1_000\nzip: 01234\n"
        "f: 2.5\ne: 1e3\ninf: .inf\nversion: 1.2.3\n"
        "n1: null\nn2: ~\nn3:\nq: '42'\nqq: \"true\"\n"
    )
    assert doc.data == {
        "i": 42,
        "neg": -7,
        "hex": 31,
        "oct": 15,
        "big": 1000,
        "zip": "01234",
        "f": 2.5,
        "e": 1000.0,
        "inf": float("inf"),
        "version": "1.2.3",
        "n1": None,
        "n2": None,
        "n3": None,
        "q": "42",
        "qq": "true",
    }
    assert type(doc.data["i"]) is int
    assert type(doc.data["e"]) is float


def test_explicit_tags() -> None:
    doc = one("a: !!str 12\nb: !!int '7'\nc: !!timestamp 2026-01-31\n")
    assert doc.data == {"a": "12", "b": 7, "c": "2026-01-31"}


def test_explicit_tag_that_does_not_fit_is_a_problem() -> None:
    docs, problems = load_text("a: 1\nb: !!int soon\n", "t.yaml")
    assert docs == []
    assert problems == [Problem("t.yaml", 2, "cannot read 'soon' as int")]


def test_unknown_tag_is_a_problem() -> None:
    docs, problems = load_text("a: 1\nb: !Ref thing\n", "t.yaml")
    assert docs == []
    assert problems == [Problem("t.yaml", 2, "unsupported YAML tag '!Ref'")]


def test_anchors_and_merge_keys() -> None:
    doc = one("base: &b\n  channel: email\n  delay: 1\nstep:\n  <<: *b\n  delay: 5\n")
    assert doc.data["step"] == {"channel": "email", "delay": 5}
    assert doc.line_of(["step", "delay"]) == 6
    assert doc.line_of(["step", "channel"]) == 2


# --- refused input -----------------------------------------------------------------------------


def test_duplicate_keys_are_refused_at_the_duplicate_line() -> None:
    docs, problems = load_text("id: a\nsteps:\n  - x: 1\n    y: 2\n    x: 3\nid: b\n", "d.yaml")
    assert docs == []
    assert problems == [
        Problem("d.yaml", 5, "duplicate key 'x' (first defined on line 3)"),
        Problem("d.yaml", 6, "duplicate key 'id' (first defined on line 1)"),
    ]


def test_duplicate_key_in_one_document_keeps_the_others() -> None:
    docs, problems = load_text("a: 1\n---\nb: 1\nb: 2\n", "d.yaml")
    assert [d.data for d in docs] == [{"a": 1}]
    assert [(p.line, p.message) for p in problems] == [
        (4, "duplicate key 'b' (first defined on line 3)")
    ]


def test_recursive_alias_is_a_problem_not_a_crash() -> None:
    docs, problems = load_text("a: &x [1, *x]\n", "r.yaml")
    assert docs == []
    assert [p.message for p in problems] == ["recursive alias is not supported"]


def test_syntax_error_line_and_message() -> None:
    docs, problems = load_text("id: ok\nname: a: b\n", "s.yaml")
    assert docs == []
    assert problems == [
        Problem("s.yaml", 2, "could not parse YAML: mapping values are not allowed here")
    ]


def test_syntax_error_in_later_document_keeps_earlier_ones() -> None:
    docs, problems = load_text("a: 1\n---\nb: [1, 2\nc: 3\n", "s.yaml")
    assert [d.data for d in docs] == [{"a": 1}]
    assert problems == [
        Problem("s.yaml", 4, "could not parse YAML: expected ',' or ']', but got ':'")
    ]


@pytest.mark.parametrize(
    "text",
    ["a: [\n", "a: 'unterminated\n", "\tkey: 1\n", "a: *nowhere\n", "- a\nb: 1\n", "[" * 3000],
)
def test_bad_yaml_never_raises(text: str) -> None:
    docs, problems = load_text(text, "bad.yaml")
    assert docs == []
    assert len(problems) == 1
    assert problems[0].file == "bad.yaml"
    assert problems[0].line >= 1
    assert problems[0].message.startswith("could not parse YAML: ")


def test_control_character_reports_its_line() -> None:
    docs, problems = load_text("a: 1\nb: x\x00y\n", "c.yaml")
    assert docs == []
    assert problems[0].line == 2
    assert "#x0000" in problems[0].message


# --- files --------------------------------------------------------------------------------------


def test_load_file_reads_utf8_and_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "pb.yaml"
    path.write_text("name: Café\n", encoding="utf-8")
    docs, problems = load_file(path)
    assert problems == []
    assert docs[0].data == {"name": "Café"}
    assert docs[0].file == str(path)
    docs, _ = load_file(str(path), display="playbooks/pb.yaml")
    assert docs[0].file == "playbooks/pb.yaml"


def test_load_file_strips_bom(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfa: 1\n")
    docs, problems = load_file(path)
    assert problems == []
    assert docs[0].data == {"a": 1}


def test_load_file_syntax_error_uses_display(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("a: 1\nb: 2\n c: 3\n", encoding="utf-8")
    docs, problems = load_file(path, display="bad.yaml")
    assert docs == []
    assert [(p.file, p.line) for p in problems] == [("bad.yaml", 3)]


def test_missing_file_is_a_problem(tmp_path: Path) -> None:
    docs, problems = load_file(tmp_path / "nope.yaml", display="nope.yaml")
    assert docs == []
    assert len(problems) == 1
    assert problems[0].file == "nope.yaml"
    assert problems[0].line == 1
    assert problems[0].message.startswith("could not read file")


def test_directory_is_a_problem(tmp_path: Path) -> None:
    docs, problems = load_file(tmp_path, display="dir")
    assert docs == []
    assert [(p.file, p.line) for p in problems] == [("dir", 1)]


def test_binary_file_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "logo.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    docs, problems = load_file(path, display="logo.yaml")
    assert docs == []
    assert len(problems) == 1
    assert problems[0].file == "logo.yaml"
    assert problems[0].line == 1
    assert "UTF-8" in problems[0].message


def test_latin1_byte_reports_its_line(tmp_path: Path) -> None:
    path = tmp_path / "l1.yaml"
    path.write_bytes(b"a: 1\nb: 2\nname: Caf\xe9\n")
    _, problems = load_file(path, display="l1.yaml")
    assert [(p.line, p.message) for p in problems] == [(3, "not a UTF-8 text file (byte 0xe9)")]


def test_find_files_expands_directories_sorted(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "a").mkdir()
    (tmp_path / ".git").mkdir()
    (tmp_path / "b" / "z.yml").write_text("a: 1\n")
    (tmp_path / "a" / "y.yaml").write_text("a: 1\n")
    (tmp_path / "a" / "notes.txt").write_text("x\n")
    (tmp_path / ".git" / "hidden.yaml").write_text("a: 1\n")
    (tmp_path / "top.yaml").write_text("a: 1\n")
    files, problems = find_files([str(tmp_path)])
    assert problems == []
    assert [f.relative_to(tmp_path).as_posix() for f in files] == [
        "a/y.yaml",
        "b/z.yml",
        "top.yaml",
    ]


def test_find_files_keeps_explicit_files_and_reports_missing(tmp_path: Path) -> None:
    explicit = tmp_path / "schema.txt"
    explicit.write_text("a: 1\n")
    missing = str(tmp_path / "gone.yaml")
    files, problems = find_files([str(explicit), missing, str(explicit)])
    assert files == [explicit]
    assert problems == [Problem(missing, 1, "no such file or directory")]


# --- pydantic errors ------------------------------------------------------------------------


class Action(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str
    email: str | None = None


class Playbook(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    mode: Literal["live", "dry_run", "disabled"]
    wait: str = "1d"
    actions: list[Action]

    @field_validator("wait")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not value.endswith("d"):
            raise ValueError(f"invalid duration {value!r} (use e.g. '14d')")
        return value


PLAYBOOK = """\
mode: xyz
wait: 14 dayz
actions:
  - kind: email
    email: a@example.com
  - kind: slack
  - kind: email
    emial: b@example.com
"""


def validation_problems(text: str, display: str = "pb.yaml") -> list[Problem]:
    """Validate text as a Playbook and return the resulting problems."""
    doc = one(text, display)
    with pytest.raises(ValidationError) as info:
        Playbook.model_validate(doc.data)
    return problems_from_validation(doc, info.value)


def test_validation_problems_lines_and_messages() -> None:
    problems = validation_problems(PLAYBOOK)
    assert sorted(str(p) for p in problems) == sorted(
        [
            "pb.yaml:1: id: field required",
            "pb.yaml:1: mode: Input should be 'live', 'dry_run' or 'disabled', found 'xyz'",
            "pb.yaml:2: wait: invalid duration '14 dayz' (use e.g. '14d')",
            "pb.yaml:8: actions[2].emial: unknown field (check the spelling)",
        ]
    )


def test_missing_field_in_list_item_points_at_the_item() -> None:
    text = "id: x\nmode: live\nactions:\n  - kind: email\n  - email: a@example.com\n"
    problems = validation_problems(text)
    assert [str(p) for p in problems] == ["pb.yaml:5: actions[1].kind: field required"]


def test_wrong_type_points_at_the_key() -> None:
    text = "id: x\nmode: live\nactions:\n  kind: email\n"
    problems = validation_problems(text)
    assert len(problems) == 1
    assert problems[0].line == 3
    assert problems[0].message.startswith("actions: Input should be a valid list")


def test_validation_in_a_later_document_uses_absolute_lines() -> None:
    docs, _ = load_text("id: a\nmode: live\nactions: []\n---\nid: b\nmode: off\nactions: []\n")
    with pytest.raises(ValidationError) as info:
        Playbook.model_validate(docs[1].data)
    assert [(p.line, p.message) for p in problems_from_validation(docs[1], info.value)] == [
        (6, "mode: Input should be 'live', 'dry_run' or 'disabled', found 'off'")
    ]


def test_base_prefixes_the_location() -> None:
    doc = one("playbook:\n  id: x\n  mode: live\n  actions:\n    - kind: 1\n")
    with pytest.raises(ValidationError) as info:
        Playbook.model_validate(doc.data["playbook"])
    problems = problems_from_validation(doc, info.value, base=["playbook"])
    assert len(problems) == 1
    assert problems[0].line == 5
    assert problems[0].message.startswith(
        "playbook.actions[0].kind: Input should be a valid string"
    )


class Email(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["email"]
    to: str


class Slack(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["slack"]
    channel: str


class Steps(BaseModel):
    steps: list[Email | Slack]


def test_union_tags_are_left_out_of_paths() -> None:
    doc = one("steps:\n  - type: email\n    to: a@example.com\n  - type: email\n")
    with pytest.raises(ValidationError) as info:
        Steps.model_validate(doc.data)
    problems = problems_from_validation(doc, info.value)
    assert problems
    assert all(p.line == 4 for p in problems)
    assert all(p.message.startswith("steps[1].") for p in problems)
    assert "steps[1].to: field required" in [p.message for p in problems]
