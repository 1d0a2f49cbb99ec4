"""docker-compose.yml and the Dockerfile, checked against the code: services and health checks,
real ``hourglass`` commands, real settings, Redis persistence. Docker itself cannot run here;
``docker compose config`` validates the file when a compose client is installed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from engine.cli import app
from engine.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SERVICES = {"redis", "broker", "api", "worker", "beat", "flower", "mailpit"}
HOURGLASS = ("api", "worker", "beat")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def setting_variables() -> set[str]:
    """Every environment variable Settings reads."""
    prefix = Settings.model_config.get("env_prefix", "")
    return {
        str(f.validation_alias) if f.validation_alias else f"{prefix}{name}".upper()
        for name, f in Settings.model_fields.items()
    }


def test_every_service_is_there_with_a_health_check(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        check = service.get("healthcheck", {})
        assert check.get("test"), f"{name} has no health check"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name


def parses(arguments: list[str]) -> bool:
    """Whether the Typer app accepts these arguments (``--help`` stops before running)."""
    return CliRunner().invoke(app, [*arguments, "--help"]).exit_code == 0


def test_every_command_is_a_real_hourglass_subcommand(compose: dict[str, Any]) -> None:
    for name in HOURGLASS:
        command = compose["services"][name]["command"]
        assert command[0] == "hourglass" and command[1] == name
        assert parses(command[1:]), command
    assert compose["services"]["api"]["command"] == ["hourglass", "api", "--host", "0.0.0.0"]


def test_a_wrong_command_or_option_would_be_caught() -> None:
    assert not parses(["api", "--hots", "0.0.0.0"])
    assert not parses(["workers"])
    assert parses(["status", "--json"])


def test_the_environment_names_only_real_settings(compose: dict[str, Any]) -> None:
    known = setting_variables()
    assert {"REDIS_URL", "HOURGLASS_BROKER_URL", "HOURGLASS_SMTP_HOST"} <= known
    for name in HOURGLASS:
        environment = compose["services"][name]["environment"]
        assert set(environment) <= known, set(environment) - known
        assert environment["REDIS_URL"] == "redis://redis:6379/0"
        assert environment["HOURGLASS_BROKER_URL"] == "redis://broker:6379/0"
        assert environment["HOURGLASS_SMTP_HOST"] == "mailpit"
        assert environment["HOURGLASS_SMTP_PORT"] == "1025"
        Settings.model_validate({k.lower(): v for k, v in environment.items() if "${" not in v})


def test_state_redis_persists_with_aof_and_never_evicts(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    flags = redis["command"]
    assert flags[0] == "redis-server"
    options = dict(zip(flags[1::2], flags[2::2], strict=True))
    assert options["--appendonly"] == "yes"
    assert options["--appendfsync"] == "everysec"
    assert options["--maxmemory-policy"] == "noeviction"
    assert options["--lazyfree-lazy-expire"] == "yes"  # expired dedupe and receipt hashes
    volume, _, target = redis["volumes"][0].partition(":")
    assert target == "/data" and volume in compose["volumes"]
    broker = " ".join(compose["services"]["broker"]["command"])
    assert "--maxmemory-policy noeviction" in broker


def test_hourglass_services_wait_for_healthy_dependencies(compose: dict[str, Any]) -> None:
    for name in HOURGLASS:
        service = compose["services"][name]
        assert service["build"] == "." and service["image"] == "hourglass:latest"
        needs = service["depends_on"]
        for dependency in ("redis", "broker", "mailpit"):
            assert needs[dependency]["condition"] == "service_healthy"
    flower = compose["services"]["flower"]["environment"]
    assert flower["CELERY_BROKER_URL"] == "redis://broker:6379/0"


def test_the_dockerfile_installs_a_compiled_wheel_on_python_3_11_slim() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text().splitlines()
    assert "FROM python:3.11-slim AS build" in dockerfile and "FROM python:3.11-slim" in dockerfile
    build = next(line for line in dockerfile if "pip wheel" in line)
    assert "HOURGLASS_COMPILE=1" in build and "--no-build-isolation" in build
    assert 'RUN pip install "setuptools>=77" wheel ".[compile]"' in dockerfile
    assert "RUN pip install /wheels/*.whl && rm -rf /wheels" in dockerfile
    # the final stage carries no sources that would shadow the compiled modules
    final = dockerfile[dockerfile.index("FROM python:3.11-slim") :]
    assert not [line for line in final if line.startswith("COPY engine")]
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ".venv" in ignored and ".git" in ignored


def compose_client() -> list[str] | None:
    """``docker compose`` (the plugin) or ``docker-compose``, whichever works here."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_docker_compose_config_accepts_the_file() -> None:
    client = compose_client()
    if client is None:
        if os.environ.get("CI") == "true":  # CI installs one (scripts/ensure-compose)
            pytest.fail("no docker compose client: scripts/ensure-compose should have installed it")
        pytest.skip("no docker compose client installed (make test installs one)")
    done = subprocess.run(
        [*client, "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
