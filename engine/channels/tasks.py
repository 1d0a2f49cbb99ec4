"""The task store as a channel: a ``task`` action becomes a CSM task in the store."""

from __future__ import annotations

from engine.core.effects import ActionEffect
from engine.runtime.store import Store


class TaskChannel:
    """Saves ``task`` actions with the store's ``save_task`` (saving one again changes nothing)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def deliver(self, action: ActionEffect) -> str:
        """Save the task (its id is the idempotency key); the receipt names it."""
        task = {**action.payload, "account": action.account, "playbook": action.playbook}
        task.setdefault("task_id", action.key)
        self.store.save_task(task)
        return f"task {task['task_id']}"
