"""Schemathesis against a live ``hourglass api``: generated requests for every operation find
no 5xx and no response that breaks the published OpenAPI schema (bounded: 20 examples each).

The schema is built in-process at collection time (schemathesis' lazy ``from_fixture`` loader
does not run on pytest 9), and checked to be exactly what the live server serves.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import httpx
import pytest
import redis
import schemathesis
from apiserver import ApiProcess, basic, bearer
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from workerproc import WorkerProcess, wait_until

from engine.api import create_app
from engine.settings import Settings

pytestmark = pytest.mark.integration

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def live_api(redis_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    """The API with a worker behind it (so that readiness is 200, not a 5xx)."""
    redis.Redis.from_url(redis_server).flushall()
    logs = Path(tmp_path_factory.mktemp("api-schema"))
    worker = WorkerProcess(redis_server, "schema-w1", logs / "worker.log", shards="4").start()
    api = ApiProcess(redis_server, logs / "api.log").start()
    try:
        wait_until(lambda: httpx.get(f"{api.url}/readyz").status_code == 200, 30, "a worker")
        yield api
    finally:
        api.stop()
        worker.stop()


def _document() -> dict[str, Any]:
    """The OpenAPI document of the app (no Redis is touched to build it)."""
    app = create_app(
        Settings(REDIS_URL="redis://unused"), client=fakeredis.FakeRedis(), kick=lambda _: None
    )
    return app.openapi()


DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_the_live_server_serves_this_document(live_api: ApiProcess) -> None:
    served = httpx.get(f"{live_api.url}/openapi.json", timeout=10)
    assert served.status_code == 200
    assert served.json() == DOCUMENT


@schema.parametrize()
@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors_and_no_schema_violations(
    case: schemathesis.Case, live_api: ApiProcess
) -> None:
    path = case.operation.path
    ingestion = path.startswith("/v1/") and path.removeprefix("/v1/") in (
        "track", "identify", "group", "page", "screen", "alias", "batch",
    )  # fmt: skip
    headers = basic() if ingestion else bearer("admin")
    case.call_and_validate(base_url=live_api.url, headers=headers, checks=CHECKS)
