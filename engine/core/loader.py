"""Load journeys, the account schema, destinations and playbooks from YAML into a compiled
``PlaybookSet``; every problem comes back as ``file:line: message``, never half-applied.

Files on disk and file texts stored elsewhere (a published set in Redis) go through the same
compile path; only where the texts and templates are read from differs."""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, ValidationError

from engine.core.compile import PlaybookCompiler, TemplateSource
from engine.core.destinations import NO_DESTINATIONS, Destinations
from engine.core.journeys import Journey
from engine.core.playbook_set import CompiledPlaybook, PlaybookSet
from engine.core.playbooks import Playbook
from engine.core.schema import DEFAULT_SCHEMA, AccountSchema
from engine.core.source import (
    Problem,
    SourceDocument,
    find_files,
    load_file,
    load_text,
    problems_from_validation,
)

#: The folder of a set that holds the files named by ``template:``.
TEMPLATES = "templates"

KINDS: dict[str, type[BaseModel]] = {
    "journey": Journey,
    "account": AccountSchema,
    "destinations": Destinations,
    "playbook": Playbook,
}


@dataclass
class LoadResult:
    """A compiled set, or the problems that stopped it (never both)."""

    pset: PlaybookSet | None
    problems: list[Problem] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.pset is not None and not self.problems


@dataclass
class _Parsed:
    journeys: dict[str, tuple[Journey, SourceDocument]] = field(default_factory=dict)
    schemas: list[tuple[AccountSchema, SourceDocument]] = field(default_factory=list)
    destinations: list[tuple[Destinations, SourceDocument]] = field(default_factory=list)
    playbooks: dict[str, tuple[Playbook, SourceDocument]] = field(default_factory=dict)


class DirectoryTemplates:
    """Templates in the ``templates/`` folder of each given directory, never outside it."""

    def __init__(self, roots: Sequence[Path]) -> None:
        self.roots = list(roots)

    def read(self, name: str) -> str | None:
        """The first root's file of that name, or None."""
        for root in self.roots:
            path = (root / name).resolve()
            if root.resolve() in path.parents and path.is_file():
                try:
                    return path.read_text(encoding="utf-8")
                except UnicodeDecodeError:
                    raise ValueError("not a UTF-8 text file") from None
                except OSError as error:
                    reason = (error.strerror or str(error)).lower()
                    raise ValueError(f"could not read file: {reason}") from None
        return None

    def where(self) -> str:
        """The folders looked in."""
        return ", ".join(str(r) for r in self.roots) or "no templates/ folder given"


class StoredTemplates:
    """Templates among a set's file texts: the entries under ``templates/``."""

    def __init__(self, files: Mapping[str, str]) -> None:
        self.files = files

    def read(self, name: str) -> str | None:
        """The text stored as ``templates/<name>``, or None (nothing outside that folder)."""
        path = posixpath.normpath(posixpath.join(TEMPLATES, name))
        if not path.startswith(f"{TEMPLATES}/"):
            return None
        return self.files.get(path)

    def where(self) -> str:
        """The folder looked in."""
        return f"{TEMPLATES}/"


def load_playbook_set(
    paths: Sequence[str | Path],
    *,
    retained: dict[tuple[str, int], CompiledPlaybook] | None = None,
) -> LoadResult:
    """Validate and compile everything under ``paths`` (files or directories).

    Templates named by ``template:`` are looked up in a ``templates/`` folder of each given
    directory. ``retained`` keeps earlier playbook versions for sequences still running on them.
    """
    files, problems = find_files([str(p) for p in paths])
    sources = [_Source(*load_file(path), _bytes_of(path)) for path in files]
    roots = [Path(p) / TEMPLATES for p in paths if Path(p).is_dir()]
    return _compile(sources, DirectoryTemplates(roots), files, problems, retained)


