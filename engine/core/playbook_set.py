"""A loaded, compiled set of journeys, schema, destinations and playbooks, indexed by trigger."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from engine.core.conditions import Condition
from engine.core.destinations import Destinations
from engine.core.durations import Duration
from engine.core.journeys import Journey, Track, Transition
from engine.core.playbooks import Playbook, Trigger
from engine.core.schema import AccountSchema
from engine.core.templates import CompiledTemplate


@dataclass(frozen=True, slots=True)
class CompiledTrigger:
    index: int
    spec: Trigger
    kind: str
    filter: Condition | None = None


@dataclass(frozen=True, slots=True)
class CompiledAction:
    """An action with its text fields compiled as templates (``payload.x`` for webhook bodies)."""

    ref: str
    kind: str
    spec: Any
    texts: dict[str, CompiledTemplate] = field(default_factory=dict)
    html: bool = False


@dataclass(frozen=True, slots=True)
class CompiledStep:
    kind: str
    actions: tuple[CompiledAction, ...] = ()
    otherwise: tuple[CompiledAction, ...] = ()
    wait: Duration | None = None
    condition: Condition | None = None


@dataclass(frozen=True, slots=True)
class CompiledPlaybook:
    spec: Playbook
    journey: str | None
    file: str
    triggers: tuple[CompiledTrigger, ...]
    conditions: tuple[Condition, ...]
    unless: tuple[Condition, ...]
    steps: tuple[CompiledStep, ...]
    exit_conditions: tuple[Condition, ...] = ()
    goal_condition: Condition | None = None
    #: The spec's id, version and mode, copied once: the core reads them for every firing.
    id: str = field(init=False)
    version: int = field(init=False)
    mode: str = field(init=False)
    #: ``journey.track`` of the playbook's own track, built once.
    own_track: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", self.spec.id)
        object.__setattr__(self, "version", self.spec.version)
        object.__setattr__(self, "mode", self.spec.mode)
        object.__setattr__(self, "own_track", f"{self.journey}.{self.spec.track}")

    def track_key(self, track: str | None = None, journey: str | None = None) -> str:
        if track is None and journey is None:
            return self.own_track
        return f"{journey or self.journey}.{track or self.spec.track}"


@dataclass(frozen=True, slots=True)
class CompiledTransition:
    journey: str
    track: str
    spec: Transition
    when: Condition | None = None

    @property
    def key(self) -> str:
        return f"{self.journey}.{self.track}"


Hook = tuple[CompiledPlaybook, CompiledTrigger]
#: A threshold trigger with what it reads (a metric's name; None for the health score) and
#: its bound, taken out of the authored model once: (band, below, above), one of them set.
Crossing = tuple[
    CompiledPlaybook, CompiledTrigger, str | None, str | None, float | None, float | None
]


@dataclass(frozen=True, slots=True)
class Followed:
    """The timed and threshold triggers of the playbooks that apply to accounts following one
    journey (each in the set's order), and the windowed metrics those thresholds read, by the
    track whose terminal outcome silences them (None for playbooks on no journey)."""

    timed: tuple[Hook, ...]
    thresholds: tuple[Crossing, ...]
    watched: tuple[tuple[str | None, frozenset[str]], ...]


class PlaybookSet:
    """Everything the core needs to apply events, with indexes so an event only meets the
    playbooks whose trigger can match it."""

    def __init__(
        self,
        *,
        journeys: dict[str, Journey],
        schema: AccountSchema,
        destinations: Destinations,
        playbooks: list[CompiledPlaybook],
        transitions: list[CompiledTransition],
        retained: dict[tuple[str, int], CompiledPlaybook] | None = None,
        digest: str = "",
    ) -> None:
        self.journeys = journeys
        self.schema = schema
        self.destinations = destinations
        self.playbooks = tuple(sorted(playbooks, key=lambda p: (-p.spec.priority, p.id)))
        self.by_id = {p.id: p for p in self.playbooks}
        self.retained = dict(retained or {})
        for p in self.playbooks:
            self.retained[(p.id, p.version)] = p
        self.digest = digest
        self.outcomes = {
            (f"{j}.{t}", s.id)
            for j, journey in journeys.items()
            for t, track in journey.tracks.items()
            for s in track.stages
            if s.phase == "outcome"
        }
        self.transitions: dict[str, list[CompiledTransition]] = defaultdict(list)
        for transition in transitions:
            self.transitions[transition.spec.event].append(transition)
        self.on_event: dict[str, list[Hook]] = defaultdict(list)
        self.on_call: dict[str, list[Hook]] = defaultdict(list)
        self.on_stage: dict[tuple[str, str, str], list[Hook]] = defaultdict(list)
        self.timed: list[Hook] = []
        self.thresholds: list[Hook] = []
        self.inactivity_events: dict[str, list[Hook]] = defaultdict(list)
        for p in self.playbooks:
            if p.mode == "disabled":
                continue
            for t in p.triggers:
                spec = t.spec
                if spec.event is not None:
                    self.on_event[spec.event].append((p, t))
                elif spec.call is not None:
                    self.on_call[spec.call].append((p, t))
                elif spec.stage_entered is not None:
                    key = p.track_key(spec.track)
                    self.on_stage[("entered", key, spec.stage_entered)].append((p, t))
                elif spec.stage_exited is not None:
                    key = p.track_key(spec.track)
                    self.on_stage[("exited", key, spec.stage_exited)].append((p, t))
                elif spec.metric is not None or spec.health is not None:
                    self.thresholds.append((p, t))
                else:
                    self.timed.append((p, t))
                    if spec.inactivity is not None:
                        for name in spec.inactivity.events:
                            self.inactivity_events[name].append((p, t))
        #: Each playbook's place in priority order: highest priority first, then by id.
        self.rank = {p.id: i for i, p in enumerate(self.playbooks)}
        self._named_journeys = {p.journey for p in self.playbooks if p.journey is not None}
        self._followed: dict[str | None, Followed] = {}

    def followed(self, journey: object) -> Followed:
        """The hooks that apply to an account whose ``journey`` trait is ``journey``: a playbook
        that names a journey leaves alone the accounts that follow another one."""
        if isinstance(journey, str):
            key: str | None = journey if journey in self._named_journeys else ""
        else:
            key = None
        view = self._followed.get(key)
        if view is None:
            view = self._followed[key] = self._follow(key)
        return view

    def _follow(self, journey: str | None) -> Followed:
        def applies(hook: Hook) -> bool:
            return journey is None or hook[0].journey in (None, journey)

        health = {c.metric for c in self.schema.health.components if c.metric}
        thresholds: list[Crossing] = []
        watched: dict[str | None, set[str]] = {}
        for p, t in filter(applies, self.thresholds):
            metric = t.spec.metric
            bound = metric or t.spec.health
            assert bound is not None
            name = None if metric is None else metric.name or ""
            thresholds.append((p, t, name, bound.band, bound.below, bound.above))
            names = {metric.name} if metric is not None and metric.name else health
            track = p.track_key() if p.journey is not None else None
            watched.setdefault(track, set()).update(n for n in names if n in self.schema.metrics)
        return Followed(
            tuple(filter(applies, self.timed)),
            tuple(thresholds),
            tuple((track, frozenset(names)) for track, names in watched.items()),
        )

    def track(self, key: str) -> Track:
        journey, _, name = key.partition(".")
        return self.journeys[journey].tracks[name]

    def is_outcome(self, key: str, stage: str) -> bool:
        """Whether ``stage`` is a terminal outcome on track ``key``."""
        return (key, stage) in self.outcomes

    def version_of(self, playbook_id: str, version: int) -> CompiledPlaybook | None:
        return self.retained.get((playbook_id, version))

    def track_keys(self) -> list[str]:
        return [f"{j}.{t}" for j, journey in self.journeys.items() for t in journey.tracks]
