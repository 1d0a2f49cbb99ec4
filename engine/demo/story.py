"""One account's synthetic story: the Segment calls it makes, and product usage over time."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from engine.demo.profiles import DAY, AccountProfile, ContactProfile

HOUR = 3_600.0
_REPORTS = ("pipeline review", "weekly usage", "churn cohort", "board deck", "team activity")
_TICKETS = ("login problem", "sync error", "billing question", "bug report", "how-to")


@dataclass(slots=True)
class Call:
    """A Segment call of the story, before it becomes a JSON dict."""

    ts: float
    type: str
    user_id: str | None
    event: str | None = None
    body: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """Product usage per week: logins, reports created, API bursts, support tickets."""

    logins: float
    reports: float = 0.0
    api: float = 0.0
    tickets: float = 0.0

    def toward(self, other: Usage, share: float) -> Usage:
        """The usage ``share`` (0-1) of the way from this one to ``other``."""
        return Usage(
            *(a + (b - a) * share for a, b in zip(self.rates(), other.rates(), strict=True))
        )

    def rates(self) -> tuple[float, float, float, float]:
        """The four weekly rates, in field order."""
        return (self.logins, self.reports, self.api, self.tickets)


class Story:
    """Collects one account's calls between its arrival and the end of the history."""

    def __init__(
        self, rng: random.Random, account: AccountProfile, arrival: float, end: float
    ) -> None:
        self.rng = rng
        self.account = account
        self.arrival = arrival
        self.end = end
        self.calls: list[Call] = []
        self.left: set[str] = set()
        self.active_share = 0.0
        self.offset = ZoneInfo(account.timezone).utcoffset(datetime.fromtimestamp(arrival, UTC))
        self.floor = arrival

    # -- calls ----------------------------------------------------------------------------

    def open(self) -> None:
        """The account's first calls: a ``group`` with its traits, then its contacts."""
        self.group(self.arrival)
        for i, contact in enumerate(self.account.contacts):
            self.identify(self.arrival + 30.0 * (i + 1), contact)
        self.floor = self.arrival + 30.0 * (len(self.account.contacts) + 1)

    def live(self, ts: float) -> bool:
        """Whether ``ts`` is still inside the history."""
        return ts < self.end

    def track(
        self, ts: float, name: str, properties: dict[str, Any] | None = None, who: str | None = None
    ) -> bool:
        """A ``track`` call by ``who`` (default: a current contact); False once past the end."""
        if not self.live(ts):
            return False
        user = who or self.someone()
        self.calls.append(Call(max(ts, self.floor), "track", user, name, properties or {}))
        return True

    def group(self, ts: float, **extra: Any) -> bool:
        """A ``group`` call with the account's full traits (and ``extra`` ones)."""
        if not self.live(ts):
            return False
        seats = self.account.seats
        active = min(seats, round(seats * self.active_share))
        traits = self.account.traits(active) | extra
        user = self.account.champion.user_id
        self.calls.append(Call(max(ts, self.floor), "group", user, None, traits))
        return True

    def identify(self, ts: float, contact: ContactProfile, **extra: Any) -> bool:
        """An ``identify`` call for ``contact`` with its traits (and ``extra`` ones)."""
        if not self.live(ts):
            return False
        traits = contact.traits() | extra
        self.calls.append(Call(max(ts, self.floor), "identify", contact.user_id, None, traits))
        return True

    def someone(self) -> str:
        """A random contact who is still at the account."""
        here = [c.user_id for c in self.account.contacts if c.user_id not in self.left]
        return self.rng.choice(here or [self.account.champion.user_id])

    def days(self, low: float, high: float) -> float:
        """A random span of ``low`` to ``high`` days, in seconds."""
        return self.rng.uniform(low, high) * DAY

    # -- usage ----------------------------------------------------------------------------

    def usage(self, start: float, stop: float, first: Usage, last: Usage | None = None) -> None:
        """Product usage each day from ``start`` to ``stop``, drifting from ``first`` to ``last``
        (on weekdays, in local working hours)."""
        stop = min(stop, self.end)
        offset = self.offset.total_seconds() if self.offset else 0.0
        day = math.floor((start + offset) / DAY) * DAY - offset
        while day < stop:
            share = min(1.0, max(0.0, (day - start) / max(stop - start, DAY)))
            rates = first.toward(last, share) if last else first
            weekday = datetime.fromtimestamp(day + offset, UTC).weekday() < 5
            factor = 1.3 if weekday else 0.25
            for kind, per_week in zip(("l", "r", "a", "t"), rates.rates(), strict=True):
                for _ in range(self._poisson(per_week / 7.0 * factor)):
                    ts = day + self.rng.uniform(8 * HOUR, 18 * HOUR)
                    if start <= ts < stop:
                        self._use(ts, kind)
            day += DAY

    def _use(self, ts: float, kind: str) -> None:
        """One usage event of ``kind``: login, report, API burst or support ticket."""
        if kind == "l":
            self.track(ts, "login")
        elif kind == "r":
            self.track(ts, "report_created", {"report": self.rng.choice(_REPORTS)})
        elif kind == "a":
            self.track(ts, "api_used", {"calls": self.rng.randint(20, 2_500)})
        else:
            self.track(ts, "support_ticket_opened", {"topic": self.rng.choice(_TICKETS)})

    def _poisson(self, mean: float) -> int:
        """A Poisson draw (Knuth's method; the means here are small)."""
        limit, count, product = math.exp(-mean), 0, self.rng.random()
        while product > limit:
            count += 1
            product *= self.rng.random()
        return count
