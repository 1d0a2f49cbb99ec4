"""Windowed metrics as time buckets, their expiry, and the health score."""

from __future__ import annotations

from typing import Any

import pytest
from corekit import DAY, HOUR, T0

from engine.core.metrics import bucket_size, health_score, next_expiry, record, update_health, value
from engine.core.schema import AccountSchema, MetricSpec
from engine.core.state import HEALTH_HISTORY, AccountState

COUNT_7D = MetricSpec(kind="count", event="login", window="7d")
COUNT_1D = MetricSpec(kind="count", event="login", window="1d")
SUM_7D = MetricSpec(kind="sum", event="api", property="calls", window="7d")
LAST = MetricSpec(kind="last_seen", event="login")


def fresh() -> AccountState:
    return AccountState("acme", T0)


def schema(**health: Any) -> AccountSchema:
    return AccountSchema.model_validate(
        {
            "kind": "account",
            "traits": {"nps": "integer", "plan": "string"},
            "metrics": {"logins_7d": {"kind": "count", "event": "login", "window": "7d"}},
            "health": health,
        }
    )


# -- buckets -------------------------------------------------------------------------------


def test_bucket_size_is_hours_for_short_windows_and_days_beyond() -> None:
    assert bucket_size(COUNT_1D) == HOUR
    assert bucket_size(COUNT_7D) == DAY


def test_count_over_a_sliding_window() -> None:
    state = fresh()
    for ts in (T0 + HOUR, T0 + 2 * HOUR, T0 + 3 * DAY):
        record(state, "m", COUNT_7D, ts, 1.0)
    assert value(state, "m", COUNT_7D, T0 + 3 * DAY) == 3
    assert value(state, "m", COUNT_7D, T0 + 8 * DAY - 1) == 3
    assert value(state, "m", COUNT_7D, T0 + 8 * DAY) == 1  # day 0 left the window
    assert value(state, "m", COUNT_7D, T0 + 11 * DAY) == 0


def test_sum_adds_the_amounts() -> None:
    state = fresh()
    record(state, "calls", SUM_7D, T0, 120.0)
    record(state, "calls", SUM_7D, T0 + DAY, 30.5)
    assert value(state, "calls", SUM_7D, T0 + 2 * DAY) == 150.5


