"""The API application: one factory, its services, its routes, its OpenAPI document."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import redis
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from engine.api import errors, segment
from engine.api.audit import Audit
from engine.api.auth import Tokens, WriteKeys
from engine.api.limits import BodyLimit
from engine.api.routes import accounts, dead_letters, events, ingest, operations, playbooks, tasks
from engine.api.services import (
    PlaybookSource,
    Services,
    WorkerProbe,
    celery_kick,
    celery_ping,
    guarded,
)
from engine.redis.clock import RedisClock
from engine.redis.ingest import Ingestor
from engine.redis.playbook_sets import PlaybookSets
from engine.redis.store import RedisStore
from engine.settings import Settings, settings

log = logging.getLogger(__name__)

DESCRIPTION = """\
Segment-compatible ingestion (`/v1/track`, `/v1/batch`...; write key as the HTTP Basic user name
or `writeKey` in the body; gzip bodies accepted) and Segment's Webhooks destination
(`/v1/webhooks/segment`, signed with `X-Signature`). Management endpoints take a named Bearer
token whose role (admin, ops, csm, readonly) decides what it may do; every write is audited.
See docs/api.md.
"""

TAGS = [
    {"name": "ingestion", "description": "Segment's HTTP API, and its Webhooks destination."},
    {"name": "accounts", "description": "Account pages, lists by stage, stage overrides."},
    {"name": "events", "description": "What became of an event; rejected events."},
    {"name": "tasks", "description": "CSM tasks."},
    {"name": "playbooks", "description": "Published playbook sets."},
    {"name": "dead letters", "description": "Events that failed to apply."},
    {"name": "operations", "description": "Health, readiness, status, audit."},
]

SECURITY_SCHEMES = {
    "writeKeyBasic": {
        "type": "http",
        "scheme": "basic",
        "description": "A write key (HOURGLASS_WRITE_KEYS) as the user name, empty password. "
        "Or send it as `writeKey` in the body.",
    },
    "segmentSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Signature",
        "description": "Hex HMAC-SHA1 of the body with HOURGLASS_SEGMENT_WEBHOOK_SECRET.",
    },
}


def _version() -> str:
    try:
        return version("hourglass")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


def redis_client(url: str) -> redis.Redis:
    """A client with bounded timeouts, so a Redis outage answers 503 quickly."""
    return redis.Redis.from_url(
        url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30
    )


def build_services(
    config: Settings,
    client: redis.Redis,
    *,
    kick: Callable[[int], None] | None = None,
    ping: Callable[[float], int] | None = None,
    clock: Callable[[], float] = time.time,
) -> Services:
    """The routes' services over one Redis client (``kick`` and ``ping`` default to Celery)."""
    write_keys, tokens = WriteKeys(config.write_keys), Tokens(config.tokens)
    if not len(write_keys):
        log.warning("HOURGLASS_WRITE_KEYS is empty: every ingestion request gets 401")
    if not len(tokens):
        log.warning("HOURGLASS_TOKENS is empty: every management request gets 401")
    safe_kick = guarded(kick or celery_kick)
    sets = PlaybookSets(client)
    return Services(
        settings=config,
        client=client,
        ingestor=Ingestor(
            client,
            shards=config.shards,
            dedupe_window_s=config.dedupe_window_s,
            max_event_bytes=config.max_event_bytes,
            kick=safe_kick,
            max_backlog=config.max_backlog,
            retry_after_s=config.retry_after_s,
            clock=clock,
        ),
        store=RedisStore(
            client,
            shards=config.shards,
            dedupe_window_s=config.dedupe_window_s,
            receipt_retention_s=config.receipt_retention_s,
        ),
        write_keys=write_keys,
        tokens=tokens,
        audit=Audit(client, max_entries=config.audit_max),
        kick=safe_kick,
        workers=WorkerProbe(ping or celery_ping, config.worker_ping_timeout_s),
        playbook_sets=sets,
        playbooks=PlaybookSource(sets, config.playbooks),
        clock=clock,
        account_clock=RedisClock(client).now if config.clock == "virtual" else clock,
    )


def create_app(
    config: Settings | None = None,
    *,
    client: redis.Redis | None = None,
    kick: Callable[[int], None] | None = None,
    ping: Callable[[float], int] | None = None,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """The API over ``config`` (default: the environment's settings)."""
    config = config or settings()
    if client is None:
        if config.redis_url is None:
            raise RuntimeError("REDIS_URL is not set: the API stores events in Redis")
        client = redis_client(config.redis_url)
    app = FastAPI(title="Hourglass", version=_version(), description=DESCRIPTION, openapi_tags=TAGS)
    app.state.services = build_services(config, client, kick=kick, ping=ping, clock=clock)
    errors.install(app)
    app.add_middleware(BodyLimit)
    for module in (ingest, accounts, events, tasks, playbooks, dead_letters, operations):
        app.include_router(module.router)

    def openapi() -> dict[str, Any]:
        """FastAPI's document plus the Segment body schemas and the non-Bearer schemes."""
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            components = schema.setdefault("components", {})
            components.setdefault("schemas", {}).update(segment.schemas())
            components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def app_from_env() -> FastAPI:
    """The API configured from the environment (uvicorn's ``--factory`` target)."""
    return create_app()
