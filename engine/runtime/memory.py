"""The in-memory store: plain Python structures, fast enough for months of simulated events."""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any

from engine.core.effects import ActionEffect
from engine.core.state import AccountState
from engine.runtime.store import Commit, DueTimer, Store

#: How many messageIds the in-memory store remembers for deduplication.
MAX_REMEMBERED = 2_000_000


class MemoryStore(Store):
    """Keeps state objects as they are; timers in a heap with lazy deletion."""

    def __init__(self) -> None:
        self._states: dict[str, AccountState] = {}
        self._timers: dict[tuple[str, str], tuple[int, float]] = {}
        self._heap: list[tuple[float, str, str, int]] = []
        self._outbox: OrderedDict[str, ActionEffect] = OrderedDict()
        self._delivered: dict[str, str] = {}
        self._messages: OrderedDict[str, None] = OrderedDict()
        self._tasks: dict[str, dict[str, Any]] = {}

    def load(self, account_ids: Iterable[str]) -> dict[str, AccountState]:
        return {a: self._states[a] for a in account_ids if a in self._states}

    def state(self, account_id: str) -> AccountState | None:
        return self._states.get(account_id)

    def commit(self, commit: Commit) -> None:
        for state in commit.states:
            self._states[state.account_id] = state
        for account, timer_id in commit.cancelled:
            self._timers.pop((account, timer_id), None)
        for account, arm in commit.armed:
            self._timers[(account, arm.timer_id)] = (arm.generation, arm.due)
            heapq.heappush(self._heap, (arm.due, account, arm.timer_id, arm.generation))
        for action in commit.actions:
            if action.key not in self._outbox and action.key not in self._delivered:
                self._outbox[action.key] = action

    def account_ids(self) -> Iterator[str]:
        return iter(list(self._states))

    def _live(self, entry: tuple[float, str, str, int]) -> bool:
        due, account, timer_id, generation = entry
        return self._timers.get((account, timer_id)) == (generation, due)

    def pop_due(self, now: float, limit: int = 1000) -> list[DueTimer]:
        out: list[DueTimer] = []
        while self._heap and len(out) < limit and self._heap[0][0] <= now:
            entry = heapq.heappop(self._heap)
            if self._live(entry):
                due, account, timer_id, generation = entry
                del self._timers[(account, timer_id)]
                out.append(DueTimer(account, timer_id, generation, due))
        return out

    def next_due(self) -> float | None:
        while self._heap and not self._live(self._heap[0]):
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def pending_actions(self, limit: int = 1000) -> list[ActionEffect]:
        if not self._outbox:
            return []
        return [a for _, a in zip(range(limit), self._outbox.values(), strict=False)]

    def mark_delivered(self, key: str, receipt: str) -> None:
        self._outbox.pop(key, None)
        self._delivered[key] = receipt

    def delivery(self, key: str) -> str | None:
        return self._delivered.get(key)

    def remember_message(self, message_id: str) -> bool:
        if message_id in self._messages:
            return False
        self._messages[message_id] = None
        if len(self._messages) > MAX_REMEMBERED:
            self._messages.popitem(last=False)
        return True

    def save_task(self, task: dict[str, Any]) -> None:
        self._tasks.setdefault(task["task_id"], {**task, "status": "open"})

    def tasks(self, *, status: str | None = None) -> list[dict[str, Any]]:
        return [dict(t) for t in self._tasks.values() if status in (None, t["status"])]

    def complete_task(self, task_id: str, at: float) -> dict[str, Any] | None:
        task = self._tasks.get(task_id)
        if task is None:
            return None
        task.update(status="done", completed_at=at)
        return dict(task)
