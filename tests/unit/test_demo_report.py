"""Tests for engine.demo.report and its drawings: what ``hourglass demo`` prints."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime

import pytest
from rich.console import Console

from engine.core.apply import apply, new_account
from engine.core.effects import ActionEffect
from engine.core.events import parse_event, to_core
from engine.core.loader import load_playbook_set
from engine.core.playbook_set import PlaybookSet
from engine.core.state import AccountState, PlaybookBook, StageVisit, TrackState
from engine.demo.drawing import Glyphs, hourglass, wheel
from engine.demo.history import generate
from engine.demo.report import render
from engine.kpis import journey_kpis

DAY = 86_400.0
NOW = 50 * DAY


@pytest.fixture(scope="module")
def pset() -> PlaybookSet:
    result = load_playbook_set(["playbooks"])
    assert result.pset is not None, result.problems
    return result.pset


def on(account: str, **tracks: TrackState) -> AccountState:
    """An account on the given tracks (``flywheel__lifecycle=...`` for ``flywheel.lifecycle``)."""
    state = AccountState(account_id=account, created=0.0)
    state.tracks = {k.replace("__", "."): v for k, v in tracks.items()}
    return state


@pytest.fixture()
def states() -> list[AccountState]:
    onboarding = TrackState("onboarding", 5 * DAY, [StageVisit("conversion", 2 * DAY, 5 * DAY)])
    out = [
        on("a", flywheel__lifecycle=onboarding, flywheel__renewal=TrackState("at_risk", 9 * DAY)),
        on("b", flywheel__lifecycle=TrackState("consideration", 1 * DAY)),
        on("c", hourglass__lifecycle=TrackState("purchase", 3 * DAY)),
        on("d", hourglass__lifecycle=TrackState("purchase", 4 * DAY)),
        on("e", hourglass__lifecycle=TrackState("advocacy", 4 * DAY)),
    ]
    out[0].books["onboarding-stalled"] = PlaybookBook(fired=1, goals=1)
    out[1].books["usage-drop"] = PlaybookBook(fired=2)
    return out


@pytest.fixture()
def actions() -> list[ActionEffect]:
    return [
        ActionEffect("k1", 1.0, "a", "onboarding-stalled", 1, "task", "live", {}, "0"),
        ActionEffect("k2", 1.0, "a", "onboarding-stalled", 1, "set_flag", "live", {}, "0"),
        ActionEffect("k3", 1.0, "b", "usage-drop", 1, "email", "dry_run", {}, "0"),
    ]


def text_of(pset: PlaybookSet, states: list[AccountState], actions: list[ActionEffect]) -> str:
    console = Console(record=True, width=100, file=io.StringIO())
    render(console, pset, states, actions, now=NOW, elapsed_s=1.25)
    return console.export_text()


def all_stage_ids(pset: PlaybookSet) -> set[str]:
    return {s.id for j in pset.journeys.values() for t in j.tracks.values() for s in t.stages}


def test_every_stage_of_both_journeys_is_shown(
    pset: PlaybookSet, states: list[AccountState], actions: list[ActionEffect]
) -> None:
    text = text_of(pset, states, actions)
    assert {"flywheel", "hourglass"} <= set(pset.journeys)
    for stage in all_stage_ids(pset):
        assert re.search(rf"\b{stage}\b", text), stage


def test_drawings_carry_the_counts(
    pset: PlaybookSet, states: list[AccountState], actions: list[ActionEffect]
) -> None:
    text = text_of(pset, states, actions)
    assert re.search(r"purchase 2\b", text)  # an hourglass bar
    assert re.search(r"advocacy 1\b", text)
    assert "SaaS flywheel" in text and "2 accounts" in text  # the wheel's hub
    assert "renewal track" in text
    assert "ran in 1.2 s" in text and "5 accounts" in text


def test_playbook_table_says_what_each_playbook_did(
    pset: PlaybookSet, states: list[AccountState], actions: list[ActionEffect]
) -> None:
    text = text_of(pset, states, actions)
    assert "What the playbooks did" in text
    for playbook in pset.playbooks:
        assert playbook.id in text
    row = next(line for line in text.splitlines() if "onboarding-stalled" in line)
    assert re.search(r"onboarding-stalled\s+1\s+2/0\s+1\s+0\s+task:1, set_flag:1", row), row
    dry = next(line for line in text.splitlines() if "usage-drop" in line)
    assert "(dry)" in dry and "0/1" in dry


def test_kpi_table_shows_medians_and_stalled(
    pset: PlaybookSet, states: list[AccountState], actions: list[ActionEffect]
) -> None:
    text = text_of(pset, states, actions)
    row = next(line for line in text.splitlines() if line.strip().startswith("onboarding "))
    # one account, 45 days in onboarding (limit 30d): stalled
    assert re.search(r"onboarding\s+1\s+45\.0\s+-\s+1\s+0%\s+0%\s+1\b", row), row
    conversion = next(line for line in text.splitlines() if line.strip().startswith("conversion "))
    assert re.search(r"conversion\s+0\s+-\s+3\.0\s+1\s+100%\s+100%", conversion), conversion


def test_plain_80_columns_without_colour_codes(
    pset: PlaybookSet, states: list[AccountState], actions: list[ActionEffect]
) -> None:
    out = io.StringIO()
    console = Console(file=out, width=80, no_color=True, force_terminal=False)
    render(console, pset, states, actions, now=NOW)
    text = out.getvalue()
    assert "\x1b[" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    for stage in all_stage_ids(pset):
        assert stage in text, stage


def test_empty_run_still_draws_everything(pset: PlaybookSet) -> None:
    text = text_of(pset, [], [])
    assert "0 accounts · 0 actions" in text
    for stage in all_stage_ids(pset):
        assert stage in text


def test_hourglass_narrows_to_purchase_and_widens_after(
    pset: PlaybookSet, states: list[AccountState]
) -> None:
    kpis = journey_kpis(pset, states, NOW)["hourglass"]
    rows = [line.plain.strip() for line in hourglass(kpis, 72, Glyphs.pick("utf-8"))]
    widths = [len(row) for row in rows]
    waist = next(i for i, row in enumerate(rows) if " purchase " in row)
    assert widths[: waist + 1] == sorted(widths[: waist + 1], reverse=True)
    assert widths[waist:] == sorted(widths[waist:])
    assert widths[0] > widths[waist] < widths[-1]
    assert rows[0].startswith("\\") and rows[-1].startswith("/")


def test_wheel_places_every_stage_with_arrows(
    pset: PlaybookSet, states: list[AccountState]
) -> None:
    kpis = journey_kpis(pset, states, NOW)["flywheel"]
    lines = [line.plain for line in wheel(kpis, Glyphs.pick("utf-8"))]
    text = "\n".join(lines)
    ring = [s.stage for s in kpis.stages if s.phase != "outcome"]
    assert all(stage in text for stage in ring)
    assert sum(text.count(a) for a in "→↘↓↙←↖↑↗") == len(ring)
    top = next(i for i, line in enumerate(lines) if "awareness" in line)
    bottom = next(i for i, line in enumerate(lines) if "adoption" in line)
    assert top < bottom  # the ring starts at the top and runs clockwise


def test_ascii_glyphs_for_terminals_without_unicode(
    pset: PlaybookSet, states: list[AccountState]
) -> None:
    glyphs = Glyphs.pick("ascii")
    kpis = journey_kpis(pset, states, NOW)
    drawn = hourglass(kpis["hourglass"], 72, glyphs) + wheel(kpis["flywheel"], glyphs)
    assert all(line.plain.isascii() for line in drawn)


def test_report_on_a_generated_history_run_through_the_core(pset: PlaybookSet) -> None:
    start = datetime(2025, 3, 3, tzinfo=UTC)
    states: dict[str, AccountState] = {}
    actions: list[ActionEffect] = []
    for raw in generate(seed=4, accounts=24, days=90, start=start):
        event = to_core(parse_event(raw), 0.0)
        assert event.account_id is not None
        state = states.get(event.account_id) or new_account(event.account_id, event.ts)
        states[event.account_id] = state
        actions += apply(state, event, event.ts, pset).actions
    now = start.timestamp() + 90 * DAY
    text = text_of(pset, list(states.values()), actions)
    assert "24 accounts" in text
    kpis = journey_kpis(pset, states.values(), now)
    assert kpis["flywheel"].accounts > 0 and kpis["hourglass"].accounts > 0
    assert kpis["hourglass"].stage("purchase").entered > 0
    assert actions and "welcome-customer" in text


def test_whole_report_on_an_ascii_only_terminal(
    pset: PlaybookSet, states: list[AccountState], actions: list[ActionEffect]
) -> None:
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="ascii", errors="strict")
    console = Console(file=out, width=80, no_color=True, force_terminal=False)
    render(console, pset, states, actions, now=NOW, elapsed_s=0.5)
    out.flush()
    text = raw.getvalue().decode("ascii")
    assert "purchase 2" in text and "onboarding-stalled" in text
