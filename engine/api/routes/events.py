"""Events: what became of one messageId, and the rejected events kept for inspection."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from engine.api.access import require
from engine.api.auth import Permission, Principal
from engine.api.errors import ApiError, documented
from engine.api.event_status import EventLookup, rejected_entries
from engine.api.models import EventStatus, RejectedEvent, RejectedList
from engine.api.services import Services, services

router = APIRouter(tags=["events"])


@router.get(
    "/v1/events/{message_id}",
    response_model=EventStatus,
    responses=documented(401, 403, 404, 503),
)
def get_event(
    message_id: Annotated[str, Path(min_length=1, max_length=512)],
    user: Annotated[
        list[str] | None,
        Query(max_length=10, description="userId/anonymousId to look for the event parked under."),
    ] = None,
    _: Principal = Depends(require(Permission.READ)),  # noqa: B008
    svc: Services = Depends(services),  # noqa: B008
) -> EventStatus:
    """Received? Applied? Rejected? (``docs/api.md`` says how each state is decided.) 404 when
    there is no record: never received, or received longer ago than the dedupe window."""
    lookup = EventLookup(svc.client, svc.settings.shards, svc.settings.dedupe_window_s)
    found = lookup.status(message_id, [u for u in user or [] if u])
    if found is None:
        raise ApiError(404, "not_found", f"no record of messageId {message_id!r}")
    return found


@router.get(
    "/v1/rejected",
    response_model=RejectedList,
    responses=documented(401, 403, 503),
)
def get_rejected(
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    _: Principal = Depends(require(Permission.READ)),  # noqa: B008
    svc: Services = Depends(services),  # noqa: B008
) -> RejectedList:
    """Invalid events kept for inspection (raw JSON, index, field, reason), newest first."""
    return RejectedList(
        items=[RejectedEvent(**entry) for entry in rejected_entries(svc.client, limit)]
    )