def test_a_late_event_lands_in_its_own_bucket() -> None:
    state = fresh()
    record(state, "m", COUNT_7D, T0 + 10 * DAY, 1.0)
    record(state, "m", COUNT_7D, T0 + 5 * DAY, 1.0)  # late, still inside the window
    assert sorted(state.metrics["m"]) == [int(T0 // DAY) + 5, int(T0 // DAY) + 10]
    assert value(state, "m", COUNT_7D, T0 + 10 * DAY) == 2
    assert value(state, "m", COUNT_7D, T0 + 13 * DAY) == 1  # the late one expires on its own time


def test_an_event_older_than_the_window_is_not_counted() -> None:
    state = fresh()
    record(state, "m", COUNT_7D, T0 + 30 * DAY, 1.0)
    record(state, "m", COUNT_7D, T0 + 2 * DAY, 1.0)
    assert len(state.metrics["m"]) == 1
    assert value(state, "m", COUNT_7D, T0 + 30 * DAY) == 1


def test_old_buckets_are_pruned_as_new_ones_arrive() -> None:
    state = fresh()
    for day in range(100):
        record(state, "m", COUNT_7D, T0 + day * DAY, 1.0)
        assert len(state.metrics["m"]) <= 8
    hourly = fresh()
    for hour in range(24 * 10):
        record(hourly, "h", COUNT_1D, T0 + hour * HOUR, 1.0)
    assert len(hourly.metrics["h"]) <= 25


def test_last_seen_keeps_the_latest_time() -> None:
    state = fresh()
    record(state, "seen", LAST, T0 + DAY, 1.0)
    record(state, "seen", LAST, T0, 1.0)  # late: does not move it back
    assert value(state, "seen", LAST, T0 + 5 * DAY) == T0 + DAY
    assert next_expiry(state, "seen", LAST, T0) is None


def test_next_expiry_is_when_the_oldest_counted_bucket_leaves() -> None:
    state = fresh()
    assert next_expiry(state, "m", COUNT_7D, T0) is None
    record(state, "m", COUNT_7D, T0 + HOUR, 1.0)
    record(state, "m", COUNT_7D, T0 + 2 * DAY, 1.0)
    assert next_expiry(state, "m", COUNT_7D, T0 + 2 * DAY) == T0 + 8 * DAY
    assert next_expiry(state, "m", COUNT_7D, T0 + 8 * DAY) == T0 + 10 * DAY
    assert next_expiry(state, "m", COUNT_7D, T0 + 10 * DAY) is None
    hourly = fresh()
    record(hourly, "h", COUNT_1D, T0 + 90 * 60, 1.0)
    assert next_expiry(hourly, "h", COUNT_1D, T0 + 2 * HOUR) == T0 + 2 * HOUR + DAY


# -- health --------------------------------------------------------------------------------


def test_health_is_the_weighted_mean_of_scaled_components() -> None:
    s = schema(
        components=[
            {"name": "usage", "weight": 3, "metric": "logins_7d", "good": 10, "bad": 0},
            {"name": "nps", "weight": 1, "trait": "nps", "good": 9, "bad": 3},
        ]
    )
    state = fresh()
    state.traits["nps"] = 6  # halfway: 50
    assert health_score(state, s, {"logins_7d": 5.0}, T0) == pytest.approx(50.0)
    assert health_score(state, s, {"logins_7d": 20.0}, T0) == pytest.approx(87.5)  # clamped
    state.traits["nps"] = "n/a"  # not a number: the component does not count
    assert health_score(state, s, {"logins_7d": 5.0}, T0) == 50.0
    state.traits["nps"] = True  # a bool is not a number either
    assert health_score(state, s, {"logins_7d": 10.0}, T0) == 100.0


def test_inverted_components_and_flags() -> None:
    s = schema(
        components=[
            {"name": "tickets", "weight": 1, "metric": "logins_7d", "good": 0, "bad": 4},
            {"name": "risk", "weight": 1, "flag": "at_risk"},
        ]
    )
    state = fresh()
    assert health_score(state, s, {"logins_7d": 1.0}, T0) == 87.5
    state.flags["at_risk"] = T0 + DAY
    assert health_score(state, s, {"logins_7d": 1.0}, T0) == 37.5
    assert health_score(state, s, {"logins_7d": 1.0}, T0 + DAY) == 87.5  # the flag expired


def test_adjustments_count_until_they_expire_and_the_score_is_clamped() -> None:
    s = schema(components=[{"name": "u", "weight": 1, "metric": "logins_7d", "good": 10}])
    state = fresh()
    state.adjustments = [(-30.0, T0 + DAY), (-80.0, 0.0)]
    assert health_score(state, s, {"logins_7d": 10.0}, T0) == 0.0
    state.adjustments = [(-30.0, T0 + DAY)]
    assert health_score(state, s, {"logins_7d": 10.0}, T0) == 70.0
    assert health_score(state, s, {"logins_7d": 10.0}, T0 + DAY) == 100.0
    state.adjustments = [(+50.0, 0.0)]
    assert health_score(state, s, {"logins_7d": 10.0}, T0) == 100.0


def test_no_components_and_no_adjustments_means_no_score() -> None:
    assert health_score(fresh(), schema(), {}, T0) is None


def test_bands() -> None:
    bands = schema(bands={"green": 70, "yellow": 40}).health.bands
    assert [bands.band(x) for x in (100, 70, 69.9, 40, 39.9, 0)] == [
        "green",
        "green",
        "yellow",
        "yellow",
        "red",
        "red",
    ]


def test_update_health_keeps_a_short_history_of_changes() -> None:
    s = schema(components=[{"name": "u", "weight": 1, "metric": "logins_7d", "good": 10}])
    state = fresh()
    for i in range(10):
        update_health(state, s, T0 + i, {"logins_7d": float(i)})
        update_health(state, s, T0 + i, {"logins_7d": float(i)})  # unchanged: no entry
    assert state.health == 90.0
    assert len(state.health_history) == HEALTH_HISTORY
    assert state.health_history[-1] == (T0 + 9, 90.0)
    state.adjustments = [(-10.0, T0 + 5)]
    update_health(state, s, T0 + 20, {"logins_7d": 9.0})
    assert state.adjustments == []  # expired ones are dropped


def test_a_new_event_never_drops_a_bucket_the_window_still_counts() -> None:
    """A login on day 0 and one on day 7 at noon: both are within the last 7 days at noon of
    day 7 (the day-0 bucket ends at the start of day 1)."""
    from engine.core.metrics import DAY, record, value
    from engine.core.schema import MetricSpec
    from engine.core.state import AccountState

    spec = MetricSpec.model_validate({"kind": "count", "event": "login", "window": "7d"})
    state = AccountState("acme", created=0.0)
    day0 = 20_000 * DAY
    record(state, "logins_7d", spec, day0 + 3600, 1)
    record(state, "logins_7d", spec, day0 + 7 * DAY + 12 * 3600, 1)
    assert value(state, "logins_7d", spec, day0 + 7 * DAY + 12 * 3600) == 2
    assert value(state, "logins_7d", spec, day0 + 8 * DAY + 1) == 1
