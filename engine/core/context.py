"""The one view of an account that conditions (CEL) and templates (Jinja) both read."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from functools import lru_cache
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
        return _parse_iso(value)
    return None


@lru_cache(maxsize=4096)
def _parse_iso(value: str) -> datetime | None:
    """An ISO date or datetime string (cached: the same renewal dates are read every event)."""
    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _trait(kind: str, value: Any) -> Any:
    if kind in ("date", "datetime"):
        return parse_date(value)
    if kind == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class LazyView(dict[str, Any]):
    """A dict whose sections are built on first access: most conditions read one or two."""

    __slots__ = ("_builders",)

    def __init__(self, builders: dict[str, Callable[[], Any]]) -> None:
        super().__init__()
        self._builders = builders

    def __missing__(self, key: str) -> Any:
        builder = self._builders.get(key)
        if builder is None:
            raise KeyError(key)
        value = self[key] = builder()
        return value

    def __contains__(self, key: object) -> bool:
        return key in self._builders or dict.__contains__(self, key)

    def keys(self) -> Any:
        return dict.fromkeys([*self._builders, *dict.keys(self)]).keys()

    def materialize(self) -> dict[str, Any]:
        """Every section, as a plain dict."""
        return {key: self[key] for key in self.keys()}

    def items(self) -> Any:
        return self.materialize().items()

    def values(self) -> Any:
        return self.materialize().values()

    def __iter__(self) -> Any:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())


def account_view(
    state: AccountState,
    schema: AccountSchema,
    now: float,
    values: Callable[[], dict[str, float]] | None = None,
) -> LazyView:
    """The ``account`` variable: traits, flags, metrics, health, stages, open tasks."""

    def traits() -> dict[str, Any]:
        out: dict[str, Any] = {}
        typed = schema.typed_traits
        for name, value in state.traits.items():
            kind = typed.get(name)
            if kind is not None:
                value = _trait(kind, value)
            if value is not None:
                out[name] = value
        return out

    def metrics() -> dict[str, Any]:
        numbers = values() if values is not None else metric_values(state, schema, now)
        out: dict[str, Any] = {}
        for name, number in numbers.items():
            kind = schema.metrics[name].kind
            if kind == "last_seen":
                if number:
                    out[name] = to_datetime(number)
            elif kind == "count":
                out[name] = int(number)
            else:
                out[name] = float(number)
        return out

    def stages() -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for key, track in state.tracks.items():
            journey, _, name = key.partition(".")
            out.setdefault(journey, {})[name] = {
                "stage": track.stage,
                "entered": to_datetime(track.entered),
                "days": round((now - track.entered) / DAY, 3),
            }
        return out

    def health() -> dict[str, Any]:
        if state.health is None:
            return {}
        return {"score": state.health, "band": schema.health.bands.band(state.health)}

    def open_tasks() -> list[dict[str, Any]]:
        return [
            {"id": key, "playbook": t.playbook, "title": t.title, "assignee": t.assignee}
            for key, t in state.tasks.items()
        ]

    return LazyView(
        {
            "id": lambda: state.account_id,
            "created": lambda: to_datetime(state.created),
            "traits": traits,
            "flags": lambda: {name: True for name in state.live_flags(now)},
            "metrics": metrics,
            "health": health,
            "stages": stages,
            "open_tasks": open_tasks,
            "hold": lambda: state.on_hold(now),
            "dead_letters": lambda: state.dead_letters,
        }
    )


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


#: The context's sections read from the account's state; ``event`` and ``now`` are fixed for
#: the whole application of an event.
_ACCOUNT_SECTIONS = ("account", "contacts")


def forget_account(context: LazyView) -> None:
    """The account changed: its sections are built anew when next read."""
    for key in _ACCOUNT_SECTIONS:
        context.pop(key, None)


def build_context(
    state: AccountState,
    schema: AccountSchema,
    event: Event | None,
    now: float,
    values: Callable[[], dict[str, float]] | None = None,
) -> LazyView:
    """Variables for CEL conditions and templates: ``account``, ``contacts``, ``event``, ``now``.

    Each is built when first read, so a condition naming one trait builds only the traits.
    """
    return LazyView(
        {
            "account": lambda: account_view(state, schema, now, values),
            "contacts": lambda: contacts_view(state),
            "event": lambda: event_view(event),
            "now": lambda: to_datetime(now),
        }
    )
