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
