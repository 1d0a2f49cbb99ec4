"""Segment spec calls as pydantic models, their validation, and conversion to the core Event."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, TypeAlias

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from engine.core.clock import to_epoch
from engine.core.event import SEGMENT_KINDS, Event

#: Namespace for derived message ids (uuid5 of the payload's canonical JSON).
MESSAGE_ID_NAMESPACE = uuid.UUID("5f1c1f6e-6a43-5b8e-9d2e-2c0a7f3b9e41")

#: Transport-level keys left out of a derived message id, so a retried send still dedupes.
_NOT_IDENTITY = frozenset(
    {"messageId", "message_id", "sentAt", "sent_at", "receivedAt", "received_at"}
)


#: A JSON object an SDK may send as ``null``: taken as empty.
Fields = Annotated[dict[str, Any], BeforeValidator(lambda value: {} if value is None else value)]


class EventError(ValueError):
    """An invalid event; the message starts with the offending field's name."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def __reduce__(self) -> tuple[type[EventError], tuple[str, str]]:
        return (EventError, (self.field, self.reason))


def _canonical(payload: dict[str, Any]) -> bytes:
    """Sorted-key compact JSON of a payload (deterministic across runs)."""
    try:
        return orjson.dumps(
            payload, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str
        )
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(payload, sort_keys=True, default=str, separators=(",", ":")).encode()


def derive_message_id(payload: dict[str, Any]) -> str:
    """A deterministic message id: uuid5 of the payload's canonical JSON, transport keys aside."""
    body = {k: v for k, v in payload.items() if k not in _NOT_IDENTITY}
    return str(uuid.uuid5(MESSAGE_ID_NAMESPACE, _canonical(body).decode()))


def _id_or_none(value: Any) -> Any:
    """Accept integer ids (some SDKs send them) as strings; leave anything else to pydantic."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _required_id(value: Any) -> Any:
    """Coerce integer ids to strings and reject empty ones."""
    value = _id_or_none(value)
    if isinstance(value, str) and not value.strip():
        raise ValueError("must be a non-empty string")
    return value


class _Call(BaseModel):
    """Fields common to every Segment call; unknown fields are kept as extras."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    type: str
    message_id: str = Field(alias="messageId")
    timestamp: datetime | None = None
    original_timestamp: datetime | None = Field(None, alias="originalTimestamp")
    sent_at: datetime | None = Field(None, alias="sentAt")
    received_at: datetime | None = Field(None, alias="receivedAt")
    user_id: str | None = Field(None, alias="userId")
    anonymous_id: str | None = Field(None, alias="anonymousId")
    context: Fields = Field(default_factory=dict)
    integrations: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = Field(None, alias="_metadata")
    channel: str | None = None
    version: int | float | str | None = None

    #: Whether the call is valid without a userId or an anonymousId.
    _identity_optional: ClassVar[bool] = False

    @model_validator(mode="before")
    @classmethod
    def _fill_defaults(cls, data: Any) -> Any:
        """Default the type to this model's and derive a missing messageId."""
        if not isinstance(data, dict):
            return data
        given = data.get("messageId")
        if given and isinstance(given, str) and "type" in data and "message_id" not in data:
            return data  # nothing to fill in (the common case): no copy
        data = dict(data)
        if "type" not in data:
            data["type"] = cls.model_fields["type"].default
        for key in ("messageId", "message_id"):
            value = data.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                data[key] = str(value)
        if not any(data.get(key) for key in ("messageId", "message_id")):
            data.pop("message_id", None)
            data["messageId"] = derive_message_id(data)
        return data

    @field_validator("user_id", "anonymous_id", mode="before")
    @classmethod
    def _coerce_ids(cls, value: Any) -> Any:
        return _id_or_none(value)

    @field_validator("timestamp", "original_timestamp", "sent_at", "received_at")
    @classmethod
    def _naive_is_utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @model_validator(mode="after")
    def _needs_identity(self) -> _Call:
        """Segment's rule: a userId or an anonymousId is required."""
        if self._identity_optional:
            return self
        if not (self.user_id and self.user_id.strip()) and not (
            self.anonymous_id and self.anonymous_id.strip()
        ):
            raise EventError("userId", "userId or anonymousId is required")
        return self


