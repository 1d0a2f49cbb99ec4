"""Helpers for tests of the pure core: playbook sets from inline YAML, events, and a tiny
driver that applies a timeline with every timer fired at its due time."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.core.apply import apply, new_account
from engine.core.effects import ActionEffect, Effects, NearMiss, StageChange
from engine.core.event import TIMER, Event, TimerFiring
from engine.core.loader import LoadResult, load_playbook_set
from engine.core.playbook_set import PlaybookSet
from engine.core.state import AccountState

DAY = 86_400.0
HOUR = 3_600.0
#: Monday 5 January 2026, 00:00 UTC: every test timeline starts here.
T0 = datetime(2026, 1, 5, tzinfo=UTC).timestamp()
SHIPPED = Path(__file__).resolve().parents[2] / "playbooks"

#: A small account schema: enough traits, metrics, health and roles for most scenarios.
SCHEMA = """
kind: account
timezone_trait: timezone
traits:
  name: string
  journey: string
  plan: {type: string, enum: [starter, growth, enterprise]}
  segment: string
  seats: integer
  active_seats: integer
  nps: integer
  renewal_date: date
  timezone: timezone
  csm_email: email
  ae_email: email
metrics:
  logins_7d: {kind: count, event: login, window: 7d}
  logins_30d: {kind: count, event: login, window: 30d}
  last_login: {kind: last_seen, event: login}
health:
  components:
    - {name: usage, weight: 1, metric: logins_7d, good: 10, bad: 0}
  bands: {green: 70, yellow: 40}
"""

#: A journey with a pre-purchase part, back moves, two outcomes and a parallel renewal track.
JOURNEY = """
kind: journey
id: life
name: Test journey
tracks:
  lifecycle:
    stages:
      - {id: lead, phase: pre}
      - {id: trial, phase: pre, back_to: [lead]}
      - {id: onboarding}
      - {id: adoption, back_to: [onboarding]}
      - {id: renewal}
      - {id: churned, phase: outcome}
      - {id: lost, phase: outcome}
    transitions:
      - {event: signed_up, to: lead}
      - {event: trial_started, to: trial}
      - {event: kickoff, to: onboarding}
      - {event: integrated, to: adoption, from: [onboarding]}
      - {event: renewal_opened, to: renewal}
      - {event: cancelled, to: churned}
      - {event: opp_lost, to: lost, from: [lead, trial]}
      - {event: trial_started, to: trial, from: [lost]}
  renewal:
    stages:
      - {id: not_due}
      - {id: at_risk}
      - {id: renewed}
    transitions:
      - {event: kickoff, to: not_due}
      - {event: renewal_done, to: renewed}
"""

DESTINATIONS = """
kind: destinations
webhooks:
  crm: {url_env: CRM_URL}
slack:
  alerts: {url_env: SLACK_URL}
"""


def yaml(text: str) -> str:
    return textwrap.dedent(text).strip() + "\n"


def write_set(
    root: Path,
    *playbooks: str,
    schema: str | None = SCHEMA,
    journey: str | None = JOURNEY,
    destinations: str | None = DESTINATIONS,
    templates: dict[str, str] | None = None,
) -> Path:
    """Write a set's documents under ``root`` (one file per playbook document)."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("schema.yaml", "journey.yaml", "destinations.yaml"):
        (root / name).unlink(missing_ok=True)
    for old in root.glob("pb_*.yaml"):
        old.unlink()
    for name, text in (("schema", schema), ("journey", journey), ("destinations", destinations)):
        if text is not None:
            (root / f"{name}.yaml").write_text(yaml(text))
    for i, text in enumerate(playbooks):
        (root / f"pb_{i}.yaml").write_text(yaml(text))
    if templates:
        (root / "templates").mkdir(exist_ok=True)
        for name, text in templates.items():
            (root / "templates" / name).write_text(text)
    return root


def load(root: Path, **kw: Any) -> LoadResult:
    return load_playbook_set([root], **kw)


def build(root: Path, *playbooks: str, retained: Any = None, **kw: Any) -> PlaybookSet:
    """A compiled set from inline YAML; fails the test with every problem if it does not load."""
    result = load(write_set(root, *playbooks, **kw), retained=retained)
    assert result.pset is not None, "\n".join(str(p) for p in result.problems)
    return result.pset


