"""Every example playbook on its hand-made timeline (tests/fixtures/timelines/<id>.jsonl):
``simulate`` gives the expected actions at the expected virtual times.

Each fixture is a few accounts: one that should get the play, and ones that take another
branch or should get nothing. Other playbooks may fire on the same timeline (every account
with no usage is red, so the Monday digest fires for most): each test looks at its own
playbook's actions, and says what must *not* happen.
"""

# ruff: noqa: E501  (the expected actions are tables: one action per line)

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.core.clock import to_epoch
from engine.core.loader import load_playbook_set
from engine.core.playbook_set import PlaybookSet
from engine.runtime.simulate import SimulationResult, simulate

ROOT = Path(__file__).resolve().parents[2]
TIMELINES = ROOT / "tests" / "fixtures" / "timelines"
PLAYBOOK_IDS = [
    "onboarding-stalled", "onboarding-complete", "renewal-cadence", "champion-left",
    "nps-detractor", "nps-promoter-review", "low-adoption", "usage-drop", "expansion-signal",
    "churned", "health-red", "weekly-red-digest", "evaluation-stalled", "welcome-customer",
]  # fmt: skip
#: The payload fields that identify an action of each type in the expected lists.
KEY_FIELDS = {
    "task": ("title",),
    "email": ("to", "subject"),
    "slack": ("destination", "text"),
    "webhook": ("destination", "body"),
    "set_flag": ("name", "expires"),
    "clear_flag": ("name",),
    "set_trait": ("name", "value"),
    "move_stage": ("track", "stage"),
    "adjust_health": ("by", "expires"),
}

Row = tuple[Any, ...]


@pytest.fixture(scope="module")
def pset() -> PlaybookSet:
    loaded = load_playbook_set([ROOT / "playbooks"])
    assert loaded.pset is not None, loaded.problems
    return loaded.pset


def run(
    pset: PlaybookSet, name: str, until: str | None = None
) -> tuple[list[dict], SimulationResult]:
    """Simulate one fixture; its actions as ``actions.jsonl`` records, and the result."""
    buffer = io.BytesIO()
    end = to_epoch(datetime.fromisoformat(until)) if until else None
    result = simulate(pset, TIMELINES / f"{name}.jsonl", until=end, out=buffer)
    assert result.bad_lines == []
    return [orjson.loads(line) for line in buffer.getvalue().splitlines()], result


def rows(actions: list[dict], playbook: str) -> list[Row]:
    """(time, account, type, key fields...) of one playbook's actions, by time then account."""
    out = [
        (a["time"], a["account"], a["type"], *(a["payload"][f] for f in KEY_FIELDS[a["type"]]))
        for a in actions
        if a["playbook"] == playbook
    ]
    return sorted(out, key=lambda r: (r[0], r[1]))  # stable: an account's actions keep order


def of(actions: list[dict], playbook: str, account: str) -> list[dict]:
    return [a for a in actions if a["playbook"] == playbook and a["account"] == account]


def tasks(actions: list[dict], playbook: str, account: str | None = None) -> list[Row]:
    """(assignee_email, priority, due) of a playbook's tasks, for one account or all."""
    return [
        (a["payload"]["assignee_email"], a["payload"]["priority"], a["payload"]["due"])
        for a in actions
        if a["playbook"] == playbook and a["type"] == "task" and account in (None, a["account"])
    ]


def test_every_playbook_has_a_timeline(pset: PlaybookSet) -> None:
    assert sorted(p.id for p in pset.playbooks) == sorted(PLAYBOOK_IDS)
    for playbook_id in PLAYBOOK_IDS:
        assert (TIMELINES / f"{playbook_id}.jsonl").is_file(), playbook_id


