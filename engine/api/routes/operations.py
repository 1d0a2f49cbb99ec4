"""Operations: liveness, readiness, the deployment's status, and the audit log."""

from __future__ import annotations

from typing import Annotated, Any

import redis
from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from engine.api.access import require
from engine.api.auth import Permission, Principal
from engine.api.errors import documented
from engine.api.models import AuditList, AuditRecord, Liveness, Readiness, ShardStatus, Status
from engine.api.services import Services, services
from engine.core.clock import to_datetime
from engine.redis.keys import GROUP, REJECTED

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Liveness)
def healthz() -> Liveness:
    """The process is up (no dependency is checked: that is ``/readyz``)."""
    return Liveness()


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Redis or every worker is down."}},
)
def readyz(svc: Services = Depends(services)) -> Any:  # noqa: B008
    """Ready when Redis answers PING and at least one Celery worker answers ``control.ping``
    (within ``HOURGLASS_WORKER_PING_TIMEOUT_S``; the answer is cached for 2 s)."""
    try:
        redis_ok = bool(svc.client.ping())
    except redis.RedisError:
        redis_ok = False
    workers = svc.workers.alive()
    body = Readiness(ready=redis_ok and workers > 0, redis=redis_ok, workers=workers)
    if body.ready:
        return body
    return JSONResponse(body.model_dump(), status_code=503)


def _counters(raw: Any) -> dict[str, float]:
    """A shard's counters hash (counts, and the event clock's high-water mark in replays)."""
    out: dict[str, float] = {}
    for name, value in raw.items():
        try:
            out[name.decode()] = float(value)
        except ValueError:
            continue
    return out


def _pending(client: redis.Redis, stream: str) -> int:
    try:
        summary: Any = client.xpending(stream, GROUP)
    except redis.ResponseError:  # no stream or no group yet
        return 0
    return int(summary.get("pending", 0))


@router.get("/v1/status", response_model=Status, responses=documented(401, 403, 503))
def status(
    _: Principal = Depends(require(Permission.READ)),  # noqa: B008
    svc: Services = Depends(services),  # noqa: B008
) -> Status:
    """Per shard: stream length, pending entries, dead letters, counters; and the totals."""
    store, client = svc.store, svc.client
    pipe = client.pipeline(transaction=False)
    for shard in range(store.shards):
        keys = store.keys(shard)
        pipe.xlen(keys.stream)
        pipe.xlen(keys.dead_letters)
        pipe.hgetall(keys.counters)
    pipe.xlen(REJECTED)
    *replies, rejected = pipe.execute()
    shards = [
        ShardStatus(
            shard=shard,
            stream=int(replies[3 * shard]),
            pending=_pending(client, store.keys(shard).stream),
            dead_letters=int(replies[3 * shard + 1]),
            counters=_counters(replies[3 * shard + 2]),
        )
        for shard in range(store.shards)
    ]
    return Status(
        shards=shards,
        backlog=sum(s.stream for s in shards),
        max_backlog=svc.settings.max_backlog,
        rejected=int(rejected),
        tasks_open=len(store.tasks(status="open")),
        workers=svc.workers.alive(),
        playbook_version=svc.playbook_sets.current_version(),
    )


@router.get("/v1/audit", response_model=AuditList, responses=documented(401, 403, 503))
def audit(
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    who: Annotated[str | None, Query(max_length=200, description="Only this token's.")] = None,
    _: Principal = Depends(require(Permission.AUDIT)),  # noqa: B008
    svc: Services = Depends(services),  # noqa: B008
) -> AuditList:
    """Management writes, newest first: who (token name and role), what, on what, when."""
    return AuditList(
        items=[
            AuditRecord(
                id=e.id, at=to_datetime(e.at), who=e.who, role=e.role, action=e.action,
                target=e.target, outcome=e.outcome, detail=e.detail,
            )
            for e in svc.audit.recent(limit, who)
        ]
    )  # fmt: skip
