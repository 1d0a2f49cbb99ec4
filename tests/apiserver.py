"""The API on loopback for tests: in a thread (``uvicorn.Server``, any app — e.g. on fakeredis),
or as a real ``hourglass api`` process; plus what Segment SDKs send."""

from __future__ import annotations

import base64
import gzip
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn
from fastapi import FastAPI
from redisproc import free_port

ROOT = Path(__file__).resolve().parent.parent
WRITE_KEY = "wk-test-1"
TOKENS = {"admin": "tok-admin", "ops": "tok-ops", "csm": "tok-csm", "readonly": "tok-read"}
TOKENS_SETTING = ",".join(f"{role}-user:{role}:{token}" for role, token in TOKENS.items())
WEBHOOK_SECRET = "segment-shared-secret"


def bearer(role: str) -> dict[str, str]:
    """The Authorization header of the test token with ``role``."""
    return {"Authorization": f"Bearer {TOKENS[role]}"}


def basic(write_key: str = WRITE_KEY) -> dict[str, str]:
    """HTTP Basic with the write key as user name and an empty password, as Segment SDKs do."""
    return {"Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()}


def sdk_request(batch: list[dict[str, Any]], sent_at: str) -> tuple[dict[str, str], bytes]:
    """Headers and body exactly as analytics-python posts a batch: ``/v1/batch``, JSON with
    ``batch``, ``sentAt`` and ``writeKey``, gzip, HTTP Basic with the write key."""
    body = orjson.dumps({"batch": batch, "sentAt": sent_at, "writeKey": WRITE_KEY})
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "analytics-python/2.3.3",
        "Content-Encoding": "gzip",
        **basic(),
    }
    return headers, gzip.compress(body)


class ServerThread:
    """A uvicorn server for ``app`` in a daemon thread, on a free loopback port."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the API server thread did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class ApiProcess:
    """``hourglass api`` as a process of its own (uvicorn on loopback), configured by env."""

    def __init__(self, redis_url: str, log: Path, **settings: str) -> None:
        self.port = free_port()
        self.log = log
        self.env = dict(os.environ)
        self.env.update(
            REDIS_URL=redis_url,
            HOURGLASS_WRITE_KEYS=f"test:{WRITE_KEY}",
            HOURGLASS_TOKENS=TOKENS_SETTING,
            HOURGLASS_SEGMENT_WEBHOOK_SECRET=WEBHOOK_SECRET,
            HOURGLASS_PLAYBOOKS=str(ROOT / "playbooks"),
            HOURGLASS_SHARDS="4",
            HOURGLASS_CLOCK="event",
            PYTHONUNBUFFERED="1",
        )
        self.env.update({f"HOURGLASS_{k.upper()}": v for k, v in settings.items()})
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ApiProcess:
        hourglass = str(Path(sys.executable).parent / "hourglass")
        command = [hourglass, "api", "--host", "127.0.0.1", "--port", str(self.port)]
        handle = self.log.open("ab")
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=handle, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"hourglass api exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"hourglass api did not answer in {timeout}s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


class FakeApi:
    """The API on fakeredis, served by uvicorn in a thread; drains are recorded, not queued."""

    def __init__(self, workers: int = 1, **settings: Any) -> None:
        import fakeredis

        from engine.api import create_app
        from engine.settings import Settings

        self.server = fakeredis.FakeServer()
        self.redis = fakeredis.FakeRedis(server=self.server)
        self.kicked: list[int] = []
        self.workers = workers
        options: dict[str, Any] = {
            "REDIS_URL": "redis://fake",
            "write_keys": f"test:{WRITE_KEY},other:wk-other",
            "tokens": TOKENS_SETTING,
            "segment_webhook_secret": WEBHOOK_SECRET,
            "playbooks": str(ROOT / "playbooks"),
            "shards": 4,
        }
        options.update(settings)
        self.settings = Settings(**options)
        self.app = create_app(
            self.settings, client=self.redis, kick=self.kicked.append, ping=lambda _: self.workers
        )
        self._thread = ServerThread(self.app)
        self.http = httpx.Client(base_url=self._thread.url, timeout=10)

    def __enter__(self) -> FakeApi:
        self._thread.__enter__()
        return self

    def __exit__(self, *_: object) -> None:
        self.http.close()
        self._thread.__exit__()
