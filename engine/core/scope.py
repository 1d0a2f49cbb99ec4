"""What conditions may name (the CEL scope, from the declared schema and journeys) and the
sample data every template renders against at load."""

from __future__ import annotations

from typing import Any

from engine.core.cel_paths import Field, Kind, Scope
from engine.core.context import build_context
from engine.core.event import Event
from engine.core.journeys import Journey
from engine.core.schema import AccountSchema
from engine.core.state import AccountState, Contact, OpenTask, TrackState

_TRAIT_KINDS: dict[str, Kind] = {
    "string": "string",
    "email": "string",
    "timezone": "string",
    "integer": "int",
    "number": "double",
    "boolean": "bool",
    "date": "timestamp",
    "datetime": "timestamp",
}
_SAMPLES: dict[str, Any] = {
    "string": "Acme Corp",
    "email": "owner@example.com",
    "timezone": "Europe/Paris",
    "integer": 42,
    "number": 1234.5,
    "boolean": True,
    "date": "2027-03-31",
    "datetime": "2027-03-31T09:00:00Z",
}
SAMPLE_NOW = 1_790_000_000.0


def condition_scope(schema: AccountSchema, journeys: dict[str, Journey]) -> Scope:
    """The variables conditions can use and the fields under each."""
    metric_kinds: dict[str, Kind] = {"count": "int", "sum": "double", "last_seen": "timestamp"}
    stage = Field.map_(stage=Field("string"), entered=Field("timestamp"), days=Field("double"))
    contact = Field.map_(
        user_id=Field("string"),
        email=Field("string"),
        role=Field("string"),
        timezone=Field("string"),
        name=Field("string"),
        active=Field("bool"),
        bounced=Field("bool"),
        last_seen=Field("timestamp"),
    )
    account = Field.map_(
        id=Field("string"),
        created=Field("timestamp"),
        traits=Field.map_(**{n: Field(_TRAIT_KINDS[t.type]) for n, t in schema.traits.items()}),
        flags=Field.free(Field("bool")),
        metrics=Field.map_(**{n: Field(metric_kinds[m.kind]) for n, m in schema.metrics.items()}),
        health=Field.map_(score=Field("double"), band=Field("string")),
        stages=Field.map_(
            **{
                j: Field.map_(**{t: stage for t in journey.tracks})
                for j, journey in journeys.items()
            }
        ),
        open_tasks=Field.list_(
            Field.map_(
                id=Field("string"),
                playbook=Field("string"),
                title=Field("string"),
                assignee=Field("string"),
            )
        ),
        hold=Field("bool"),
        dead_letters=Field("int"),
    )
    event = Field.map_(
        type=Field("string"),
        name=Field("string"),
        properties=Field.free(Field("any")),
        traits=Field.free(Field("any")),
        message_id=Field("string"),
        timestamp=Field("timestamp"),
        user_id=Field("string"),
    )
    return {
        "account": account,
        "contacts": Field.list_(contact),
        "event": event,
        "now": Field("timestamp"),
    }


class SampleMap(dict[str, Any]):
    """Event properties at load time: any key has a sample value, so templates can name them."""

    def __missing__(self, key: str) -> str:
        return f"<{key}>"


def sample_state(schema: AccountSchema, journeys: dict[str, Journey]) -> AccountState:
    """An account with every declared trait, a contact per role, and a stage on every track."""
    now = SAMPLE_NOW
    state = AccountState(account_id="acct_sample", created=now - 86400 * 90, last_event=now)
    for name, spec in schema.traits.items():
        value = spec.sample if spec.sample is not None else _SAMPLES[spec.type]
        state.traits[name] = spec.enum[0] if spec.enum and spec.sample is None else value
    for i, role in enumerate(schema.contact_roles):
        state.contacts[f"user_{i}"] = Contact(
            user_id=f"user_{i}",
            email=f"{role}@example.com",
            role=role,
            tz="Europe/Paris",
            name=f"Sam {role.replace('_', ' ').title()}",
            last_seen=now - i,
        )
    for journey in journeys.values():
        for track_name, track in journey.tracks.items():
            state.tracks[f"{journey.id}.{track_name}"] = TrackState(track.stages[0].id, now - 86400)
    for name, metric in schema.metrics.items():
        state.metrics[name] = {0: now} if metric.kind == "last_seen" else {int(now // 86400): 3}
    state.tasks["task_sample"] = OpenTask("sample-playbook", "Sample task", "csm", now + 86400)
    if schema.health.components:
        state.health = 72.0
    return state


def sample_context(schema: AccountSchema, journeys: dict[str, Journey]) -> dict[str, Any]:
    """The template context at load: a sample account, a sample event, recipient and playbook."""
    state = sample_state(schema, journeys)
    event = Event(kind="track", message_id="msg_sample", ts=SAMPLE_NOW, name="sample_event")
    context = build_context(state, schema, event, SAMPLE_NOW)
    context["event"]["properties"] = SampleMap()
    context["event"]["traits"] = SampleMap()
    context["recipient"] = context["contacts"][0] if context["contacts"] else {}
    context["playbook"] = {"id": "sample-playbook", "name": "Sample playbook"}
    return context
