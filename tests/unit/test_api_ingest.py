"""Segment-compatible ingestion over HTTP (uvicorn on loopback, the API on fakeredis)."""

from __future__ import annotations

import gzip
import hashlib
import hmac
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from apiserver import WEBHOOK_SECRET, WRITE_KEY, FakeApi, basic, sdk_request

from engine.redis.keys import REJECTED, ShardKeys


@pytest.fixture
def api() -> Iterator[FakeApi]:
    with FakeApi() as running:
        yield running


def stream(api: FakeApi) -> list[dict[str, Any]]:
    """Every event in the shard streams, shard by shard."""
    out = []
    for shard in range(api.settings.shards):
        for _, fields in api.redis.xrange(ShardKeys(shard).stream):
            out.append(orjson.loads(fields[b"e"]))
    return out


def track(mid: str, **fields: Any) -> dict[str, Any]:
    call = {
        "type": "track",
        "messageId": mid,
        "userId": "u1",
        "event": "Logged In",
        "context": {"groupId": "acme"},
        "timestamp": "2026-03-02T09:00:00Z",
    }
    return {**call, **fields}


def test_track_with_basic_auth_is_stored_and_kicks_its_shard(api: FakeApi) -> None:
    response = api.http.post("/v1/track", json=track("m1"), headers=basic())
    assert response.status_code == 200
    assert response.json() == {
        "success": True, "accepted": 1, "duplicates": 0, "parked": 0, "rejected": []
    }  # fmt: skip
    (event,) = stream(api)
    assert (event["m"], event["a"], event["e"], event["k"]) == ("m1", "acme", "Logged In", "track")
    assert api.kicked == [api.app.state.services.store.shard_of("acme")]


