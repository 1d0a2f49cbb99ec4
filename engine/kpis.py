"""Journey and playbook KPIs computed from account states and decided actions (pure)."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from engine.core.durations import Duration, parse_duration
from engine.core.effects import ActionEffect
from engine.core.journeys import Journey, Track
from engine.core.playbook_set import PlaybookSet
from engine.core.state import AccountState, TrackState

DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class StageKpis:
    """One stage of a journey's primary track.

    ``entered`` counts accounts that were ever in the stage (kept history plus current stage);
    ``progressed`` counts those of them that were later in a later, non-outcome stage;
    ``to_stage`` maps each later non-outcome stage to the share that later reached it.
    """

    stage: str
    phase: str
    accounts: int
    median_days_current: float | None
    median_days_completed: float | None
    entered: int
    progressed: int
    to_stage: dict[str, float]
    stalled: int
    stalled_after: str | None

    @property
    def conversion(self) -> float | None:
        """Share of accounts ever in this stage that later reached a later stage (None when
        no account was ever in it, or no non-outcome stage follows it)."""
        return self.progressed / self.entered if self.entered and self.to_stage else None


@dataclass(frozen=True, slots=True)
class JourneyKpis:
    """KPIs of one journey model: its primary track in detail, other tracks as counts."""

    journey: str
    name: str
    primary: str
    stages: list[StageKpis]
    tracks: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def accounts(self) -> int:
        """Accounts currently on the primary track."""
        return sum(s.accounts for s in self.stages)

    @property
    def stalled(self) -> int:
        """Accounts stalled in any stage of the primary track."""
        return sum(s.stalled for s in self.stages)

    def stage(self, stage: str) -> StageKpis:
        """The KPIs of one primary-track stage."""
        for s in self.stages:
            if s.stage == stage:
                return s
        raise KeyError(stage)


@dataclass(frozen=True, slots=True)
class PlaybookKpis:
    """What one playbook did across all accounts."""

    playbook: str
    name: str
    mode: str
    journey: str | None
    fired: int
    actions: int
    by_type: dict[str, int]
    by_mode: dict[str, int]
    goals: int
    has_goal: bool
    in_sequence: int


def journey_kpis(
    pset: PlaybookSet, states: Iterable[AccountState], now: float
) -> dict[str, JourneyKpis]:
    """KPIs per journey id, on each journey's primary track, with counts for its other tracks.

    Conversion from stage A to a later stage B: of the accounts whose kept path on the track
    (``TrackState.history`` visits in order, then the current stage) contains A, the share
    whose path contains B at some position after their first visit to A. "Later" means
    further down the track's stage order and not an outcome (churned, lost). History is
    bounded, so an account's oldest visits may be forgotten.
    """
    accounts = list(states)
    return {jid: _journey(jid, journey, accounts, now) for jid, journey in pset.journeys.items()}


def _journey(jid: str, journey: Journey, states: Sequence[AccountState], now: float) -> JourneyKpis:
    """KPIs of one journey."""
    key = f"{jid}.{journey.primary}"
    on_track = [s.tracks[key] for s in states if key in s.tracks]
    stages = _stages(journey.tracks[journey.primary], on_track, now)
    others = {
        name: _counts(track, [s.tracks.get(f"{jid}.{name}") for s in states])
        for name, track in journey.tracks.items()
        if name != journey.primary
    }
    return JourneyKpis(jid, journey.name, journey.primary, stages, others)


def _counts(track: Track, tracks: Iterable[TrackState | None]) -> dict[str, int]:
    """Accounts per stage of a track, in the track's stage order."""
    found = Counter(t.stage for t in tracks if t is not None)
    return {s.id: found[s.id] for s in track.stages}


def _stages(track: Track, tracks: Sequence[TrackState], now: float) -> list[StageKpis]:
    """Per-stage KPIs of one track."""
    paths = [[v.stage for v in t.history] + [t.stage] for t in tracks]
    out: list[StageKpis] = []
    for stage in track.stages:
        here = [t for t in tracks if t.stage == stage.id]
        done = [
            (v.left - v.entered) / DAY for t in tracks for v in t.history if v.stage == stage.id
        ]
        limit = parse_duration(stage.stalled_after) if stage.stalled_after else None
        later = [
            s.id
            for s in track.stages
            if s.phase != "outcome" and track.index(s.id) > track.index(stage.id)
        ]
        entered, progressed, reached = _conversion(paths, stage.id, set(later))
        out.append(
            StageKpis(
                stage=stage.id,
                phase=stage.phase,
                accounts=len(here),
                median_days_current=_median([(now - t.entered) / DAY for t in here]),
                median_days_completed=_median(done),
                entered=entered,
                progressed=progressed,
                to_stage={b: reached[b] / entered if entered else 0.0 for b in later},
                stalled=sum(1 for t in here if _stalled(t, limit, now)),
                stalled_after=stage.stalled_after,
            )
        )
    return out


def _conversion(
    paths: Iterable[list[str]], stage: str, later: set[str]
) -> tuple[int, int, Counter[str]]:
    """(accounts ever in ``stage``, how many later reached any of ``later``, reached per stage)."""
    entered = progressed = 0
    reached: Counter[str] = Counter()
    for path in paths:
        if stage not in path:
            continue
        entered += 1
        after = set(path[path.index(stage) + 1 :]) & later
        progressed += bool(after)
        reached.update(after)
    return entered, progressed, reached


def _stalled(track: TrackState, limit: Duration | None, now: float) -> bool:
    """Whether an account has sat in its current stage longer than the stage allows."""
    return limit is not None and now > limit.after(track.entered)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def playbook_kpis(
    pset: PlaybookSet, states: Iterable[AccountState], actions: Iterable[ActionEffect]
) -> list[PlaybookKpis]:
    """What each playbook of the set did, in the set's priority order."""
    fired: Counter[str] = Counter()
    goals: Counter[str] = Counter()
    running: Counter[str] = Counter()
    for state in states:
        for pid, book in state.books.items():
            fired[pid] += book.fired
            goals[pid] += book.goals
            running[pid] += book.run is not None
    by_type: dict[str, Counter[str]] = {}
    by_mode: dict[str, Counter[str]] = {}
    for action in actions:
        by_type.setdefault(action.playbook, Counter())[action.type] += 1
        by_mode.setdefault(action.playbook, Counter())[action.mode] += 1
    out: list[PlaybookKpis] = []
    for p in pset.playbooks:
        types = by_type.get(p.id, Counter())
        out.append(
            PlaybookKpis(
                playbook=p.id,
                name=p.spec.name,
                mode=p.mode,
                journey=p.journey,
                fired=fired[p.id],
                actions=sum(types.values()),
                by_type=dict(types.most_common()),
                by_mode=dict(by_mode.get(p.id, Counter())),
                goals=goals[p.id],
                has_goal=p.spec.goal is not None,
                in_sequence=running[p.id],
            )
        )
    return out
