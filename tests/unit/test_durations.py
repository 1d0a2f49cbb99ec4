"""Durations as written in playbook YAML: parsing, errors, business days, pydantic fields."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import BaseModel, ValidationError

from engine.core.durations import Duration, DurationField, parse_duration

HOUR = 3_600
DAY = 86_400
NY = "America/New_York"
EXPECTED = "expected e.g. '14d', '2h', '30m', '2 business days'"


def at(tz: str, *parts: int) -> float:
    """Epoch seconds of a local wall time in ``tz``."""
    return datetime(*parts, tzinfo=ZoneInfo(tz)).timestamp()  # type: ignore[misc]


def local(ts: float, tz: str) -> datetime:
    """Epoch seconds as a naive local wall time in ``tz``."""
    return datetime.fromtimestamp(ts, ZoneInfo(tz)).replace(tzinfo=None)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("14d", 14 * DAY),
        ("14 days", 14 * DAY),
        ("1 day", DAY),
        ("2h", 2 * HOUR),
        ("2 hours", 2 * HOUR),
        ("30m", 1_800),
        ("30 min", 1_800),
        ("45s", 45),
        ("45 seconds", 45),
        ("1w", 7 * DAY),
        ("2 weeks", 14 * DAY),
        ("1d12h", DAY + 12 * HOUR),
        ("1d 12h", DAY + 12 * HOUR),
        ("1 day, 12 hours", DAY + 12 * HOUR),
        ("1.5h", 5_400),
        ("14D", 14 * DAY),
        ("  3h  ", 3 * HOUR),
        ("0d", 0),
        ("90", 90),
        ("1.5", 1.5),
        (3600, 3_600),
        (2.5, 2.5),
        (0, 0),
    ],
)
def test_parses_seconds_forms(text: str | int | float, seconds: float) -> None:
    duration = parse_duration(text)
    assert duration.seconds == seconds
    assert duration.business_days == 0
    assert not duration.is_business


@pytest.mark.parametrize(
    ("text", "days"),
    [("2 business days", 2), ("1 business day", 1), ("2bd", 2), ("5 BD", 5), ("0bd", 0)],
)
def test_parses_business_days(text: str, days: int) -> None:
    duration = parse_duration(text)
    assert duration.business_days == days
    assert duration.seconds == 0


def test_keeps_the_original_text() -> None:
    assert str(parse_duration("2 business days")) == "2 business days"
    assert str(parse_duration("  1d12h ")) == "1d12h"
    assert str(parse_duration(3600)) == "3600"
    assert parse_duration("14d").text == "14d"


def test_text_is_not_part_of_equality() -> None:
    assert parse_duration("14d") == parse_duration("2 weeks")
    assert hash(parse_duration("14d")) == hash(parse_duration("2w"))
    assert parse_duration("2bd") == parse_duration("2 business days")
    assert parse_duration("2bd") != parse_duration("2d")


def test_built_in_code_gets_canonical_text() -> None:
    assert str(Duration(seconds=DAY + 12 * HOUR)) == "1d12h"
    assert str(Duration(seconds=90)) == "1m30s"
    assert str(Duration(seconds=0)) == "0s"
    assert str(Duration(business_days=1)) == "1 business day"
    assert str(Duration(business_days=3)) == "3 business days"


def test_seconds_and_business_days_cannot_both_be_set() -> None:
    with pytest.raises(ValueError, match="not both"):
        Duration(seconds=60, business_days=1)
    with pytest.raises(ValueError, match="not negative"):
        Duration(seconds=-1)


def test_error_names_the_value_and_what_is_expected() -> None:
    with pytest.raises(ValueError) as info:
        parse_duration("14 dayz")
    assert str(info.value) == f"invalid duration '14 dayz': {EXPECTED}"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", EXPECTED),
        ("d", EXPECTED),
        ("fortnight", EXPECTED),
        ("14 days ago", EXPECTED),
        ("1d 2bd", "business days cannot be combined with other units"),
        ("2 business days 3h", "business days cannot be combined with other units"),
        ("1.5bd", "business days must be a whole number"),
        ("-5m", "must not be negative"),
        (-5, "must be a finite, non-negative number"),
        (float("nan"), "must be a finite, non-negative number"),
        ("1 month", "'month' varies in length"),
        ("2y", "'y' varies in length"),
        ("1d1d", "'d' is given twice"),
        ("99999999d", "longer than 100 years"),
        ("99999bd", "longer than 100 years"),
    ],
)
def test_invalid_durations(text: str | float, problem: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    message = str(info.value)
    assert message.startswith("invalid duration ")
    assert problem in message
    assert EXPECTED in message


@pytest.mark.parametrize("value", [None, True, [1], {"seconds": 5}])
def test_invalid_types(value: object) -> None:
    with pytest.raises(ValueError, match=re.escape(f"invalid duration {value!r}: {EXPECTED}")):
        parse_duration(value)  # type: ignore[arg-type]


# --- after / before -----------------------------------------------------------------------


def test_plain_durations_add_and_subtract_seconds() -> None:
    assert parse_duration("2h").after(1_000.0) == 1_000.0 + 2 * HOUR
    assert parse_duration("30 days").before(40 * DAY) == 10 * DAY
    assert parse_duration("1d").after(0.0, NY) == DAY


def test_business_days_on_weekdays() -> None:
    monday = at("UTC", 2024, 5, 6, 9, 0)
    assert local(parse_duration("1bd").after(monday, "UTC"), "UTC") == datetime(2024, 5, 7, 9)
    assert local(parse_duration("4bd").after(monday, "UTC"), "UTC") == datetime(2024, 5, 10, 9)
    assert parse_duration("0bd").after(monday) == monday  # zero business days is no offset


def test_business_days_skip_the_weekend() -> None:
    friday = at("UTC", 2024, 5, 3, 15, 30)
    assert local(parse_duration("1bd").after(friday), "UTC") == datetime(2024, 5, 6, 15, 30)
    assert local(parse_duration("2 business days").after(friday), "UTC") == datetime(
        2024, 5, 7, 15, 30
    )
    assert local(parse_duration("5bd").after(friday), "UTC") == datetime(2024, 5, 10, 15, 30)
    assert local(parse_duration("10bd").after(friday), "UTC") == datetime(2024, 5, 17, 15, 30)
    assert local(parse_duration("7bd").after(friday), "UTC") == datetime(2024, 5, 14, 15, 30)


def test_a_weekend_start_counts_from_monday() -> None:
    saturday = at("UTC", 2024, 5, 4, 10, 0)
    sunday = at("UTC", 2024, 5, 5, 23, 0)
    assert local(parse_duration("1bd").after(saturday), "UTC") == datetime(2024, 5, 7, 10)
    assert local(parse_duration("1bd").after(sunday), "UTC") == datetime(2024, 5, 7, 23)


def test_business_days_use_the_local_calendar_of_the_time_zone() -> None:
    # Friday 22:00 in New York is already Saturday 02:00 UTC.
    friday_night = at(NY, 2024, 5, 3, 22, 0)
    in_ny = parse_duration("1bd").after(friday_night, NY)
    assert local(in_ny, NY) == datetime(2024, 5, 6, 22, 0)
    in_utc = parse_duration("1bd").after(friday_night, "UTC")
    assert local(in_utc, "UTC") == datetime(2024, 5, 7, 2, 0)


def test_business_days_keep_local_time_across_dst() -> None:
    # US DST starts Sunday 2024-03-10: Friday 09:00 EST + 1bd is Monday 09:00 EDT (71 h later).
    friday = at(NY, 2024, 3, 8, 9, 0)
    monday = parse_duration("1bd").after(friday, NY)
    assert local(monday, NY) == datetime(2024, 3, 11, 9, 0)
    assert monday - friday == 71 * HOUR


def test_business_days_before() -> None:
    tuesday = at("UTC", 2024, 5, 7, 8, 0)
    assert local(parse_duration("1bd").before(tuesday), "UTC") == datetime(2024, 5, 6, 8)
    assert local(parse_duration("2bd").before(tuesday), "UTC") == datetime(2024, 5, 3, 8)
    assert local(parse_duration("6bd").before(tuesday), "UTC") == datetime(2024, 4, 29, 8)


def test_a_weekend_end_counts_back_from_friday() -> None:
    sunday = at(NY, 2024, 5, 5, 12, 0)
    assert local(parse_duration("1bd").before(sunday, "UTC"), "UTC") == datetime(2024, 5, 2, 16)
    assert local(parse_duration("1bd").before(sunday, NY), NY) == datetime(2024, 5, 2, 12)


def test_after_then_before_round_trips_on_weekdays() -> None:
    start = at(NY, 2024, 5, 8, 11, 15)  # a Wednesday
    for days in range(0, 23):
        duration = Duration(business_days=days)
        assert duration.before(duration.after(start, NY), NY) == start


def test_sub_second_precision_is_kept() -> None:
    start = datetime(2024, 5, 6, 9, 0, 0, 250_000, tzinfo=UTC).timestamp()
    assert parse_duration("1bd").after(start) == pytest.approx(start + DAY)


def test_unknown_time_zone() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Base'"):
        parse_duration("1bd").after(0.0, "Mars/Base")
    with pytest.raises(ValueError, match="unknown time zone"):
        parse_duration("1h").before(0.0, "not a zone")


# --- pydantic -----------------------------------------------------------------------------


class Playbook(BaseModel):
    cooldown: DurationField | None = None
    wait: DurationField = Duration(seconds=DAY, text="1d")


def test_field_validates_yaml_strings_and_numbers() -> None:
    model = Playbook.model_validate({"cooldown": "2 business days", "wait": 3600})
    assert model.cooldown == Duration(business_days=2)
    assert model.wait == Duration(seconds=3_600)
    assert Playbook.model_validate({}).cooldown is None
    assert Playbook.model_validate({"cooldown": Duration(seconds=5)}).cooldown == Duration(
        seconds=5
    )


def test_field_error_names_the_bad_value() -> None:
    with pytest.raises(ValidationError) as info:
        Playbook.model_validate({"cooldown": "14 dayz"})
    assert "invalid duration '14 dayz'" in str(info.value)
    assert info.value.errors()[0]["loc"] == ("cooldown",)


def test_field_serialises_back_to_the_original_text() -> None:
    model = Playbook.model_validate({"cooldown": "1 day, 12 hours", "wait": "2 weeks"})
    assert model.model_dump() == {"cooldown": "1 day, 12 hours", "wait": "2 weeks"}
    assert model.model_dump_json() == '{"cooldown":"1 day, 12 hours","wait":"2 weeks"}'
    assert Playbook.model_validate_json(model.model_dump_json()) == model


def test_field_json_schema_is_a_string_or_number() -> None:
    schema = Playbook.model_json_schema()["properties"]["wait"]
    assert {"type": "string"} in schema["anyOf"]
