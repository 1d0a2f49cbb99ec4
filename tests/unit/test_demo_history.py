"""Tests for engine.demo.history: the synthetic Segment history behind ``hourglass demo``."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.core.events import Group, Identify, Track, parse_event
from engine.demo.history import DEFAULT_START, generate, write_jsonl

START = datetime(2025, 3, 3, tzinfo=UTC)
FLYWHEEL_ONLY = {"site_visited", "subscription_started", "kickoff_completed"}
FLYWHEEL_ONLY |= {"integration_connected", "renewal_window_opened", "renewal_call_held"}
HOURGLASS_ONLY = {"content_engaged", "webinar_attended", "comparison_viewed"}
HOURGLASS_ONLY |= {"business_case_requested", "contract_signed", "first_value_reached"}
ACCOUNT_TRAITS = {
    "name",
    "plan",
    "segment",
    "mrr",
    "seats",
    "active_seats",
    "renewal_date",
    "timezone",
    "csm_email",
    "csm_name",
    "ae_email",
    "ae_name",
    "industry",
}


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return generate(seed=11, accounts=120, days=120, start=START)


def by_account(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        grouped[event["context"]["groupId"]].append(event)
    return grouped


def when(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))


def test_same_seed_same_history_other_seed_another() -> None:
    first = generate(seed=5, accounts=15, days=60, start=START)
    assert first == generate(seed=5, accounts=15, days=60, start=START)
    assert first != generate(seed=6, accounts=15, days=60, start=START)


def test_default_size_is_a_few_hundred_accounts_and_tens_of_events_each() -> None:
    events = generate()
    accounts = by_account(events)
    assert len(accounts) == 300
    assert 40 * 300 <= len(events) <= 80 * 300
    assert when(events[0]) >= DEFAULT_START
    assert len({e["messageId"] for e in events}) == len(events)


def test_every_event_parses_as_a_segment_call(events: list[dict[str, Any]]) -> None:
    for event in events:
        call = parse_event(event)
        assert call.timestamp is not None and call.timestamp.tzinfo is not None
        assert call.context["groupId"]
        if isinstance(call, Group):
            assert call.group_id == event["context"]["groupId"]
        assert event["timestamp"].endswith("Z")


def test_timestamps_sorted_and_inside_the_window(events: list[dict[str, Any]]) -> None:
    times = [when(e) for e in events]
    assert times == sorted(times)
    assert times[0] >= START
    assert times[-1] < START + timedelta(days=120)


def test_each_account_opens_with_group_then_contacts(events: list[dict[str, Any]]) -> None:
    for account, calls in by_account(events).items():
        assert calls[0]["type"] == "group", account
        assert set(calls[0]["traits"]) >= ACCOUNT_TRAITS
        contacts = [c for c in calls[1:] if c["type"] == "identify"]
        first_track = next(i for i, c in enumerate(calls) if c["type"] == "track")
        opening = [c for c in calls[1:first_track] if c["type"] == "identify"]
        assert 2 <= len(opening) <= 5, account
        roles = [c["traits"]["role"] for c in opening]
        assert roles[0] == "champion" and roles[1] == "decision_maker"
        known = {c["userId"] for c in contacts}
        assert all(c["userId"] in known for c in calls if c["type"] == "track")


def test_account_traits_are_plausible(events: list[dict[str, Any]]) -> None:
    for calls in by_account(events).values():
        traits = calls[0]["traits"]
        assert traits["plan"] in {"starter", "growth", "enterprise"}
        assert traits["segment"] in {"smb", "mid_market", "enterprise"}
        assert 0 <= traits["active_seats"] <= traits["seats"]
        renewal = date.fromisoformat(traits["renewal_date"])
        assert START.date() + timedelta(days=29) <= renewal <= START.date() + timedelta(days=401)
        assert "@" in traits["csm_email"] and "@" in traits["ae_email"]


def test_both_vocabularies_are_spoken_by_different_halves(events: list[dict[str, Any]]) -> None:
    names: dict[str, set[str]] = defaultdict(set)
    for account, calls in by_account(events).items():
        names[account] = {c["event"] for c in calls if c["type"] == "track"}
    seen = set().union(*names.values())
    assert seen >= FLYWHEEL_ONLY | HOURGLASS_ONLY
    assert not any(n & FLYWHEEL_ONLY and n & HOURGLASS_ONLY for n in names.values())
    flywheel = sum(1 for n in names.values() if n & FLYWHEEL_ONLY)
    hourglass = sum(1 for n in names.values() if n & HOURGLASS_ONLY)
    assert abs(flywheel - hourglass) <= 20


def test_journeys_are_not_linear(events: list[dict[str, Any]]) -> None:
    firsts = Counter()
    for calls in by_account(events).values():
        tracked = [c["event"] for c in calls if c["type"] == "track" and c["event"] != "login"]
        firsts[tracked[0]] += 1
    # accounts enter at several pre-purchase stages, not one
    assert len({"site_visited", "pricing_viewed", "trial_started", "content_engaged"} & set(firsts))
    assert len(firsts) >= 6
    # someone moves back: a pricing/trial event followed later by a site visit
    backs = 0
    for calls in by_account(events).values():
        seq = [c["event"] for c in calls if c["type"] == "track"]
        if "pricing_viewed" in seq and "site_visited" in seq[seq.index("pricing_viewed") :]:
            backs += 1
    assert backs >= 1


def test_the_story_has_the_signals_playbooks_react_to(events: list[dict[str, Any]]) -> None:
    scores = [e["properties"]["score"] for e in events if e.get("event") == "nps_submitted"]
    assert any(s <= 6 for s in scores) and any(s >= 9 for s in scores)
    assert any(e["type"] == "identify" and e["traits"].get("active") is False for e in events)
    emails = {e["traits"]["email"] for e in events if e["type"] == "identify"}
    bounced = [e["properties"]["email"] for e in events if e.get("event") == "email_bounced"]
    assert bounced and set(bounced) <= emails
    groups = [e["traits"] for e in events if e["type"] == "group"]
    assert any(t["active_seats"] > 0.9 * t["seats"] for t in groups)
    counts = Counter(e.get("event") for e in events)
    for name in ("subscription_cancelled", "opportunity_lost", "seats_added", "renewal_signed"):
        assert counts[name] > 0, name
    assert counts["login"] > counts["report_created"] > 0
    assert all(e["properties"]["calls"] > 0 for e in events if e.get("event") == "api_used")


def test_some_bigger_accounts_stall_in_onboarding(events: list[dict[str, Any]]) -> None:
    stalled = 0
    for calls in by_account(events).values():
        if calls[0]["traits"]["segment"] == "smb":
            continue
        kickoff = next((c for c in calls if c.get("event") == "kickoff_completed"), None)
        if kickoff is None or when(kickoff) > START + timedelta(days=90):
            continue
        connected = next((c for c in calls if c.get("event") == "integration_connected"), None)
        if connected is None or when(connected) - when(kickoff) > timedelta(days=14):
            stalled += 1
    assert stalled >= 3


def test_usage_decays_for_churning_accounts(events: list[dict[str, Any]]) -> None:
    churned = 0
    for calls in by_account(events).values():
        cancel = next((c for c in calls if c.get("event") == "subscription_cancelled"), None)
        if cancel is None:
            continue
        churned += 1
        logins = [when(c) for c in calls if c.get("event") == "login" and when(c) < when(cancel)]
        if len(logins) < 10:
            continue
        last_weeks = sum(1 for t in logins if t > when(cancel) - timedelta(days=14))
        assert last_weeks <= len(logins) // 3
    assert churned >= 1


def test_write_jsonl_round_trips(tmp_path: Path) -> None:
    events = generate(seed=2, accounts=4, days=30, start=START)
    path = tmp_path / "history.jsonl"
    assert write_jsonl(events, path) == len(events)
    lines = path.read_bytes().splitlines()
    assert [orjson.loads(line) for line in lines] == events
    assert isinstance(parse_event(orjson.loads(lines[-1])), Track | Identify | Group)