def shipped(root: Path, *files: str) -> PlaybookSet:
    """A set made of some of the shipped files (with the shipped templates)."""
    root.mkdir(parents=True, exist_ok=True)
    for name in files:
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SHIPPED / name, target)
    shutil.copytree(SHIPPED / "templates", root / "templates", dirs_exist_ok=True)
    result = load_playbook_set([root])
    assert result.pset is not None, "\n".join(str(p) for p in result.problems)
    return result.pset


# -- events ----------------------------------------------------------------------------------

_seq = 0


def _mid() -> str:
    global _seq
    _seq += 1
    return f"msg_{_seq}"


def track(name: str, ts: float, mid: str | None = None, user: str | None = None, **props: Any):
    return Event("track", mid or _mid(), ts, "acme", user, name=name, properties=props)


def identify(user: str, ts: float, mid: str | None = None, **traits: Any) -> Event:
    return Event("identify", mid or _mid(), ts, "acme", user, traits=traits)


def group(ts: float, mid: str | None = None, **traits: Any) -> Event:
    return Event("group", mid or _mid(), ts, "acme", traits=traits)


def timer_event(timer_id: str, generation: int, due: float) -> Event:
    return Event(
        TIMER, f"timer:{timer_id}:{generation}", due, timer=TimerFiring(timer_id, generation, due)
    )


# -- the driver ------------------------------------------------------------------------------


@dataclass
class Driver:
    """Applies events and fires the account's timers at their due times, in order."""

    pset: PlaybookSet
    now: float = T0
    state: AccountState = field(default_factory=lambda: new_account("acme", T0))
    log: list[Effects] = field(default_factory=list)
    fired: list[tuple[str, float]] = field(default_factory=list)

    def apply(self, event: Event, now: float | None = None) -> Effects:
        """Fire timers due up to ``now`` (default: the event's time), then apply ``event``."""
        at = event.ts if now is None else now
        self.run_until(at)
        self.now = max(self.now, at)
        effects = apply(self.state, event, self.now, self.pset)
        self.log.append(effects)
        return effects

    def send(self, *events: Event) -> Effects:
        """Apply several events; the effects of all of them."""
        total = Effects()
        for event in events:
            total.extend(self.apply(event))
        return total

    def run_until(self, until: float, limit: int = 10_000) -> Effects:
        """Fire, earliest first, every timer due at or before ``until``."""
        total = Effects()
        for _ in range(limit):
            due = [(t.due, tid) for tid, t in self.state.timers.items() if t.due <= until]
            if not due:
                break
            when, timer_id = min(due)
            generation = self.state.timers[timer_id].generation
            self.now = max(self.now, when)
            self.fired.append((timer_id, when))
            effects = apply(
                self.state, timer_event(timer_id, generation, when), self.now, self.pset
            )
            self.log.append(effects)
            total.extend(effects)
        else:  # pragma: no cover - a runaway timer loop is a bug in the core
            raise AssertionError(f"more than {limit} timer firings before {until}")
        self.now = max(self.now, until)
        return total

    def advance(self, seconds: float) -> Effects:
        return self.run_until(self.now + seconds)

    # -- what happened ---------------------------------------------------------------------

    def actions(self, playbook: str | None = None, kind: str | None = None) -> list[ActionEffect]:
        return [
            a
            for e in self.log
            for a in e.actions
            if (playbook is None or a.playbook == playbook) and (kind is None or a.type == kind)
        ]

    def misses(self, playbook: str | None = None) -> list[NearMiss]:
        return [m for e in self.log for m in e.near_misses if playbook in (None, m.playbook)]

    def stage_changes(self) -> list[StageChange]:
        return [c for e in self.log for c in e.stage_changes]

    def stage(self, track: str = "life.lifecycle") -> str | None:
        current = self.state.tracks.get(track)
        return current.stage if current else None

    def fired_at(self, prefix: str) -> list[float]:
        return [when for timer_id, when in self.fired if timer_id.startswith(prefix)]


def reasons(misses: Iterable[NearMiss]) -> list[str]:
    return [m.reason for m in misses]


def at(text: str) -> float:
    """Epoch seconds of an ISO time (``Z`` or an offset)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
