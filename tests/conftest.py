"""Shared fixtures: a real redis-server for the session, clients on it, and fakeredis.

Without ``redis-server`` on PATH, tests that need it skip, unless ``HOURGLASS_REQUIRE_REDIS=1``
(as in CI), where they fail.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis
from redisproc import EXECUTABLE, RedisServer

from engine.redis.store import RedisStore


def require_redis_server() -> None:
    """Skip the test when redis-server is missing, or fail when HOURGLASS_REQUIRE_REDIS=1."""
    if shutil.which(EXECUTABLE) is not None:
        return
    if os.environ.get("HOURGLASS_REQUIRE_REDIS") == "1":
        pytest.fail(f"{EXECUTABLE} is not on PATH, and HOURGLASS_REQUIRE_REDIS=1 requires it")
    pytest.skip(f"{EXECUTABLE} is not on PATH (set HOURGLASS_REQUIRE_REDIS=1 to fail instead)")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a redis-server started for the whole session (do not stop it in a test)."""
    require_redis_server()
    with RedisServer(directory=tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture
def redis_client(redis_server: str) -> Iterator[redis.Redis]:
    """A client of the session's redis-server, flushed before the test."""
    client = redis.Redis.from_url(redis_server)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def fake_redis() -> redis.Redis:
    """An isolated fakeredis (with Lua)."""
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


@pytest.fixture(params=["fakeredis", "redis"])
def either_redis(request: pytest.FixtureRequest) -> redis.Redis:
    """fakeredis, then the session's redis-server: a test using it runs on both."""
    fixture: redis.Redis = request.getfixturevalue(
        "fake_redis" if request.param == "fakeredis" else "redis_client"
    )
    return fixture


@pytest.fixture
def redis_store(redis_client: redis.Redis) -> RedisStore:
    """A RedisStore on the session's redis-server (empty)."""
    return RedisStore(redis_client)


@pytest.fixture
def fake_redis_store(fake_redis: redis.Redis) -> RedisStore:
    """A RedisStore on fakeredis."""
    return RedisStore(fake_redis)


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Start redis-servers of the test's own (to stop and restart); all stopped at the end."""
    require_redis_server()
    servers: list[RedisServer] = []

    def start(**options: Any) -> RedisServer:
        options.setdefault("directory", tmp_path / f"redis-{len(servers)}")
        server = RedisServer(**options)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.close()