def test_onboarding_stalled(pset: PlaybookSet) -> None:
    # acme (mid-market, renews 2026-04-30) stalls; initech is smb; globex connects on day 10;
    # umbrella (enterprise, renews in December) stalls, then connects on day 17.
    actions, _ = run(pset, "onboarding-stalled")
    assert rows(actions, "onboarding-stalled") == [
        ("2026-01-19T10:00:00Z", "acme", "set_flag", "renewal_risk", None),
        ("2026-01-19T10:00:00Z", "acme", "move_stage", "flywheel.renewal", "at_risk"),
        ("2026-01-19T10:00:00Z", "acme", "task", "Onboarding stalled at Acme: no integration after 14 days"),
        ("2026-01-19T10:00:00Z", "acme", "task", "Renewal within 120 days and onboarding stalled: Acme"),
        ("2026-01-19T13:00:00Z", "umbrella", "set_flag", "renewal_risk", None),
        ("2026-01-19T13:00:00Z", "umbrella", "move_stage", "flywheel.renewal", "at_risk"),
        ("2026-01-19T13:00:00Z", "umbrella", "task", "Onboarding stalled at Umbrella: no integration after 14 days"),
        ("2026-01-26T10:00:00Z", "acme", "slack", "cs-alerts", "Acme is still not integrated 21 days into onboarding."),
    ]  # fmt: skip
    assert tasks(actions, "onboarding-stalled", "acme") == [
        ("cara@hourglass.test", "high", "2026-01-21T10:00:00Z"),
        ("alex@hourglass.test", "urgent", "2026-01-21T10:00:00Z"),
    ]
    notes = [a["payload"]["notes"] for a in actions if a["payload"].get("notes")]
    assert notes == ["Champion: pat@acme.test", "Champion: none on file"]
    # Connecting ends onboarding: the risk it raised is cleared right away.
    assert [(a["time"], a["type"]) for a in of(actions, "onboarding-complete", "umbrella")] == [
        ("2026-01-22T13:00:00Z", "clear_flag"),
        ("2026-01-22T13:00:00Z", "set_trait"),
    ]


def test_onboarding_complete(pset: PlaybookSet) -> None:
    # hooli connects on day 4; vandelay connects straight from conversion (never onboarding).
    actions, _ = run(pset, "onboarding-complete")
    hooli = [r for r in rows(actions, "onboarding-complete") if r[1] != "pied-piper"]
    assert hooli == [
        ("2026-02-06T15:00:00Z", "hooli", "clear_flag", "renewal_risk"),
        ("2026-02-06T15:00:00Z", "hooli", "set_trait", "onboarding_status", "complete"),
        ("2026-02-06T15:00:00Z", "hooli", "email", "dana@hooli.test", "You're live on Hooli: what's next"),
    ]  # fmt: skip
    email = of(actions, "onboarding-complete", "hooli")[2]["payload"]
    assert email["html"] is True
    assert "20 seats are ready" in email["body"]
    assert "<p>Cara</p>" in email["body"]


def test_onboarding_complete_not_on_churn(pset: PlaybookSet) -> None:
    # pied-piper cancels during onboarding: leaving onboarding for churned is not going live.
    # Fails today: onboarding-complete fires on any stage_exited onboarding (see the report).
    actions, _ = run(pset, "onboarding-complete")
    assert [r[2] for r in rows(actions, "churned") if r[1] == "pied-piper"] == [
        "webhook", "slack", "clear_flag",
    ]  # fmt: skip
    assert of(actions, "onboarding-complete", "pied-piper") == []


