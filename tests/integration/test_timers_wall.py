"""Live timers on wall time with a real beat: a sequence's wait fires within two seconds of its
due time, once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis
from workerproc import BeatProcess, WorkerProcess, kicker, wait_until

from engine.redis.ingest import Ingestor
from engine.redis.store import RedisStore

pytestmark = pytest.mark.integration
SHARDS = 2
WAIT_S = 3.0

PLAYBOOK = """kind: playbook
id: ping-later
name: Ping later
description: Waits three seconds after a ping, then tells the ops channel.
triggers: [{event: ping}]
steps:
  - wait: 3s
  - actions: [{slack: {destination: ops, text: "pong from {{ account.id }}"}}]
"""
DESTINATIONS = "kind: destinations\nslack: {ops: {url_env: HOURGLASS_TEST_SLACK_URL}}\n"


def test_a_wait_fires_within_two_seconds_of_due_once(
    redis_client: redis.Redis, redis_server: str, tmp_path: Path
) -> None:
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "ping.yaml").write_text(PLAYBOOK)
    (playbooks / "destinations.yaml").write_text(DESTINATIONS)
    settings = {"shards": str(SHARDS), "playbooks": str(playbooks), "clock": "wall"}
    processes = [
        WorkerProcess(redis_server, "w1", tmp_path / "w1.log", **settings).start(),
        BeatProcess(redis_server, "beat", tmp_path / "beat.log", **settings).start(),
    ]
    try:
        ingestor = Ingestor(redis_client, shards=SHARDS, kick=kicker(redis_server))
        store = RedisStore(redis_client, shards=SHARDS)
        accounts = [f"acct-{i}" for i in range(6)]
        sent = time.time()
        ingestor.ingest(
            [
                {
                    "type": "track",
                    "messageId": f"ping-{a}",
                    "event": "ping",
                    "anonymousId": "probe",
                    "context": {"groupId": a},
                }
                for a in accounts
            ]
        )
        wait_until(lambda: len(store.pending_actions()) >= len(accounts), 30, "every pong")
        time.sleep(2 * WAIT_S)  # time for a second firing, if there were one
        actions = store.pending_actions()
        assert sorted(a.account for a in actions) == accounts
        for action in actions:
            late = action.at - (sent + WAIT_S)
            assert -0.5 <= late <= 2.0, f"{action.account} fired {late:.2f}s after its due time"
    finally:
        for process in processes:
            process.stop()
