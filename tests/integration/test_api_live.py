"""The HTTP API as deployed: ``hourglass api`` (uvicorn on loopback), a real redis-server and a
real Celery worker. Events sent the way SDKs send them reach account state; management
endpoints act on the running deployment."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
from apiserver import WEBHOOK_SECRET, WRITE_KEY, ApiProcess, basic, bearer, sdk_request
from workerproc import ROOT, WorkerProcess, wait_until

from engine.client import Client
from engine.redis.keys import AUDIT, ShardKeys
from engine.redis.store import RedisStore

pytestmark = pytest.mark.integration
SHARDS = 4
#: Events happen in the last hours (account pages count windowed metrics as of wall time).
START = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=3)


@pytest.fixture(scope="module")
def deployment(
    redis_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ApiProcess, WorkerProcess]]:
    """One API process and one worker for the module, on the session's redis-server."""
    redis.Redis.from_url(redis_server).flushall()
    logs = tmp_path_factory.mktemp("api-live")
    api = ApiProcess(redis_server, logs / "api.log").start()
    worker = WorkerProcess(redis_server, "api-w1", logs / "worker.log", shards=str(SHARDS)).start()
    yield api, worker
    worker.stop()
    api.stop()


@pytest.fixture
def http(deployment: tuple[ApiProcess, WorkerProcess]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=deployment[0].url, timeout=15) as client:
        yield client


@pytest.fixture
def client(redis_server: str) -> redis.Redis:
    return redis.Redis.from_url(redis_server)


def at(minute: int) -> str:
    return (START + timedelta(minutes=minute)).isoformat().replace("+00:00", "Z")


def onboarding(account: str, logins: int, prefix: str) -> list[dict[str, Any]]:
    """A group call, a champion, and ``logins`` logins, as an SDK batch."""
    user = f"{account}-u1"
    calls: list[dict[str, Any]] = [
        {"type": "group", "messageId": f"{prefix}-g", "userId": user, "groupId": account,
         "timestamp": at(0), "traits": {"name": account.title(), "segment": "enterprise",
                                        "csm_email": "cara@vendor.test"}},
        {"type": "identify", "messageId": f"{prefix}-i", "userId": user, "timestamp": at(1),
         "context": {"groupId": account},
         "traits": {"email": f"champ@{account}.test", "role": "champion"}},
    ]  # fmt: skip
    calls += [
        {"type": "track", "messageId": f"{prefix}-l{n}", "userId": user, "event": "login",
         "timestamp": at(2 + n % 50), "context": {"groupId": account}}
        for n in range(logins)
    ]  # fmt: skip
    return calls


def page(http: httpx.Client, account: str) -> dict[str, Any] | None:
    response = http.get(f"/v1/accounts/{account}", headers=bearer("readonly"))
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def logins_of(http: httpx.Client, account: str) -> int:
    found = page(http, account)
    return int(found["metrics"]["logins_30d"]) if found else -1


