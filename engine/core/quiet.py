"""Quiet hours: when a customer-facing email decided at some moment may be delivered."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from engine.core.playbooks import QuietHours

SATURDAY = 5


def _hhmm(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _quiet_end(policy: QuietHours, local: datetime) -> datetime | None:
    """The end of the quiet period ``local`` falls in, or None when it is not quiet."""
    start, end = _hhmm(policy.start), _hhmm(policy.end)
    day, now = local.date(), local.time()
    if policy.weekends and local.weekday() >= SATURDAY:
        monday = day + timedelta(days=7 - local.weekday())
        return datetime.combine(monday, end, tzinfo=local.tzinfo)
    if start < end:  # a window within one day, e.g. 12:00-14:00
        return datetime.combine(day, end, tzinfo=local.tzinfo) if start <= now < end else None
    if now >= start:  # overnight, e.g. 20:00-08:00, evening side
        return datetime.combine(day + timedelta(days=1), end, tzinfo=local.tzinfo)
    if now < end:  # overnight, morning side
        return datetime.combine(day, end, tzinfo=local.tzinfo)
    return None


def quiet_until(policy: QuietHours, when: float, timezone: str) -> float | None:
    """When an email decided at ``when`` may go out, if that moment is in quiet hours."""
    local = datetime.fromtimestamp(when, ZoneInfo(timezone))
    held = None
    for _ in range(4):  # an end may fall in another quiet period (a weekend); a few steps do
        end = _quiet_end(policy, local)
        if end is None:
            break
        held = local = end
    return held.timestamp() if held is not None else None
