"""Quiet hours: customer-facing emails decided at night or on a weekend wait for the morning."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from engine.core.playbooks import QuietHours
from engine.core.quiet import quiet_until

PARIS = "Europe/Paris"
NIGHT = QuietHours(start="20:00", end="08:00")


def local(text: str, tz: str = PARIS) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp()


@pytest.mark.parametrize(
    ("decided", "released"),
    [
        ("2026-03-04 21:30", "2026-03-05 08:00"),  # evening side of an overnight window
        ("2026-03-05 06:15", "2026-03-05 08:00"),  # morning side
        ("2026-03-05 20:00", "2026-03-06 08:00"),  # the start itself is quiet
    ],
)
def test_an_overnight_window_holds_until_its_end(decided: str, released: str) -> None:
    assert quiet_until(NIGHT, local(decided), PARIS) == local(released)


def test_outside_the_window_nothing_waits() -> None:
    assert quiet_until(NIGHT, local("2026-03-05 08:00"), PARIS) is None
    assert quiet_until(NIGHT, local("2026-03-05 13:00"), PARIS) is None


def test_a_daytime_window() -> None:
    lunch = QuietHours(start="12:00", end="14:00")
    assert quiet_until(lunch, local("2026-03-05 12:30"), PARIS) == local("2026-03-05 14:00")
    assert quiet_until(lunch, local("2026-03-05 14:00"), PARIS) is None


def test_weekends_hold_until_monday_and_chain_with_the_night() -> None:
    policy = QuietHours(start="20:00", end="08:00", weekends=True)
    friday_night = local("2026-03-06 22:00")  # a Friday: night, then the weekend
    assert quiet_until(policy, friday_night, PARIS) == local("2026-03-09 08:00")
    assert quiet_until(policy, local("2026-03-08 11:00"), PARIS) == local("2026-03-09 08:00")


def test_the_time_zone_decides_what_night_is() -> None:
    moment = local("2026-03-05 23:00")  # night in Paris, afternoon in New York
    assert quiet_until(NIGHT, moment, PARIS) is not None
    assert quiet_until(NIGHT, moment, "America/New_York") is None


def test_a_playbook_email_decided_at_night_is_held_and_delivered_in_the_morning(
    tmp_path: Path,
) -> None:
    from engine.core.clock import VirtualClock
    from engine.core.event import Event
    from engine.core.loader import load_playbook_set
    from engine.runtime.runner import Runner

    (tmp_path / "account.yaml").write_text(
        "kind: account\ntimezone_trait: tz\ntraits: {tz: timezone}\n"
    )
    (tmp_path / "p.yaml").write_text(
        """kind: playbook
id: nightly
name: Nightly
quiet_hours: {start: "20:00", end: "08:00"}
triggers: [{event: ping}]
actions:
  - email: {to: champion, subject: "Hello", body: "Hi {{ recipient.name }}"}
"""
    )
    pset = load_playbook_set([tmp_path]).pset
    assert pset is not None

    class Outbox:
        sent: list[float] = []

        def deliver(self, action: object) -> str:
            self.sent.append(runner.clock.now())
            return "ok"

    runner = Runner(pset, clock=VirtualClock(), channels={"email": Outbox()})
    night = local("2026-03-04 23:00")
    runner.submit(
        Event("group", "g", night - 60, account_id="acme", user_id="u", traits={"tz": PARIS})
    )
    runner.submit(
        Event("identify", "i", night - 30, account_id="acme", user_id="u",
              traits={"email": "c@acme.example", "role": "champion", "name": "Cleo"})
    )  # fmt: skip
    runner.submit(Event("track", "p", night, account_id="acme", user_id="u", name="ping"))
    [held] = runner.store.pending_actions()
    assert held.not_before == local("2026-03-05 08:00")
    assert Outbox.sent == []
    runner.submit(Event("track", "q", local("2026-03-05 09:00"), account_id="acme", name="x"))
    assert Outbox.sent == [local("2026-03-05 09:00")]


def test_the_redis_outbox_does_not_hand_out_a_held_email_before_its_time(
    fake_redis_store: object,
) -> None:
    from engine.core.effects import ActionEffect
    from engine.redis.outbox import Outbox
    from engine.redis.store import RedisStore
    from engine.runtime.store import Commit

    assert isinstance(fake_redis_store, RedisStore)
    store = fake_redis_store
    held = ActionEffect(
        key="k1", at=1000.0, account="acme", playbook="p", version=1, type="email",
        mode="live", payload={"to": "c@acme.example"}, step="0.0", not_before=5000.0,
    )  # fmt: skip
    store.commit(Commit(actions=[held]))
    outbox = Outbox(store.client, store.shards)
    shard = store.shard_of("acme")
    assert outbox.claim(shard, 4999.0, 60.0, 10) == []
    [claimed] = outbox.claim(shard, 5000.0, 60.0, 10)
    assert claimed.key == "k1" and claimed.action().not_before == 5000.0
