"""Tests for engine.kpis: journey and playbook KPIs from hand-built account states."""

from __future__ import annotations

import pytest

from engine.core.effects import ActionEffect
from engine.core.loader import load_playbook_set
from engine.core.playbook_set import PlaybookSet
from engine.core.state import AccountState, PlaybookBook, SequenceRun, StageVisit, TrackState
from engine.kpis import journey_kpis, playbook_kpis

DAY = 86_400.0
NOW = 40 * DAY
LIFE = "flywheel.lifecycle"


@pytest.fixture(scope="module")
def pset() -> PlaybookSet:
    result = load_playbook_set(["playbooks"])
    assert result.pset is not None, result.problems
    return result.pset


def account(
    name: str, stage: str, entered: float, *visits: tuple[str, float, float]
) -> AccountState:
    """An account on the flywheel's lifecycle track: past visits (days), then ``stage``."""
    track = TrackState(
        stage, entered * DAY, [StageVisit(s, a * DAY, b * DAY) for s, a, b in visits]
    )
    return AccountState(account_id=name, created=0.0, tracks={LIFE: track})


@pytest.fixture()
def states() -> list[AccountState]:
    a = account(
        "a",
        "onboarding",
        4,
        ("awareness", 0, 1),
        ("consideration", 1, 3),
        ("conversion", 3, 4),
    )
    a.tracks["flywheel.renewal"] = TrackState("not_due", 3 * DAY)
    b = account("b", "consideration", 2, ("awareness", 0, 2))
    c = account("c", "awareness", 10)
    # Back from consideration to awareness, then consideration again: never further.
    d = account("d", "consideration", 6, ("consideration", 0, 5), ("awareness", 5, 6))
    e = account("e", "onboarding", 35)
    f = account("f", "churned", 20, ("adoption", 10, 20))
    g = AccountState(account_id="g", created=0.0)  # on no track at all
    return [a, b, c, d, e, f, g]


def test_accounts_per_stage_on_the_primary_track(
    pset: PlaybookSet, states: list[AccountState]
) -> None:
    kpis = journey_kpis(pset, states, NOW)["flywheel"]
    counts = {s.stage: s.accounts for s in kpis.stages}
    assert counts == {
        "awareness": 1,
        "consideration": 2,
        "conversion": 0,
        "onboarding": 2,
        "adoption": 0,
        "renewal": 0,
        "expansion": 0,
        "advocacy": 0,
        "churned": 1,
        "lost": 0,
    }
    assert kpis.accounts == 6
    assert kpis.primary == "lifecycle"


def test_other_tracks_are_counted_in_stage_order(
    pset: PlaybookSet, states: list[AccountState]
) -> None:
    renewal = journey_kpis(pset, states, NOW)["flywheel"].tracks["renewal"]
    assert list(renewal) == [
        "not_due",
        "upcoming",
        "in_progress",
        "at_risk",
        "committed",
        "renewed",
        "churned",
    ]
    assert renewal["not_due"] == 1
    assert sum(renewal.values()) == 1


def test_journeys_without_accounts_report_zeros(
    pset: PlaybookSet, states: list[AccountState]
) -> None:
    hourglass = journey_kpis(pset, states, NOW)["hourglass"]
    assert hourglass.accounts == 0
    purchase = hourglass.stage("purchase")
    assert purchase.median_days_current is None
    assert purchase.median_days_completed is None
    assert purchase.conversion is None
    assert purchase.to_stage["adoption"] == 0.0


def test_median_days_for_current_and_completed_visits(
    pset: PlaybookSet, states: list[AccountState]
) -> None:
    kpis = journey_kpis(pset, states, NOW)["flywheel"]
    assert kpis.stage("onboarding").median_days_current == pytest.approx((36 + 5) / 2)
    assert kpis.stage("consideration").median_days_current == pytest.approx((38 + 34) / 2)
    # awareness visits that ended: a 1 day, b 2 days, d 1 day
    assert kpis.stage("awareness").median_days_completed == pytest.approx(1.0)
    # consideration visits that ended: a 2 days, d 5 days
    assert kpis.stage("consideration").median_days_completed == pytest.approx(3.5)
    assert kpis.stage("adoption").median_days_completed == pytest.approx(10.0)
    assert kpis.stage("onboarding").median_days_completed is None


def test_conversion_counts_later_stages_after_the_first_visit(
    pset: PlaybookSet, states: list[AccountState]
) -> None:
    kpis = journey_kpis(pset, states, NOW)["flywheel"]
    awareness = kpis.stage("awareness")
    assert (awareness.entered, awareness.progressed) == (4, 3)  # a, b, c, d; c went nowhere
    assert awareness.conversion == pytest.approx(0.75)
    assert awareness.to_stage["consideration"] == pytest.approx(0.75)
    assert awareness.to_stage["conversion"] == pytest.approx(0.25)
    assert "churned" not in awareness.to_stage  # outcomes are not conversion
    consideration = kpis.stage("consideration")
    # a went on; b sits there; d went back to awareness and returned, which is not onward
    assert (consideration.entered, consideration.progressed) == (3, 1)
    assert consideration.conversion == pytest.approx(1 / 3)
    churned = kpis.stage("churned")
    assert churned.entered == 1
    assert churned.conversion is None


def test_stalled_accounts_exceed_the_stage_limit(
    pset: PlaybookSet, states: list[AccountState]
) -> None:
    kpis = journey_kpis(pset, states, NOW)["flywheel"]
    onboarding = kpis.stage("onboarding")
    assert onboarding.stalled_after == "30d"
    assert onboarding.stalled == 1  # a: 36 days; e: 5 days
    assert kpis.stage("consideration").stalled == 0  # no limit on this stage
    assert kpis.stalled == 1
    later = journey_kpis(pset, states, 66 * DAY)["flywheel"]
    assert later.stage("onboarding").stalled == 2


def test_playbook_kpis_sum_books_and_actions(pset: PlaybookSet) -> None:
    one = AccountState(account_id="a", created=0.0)
    one.books["onboarding-stalled"] = PlaybookBook(
        fired=2, goals=1, run=SequenceRun("occ", 1, 2, 0.0)
    )
    two = AccountState(account_id="b", created=0.0)
    two.books["onboarding-stalled"] = PlaybookBook(fired=1)
    two.books["usage-drop"] = PlaybookBook(fired=4)

    def act(playbook: str, kind: str, mode: str = "live") -> ActionEffect:
        return ActionEffect("k", 0.0, "a", playbook, 1, kind, mode, {}, "0")

    actions = [
        act("onboarding-stalled", "task"),
        act("onboarding-stalled", "task"),
        act("onboarding-stalled", "set_flag"),
        act("usage-drop", "email", "dry_run"),
    ]
    kpis = {k.playbook: k for k in playbook_kpis(pset, [one, two], actions)}
    assert [k.playbook for k in playbook_kpis(pset, [], [])] == [p.id for p in pset.playbooks]
    stalled = kpis["onboarding-stalled"]
    assert (stalled.fired, stalled.goals, stalled.in_sequence, stalled.actions) == (3, 1, 1, 3)
    assert stalled.by_type == {"task": 2, "set_flag": 1}
    assert stalled.by_mode == {"live": 3}
    assert stalled.has_goal
    drop = kpis["usage-drop"]
    assert (drop.fired, drop.mode, drop.by_mode, drop.has_goal) == (
        4,
        "dry_run",
        {"dry_run": 1},
        False,
    )
    quiet = kpis["churned"]
    assert (quiet.fired, quiet.actions, quiet.by_type, quiet.in_sequence) == (0, 0, {}, 0)
