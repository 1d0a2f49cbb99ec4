"""Journey models: ordered stages on parallel tracks, moved by events, never forced to be linear."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.core.durations import parse_duration

Phase = Literal["pre", "post", "outcome"]

_ID = r"^[a-z][a-z0-9_]*$"


class Authored(BaseModel):
    """Base for everything CS ops write: a typo is an error, not a silent default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Stage(Authored):
    """One stage of a track. ``outcome`` stages (churned, lost) are terminal."""

    id: str = Field(pattern=_ID)
    phase: Phase = "post"
    description: str = ""
    #: Earlier stages an event may move the account back to from here.
    back_to: tuple[str, ...] = ()
    #: An account in this stage longer than this counts as stalled in the KPIs.
    stalled_after: str | None = None

    @field_validator("stalled_after")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)  # raises with a message naming what was found
        return value


class Transition(Authored):
    """An event that moves an account to a stage, optionally only from some stages or when a
    CEL condition holds."""

    event: str = Field(min_length=1)
    to: str
    from_: tuple[str, ...] = Field(default=(), alias="from")
    when: str | None = None


class Track(Authored):
    """One track of a journey: lifecycle, renewal, risk — each with its own current stage."""

    description: str = ""
    stages: tuple[Stage, ...] = Field(min_length=1)
    transitions: tuple[Transition, ...] = ()
    #: Stages a brand-new account may enter by an event; default: every pre-purchase stage
    #: (or every stage when the track has no pre-purchase stages).
    entry: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _stage_references(self) -> Track:
        ids = [s.id for s in self.stages]
        known = set(ids)
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate stage ids: {', '.join(dupes)}")
        order = {s.id: i for i, s in enumerate(self.stages)}
        problems: list[str] = []

        def check(name: str, where: str) -> None:
            if name not in known:
                problems.append(f"{where}: unknown stage '{name}' (stages: {', '.join(order)})")

        for stage in self.stages:
            for back in stage.back_to:
                check(back, f"stage {stage.id} back_to")
                if back in order and order[back] >= order[stage.id]:
                    problems.append(f"stage {stage.id} back_to: '{back}' is not an earlier stage")
        for i, t in enumerate(self.transitions):
            check(t.to, f"transitions[{i}].to")
            for f in t.from_:
                check(f, f"transitions[{i}].from")
        for e in self.entry:
            check(e, "entry")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def index(self, stage: str) -> int:
        """Position of a stage in the track's order."""
        for i, s in enumerate(self.stages):
            if s.id == stage:
                return i
        raise KeyError(stage)

    def stage(self, stage: str) -> Stage:
        return self.stages[self.index(stage)]

    def entry_stages(self) -> tuple[str, ...]:
        if self.entry:
            return self.entry
        pre = tuple(s.id for s in self.stages if s.phase == "pre")
        return pre or tuple(s.id for s in self.stages if s.phase != "outcome")

    def allows(self, current: str | None, target: str, *, late: bool) -> str | None:
        """Why an event-driven move from ``current`` to ``target`` is refused, or None if allowed.

        Forward moves and skips are allowed; backward moves only to a stage listed in the
        current stage's ``back_to``; outcomes are left only by transitions that name them
        in ``from``; a late event never moves an account backwards.
        """
        if current is None:
            if target in self.entry_stages():
                return None
            return f"'{target}' is not an entry stage of this track"
        if current == target:
            return "already in this stage"
        here, there = self.index(current), self.index(target)
        if there < here and self.stages[there].phase != "outcome":
            if late:
                return "a late event does not move an account backwards"
            leaving_outcome = self.stages[here].phase == "outcome"
            if not leaving_outcome and target not in self.stages[here].back_to:
                return f"moving back from '{current}' to '{target}' is not allowed"
        return None


class Journey(Authored):
    """A journey model: named tracks of ordered stages."""

    kind: Literal["journey"]
    id: str = Field(pattern=_ID)
    name: str
    description: str = ""
    #: The main track, the one drawn as the hourglass or flywheel.
    primary: str = "lifecycle"
    tracks: dict[str, Track] = Field(min_length=1)

    @field_validator("tracks")
    @classmethod
    def _track_ids(cls, tracks: dict[str, Track]) -> dict[str, Track]:
        for name in tracks:
            if not re.match(_ID, name):
                raise ValueError(f"track name '{name}' must be lower_snake_case")
        return tracks

    @model_validator(mode="after")
    def _primary_exists(self) -> Journey:
        if self.primary not in self.tracks:
            raise ValueError(
                f"primary: unknown track '{self.primary}' (tracks: {', '.join(self.tracks)})"
            )
        return self
