"""Segment call models: parsing, validation errors, batches, timestamps and core conversion."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from engine.core.clock import to_epoch
from engine.core.events import (
    Alias,
    BatchProblem,
    EventError,
    Group,
    Identify,
    Page,
    Screen,
    Track,
    corrected_timestamp,
    event_time,
    parse_batch,
    parse_event,
    to_core,
)

T0 = "2024-03-01T12:00:00Z"
T0_EPOCH = datetime(2024, 3, 1, 12, tzinfo=UTC).timestamp()


def track(**extra: Any) -> dict[str, Any]:
    """A minimal valid track payload."""
    return {"type": "track", "event": "Report Built", "userId": "u1", **extra}


# --- each call type ----------------------------------------------------------------------


def test_track_parses() -> None:
    call = parse_event(track(messageId="m1", timestamp=T0, properties={"rows": 3}))
    assert isinstance(call, Track)
    assert call.event == "Report Built"
    assert call.properties == {"rows": 3}
    assert call.message_id == "m1"
    assert call.timestamp == datetime(2024, 3, 1, 12, tzinfo=UTC)


def test_identify_parses() -> None:
    call = parse_event({"type": "identify", "userId": "u1", "traits": {"email": "a@b.c"}})
    assert isinstance(call, Identify)
    assert call.traits == {"email": "a@b.c"}


def test_group_parses() -> None:
    call = parse_event(
        {"type": "group", "groupId": "acme", "userId": "u1", "traits": {"plan": "pro"}}
    )
    assert isinstance(call, Group)
    assert call.group_id == "acme"
    assert call.traits == {"plan": "pro"}


def test_page_and_screen_parse() -> None:
    page = parse_event({"type": "page", "anonymousId": "a1", "name": "Pricing", "category": "Docs"})
    screen = parse_event({"type": "screen", "userId": "u1", "name": "Home", "properties": None})
    assert isinstance(page, Page)
    assert (page.name, page.category, page.anonymous_id) == ("Pricing", "Docs", "a1")
    assert isinstance(screen, Screen)
    assert (screen.name, screen.properties) == ("Home", {})


def test_alias_parses() -> None:
    call = parse_event({"type": "alias", "previousId": "anon-1", "userId": "u1"})
    assert isinstance(call, Alias)
    assert (call.previous_id, call.user_id) == ("anon-1", "u1")


def test_kind_hint_fills_missing_type() -> None:
    call = parse_event({"event": "Signed Up", "userId": "u1"}, kind="track")
    assert isinstance(call, Track)
    assert call.type == "track"


def test_kind_hint_conflicting_with_type_is_an_error() -> None:
    with pytest.raises(EventError) as info:
        parse_event({"type": "identify", "userId": "u1"}, kind="track")
    assert info.value.field == "type"


def test_integer_ids_are_accepted_as_strings() -> None:
    call = parse_event({"type": "group", "groupId": 42, "userId": 7})
    assert isinstance(call, Group)
    assert (call.group_id, call.user_id) == ("42", "7")


def test_models_can_be_built_by_python_name() -> None:
    call = Track.model_validate({"event": "E", "user_id": "u1", "message_id": "m9"})
    assert (call.type, call.user_id, call.message_id) == ("track", "u1", "m9")


# --- unknown fields are kept ------------------------------------------------------------


def test_unknown_sdk_fields_are_kept_and_round_trip() -> None:
    payload = track(
        messageId="m1",
        timestamp=T0,
        integrations={"All": False, "Mixpanel": True},
        sentAt="2024-03-01T12:00:05Z",
        _metadata={"bundled": ["Segment.io"]},
        channel="server",
        foo={"bar": [1, 2]},
        writeKey="wk",
    )
    call = parse_event(payload)
    dumped = call.model_dump(by_alias=True)
    assert dumped["integrations"] == {"All": False, "Mixpanel": True}
    assert dumped["sentAt"] == datetime(2024, 3, 1, 12, 0, 5, tzinfo=UTC)
    assert dumped["_metadata"] == {"bundled": ["Segment.io"]}
    assert dumped["channel"] == "server"
    assert dumped["foo"] == {"bar": [1, 2]}
    assert dumped["writeKey"] == "wk"
    as_json = call.model_dump(by_alias=True, mode="json")
    assert as_json["sentAt"] == "2024-03-01T12:00:05Z"
    assert parse_event(as_json) == call


# --- errors name the field ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "kind", "field", "message"),
    [
        ({"type": "track", "userId": "u1"}, None, "event", "event: field required"),
        (track(event="  "), None, "event", "event: must be a non-empty string"),
        (track(event=5), None, "event", "event: expected a string, got 5"),
        (track(timestamp="abc"), None, "timestamp", "timestamp: invalid datetime 'abc'"),
        (
            {"type": "foo", "userId": "u1"},
            None,
            "type",
            "type: unknown event type 'foo' "
            "(expected one of track, identify, group, page, screen, alias)",
        ),
        ({"userId": "u1"}, None, "type", "type: field required"),
        ({"userId": "u1"}, "bogus", "type", "type: unknown event type 'bogus'"),
        ({"type": "group", "userId": "u1"}, None, "groupId", "groupId: field required"),
        ({"type": "group", "groupId": ""}, None, "groupId", "groupId: must be a non-empty"),
        ({"type": "alias", "userId": "u1"}, None, "previousId", "previousId: field required"),
        ({"type": "alias", "previousId": "p", "anonymousId": "a"}, None, "userId", "userId:"),
        (
            {"type": "identify", "traits": {}},
            None,
            "userId",
            "userId: userId or anonymousId is required",
        ),
        ({"type": "page", "userId": "", "anonymousId": ""}, None, "userId", "userId:"),
        (track(context="nope"), None, "context", "context: expected an object"),
        (track(properties=[1]), None, "properties", "properties: expected an object"),
        ("not a dict", None, "payload", "payload: expected an object"),
    ],
)
def test_errors_name_the_field(payload: Any, kind: str | None, field: str, message: str) -> None:
    with pytest.raises(EventError) as info:
        parse_event(payload, kind=kind)
    assert info.value.field == field
    assert str(info.value).startswith(message)
    assert str(info.value) == f"{info.value.field}: {info.value.reason}"


def test_event_error_is_a_value_error_and_pickles() -> None:
    err = EventError("event", "field required")
    copy = pickle.loads(pickle.dumps(err))
    assert isinstance(copy, ValueError)
    assert (copy.field, copy.reason, str(copy)) == ("event", "field required", str(err))


def test_group_with_group_id_needs_no_user() -> None:
    call = parse_event({"type": "group", "groupId": "acme", "traits": {"plan": "pro"}})
    assert isinstance(call, Group)
    assert call.user_id is None and call.anonymous_id is None


# --- timestamps --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-03-01T12:00:00Z", datetime(2024, 3, 1, 12, tzinfo=UTC)),
        ("2024-03-01T12:00:00.250Z", datetime(2024, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)),
        ("2024-03-01T14:00:00+02:00", datetime(2024, 3, 1, 12, tzinfo=UTC)),
        ("2024-03-01T12:00:00", datetime(2024, 3, 1, 12, tzinfo=UTC)),
    ],
)
def test_timestamp_formats(raw: str, expected: datetime) -> None:
    call = parse_event(track(timestamp=raw))
    assert call.timestamp is not None
    assert call.timestamp.tzinfo is not None
    assert call.timestamp == expected


def test_offset_is_kept_on_the_model() -> None:
    call = parse_event(track(timestamp="2024-03-01T14:00:00+02:00"))
    assert call.timestamp is not None
    assert call.timestamp.utcoffset() == timedelta(hours=2)


def test_timestamp_fallbacks() -> None:
    now = 1_000.0
    both = parse_event(
        track(timestamp=T0, originalTimestamp="2024-03-01T11:00:00Z", receivedAt="2024-03-02")
    )
    original = parse_event(track(originalTimestamp=T0, receivedAt="2024-03-02T00:00:00Z"))
    received = parse_event(track(receivedAt=T0))
    nothing = parse_event(track())
    assert event_time(both, now) == T0_EPOCH
    assert event_time(original, now) == T0_EPOCH
    assert event_time(received, now) == T0_EPOCH
    assert event_time(nothing, now) == now


def test_skew_correction_with_sent_at() -> None:
    # The device clock is 1 hour fast: it stamped the event at 13:00 and sent it at 13:00:10.
    call = parse_event(track(timestamp="2024-03-01T13:00:00Z", sentAt="2024-03-01T13:00:10Z"))
    received = T0_EPOCH + 10.0
    assert corrected_timestamp(call, received) == pytest.approx(T0_EPOCH)
    as_datetime = datetime(2024, 3, 1, 12, 0, 10, tzinfo=UTC)
    assert corrected_timestamp(call, as_datetime) == pytest.approx(T0_EPOCH)


def test_skew_correction_prefers_original_timestamp() -> None:
    call = parse_event(
        track(
            originalTimestamp="2024-03-01T13:00:00Z",
            timestamp="2024-03-01T09:00:00Z",
            sentAt="2024-03-01T13:00:30Z",
        )
    )
    assert corrected_timestamp(call, T0_EPOCH + 30) == pytest.approx(T0_EPOCH)


def test_no_sent_at_means_no_correction() -> None:
    call = parse_event(track(timestamp=T0))
    assert corrected_timestamp(call, T0_EPOCH + 999) == T0_EPOCH
    bare = parse_event(track(sentAt=T0))
    assert corrected_timestamp(bare, 5.0) == 5.0


# --- deterministic messageId -------------------------------------------------------------


def test_missing_message_id_is_derived_deterministically() -> None:
    first = parse_event(track(timestamp=T0, properties={"a": 1, "b": 2}))
    again = parse_event(
        {"properties": {"b": 2, "a": 1}, "timestamp": T0, "userId": "u1", "event": "Report Built"},
        kind="track",
    )
    assert first.message_id == again.message_id
    assert len(first.message_id) == 36


def test_derived_message_id_ignores_transport_fields() -> None:
    first = parse_event(track(timestamp=T0, sentAt="2024-03-01T12:00:01Z"))
    retry = parse_event(track(timestamp=T0, sentAt="2024-03-01T12:05:00Z"))
    assert first.message_id == retry.message_id


def test_derived_message_id_differs_for_different_payloads() -> None:
    ids = {
        parse_event(track(timestamp=T0)).message_id,
        parse_event(track(timestamp="2024-03-01T12:00:01Z")).message_id,
        parse_event(track(timestamp=T0, event="Other")).message_id,
        parse_event({"type": "identify", "userId": "u1", "timestamp": T0}).message_id,
    }
    assert len(ids) == 4


def test_given_message_id_is_kept_and_empty_one_derived() -> None:
    assert parse_event(track(messageId="abc")).message_id == "abc"
    derived = parse_event(track(messageId="")).message_id
    assert derived and derived == parse_event(track()).message_id


# --- batches -----------------------------------------------------------------------------


def test_batch_reports_bad_item_by_index_and_keeps_the_others() -> None:
    items: list[Any] = [track(messageId=f"m{i}") for i in range(5)]
    items[3] = {"type": "track", "userId": "u1", "messageId": "m3"}  # no event
    calls, problems = parse_batch({"batch": items, "writeKey": "wk"})
    assert [c.message_id for c in calls] == ["m0", "m1", "m2", "m4"]
    assert problems == [BatchProblem(3, "event", "field required")]
    assert str(problems[0]) == "batch[3].event: field required"


def test_batch_non_object_item_is_a_problem() -> None:
    calls, problems = parse_batch({"batch": [track(), 17]})
    assert len(calls) == 1
    assert [(p.index, p.field) for p in problems] == [(1, "payload")]


def test_batch_merges_envelope_context_under_item_context() -> None:
    envelope = {
        "batch": [
            track(context={"ip": "10.0.0.1", "library": {"version": "2"}}),
            track(),
        ],
        "context": {"ip": "1.1.1.1", "library": {"name": "analytics-python", "version": "1"}},
    }
    (first, second), problems = parse_batch(envelope)
    assert problems == []
    assert first.context == {
        "ip": "10.0.0.1",
        "library": {"name": "analytics-python", "version": "2"},
    }
    assert second.context == envelope["context"]
    assert envelope["batch"][1].get("context") is None  # the input is not mutated


def test_batch_sent_at_applies_to_items_without_one() -> None:
    sent = "2024-03-01T12:00:10Z"
    own = "2024-03-01T12:00:20Z"
    (first, second), _ = parse_batch({"batch": [track(), track(sentAt=own)], "sentAt": sent})
    assert first.sent_at == datetime(2024, 3, 1, 12, 0, 10, tzinfo=UTC)
    assert second.sent_at == datetime(2024, 3, 1, 12, 0, 20, tzinfo=UTC)


def test_batch_envelope_errors_name_the_field() -> None:
    with pytest.raises(EventError) as missing:
        parse_batch({"writeKey": "wk"})
    with pytest.raises(EventError) as wrong:
        parse_batch({"batch": {"type": "track"}})
    assert str(missing.value) == "batch: field required"
    assert wrong.value.field == "batch"


# --- conversion to the core Event --------------------------------------------------------


def test_to_core_track() -> None:
    call = parse_event(
        track(
            messageId="m1",
            timestamp=T0,
            anonymousId="a1",
            properties={"rows": 3},
            context={"groupId": "acme"},
        )
    )
    event = to_core(call, now=0.0)
    assert event.kind == "track"
    assert event.message_id == "m1"
    assert event.ts == T0_EPOCH
    assert event.account_id == "acme"
    assert (event.user_id, event.anonymous_id) == ("u1", "a1")
    assert event.name == "Report Built"
    assert event.properties == {"rows": 3}
    assert event.traits == {}
    event.properties["rows"] = 4
    assert call.properties == {"rows": 3}  # the event does not share the model's dicts


def test_to_core_group_uses_group_id_as_account() -> None:
    call = parse_event(
        {
            "type": "group",
            "groupId": "acme",
            "userId": "u1",
            "traits": {"plan": "pro"},
            "context": {"groupId": "other"},
        }
    )
    event = to_core(call, now=123.0)
    assert (event.kind, event.account_id, event.traits, event.ts) == (
        "group",
        "acme",
        {"plan": "pro"},
        123.0,
    )


def test_to_core_identify_page_screen_alias() -> None:
    identify = to_core(
        parse_event(
            {
                "type": "identify",
                "userId": "u1",
                "traits": {"email": "a@b.c"},
                "context": {"traits": {"ignored": True}},
            }
        ),
        now=1.0,
    )
    page = to_core(
        parse_event(
            {"type": "page", "anonymousId": "a1", "name": "Pricing", "properties": {"x": 1}}
        ),
        now=1.0,
    )
    screen = to_core(parse_event({"type": "screen", "userId": "u1", "name": "Home"}), now=1.0)
    alias = to_core(parse_event({"type": "alias", "previousId": "a1", "userId": "u1"}), now=1.0)
    assert (identify.traits, identify.account_id, identify.name) == ({"email": "a@b.c"}, None, None)
    assert (page.name, page.properties, page.user_id, page.anonymous_id) == (
        "Pricing",
        {"x": 1},
        None,
        "a1",
    )
    assert (screen.kind, screen.name) == ("screen", "Home")
    assert (alias.kind, alias.previous_id, alias.user_id) == ("alias", "a1", "u1")


def test_to_core_ts_handles_offsets() -> None:
    tz = timezone(timedelta(hours=-5))
    call = parse_event(track(timestamp=datetime(2024, 3, 1, 7, tzinfo=tz).isoformat()))
    assert to_core(call, now=0.0).ts == T0_EPOCH == to_epoch(datetime(2024, 3, 1, 12))
