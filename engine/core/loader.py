"""Load journeys, the account schema, destinations and playbooks from YAML into a compiled
``PlaybookSet``; every problem comes back as ``file:line: message``, never half-applied."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from engine.core.compile import PlaybookCompiler
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
    problems_from_validation,
)

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
    digest = hashlib.sha256()
    parsed = _Parsed()
    for path in files:
        documents, file_problems = load_file(path)
        problems += file_problems
        digest.update(path.read_bytes() if path.is_file() else b"")
        for document in documents:
            problems += _parse(document, parsed)
    template_roots = [Path(p) / "templates" for p in paths if Path(p).is_dir()]
    if len(parsed.schemas) > 1:
        _, second = parsed.schemas[1]
        problems.append(second.problem(["kind"], "only one account schema may be loaded"))
    if len(parsed.destinations) > 1:
        _, second = parsed.destinations[1]
        problems.append(second.problem(["kind"], "only one destinations document may be loaded"))
    schema = parsed.schemas[0][0] if parsed.schemas else DEFAULT_SCHEMA
    destinations = parsed.destinations[0][0] if parsed.destinations else NO_DESTINATIONS
    journeys = {jid: journey for jid, (journey, _) in parsed.journeys.items()}
    compiler = PlaybookCompiler(schema, journeys, destinations, template_roots)
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
