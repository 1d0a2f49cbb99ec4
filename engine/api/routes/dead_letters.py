"""Dead letters: events that failed to apply, kept with their error; replay or discard them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from engine.api.access import require
from engine.api.auth import Permission, Principal
from engine.api.errors import ApiError, documented
from engine.api.models import DeadLetter, DeadLetterDone, DeadLetterList
from engine.api.services import KickFailed, Services, services

log = logging.getLogger(__name__)
router = APIRouter(tags=["dead letters"])

Shard = Annotated[int, Path(ge=0, le=4095, description="The shard the dead letter is on.")]
LetterId = Annotated[str, Path(max_length=64, description="The dead letter's stream id.")]


@router.get("/v1/dead-letters", response_model=DeadLetterList, responses=documented(401, 403, 503))
def get_dead_letters(
    shard: Annotated[int | None, Query(ge=0, le=4095)] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Per shard.")] = 100,
    _: Principal = Depends(require(Permission.READ)),  # noqa: B008
    svc: Services = Depends(services),  # noqa: B008
) -> DeadLetterList:
    """Dead letters of every shard (or one), oldest first per shard."""
    if shard is not None and shard >= svc.store.shards:
        return DeadLetterList(items=[])
    letters = svc.store.dead_letters(shard, limit=limit)
    return DeadLetterList(
        items=[
            DeadLetter(
                id=letter["id"], shard=letter["shard"], entry_id=letter["entry_id"],
                account=letter["account"], error=letter["error"], entry=letter["entry"],
            )
            for letter in letters
        ]
    )  # fmt: skip


def _act(
    svc: Services,
    who: Principal,
    shard: int,
    letter_id: str,
    what: str,
    operation: Callable[[int, str], bool],
) -> None:
    """Replay or discard one dead letter, audited; 404 when there is no such letter."""
    if shard >= svc.store.shards:
        raise ApiError(404, "not_found", f"no shard {shard} (there are {svc.store.shards})")
    done = operation(shard, letter_id)
    target = f"{shard}:{letter_id}"
    svc.audit.record(
        who, f"dead_letter_{what}", target, "done" if done else "not_found", svc.clock()
    )
    if not done:
        raise ApiError(404, "not_found", f"no dead letter {target}")


@router.post(
    "/v1/dead-letters/{shard}/{letter_id}/replay",
    response_model=DeadLetterDone,
    responses=documented(401, 403, 404, 503),
)
def replay_dead_letter(
    shard: Shard,
    letter_id: LetterId,
    who: Principal = Depends(require(Permission.DEAD_LETTERS)),  # noqa: B008
    svc: Services = Depends(services),  # noqa: B008
) -> DeadLetterDone:
    """Append the dead letter's event to its shard again (after fixing what made it fail)."""
    _act(svc, who, shard, letter_id, "replay", svc.store.replay_dead_letter)
    try:
        svc.kick(shard)
    except KickFailed as error:  # replayed all the same: the periodic sweep kicks the shard
        log.warning("%s", error)
    return DeadLetterDone(id=letter_id, shard=shard, action="replayed")


@router.delete(
    "/v1/dead-letters/{shard}/{letter_id}",
    response_model=DeadLetterDone,
    responses=documented(401, 403, 404, 503),
)
def discard_dead_letter(
    shard: Shard,
    letter_id: LetterId,
    who: Principal = Depends(require(Permission.DEAD_LETTERS)),  # noqa: B008
    svc: Services = Depends(services),  # noqa: B008
) -> DeadLetterDone:
    """Drop a dead letter for good (audited)."""
    _act(svc, who, shard, letter_id, "discard", svc.store.discard_dead_letter)
    return DeadLetterDone(id=letter_id, shard=shard, action="discarded")
