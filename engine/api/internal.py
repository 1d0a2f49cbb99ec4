"""Events the API itself appends to an account's shard, through the same Ingestor path as
app events (validated, deduplicated, ordered with the account's other events).

They are ``track`` calls from the anonymous user ``hourglass:api`` with ``context.groupId``
set to the account, so they route straight to it; ``properties.by`` names the token.
"""

from __future__ import annotations

import uuid
from typing import Any

from engine.core.apply import TASK_COMPLETED
from engine.core.clock import iso

#: The anonymousId of every event the API appends.
API_USER = "hourglass:api"
#: The event name of a manual stage override.
STAGE_OVERRIDE = "hourglass.stage_override"


def _track(
    account: str, name: str, message_id: str, now: float, properties: dict[str, Any]
) -> dict[str, Any]:
    return {
        "type": "track",
        "event": name,
        "messageId": message_id,
        "anonymousId": API_USER,
        "timestamp": iso(now),
        "context": {"groupId": account, "library": {"name": "hourglass-api"}},
        "properties": properties,
    }


def stage_override(
    account: str, track: str, stage: str, *, by: str, reason: str, now: float
) -> dict[str, Any]:
    """The override event: ``properties`` ``{track, stage, by, reason}`` (track is
    ``journey.track``); a fresh messageId, so the same override may be made twice."""
    message_id = f"hourglass-override-{uuid.uuid4()}"
    properties = {"track": track, "stage": stage, "by": by, "reason": reason}
    return _track(account, STAGE_OVERRIDE, message_id, now, properties)


def task_completed(account: str, task_id: str, *, by: str, now: float) -> dict[str, Any]:
    """The ``task_completed`` event the core drops an open task on; one messageId per task, so
    completing a task twice appends it once (within the dedupe window)."""
    message_id = f"hourglass-task-completed-{task_id}"
    return _track(account, TASK_COMPLETED, message_id, now, {"task_id": task_id, "by": by})
