"""The channel registry (one place for the embedded runner and the dispatcher), the task-store
channel, and the embedded runner delivering through the registry's channels."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from receivers import smtp_server, webhook_receiver

from engine.channels.files import FileOutbox
from engine.channels.registry import allow_listed, build_channels
from engine.channels.smtp import SmtpChannel
from engine.channels.tasks import TaskChannel
from engine.channels.webhook import WebhookChannel
from engine.core.destinations import Destination, Destinations
from engine.core.effects import ActionEffect
from engine.core.loader import load_playbook_set
from engine.redis.store import RedisStore
from engine.runtime.embedded import embedded_runner
from engine.runtime.memory import MemoryStore
from engine.runtime.store import Commit
from engine.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DESTINATIONS = Destinations(
    webhooks={"crm": Destination(url_env="CRM_URL")},
    slack={"alerts": Destination(url_env="ALERTS_URL")},
)


def action(kind: str, key: str, payload: dict[str, object]) -> ActionEffect:
    return ActionEffect(key, 1_772_524_800.0, "acct-1", "pb", 1, kind, "live", payload, "0.0")


def task(key: str = "t1") -> ActionEffect:
    payload = {"task_id": key, "title": "Call Acme", "assignee": "csm", "priority": "high"}
    return action("task", key, payload)


def test_offline_channels_write_files_and_keep_tasks(tmp_path: Path) -> None:
    channels = build_channels(MemoryStore(), DESTINATIONS, outbox=tmp_path)
    assert sorted(channels) == ["email", "slack", "task", "webhook"]
    assert all(isinstance(channels[t], FileOutbox) for t in ("email", "webhook", "slack"))
    assert isinstance(channels["task"], TaskChannel)
    assert list(build_channels(MemoryStore(), DESTINATIONS)) == ["task"]


def test_configured_channels_send_for_real(tmp_path: Path) -> None:
    config = Settings(
        outbox_dir=str(tmp_path), allow_private_destinations=" crm , ,alerts", smtp_host=None
    )
    channels = build_channels(MemoryStore(), DESTINATIONS, config)
    email = channels["email"]
    assert isinstance(email, FileOutbox) and email.root == tmp_path  # no SMTP host: files
    webhook, slack = channels["webhook"], channels["slack"]
    assert isinstance(webhook, WebhookChannel) and isinstance(slack, WebhookChannel)
    assert (webhook.kind, sorted(webhook.destinations)) == ("webhook", ["crm"])
    assert (slack.kind, sorted(slack.destinations)) == ("slack", ["alerts"])
    assert webhook.allow_private == slack.allow_private == {"crm", "alerts"}
    with_smtp = build_channels(MemoryStore(), DESTINATIONS, Settings(smtp_host="127.0.0.1"))
    assert isinstance(with_smtp["email"], SmtpChannel)


def test_allow_listed_names_are_comma_separated() -> None:
    assert allow_listed(Settings(allow_private_destinations="")) == frozenset()
    assert allow_listed(Settings(allow_private_destinations="a, b,,c ")) == {"a", "b", "c"}


@pytest.mark.parametrize("kind", ["memory", "fakeredis"])
def test_the_task_channel_saves_a_task_once(kind: str, fake_redis: redis.Redis) -> None:
    store = MemoryStore() if kind == "memory" else RedisStore(fake_redis)
    channel = TaskChannel(store)
    assert channel.deliver(task()) == "task t1"
    assert channel.deliver(task()) == "task t1"
    [saved] = store.tasks()
    assert saved["title"] == "Call Acme" and saved["status"] == "open"
    assert (saved["account"], saved["playbook"]) == ("acct-1", "pb")


def test_the_embedded_runner_gets_its_channels_from_the_registry(tmp_path: Path) -> None:
    pset = load_playbook_set([ROOT / "playbooks"]).pset
    assert pset is not None
    offline = embedded_runner(pset, outbox=tmp_path)
    assert isinstance(offline.channels["email"], FileOutbox)
    assert isinstance(offline.channels["task"], TaskChannel)
    assert offline.channels["task"].store is offline.store  # type: ignore[attr-defined]
    live = embedded_runner(pset, outbox=tmp_path, config=Settings(smtp_host="127.0.0.1"))
    assert isinstance(live.channels["email"], SmtpChannel)
    assert isinstance(live.channels["webhook"], WebhookChannel)
    assert set(live.channels["webhook"].destinations) == set(pset.destinations.webhooks)  # type: ignore[attr-defined]


def test_the_embedded_runner_delivers_over_smtp_and_http(monkeypatch: pytest.MonkeyPatch) -> None:
    pset = load_playbook_set([ROOT / "playbooks"]).pset
    assert pset is not None
    email = action("email", "e1", {"to": "a@acme.example", "subject": "Hi", "body": "Hello",
                                   "message_id": "<e1@hourglass>"})  # fmt: skip
    hook = action("webhook", "w1", {"destination": "crm", "body": {"n": 1}})
    with smtp_server() as mailbox, webhook_receiver() as receiver:
        monkeypatch.setenv("HOURGLASS_CRM_WEBHOOK_URL", receiver.url())
        monkeypatch.setenv("HOURGLASS_CRM_WEBHOOK_SECRET", "whsec_c2VjcmV0")
        config = Settings(
            smtp_host="127.0.0.1", smtp_port=mailbox.port, allow_private_destinations="crm"
        )
        runner = embedded_runner(pset, outbox=None, config=config)
        runner.store.commit(Commit(actions=[email, hook, task()]))
        runner.deliver_pending()
    assert mailbox.message_ids() == ["<e1@hourglass>"]
    assert [r.headers["idempotency-key"] for r in receiver.requests] == ["w1"]
    assert runner.store.pending_actions() == []
    assert runner.store.delivery("e1") == f"smtp 127.0.0.1:{mailbox.port} <e1@hourglass>"
    assert runner.store.delivery("t1") == "task t1"
    assert [t["task_id"] for t in runner.store.tasks()] == ["t1"]
