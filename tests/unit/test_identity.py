"""Account resolution: the identity directory, the parking lot and the router."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine.core.event import Event, TimerFiring
from engine.core.events import parse_event, to_core
from engine.core.identity import IdentityDirectory, ParkingLot, Router, user_keys


def ev(kind: str = "track", mid: str = "m", **fields: Any) -> Event:
    """A core event with sensible defaults."""
    return Event(kind=kind, message_id=mid, ts=fields.pop("ts", 1.0), **fields)


def group(account: str, mid: str = "g", **fields: Any) -> Event:
    """A core group event."""
    return ev("group", mid, account_id=account, **fields)


# --- IdentityDirectory -------------------------------------------------------------------


def test_directory_links_and_relinks() -> None:
    directory = IdentityDirectory()
    assert directory.account_of("u1") is None
    directory.link("u1", "acme")
    directory.link("u1", "globex")
    assert directory.account_of("u1") == "globex"
    assert len(directory) == 1


def test_directory_evicts_least_recently_linked() -> None:
    directory = IdentityDirectory(max_users=2)
    directory.link("u1", "a")
    directory.link("u2", "b")
    directory.link("u1", "a")  # refreshes u1, so u2 is now the oldest
    directory.link("u3", "c")
    assert directory.account_of("u2") is None
    assert directory.account_of("u1") == "a"
    assert directory.account_of("u3") == "c"
    assert directory.evicted == 1
    assert len(directory) == 2


def test_directory_round_trips_through_json() -> None:
    directory = IdentityDirectory(max_users=2)
    for user, account in (("u1", "a"), ("u2", "b"), ("u3", "c")):
        directory.link(user, account)
    copy = IdentityDirectory.from_dict(json.loads(json.dumps(directory.to_dict())))
    assert (copy.max_users, copy.evicted) == (2, 1)
    assert [copy.account_of(u) for u in ("u1", "u2", "u3")] == [None, "b", "c"]
    copy.link("u4", "d")  # eviction order survives the round trip: u2 goes first
    assert copy.account_of("u2") is None and copy.account_of("u3") == "c"


# --- ParkingLot --------------------------------------------------------------------------


def test_parking_releases_in_arrival_order_and_removes() -> None:
    lot = ParkingLot()
    lot.park("u1", ev(mid="1"))
    lot.park("u2", ev(mid="x"))
    lot.park("u1", ev(mid="2"))
    assert lot.parked == 3
    assert [e.message_id for e in lot.release("u1")] == ["1", "2"]
    assert lot.release("u1") == []
    assert lot.parked == 1
    assert lot.users() == ["u2"]


def test_parking_per_user_bound_drops_oldest() -> None:
    lot = ParkingLot(per_user=2)
    for i in range(4):
        lot.park("u1", ev(mid=str(i)))
    lot.park("u2", ev(mid="other"))
    assert (lot.dropped, lot.parked) == (2, 3)
    assert [e.message_id for e in lot.release("u1")] == ["2", "3"]


def test_parking_total_bound_drops_oldest_overall() -> None:
    lot = ParkingLot(per_user=10, max_total=3)
    lot.park("u1", ev(mid="1"))
    lot.park("u2", ev(mid="2"))
    lot.park("u1", ev(mid="3"))
    lot.park("u3", ev(mid="4"))  # drops "1", the oldest of all
    lot.park("u2", ev(mid="5"))  # drops "2", emptying u2, which then parks again
    assert (lot.dropped, lot.parked) == (2, 3)
    assert [e.message_id for e in lot.release("u1")] == ["3"]
    assert [e.message_id for e in lot.release("u2")] == ["5"]
    assert [e.message_id for e in lot.release("u3")] == ["4"]
    assert lot.parked == 0


def test_parking_total_bound_with_one_user() -> None:
    lot = ParkingLot(per_user=10, max_total=1)
    lot.park("u1", ev(mid="1"))
    lot.park("u1", ev(mid="2"))
    assert (lot.dropped, lot.parked) == (1, 1)
    assert [e.message_id for e in lot.release("u1")] == ["2"]


def test_parking_release_all_merges_by_arrival() -> None:
    lot = ParkingLot()
    lot.park("u1", ev(mid="1"))
    lot.park("a1", ev(mid="2"))
    lot.park("u1", ev(mid="3"))
    released = lot.release_all(["u1", "a1", "u1"])
    assert [e.message_id for e in released] == ["1", "2", "3"]
    assert lot.parked == 0


def test_parking_round_trips_through_json() -> None:
    lot = ParkingLot(per_user=2, max_total=10)
    lot.park("u1", ev(mid="1", user_id="u1", properties={"p": 1}))
    lot.park("a1", ev(mid="2", anonymous_id="a1"))
    lot.park("u1", ev(mid="3", user_id="u1"))
    lot.park("u1", ev(mid="4", user_id="u1"))  # drops "1"
    copy = ParkingLot.from_dict(json.loads(json.dumps(lot.to_dict())))
    assert (copy.per_user, copy.max_total, copy.dropped, copy.parked) == (2, 10, 1, 3)
    assert copy.release_all(["u1", "a1"]) == [
        ev(mid="2", anonymous_id="a1"),
        ev(mid="3", user_id="u1"),
        ev(mid="4", user_id="u1"),
    ]
    copy.park("u9", ev(mid="5"))
    assert [e.message_id for e in copy.release("u9")] == ["5"]


# --- Router ------------------------------------------------------------------------------


def test_user_keys() -> None:
    assert user_keys(ev(user_id="u1", anonymous_id="a1")) == ["u1", "a1"]
    assert user_keys(ev(anonymous_id="a1")) == ["a1"]
    assert user_keys(ev()) == []


def test_event_with_account_is_returned_as_is_and_links_its_user() -> None:
    router = Router()
    event = ev(account_id="acme", user_id="u1")
    assert router.route(event) == [event]
    assert router.route(event)[0] is event
    assert router.directory.account_of("u1") == "acme"
    later = router.route(ev(mid="2", user_id="u1"))
    assert [(e.message_id, e.account_id) for e in later] == [("2", "acme")]


def test_user_only_event_goes_to_users_account() -> None:
    router = Router()
    router.route(group("acme", user_id="u1"))
    (routed,) = router.route(ev("identify", "i", user_id="u1", traits={"email": "x"}))
    assert (routed.kind, routed.account_id, routed.traits) == ("identify", "acme", {"email": "x"})


def test_anonymous_event_routes_through_anonymous_id() -> None:
    router = Router()
    router.route(group("acme", anonymous_id="a1"))
    (routed,) = router.route(ev("page", "p", user_id="unknown", anonymous_id="a1"))
    assert routed.account_id == "acme"


def test_unknown_user_is_parked_then_released_by_group() -> None:
    router = Router()
    first = ev(mid="1", user_id="u1")
    assert router.route(first) == []
    assert router.route(ev("page", "2", anonymous_id="a1")) == []
    assert router.route(ev(mid="3", user_id="u1")) == []
    assert router.parking.parked == 3
    out = router.route(group("acme", "g", user_id="u1", anonymous_id="a1"))
    assert [(e.message_id, e.account_id) for e in out] == [
        ("g", "acme"),
        ("1", "acme"),
        ("2", "acme"),
        ("3", "acme"),
    ]
    assert first.account_id is None  # released copies, the parked originals are untouched
    assert router.parking.parked == 0
    assert router.directory.account_of("a1") == "acme"


def test_context_group_id_counts_as_grouping_and_releases() -> None:
    router = Router()
    router.route(ev(mid="1", user_id="u1"))
    out = router.route(ev(mid="2", user_id="u1", account_id="acme"))
    assert [(e.message_id, e.account_id) for e in out] == [("2", "acme"), ("1", "acme")]


def test_bounded_parking_through_router_counts_drops() -> None:
    router = Router(parking=ParkingLot(per_user=2, max_total=100))
    for i in range(5):
        router.route(ev(mid=str(i), user_id="u1"))
    assert router.parking.dropped == 3
    out = router.route(group("acme", user_id="u1"))
    assert [e.message_id for e in out] == ["g", "3", "4"]


def test_directory_eviction_makes_user_unknown_again() -> None:
    router = Router(directory=IdentityDirectory(max_users=1))
    router.route(group("acme", user_id="u1"))
    router.route(group("globex", "g2", user_id="u2"))
    assert router.directory.evicted == 1
    assert router.route(ev(mid="x", user_id="u1")) == []
    assert router.parking.parked == 1


def test_routing_refreshes_active_users() -> None:
    router = Router(directory=IdentityDirectory(max_users=2))
    router.route(group("acme", user_id="u1"))
    router.route(group("globex", "g2", user_id="u2"))
    router.route(ev(mid="x", user_id="u1"))  # u1 is active: u2 is now the oldest
    router.route(group("initech", "g3", user_id="u3"))
    assert router.directory.account_of("u1") == "acme"
    assert router.directory.account_of("u2") is None


def test_alias_links_previous_ids_account_to_new_user() -> None:
    router = Router()
    router.route(group("acme", anonymous_id="anon-1"))
    (routed,) = router.route(ev("alias", "al", user_id="u1", previous_id="anon-1"))
    assert routed.account_id == "acme"
    assert router.directory.account_of("u1") == "acme"
    (later,) = router.route(ev(mid="t", user_id="u1"))
    assert later.account_id == "acme"


def test_alias_releases_events_parked_for_the_new_user() -> None:
    router = Router()
    router.route(group("acme", user_id="old"))
    router.route(ev(mid="1", user_id="new"))
    out = router.route(ev("alias", "al", user_id="new", previous_id="old"))
    assert [(e.message_id, e.account_id) for e in out] == [("al", "acme"), ("1", "acme")]


def test_alias_keeps_new_users_existing_account() -> None:
    router = Router()
    router.route(group("acme", user_id="old"))
    router.route(group("globex", "g2", user_id="new"))
    (routed,) = router.route(ev("alias", "al", user_id="new", previous_id="old"))
    assert routed.account_id == "globex"
    assert router.directory.account_of("old") == "acme"


def test_parked_alias_links_previous_id_when_released() -> None:
    router = Router()
    assert router.route(ev("page", "p", anonymous_id="anon-1")) == []
    assert router.route(ev("alias", "al", user_id="u1", previous_id="anon-1")) == []
    out = router.route(group("acme", user_id="u1"))
    assert [(e.message_id, e.account_id) for e in out] == [
        ("g", "acme"),
        ("al", "acme"),
        ("p", "acme"),
    ]
    assert router.directory.account_of("anon-1") == "acme"
    assert router.parking.parked == 0


def test_group_without_users_and_timer_pass_through() -> None:
    router = Router()
    lone = group("acme")
    timer = ev("timer", "t", account_id="acme", timer=TimerFiring("t1", 1, 5.0))
    assert router.route(lone) == [lone]
    assert router.route(timer) == [timer]
    assert len(router.directory) == 0


def test_event_without_account_or_user_is_unroutable() -> None:
    router = Router()
    assert router.route(ev()) == []
    assert (router.unroutable, router.parking.parked) == (1, 0)


def test_router_round_trips_through_json() -> None:
    router = Router()
    router.route(group("acme", user_id="u1"))
    router.route(ev(mid="1", user_id="u2"))
    copy = Router.from_dict(json.loads(json.dumps(router.to_dict())))
    assert copy.directory.account_of("u1") == "acme"
    assert [e.message_id for e in copy.route(group("globex", "g2", user_id="u2"))] == ["g2", "1"]


def test_parsed_segment_calls_route_end_to_end() -> None:
    router = Router()
    page = to_core(parse_event({"type": "page", "anonymousId": "a1", "name": "Pricing"}), 10.0)
    grp = to_core(
        parse_event({"type": "group", "groupId": "acme", "anonymousId": "a1", "userId": "u1"}),
        11.0,
    )
    assert router.route(page) == []
    out = router.route(grp)
    assert [(e.kind, e.account_id, e.ts) for e in out] == [
        ("group", "acme", 11.0),
        ("page", "acme", 10.0),
    ]


@pytest.mark.parametrize("bad", [0, -1])
def test_bounds_must_be_positive(bad: int) -> None:
    with pytest.raises(ValueError):
        IdentityDirectory(max_users=bad)
    with pytest.raises(ValueError):
        ParkingLot(per_user=bad)