@pytest.mark.parametrize("kind", ["identify", "group", "page", "screen", "alias"])
def test_every_call_type_has_its_endpoint(api: FakeApi, kind: str) -> None:
    fields = {
        "identify": {"traits": {"email": "a@acme.test"}},
        "group": {"groupId": "acme", "traits": {"plan": "pro"}},
        "page": {"name": "Home"},
        "screen": {"name": "Home"},
        "alias": {"previousId": "anon-1"},
    }[kind]
    body = {"userId": "u1", "messageId": f"{kind}-1", "writeKey": WRITE_KEY, **fields}
    response = api.http.post(f"/v1/{kind}", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1
    assert api.http.post(f"/v1/{kind}", json={**body, "type": "track"}).status_code == 400


def test_write_key_in_the_body_works_and_is_not_stored(api: FakeApi) -> None:
    response = api.http.post("/v1/track", json={**track("m1"), "writeKey": WRITE_KEY})
    assert response.status_code == 200
    assert b"writeKey" not in orjson.dumps(stream(api))


@pytest.mark.parametrize(
    "headers,body",
    [
        ({}, track("m1")),
        (basic("wrong"), track("m1")),
        ({}, {**track("m1"), "writeKey": "wrong"}),
        ({"Authorization": "Bearer tok-admin"}, track("m1")),
    ],
)
def test_a_missing_or_unknown_write_key_is_401(
    api: FakeApi, headers: dict[str, str], body: dict[str, Any]
) -> None:
    response = api.http.post("/v1/track", json=body, headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    assert stream(api) == []


def test_duplicate_message_ids_are_stored_once(api: FakeApi) -> None:
    first = api.http.post("/v1/track", json=track("dup"), headers=basic())
    again = api.http.post("/v1/track", json=track("dup"), headers=basic())
    assert first.json()["accepted"] == 1
    assert again.status_code == 200 and again.json()["duplicates"] == 1
    assert [e["m"] for e in stream(api)] == ["dup"]


def test_a_body_that_is_not_json_is_400(api: FakeApi) -> None:
    response = api.http.post("/v1/track", content=b"{nope", headers=basic())
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json"
    response = api.http.post("/v1/batch", content=b"[1, 2]", headers=basic())
    assert response.status_code == 400


def test_an_invalid_single_event_is_400_with_its_field_and_kept(api: FakeApi) -> None:
    response = api.http.post("/v1/track", json={"userId": "u1"}, headers=basic())
    assert response.status_code == 400
    body = response.json()
    assert body["rejected"] == [{"index": 0, "field": "event", "reason": "field required"}]
    (kept,) = api.redis.xrange(REJECTED)
    assert kept[1][b"field"] == b"event"


def test_a_batch_with_one_bad_event_stores_the_other_99(api: FakeApi) -> None:
    batch = [track(f"m{i}") for i in range(100)]
    batch[37] = {**batch[37], "timestamp": "not a date"}
    response = api.http.post("/v1/batch", json={"batch": batch}, headers=basic())
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 99
    assert body["rejected"] == [
        {"index": 37, "field": "timestamp", "reason": "invalid datetime 'not a date'"}
    ]
    assert len(stream(api)) == 99
    assert "m37" not in {e["m"] for e in stream(api)}
    assert api.redis.xlen(REJECTED) == 1


def test_a_batch_envelope_needs_a_list(api: FakeApi) -> None:
    response = api.http.post("/v1/batch", json={"batch": {"a": 1}}, headers=basic())
    assert response.status_code == 400
    assert "batch" in response.json()["message"]


def test_the_envelope_context_and_sent_at_apply_to_items(api: FakeApi) -> None:
    item = {**track("m1"), "context": {}, "timestamp": "2026-03-02T09:00:00Z"}
    body = {"batch": [item], "context": {"groupId": "globex"}, "sentAt": "2026-03-02T09:00:10Z"}
    assert api.http.post("/v1/batch", json=body, headers=basic()).status_code == 200
    (event,) = stream(api)
    assert event["a"] == "globex"  # the envelope's context reached the item
    # clock skew: timestamp = receivedAt - (sentAt - timestamp) = now - 10 s, not March
    import time

    assert abs(event["t"] - (time.time() - 10)) < 5


def test_what_analytics_python_sends_is_accepted(api: FakeApi) -> None:
    headers, body = sdk_request([track("sdk-1"), track("sdk-2")], "2026-03-02T09:00:00Z")
    response = api.http.post("/v1/batch", content=body, headers=headers)
    assert response.status_code == 200
    assert response.json()["accepted"] == 2


def test_gzip_bodies_are_accepted_and_bad_gzip_is_400(api: FakeApi) -> None:
    body = gzip.compress(orjson.dumps(track("gz")))
    headers = {**basic(), "Content-Encoding": "gzip", "Content-Type": "application/json"}
    assert api.http.post("/v1/track", content=body, headers=headers).status_code == 200
    bad = api.http.post("/v1/track", content=b"not gzip", headers=headers)
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_gzip"
    truncated = api.http.post("/v1/track", content=body[:-8], headers=headers)
    assert truncated.status_code == 400


def test_other_encodings_are_415(api: FakeApi) -> None:
    headers = {**basic(), "Content-Encoding": "br"}
    response = api.http.post("/v1/track", content=orjson.dumps(track("m")), headers=headers)
    assert response.status_code == 415


def test_an_event_over_32_kb_is_413_alone_and_rejected_by_index_in_a_batch(api: FakeApi) -> None:
    big = track("big", properties={"blob": "x" * 33_000})
    response = api.http.post("/v1/track", json=big, headers=basic())
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"
    batch = api.http.post("/v1/batch", json={"batch": [big, track("small")]}, headers=basic())
    assert batch.status_code == 200
    assert batch.json()["accepted"] == 1
    assert batch.json()["rejected"][0]["index"] == 0
    assert "32768-byte limit" in batch.json()["rejected"][0]["reason"]


def test_a_request_over_500_kb_is_413_before_or_after_gzip(api: FakeApi) -> None:
    batch = [track(f"m{i}", properties={"pad": "y" * 20_000}) for i in range(30)]
    body = orjson.dumps({"batch": batch})
    assert len(body) > 500 * 1024
    plain = api.http.post("/v1/batch", content=body, headers=basic())
    assert plain.status_code == 413
    headers = {**basic(), "Content-Encoding": "gzip"}
    packed = gzip.compress(body)
    assert len(packed) < 500 * 1024  # small on the wire, too big once inflated
    assert api.http.post("/v1/batch", content=packed, headers=headers).status_code == 413
    assert stream(api) == []


def test_backlog_over_the_limit_is_429_with_retry_after() -> None:
    with FakeApi(max_backlog=2, retry_after_s=7) as api:
        for i in range(3):
            assert (
                api.http.post("/v1/track", json=track(f"m{i}"), headers=basic()).status_code == 200
            )
        response = api.http.post("/v1/track", json=track("m9"), headers=basic())
        assert response.status_code == 429
        assert response.headers["retry-after"] == "7"
        assert response.json()["code"] == "backlog_full"


def test_redis_down_is_503_and_nothing_is_acknowledged(api: FakeApi) -> None:
    api.server.connected = False
    response = api.http.post("/v1/track", json=track("m1"), headers=basic())
    assert response.status_code == 503
    assert response.json()["code"] == "unavailable"
    management = api.http.get("/v1/accounts", headers={"Authorization": "Bearer tok-read"})
    assert management.status_code == 503


def test_a_broker_failure_after_storing_is_503_and_a_retry_is_deduplicated() -> None:
    with FakeApi() as api:
        calls: list[int] = []

        def failing(shard: int) -> None:
            calls.append(shard)
            if len(calls) == 1:
                raise ConnectionError("broker down")

        api.app.state.services.ingestor.kick = _guarded(failing)
        first = api.http.post("/v1/track", json=track("m1"), headers=basic())
        assert first.status_code == 503 and first.json()["code"] == "broker_unavailable"
        again = api.http.post("/v1/track", json=track("m1"), headers=basic())
        assert again.status_code == 200
        assert again.json()["duplicates"] == 1
        assert len(calls) == 2  # the retry kicked the shard again
        assert len(stream(api)) == 1


def _guarded(kick: Any) -> Any:
    from engine.api.services import guarded

    return guarded(kick)


def sign(body: bytes, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    return {"X-Signature": hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()}


def test_segment_webhook_deliveries_are_verified_and_stored(api: FakeApi) -> None:
    delivery = {
        **track("wh-1"),
        "timestamp": "2026-03-02T09:00:00Z",
        "sentAt": "2026-03-02T10:00:00Z",
        "receivedAt": "2026-03-02T09:00:05Z",
        "projectId": "segment-source",
    }
    body = orjson.dumps(delivery)
    response = api.http.post("/v1/webhooks/segment", content=body, headers=sign(body))
    assert response.status_code == 200, response.text
    (event,) = stream(api)
    assert event["m"] == "wh-1"
    assert event["t"] == 1772442000.0  # Segment's timestamp, already corrected, used as is


def test_segment_webhook_refuses_a_bad_or_missing_signature(api: FakeApi) -> None:
    body = orjson.dumps(track("wh-2"))
    assert api.http.post("/v1/webhooks/segment", content=body).status_code == 401
    wrong = api.http.post("/v1/webhooks/segment", content=body, headers=sign(body, "nope"))
    assert wrong.status_code == 401 and wrong.json()["code"] == "bad_signature"
    assert stream(api) == []


def test_segment_webhook_is_refused_when_no_secret_is_configured() -> None:
    with FakeApi(segment_webhook_secret=None) as api:
        body = orjson.dumps(track("wh-3"))
        response = api.http.post("/v1/webhooks/segment", content=body, headers=sign(body))
        assert response.status_code == 401
        assert response.json()["code"] == "not_configured"