def test_renewal_cadence(pset: PlaybookSet) -> None:
    # stark: nothing moves (the renewal window opening is not progress) -> all four steps.
    # wayne (Europe/Berlin): a renewal call at T-82 -> no escalation at T-60.
    # cyberdyne: signs at T-87 -> the sequence stops after T-90.
    actions, _ = run(pset, "renewal-cadence")
    got = [r for r in rows(actions, "renewal-cadence") if r[1] != "dunmore"]
    assert got == [
        ("2026-06-02T07:00:00Z", "wayne", "task", "Prepare the business review for Wayne (renews 2026-09-30)"),
        ("2026-06-02T09:00:00Z", "stark", "task", "Prepare the business review for Stark (renews 2026-09-30)"),
        ("2026-06-17T09:00:00Z", "cyberdyne", "task", "Prepare the business review for Cyberdyne (renews 2026-10-15)"),
        ("2026-07-02T07:00:00Z", "wayne", "email", "lucius@wayne.test", "Your growth plan renews on September 30"),
        ("2026-07-02T09:00:00Z", "stark", "email", "pepper@stark.test", "Your enterprise plan renews on September 30"),
        ("2026-07-17T09:00:00Z", "cyberdyne", "email", "miles@cyberdyne.test", "Your starter plan renews on October 15"),
        ("2026-08-01T09:00:00Z", "stark", "move_stage", "flywheel.renewal", "at_risk"),
        ("2026-08-01T09:00:00Z", "stark", "task", "Escalate: Stark renewal has not moved at T-60"),
        ("2026-08-01T09:00:00Z", "stark", "webhook", "crm", {"account_id": "stark", "renewal_risk": "true", "reason": "no renewal progress at T-60"}),
        ("2026-08-31T07:00:00Z", "wayne", "slack", "renewals", "Wayne renews in 30 days ($5,000.00 MRR); renewal stage: in_progress"),
        ("2026-08-31T09:00:00Z", "stark", "slack", "renewals", "Stark renews in 30 days ($12,000.00 MRR); renewal stage: at_risk"),
    ]  # fmt: skip
    # 1 August 2026 is a Saturday: one business day from a weekend counts from Monday.
    assert tasks(actions, "renewal-cadence", "stark") == [
        ("cara@hourglass.test", "normal", "2026-06-16T09:00:00Z"),
        ("alex@hourglass.test", "urgent", "2026-08-04T09:00:00Z"),
    ]
    email = of(actions, "renewal-cadence", "stark")[1]["payload"]
    assert "Your enterprise plan renews on September 30, 2026." in email["body"]


def test_renewal_cadence_date_trigger_keeps_local_time_across_dst(pset: PlaybookSet) -> None:
    # dunmore (America/New_York) renews 2026-12-01 (EST); T-120 falls in August (EDT):
    # "09:00" is 09:00 on the New York wall clock, 13:00 UTC.
    actions, _ = run(pset, "renewal-cadence")
    dunmore = [r[:3] for r in rows(actions, "renewal-cadence") if r[1] == "dunmore"][:2]
    assert dunmore == [
        ("2026-08-03T13:00:00Z", "dunmore", "task"),
        ("2026-09-02T13:00:00Z", "dunmore", "email"),
    ]


def test_champion_left(pset: PlaybookSet) -> None:
    # soylent: the admin is deactivated (nothing), then the champion (play), then the champion's
    # email bounces within the cooldown (nothing). tyrell: a billing contact's email bounces
    # (nothing), then the champion's (play).
    actions, _ = run(pset, "champion-left")
    assert rows(actions, "champion-left") == [
        ("2026-03-03T10:00:00Z", "soylent", "task", "Champion left Soylent: re-map stakeholders"),
        ("2026-03-03T10:00:00Z", "soylent", "set_flag", "single_threaded", None),
        ("2026-03-03T10:00:00Z", "soylent", "set_flag", "pause_advocacy", "2026-05-02T10:00:00Z"),
        ("2026-03-03T10:00:00Z", "soylent", "adjust_health", -15, "2026-05-02T10:00:00Z"),
        ("2026-03-05T11:00:00Z", "tyrell", "task", "Champion left Tyrell: re-map stakeholders"),
        ("2026-03-05T11:00:00Z", "tyrell", "set_flag", "single_threaded", None),
        ("2026-03-05T11:00:00Z", "tyrell", "set_flag", "pause_advocacy", "2026-05-04T11:00:00Z"),
        ("2026-03-05T11:00:00Z", "tyrell", "adjust_health", -15, "2026-05-04T11:00:00Z"),
    ]  # fmt: skip
    # Tuesday + 3 business days is Friday; Thursday + 3 is the next Tuesday.
    assert tasks(actions, "champion-left") == [
        ("cara@hourglass.test", "high", "2026-03-06T10:00:00Z"),
        ("cara@hourglass.test", "high", "2026-03-10T11:00:00Z"),
    ]


