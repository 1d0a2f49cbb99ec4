"""Segment's HTTP API shapes: the batch envelope's rules, and the request-body schemas the
OpenAPI document shows (taken from the core's own event models, so they cannot drift)."""

from __future__ import annotations

from typing import Any

# The merge rule is the core's own (parse_batch uses it), not a copy.
from engine.core.events import MODELS, _merge_under

#: The single-call endpoints, by Segment call type.
KINDS = tuple(MODELS)

_WRITE_KEY = {
    "type": "string",
    "description": "The source's write key (or send it as the HTTP Basic user name).",
}


def batch_items(envelope: dict[str, Any]) -> list[Any]:
    """The items of a ``/v1/batch`` body, with the envelope's ``context`` merged under each
    item's (the item wins) and its ``sentAt`` given to items without one — the rules of
    :func:`engine.core.events.parse_batch`. Items that are not objects are left for the
    Ingestor to reject by index."""
    batch = envelope.get("batch")
    assert isinstance(batch, list)
    shared = envelope.get("context")
    shared = shared if isinstance(shared, dict) else {}
    sent_at = envelope.get("sentAt")
    items: list[Any] = []
    for item in batch:
        if isinstance(item, dict):
            own = item.get("context")
            if shared and (own is None or isinstance(own, dict)):
                item = {**item, "context": _merge_under(shared, own or {})}
            if sent_at is not None and "sentAt" not in item and "sent_at" not in item:
                item = {**item, "sentAt": sent_at}
        items.append(item)
    return items


def component(kind: str) -> str:
    """The OpenAPI component name of a call type's body, e.g. ``SegmentTrack``."""
    return f"Segment{kind.capitalize()}"


def schemas() -> dict[str, dict[str, Any]]:
    """OpenAPI component schemas: each Segment call, and the batch envelope."""
    out: dict[str, dict[str, Any]] = {}
    for kind, model in MODELS.items():
        schema = model.model_json_schema(by_alias=True)
        schema["title"] = component(kind)
        schema["required"] = [name for name in schema.get("required", []) if name != "messageId"]
        schema["properties"]["messageId"]["description"] = (
            "Deduplicates retries; derived from the payload when missing."
        )
        schema["properties"]["writeKey"] = _WRITE_KEY
        out[component(kind)] = schema
    refs = [{"$ref": f"#/components/schemas/{component(kind)}"} for kind in KINDS]
    out["SegmentBatch"] = {
        "title": "SegmentBatch",
        "type": "object",
        "description": "Segment's /v1/batch body: each item has its own `type`.",
        "required": ["batch"],
        "additionalProperties": True,
        "properties": {
            "batch": {"type": "array", "items": {"anyOf": refs}},
            "context": {"type": "object", "additionalProperties": True},
            "sentAt": {"type": "string", "format": "date-time"},
            "writeKey": _WRITE_KEY,
        },
    }
    out["SegmentWebhookDelivery"] = {
        "title": "SegmentWebhookDelivery",
        "description": "One event as Segment's Webhooks destination delivers it (or a list).",
        "anyOf": [*refs, {"type": "array", "items": {"anyOf": refs}}],
    }
    return out


def body_doc(name: str) -> dict[str, Any]:
    """``openapi_extra`` documenting a JSON (optionally gzipped) body of component ``name``."""
    return {
        "requestBody": {
            "required": True,
            "description": "JSON; `Content-Encoding: gzip` is accepted.",
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
        }
    }
