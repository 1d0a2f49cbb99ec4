"""``GET /v1/events/{messageId}``: each state an event can be in, decided from what Redis holds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from apiserver import FakeApi, basic, bearer

from engine.redis.ingest_lua import appended_ms
from engine.redis.keys import GROUP, ShardKeys, seen_field


@pytest.fixture
def api() -> Iterator[FakeApi]:
    with FakeApi() as running:
        yield running


def send(api: FakeApi, **fields: Any) -> None:
    call = {"type": "track", "event": "login", "userId": "u1", "messageId": "m1", **fields}
    assert api.http.post("/v1/batch", json={"batch": [call]}, headers=basic()).status_code == 200


def status(api: FakeApi, message_id: str = "m1", **params: Any) -> dict[str, Any]:
    response = api.http.get(f"/v1/events/{message_id}", params=params, headers=bearer("readonly"))
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def shard_keys(api: FakeApi, account: str = "acme") -> ShardKeys:
    return ShardKeys(api.app.state.services.store.shard_of(account))


def test_an_event_no_worker_read_is_queued(api: FakeApi) -> None:
    send(api, context={"groupId": "acme"})
    found = status(api)
    assert found["status"] == "queued"
    assert found["account"] == "acme" and found["shard"] == shard_keys(api).shard
    assert found["entry_id"] == api.redis.xrange(shard_keys(api).stream)[0][0].decode()
    api.redis.xgroup_create(shard_keys(api).stream, GROUP, id="0")
    assert status(api)["status"] == "queued"  # a group exists, but nobody read the entry


def test_read_but_uncommitted_is_processing_then_acknowledged_is_applied(api: FakeApi) -> None:
    send(api, context={"groupId": "acme"})
    keys = shard_keys(api)
    api.redis.xgroup_create(keys.stream, GROUP, id="0")
    ((_, entries),) = api.redis.xreadgroup(GROUP, "worker", {keys.stream: ">"})
    assert status(api)["status"] == "processing"
    api.redis.xack(keys.stream, GROUP, entries[0][0])
    assert status(api)["status"] == "applied"
    api.redis.xtrim(keys.stream, minid="9999999999999-0")  # trimmed after its commit
    trimmed = status(api)
    assert trimmed["status"] == "applied" and trimmed["entry_id"] is None


def test_an_acknowledged_dead_letter_says_why(api: FakeApi) -> None:
    send(api, context={"groupId": "acme"})
    keys = shard_keys(api)
    api.redis.xgroup_create(keys.stream, GROUP, id="0")
    ((_, entries),) = api.redis.xreadgroup(GROUP, "worker", {keys.stream: ">"})
    entry_id, fields = entries[0]
    api.redis.xadd(
        keys.dead_letters,
        {"entry": fields[b"e"], "error": "KeyError: 'x'", "account": "acme", "id": entry_id},
    )
    api.redis.xack(keys.stream, GROUP, entry_id)
    found = status(api)
    assert found["status"] == "dead_letter" and found["reason"] == "KeyError: 'x'"


def test_an_event_is_found_in_any_dedupe_hash_until_a_window_old(api: FakeApi) -> None:
    send(api, context={"groupId": "acme"})
    field = seen_field("m1")
    (current,) = [name for name in shard_keys(api).seen if api.redis.hexists(name, field)]
    earlier = next(name for name in shard_keys(api).seen if name != current)
    at = appended_ms(api.redis.hget(current, field) or b"")
    api.redis.hdel(current, field)
    api.redis.hset(earlier, field, at.to_bytes(6, "big"))  # as if appended in an earlier period
    found = status(api)
    assert found["status"] == "queued" and found["entry_id"] is not None
    window_ms = api.app.state.services.settings.dedupe_window_s * 1000
    api.redis.hset(earlier, field, (at - window_ms).to_bytes(6, "big"))
    response = api.http.get("/v1/events/m1", headers=bearer("readonly"))
    assert response.status_code == 404


def test_a_rejected_event_gives_its_field_and_reason(api: FakeApi) -> None:
    send(api, messageId="ok")
    bad = {"type": "track", "userId": "u1", "messageId": "m-bad"}
    api.http.post("/v1/batch", json={"batch": [bad]}, headers=basic())
    found = status(api, "m-bad")
    assert found["status"] == "rejected"
    assert (found["field"], found["reason"]) == ("event", "field required")


def test_a_parked_event_is_found_under_its_user(api: FakeApi) -> None:
    send(api)  # no account known for u1 yet: parked
    response = api.http.get("/v1/events/m1", headers=bearer("readonly"))
    assert response.status_code == 404  # parked lists are per user: name the user to find it
    assert status(api, user="u1")["status"] == "parked"
    send(api, messageId="g1", type="group", groupId="acme")  # the group call releases it
    assert status(api, user="u1")["status"] == "queued"


def test_no_record_is_404(api: FakeApi) -> None:
    response = api.http.get("/v1/events/never-sent", headers=bearer("readonly"))
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_rejected_events_are_listed_newest_first(api: FakeApi) -> None:
    batch = [{"type": "track", "userId": "u", "messageId": f"b{i}"} for i in range(3)]
    api.http.post("/v1/batch", json={"batch": batch}, headers=basic())
    items = api.http.get("/v1/rejected", params={"limit": 2}, headers=bearer("csm")).json()["items"]
    assert [item["index"] for item in items] == [2, 1]
    assert '"messageId":"b2"' in items[0]["raw"]