def load_texts(
    files: Mapping[str, str],
    *,
    retained: dict[tuple[str, int], CompiledPlaybook] | None = None,
) -> LoadResult:
    """Validate and compile a set given as file texts by relative path (as stored in Redis).

    Exactly what :func:`load_playbook_set` does for a directory holding these files: every
    ``.yaml``/``.yml`` file not hidden is a document, templates live under ``templates/``.
    """
    names = sorted((PurePosixPath(n) for n in files if is_document(n)), key=lambda p: p.parts)
    sources = [
        _Source(*load_text(files[str(n)], str(n)), files[str(n)].encode("utf-8")) for n in names
    ]
    return _compile(sources, StoredTemplates(files), [Path(n) for n in names], [], retained)


def is_document(name: str) -> bool:
    """Whether a relative path names a YAML document, as a directory walk would find it."""
    parts = PurePosixPath(name).parts
    hidden = any(part.startswith(".") for part in parts)
    return not hidden and name.lower().endswith((".yaml", ".yml"))


@dataclass
class _Source:
    documents: list[SourceDocument]
    problems: list[Problem]
    raw: bytes


def _bytes_of(path: Path) -> bytes:
    """A file's bytes for the digest (empty when it cannot be read: that is a Problem already)."""
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _compile(
    sources: list[_Source],
    templates: TemplateSource,
    files: list[Path],
    problems: list[Problem],
    retained: dict[tuple[str, int], CompiledPlaybook] | None,
) -> LoadResult:
    """The one compile path, wherever the texts came from."""
    digest = hashlib.sha256()
    parsed = _Parsed()
    for source in sources:
        problems += source.problems
        digest.update(source.raw)
        for document in source.documents:
            problems += _parse(document, parsed)
    if len(parsed.schemas) > 1:
        _, second = parsed.schemas[1]
        problems.append(second.problem(["kind"], "only one account schema may be loaded"))
    if len(parsed.destinations) > 1:
        _, second = parsed.destinations[1]
        problems.append(second.problem(["kind"], "only one destinations document may be loaded"))
    schema = parsed.schemas[0][0] if parsed.schemas else DEFAULT_SCHEMA
    destinations = parsed.destinations[0][0] if parsed.destinations else NO_DESTINATIONS
    journeys = {jid: journey for jid, (journey, _) in parsed.journeys.items()}
    compiler = PlaybookCompiler(schema, journeys, destinations, templates)
    transitions = []
    for journey, document in parsed.journeys.values():
        found, journey_problems = compiler.transitions(journey, document)
        transitions += found
        problems += journey_problems
    playbooks: list[CompiledPlaybook] = []
    for playbook, document in parsed.playbooks.values():
        compiled, playbook_problems = compiler.playbook(playbook, document)
        problems += playbook_problems
        if compiled is not None:
            playbooks.append(compiled)
    if problems:
        return LoadResult(None, sorted(set(problems)), files)
    pset = PlaybookSet(
        journeys=journeys,
        schema=schema,
        destinations=destinations,
        playbooks=playbooks,
        transitions=transitions,
        retained=retained,
        digest=digest.hexdigest()[:16],
    )
    return LoadResult(pset, [], files)


def _parse(document: SourceDocument, parsed: _Parsed) -> list[Problem]:
    """Validate one YAML document against the model its ``kind`` names."""
    data: Any = document.data
    if not isinstance(data, dict):
        return [document.problem([], "expected a mapping with a 'kind' field")]
    kind = data.get("kind")
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        known = ", ".join(KINDS)
        found = f"'{kind}'" if kind is not None else "nothing"
        return [document.problem(["kind"], f"kind: expected one of {known}, found {found}")]
    try:
        value = model.model_validate(data)
    except ValidationError as error:
        return problems_from_validation(document, error)
    if isinstance(value, Journey):
        if value.id in parsed.journeys:
            return [document.problem(["id"], f"id: journey '{value.id}' is defined twice")]
        parsed.journeys[value.id] = (value, document)
    elif isinstance(value, AccountSchema):
        parsed.schemas.append((value, document))
    elif isinstance(value, Destinations):
        parsed.destinations.append((value, document))
    elif isinstance(value, Playbook):
        if value.id in parsed.playbooks:
            other = parsed.playbooks[value.id][1]
            where = f"{other.file}:{other.line_of(['id'])}"
            return [
                document.problem(["id"], f"id: playbook '{value.id}' is also defined at {where}")
            ]
        parsed.playbooks[value.id] = (value, document)
    return []
