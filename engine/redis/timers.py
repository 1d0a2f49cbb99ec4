"""Timers on Redis: one member per account, the firings taken from the account's state.

An account's timers (id, generation, due) live in its state. A shard's timers sorted set holds
one member per account that has any, scored with its earliest due time: the commit script
writes that score with the state, so the two never disagree. When the score comes due, the
pop script takes the member off and appends one *wake* entry for the account to the shard's
stream; the drain, applying the wake, fires from the state as it is then every timer due by
the wake's time, in (due, timer id) order, as ordinary timer events of the core.
"""

from __future__ import annotations

from engine.core.event import TIMER, Event, TimerFiring
from engine.core.state import AccountState
from engine.runtime.store import DueTimer

#: The event kind of a wake entry in a shard stream (never a core event: the drain expands it).
WAKE = "wake"


def earliest_due(state: AccountState) -> float | None:
    """The account's score in the timers sorted set: its earliest due timer (None: no member)."""
    return min((float(timer.due) for timer in state.timers.values()), default=None)


def due_timers(state: AccountState, until: float) -> list[DueTimer]:
    """The account's timers due by ``until``, in (due, timer id) order: what a wake fires."""
    due = [
        DueTimer(state.account_id, timer_id, timer.generation, float(timer.due))
        for timer_id, timer in state.timers.items()
        if timer.due <= until
    ]
    due.sort(key=lambda timer: (timer.due, timer.timer_id))
    return due


def firing(timer: DueTimer) -> Event:
    """The core's timer event for a due timer (its generation tells a stale firing)."""
    return Event(
        kind=TIMER,
        message_id=f"timer:{timer.account_id}:{timer.timer_id}#{timer.generation}",
        ts=timer.due,
        account_id=timer.account_id,
        timer=TimerFiring(timer.timer_id, timer.generation, timer.due),
    )
