"""The Python client: batching, flushing (size, interval, explicit, exit), retries with backoff
and Retry-After, bounded memory; against a recording HTTP server and the real API."""

from __future__ import annotations

import base64
import gzip
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest
from apiserver import ROOT, WRITE_KEY, FakeApi

from engine.client import Client
from engine.redis.keys import ShardKeys


class Recorder(ThreadingHTTPServer):
    """Records each POST (headers, decoded JSON) and answers from a script of responses."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.script: list[tuple[int, dict[str, str], dict[str, Any]]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [event for _, body in self.requests for event in body["batch"]]

    def wait_for(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.events()) >= count:
                return self.events()
            time.sleep(0.01)
        raise AssertionError(f"{len(self.events())} events arrived, not {count}")


class Handler(BaseHTTPRequestHandler):
    server: Recorder

    def do_POST(self) -> None:
        self.server.gate.wait(10)
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            raw = gzip.decompress(raw)
        with self.server.lock:
            status, headers, answer = (
                self.server.script.pop(0) if self.server.script else (200, {}, {})
            )
            if status == 200:
                self.server.requests.append((dict(self.headers), orjson.loads(raw)))
        body = orjson.dumps({"success": status == 200, **answer})
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Recorder]:
    recorder = Recorder()
    thread = threading.Thread(target=recorder.serve_forever, daemon=True)
    thread.start()
    yield recorder
    recorder.gate.set()
    recorder.shutdown()
    recorder.server_close()


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for client in made:
        client.shutdown(timeout=1)


def make(clients: list[Client], server: Recorder, **options: Any) -> Client:
    options.setdefault("backoff_base", 0.01)
    client = Client(WRITE_KEY, server.url, **options)
    clients.append(client)
    return client


def test_batches_go_out_at_flush_at_as_segment_sdks_send_them(
    server: Recorder, clients: list[Client]
) -> None:
    client = make(clients, server, flush_at=10, flush_interval=30)
    ids = [client.track(f"u{i}", "login", {"n": i}, group_id="acme") for i in range(25)]
    server.wait_for(20)
    assert [len(body["batch"]) for _, body in server.requests] == [10, 10]
    assert client.flush(timeout=5)
    assert [len(body["batch"]) for _, body in server.requests] == [10, 10, 5]
    headers, body = server.requests[0]
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"wk-test-1:").decode()
    assert headers["Content-Encoding"] == "gzip"
    assert body["sentAt"].endswith("+00:00")
    event = body["batch"][0]
    assert event["type"] == "track" and event["event"] == "login" and event["userId"] == "u0"
    assert event["context"]["groupId"] == "acme"
    assert event["context"]["library"]["name"] == "hourglass-python"
    assert [e["messageId"] for e in server.events()] == ids and len(set(ids)) == 25
    assert client.stats.sent == 25 and client.stats.queued == 25


def test_a_partial_batch_goes_out_after_the_flush_interval(
    server: Recorder, clients: list[Client]
) -> None:
    client = make(clients, server, flush_at=100, flush_interval=0.2)
    started = time.monotonic()
    client.identify("u1", {"email": "a@acme.test"}, group_id="acme")
    client.group("u1", "acme", {"plan": "pro"})
    client.page("u1", "Docs", "Home", {"path": "/"})
    client.screen("u1", None, "Home")
    client.alias("anon-1", "u1")
    events = server.wait_for(5, timeout=3)
    assert time.monotonic() - started < 2
    assert [e["type"] for e in events] == ["identify", "group", "page", "screen", "alias"]
    assert events[1]["groupId"] == "acme" and events[4]["previousId"] == "anon-1"
    assert "category" not in events[3]  # None fields are left out


def test_429_is_retried_after_retry_after(server: Recorder, clients: list[Client]) -> None:
    server.script = [(429, {"Retry-After": "1"}, {"code": "backlog_full", "message": "slow"})]
    client = make(clients, server, flush_interval=0.05)
    started = time.monotonic()
    client.track("u1", "login")
    server.wait_for(1, timeout=5)
    assert time.monotonic() - started >= 1.0
    deadline = time.monotonic() + 5  # the client counts after the response it reads
    while client.stats.sent < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert client.stats.retries == 1 and client.stats.sent == 1


def test_5xx_and_network_errors_are_retried_with_backoff(
    server: Recorder, clients: list[Client]
) -> None:
    server.script = [(503, {}, {}), (500, {}, {})]
    client = make(clients, server, flush_interval=0.05)
    client.track("u1", "login", message_id="fixed-id")
    (event,) = server.wait_for(1, timeout=5)
    assert event["messageId"] == "fixed-id"  # the same id every attempt: the server dedupes
    assert client.stats.retries == 2 and client.stats.failed == 0


def test_a_4xx_is_not_retried(server: Recorder, clients: list[Client]) -> None:
    server.script = [(400, {}, {"code": "invalid_json", "message": "no"})]
    client = make(clients, server, flush_interval=0.05)
    client.track("u1", "login")
    assert client.flush(timeout=5)
    assert client.stats.failed == 1 and client.stats.retries == 0 and server.requests == []


def test_it_gives_up_after_max_retries(server: Recorder, clients: list[Client]) -> None:
    server.script = [(503, {}, {})] * 3
    client = make(clients, server, flush_interval=0.05, max_retries=2)
    client.track("u1", "login")
    assert client.flush(timeout=5)
    assert client.stats.failed == 1 and client.stats.retries == 2 and server.requests == []


def test_events_the_server_rejects_are_counted(server: Recorder, clients: list[Client]) -> None:
    rejected = [{"index": 0, "field": "event", "reason": "nope"}]
    server.script = [(200, {}, {"accepted": 1, "rejected": rejected})]
    client = make(clients, server, flush_interval=0.05)
    client.track("u1", "a")
    client.track("u1", "b")
    assert client.flush(timeout=5)
    assert client.stats.rejected == 1 and client.stats.sent == 1


def test_a_full_queue_drops_without_blocking_and_says_so(
    server: Recorder, clients: list[Client], caplog: pytest.LogCaptureFixture
) -> None:
    server.gate.clear()  # the server hangs: nothing drains
    client = make(clients, server, flush_at=1, flush_interval=0.05, max_queue_size=5)
    caplog.set_level(logging.WARNING, logger="hourglass.client")
    time.sleep(0.1)
    started = time.perf_counter()
    for i in range(200):
        client.track(f"u{i}", "login")
    assert time.perf_counter() - started < 0.5  # never blocks the caller
    assert client.stats.dropped >= 190
    assert client.stats.queued + client.stats.dropped == 200
    assert sum("dropped" in r.getMessage() for r in caplog.records) == 1  # one line, not 190
    server.gate.set()


def test_a_message_over_32_kb_is_dropped_alone(server: Recorder, clients: list[Client]) -> None:
    client = make(clients, server, flush_interval=0.05)
    client.track("u1", "huge", {"blob": "x" * 40_000})
    client.track("u1", "small")
    assert client.flush(timeout=5)
    assert [e["event"] for e in server.events()] == ["small"]
    assert client.stats.rejected == 1


def test_bad_calls_raise_at_once(server: Recorder, clients: list[Client]) -> None:
    client = make(clients, server)
    with pytest.raises(ValueError, match="user_id or anonymous_id"):
        client.track(None, "login")
    with pytest.raises(ValueError, match="event"):
        client.track("u1", "")
    with pytest.raises(TypeError, match="unexpected"):
        client.track("u1", "login", colour="red")  # type: ignore[call-arg]
    assert client.track(None, "login", anonymous_id="anon-1")


def test_what_is_queued_at_exit_is_sent(server: Recorder) -> None:
    script = (
        "from engine.client import Client\n"
        f"c = Client('{WRITE_KEY}', '{server.url}', flush_interval=60)\n"
        "for i in range(3):\n"
        "    c.track('u1', 'login', {'i': i}, group_id='acme')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, timeout=30, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert [e["properties"]["i"] for e in server.wait_for(3)] == [0, 1, 2]


def test_the_client_feeds_the_api(clients: list[Client]) -> None:
    with FakeApi() as api:
        client = Client(WRITE_KEY, str(api.http.base_url), flush_interval=0.05)
        clients.append(client)
        message_id = client.track("u1", "login", {"n": 1}, group_id="acme")
        assert client.flush(timeout=5)
        assert client.stats.sent == 1
        shard = api.app.state.services.store.shard_of("acme")
        ((_, fields),) = api.redis.xrange(ShardKeys(shard).stream)
        event = orjson.loads(fields[b"e"])
        assert event["m"] == message_id and event["a"] == "acme" and event["p"] == {"n": 1}
