"""The benchmark's own processes: a loopback redis-server and real Celery worker processes."""

from __future__ import annotations

import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import redis
from celery import Celery

from bench.workload import ROOT


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(check: Callable[[], bool], timeout: float, what: str, every: float = 0.05) -> None:
    """Poll ``check`` until it holds, or exit the benchmark saying what never happened."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except redis.RedisError:
            pass
        time.sleep(every)
    raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")


class RedisProcess:
    """``redis-server`` on 127.0.0.1 and a free port: AOF on (``everysec``), no RDB snapshots,
    ``noeviction`` — as docs/operations.md recommends for production."""

    def __init__(self, directory: Path, aof: bool = True) -> None:
        if shutil.which("redis-server") is None:
            raise SystemExit("redis-server is not on PATH (scripts/ensure-redis installs it)")
        self.directory = directory
        self.port = free_port()
        self.aof = aof
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProcess:
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "yes" if self.aof else "no", "--appendfsync", "everysec",
            "--maxmemory-policy", "noeviction", "--dir", str(self.directory),
            "--logfile", "redis.log",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        client = self.client()
        wait_for(lambda: bool(client.ping()), 10, "redis-server")
        return self

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=30)

    def version(self) -> str:
        return str(self.client().info("server")["redis_version"])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


class Workers:
    """``count`` real ``celery -A <app> worker`` processes on one queue, solo pool (so each is
    exactly one process), as tests/workerproc.py starts them."""

    def __init__(
        self, app: str, queue: str, count: int, env: dict[str, str], logs: Path, cwd: Path = ROOT
    ) -> None:
        self.app, self.queue, self.count, self.env, self.logs = app, queue, count, env, logs
        #: Celery puts its working directory first on the path: the package imported is there.
        self.cwd = cwd
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, ping: Celery) -> Workers:
        """Start them and wait until every one answers a ping (they are consuming then)."""
        self.logs.mkdir(parents=True, exist_ok=True)
        for n in range(self.count):
            name = f"{self.queue}-{n}@%h"
            command = [
                sys.executable, "-m", "celery", "-A", self.app, "worker", "-Q", self.queue,
                "--pool", "solo", "-n", name, "--without-gossip", "--without-mingle",
                "--without-heartbeat", "-l", "warning",
            ]  # fmt: skip
            log = (self.logs / f"{self.queue}-{n}.log").open("ab")
            self.processes.append(
                subprocess.Popen(command, cwd=self.cwd, env=self.env, stdout=log, stderr=log)
            )

        def all_answer() -> bool:
            if any(p.poll() is not None for p in self.processes):
                raise SystemExit(f"a worker exited at start: see {self.logs}")
            return len(ping.control.ping(timeout=0.5) or []) >= self.count

        wait_for(all_answer, 60, f"{self.count} worker(s) on {self.queue}", every=0.2)
        return self

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        self.processes = []


def worker_env(
    redis_url: str, playbooks: Path, shards: int, compiled: Path | None = None
) -> dict[str, str]:
    """The environment the workers read their settings from; with ``compiled`` (a copy built
    by bench.compiled) its packages come first, the benchmark's own from the source tree."""
    env = dict(os.environ)
    env.update(
        REDIS_URL=redis_url,
        HOURGLASS_PLAYBOOKS=str(playbooks),
        HOURGLASS_SHARDS=str(shards),
        HOURGLASS_CLOCK="wall",
        PYTHONPATH=os.pathsep.join(str(p) for p in (compiled, ROOT) if p is not None),
        PYTHONUNBUFFERED="1",
    )
    return env


def machine(redis_version: str) -> dict[str, str | int]:
    """What the figures were measured on."""
    model = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count() or 0,
        "cpu": model,
        "python": platform.python_version(),
        "redis": redis_version,
        "system": f"{platform.system()} {platform.release()}",
    }
