"""``hourglass demo`` as a new user runs it: a subprocess, no services, the journey shown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from engine.core.loader import load_playbook_set

ROOT = Path(__file__).resolve().parents[2]
HOURGLASS = Path(sys.executable).parent / "hourglass"


def test_demo_runs_without_services_and_names_every_stage(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    # Embedded mode: no REDIS_URL in the environment, so no Redis and no Celery.
    env = {"PATH": str(HOURGLASS.parent), "COLUMNS": "100", "HOME": str(tmp_path)}
    done = subprocess.run(
        [str(HOURGLASS), "demo", "--accounts", "80", "--days", "90", "--outbox", str(outbox)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    pset = load_playbook_set([ROOT / "playbooks"]).pset
    assert pset is not None
    for journey in pset.journeys.values():
        for track in journey.tracks.values():
            for stage in track.stages:
                assert stage.id in done.stdout, f"{journey.id}: {stage.id} missing from the demo"
    for playbook in pset.playbooks:
        assert playbook.id in done.stdout
    emails = list((outbox / "emails").glob("*.eml"))
    assert emails, "the demo wrote no emails to the outbox"
    assert b"Message-ID: <" in emails[0].read_bytes()


def test_demo_away_from_the_examples_says_where_it_looked(tmp_path: Path) -> None:
    env = {"PATH": str(HOURGLASS.parent), "HOME": str(tmp_path)}
    done = subprocess.run(
        [str(HOURGLASS), "demo"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert f"no playbook directory at {tmp_path / 'playbooks'}" in done.stderr
    assert "--playbooks DIR" in done.stderr and "Traceback" not in done.stderr
    with_env = subprocess.run(
        [str(HOURGLASS), "demo", "--accounts", "20", "--days", "30", "--outbox", "out"],
        cwd=tmp_path,
        env={**env, "HOURGLASS_PLAYBOOKS": str(ROOT / "playbooks"), "COLUMNS": "100"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert with_env.returncode == 0, with_env.stderr
    assert list((tmp_path / "out" / "emails").glob("*.eml"))