def test_nps_detractor(pset: PlaybookSet) -> None:
    # massive: 4/10 -> call task + 90-day flag; the CSM closes the task; a 10 at day 10 gets no
    # review ask (flag live); a 9 at day 91 does, 7 days later.
    # hanso: 7/10 is passive (nothing); 6/10 is a detractor; a 10 at day 95, with the flag gone
    # but the call task still open, gets no review ask.
    actions, _ = run(pset, "nps-detractor")
    assert rows(actions, "nps-detractor") == [
        ("2026-04-01T10:00:00Z", "massive", "task", "Detractor (4/10) at Massive Dynamic: call within 2 days"),
        ("2026-04-01T10:00:00Z", "massive", "set_flag", "detractor", "2026-06-30T10:00:00Z"),
        ("2026-04-02T11:00:00Z", "hanso", "task", "Detractor (6/10) at Hanso: call within 2 days"),
        ("2026-04-02T11:00:00Z", "hanso", "set_flag", "detractor", "2026-07-01T11:00:00Z"),
    ]  # fmt: skip
    assert tasks(actions, "nps-detractor", "massive") == [
        ("cara@hourglass.test", "high", "2026-04-03T10:00:00Z")
    ]
    assert of(actions, "nps-detractor", "massive")[0]["payload"]["notes"] == "Too slow"
    assert rows(actions, "nps-promoter-review") == [
        ("2026-07-08T10:00:00Z", "massive", "email", "nina@massive.test", "Would you share your experience, Nina?"),
    ]  # fmt: skip


def test_nps_promoter_review(pset: PlaybookSet) -> None:
    # oscorp: a 9 -> review ask 7 days later; leaves a review; a 10 within 180 days -> nothing.
    # dunder: a 10, then a 3 two days later -> the wait ends on exit_if: no review ask.
    actions, _ = run(pset, "nps-promoter-review")
    assert rows(actions, "nps-promoter-review") == [
        ("2026-04-08T10:00:00Z", "oscorp", "email", "otto@oscorp.test", "Would you share your experience, Otto?"),
    ]  # fmt: skip
    body = of(actions, "nps-promoter-review", "oscorp")[0]["payload"]["body"]
    assert body.startswith("Hi Otto,") and "what\nOscorp gets out of it" in body
    assert rows(actions, "nps-detractor") == [
        ("2026-04-03T10:00:00Z", "dunder", "task", "Detractor (3/10) at Dunder Mifflin: call within 2 days"),
        ("2026-04-03T10:00:00Z", "dunder", "set_flag", "detractor", "2026-07-02T10:00:00Z"),
    ]  # fmt: skip


def test_low_adoption(pset: PlaybookSet) -> None:
    # Live 2026-02-02: the play starts 30 days later at 10:00. nakatomi stays at 20%;
    # virtucon reaches 64% on day 34 (exit); gringotts reaches 45% on day 35 (no webinar on
    # day 37) and falls back to 30% on day 40 (task on day 44); monarch is at 50% (no start).
    actions, _ = run(pset, "low-adoption")
    assert rows(actions, "low-adoption") == [
        ("2026-03-04T10:00:00Z", "gringotts", "email", "griphook@gringotts.test", "Getting your whole team onto Gringotts's workspace"),
        ("2026-03-04T10:00:00Z", "nakatomi", "email", "holly@nakatomi.test", "Getting your whole team onto Nakatomi's workspace"),
        ("2026-03-04T10:00:00Z", "virtucon", "email", "frau@virtucon.test", "Getting your whole team onto Virtucon's workspace"),
        ("2026-03-11T10:00:00Z", "nakatomi", "email", "holly@nakatomi.test", "Live onboarding webinar: this Thursday"),
        ("2026-03-18T10:00:00Z", "gringotts", "task", "Adoption still under 40% at Gringotts (12/40 seats)"),
        ("2026-03-18T10:00:00Z", "nakatomi", "task", "Adoption still under 40% at Nakatomi (20/100 seats)"),
    ]  # fmt: skip
    training, webinar, _ = (a["payload"] for a in of(actions, "low-adoption", "nakatomi"))
    assert training["html"] is True and "20 of 100 seats are active" in training["body"]
    assert webinar["html"] is False and "20 of 100 seats are active" in webinar["body"]
    assert tasks(actions, "low-adoption", "nakatomi") == [
        ("cara@hourglass.test", "normal", "2026-03-20T10:00:00Z")
    ]


