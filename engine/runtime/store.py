"""The store interface: account states, durable timers, the action outbox, tasks, dedupe.

Two implementations: the in-memory store (embedded mode, simulations, tests) and the Redis
store (production). Both pass the same contract tests.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from engine.core.effects import ActionEffect, Effects, TimerArm
from engine.core.playbooks import DELIVERED
from engine.core.state import AccountState


@dataclass(frozen=True, slots=True)
class DueTimer:
    """A timer whose time has come, popped from the store."""

    account_id: str
    timer_id: str
    generation: int
    due: float


@dataclass
class Commit:
    """Everything one batch decided, written together: states, timer changes, outbox entries.

    Timer changes are netted per timer: the last decision about a timer in the batch wins,
    so a store may write cancels before arms.
    """

    states: list[AccountState] = field(default_factory=list)
    #: (account, timer id) -> the timer as armed, or None when it was cancelled.
    timers: dict[tuple[str, str], TimerArm | None] = field(default_factory=dict)
    actions: list[ActionEffect] = field(default_factory=list)
    _added: set[int] = field(default_factory=set, repr=False, compare=False)

    @property
    def armed(self) -> list[tuple[str, TimerArm]]:
        return [(account, arm) for (account, _), arm in self.timers.items() if arm is not None]

    @property
    def cancelled(self) -> list[tuple[str, str]]:
        return [key for key, arm in self.timers.items() if arm is None]

    def add(self, state: AccountState, effects: Effects) -> None:
        """Add one event's effects for ``state`` (as it is after the event)."""
        if id(state) not in self._added:  # by identity: comparing states would be slow
            self._added.add(id(state))
            self.states.append(state)
        if effects.timers_armed or effects.timers_cancelled:
            self._add_timers(state, effects)
        if effects.actions:
            self.actions += [a for a in effects.actions if a.mode == "live" and a.type in DELIVERED]

    def _add_timers(self, state: AccountState, effects: Effects) -> None:
        """Net the event's timer arms and cancels into the batch's."""
        account = state.account_id
        armed = {a.timer_id: a for a in effects.timers_armed}
        cancelled = {c.timer_id for c in effects.timers_cancelled}
        for timer_id in cancelled - armed.keys():
            self.timers[(account, timer_id)] = None
        for timer_id, arm in armed.items():
            final: TimerArm | None = arm
            if timer_id in cancelled:  # both in one event: the account's state says which won
                timer = state.timers.get(timer_id)
                final = TimerArm(timer_id, timer.generation, timer.due) if timer else None
            self.timers[(account, timer_id)] = final


class Store(ABC):
    """Where the engine keeps everything durable."""

    @abstractmethod
    def load(self, account_ids: Iterable[str]) -> dict[str, AccountState]:
        """The stored states of these accounts (unknown accounts are absent)."""

    def state(self, account_id: str) -> AccountState | None:
        """One account's stored state (None for an unknown account)."""
        return self.load([account_id]).get(account_id)

    @abstractmethod
    def commit(self, commit: Commit) -> None:
        """Write states, timer changes and outbox entries together, all or nothing.

        An outbox entry whose idempotency key is already known is not added again.
        """

    @abstractmethod
    def account_ids(self) -> Iterator[str]:
        """Every account the store holds."""

    @abstractmethod
    def pop_due(self, now: float, limit: int = 1000) -> list[DueTimer]:
        """Remove and return timers due at or before ``now``, earliest first."""

    @abstractmethod
    def next_due(self) -> float | None:
        """When the earliest open timer is due, if any."""

    @abstractmethod
    def pending_actions(self, limit: int = 1000) -> list[ActionEffect]:
        """Outbox entries not yet delivered, oldest first."""

    @abstractmethod
    def mark_delivered(self, key: str, receipt: str) -> None:
        """Record that the action with this idempotency key was delivered."""

    @abstractmethod
    def delivery(self, key: str) -> str | None:
        """The receipt of a delivered action, or None."""

    @abstractmethod
    def remember_message(self, message_id: str) -> bool:
        """True the first time a messageId is seen (within the dedupe window), else False."""

    @abstractmethod
    def save_task(self, task: dict[str, Any]) -> None:
        """Store a CSM task (keyed by its ``task_id``); saving it again changes nothing."""

    @abstractmethod
    def tasks(self, *, status: str | None = None) -> list[dict[str, Any]]:
        """Tasks, optionally only ``open`` or ``done`` ones."""

    @abstractmethod
    def complete_task(self, task_id: str, at: float) -> dict[str, Any] | None:
        """Mark a task done; the task, or None if there is no such task."""
