"""CSM tasks: list them with filters, complete them (audited)."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query

from engine.api import internal
from engine.api.access import require
from engine.api.auth import Permission, Principal
from engine.api.errors import ApiError, documented
from engine.api.ingesting import append
from engine.api.models import Task, TaskList
from engine.api.services import Services, services

router = APIRouter(tags=["tasks"])


def _task(raw: dict[str, Any]) -> Task:
    return Task.model_validate(
        {**raw, "task_id": str(raw.get("task_id", "")), "account": str(raw.get("account", "")),
         "playbook": str(raw.get("playbook", "")), "status": str(raw.get("status", "open"))}
    )  # fmt: skip


@router.get("/v1/tasks", response_model=TaskList, responses=documented(401, 403, 503))
def get_tasks(
    status: Annotated[Literal["open", "done"] | None, Query()] = None,
    account: Annotated[str | None, Query(max_length=512)] = None,
    assignee: Annotated[str | None, Query(max_length=200, description="Role or email.")] = None,
    playbook: Annotated[str | None, Query(max_length=200)] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    _: Principal = Depends(require(Permission.READ)),  # noqa: B008
    svc: Services = Depends(services),  # noqa: B008
) -> TaskList:
    """Tasks in the order they were opened, filtered by status, account, assignee, playbook."""
    found = [
        task
        for task in svc.store.tasks(status=status)
        if (account is None or task.get("account") == account)
        and (playbook is None or task.get("playbook") == playbook)
        and (assignee is None or assignee in (task.get("assignee"), task.get("assignee_email")))
    ]
    page = found[offset : offset + limit]
    more = offset + limit < len(found)
    return TaskList(
        items=[_task(t) for t in page],
        total=len(found),
        next_offset=offset + limit if more else None,
    )


@router.post(
    "/v1/tasks/{task_id}/complete",
    response_model=Task,
    responses=documented(401, 403, 404, 429, 503),
)
def complete_task(
    task_id: Annotated[str, Path(min_length=1, max_length=200)],
    who: Principal = Depends(require(Permission.TASKS)),  # noqa: B008
    svc: Services = Depends(services),  # noqa: B008
) -> Task:
    """Mark a task done (audited), and append a ``task_completed`` event (``properties.task_id``)
    to its account so the account's open tasks drop it. Completing twice is harmless."""
    now = svc.clock()
    done = svc.store.complete_task(task_id, now)
    if done is None:
        raise ApiError(404, "not_found", f"no task {task_id!r}")
    account = str(done.get("account", ""))
    if account:
        event = internal.task_completed(account, task_id, by=who.name, now=svc.account_clock())
        append(svc, [event], time.time())
    svc.audit.record(who, "task_complete", task_id, "done", now, {"account": account})
    return _task(done)
