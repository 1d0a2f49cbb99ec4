"""Durations as CS ops write them in YAML: ``14d``, ``2 hours``, ``1d12h``, ``2 business days``."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

__all__ = ["Duration", "DurationField", "parse_duration"]

_EXPECTED = "expected e.g. '14d', '2h', '30m', '2 business days'"
_MAX_DAYS = 36_525  # a hundred years
_UNITS: dict[str, int] = {}
for _names, _seconds in (
    (("w", "wk", "wks", "week", "weeks"), 604_800),
    (("d", "day", "days"), 86_400),
    (("h", "hr", "hrs", "hour", "hours"), 3_600),
    (("m", "min", "mins", "minute", "minutes"), 60),
    (("s", "sec", "secs", "second", "seconds"), 1),
):
    _UNITS |= dict.fromkeys(_names, _seconds)
_CALENDAR_UNITS = frozenset({"mo", "mos", "month", "months", "y", "yr", "yrs", "year", "years"})
_NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")
_BUSINESS = re.compile(r"(\d+(?:\.\d+)?)\s*(?:bd|business\s*days?)")
_PARTS = re.compile(r"(?:\d+(?:\.\d+)?\s*[a-z]+[\s,]*)+")
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")


def _invalid(value: object, problem: str | None = None) -> ValueError:
    """The error for an unusable duration, naming the value and what is expected."""
    shown = repr(value.strip()) if isinstance(value, str) else repr(value)
    detail = f"{problem}; {_EXPECTED}" if problem else _EXPECTED
    return ValueError(f"invalid duration {shown}: {detail}")


def _zone(tz: str) -> ZoneInfo:
    """The IANA time zone ``tz``, or a ValueError naming it."""
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"unknown time zone {tz!r}") from None


def _step_business_days(day: date, count: int, step: int) -> date:
    """Roll a weekend ``day`` onto a weekday in direction ``step``, then move ``count`` weekdays."""
    while day.weekday() >= 5:
        day += timedelta(days=step)
    weeks, rest = divmod(count, 5)
    day += timedelta(days=7 * weeks * step)
    for _ in range(rest):
        day += timedelta(days=step)
        while day.weekday() >= 5:
            day += timedelta(days=step)
    return day


def _canonical(seconds: float, business_days: int) -> str:
    """Compact text for a duration built in code (``1d12h``, ``2 business days``)."""
    if business_days:
        return f"{business_days} business day{'s' if business_days != 1 else ''}"
    parts: list[str] = []
    rest = seconds
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        whole, rest = divmod(rest, size)
        if whole:
            parts.append(f"{int(whole)}{unit}")
    if rest or not parts:
        parts.append(f"{rest:g}s")
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class Duration:
    """A span of plain seconds or of business days (never both); ``text`` is how it was written."""

    seconds: float = 0.0
    business_days: int = 0
    text: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.seconds and self.business_days:
            raise ValueError("a duration is either seconds or business days, not both")
        if not math.isfinite(self.seconds) or self.seconds < 0 or self.business_days < 0:
            raise ValueError(f"a duration must be finite and not negative: {self!r}")
        if not self.text:
            object.__setattr__(self, "text", _canonical(self.seconds, self.business_days))

    def __str__(self) -> str:
        return self.text

    @property
    def is_business(self) -> bool:
        """True for a business-day duration."""
        return self.business_days > 0

    def after(self, start: float, tz: str = "UTC") -> float:
        """Epoch seconds ``self`` after ``start``; business days skip weekends in ``tz``."""
        return self._shift(start, tz, 1)

    def before(self, end: float, tz: str = "UTC") -> float:
        """Epoch seconds ``self`` before ``end``; business days skip weekends in ``tz``."""
        return self._shift(end, tz, -1)

    def _shift(self, moment: float, tz: str, step: int) -> float:
        """Move ``moment`` forwards (step 1) or backwards (step -1) by this duration."""
        if not self.business_days:
            _zone(tz)
            return moment + step * self.seconds
        zone = _zone(tz)
        local = datetime.fromtimestamp(moment, zone)
        day = _step_business_days(local.date(), self.business_days, step)
        return datetime.combine(day, local.time(), tzinfo=zone).timestamp()


def _parse_number(value: float, original: object) -> Duration:
    """A bare number of seconds."""
    if not math.isfinite(value) or value < 0:
        raise _invalid(original, "must be a finite, non-negative number of seconds")
    if value > _MAX_DAYS * 86_400:
        raise _invalid(original, "longer than 100 years")
    return Duration(seconds=float(value), text=str(original).strip())


def parse_duration(text: str | int | float) -> Duration:
    """Parse ``14d``, ``14 days``, ``1d12h``, ``2 weeks``, ``2 business days`` or seconds."""
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise _invalid(text)
    if not isinstance(text, str):
        return _parse_number(text, text)
    written = text.strip()
    lowered = written.lower()
    if lowered.startswith("-"):
        raise _invalid(written, "must not be negative (offsets go before() a date)")
    if _NUMBER.fullmatch(lowered):
        return _parse_number(float(lowered), written)
    if business := _BUSINESS.fullmatch(lowered):
        if "." in business.group(1):
            raise _invalid(written, "business days must be a whole number")
        days = int(business.group(1))
        if days * 7 / 5 > _MAX_DAYS:
            raise _invalid(written, "longer than 100 years")
        return Duration(business_days=days, text=written)
    if _BUSINESS.search(lowered):
        raise _invalid(written, "business days cannot be combined with other units")
    if not _PARTS.fullmatch(lowered):
        raise _invalid(written)
    seconds = 0.0
    seen: set[int] = set()
    for amount, unit in _PART.findall(lowered):
        if unit in _CALENDAR_UNITS:
            raise _invalid(written, f"'{unit}' varies in length, use days or weeks")
        if unit not in _UNITS:
            raise _invalid(written)
        if _UNITS[unit] in seen:
            raise _invalid(written, f"'{unit}' is given twice")
        seen.add(_UNITS[unit])
        seconds += float(amount) * _UNITS[unit]
    if seconds > _MAX_DAYS * 86_400:
        raise _invalid(written, "longer than 100 years")
    return Duration(seconds=seconds, text=written)


def _validate(value: Any) -> Duration:
    """Pydantic before-validator: a Duration, a duration string or a number of seconds."""
    return value if isinstance(value, Duration) else parse_duration(value)


#: A playbook-model field: validates YAML strings and numbers, serialises back to the text.
DurationField = Annotated[
    Duration,
    BeforeValidator(_validate),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {"anyOf": [{"type": "string"}, {"type": "number", "minimum": 0}]}, mode="validation"
    ),
]
