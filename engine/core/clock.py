"""The one injectable clock: wall time live, virtual time in simulations and tests."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Anything that tells the runner's time, as epoch seconds."""

    def now(self) -> float: ...


class SystemClock:
    """Wall-clock time, used by live runners."""

    def now(self) -> float:
        return time.time()


class VirtualClock:
    """A clock that only moves when told to; never moves backwards."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance_to(self, when: float) -> None:
        if when > self._now:
            self._now = when

    def advance(self, seconds: float) -> None:
        self._now += max(0.0, seconds)


def to_datetime(ts: float) -> datetime:
    """Epoch seconds to an aware UTC datetime."""
    return datetime.fromtimestamp(ts, tz=UTC)


def to_epoch(value: datetime) -> float:
    """An aware (or naive-as-UTC) datetime to epoch seconds."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def iso(ts: float) -> str:
    """Epoch seconds as an ISO-8601 UTC string with a Z suffix."""
    return to_datetime(ts).isoformat().replace("+00:00", "Z")
