"""The management API on fakeredis: roles, the account page and list, overrides, tasks, dead
letters, playbook sets, audit, health."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from apiserver import TOKENS, FakeApi, bearer

from engine.core.effects import ActionEffect
from engine.core.state import AccountState, Contact, OpenTask, PlaybookBook, Timer, TrackState
from engine.redis.keys import AUDIT, ShardKeys
from engine.redis.store import RedisStore
from engine.runtime.store import Commit

ROOT = Path(__file__).resolve().parents[2]
DAY = 86400.0
NOW = time.time()


@pytest.fixture
def api() -> Iterator[FakeApi]:
    with FakeApi() as running:
        yield running


def store(api: FakeApi) -> RedisStore:
    found: RedisStore = api.app.state.services.store
    return found


def acme(now: float = NOW) -> AccountState:
    """An account with something in every section of its page."""
    lifecycle = TrackState("onboarding", now - 20 * DAY)
    lifecycle.history = []
    lifecycle.move("adoption", now - 2 * DAY)
    state = AccountState("acme", created=now - 30 * DAY, last_event=now - 3600)
    state.tracks = {
        "flywheel.lifecycle": lifecycle,
        "flywheel.renewal": TrackState("not_due", now - 10 * DAY),
    }
    state.traits = {"name": "Acme", "renewal_date": "2026-12-01", "mrr": 1200}
    state.flags = {"renewal_risk": 0.0, "expired_flag": now - 10}
    state.health = 72.0
    state.health_history = [(now - DAY, 65.0)]
    state.contacts = {
        "u1": Contact("u1", email="ann@acme.test", role="champion", last_seen=now - 60),
        "u2": Contact("u2", email="bob@acme.test", role="admin", last_seen=now - 600),
    }
    state.timers = {"inactivity:onboarding-stalled:0": Timer(3, now + 5 * DAY)}
    state.tasks = {"task-key-1": OpenTask("onboarding-stalled", "Call Acme", "csm", now + DAY)}
    state.books = {"onboarding-stalled": PlaybookBook(fired=1, last_fired=now - DAY, goals=0)}
    return state


def put_account(api: FakeApi, state: AccountState, actions: list[ActionEffect] = ()) -> None:  # type: ignore[assignment]
    store(api).commit(Commit(states=[state], actions=list(actions)))


def action(key: str, account: str = "acme", kind: str = "email") -> ActionEffect:
    return ActionEffect(
        key=key, at=NOW - 100, account=account, playbook="onboarding-stalled", version=1,
        type=kind, mode="live", payload={"subject": "Welcome aboard"}, step="0",
    )  # fmt: skip


# -- who may do what -----------------------------------------------------------------------------

READS = [
    ("GET", "/v1/accounts/acme", None),
    ("GET", "/v1/accounts", None),
    ("GET", "/v1/events/m1", None),
    ("GET", "/v1/rejected", None),
    ("GET", "/v1/tasks", None),
    ("GET", "/v1/playbooks", None),
    ("GET", "/v1/dead-letters", None),
    ("GET", "/v1/status", None),
]
WRITES = [
    ("POST", "/v1/accounts/acme/stage", {"track": "lifecycle", "stage": "expansion"}, {"admin"}),
    ("POST", "/v1/tasks/nope/complete", None, {"admin", "csm"}),
    ("POST", "/v1/dead-letters/0/1-0/replay", None, {"admin", "ops"}),
    ("DELETE", "/v1/dead-letters/0/1-0", None, {"admin", "ops"}),
    ("PUT", "/v1/playbooks", {"files": {"a.yaml": "kind: nothing\n"}}, {"admin", "ops"}),
    ("GET", "/v1/audit", None, {"admin", "ops"}),
]


@pytest.mark.parametrize("role", sorted(TOKENS))
def test_every_role_reads_everything(api: FakeApi, role: str) -> None:
    put_account(api, acme())
    for method, path, body in READS:
        response = api.http.request(method, path, json=body, headers=bearer(role))
        assert response.status_code in (200, 404), (role, path, response.text)


@pytest.mark.parametrize("role", sorted(TOKENS))
def test_writes_need_the_role_that_grants_them(api: FakeApi, role: str) -> None:
    put_account(api, acme())
    for method, path, body, allowed in WRITES:
        response = api.http.request(method, path, json=body, headers=bearer(role))
        if role in allowed:
            assert response.status_code not in (401, 403), (role, path, response.text)
        else:
            assert response.status_code == 403, (role, path, response.text)
            assert response.json()["code"] == "forbidden"
            assert f"{role}-user" in response.json()["message"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"X-Token": "x"}])
def test_management_without_a_known_token_is_401(api: FakeApi, headers: dict[str, str]) -> None:
    for method, path, body in READS:
        response = api.http.request(method, path, json=body, headers=headers)
        assert response.status_code == 401, path
        assert response.json() == {
            "success": False, "code": "unauthorized", "message": "a valid Bearer token is required"
        }  # fmt: skip


def test_a_write_key_is_not_a_management_token(api: FakeApi) -> None:
    response = api.http.get("/v1/status", headers={"Authorization": "Bearer wk-test-1"})
    assert response.status_code == 401


# -- accounts ------------------------------------------------------------------------------------


def test_the_account_page_explains_the_account(api: FakeApi) -> None:
    put_account(api, acme(), [action("k-email")])
    store(api).save_task(
        {"task_id": "task-key-1", "account": "acme", "playbook": "onboarding-stalled",
         "title": "Call Acme", "assignee": "csm", "at": NOW - 50}
    )  # fmt: skip
    response = api.http.get("/v1/accounts/acme", headers=bearer("csm"))
    assert response.status_code == 200
    page = response.json()
    assert page["id"] == "acme"
    lifecycle, renewal = page["stages"]
    assert (lifecycle["track"], lifecycle["stage"]) == ("flywheel.lifecycle", "adoption")
    assert lifecycle["days"] == pytest.approx(2.0, abs=0.01)
    assert [h["stage"] for h in lifecycle["history"]] == ["onboarding"]
    assert renewal["stage"] == "not_due"
    assert page["traits"]["name"] == "Acme"
    assert page["traits"]["renewal_date"].startswith("2026-12-01T00:00:00")  # a date trait
    assert page["flags"] == ["renewal_risk"]  # the expired flag is not shown
    assert page["metrics"]["logins_7d"] == 0  # declared metrics, from the playbook schema
    assert page["health"]["score"] == 72.0 and page["health"]["band"] == "green"
    assert [c["email"] for c in page["contacts"]] == ["ann@acme.test", "bob@acme.test"]
    assert page["open_timers"][0]["id"] == "inactivity:onboarding-stalled:0"
    assert page["open_tasks"][0]["title"] == "Call Acme"
    (book,) = page["playbooks"]
    assert (book["playbook"], book["fired"], book["running_step"]) == (
        "onboarding-stalled",
        1,
        None,
    )
    assert book["last_fired"][:10] == time.strftime("%Y-%m-%d", time.gmtime(NOW - DAY))
    recent = {(a["key"], a["status"]) for a in page["recent_actions"]}
    assert recent == {("k-email", "pending"), ("task-key-1", "open")}


def test_an_unknown_account_is_404(api: FakeApi) -> None:
    response = api.http.get("/v1/accounts/nobody", headers=bearer("readonly"))
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_recent_actions_leave_out_other_accounts(api: FakeApi) -> None:
    other = AccountState("acme2", created=NOW)
    put_account(api, acme(), [action("mine")])
    put_account(api, other, [action("theirs", account="acme2")])
    page = api.http.get("/v1/accounts/acme", headers=bearer("admin")).json()
    assert [a["key"] for a in page["recent_actions"]] == ["mine"]


def _accounts(count: int) -> list[AccountState]:
    out = []
    for i in range(count):
        state = AccountState(f"acct-{i:03d}", created=NOW)
        stage = "onboarding" if i % 3 == 0 else "adoption"
        state.tracks = {"flywheel.lifecycle": TrackState(stage, NOW - DAY)}
        if i % 2 == 0:
            state.tracks["flywheel.renewal"] = TrackState("onboarding", NOW)  # same stage name
        out.append(state)
    return out


def test_the_account_list_pages_through_every_match_once(api: FakeApi) -> None:
    for state in _accounts(50):
        put_account(api, state)
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"stage": "onboarding", "track": "lifecycle", "limit": 4}
        if cursor:
            params["cursor"] = cursor
        page = api.http.get("/v1/accounts", params=params, headers=bearer("readonly")).json()
        assert len(page["items"]) <= 4
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next"]
        if cursor is None:
            break
    expected = {f"acct-{i:03d}" for i in range(50) if i % 3 == 0}
    assert sorted(seen) == sorted(expected) and len(seen) == len(expected)
    assert pages >= 5


def test_the_account_list_filters_by_stage_on_any_track_or_by_track(api: FakeApi) -> None:
    for state in _accounts(12):
        put_account(api, state)

    def ids(**params: Any) -> set[str]:
        page = api.http.get("/v1/accounts", params=params, headers=bearer("csm")).json()
        return {item["id"] for item in page["items"]}

    on_any = ids(stage="onboarding")
    assert on_any == {f"acct-{i:03d}" for i in range(12) if i % 3 == 0 or i % 2 == 0}
    assert ids(track="flywheel.renewal") == {f"acct-{i:03d}" for i in range(12) if i % 2 == 0}
    assert len(ids()) == 12
    summary = api.http.get("/v1/accounts", params={"limit": 1}, headers=bearer("csm")).json()
    assert summary["items"][0]["stages"]["flywheel.lifecycle"] in ("onboarding", "adoption")


def test_a_bad_cursor_is_400(api: FakeApi) -> None:
    response = api.http.get("/v1/accounts", params={"cursor": "!!"}, headers=bearer("csm"))
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_cursor"


def test_a_stage_override_is_an_audited_internal_event(api: FakeApi) -> None:
    put_account(api, acme())
    body = {"track": "lifecycle", "stage": "expansion", "reason": "signed the upsell"}
    response = api.http.post("/v1/accounts/acme/stage", json=body, headers=bearer("admin"))
    assert response.status_code == 202, response.text
    queued = response.json()
    assert queued["track"] == "flywheel.lifecycle"
    shard = store(api).shard_of("acme")
    ((_, fields),) = api.redis.xrange(ShardKeys(shard).stream)
    event = orjson.loads(fields[b"e"])
    assert event["k"] == "track" and event["e"] == "hourglass.stage_override"
    assert event["a"] == "acme" and event["n"] == "hourglass:api"
    assert event["m"] == queued["message_id"]
    assert event["p"] == {
        "track": "flywheel.lifecycle", "stage": "expansion", "by": "admin-user",
        "reason": "signed the upsell",
    }  # fmt: skip
    assert api.kicked == [shard]
    (entry,) = api.http.get("/v1/audit", headers=bearer("ops")).json()["items"]
    assert (entry["who"], entry["role"], entry["action"]) == (
        "admin-user",
        "admin",
        "stage_override",
    )
    assert entry["target"] == "acme" and entry["detail"]["stage"] == "expansion"


@pytest.mark.parametrize(
    "body,field",
    [
        ({"track": "nowhere", "stage": "adoption"}, "track"),
        ({"track": "renewal", "stage": "adoption"}, "stage"),
        ({"track": "hourglass.lifecycle", "stage": "nirvana"}, "stage"),
        ({"track": "flywheel.lifecycle", "stage": "nirvana"}, "stage"),
    ],
)
def test_an_override_to_an_unknown_track_or_stage_is_422(
    api: FakeApi, body: dict[str, str], field: str
) -> None:
    put_account(api, acme())
    response = api.http.post("/v1/accounts/acme/stage", json=body, headers=bearer("admin"))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", field]
    assert api.redis.xlen(ShardKeys(store(api).shard_of("acme")).stream) == 0
    assert api.redis.xlen(AUDIT) == 1  # the refusal is audited too


def test_an_override_of_an_unknown_account_is_404(api: FakeApi) -> None:
    body = {"track": "lifecycle", "stage": "adoption"}
    response = api.http.post("/v1/accounts/ghost/stage", json=body, headers=bearer("admin"))
    assert response.status_code == 404


# -- tasks ---------------------------------------------------------------------------------------


def save_tasks(api: FakeApi) -> None:
    for i, (account, assignee) in enumerate([("acme", "csm"), ("acme", "ae"), ("globex", "csm")]):
        store(api).save_task(
            {"task_id": f"t{i}", "account": account, "playbook": "onboarding-stalled",
             "title": f"Task {i}", "assignee": assignee, "assignee_email": f"{assignee}@x.test",
             "due": "2026-03-04T09:00:00Z", "priority": "high"}
        )  # fmt: skip


def test_tasks_are_listed_with_filters_and_pages(api: FakeApi) -> None:
    save_tasks(api)

    def ids(**params: Any) -> list[str]:
        body = api.http.get("/v1/tasks", params=params, headers=bearer("csm")).json()
        return [t["task_id"] for t in body["items"]]

    assert ids() == ["t0", "t1", "t2"]
    assert ids(account="acme") == ["t0", "t1"]
    assert ids(assignee="csm") == ["t0", "t2"]
    assert ids(assignee="ae@x.test") == ["t1"]
    assert ids(status="done") == []
    page = api.http.get("/v1/tasks", params={"limit": 2}, headers=bearer("csm")).json()
    assert page["total"] == 3 and page["next_offset"] == 2
    assert page["items"][0]["priority"] == "high"  # the playbook's own fields come along


def test_completing_a_task_marks_it_done_and_tells_the_account(api: FakeApi) -> None:
    save_tasks(api)
    response = api.http.post("/v1/tasks/t1/complete", headers=bearer("csm"))
    assert response.status_code == 200
    assert response.json()["status"] == "done" and response.json()["completed_at"]
    assert [t["task_id"] for t in store(api).tasks(status="done")] == ["t1"]
    ((_, fields),) = api.redis.xrange(ShardKeys(store(api).shard_of("acme")).stream)
    event = orjson.loads(fields[b"e"])
    assert (event["e"], event["a"], event["p"]["task_id"]) == ("task_completed", "acme", "t1")
    again = api.http.post("/v1/tasks/t1/complete", headers=bearer("admin"))
    assert again.status_code == 200
    assert api.redis.xlen(ShardKeys(store(api).shard_of("acme")).stream) == 1  # deduplicated
    actions = [
        e["action"] for e in api.http.get("/v1/audit", headers=bearer("admin")).json()["items"]
    ]
    assert actions == ["task_complete", "task_complete"]


def test_completing_an_unknown_task_is_404(api: FakeApi) -> None:
    assert api.http.post("/v1/tasks/ghost/complete", headers=bearer("csm")).status_code == 404


# -- dead letters --------------------------------------------------------------------------------


def dead_letter(api: FakeApi, shard: int = 1) -> str:
    """A dead letter as the commit script writes one."""
    entry = b'{"k":"track","m":"poison","t":1,"a":"acme","e":"x"}'
    fields = {"entry": entry, "error": "ValueError: boom", "account": "acme", "id": "5-0"}
    return api.redis.xadd(ShardKeys(shard).dead_letters, fields).decode()


def test_dead_letters_are_listed_replayed_and_discarded_by_ops(api: FakeApi) -> None:
    letter = dead_letter(api)
    listed = api.http.get("/v1/dead-letters", headers=bearer("readonly")).json()["items"]
    assert [(d["shard"], d["id"], d["account"]) for d in listed] == [(1, letter, "acme")]
    assert "boom" in listed[0]["error"]
    replay = api.http.post(f"/v1/dead-letters/1/{letter}/replay", headers=bearer("ops"))
    assert replay.status_code == 200 and replay.json()["action"] == "replayed"
    assert api.redis.xlen(ShardKeys(1).stream) == 1 and api.kicked == [1]
    assert (
        api.http.post(f"/v1/dead-letters/1/{letter}/replay", headers=bearer("ops")).status_code
        == 404
    )
    second = dead_letter(api)
    gone = api.http.delete(f"/v1/dead-letters/1/{second}", headers=bearer("ops"))
    assert gone.status_code == 200 and gone.json()["action"] == "discarded"
    assert api.http.get("/v1/dead-letters", headers=bearer("ops")).json()["items"] == []
    assert api.http.delete("/v1/dead-letters/9/1-0", headers=bearer("ops")).status_code == 404
    audit = api.http.get("/v1/audit", params={"who": "ops-user"}, headers=bearer("ops")).json()
    assert [(e["action"], e["outcome"]) for e in audit["items"]] == [
        ("dead_letter_discard", "done"), ("dead_letter_replay", "not_found"),
        ("dead_letter_replay", "done"),
    ]  # fmt: skip


# -- playbook sets -------------------------------------------------------------------------------


def directory_files() -> dict[str, str]:
    root = ROOT / "playbooks"
    return {
        str(path.relative_to(root)): path.read_text()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_a_bad_playbook_set_is_422_with_file_and_line_and_changes_nothing(api: FakeApi) -> None:
    files = directory_files()
    assert (
        api.http.put("/v1/playbooks", json={"files": files}, headers=bearer("ops")).status_code
        == 200
    )
    broken = dict(files)
    broken["onboarding.yaml"] = files["onboarding.yaml"].replace("priority: 50", "priority: high")
    response = api.http.put("/v1/playbooks", json={"files": broken}, headers=bearer("ops"))
    assert response.status_code == 422
    problems = response.json()["problems"]
    assert problems and all(p.startswith("onboarding.yaml:") for p in problems)
    assert any("priority" in p for p in problems)
    line = int(problems[0].split(":")[1])
    assert files["onboarding.yaml"].splitlines()[line - 1].startswith("priority")
    current = api.http.get("/v1/playbooks", headers=bearer("readonly")).json()
    assert current["current"]["version"] == 1 and len(current["history"]) == 1


def test_a_good_playbook_set_is_published_with_its_author(api: FakeApi) -> None:
    body = {"files": directory_files(), "note": "from the repo"}
    response = api.http.put("/v1/playbooks", json=body, headers=bearer("admin"))
    assert response.status_code == 200
    published = response.json()
    assert published["author"] == "admin-user" and published["note"] == "from the repo"
    ids = {p["id"] for p in published["playbooks"]}
    assert "onboarding-stalled" in ids
    listed = api.http.get("/v1/playbooks", headers=bearer("csm")).json()
    assert listed["current"]["version"] == published["version"]
    (entry,) = api.http.get("/v1/audit", headers=bearer("admin")).json()["items"]
    assert entry["action"] == "playbooks_publish" and entry["outcome"] == "published"


# -- operations ----------------------------------------------------------------------------------


def test_healthz_and_readyz(api: FakeApi) -> None:
    assert api.http.get("/healthz").json() == {"status": "ok"}
    ready = api.http.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"ready": True, "redis": True, "workers": 1}


def test_readyz_is_503_without_workers_or_redis() -> None:
    with FakeApi(workers=0) as api:
        response = api.http.get("/readyz")
        assert response.status_code == 503 and response.json()["workers"] == 0
    with FakeApi() as api:
        api.server.connected = False
        response = api.http.get("/readyz")
        assert response.status_code == 503 and response.json()["redis"] is False


def test_status_counts_backlog_and_rejected(api: FakeApi) -> None:
    from apiserver import basic

    api.http.post("/v1/batch", json={"batch": [
        {"type": "track", "userId": "u", "event": "e", "context": {"groupId": "acme"}},
        {"type": "track"},
    ]}, headers=basic())  # fmt: skip
    status = api.http.get("/v1/status", headers=bearer("readonly")).json()
    assert status["backlog"] == 1 and status["rejected"] == 1
    assert len(status["shards"]) == 4 and status["workers"] == 1


def test_openapi_documents_every_route_and_model(api: FakeApi) -> None:
    schema = api.http.get("/openapi.json").json()
    paths = schema["paths"]
    for path in ("/v1/track", "/v1/batch", "/v1/webhooks/segment", "/v1/accounts/{account_id}",
                 "/v1/tasks/{task_id}/complete", "/v1/playbooks", "/readyz"):  # fmt: skip
        assert path in paths
    components = schema["components"]["schemas"]
    for model in ("Account", "Accepted", "Error", "SegmentTrack", "SegmentBatch", "EventStatus"):
        assert model in components
    assert set(schema["components"]["securitySchemes"]) == {
        "bearerToken", "writeKeyBasic", "segmentSignature"
    }  # fmt: skip
    for path, operations in paths.items():
        for method, operation in operations.items():
            assert "200" in operation["responses"] or "202" in operation["responses"], path
            assert operation.get("description") or operation.get("summary"), (method, path)


def test_a_huge_management_body_is_413_before_any_token_check() -> None:
    import http.client

    from engine.api.limits import MAX_BODY_BYTES

    with FakeApi() as api:
        host, port = api.http.base_url.host, api.http.base_url.port
        connection = http.client.HTTPConnection(host, port, timeout=10)
        connection.putrequest("PUT", "/v1/playbooks")
        connection.putheader("Content-Length", str(MAX_BODY_BYTES + 1))
        connection.endheaders()  # no body sent: refused on the declared length alone
        declared = connection.getresponse()
        assert declared.status == 413
        assert orjson.loads(declared.read())["code"] == "too_large"
        connection.close()

        def chunks() -> Iterator[bytes]:
            for _ in range(MAX_BODY_BYTES // 1_000_000 + 2):
                yield b" " * 1_000_000

        streamed = api.http.put("/v1/playbooks", content=chunks())  # chunked, and no token
        assert streamed.status_code == 413 and streamed.json()["code"] == "too_large"


def test_a_bare_track_name_several_journeys_have_needs_the_account_on_one(api: FakeApi) -> None:
    put_account(api, AccountState("fresh", created=NOW))  # on no track yet
    body = {"track": "lifecycle", "stage": "adoption"}
    response = api.http.post("/v1/accounts/fresh/stage", json=body, headers=bearer("admin"))
    assert response.status_code == 422
    assert "several journeys" in response.json()["problems"][0]
    body = {"track": "flywheel.lifecycle", "stage": "adoption"}
    assert (
        api.http.post("/v1/accounts/fresh/stage", json=body, headers=bearer("admin")).status_code
        == 202
    )