class Track(_Call):
    """A ``track`` call: a named action with properties."""

    type: Literal["track"] = "track"
    event: str
    properties: Fields = Field(default_factory=dict)

    @field_validator("event", mode="before")
    @classmethod
    def _event_name(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("must be a non-empty string")
        return value


class Identify(_Call):
    """An ``identify`` call: who the user is, with traits."""

    type: Literal["identify"] = "identify"
    traits: Fields = Field(default_factory=dict)


class Group(_Call):
    """A ``group`` call: the user belongs to an account (``groupId``), with account traits."""

    type: Literal["group"] = "group"
    group_id: str = Field(alias="groupId")
    traits: Fields = Field(default_factory=dict)

    _identity_optional: ClassVar[bool] = True

    @field_validator("group_id", mode="before")
    @classmethod
    def _group_id(cls, value: Any) -> Any:
        return _required_id(value)


class _View(_Call):
    """What ``page`` and ``screen`` calls share: a name, a category, properties."""

    name: str | None = None
    category: str | None = None
    properties: Fields = Field(default_factory=dict)


class Page(_View):
    """A ``page`` call: a web page view."""

    type: Literal["page"] = "page"


class Screen(_View):
    """A ``screen`` call: a mobile screen view."""

    type: Literal["screen"] = "screen"


class Alias(_Call):
    """An ``alias`` call: ``previousId`` and ``userId`` are the same person."""

    type: Literal["alias"] = "alias"
    previous_id: str = Field(alias="previousId")
    user_id: str = Field(alias="userId")

    @field_validator("previous_id", "user_id", mode="before")
    @classmethod
    def _ids(cls, value: Any) -> Any:
        return _required_id(value)


SegmentCall: TypeAlias = Track | Identify | Group | Page | Screen | Alias

MODELS: dict[str, type[SegmentCall]] = {
    "track": Track,
    "identify": Identify,
    "group": Group,
    "page": Page,
    "screen": Screen,
    "alias": Alias,
}


class Batch(BaseModel):
    """The ``/v1/batch`` envelope; items are validated one by one by :func:`parse_batch`."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    batch: list[Any]
    context: dict[str, Any] | None = None
    sent_at: datetime | None = Field(None, alias="sentAt")
    write_key: str | None = Field(None, alias="writeKey")


@dataclass(frozen=True, slots=True)
class BatchProblem:
    """One invalid item of a batch: its index, the offending field and why."""

    index: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"batch[{self.index}].{self.field}: {self.reason}"


def _short(value: Any) -> str:
    """A bounded repr for error messages."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _event_error(exc: ValidationError) -> EventError:
    """The first pydantic error as an EventError naming its field."""
    err = exc.errors()[0]
    cause = err.get("ctx", {}).get("error")
    if isinstance(cause, EventError):
        return cause
    field = ".".join(str(part) for part in err["loc"]) or "payload"
    kind = err["type"]
    if kind == "missing":
        reason = "field required"
    elif kind.startswith("datetime"):
        reason = f"invalid datetime {_short(err['input'])}"
    elif kind == "string_type":
        reason = f"expected a string, got {_short(err['input'])}"
    elif kind in ("dict_type", "model_type"):
        reason = f"expected an object, got {_short(err['input'])}"
    elif kind == "list_type":
        reason = f"expected a list, got {_short(err['input'])}"
    elif isinstance(cause, ValueError):
        reason = str(cause)
    else:
        reason = err["msg"][:1].lower() + err["msg"][1:]
    return EventError(field, reason)


def parse_event(data: dict[str, Any], kind: str | None = None) -> SegmentCall:
    """Validate one Segment call, picking the model by ``type`` (or by ``kind`` when absent)."""
    if not isinstance(data, dict):
        raise EventError("payload", f"expected an object, got {type(data).__name__}")
    expected = ", ".join(SEGMENT_KINDS)
    if kind is not None and kind not in MODELS:
        raise EventError("type", f"unknown event type {kind!r} (expected one of {expected})")
    call_type = data.get("type")
    if call_type is None:
        if kind is None:
            raise EventError("type", "field required")
        data = {**data, "type": kind}
        call_type = kind
    if not isinstance(call_type, str) or call_type not in MODELS:
        raise EventError(
            "type", f"unknown event type {_short(call_type)} (expected one of {expected})"
        )
    if kind is not None and call_type != kind:
        raise EventError("type", f"{call_type!r} does not match the endpoint's type {kind!r}")
    try:
        return MODELS[call_type].model_validate(data)
    except ValidationError as exc:
        raise _event_error(exc) from None


def _merge_under(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``top`` over ``base``: ``top`` wins on every conflicting leaf."""
    out = dict(base)
    for key, value in top.items():
        below = out.get(key)
        if isinstance(below, dict) and isinstance(value, dict):
            out[key] = _merge_under(below, value)
        else:
            out[key] = value
    return out


def parse_batch(data: dict[str, Any]) -> tuple[list[SegmentCall], list[BatchProblem]]:
    """Validate a batch item by item: the valid calls, and a problem per invalid item.

    The envelope's ``context`` is merged under each item's (the item wins), and the
    envelope's ``sentAt`` is used for items that have none. A bad envelope raises EventError.
    """
    if not isinstance(data, dict):
        raise EventError("payload", f"expected an object, got {type(data).__name__}")
    try:
        envelope = Batch.model_validate(data)
    except ValidationError as exc:
        raise _event_error(exc) from None
    shared_context = envelope.context or {}
    sent_at = data.get("sentAt")
    calls: list[SegmentCall] = []
    problems: list[BatchProblem] = []
    for index, item in enumerate(envelope.batch):
        if not isinstance(item, dict):
            problems.append(
                BatchProblem(index, "payload", f"expected an object, got {type(item).__name__}")
            )
            continue
        item = dict(item)
        own_context = item.get("context")
        if shared_context and (own_context is None or isinstance(own_context, dict)):
            item["context"] = _merge_under(shared_context, own_context or {})
        if sent_at is not None and "sentAt" not in item and "sent_at" not in item:
            item["sentAt"] = sent_at
        try:
            calls.append(parse_event(item))
        except EventError as exc:
            problems.append(BatchProblem(index, exc.field, exc.reason))
    return calls, problems


def _epoch(value: datetime | float) -> float:
    return to_epoch(value) if isinstance(value, datetime) else float(value)


def event_time(call: SegmentCall, now: float) -> float:
    """The call's time (epoch s): timestamp, else originalTimestamp, else receivedAt, else now."""
    for value in (call.timestamp, call.original_timestamp, call.received_at):
        if value is not None:
            return to_epoch(value)
    return now


def corrected_timestamp(call: SegmentCall, received_at: datetime | float) -> float:
    """Segment's clock-skew fix: receivedAt - (sentAt - originalTimestamp|timestamp), epoch s.

    Without ``sentAt`` (or a client time to correct) it is :func:`event_time` with
    ``received_at`` as the last fallback.
    """
    received = _epoch(received_at)
    client_time = call.original_timestamp or call.timestamp
    if call.sent_at is None or client_time is None:
        return event_time(call, received)
    return received - (to_epoch(call.sent_at) - to_epoch(client_time))


def _context_group(context: dict[str, Any]) -> str | None:
    """``context.groupId`` as an account id, if it is a usable one."""
    value = _id_or_none(context.get("groupId"))
    return value if isinstance(value, str) and value.strip() else None


def to_core(call: SegmentCall, now: float) -> Event:
    """The core Event for a validated call; ``now`` is the last-resort timestamp."""
    event = Event(
        kind=call.type,
        message_id=call.message_id,
        ts=event_time(call, now),
        account_id=_context_group(call.context),
        user_id=call.user_id or None,
        anonymous_id=call.anonymous_id or None,
    )
    if isinstance(call, Track):
        event.name = call.event
        event.properties = dict(call.properties)
    elif isinstance(call, Page | Screen):
        event.name = call.name
        event.properties = dict(call.properties)
    elif isinstance(call, Identify):
        event.traits = dict(call.traits)
    elif isinstance(call, Group):
        event.account_id = call.group_id
        event.traits = dict(call.traits)
    else:
        event.previous_id = call.previous_id
    return event
