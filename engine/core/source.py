"""YAML loading that remembers where every value came from, and errors as ``file:line: message``.

Scalars are resolved with a deliberately small schema: ``true``/``false`` are the only
booleans, ``null``/``~``/empty is None, plain decimal/hex/octal integers and floats are
numbers, and everything else (dates, ``yes``/``no``/``on``/``off``, ``012``, ``1:30``) stays a
string. Duplicate keys, unknown tags and recursive aliases are refused.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = [
    "Problem",
    "SourceDocument",
    "find_files",
    "load_file",
    "load_text",
    "problems_from_validation",
]

_TAG = "tag:yaml.org,2002:"
_STR = _TAG + "str"
_INT = _TAG + "int"
_FLOAT = _TAG + "float"
_BOOL = _TAG + "bool"
_NULL = _TAG + "null"
_MERGE = _TAG + "merge"
_TIMESTAMP = _TAG + "timestamp"
_MAP = _TAG + "map"
_SEQ = _TAG + "seq"

_BOOL_RE = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_NULL_RE = re.compile(r"^(?:~|null|Null|NULL|)$")
_INT_RE = re.compile(r"^(?:[-+]?(?:0|[1-9](?:_?[0-9])*)|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT_RE = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?[0-9]+[eE][-+]?[0-9]+"
    r"|[-+]?\.(?:inf|Inf|INF)"
    r"|\.(?:nan|NaN|NAN))$"
)
_MERGE_RE = re.compile(r"^(?:<<)$")
_PLAIN_KEY_RE = re.compile(r"^[\w-]+$")


@dataclass(frozen=True, order=True)
class Problem:
    """One problem found in a file, printed as ``file:line: message``."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class _Loader(yaml.SafeLoader):
    """SafeLoader's composer with only the implicit tags of the small schema above."""

    yaml_implicit_resolvers: dict[Any, list[tuple[str, re.Pattern[str]]]] = {}


_Loader.add_implicit_resolver(_BOOL, _BOOL_RE, list("tTfF"))
_Loader.add_implicit_resolver(_NULL, _NULL_RE, ["~", "n", "N", ""])
_Loader.add_implicit_resolver(_INT, _INT_RE, list("-+0123456789"))
_Loader.add_implicit_resolver(_FLOAT, _FLOAT_RE, list("-+0123456789."))
_Loader.add_implicit_resolver(_MERGE, _MERGE_RE, ["<"])


@dataclass(eq=False)
class _Located:
    """Where a constructed value sits: its own line, and where its children sit."""

    line: int
    keys: dict[Any, tuple[int, _Located]] | None = None
    items: list[_Located] | None = None

    def child(self, part: object) -> tuple[int, _Located] | None:
        """The (line, node) of a mapping key or list index, or None if it isn't there."""
        if self.keys is not None:
            try:
                found = self.keys.get(part)
            except TypeError:
                return None
            if found is None and isinstance(part, str | int) and not isinstance(part, bool):
                for key, entry in self.keys.items():
                    if str(key) == str(part):
                        return entry
            return found
        if self.items is not None and type(part) is int and 0 <= part < len(self.items):
            item = self.items[part]
            return item.line, item
        return None


@dataclass
class _Step:
    """One resolved part of a location: the part, whether it exists, and its kind."""

    part: str | int
    found: bool
    index: bool = field(default=False)


def _resolve(root: _Located, loc: Sequence[object]) -> tuple[list[_Step], int]:
    """Walk ``loc`` from ``root``; skip parts that are not in the data (union tags)."""
    parts = [p for p in loc if isinstance(p, str | int) and not isinstance(p, bool)]
    node, line = root, root.line
    steps: list[_Step] = []
    for part in parts:
        entry = node.child(part)
        if entry is None:
            steps.append(_Step(part, False, isinstance(part, int)))
            continue
        steps.append(_Step(part, True, node.items is not None))
        line, node = entry
    return steps, line


class SourceDocument:
    """One YAML document of a file: its plain data and the line of every node in it."""

    def __init__(self, file: str, data: Any, start_line: int, root: _Located | None = None) -> None:
        self.file = file
        self.data = data
        self.start_line = start_line
        self._root = root if root is not None else _Located(start_line)

    def __repr__(self) -> str:
        return f"SourceDocument(file={self.file!r}, start_line={self.start_line})"

    def line_of(self, loc: Sequence[str | int]) -> int:
        """The 1-based line of the deepest node that exists along ``loc``."""
        return _resolve(self._root, loc)[1]

    def problem(self, loc: Sequence[str | int], message: str) -> Problem:
        """A Problem at ``loc`` in this document."""
        return Problem(self.file, self.line_of(loc), message)


