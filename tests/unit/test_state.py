"""Account state: a faithful round trip through its stored form, bounded lists, and its size."""

from __future__ import annotations

import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
from corekit import DAY, HOUR, SHIPPED, T0, Driver, build, group, identify, track

from engine.core.loader import load_playbook_set
from engine.core.playbook_set import PlaybookSet
from engine.core.state import (
    COMPRESSED,
    HEALTH_HISTORY,
    MAX_CONTACTS,
    MAX_FLAGS,
    MAX_OPEN_TASKS,
    MAX_TRAITS,
    STAGE_HISTORY,
    ZSTD_MAGIC,
    AccountState,
    Contact,
    PlaybookBook,
    SequenceRun,
    Timer,
)

BUDGET = 1024


def shipped_set() -> PlaybookSet:
    pset = load_playbook_set([SHIPPED]).pset
    assert pset is not None
    return pset


def busy_account(days: int = 60) -> Driver:
    """A mid-market customer on the shipped playbooks, with a few weeks of daily use."""
    d = Driver(shipped_set())
    d.apply(
        group(
            T0,
            name="Acme Corp",
            plan="growth",
            segment="mid_market",
            mrr=4200,
            seats=50,
            active_seats=31,
            renewal_date="2026-12-31",
            go_live_date="2026-02-15",
            timezone="America/New_York",
            csm_email="dana@vendor.io",
            ae_email="sam@vendor.io",
        )
    )
    d.apply(identify("u1", T0 + 1, email="cleo@acme.io", role="champion", name="Cleo"))
    d.apply(identify("u2", T0 + 2, email="dev@acme.io", role="decision_maker", name="Dev"))
    d.apply(identify("u3", T0 + 3, email="ada@acme.io", role="admin", name="Ada"))
    d.send(
        track("trial_started", T0 + DAY),
        track("subscription_started", T0 + 3 * DAY),
        track("kickoff_completed", T0 + 5 * DAY),
    )
    for day in range(6, days):
        ts = T0 + day * DAY + 15 * HOUR
        d.apply(track("login", ts, user="u1"))
        if day % 3 == 0:
            d.apply(track("report_created", ts + 60, user="u3"))
        d.apply(track("api_used", ts + 120, calls=140))
        if day == 20:
            d.apply(track("integration_connected", ts + 200))
        if day == 40:
            d.apply(track("nps_submitted", ts + 300, score=4, user="u1"))
    return d


# -- round trip ----------------------------------------------------------------------------


def test_round_trip_keeps_everything() -> None:
    d = busy_account()
    state = d.state
    assert state.tracks and state.metrics and state.contacts and state.timers
    assert state.tasks and state.books and state.health_history and state.flags
    state.dead_letters = 2
    state.contacts["u2"].bounced = True
    state.contacts["u3"].active = False
    assert AccountState.from_dict(state.to_dict()) == state
    again = AccountState.loads(state.dumps())
    assert again == state
    assert again.dumps() == state.dumps()


def test_round_trip_keeps_a_running_sequence_and_its_marks(tmp_path: Path) -> None:
    steps = """
kind: playbook
id: seq
name: seq
journey: life
triggers: [{event: start}, {metric: {name: logins_7d, above: 1}}]
steps:
  - actions: [{adjust_health: {by: -5, ttl: 3d}}, {set_flag: {name: x, ttl: 2d}}]
  - wait: 3d
  - actions: [{set_flag: y}]
goal: {event: done, within: 10d}
"""
    d = Driver(build(tmp_path, steps))
    d.send(track("login", T0), track("start", T0 + 1))
    state = d.state
    assert state.books["seq"].run is not None and state.books["seq"].marks == {1: 0.0}
    assert state.adjustments and state.flags["x"] > 0
    reloaded = AccountState.loads(state.dumps())
    assert reloaded == state
    assert reloaded.books["seq"].run == state.books["seq"].run


