"""Segment-compatible ingestion: ``/v1/{track,identify,group,page,screen,alias,batch}``, and
Segment's Webhooks destination (one signed event per POST).

200 means the events are durably in Redis (appended to their shard streams, or parked until a
group call names their account). Retried events are deduplicated by messageId.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import APIRouter, Request

from engine.api.auth import basic_user, signature_ok
from engine.api.body import decoded, json_body, parse_json, raw_body, too_large
from engine.api.errors import ApiError, Rejected, documented
from engine.api.ingesting import append
from engine.api.models import Accepted
from engine.api.segment import KINDS, batch_items, body_doc, component
from engine.api.services import Services, services
from engine.redis.ingest import IngestResult

router = APIRouter(tags=["ingestion"])

_WRITE_KEY_AUTH: list[dict[str, list[str]]] = [{"writeKeyBasic": []}, {}]
_ERRORS = documented(400, 401, 413, 415, 429, 503)


def _source(svc: Services, request: Request, payload: dict[str, Any]) -> str:
    """The source whose write key authenticates the request (HTTP Basic user, or ``writeKey``
    in the body), or 401."""
    for offered in (basic_user(request.headers.get("authorization")), payload.get("writeKey")):
        name = svc.write_keys.source(offered) if isinstance(offered, str) else None
        if name is not None:
            return name
    raise ApiError(401, "unauthorized", "a valid write key is required (HTTP Basic or writeKey)")


def _object(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise ApiError(
            400, "invalid_request", f"expected a JSON object, got {type(payload).__name__}"
        )
    return payload


def _fits(svc: Services, event: dict[str, Any]) -> None:
    """413 for a single event over the per-event limit (in a batch it is rejected by index)."""
    size = len(orjson.dumps(event))
    if size > svc.settings.max_event_bytes:
        raise too_large("the event", size, svc.settings.max_event_bytes)


def _rejected(result: IngestResult) -> list[Rejected]:
    return [Rejected(index=p.index, field=p.field, reason=p.reason) for p in result.rejected]


def _accepted(result: IngestResult) -> Accepted:
    return Accepted(
        accepted=result.accepted,
        duplicates=result.duplicates,
        parked=result.parked,
        rejected=_rejected(result),
    )


async def _single(request: Request, kind: str) -> Accepted:
    """One call of ``kind``: 200 when stored, 400 with the reason when invalid."""
    received = time.time()
    svc = services(request)
    _, payload = await json_body(request, svc.settings.max_request_bytes)
    event = _object(payload)
    _source(svc, request, event)
    event.pop("writeKey", None)
    _fits(svc, event)
    result = append(svc, [event], received, kind)
    if result.rejected:
        problem = result.rejected[0]
        message = f"{problem.field}: {problem.reason}"
        raise ApiError(400, "invalid_event", message, rejected=_rejected(result))
    return _accepted(result)


def _single_route(kind: str) -> None:
    async def endpoint(request: Request) -> Accepted:
        return await _single(request, kind)

    endpoint.__name__ = f"ingest_{kind}"
    endpoint.__doc__ = f"Store one Segment `{kind}` call."
    router.add_api_route(
        f"/v1/{kind}",
        endpoint,
        methods=["POST"],
        response_model=Accepted,
        responses=_ERRORS,
        summary=f"Segment {kind}",
        openapi_extra={**body_doc(component(kind)), "security": _WRITE_KEY_AUTH},
    )


for _kind in KINDS:
    _single_route(_kind)


@router.post(
    "/v1/batch",
    response_model=Accepted,
    responses=_ERRORS,
    summary="Segment batch",
    openapi_extra={**body_doc("SegmentBatch"), "security": _WRITE_KEY_AUTH},
)
async def ingest_batch(request: Request) -> Accepted:
    """Store a batch: valid events are stored, invalid ones come back by index (still 200)."""
    received = time.time()
    svc = services(request)
    _, payload = await json_body(request, svc.settings.max_request_bytes)
    envelope = _object(payload)
    _source(svc, request, envelope)
    if not isinstance(envelope.get("batch"), list):
        raise ApiError(400, "invalid_request", "batch: expected a list of events")
    result = append(svc, batch_items(envelope), received)
    return _accepted(result)


@router.post(
    "/v1/webhooks/segment",
    response_model=Accepted,
    responses=_ERRORS,
    summary="Segment Webhooks destination",
    openapi_extra={**body_doc("SegmentWebhookDelivery"), "security": [{"segmentSignature": []}]},
)
async def segment_webhook(request: Request) -> Accepted:
    """Store what Segment's Webhooks destination delivers, signed with the shared secret.

    ``X-Signature`` must be the hex HMAC-SHA1 of the body with
    ``HOURGLASS_SEGMENT_WEBHOOK_SECRET``. Segment has already corrected ``timestamp`` for
    clock skew, so it is used as is (``sentAt`` is ignored).
    """
    received = time.time()
    svc = services(request)
    limit = svc.settings.max_request_bytes
    body = await raw_body(request, limit)
    secret = svc.settings.segment_webhook_secret
    if not secret:
        raise ApiError(401, "not_configured", "HOURGLASS_SEGMENT_WEBHOOK_SECRET is not set")
    if not signature_ok(secret, body, request.headers.get("x-signature")):
        raise ApiError(401, "bad_signature", "X-Signature is missing or does not match the body")
    payload = parse_json(decoded(request, body, limit))
    items = payload if isinstance(payload, list) else [_object(payload)]
    if not isinstance(payload, list):
        _fits(svc, payload)
    events = [
        {k: v for k, v in item.items() if k not in ("sentAt", "writeKey")}
        if isinstance(item, dict)
        else item
        for item in items
    ]
    result = append(svc, events, received)
    if result.rejected and not isinstance(payload, list):
        problem = result.rejected[0]
        message = f"{problem.field}: {problem.reason}"
        raise ApiError(400, "invalid_event", message, rejected=_rejected(result))
    return _accepted(result)
