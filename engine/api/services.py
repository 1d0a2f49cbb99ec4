"""What the routes work with: one Redis client, the Ingestor, the store, credentials, the audit
stream, the drain kick, the worker probe and the playbook set — built once per app."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from fastapi import Request

from engine.api.audit import Audit
from engine.api.auth import Tokens, WriteKeys
from engine.core.loader import load_playbook_set
from engine.core.playbook_set import PlaybookSet
from engine.redis.ingest import Ingestor
from engine.redis.playbook_sets import PlaybookSets
from engine.redis.store import RedisStore
from engine.settings import Settings

log = logging.getLogger(__name__)


class KickFailed(Exception):
    """The events are stored, but the drain task could not be queued (the broker is down)."""


def guarded(kick: Callable[[int], None]) -> Callable[[int], None]:
    """``kick`` with its failures (whatever the broker raises) turned into :class:`KickFailed`."""
    lock = threading.Lock()

    def run(shard: int) -> None:
        try:
            with lock:  # kicks are rare (one per shard per drain); keep the producer simple
                kick(shard)
        except Exception as error:
            raise KickFailed(f"cannot queue a drain of shard {shard}: {error}") from error

    return run


def celery_kick(shard: int) -> None:
    """Queue a drain of ``shard`` on the Celery broker (imported late: only the API needs it)."""
    from workers.tasks import kick

    kick(shard)


def celery_ping(timeout: float) -> int:
    """How many Celery workers answer a ``control.ping`` within ``timeout`` seconds."""
    from workers.app import app

    return len(app.control.ping(timeout=timeout) or [])


class WorkerProbe:
    """Whether workers are alive: Celery ``control.ping``, its answer cached for ``ttl`` s."""

    def __init__(self, ping: Callable[[float], int], timeout: float, ttl: float = 2.0) -> None:
        self.ping = ping
        self.timeout = timeout
        self.ttl = ttl
        self._lock = threading.Lock()
        self._at = -float("inf")
        self._alive = 0

    def alive(self) -> int:
        """Workers that answered the latest ping (0 when the broker is unreachable)."""
        with self._lock:
            if time.monotonic() - self._at < self.ttl:
                return self._alive
            try:
                self._alive = self.ping(self.timeout)
            except Exception as error:
                log.warning("worker ping failed: %s", error)
                self._alive = 0
            self._at = time.monotonic()
            return self._alive


class PlaybookSource:
    """The playbook set the API reads schemas and journeys from: the published current set
    (recompiled when its version changes, checked at most once per ``interval`` s), else the
    playbook directory. Reads only: the API never publishes on its own."""

    def __init__(self, sets: PlaybookSets, directory: str, interval: float = 1.0) -> None:
        self.sets = sets
        self.directory = directory
        self.interval = interval
        self._lock = threading.Lock()
        self._checked = -float("inf")
        self._version: int | None = None
        self._pset: PlaybookSet | None = None
        self._loaded = False

    def get(self) -> PlaybookSet | None:
        """The set now, or None when neither a published set nor the directory loads."""
        with self._lock:
            if time.monotonic() - self._checked < self.interval and self._loaded:
                return self._pset
            self._checked = time.monotonic()
            version = self.sets.current_version()
            if self._loaded and version == self._version:
                return self._pset
            self._pset = self._load(version)
            self._version, self._loaded = version, True
            return self._pset

    def _load(self, version: int | None) -> PlaybookSet | None:
        if version is not None:
            try:
                return self.sets.load(version)[1]
            except Exception as error:
                log.warning("published playbook set %s does not load: %s", version, error)
        result = load_playbook_set([self.directory])
        return result.pset


@dataclass
class Services:
    """Everything a route needs, built once by :func:`engine.api.app.create_app`."""

    settings: Settings
    client: redis.Redis
    ingestor: Ingestor
    store: RedisStore
    write_keys: WriteKeys
    tokens: Tokens
    audit: Audit
    kick: Callable[[int], None]
    workers: WorkerProbe
    playbook_sets: PlaybookSets
    playbooks: PlaybookSource
    clock: Callable[[], float] = time.time
    #: The time account pages are computed at ("days in stage", windowed metrics): wall time,
    #: or the deployment's virtual clock when ``HOURGLASS_CLOCK=virtual``.
    account_clock: Callable[[], float] = time.time


def services(request: Request) -> Services:
    """The app's services (a FastAPI dependency)."""
    found: Services = request.app.state.services
    return found