def test_usage_drop_is_a_dry_run(pset: PlaybookSet) -> None:
    # wonka (adoption): 3 logins on 3 March drop out of the 7-day window at 11 March 00:00;
    # 2 logins on 16 March drop out on 24 March, inside the 14-day cooldown (nothing);
    # 2 on 30 March drop out on 7 April. bluth is still in onboarding (nothing).
    actions, result = run(pset, "usage-drop")
    assert rows(actions, "usage-drop") == [
        ("2026-03-11T00:00:00Z", "wonka", "email", "charlie@wonka.test", "We haven't seen your team in a while"),
        ("2026-04-07T00:00:00Z", "wonka", "email", "charlie@wonka.test", "We haven't seen your team in a while"),
    ]  # fmt: skip
    drops = of(actions, "usage-drop", "wonka")
    assert {a["mode"] for a in drops} == {"dry_run"}
    assert "only 0 logins this week" in drops[0]["payload"]["body"]
    # Recorded, never delivered: nothing reached the outbox.
    assert [result.runner.store.delivery(a["idempotency_key"]) for a in drops] == [None, None]
    live = [a for a in actions if a["mode"] == "live" and a["type"] in ("email", "slack")]
    assert live and all(result.runner.store.delivery(a["idempotency_key"]) for a in live)


def test_churned_ends_everything(pset: PlaybookSet) -> None:
    # sirius: renewal cadence started (T-120 on 2 June), low adoption due 1 July, a Monday
    # digest every week; cancels on 10 June 12:00 -> churn play, then nothing ever again.
    actions, result = run(pset, "churned")
    churn = "2026-06-10T12:00:00Z"
    assert rows(actions, "churned") == [
        (churn, "sirius", "webhook", "crm", {"account_id": "sirius", "status": "churned", "mrr_lost": "4200.0"}),
        (churn, "sirius", "slack", "cs-alerts", "Sirius churned ($4,200.00 MRR)."),
        (churn, "sirius", "clear_flag", "renewal_risk"),
    ]  # fmt: skip
    before = [(a["time"], a["playbook"]) for a in actions if a["playbook"] != "churned"]
    assert ("2026-06-02T09:00:00Z", "renewal-cadence") in before
    assert ("2026-06-08T13:00:00Z", "weekly-red-digest") in before
    assert max(a["time"] for a in actions) == churn
    state = result.runner.store.load(["sirius"])["sirius"]
    assert state.tracks["flywheel.lifecycle"].stage == "churned"
    assert state.timers == {}
    assert all(book.run is None for book in state.books.values())


def test_expansion_signal(pset: PlaybookSet) -> None:
    # prestige: 50% (nothing); active_seats alone (filter: both traits in the call); 95/100
    # (play); 98/100 two weeks later (cooldown). cogswell: exactly 90% (nothing).
    # spacely: 96%, but onboarding stalled and flagged renewal_risk two days earlier (unless).
    actions, _ = run(pset, "expansion-signal")
    assert rows(actions, "expansion-signal") == [
        ("2026-04-20T09:00:00Z", "prestige", "task", "Expansion: Prestige uses 95 of 100 seats"),
        ("2026-04-20T09:00:00Z", "prestige", "webhook", "crm", {"account_id": "prestige", "signal": "seat_usage_over_90", "seats": "100"}),
    ]  # fmt: skip
    assert tasks(actions, "expansion-signal") == [
        ("alex@hourglass.test", "normal", "2026-04-27T09:00:00Z")
    ]
    flagged = [(a["time"], a["type"]) for a in of(actions, "onboarding-stalled", "spacely")]
    assert ("2026-04-20T10:00:00Z", "set_flag") in flagged


def test_health_red(pset: PlaybookSet) -> None:
    # duff (adoption, NPS 6): 4 logins on 3 March lift health to yellow (43.5); they leave the
    # 7-day window at 11 March 00:00 and health falls back to red (27.5): time alone crosses.
    # The same happens on 24 March, inside the 21-day cooldown (nothing). krusty does the
    # same in a pre-purchase stage (nothing).
    actions, _ = run(pset, "health-red")
    assert rows(actions, "health-red") == [
        ("2026-03-11T00:00:00Z", "duff", "task", "Health is red at Duff (27.5)"),
        ("2026-03-11T00:00:00Z", "duff", "move_stage", "flywheel.renewal", "at_risk"),
    ]  # fmt: skip
    assert tasks(actions, "health-red") == [("cara@hourglass.test", "high", "2026-03-12T00:00:00Z")]


