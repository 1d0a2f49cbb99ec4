"""Accounts: the page of one account, the list by stage and track, and manual stage overrides.

Management handlers are plain functions: FastAPI runs them in its thread pool, so their Redis
calls never block the event loop that ingestion shares.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from engine.api import internal
from engine.api.access import require
from engine.api.accounts import Cursor, account_page, list_accounts, recent_actions
from engine.api.auth import Permission, Principal
from engine.api.errors import ApiError, Invalid, ProblemItem, documented, unprocessable
from engine.api.ingesting import append
from engine.api.models import Account, AccountList, StageOverride, StageOverrideQueued
from engine.api.services import Services, services
from engine.core.playbook_set import PlaybookSet

router = APIRouter(tags=["accounts"])

AccountId = Annotated[str, Path(min_length=1, max_length=512, description="The account id.")]


@router.get(
    "/v1/accounts/{account_id}",
    response_model=Account,
    responses=documented(401, 403, 404, 503),
)
def get_account(
    account_id: AccountId,
    _: Principal = Depends(require(Permission.READ)),  # noqa: B008
    svc: Services = Depends(services),  # noqa: B008
) -> Account:
    """One account: stages per track with history, traits, flags, metrics, health, contacts,
    open timers and tasks, playbooks fired, and recent actions."""
    state = svc.store.load([account_id]).get(account_id)
    if state is None:
        raise ApiError(404, "not_found", f"no account {account_id!r}")
    actions = recent_actions(svc.store, account_id)
    return account_page(state, svc.playbooks.get(), svc.account_clock(), actions)


@router.get(
    "/v1/accounts",
    response_model=AccountList,
    responses=documented(400, 401, 403, 503),
)
def get_accounts(
    stage: Annotated[str | None, Query(max_length=200, description="Current stage.")] = None,
    track: Annotated[
        str | None, Query(max_length=200, description="`journey.track`, or a track name.")
    ] = None,
    cursor: Annotated[str | None, Query(max_length=2000, description="`next` of a page.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    _: Principal = Depends(require(Permission.READ)),  # noqa: B008
    svc: Services = Depends(services),  # noqa: B008
) -> AccountList:
    """Accounts in a stable order, optionally at ``stage`` (on ``track``, or on any track) or
    on ``track``, a page at a time. A page may come back short with a ``next`` cursor: at most
    5,000 accounts are examined per request."""
    start = Cursor.decode(cursor, svc.store.shards)
    pset = svc.playbooks.get()
    return list_accounts(svc.store, pset, stage=stage, track=track, cursor=start, limit=limit)


def _problem(field: str, message: str) -> ApiError:
    return unprocessable([ProblemItem(loc=["body", field], msg=message, type="value_error")])


def resolve_track(pset: PlaybookSet, track: str, stage: str, held: set[str]) -> str:
    """The ``journey.track`` key ``track`` names (a bare track name that several journeys have
    means the one the account is on, ``held``), checked to have ``stage``; or 422."""
    keys = pset.track_keys()
    found = [key for key in keys if track in (key, key.partition(".")[2])]
    if len(found) > 1:
        found = [key for key in found if key in held] or found
    if len(found) != 1:
        why = "names tracks of several journeys:" if found else "unknown track"
        raise _problem("track", f"track: {why} {track!r} (tracks: {', '.join(keys)})")
    stages = [s.id for s in pset.track(found[0]).stages]
    if stage not in stages:
        listed = ", ".join(stages)
        raise _problem("stage", f"stage: unknown stage {stage!r} on {found[0]} ({listed})")
    return found[0]


@router.post(
    "/v1/accounts/{account_id}/stage",
    response_model=StageOverrideQueued,
    status_code=202,
    responses={
        **documented(400, 401, 403, 404, 429, 503),
        422: {"model": Invalid, "description": "Unknown track or stage."},
    },
)
def override_stage(
    account_id: AccountId,
    body: StageOverride,
    who: Principal = Depends(require(Permission.STAGES)),  # noqa: B008
    svc: Services = Depends(services),  # noqa: B008
) -> StageOverrideQueued:
    """Move the account to ``stage`` on ``track`` by hand (audited). The override is appended
    to the account's shard as a ``hourglass.stage_override`` event; a worker applies it in
    order with the account's other events."""
    now = svc.clock()
    pset = svc.playbooks.get()
    if pset is None:
        raise ApiError(503, "no_playbooks", "no playbook set loads: tracks cannot be checked")
    state = svc.store.load([account_id]).get(account_id)
    if state is None:
        raise ApiError(404, "not_found", f"no account {account_id!r}")
    try:
        track = resolve_track(pset, body.track, body.stage, set(state.tracks))
    except ApiError as error:
        svc.audit.record(
            who, "stage_override", account_id, "refused", now, {"error": error.message}
        )
        raise
    event = internal.stage_override(
        account_id, track, body.stage, by=who.name, reason=body.reason, now=svc.account_clock()
    )
    append(svc, [event], time.time())
    detail = {"track": track, "stage": body.stage, "reason": body.reason}
    svc.audit.record(who, "stage_override", account_id, "queued", now, detail)
    return StageOverrideQueued(
        message_id=event["messageId"], account=account_id, track=track, stage=body.stage
    )
