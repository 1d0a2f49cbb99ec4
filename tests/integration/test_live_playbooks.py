"""Live playbook sets on a real redis-server with a real Celery worker process: the worker
publishes its directory when nothing is published, ``hourglass playbooks load`` of a changed
directory switches it to the new version without a restart, a rollback switches it back, and a
broken directory is refused with ``file:line:`` messages while the worker keeps its set."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from timelines import account_calls
from workerproc import ROOT, WorkerProcess, kicker, wait_until, worker_env

from engine.core.effects import ActionEffect
from engine.redis.ingest import Ingestor
from engine.redis.keys import ShardKeys
from engine.redis.playbook_sets import BOOTSTRAP_AUTHOR, PlaybookSets
from engine.redis.store import RedisStore

SHARDS = 4
PLAYBOOK = "onboarding-complete"
OLD_SUBJECT = "You're live on {{ account.traits.name }}: what's next"
NEW_SUBJECT = "Welcome to adoption, {{ account.traits.name }}"
OLD = "You're live on NAME: what's next"
NEW = "Welcome to adoption, NAME"
HOURGLASS = str(Path(sys.executable).parent / "hourglass")
pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


@pytest.fixture
def worker(redis_server: str, tmp_path: Path) -> Iterator[WorkerProcess]:
    """One Celery worker process on the session's Redis, following the published set."""
    process = WorkerProcess(redis_server, "live", tmp_path / "worker.log", shards=str(SHARDS))
    process.start()
    yield process
    process.stop()


def calls_of(accounts: range) -> list[dict[str, Any]]:
    """The calls of some accounts of the runtime timelines, in time order."""
    calls = [c for i in accounts for c in account_calls(i, logins=2)]
    return sorted(calls, key=lambda c: c["timestamp"])


def applied(client: redis.Redis) -> int:
    return sum(int(client.hget(ShardKeys(s).counters, "applied") or 0) for s in range(SHARDS))


def ingest_and_wait(client: redis.Redis, url: str, calls: list[dict[str, Any]]) -> None:
    """Ingest ``calls`` and wait until the worker has applied every one of them."""
    expected = applied(client) + len(calls)
    report = Ingestor(client, shards=SHARDS, kick=kicker(url)).ingest(calls)
    assert report.accepted == len(calls)
    wait_until(lambda: applied(client) == expected, 60, f"{len(calls)} events applied")


def emails(client: redis.Redis, accounts: range) -> dict[str, ActionEffect]:
    """The worker's onboarding-complete emails in the outbox, by account."""
    wanted = {f"acct-{i:03d}" for i in accounts}
    found = RedisStore(client, shards=SHARDS).pending_actions(limit=100_000)
    return {a.account: a for a in found if a.playbook == PLAYBOOK and a.account in wanted}


def changed_copy(tmp_path: Path, name: str, edit: Callable[[str], str]) -> Path:
    """A copy of the shipped playbooks with ``onboarding.yaml`` edited."""
    directory = tmp_path / name
    shutil.copytree(ROOT / "playbooks", directory)
    path = directory / "onboarding.yaml"
    text = path.read_text()
    edited = edit(text)
    assert edited != text
    path.write_text(edited)
    return directory


def bump(text: str) -> str:
    """onboarding-complete as version 2 with a new subject."""
    text = text.replace(f"id: {PLAYBOOK}\n", f"id: {PLAYBOOK}\nversion: 2\n", 1)
    return text.replace(f'subject: "{OLD_SUBJECT}"', f'subject: "{NEW_SUBJECT}"', 1)


def hourglass(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``hourglass`` command line against the deployment at ``url``."""
    env = worker_env(url, shards=str(SHARDS))
    return subprocess.run(
        [HOURGLASS, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def subjects(found: dict[str, ActionEffect]) -> set[tuple[int, str]]:
    """Each email's (playbook version, subject with the account's name as NAME)."""
    return {
        (a.version, re.sub(r"Account \d+", "NAME", a.payload["subject"])) for a in found.values()
    }


def test_a_loaded_set_reaches_the_running_worker_without_a_restart(
    redis_client: redis.Redis, redis_server: str, worker: WorkerProcess, tmp_path: Path
) -> None:
    pid = worker.pid
    first, second, third = range(0, 8), range(8, 16), range(16, 24)
    ingest_and_wait(redis_client, redis_server, calls_of(first))
    sets = PlaybookSets(redis_client)
    bootstrapped = sets.current()
    assert bootstrapped is not None
    assert (bootstrapped.version, bootstrapped.author) == (1, BOOTSTRAP_AUTHOR)
    before = emails(redis_client, first)
    assert len(before) == 4  # the odd accounts connect an integration: onboarding completes
    assert subjects(before) == {(1, OLD)}

    loaded = hourglass(
        redis_server, "playbooks", "load", str(changed_copy(tmp_path, "v2", bump)),
        "--author", "ops", "--note", "new subject",
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr
    assert "published version 2" in loaded.stdout
    time.sleep(1.5)  # the worker checks the current version at most once a second
    ingest_and_wait(redis_client, redis_server, calls_of(second))
    after = emails(redis_client, second)
    assert len(after) == 4
    assert subjects(after) == {(2, NEW)}
    assert emails(redis_client, first) == before  # what was decided stays decided

    back = hourglass(redis_server, "playbooks", "rollback", "1", "--author", "ops")
    assert back.returncode == 0, back.stderr
    assert "published version 3" in back.stdout
    time.sleep(1.5)
    ingest_and_wait(redis_client, redis_server, calls_of(third))
    assert subjects(emails(redis_client, third)) == {(1, OLD)}

    history = hourglass(redis_server, "playbooks", "history")
    assert history.returncode == 0, history.stderr
    versions = re.findall(r"^│ (\d+\*?) ", history.stdout, flags=re.MULTILINE)
    assert versions == ["3*", "2", "1"]
    assert worker.alive() and worker.pid == pid
    log = worker.log.read_text()
    assert "playbook set version 2 is live" in log
    assert "playbook set version 3 is live" in log


def test_a_broken_set_is_refused_and_the_worker_keeps_applying_the_running_one(
    redis_client: redis.Redis, redis_server: str, worker: WorkerProcess, tmp_path: Path
) -> None:
    pid = worker.pid
    first, second = range(0, 8), range(8, 16)
    ingest_and_wait(redis_client, redis_server, calls_of(first))
    directory = changed_copy(
        tmp_path, "broken", lambda t: bump(t).replace("for: 14d", "for: a fortnight", 1)
    )
    refused = hourglass(redis_server, "playbooks", "load", str(directory), "--author", "ops")
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 2, refused.stderr
    assert re.match(rf"^{re.escape(str(directory / 'onboarding.yaml'))}:13: .*fortnight", lines[0])
    assert lines[1] == "refused: 1 problem(s); running set: version 1"
    sets = PlaybookSets(redis_client)
    assert [s.version for s in sets.history()] == [1]

    time.sleep(1.5)
    ingest_and_wait(redis_client, redis_server, calls_of(second))
    assert subjects(emails(redis_client, second)) == {(1, OLD)}
    assert worker.alive() and worker.pid == pid