def test_weekly_red_digest(pset: PlaybookSet) -> None:
    # Mondays 09:00 America/New_York: 14:00 UTC until DST starts (8 March), then 13:00 UTC.
    # vance and zorg are red in onboarding; zorg recovers to yellow on 11 March; kramerica is
    # yellow; bendix is red but pre-purchase.
    actions, _ = run(pset, "weekly-red-digest", until="2026-03-17T00:00:00+00:00")
    assert rows(actions, "weekly-red-digest") == [
        ("2026-03-02T14:00:00Z", "vance", "slack", "cs-alerts", "Still red: Vance (health 20.0, CSM vic@hourglass.test)"),
        ("2026-03-02T14:00:00Z", "zorg", "slack", "cs-alerts", "Still red: Zorg (health 20.0, CSM unassigned)"),
        ("2026-03-09T13:00:00Z", "vance", "slack", "cs-alerts", "Still red: Vance (health 20.0, CSM vic@hourglass.test)"),
        ("2026-03-09T13:00:00Z", "zorg", "slack", "cs-alerts", "Still red: Zorg (health 20.0, CSM unassigned)"),
        ("2026-03-16T13:00:00Z", "vance", "slack", "cs-alerts", "Still red: Vance (health 20.0, CSM vic@hourglass.test)"),
    ]  # fmt: skip
    assert max(a["time"] for a in actions) < "2026-03-17"


def test_evaluation_stalled(pset: PlaybookSet) -> None:
    # bluebook enters the hourglass at evaluation (a demo request) and goes quiet;
    # gekko: research -> evaluation -> another demo request on 12 April restarts the 10 days;
    # ryan-ind has no name (the title falls back to the id); hammer moves on to justification.
    actions, result = run(pset, "evaluation-stalled")
    assert rows(actions, "evaluation-stalled") == [
        ("2026-04-16T10:00:00Z", "bluebook", "task", "Evaluation quiet for 10 days: Bluebook"),
        ("2026-04-16T11:00:00Z", "ryan-ind", "task", "Evaluation quiet for 10 days: ryan-ind"),
        ("2026-04-22T15:00:00Z", "gekko", "task", "Evaluation quiet for 10 days: Gekko"),
    ]  # fmt: skip
    assert tasks(actions, "evaluation-stalled", "bluebook") == [
        ("alex@hourglass.test", "normal", "2026-04-20T10:00:00Z")
    ]
    states = result.runner.store.load(["bluebook", "hammer"])
    bluebook = states["bluebook"].tracks["hourglass.lifecycle"]
    assert (bluebook.stage, bluebook.history) == ("evaluation", [])
    assert states["hammer"].tracks["hourglass.lifecycle"].stage == "justification"


def test_welcome_customer(pset: PlaybookSet) -> None:
    # aperture: justification -> purchase; black-mesa signs with no decision maker on file
    # (the email is skipped, the trait is still set).
    actions, _ = run(pset, "welcome-customer")
    assert rows(actions, "welcome-customer") == [
        ("2026-04-20T11:00:00Z", "aperture", "email", "cave@aperture.test", "Welcome aboard, Cave"),
        ("2026-04-20T11:00:00Z", "aperture", "set_trait", "onboarding_status", "started"),
        ("2026-04-21T11:00:00Z", "black-mesa", "set_trait", "onboarding_status", "started"),
    ]  # fmt: skip
    body = of(actions, "welcome-customer", "aperture")[0]["payload"]["body"]
    assert "Cara\nwill send an invitation" in body


@pytest.mark.parametrize("name", PLAYBOOK_IDS)
def test_idempotency_keys_are_unique_and_stable(pset: PlaybookSet, name: str) -> None:
    first, _ = run(pset, name)
    second, _ = run(pset, name)
    keys = [a["idempotency_key"] for a in first]
    assert keys and len(set(keys)) == len(keys)
    assert [a["idempotency_key"] for a in second] == keys
    assert first == second
