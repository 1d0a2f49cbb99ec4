"""What applying an event decides: actions, timer changes, stage changes, and near-misses.

Every application builds several, so each spells out its ``__init__``: compiled (mypyc), a
dataclass's generated ``__init__`` stays interpreted, ~10 times slower (and a frozen one goes
through ``object.__setattr__``). The dataclass decorator still gives them ``==`` and a repr."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any


def idempotency_key(playbook: str, account: str, occurrence: str, step: str) -> str:
    """Stable key of one action: not the playbook version, so an edit does not resend."""
    raw = f"{playbook}\x1f{account}\x1f{occurrence}\x1f{step}".encode()
    return hashlib.blake2b(raw, digest_size=12).hexdigest()


@dataclass(slots=True, init=False)
class ActionEffect:
    """One action a playbook decided, with its rendered payload."""

    key: str
    at: float
    account: str
    playbook: str
    version: int
    type: str
    mode: str
    payload: dict[str, Any]
    step: str
    #: Not to be delivered before this time (quiet hours); None: at once.
    not_before: float | None

    def __init__(
        self,
        key: str,
        at: float,
        account: str,
        playbook: str,
        version: int,
        type: str,
        mode: str,
        payload: dict[str, Any],
        step: str,
        not_before: float | None = None,
    ) -> None:
        self.key, self.at, self.account, self.playbook = key, at, account, playbook
        self.version, self.type, self.mode = version, type, mode
        self.payload, self.step, self.not_before = payload, step, not_before

    @property
    def deliver_at(self) -> float:
        """When delivery may start: the decision time, or the end of quiet hours."""
        return self.not_before if self.not_before is not None else self.at

    def to_dict(self) -> dict[str, Any]:
        out = {
            "key": self.key,
            "at": self.at,
            "account": self.account,
            "playbook": self.playbook,
            "version": self.version,
            "type": self.type,
            "mode": self.mode,
            "payload": self.payload,
            "step": self.step,
        }
        if self.not_before is not None:
            out["not_before"] = self.not_before
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ActionEffect:
        return cls(**data)


@dataclass(slots=True, init=False)
class TimerArm:
    """Arm (or re-arm, with a new generation) a timer of the account."""

    timer_id: str
    generation: int
    due: float

    def __init__(self, timer_id: str, generation: int, due: float) -> None:
        self.timer_id, self.generation, self.due = timer_id, generation, due


@dataclass(slots=True, init=False)
class TimerCancel:
    timer_id: str

    def __init__(self, timer_id: str) -> None:
        self.timer_id = timer_id


@dataclass(slots=True, init=False)
class StageChange:
    """An account moved on a track (``journey.track``); ``cause`` says what moved it."""

    track: str
    from_stage: str | None
    to_stage: str
    at: float
    cause: str

    def __init__(self, track: str, from_stage: str | None, to_stage: str, at: float, cause: str):
        self.track, self.from_stage, self.to_stage, self.at = track, from_stage, to_stage, at
        self.cause = cause


@dataclass(slots=True, init=False)
class NearMiss:
    """A playbook whose trigger matched but which did not act, and why."""

    playbook: str
    occurrence: str
    reason: str
    at: float

    def __init__(self, playbook: str, occurrence: str, reason: str, at: float) -> None:
        self.playbook, self.occurrence, self.reason, self.at = playbook, occurrence, reason, at


@dataclass(slots=True, init=False)
class Effects:
    """Everything one ``apply`` decided, in the order it was decided."""

    actions: list[ActionEffect]
    timers_armed: list[TimerArm]
    timers_cancelled: list[TimerCancel]
    stage_changes: list[StageChange]
    near_misses: list[NearMiss]
    #: A stale timer firing or an event the core could not place: dropped, with the reason.
    dropped: str | None

    def __init__(
        self,
        actions: list[ActionEffect] | None = None,
        timers_armed: list[TimerArm] | None = None,
        timers_cancelled: list[TimerCancel] | None = None,
        stage_changes: list[StageChange] | None = None,
        near_misses: list[NearMiss] | None = None,
        dropped: str | None = None,
    ) -> None:
        self.actions = actions if actions is not None else []
        self.timers_armed = timers_armed if timers_armed is not None else []
        self.timers_cancelled = timers_cancelled if timers_cancelled is not None else []
        self.stage_changes = stage_changes if stage_changes is not None else []
        self.near_misses = near_misses if near_misses is not None else []
        self.dropped = dropped

    def extend(self, other: Effects) -> None:
        self.actions += other.actions
        self.timers_armed += other.timers_armed
        self.timers_cancelled += other.timers_cancelled
        self.stage_changes += other.stage_changes
        self.near_misses += other.near_misses
