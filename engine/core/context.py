"""The one view of an account that conditions (CEL) and templates (Jinja) both read."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from engine.core.clock import to_datetime
from engine.core.event import Event
from engine.core.metrics import metric_values
from engine.core.schema import AccountSchema
from engine.core.state import AccountState

DAY = 86400.0


def parse_date(value: Any) -> datetime | None:
    """A date or datetime trait (ISO string, epoch seconds, or datetime) as an aware datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return to_datetime(float(value))
    if isinstance(value, str):
        try:
            if len(value) == 10:
                d = date.fromisoformat(value)
                return datetime(d.year, d.month, d.day, tzinfo=UTC)
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _trait(kind: str, value: Any) -> Any:
    if kind in ("date", "datetime"):
        return parse_date(value)
    if kind == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def account_view(
    state: AccountState,
    schema: AccountSchema,
    now: float,
    values: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The ``account`` variable: traits, flags, metrics, health, stages, open tasks."""
    if values is None:
        values = metric_values(state, schema, now)
    traits: dict[str, Any] = {}
    for name, raw in state.traits.items():
        spec = schema.traits.get(name)
        value = _trait(spec.type, raw) if spec else raw
        if value is not None:
            traits[name] = value
    metrics: dict[str, Any] = {}
    for name, number in values.items():
        kind = schema.metrics[name].kind
        if kind == "last_seen":
            if number:
                metrics[name] = to_datetime(number)
        elif kind == "count":
            metrics[name] = int(number)
        else:
            metrics[name] = float(number)
    stages: dict[str, dict[str, Any]] = {}
    for key, track in state.tracks.items():
        journey, _, name = key.partition(".")
        stages.setdefault(journey, {})[name] = {
            "stage": track.stage,
            "entered": to_datetime(track.entered),
            "days": round((now - track.entered) / DAY, 3),
        }
    health: dict[str, Any] = {}
    if state.health is not None:
        health = {"score": state.health, "band": schema.health.bands.band(state.health)}
    return {
        "id": state.account_id,
        "created": to_datetime(state.created),
        "traits": traits,
        "flags": {name: True for name in state.live_flags(now)},
        "metrics": metrics,
        "health": health,
        "stages": stages,
        "open_tasks": [
            {"id": key, "playbook": t.playbook, "title": t.title, "assignee": t.assignee}
            for key, t in state.tasks.items()
        ],
        "hold": state.on_hold(now),
        "dead_letters": state.dead_letters,
    }


def contacts_view(state: AccountState) -> list[dict[str, Any]]:
    """The ``contacts`` variable: the account's people, most recently seen first."""
    people = sorted(state.contacts.values(), key=lambda c: -c.last_seen)
    return [
        {
            "user_id": c.user_id,
            "email": c.email or "",
            "role": c.role or "",
            "timezone": c.tz or "",
            "name": c.name or "",
            "active": c.active,
            "bounced": c.bounced,
            "last_seen": to_datetime(c.last_seen),
        }
        for c in people
    ]


def event_view(event: Event | None) -> dict[str, Any]:
    """The ``event`` variable; empty fields for timer firings and schedule ticks."""
    if event is None:
        return {"type": "", "name": "", "properties": {}, "traits": {}, "message_id": ""}
    return {
        "type": event.kind,
        "name": event.name or "",
        "properties": event.properties,
        "traits": event.traits,
        "message_id": event.message_id,
        "timestamp": to_datetime(event.ts),
        "user_id": event.user_id or "",
    }


def build_context(
    state: AccountState,
    schema: AccountSchema,
    event: Event | None,
    now: float,
    values: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Variables for CEL conditions and templates: ``account``, ``contacts``, ``event``, ``now``."""
    return {
        "account": account_view(state, schema, now, values),
        "contacts": contacts_view(state),
        "event": event_view(event),
        "now": to_datetime(now),
    }
