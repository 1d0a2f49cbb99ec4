"""``hourglass simulate`` as a user runs it (a subprocess): a timeline with bad lines in the
middle is reported line by line on stderr and the run carries on; ``--until`` is honoured.

tests/fixtures/timelines/bad-lines.jsonl: acme (mid-market, renews 2026-04-30) is grouped
and identified (lines 1-2), then line 3 is cut-off JSON, line 4 starts the subscription,
line 5 is a track call without ``event``, line 6 is a JSON array, line 7 is the kickoff
(onboarding on 5 January 10:00) and line 8 a later group call (plan, seats).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
HOURGLASS = Path(sys.executable).parent / "hourglass"
TIMELINE = ROOT / "tests" / "fixtures" / "timelines" / "bad-lines.jsonl"
RECORD_KEYS = {
    "time",
    "account",
    "playbook",
    "version",
    "type",
    "idempotency_key",
    "mode",
    "payload",
}


def simulate(tmp: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    out, states = tmp / "actions.jsonl", tmp / "states.json"
    command = [
        str(HOURGLASS), "simulate", "--playbooks", str(ROOT / "playbooks"),
        "--events", str(TIMELINE), "--out", str(out), "--state-out", str(states), *extra,
    ]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp)
    return proc, out, states


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run to 20 January: past the stall on day 14, before the Slack on day 21."""
    proc, out, states = simulate(tmp_path_factory.mktemp("sim"), "--until", "2026-01-20T00:00:00Z")
    assert proc.returncode == 0, proc.stderr
    return {
        "proc": proc,
        "actions": [json.loads(line) for line in out.read_text().splitlines()],
        "states": json.loads(states.read_text()),
    }


def test_exit_code_is_zero_and_each_bad_line_is_reported(run: dict[str, Any]) -> None:
    proc = run["proc"]
    assert proc.returncode == 0
    reported = [line for line in proc.stderr.splitlines() if line.startswith(f"{TIMELINE}:")]
    assert [line.split(":")[1] for line in reported] == ["3", "5", "6"]
    reasons = {line.split(":")[1]: line.split(": ", 1)[1] for line in reported}
    assert reasons["3"].startswith("not JSON")
    assert reasons["5"].startswith("event: field required")
    assert reasons["6"].startswith("expected a JSON object")
    assert "3 bad lines skipped" in " ".join(proc.stdout.split())


def test_good_events_after_the_bad_lines_are_applied(run: dict[str, Any]) -> None:
    assert list(run["states"]) == ["acme"]
    acme = run["states"]["acme"]
    # The kickoff (line 7) put acme in onboarding; its stall moved the renewal track.
    lifecycle, renewal = (
        acme["stages"]["flywheel"]["lifecycle"],
        acme["stages"]["flywheel"]["renewal"],
    )
    assert (lifecycle["stage"], lifecycle["entered"][:19]) == ("onboarding", "2026-01-05T10:00:00")
    assert renewal["stage"] == "at_risk"
    # The group call on line 8 updated traits; those of line 1 are kept.
    traits = acme["traits"]
    assert (traits["name"], traits["plan"], traits["seats"], traits["segment"]) == (
        "Acme", "enterprise", 40, "mid_market",
    )  # fmt: skip
    assert acme["flags"] == {"renewal_risk": True}
    assert [(c["email"], c["role"]) for c in acme["contacts"]] == [("pat@acme.test", "champion")]


def test_actions_are_written_and_until_is_honoured(run: dict[str, Any]) -> None:
    actions = run["actions"]
    assert actions and all(set(a) == RECORD_KEYS for a in actions)
    stalled = [(a["time"], a["type"]) for a in actions if a["playbook"] == "onboarding-stalled"]
    assert stalled == [
        ("2026-01-19T10:00:00Z", "set_flag"),
        ("2026-01-19T10:00:00Z", "move_stage"),
        ("2026-01-19T10:00:00Z", "task"),
        ("2026-01-19T10:00:00Z", "task"),
    ]  # the Slack due on 26 January is after --until
    digests = [a["time"] for a in actions if a["playbook"] == "weekly-red-digest"]
    assert digests == ["2026-01-05T14:00:00Z", "2026-01-12T14:00:00Z", "2026-01-19T14:00:00Z"]
    assert max(a["time"] for a in actions) <= "2026-01-20T00:00:00Z"
    # Still pending at --until: the Slack step's wait.
    assert "seq:onboarding-stalled" in run["states"]["acme"]["timers"]


def test_until_before_the_last_event_is_honoured(tmp_path: Path) -> None:
    # --until 5 January 12:00, while the file goes on to 6 January: nothing may act after it
    # (the Monday digest of 5 January 14:00 must not be there).
    proc, out, _ = simulate(tmp_path, "--until", "2026-01-05T12:00:00Z")
    assert proc.returncode == 0, proc.stderr
    times = [json.loads(line)["time"] for line in out.read_text().splitlines()]
    assert [t for t in times if t > "2026-01-05T12:00:00Z"] == []


def test_a_bad_until_is_refused(tmp_path: Path) -> None:
    proc, out, _ = simulate(tmp_path, "--until", "next tuesday")
    assert proc.returncode == 1
    assert "--until" in proc.stderr and "next tuesday" in proc.stderr
    assert not out.exists()
