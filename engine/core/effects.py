"""What applying an event decides: actions, timer changes, stage changes, and near-misses.

None of these is frozen: compiled (mypyc), a frozen dataclass is built through
``object.__setattr__``, three times slower, and every application builds several."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any


def idempotency_key(playbook: str, account: str, occurrence: str, step: str) -> str:
    """Stable key of one action: not the playbook version, so an edit does not resend."""
    raw = f"{playbook}\x1f{account}\x1f{occurrence}\x1f{step}".encode()
    return hashlib.blake2b(raw, digest_size=12).hexdigest()


@dataclass(slots=True)
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
    not_before: float | None = None

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


@dataclass(slots=True)
class TimerArm:
    """Arm (or re-arm, with a new generation) a timer of the account."""

    timer_id: str
    generation: int
    due: float


@dataclass(slots=True)
class TimerCancel:
    timer_id: str


@dataclass(slots=True)
class StageChange:
    """An account moved on a track (``journey.track``); ``cause`` says what moved it."""

    track: str
    from_stage: str | None
    to_stage: str
    at: float
    cause: str


@dataclass(slots=True)
class NearMiss:
    """A playbook whose trigger matched but which did not act, and why."""

    playbook: str
    occurrence: str
    reason: str
    at: float


@dataclass(slots=True)
class Effects:
    """Everything one ``apply`` decided, in the order it was decided."""

    actions: list[ActionEffect] = field(default_factory=list)
    timers_armed: list[TimerArm] = field(default_factory=list)
    timers_cancelled: list[TimerCancel] = field(default_factory=list)
    stage_changes: list[StageChange] = field(default_factory=list)
    near_misses: list[NearMiss] = field(default_factory=list)
    #: A stale timer firing or an event the core could not place: dropped, with the reason.
    dropped: str | None = None

    def extend(self, other: Effects) -> None:
        self.actions += other.actions
        self.timers_armed += other.timers_armed
        self.timers_cancelled += other.timers_cancelled
        self.stage_changes += other.stage_changes
        self.near_misses += other.near_misses
