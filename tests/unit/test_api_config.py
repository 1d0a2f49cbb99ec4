"""Configuration: every setting is in docs/configuration.md's table, and the API refuses
malformed credentials at start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import fakeredis
import pytest

from engine.api import create_app
from engine.api.auth import ConfigError
from engine.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def variable(name: str) -> str:
    field = Settings.model_fields[name]
    alias = field.validation_alias
    return alias if isinstance(alias, str) else f"HOURGLASS_{name.upper()}"


def test_every_setting_is_documented() -> None:
    table = (ROOT / "docs" / "configuration.md").read_text()
    missing = [
        variable(name) for name in Settings.model_fields if f"`{variable(name)}`" not in table
    ]
    assert missing == []


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOURGLASS_TOKENS", "alice:admin:t")
    monkeypatch.setenv("HOURGLASS_MAX_BACKLOG", "42")
    config = Settings()
    assert config.tokens == "alice:admin:t" and config.max_backlog == 42


@pytest.mark.parametrize("options", [{"write_keys": "no-colon"}, {"tokens": "alice:superuser:t"}])
def test_malformed_credentials_stop_the_app(options: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        create_app(Settings(REDIS_URL="redis://x", **options), client=fakeredis.FakeRedis())


def test_the_api_command_says_what_is_missing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    hourglass = str(Path(sys.executable).parent / "hourglass")
    done = subprocess.run(
        [hourglass, "api"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1 and "REDIS_URL is not set" in done.stderr
    env.update(REDIS_URL="redis://127.0.0.1:1/0", HOURGLASS_TOKENS="bob:root:t")
    done = subprocess.run(
        [hourglass, "api"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1 and "unknown role 'root'" in done.stderr
