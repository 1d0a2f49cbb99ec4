"""Outbox dispatch on a real redis-server with real Celery worker processes: retries to a flaky
webhook receiver, a worker killed mid-delivery, dead letters, emails through a real aiosmtpd
server, and a timeline from ingest to every channel. Receivers listen on 127.0.0.1 only (the
destinations are allow-listed)."""

from __future__ import annotations

import base64
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from receivers import WebhookReceiver, smtp_server, webhook_receiver
from standardwebhooks import Webhook
from timelines import timeline
from workerproc import ROOT, WorkerProcess, kicker, wait_until

from engine.core.clock import VirtualClock
from engine.core.effects import ActionEffect
from engine.core.events import parse_event, to_core
from engine.core.loader import load_playbook_set
from engine.core.playbooks import DELIVERED
from engine.redis.ingest import Ingestor
from engine.redis.keys import ShardKeys
from engine.redis.outbox import Outbox
from engine.redis.store import RedisStore
from engine.runtime.runner import Runner
from engine.runtime.store import Commit

SHARDS = 4
SECRET = "whsec_" + base64.b64encode(b"integration-secret").decode()
DISPATCH = "hourglass.dispatch"
BILLING = "HOURGLASS_BILLING_WEBHOOK_URL"
pytestmark = pytest.mark.integration


