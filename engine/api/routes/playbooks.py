"""Playbook sets: the set workers run and the stored ones; publish a new set (audited)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from engine.api.access import require
from engine.api.auth import Permission, Principal
from engine.api.errors import Invalid, ProblemItem, documented, unprocessable
from engine.api.models import PlaybookEntry, PlaybookSetInfo, PlaybookSetList, PlaybookUpload
from engine.api.services import Services, services
from engine.core.clock import to_datetime
from engine.core.source import Problem
from engine.redis.playbook_sets import Refused, SetInfo

router = APIRouter(tags=["playbooks"])


def _info(info: SetInfo) -> PlaybookSetInfo:
    return PlaybookSetInfo(
        version=info.version,
        author=info.author,
        published=to_datetime(info.published),
        digest=info.digest,
        note=info.note,
        playbooks=[
            PlaybookEntry(id=p.id, version=p.version, mode=p.mode, journey=p.journey)
            for p in info.playbooks
        ],
    )


@router.get("/v1/playbooks", response_model=PlaybookSetList, responses=documented(401, 403, 503))
def get_playbooks(
    limit: Annotated[int, Query(ge=1, le=100, description="Stored sets to list.")] = 20,
    _: Principal = Depends(require(Permission.READ)),  # noqa: B008
    svc: Services = Depends(services),  # noqa: B008
) -> PlaybookSetList:
    """The published set workers run (its playbooks' ids, versions and modes) and the stored
    sets, newest first."""
    current = svc.playbook_sets.current()
    history = svc.playbook_sets.history(limit)
    return PlaybookSetList(
        current=_info(current) if current is not None else None,
        history=[_info(info) for info in history],
    )


def _problem(problem: Problem) -> ProblemItem:
    return ProblemItem(
        loc=["body", "files", problem.file, problem.line], msg=str(problem), type="playbook"
    )


@router.put(
    "/v1/playbooks",
    response_model=PlaybookSetInfo,
    responses={
        **documented(400, 401, 403, 503),
        422: {"model": Invalid, "description": "The set does not load: `file:line: message`."},
    },
)
def put_playbooks(
    body: PlaybookUpload,
    who: Principal = Depends(require(Permission.PLAYBOOKS)),  # noqa: B008
    svc: Services = Depends(services),  # noqa: B008
) -> PlaybookSetInfo:
    """Publish a new set (every file by relative path). It is validated and compiled first: on
    any problem, 422 lists each as ``file:line: message`` and the running set is unchanged.
    Workers switch to a published set within about a second, without a restart."""
    outcome = svc.playbook_sets.publish(body.files, author=who.name, note=body.note)
    now = svc.clock()
    if isinstance(outcome, Refused):
        problems = [str(p) for p in outcome.problems]
        svc.audit.record(
            who, "playbooks_publish", "playbooks", "refused", now, {"problems": problems[:50]}
        )
        raise unprocessable([_problem(p) for p in outcome.problems])
    info = outcome.info
    detail = {"version": info.version, "digest": info.digest, "note": body.note}
    svc.audit.record(who, "playbooks_publish", f"version {info.version}", "published", now, detail)
    return _info(info)