def test_a_reloaded_state_behaves_like_the_original() -> None:
    d = busy_account()
    start = d.now
    copy = Driver(d.pset, now=start, state=AccountState.loads(d.state.dumps()))
    for driver in (d, copy):
        driver.apply(track("login", start + DAY, mid="m-after", user="u1"))
        driver.run_until(start + 30 * DAY)
    assert [a.key for a in copy.actions()] == [a.key for a in d.actions()[-len(copy.actions()) :]]
    assert copy.fired == d.fired[-len(copy.fired) :]
    assert copy.fired  # timers did fire after the reload
    assert copy.state.to_dict() == d.state.to_dict()


# -- the older stored form ----------------------------------------------------------------

#: A state as the JSON form stored it (the benchmark's first account after three events).
OLD_FORM = (
    b'{"id":"acct-0","c":1796643667.2455025,"l":1796643667.245,"t":{"name":"Account 0",'
    b'"plan":"growth","mrr":2221,"journey":"flywheel"},"f":{"adopted_13":0,"power_f1":1799235667},'
    b'"m":{"logins_7d":[20794,1],"logins_30d":[20790,2,0,0,1]},'
    b'"h":[25.3,[[1796643667.2455025,20],[1796643667.2455025,25.3]]],'
    b'"p":{"u-0":["champion@acct-0.example","champion",null,"champion",1796643667.245,true,false]},'
    b'"tm":{"trg:renewal-cadence:0":[1,1811926800],"win":[3,1797292800]},"ts":3,'
    b'"b":{"health-red":[0,null,null,0,[0,1]],"gen-20":[0,null,null,0,[0,0]],'
    b'"gen-13":[1,1796643667.2455025],"seq":[1,5,["occ",2,1,7,null],1,[2,1811926800]]}}'
)


def test_states_stored_in_the_older_json_form_still_load() -> None:
    for blob in (OLD_FORM, OLD_FORM.decode(), COMPRESSED + zlib.compress(OLD_FORM, 1)):
        state = AccountState.loads(blob)
        assert state.account_id == "acct-0" and state.last_event == 1796643667.245
        assert state.traits == {
            "name": "Account 0",
            "plan": "growth",
            "mrr": 2221,
            "journey": "flywheel",
        }
        assert state.flags == {"adopted_13": 0, "power_f1": 1799235667}
        assert state.metrics == {"logins_7d": {20794: 1.0}, "logins_30d": {20790: 2.0, 20793: 1.0}}
        assert state.health == 25.3 and state.health_history[-1] == (1796643667.2455025, 25.3)
        assert state.contacts == {
            "u-0": Contact(
                "u-0", "champion@acct-0.example", "champion", None, "champion", 1796643667.245
            )
        }
        assert state.timers["win"] == Timer(3, 1797292800.0) and state.timer_seq == 3
        assert state.books["health-red"] == PlaybookBook(marks={0: 1.0})
        assert state.books["gen-20"] == PlaybookBook(marks={0: 0.0})
        assert state.books["gen-13"] == PlaybookBook(fired=1, last_fired=1796643667.2455025)
        assert state.books["seq"] == PlaybookBook(
            1, 5.0, SequenceRun("occ", 2, 1, 7.0), 1, {2: 1811926800.0}
        )
        assert AccountState.loads(state.dumps()) == state  # and it is stored anew in the new form
        assert AccountState.from_dict(orjson.loads(OLD_FORM)) == state


def test_the_stored_form_is_msgpack_compressed_with_zstd_when_long() -> None:
    blob = busy_account().state.dumps()
    assert blob.startswith(COMPRESSED + ZSTD_MAGIC)
    state = AccountState.loads(OLD_FORM)  # on a live clock: times with fractions of a second
    assert len(state.dumps()) < len(COMPRESSED + zlib.compress(OLD_FORM, 1))
    small = AccountState("a", created=T0)
    assert not small.dumps().startswith(COMPRESSED)  # too short to gain from compression
    assert AccountState.loads(small.dumps()) == small


def test_states_are_stored_and_loaded_from_many_threads_at_once() -> None:
    """The compression contexts are per thread: the API serves requests from a thread pool."""
    states = [busy_account(10 + i).state for i in range(4)]
    blobs = [s.dumps() for s in states]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(5):
            assert list(pool.map(lambda s: s.dumps(), states * 10)) == blobs * 10
            assert list(pool.map(AccountState.loads, blobs * 10)) == states * 10