@pytest.fixture
def workers(redis_server: str, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start Celery workers (on the dispatch queue unless told); all stopped at the end."""
    started: list[WorkerProcess] = []

    def start(name: str = "d1", queues: str = DISPATCH, **settings: str) -> WorkerProcess:
        settings.setdefault("shards", str(SHARDS))
        log = tmp_path / f"{name}.log"
        process = WorkerProcess(redis_server, name, log, queues=queues, **settings).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def destinations(receiver: WebhookReceiver) -> dict[str, str]:
    """Worker settings pointing every shipped destination at the receiver, allow-listed."""
    return {
        "crm_webhook_url": receiver.url("/crm"),
        "crm_webhook_secret": SECRET,
        "billing_webhook_url": receiver.url("/billing"),
        "slack_renewals_url": receiver.url("/slack/renewals"),
        "slack_cs_alerts_url": receiver.url("/slack/cs-alerts"),
        "allow_private_destinations": "crm,billing,renewals,cs-alerts",
    }


class Sweeper:
    """What beat does every 2 s: send ``hourglass.dispatch_sweep`` (here at most every 0.3 s)."""

    def __init__(self, redis_url: str) -> None:
        self.app = Celery("hourglass-test", broker=redis_url)
        self.last = 0.0

    def __call__(self) -> None:
        if time.monotonic() - self.last >= 0.3:
            self.app.send_task("hourglass.dispatch_sweep", queue=DISPATCH)
            self.last = time.monotonic()


def webhook(key: str, destination: str = "crm") -> ActionEffect:
    payload = {"destination": destination, "body": {"key": key}, "idempotency_key": key}
    return ActionEffect(
        key, time.time() - 1, "acct-1", "growth", 1, "webhook", "live", payload, "0"
    )


def email(key: str, to: str) -> ActionEffect:
    payload = {
        "to": to,
        "subject": f"About {key}",
        "body": "Hello",
        "message_id": f"<{key}@hourglass>",
    }
    return ActionEffect(key, time.time() - 1, "acct-2", "welcome", 1, "email", "live", payload, "0")


def delivered(client: redis.Redis) -> dict[str, str]:
    """Every recorded delivery over the shards' receipt hashes: key -> receipt."""
    out: dict[str, str] = {}
    for shard in range(SHARDS):
        for receipts in ShardKeys(shard).receipts:
            rows: Any = client.hgetall(receipts)
            rows.pop(b"live_until", None)
            out.update({key.decode(): receipt.decode() for key, receipt in rows.items()})
    return out


def pending(client: redis.Redis) -> int:
    return sum(int(client.hlen(ShardKeys(s).outbox)) for s in range(SHARDS))


def settled(client: redis.Redis, outbox: Outbox, sweep: Sweeper, count: int) -> Callable[[], bool]:
    """A check for wait_until: ``count`` entries delivered or dead, none pending (sweeping)."""

    def check() -> bool:
        sweep()
        done = len(delivered(client)) + len(outbox.dead_letters(limit=10_000))
        return done == count and pending(client) == 0

    return check


def test_a_receiver_failing_twice_gets_the_webhook_once(
    redis_client: redis.Redis, redis_server: str, workers: Callable[..., WorkerProcess]
) -> None:
    store = RedisStore(redis_client, shards=SHARDS)
    outbox = Outbox(redis_client, SHARDS)
    sweep = Sweeper(redis_server)
    with webhook_receiver(statuses=[500, 503]) as receiver:
        workers(**destinations(receiver))
        store.commit(Commit(actions=[webhook("hook-1")]))
        wait_until(settled(redis_client, outbox, sweep, 1), 60, "the webhook delivered")
        time.sleep(0.5)  # nothing more arrives
    assert receiver.posts() == 3  # 500, 503, then 200
    assert receiver.keys() == {"hook-1"} and receiver.processed == ["hook-1"]
    assert [r.path for r in receiver.requests] == ["/crm"] * 3
    last = receiver.requests[-1]
    assert Webhook(SECRET).verify(last.body, last.headers) == {"key": "hook-1"}
    assert receiver.requests[2].at - receiver.requests[0].at < 30  # backoff: 2 s, then 4 s max
    assert delivered(redis_client) == {"hook-1": "http 200 127.0.0.1 (127.0.0.1)"}
    assert outbox.dead_letters() == []


def test_a_worker_killed_mid_delivery_is_replaced_after_its_lease(
    redis_client: redis.Redis, redis_server: str, workers: Callable[..., WorkerProcess]
) -> None:
    """The kill lands while the receiver holds the POST: the receiver may have acted on it, but
    the outbox never learned. After the claim's lease (2 s) the sweeper re-dispatches it to
    another worker, which POSTs again with the SAME key: the at-least-once window. The receiver
    dedupes by Idempotency-Key, so it acts once; the outbox records exactly one delivery."""
    store = RedisStore(redis_client, shards=SHARDS)
    outbox = Outbox(redis_client, SHARDS)
    sweep = Sweeper(redis_server)
    with webhook_receiver(delays=[4.0]) as receiver:
        settings = {**destinations(receiver), "dispatch_lease_s": "2"}
        first = workers("d1", **settings)
        store.commit(Commit(actions=[webhook("hook-kill")]))

        def posted() -> bool:
            sweep()
            return receiver.posts() >= 1

        wait_until(posted, 30, "the first POST")
        first.signal(signal.SIGKILL)
        first.process.wait(timeout=10)  # type: ignore[union-attr]
        assert delivered(redis_client) == {}
        workers("d2", **settings)
        wait_until(settled(redis_client, outbox, sweep, 1), 60, "the webhook re-dispatched")
        time.sleep(4.5)  # the first, slow request finishes; nothing else arrives
    assert receiver.posts() == 2  # the killed worker's POST, and the retry
    assert receiver.keys() == {"hook-kill"}
    assert receiver.processed == ["hook-kill"]  # the receiver acted once
    assert receiver.requests[1].at - receiver.requests[0].at >= 2.0  # only after the lease
    assert delivered(redis_client) == {"hook-kill": "http 200 127.0.0.1 (127.0.0.1)"}
    assert pending(redis_client) == 0 and outbox.dead_letters() == []


def test_hopeless_deliveries_become_dead_letters_and_replay(
    redis_client: redis.Redis, redis_server: str, workers: Callable[..., WorkerProcess]
) -> None:
    store = RedisStore(redis_client, shards=SHARDS)
    outbox = Outbox(redis_client, SHARDS)
    sweep = Sweeper(redis_server)
    with webhook_receiver(statuses=[400]) as receiver:
        settings = destinations(receiver)
        del settings["billing_webhook_url"]
        workers(**settings)
        store.commit(Commit(actions=[webhook("bad-body"), webhook("no-url", "billing")]))
        wait_until(settled(redis_client, outbox, sweep, 2), 60, "two dead letters")
        errors = {d.key: (d.error, d.attempts) for d in outbox.dead_letters()}
        assert errors == {
            "bad-body": ("HTTP 400: ok", 1),
            "no-url": (f"webhook destination 'billing': URL variable {BILLING} is not set", 1),
        }
        assert receiver.posts() == 1
        shard = store.shard_of("acct-1")
        assert outbox.replay(shard, "bad-body", time.time())
        wait_until(settled(redis_client, outbox, sweep, 2), 60, "the replayed one delivered")
    assert receiver.posts() == 2 and receiver.processed == ["bad-body"]
    assert list(delivered(redis_client)) == ["bad-body"]
    assert [d.key for d in outbox.dead_letters()] == ["no-url"]


def test_emails_go_through_a_real_smtp_server(
    redis_client: redis.Redis, redis_server: str, workers: Callable[..., WorkerProcess]
) -> None:
    store = RedisStore(redis_client, shards=SHARDS)
    outbox = Outbox(redis_client, SHARDS)
    sweep = Sweeper(redis_server)
    with smtp_server() as mailbox:
        mailbox.reject.append("550 No such user")
        workers(smtp_host="127.0.0.1", smtp_port=str(mailbox.port), mail_from="CS <cs@v.example>")
        store.commit(Commit(actions=[email("gone", "nobody@acme.example")]))
        wait_until(settled(redis_client, outbox, sweep, 1), 60, "the refused email dead")
        store.commit(Commit(actions=[email(f"m{i}", f"user{i}@acme.example") for i in range(5)]))
        wait_until(settled(redis_client, outbox, sweep, 6), 60, "five emails delivered")
    assert sorted(mailbox.message_ids()) == [f"<m{i}@hourglass>" for i in range(5)]
    assert {sender for sender, _ in mailbox.envelopes} == {"cs@v.example"}
    assert sorted(delivered(redis_client)) == [f"m{i}" for i in range(5)]
    [dead] = outbox.dead_letters()
    assert dead.key == "gone" and dead.error.startswith("SMTP refused the recipient")


def expected_actions(calls: list[dict[str, Any]]) -> dict[str, str]:
    """key -> type of every live action the embedded runner decides for the calls."""
    pset = load_playbook_set([ROOT / "playbooks"]).pset
    assert pset is not None
    runner = Runner(pset, clock=VirtualClock())
    found: dict[str, str] = {}

    def collect(action: ActionEffect) -> None:
        if action.mode == "live" and action.type in DELIVERED:
            found[action.key] = action.type

    runner.on_action = collect
    for raw in calls:
        runner.submit(to_core(parse_event(raw), now=0.0))
    return found


def test_a_timeline_reaches_every_channel_once(
    redis_client: redis.Redis, redis_server: str, workers: Callable[..., WorkerProcess]
) -> None:
    calls = timeline(accounts=12)
    expected = expected_actions(calls)
    by_type = {kind: {k for k, t in expected.items() if t == kind} for kind in DELIVERED}
    assert by_type["email"] and by_type["task"]
    store = RedisStore(redis_client, shards=SHARDS)
    outbox = Outbox(redis_client, SHARDS)
    sweep = Sweeper(redis_server)
    with smtp_server() as mailbox, webhook_receiver() as receiver:
        workers(
            "all",
            queues=f"hourglass.shards,{DISPATCH}",
            smtp_host="127.0.0.1",
            smtp_port=str(mailbox.port),
            **destinations(receiver),
        )
        ingestor = Ingestor(redis_client, shards=SHARDS, kick=kicker(redis_server))
        assert ingestor.ingest(calls).accepted == len(calls)
        wait_until(settled(redis_client, outbox, sweep, len(expected)), 120, "all delivered")
    assert outbox.dead_letters() == []
    assert set(delivered(redis_client)) == set(expected)
    assert sorted(mailbox.message_ids()) == sorted(f"<{k}@hourglass>" for k in by_type["email"])
    hooks = by_type["webhook"] | by_type["slack"]
    assert receiver.keys() == hooks and receiver.posts() == len(hooks)
    assert {t["task_id"] for t in store.tasks()} == by_type["task"]