def _show(value: object) -> str:
    """A short, YAML-flavoured rendering of a value for messages."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _line(node: Node) -> int:
    """The 1-based line where a node starts."""
    return int(node.start_mark.line) + 1


class _Builder:
    """Turns composed nodes into plain Python data plus a _Located tree."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self._memo: dict[int, tuple[Any, _Located]] = {}
        self._active: set[int] = set()

    def _fail(self, node: Node, message: str) -> tuple[Any, _Located]:
        self.problems.append(Problem(self.file, _line(node), message))
        return None, _Located(_line(node))

    def build(self, node: Node) -> tuple[Any, _Located]:
        """Construct (data, location tree) for a node; aliases share one result."""
        key = id(node)
        if key in self._memo:
            return self._memo[key]
        if key in self._active:
            return self._fail(node, "recursive alias is not supported")
        self._active.add(key)
        try:
            if isinstance(node, ScalarNode):
                result = self._scalar(node)
            elif isinstance(node, SequenceNode):
                result = self._sequence(node)
            elif isinstance(node, MappingNode):
                result = self._mapping(node)
            else:  # pragma: no cover - the composer makes only these three
                result = self._fail(node, "unsupported YAML node")
        finally:
            self._active.discard(key)
        self._memo[key] = result
        return result

    def _scalar(self, node: ScalarNode) -> tuple[Any, _Located]:
        value: str = node.value
        tag: str = node.tag
        here = _Located(_line(node))
        if tag in (_STR, _TIMESTAMP, _MERGE):
            return value, here
        if tag == _NULL and _NULL_RE.match(value):
            return None, here
        if tag == _BOOL and _BOOL_RE.match(value):
            return value.lower() == "true", here
        if tag == _INT:
            number = _to_int(value)
            if number is not None:
                return number, here
        if tag == _FLOAT:
            real = _to_float(value)
            if real is not None:
                return real, here
        if tag in (_NULL, _BOOL, _INT, _FLOAT):
            return self._fail(node, f"cannot read {value!r} as {tag.removeprefix(_TAG)}")
        return self._fail(node, f"unsupported YAML tag {tag!r}")

    def _sequence(self, node: SequenceNode) -> tuple[Any, _Located]:
        if node.tag != _SEQ:
            return self._fail(node, f"unsupported YAML tag {node.tag!r}")
        data: list[Any] = []
        items: list[_Located] = []
        for child in node.value:
            value, located = self.build(child)
            data.append(value)
            items.append(located)
        return data, _Located(_line(node), items=items)

    def _mapping(self, node: MappingNode) -> tuple[Any, _Located]:
        if node.tag != _MAP:
            return self._fail(node, f"unsupported YAML tag {node.tag!r}")
        data: dict[Any, Any] = {}
        keys: dict[Any, tuple[int, _Located]] = {}
        merged: dict[Any, tuple[Any, tuple[int, _Located]]] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag == _MERGE:
                self._merge(value_node, merged)
                continue
            if not isinstance(key_node, ScalarNode):
                self._fail(key_node, "mapping keys must be plain values, not lists or mappings")
                continue
            key, _ = self.build(key_node)
            line = _line(key_node)
            if key in keys:
                first = keys[key][0]
                self._fail(key_node, f"duplicate key {_show(key)} (first defined on line {first})")
                continue
            value, located = self.build(value_node)
            data[key] = value
            keys[key] = (line, located)
        if merged:
            data = {k: v for k, (v, _) in merged.items() if k not in data} | data
            keys = {k: e for k, (_, e) in merged.items() if k not in keys} | keys
        return data, _Located(_line(node), keys=keys)

    def _merge(self, node: Node, merged: dict[Any, tuple[Any, tuple[int, _Located]]]) -> None:
        """Collect ``<<: *anchor`` entries; earlier sources win, explicit keys win over all."""
        sources = node.value if isinstance(node, SequenceNode) else [node]
        for source in sources:
            if not isinstance(source, MappingNode):
                self._fail(source, "merge key '<<' needs a mapping or a list of mappings")
                continue
            data, located = self.build(source)
            if not isinstance(data, dict) or located.keys is None:
                continue
            for key, value in data.items():
                if key not in merged and key in located.keys:
                    merged[key] = (value, located.keys[key])


def _to_int(text: str) -> int | None:
    """Parse a YAML integer (decimal, 0x hex, 0o octal, underscores allowed)."""
    for base in (0, 10):
        try:
            return int(text, base)
        except ValueError:
            continue
    return None


def _to_float(text: str) -> float | None:
    """Parse a YAML float, including ``.inf`` and ``.nan``."""
    lowered = text.lower()
    if lowered in (".inf", "+.inf"):
        return math.inf
    if lowered == "-.inf":
        return -math.inf
    if lowered == ".nan":
        return math.nan
    try:
        return float(text.replace("_", ""))
    except ValueError:
        return None


