"""The core's own view of an event: plain, already validated, cheap to build and to copy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Event kinds: the Segment calls, plus ``timer`` for a durable timer firing.
SEGMENT_KINDS = ("track", "identify", "group", "page", "screen", "alias")
TIMER = "timer"


@dataclass(slots=True)
class TimerFiring:
    """Which timer fired: its id and the generation it was armed with."""

    timer_id: str
    generation: int
    due: float


@dataclass(slots=True)
class Event:
    """One event as the core applies it to one account.

    ``ts`` is the event's own timestamp (epoch seconds): windows and "last seen" use it.
    ``name`` is the ``event`` of a ``track`` call, or the page/screen name.
    """

    kind: str
    message_id: str
    ts: float
    account_id: str | None = None
    user_id: str | None = None
    anonymous_id: str | None = None
    name: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    traits: dict[str, Any] = field(default_factory=dict)
    previous_id: str | None = None
    timer: TimerFiring | None = None

    def to_dict(self) -> dict[str, Any]:
        """A compact JSON-ready form (used for streams and parked events)."""
        out: dict[str, Any] = {"k": self.kind, "m": self.message_id, "t": self.ts}
        for key, value in (
            ("a", self.account_id),
            ("u", self.user_id),
            ("n", self.anonymous_id),
            ("e", self.name),
            ("p", self.properties),
            ("r", self.traits),
            ("v", self.previous_id),
        ):
            if value:
                out[key] = value
        if self.timer is not None:
            out["x"] = [self.timer.timer_id, self.timer.generation, self.timer.due]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        timer = data.get("x")
        return cls(
            kind=data["k"],
            message_id=data["m"],
            ts=float(data["t"]),
            account_id=data.get("a"),
            user_id=data.get("u"),
            anonymous_id=data.get("n"),
            name=data.get("e"),
            properties=data.get("p") or {},
            traits=data.get("r") or {},
            previous_id=data.get("v"),
            timer=TimerFiring(timer[0], int(timer[1]), float(timer[2])) if timer else None,
        )
