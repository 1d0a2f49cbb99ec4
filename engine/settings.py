"""Settings from the environment, one documented place (pydantic-settings)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting Hourglass reads, with its environment variable."""

    model_config = SettingsConfigDict(env_prefix="HOURGLASS_", extra="ignore")

    #: State, streams, timers and the outbox (may be Redis Cluster). Unset: embedded mode.
    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    #: The Celery broker; defaults to the state Redis (Celery's Redis transport has no Cluster).
    broker_url: str | None = None
    #: Number of shards; fixed per deployment, well above the number of worker processes.
    shards: int = Field(default=16, ge=1, le=4096)
    #: The playbook directory workers load.
    playbooks: str = "playbooks"
    #: Events read and committed per batch.
    batch_size: int = Field(default=500, ge=1, le=10_000)
    #: Batches a drain task applies before it re-enqueues itself (so no worker is held forever).
    batches_per_task: int = Field(default=20, ge=1)
    #: How long a shard lease lasts without renewal.
    lease_ms: int = Field(default=30_000, ge=100)
    #: How long a messageId is remembered for deduplication.
    dedupe_window_s: int = Field(default=86_400, ge=1)
    #: How long a delivered action's receipt is kept at least (kept up to 1.5 times this): an
    #: action decided again within it (a redelivered or replayed event) is not sent again.
    receipt_retention_s: int = Field(default=30 * 86_400, ge=3600)
    #: ``wall``: the runner's clock is wall time (live). ``event``: each event applies at its
    #: own timestamp (replaying a history). ``virtual``: time is what ``hg:clock`` in Redis says
    #: (a test or a backtest drives it). Timer firings apply at their due time in the latter two.
    clock: Literal["wall", "event", "virtual"] = "wall"

    # -- delivery (outbox dispatch) ------------------------------------------------------
    #: SMTP server for emails; unset: emails are written to ``outbox_dir`` as .eml files.
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    #: The From address of emails.
    mail_from: str = "Hourglass <hourglass@localhost>"
    #: Where the file channel writes when no SMTP server is configured.
    outbox_dir: str = "outbox"
    #: Delivery attempts before an action becomes a dead letter.
    dispatch_attempts: int = Field(default=6, ge=1)
    #: How long a dispatcher holds an outbox entry before another may retry it.
    dispatch_lease_s: float = Field(default=60.0, gt=0)
    #: Webhook/Slack destinations allowed on private or loopback addresses (comma-separated
    #: names), in addition to those marked ``allow_private`` in destinations.yaml.
    allow_private_destinations: str = ""

    # -- HTTP API --------------------------------------------------------------------------
    #: Write keys per source: ``name:key,name2:key2``.
    write_keys: str = ""
    #: Management tokens: ``name:role:token,...`` with role admin, ops, csm or readonly.
    tokens: str = ""
    #: Shared secret of the Segment Webhooks destination endpoint.
    segment_webhook_secret: str | None = None
    #: Refuse ingest with 429 while a shard's stream holds more than this many entries.
    max_backlog: int = Field(default=1_000_000, ge=1)
    max_event_bytes: int = Field(default=32 * 1024, ge=1024)
    max_request_bytes: int = Field(default=500 * 1024, ge=1024)
    #: Where ``hourglass api`` listens (``--host``/``--port`` override them).
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    #: Seconds a 429 (backlog over ``max_backlog``) asks clients to wait (``Retry-After``).
    retry_after_s: int = Field(default=5, ge=1, le=3600)
    #: How long ``/readyz`` waits for Celery workers to answer a ping (the answer is cached).
    worker_ping_timeout_s: float = Field(default=0.5, gt=0, le=10)
    #: Entries the audit stream keeps (approximately; the oldest are trimmed).
    audit_max: int = Field(default=100_000, ge=100)

    @property
    def broker(self) -> str:
        url = self.broker_url or self.redis_url
        if url is None:
            raise ValueError("set REDIS_URL (and optionally HOURGLASS_BROKER_URL) to run workers")
        return url


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The process's settings, read once."""
    return Settings()
