"""Real Celery worker processes for integration tests, started and stopped by the tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from celery import Celery

ROOT = Path(__file__).resolve().parent.parent


def worker_env(redis_url: str, **settings: str) -> dict[str, str]:
    """The environment a worker reads its settings from."""
    env = dict(os.environ)
    env.update(
        REDIS_URL=redis_url,
        HOURGLASS_PLAYBOOKS=str(ROOT / "playbooks"),
        HOURGLASS_SHARDS="4",
        HOURGLASS_CLOCK="event",
        PYTHONUNBUFFERED="1",
    )
    env.update({f"HOURGLASS_{k.upper()}": v for k, v in settings.items()})
    return env


class WorkerProcess:
    """``celery -A workers.app worker`` on the shard queue (or ``queues``, comma-separated), with
    the solo pool (one process, so that a signal reaches the process applying the batch)."""

    def __init__(
        self,
        redis_url: str,
        name: str,
        log: Path,
        queues: str = "hourglass.shards",
        **settings: str,
    ) -> None:
        self.name = name
        self.queues = queues
        self.log = log
        self.env = worker_env(redis_url, **settings)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        command = [
            sys.executable, "-m", "celery", "-A", "workers.app", "worker",
            "-Q", self.queues, "--pool", "solo", "-n", f"{self.name}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info",
        ]  # fmt: skip
        handle = self.log.open("ab")
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=handle, stderr=subprocess.STDOUT
        )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        os.kill(self.pid, sig)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGCONT)
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def kicker(redis_url: str) -> Callable[[int], None]:
    """What ingest calls for a newly kicked shard: queue its drain task, as the API does."""
    app = Celery("hourglass-test", broker=redis_url)

    def kick(shard: int) -> None:
        app.send_task("hourglass.drain_shard", args=(shard,), queue="hourglass.shards")

    return kick


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` until it holds; fail the test with ``what`` when it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class BeatProcess(WorkerProcess):
    """``celery -A workers.app beat``: the periodic sweeps (timers, lost kicks, outbox)."""

    def start(self) -> WorkerProcess:
        schedule = self.log.with_suffix(".schedule")
        command = [
            sys.executable, "-m", "celery", "-A", "workers.app", "beat",
            "-l", "info", "-s", str(schedule),
        ]  # fmt: skip
        handle = self.log.open("ab")
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=handle, stderr=subprocess.STDOUT
        )
        return self