def _yaml_error(display: str, text: str, error: Exception) -> Problem:
    """A Problem for a YAML syntax error, at the line the parser complained about."""
    last_line = max(1, len(text.splitlines()))
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        line = int(mark.line) + 1 if mark is not None else 1
        detail = error.problem or error.context or "invalid YAML"
        return Problem(display, min(line, last_line), f"could not parse YAML: {detail}")
    if isinstance(error, yaml.reader.ReaderError):
        line = text.count("\n", 0, max(0, int(error.position))) + 1
        char = error.character
        what = f"character #x{char:04x}" if isinstance(char, int) else "character"
        return Problem(display, line, f"could not parse YAML: unacceptable {what}: {error.reason}")
    return Problem(display, 1, f"could not parse YAML: {error}")


def load_text(text: str, display: str = "<string>") -> tuple[list[SourceDocument], list[Problem]]:
    """Load every non-empty YAML document in ``text``; problems instead of exceptions."""
    documents: list[SourceDocument] = []
    problems: list[Problem] = []
    try:
        for root in yaml.compose_all(text, Loader=_Loader):
            if root is None:
                continue
            builder = _Builder(display)
            data, located = builder.build(root)
            if builder.problems:
                problems.extend(builder.problems)
                continue
            if data is None:
                continue
            documents.append(SourceDocument(display, data, _line(root), located))
    except yaml.YAMLError as error:
        problems.append(_yaml_error(display, text, error))
    except RecursionError:
        problems.append(Problem(display, 1, "could not parse YAML: nested too deeply"))
    return documents, problems


def load_file(
    path: str | os.PathLike[str], display: str | None = None
) -> tuple[list[SourceDocument], list[Problem]]:
    """Read a UTF-8 YAML file and load its documents; problems instead of exceptions."""
    name = display if display is not None else os.fspath(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        reason = error.strerror or str(error)
        return [], [Problem(name, 1, f"could not read file: {reason.lower()}")]
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        byte = raw[error.start]
        return [], [Problem(name, line, f"not a UTF-8 text file (byte 0x{byte:02x})")]
    return load_text(text, name)


def _format_path(steps: Sequence[_Step]) -> str:
    """``triggers[0].inactivity.for`` from resolved steps."""
    out = ""
    for step in steps:
        if step.index:
            out += f"[{step.part}]"
        elif isinstance(step.part, str) and _PLAIN_KEY_RE.match(step.part):
            out += f".{step.part}" if out else step.part
        else:
            out += f"[{step.part!r}]"
    return out


def _friendly(error_type: str, message: str, value: object) -> str:
    """Pydantic's message in words a playbook author can act on."""
    if error_type == "missing":
        return "field required"
    if error_type == "extra_forbidden":
        return "unknown field (check the spelling)"
    if error_type in ("literal_error", "enum"):
        return f"{message}, found {_show(value)}"
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            return message.removeprefix(prefix)
    return message


def problems_from_validation(
    doc: SourceDocument, error: pydantic.ValidationError, base: Sequence[str | int] = ()
) -> list[Problem]:
    """One Problem per pydantic error, at the line of the data it is about."""
    problems: list[Problem] = []
    errors = error.errors(include_url=False)
    locs = [tuple(e.get("loc", ())) for e in errors]
    for err in errors:
        error_type = str(err.get("type", ""))
        loc = tuple(err.get("loc", ()))
        if error_type == "too_short" and any(o[: len(loc)] == loc != o for o in locs):
            continue  # its items failed: their own errors say why, not a misleading count
        steps, line = _resolve(doc._root, [*base, *err.get("loc", ())])
        shown = [s for s in steps if s.found]
        if steps and not steps[-1].found and error_type.startswith("missing"):
            shown.append(steps[-1])
        path = _format_path(shown)
        message = _friendly(error_type, str(err.get("msg", "")), err.get("input"))
        problems.append(Problem(doc.file, line, f"{path}: {message}" if path else message))
    return problems


def find_files(paths: Sequence[str]) -> tuple[list[Path], list[Problem]]:
    """Expand paths into YAML files (directories recursively, sorted); missing ones are Problems."""
    files: list[Path] = []
    problems: list[Problem] = []
    seen: set[Path] = set()

    def add(found: Path) -> None:
        if found not in seen:
            seen.add(found)
            files.append(found)

    for given in paths:
        path = Path(given)
        if path.is_dir():
            found: list[Path] = []
            for folder, dirs, names in os.walk(path):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                found.extend(
                    Path(folder, n)
                    for n in names
                    if not n.startswith(".") and n.lower().endswith((".yaml", ".yml"))
                )
            for item in sorted(found):
                add(item)
        elif path.exists():
            add(path)
        else:
            problems.append(Problem(given, 1, "no such file or directory"))
    return files, problems
