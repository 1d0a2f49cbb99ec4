"""One application of one event to one account: the shared working state of the core's stages."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.core.context import LazyView, build_context, forget_account
from engine.core.effects import Effects, NearMiss, StageChange, TimerArm, TimerCancel
from engine.core.event import Event
from engine.core.metrics import metric_values
from engine.core.playbook_set import CompiledPlaybook, CompiledTrigger, PlaybookSet
from engine.core.state import AccountState, Timer, TrackState


@functools.lru_cache(maxsize=1024)
def known_zone(name: str) -> bool:
    """Whether ``name`` is an IANA time zone (an account's trait may hold anything)."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


#: The trait naming the one journey model an account follows; without it, every journey
#: whose events the account sends moves it, and every playbook applies.
JOURNEY_TRAIT = "journey"

#: Cascades (a playbook's move_stage firing another playbook) stop after this many firings.
MAX_FIRINGS = 64


@dataclass(slots=True, init=False)
class Firing:
    """A playbook trigger that matched, waiting to pass its conditions and policy."""

    playbook: CompiledPlaybook
    trigger: CompiledTrigger
    occurrence: str

    def __init__(self, playbook: CompiledPlaybook, trigger: CompiledTrigger, occurrence: str):
        # Written out: compiled, a dataclass's generated __init__ stays interpreted (~10x).
        self.playbook, self.trigger, self.occurrence = playbook, trigger, occurrence


class Application:
    """Working state while applying one event: the account, the clock reading, the effects."""

    def __init__(self, state: AccountState, pset: PlaybookSet, event: Event | None, now: float):
        self.state = state
        self.pset = pset
        self.event = event
        self.now = now
        self.effects = Effects()
        self.queue: list[Firing] = []
        self.fired = 0
        #: How many times the account changed during this application (see ``touched``).
        self.changes = 0
        self._context: LazyView | None = None
        self._metrics: dict[str, float] | None = None

    # -- the condition/template context, rebuilt only after the state changed ----------------

    def context(self) -> LazyView:
        if self._context is None:
            self._context = build_context(
                self.state, self.pset.schema, self.event, self.now, self.metrics
            )
        return self._context

    def conditions(self) -> dict[str, Any]:
        """What conditions read: each condition projects out only the fields it names."""
        return self.context()

    def metrics(self) -> dict[str, float]:
        """Every declared metric's value now, computed once until the state changes."""
        if self._metrics is None:
            self._metrics = metric_values(self.state, self.pset.schema, self.now)
        return self._metrics

    def touched(self) -> None:
        """The account changed: conditions and templates must see it anew."""
        if self._context is not None:
            forget_account(self._context)
        self.changes += 1

    def recorded(self) -> None:
        """Metrics took an event: their values must be computed anew (time is fixed)."""
        self._metrics = None
        if self._context is not None:
            forget_account(self._context)

    @property
    def timezone(self) -> str:
        name = self.pset.schema.timezone_trait
        tz = self.state.traits.get(name) if name else None
        return tz if isinstance(tz, str) and tz and known_zone(tz) else "UTC"

    # -- timers ---------------------------------------------------------------------------

    def arm(self, timer_id: str, due: float) -> None:
        """Arm or re-arm a timer: a new generation makes any earlier firing stale."""
        self.state.timer_seq += 1
        generation = self.state.timer_seq
        self.state.timers[timer_id] = Timer(generation, due)
        self.effects.timers_armed.append(TimerArm(timer_id, generation, due))

    def cancel(self, timer_id: str) -> None:
        if self.state.timers.pop(timer_id, None) is not None:
            self.effects.timers_cancelled.append(TimerCancel(timer_id))

    def cancel_all_timers(self) -> None:
        for timer_id in list(self.state.timers):
            self.cancel(timer_id)

    # -- near-misses and firings ----------------------------------------------------------

    def miss(self, playbook: str, occurrence: str, reason: str) -> None:
        self.effects.near_misses.append(NearMiss(playbook, occurrence, reason, self.now))

    def follows(self, playbook: CompiledPlaybook) -> bool:
        """Whether the playbook applies: one that names a journey leaves alone the accounts
        that follow another journey (the ``journey`` trait)."""
        chosen = self.state.traits.get(JOURNEY_TRAIT)
        return playbook.journey is None or not isinstance(chosen, str) or chosen == playbook.journey

    def fire(self, playbook: CompiledPlaybook, trigger: CompiledTrigger, occurrence: str) -> None:
        if not self.follows(playbook):
            return
        if self.fired >= MAX_FIRINGS:
            self.miss(playbook.id, occurrence, f"more than {MAX_FIRINGS} firings for one event")
            return
        self.fired += 1
        self.queue.append(Firing(playbook, trigger, occurrence))

    # -- stages ---------------------------------------------------------------------------

    def move(self, key: str, to: str, *, cause: str, occurrence: str) -> None:
        """Put the account in ``to`` on track ``key`` and fire the stage triggers it causes."""
        current = self.state.tracks.get(key)
        before = current.stage if current else None
        if before == to:
            return
        if current is None:
            self.state.tracks[key] = TrackState(to, self.now)
        else:
            current.move(to, self.now)
        self.touched()
        self.effects.stage_changes.append(StageChange(key, before, to, self.now, cause))
        occ = f"{occurrence}>{key}:{to}"
        if before is not None:
            for playbook, trigger in self.pset.on_stage.get(("exited", key, before), ()):
                self.fire(playbook, trigger, occ)
        for playbook, trigger in self.pset.on_stage.get(("entered", key, to), ()):
            self.fire(playbook, trigger, occ)
        if self.pset.track(key).stage(to).phase == "outcome":
            self.end_everything(f"entered outcome '{to}' on {key}")

    def end_everything(self, why: str) -> None:
        """A terminal outcome: every timer cancelled, every running sequence ended."""
        self.cancel_all_timers()
        for playbook_id, book in self.state.books.items():
            if book.run is not None:
                self.miss(playbook_id, book.run.occurrence, f"sequence ended: {why}")
                book.run = None