def test_an_sdk_batch_with_basic_auth_and_gzip_reaches_the_account(http: httpx.Client) -> None:
    headers, body = sdk_request(onboarding("initech", 5, "sdk"), sent_at=at(59))
    response = http.post("/v1/batch", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 7
    wait_until(lambda: logins_of(http, "initech") == 5, 60, "the logins applied")
    account = page(http, "initech")
    assert account is not None
    assert account["traits"]["name"] == "Initech"
    assert [c["email"] for c in account["contacts"]] == ["champ@initech.test"]


def test_duplicate_message_ids_are_applied_once(http: httpx.Client, client: redis.Redis) -> None:
    calls = onboarding("hooli", 20, "dup")
    first = http.post("/v1/batch", json={"batch": calls}, headers=basic())
    again = http.post("/v1/batch", json={"batch": calls, "writeKey": WRITE_KEY})
    assert first.json()["accepted"] == 22
    assert again.json() == {
        "success": True, "accepted": 0, "duplicates": 22, "parked": 0, "rejected": []
    }  # fmt: skip
    for call in calls[2:7]:  # and one at a time, on the single-call endpoint
        assert http.post("/v1/track", json=call, headers=basic()).json()["duplicates"] == 1
    wait_until(lambda: logins_of(http, "hooli") == 20, 60, "the logins applied")
    status = http.get(f"/v1/events/{calls[5]['messageId']}", headers=bearer("readonly")).json()
    assert status["status"] == "applied"
    assert status["shard"] == RedisStore(client, shards=SHARDS).shard_of("hooli")


def test_one_bad_event_in_a_batch_costs_nothing_else(http: httpx.Client) -> None:
    calls = onboarding("vandelay", 98, "bad")
    calls[40] = {**calls[40], "event": ""}
    response = http.post("/v1/batch", json={"batch": calls}, headers=basic())
    assert response.status_code == 200
    assert response.json()["accepted"] == 99
    (problem,) = response.json()["rejected"]
    assert (problem["index"], problem["field"]) == (40, "event")
    wait_until(lambda: logins_of(http, "vandelay") == 97, 60, "the 97 good logins applied")
    rejected = http.get(f"/v1/events/{calls[40]['messageId']}", headers=bearer("csm")).json()
    assert rejected["status"] == "rejected" and rejected["field"] == "event"
    kept = http.get("/v1/rejected", headers=bearer("ops")).json()["items"]
    assert any(calls[40]["messageId"] in item["raw"] for item in kept)


def test_an_event_sent_with_the_python_client_reaches_the_account(
    deployment: tuple[ApiProcess, WorkerProcess], http: httpx.Client
) -> None:
    sdk = Client(WRITE_KEY, deployment[0].url, flush_interval=0.1)
    try:
        sdk.group("u-pc", "pied-piper", {"name": "Pied Piper"}, timestamp=at(0))
        for minute in range(3):
            sdk.track("u-pc", "login", group_id="pied-piper", timestamp=at(minute + 1))
        assert sdk.flush(timeout=10)
    finally:
        sdk.shutdown()
    assert sdk.stats.sent == 4 and sdk.stats.failed == 0
    wait_until(lambda: logins_of(http, "pied-piper") == 3, 60, "the client's logins applied")


def test_a_signed_segment_webhook_delivery_is_applied(http: httpx.Client) -> None:
    delivery = orjson.dumps(
        {"type": "group", "messageId": "wh-g", "userId": "u-wh", "groupId": "umbrella",
         "timestamp": at(0), "receivedAt": at(0), "traits": {"name": "Umbrella"}}
    )  # fmt: skip
    signature = hmac.new(WEBHOOK_SECRET.encode(), delivery, hashlib.sha1).hexdigest()
    response = http.post(
        "/v1/webhooks/segment", content=delivery, headers={"X-Signature": signature}
    )
    assert response.status_code == 200, response.text
    wait_until(lambda: page(http, "umbrella") is not None, 60, "the account created")


def test_completing_a_task_drops_it_from_the_account(
    http: httpx.Client, client: redis.Redis
) -> None:
    score = {"type": "track", "messageId": "nps-score", "userId": "massive-u1",
             "event": "nps_submitted", "timestamp": at(30), "context": {"groupId": "massive"},
             "properties": {"score": 3}}  # fmt: skip
    calls = [*onboarding("massive", 1, "nps"), score]
    assert http.post("/v1/batch", json={"batch": calls}, headers=basic()).status_code == 200

    def open_tasks() -> list[dict[str, Any]]:
        found = page(http, "massive")
        return found["open_tasks"] if found else []

    wait_until(lambda: len(open_tasks()) == 1, 60, "the detractor task opened")
    (task,) = open_tasks()
    store = RedisStore(client, shards=SHARDS)
    (action,) = [a for a in store.pending_actions(10_000) if a.key == task["id"]]
    # What the task channel does when it delivers the action (a dispatch worker may, too).
    store.save_task({**action.payload, "account": action.account, "playbook": action.playbook})
    listed = http.get("/v1/tasks", params={"account": "massive"}, headers=bearer("csm")).json()
    assert [t["task_id"] for t in listed["items"]] == [task["id"]]
    assert (
        http.post(f"/v1/tasks/{task['id']}/complete", headers=bearer("readonly")).status_code == 403
    )
    done = http.post(f"/v1/tasks/{task['id']}/complete", headers=bearer("csm"))
    assert done.status_code == 200 and done.json()["status"] == "done"
    wait_until(lambda: open_tasks() == [], 60, "the task dropped from the account")
    audit = http.get("/v1/audit", params={"who": "csm-user"}, headers=bearer("admin")).json()
    assert audit["items"][0]["action"] == "task_complete"


def test_a_stage_override_is_appended_and_applied_in_order(http: httpx.Client) -> None:
    calls = onboarding("globex", 1, "ovr")
    assert http.post("/v1/batch", json={"batch": calls}, headers=basic()).status_code == 200
    wait_until(lambda: page(http, "globex") is not None, 60, "the account created")
    body = {"track": "flywheel.lifecycle", "stage": "adoption", "reason": "manual"}
    refused = http.post("/v1/accounts/globex/stage", json=body, headers=bearer("csm"))
    assert refused.status_code == 403
    response = http.post("/v1/accounts/globex/stage", json=body, headers=bearer("admin"))
    assert response.status_code == 202, response.text
    message_id = response.json()["message_id"]

    def settled() -> str:
        found = http.get(f"/v1/events/{message_id}", headers=bearer("readonly")).json()
        return str(found["status"])

    wait_until(lambda: settled() == "applied", 60, "the override event consumed")
    account = page(http, "globex")
    assert account is not None
    lifecycle = next(t for t in account["stages"] if t["track"] == "flywheel.lifecycle")
    assert lifecycle["stage"] == "adoption"
    entries = http.get("/v1/audit", params={"who": "admin-user"}, headers=bearer("ops")).json()
    assert entries["items"][0]["action"] == "stage_override"


def test_dead_letters_are_inspected_replayed_and_discarded(
    http: httpx.Client, client: redis.Redis
) -> None:
    store = RedisStore(client, shards=SHARDS)
    shard = store.shard_of("poisoned")
    client.xadd(ShardKeys(shard).stream, {b"e": b"{not json"})
    assert http.post("/v1/batch", json={"batch": onboarding("poisoned", 1, "psn")},
                     headers=basic()).status_code == 200  # fmt: skip

    def letters() -> list[dict[str, Any]]:
        body = http.get("/v1/dead-letters", params={"shard": shard}, headers=bearer("readonly"))
        items: list[dict[str, Any]] = body.json()["items"]
        return items

    wait_until(lambda: len(letters()) == 1, 60, "the poison entry dead-lettered")
    (letter,) = letters()
    assert "undecodable" in letter["error"]
    path = f"/v1/dead-letters/{shard}/{letter['id']}"
    assert http.post(f"{path}/replay", headers=bearer("csm")).status_code == 403
    assert http.post(f"{path}/replay", headers=bearer("ops")).status_code == 200
    wait_until(lambda: len(letters()) == 1 and letters()[0]["id"] != letter["id"], 60,
               "the replayed entry dead-lettered again")  # fmt: skip
    (again,) = letters()
    assert http.delete(f"/v1/dead-letters/{shard}/{again['id']}", headers=bearer("admin")).json()[
        "action"] == "discarded"  # fmt: skip
    assert letters() == []
    actions = {e["action"] for e in http.get("/v1/audit", headers=bearer("admin")).json()["items"]}
    assert {"dead_letter_replay", "dead_letter_discard"} <= actions
    assert client.xlen(AUDIT) >= 2


def test_a_playbook_set_that_does_not_load_leaves_the_running_one(http: httpx.Client) -> None:
    root = ROOT / "playbooks"
    files = {str(p.relative_to(root)): p.read_text() for p in root.rglob("*") if p.is_file()}
    published = http.put("/v1/playbooks", json={"files": files}, headers=bearer("ops"))
    assert published.status_code == 200, published.text
    version = published.json()["version"]
    broken = {**files, "nps.yaml": files["nps.yaml"].replace("event: nps_submitted", "event: [")}
    refused = http.put("/v1/playbooks", json={"files": broken}, headers=bearer("admin"))
    assert refused.status_code == 422
    assert all(p.startswith("nps.yaml:") for p in refused.json()["problems"])
    current = http.get("/v1/playbooks", headers=bearer("readonly")).json()["current"]
    assert current["version"] == version


def test_readyz_sees_redis_and_the_worker(http: httpx.Client) -> None:
    ready = http.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["redis"] is True and ready.json()["workers"] >= 1


def test_without_redis_ingest_is_503_and_nothing_is_lost(
    redis_process: Callable[..., Any], tmp_path: Path
) -> None:
    server = redis_process(appendonly=True)
    api = ApiProcess(server.url, tmp_path / "api.log", worker_ping_timeout_s="0.2").start()
    try:
        with httpx.Client(base_url=api.url, timeout=15) as http:
            call = {"type": "track", "messageId": "down-1", "userId": "u", "event": "login",
                    "context": {"groupId": "acme"}}  # fmt: skip
            server.stop()
            response = http.post("/v1/track", json=call, headers=basic())
            assert response.status_code == 503 and response.headers["retry-after"] == "1"
            assert http.get("/v1/status", headers=bearer("ops")).status_code == 503
            ready = http.get("/readyz")
            assert ready.status_code == 503 and ready.json()["redis"] is False
            server.start()
            response = http.post("/v1/track", json=call, headers=basic())
            assert response.status_code == 200 and response.json()["accepted"] == 1
    finally:
        api.stop()