# -- bounds --------------------------------------------------------------------------------

BACK_AND_FORTH = """
kind: playbook
id: p
name: p
journey: life
triggers: [{event: ping}]
actions:
  - task: {title: "Task {{ event.message_id }}", assignee: csm}
  - adjust_health: {by: -1}
"""


def test_stage_history_is_bounded(tmp_path: Path) -> None:
    d = Driver(build(tmp_path))
    d.send(track("signed_up", T0), track("kickoff", T0 + 1))
    for i in range(20):
        d.apply(track("integrated" if i % 2 == 0 else "kickoff", T0 + 10 + i))
    history = d.state.tracks["life.lifecycle"].history
    assert len(history) == STAGE_HISTORY
    assert history[-1].left == d.state.tracks["life.lifecycle"].entered
    assert [h.stage for h in history[-2:]] == ["onboarding", "adoption"]


def test_contacts_are_bounded_keeping_the_most_recently_seen(tmp_path: Path) -> None:
    d = Driver(build(tmp_path))
    for i in range(MAX_CONTACTS + 5):
        d.apply(identify(f"u{i}", T0 + i, email=f"u{i}@acme.io", role="user"))
    assert len(d.state.contacts) == MAX_CONTACTS
    assert "u0" not in d.state.contacts and "u4" not in d.state.contacts
    assert f"u{MAX_CONTACTS + 4}" in d.state.contacts


def test_open_tasks_and_adjustments_are_bounded(tmp_path: Path) -> None:
    d = Driver(build(tmp_path, BACK_AND_FORTH))
    d.apply(group(T0, csm_email="csm@vendor.io"))
    keys = []
    for i in range(MAX_OPEN_TASKS + 10):
        keys += [a.key for a in d.apply(track("ping", T0 + i)).actions if a.type == "task"]
    assert len(keys) == MAX_OPEN_TASKS + 10
    assert list(d.state.tasks) == keys[-MAX_OPEN_TASKS:]
    assert len(d.state.adjustments) == 8


def test_traits_flags_and_health_history_are_bounded(tmp_path: Path) -> None:
    flags = "\n".join(f"  - set_flag: f{i}" for i in range(MAX_FLAGS + 8))
    setter = f"""
kind: playbook
id: flags
name: flags
journey: life
triggers: [{{event: ping}}]
actions:
{flags}
"""
    d = Driver(build(tmp_path, setter))
    d.apply(group(T0, **{f"x{i}": i for i in range(MAX_TRAITS + 20)}))
    assert len(d.state.traits) == MAX_TRAITS
    d.apply(group(T0 + 1, x0="changed"))  # a known trait still updates when full
    assert d.state.traits["x0"] == "changed"
    d.apply(track("ping", T0 + 2))
    assert len(d.state.flags) == MAX_FLAGS
    for i in range(30):  # the health score changes with every login
        d.apply(track("login", T0 + 10 + i))
    assert len(d.state.health_history) == HEALTH_HISTORY


def test_metric_buckets_stay_within_their_window(tmp_path: Path) -> None:
    d = Driver(build(tmp_path))
    for day in range(200):
        d.apply(track("login", T0 + day * DAY + HOUR))
    assert len(d.state.metrics["logins_7d"]) <= 8
    assert len(d.state.metrics["logins_30d"]) <= 31
    assert d.state.metrics["last_login"] == {0: T0 + 199 * DAY + HOUR}


# -- size ----------------------------------------------------------------------------------


def test_stored_size_does_not_grow_with_history() -> None:
    four_months, two_years = busy_account(120).state, busy_account(730).state
    buckets = {name: len(b) for name, b in four_months.metrics.items()}
    assert buckets == {name: len(b) for name, b in two_years.metrics.items()}
    assert len(two_years.dumps()) <= len(four_months.dumps()) * 1.15


def test_a_busy_account_is_stored_in_under_a_kilobyte() -> None:
    """Compact JSON, deflated: what the Redis store keeps per account."""
    state = busy_account().state
    size = len(state.dumps())
    assert size < BUDGET, f"{size} bytes"
    assert AccountState.loads(state.dumps()) == state
