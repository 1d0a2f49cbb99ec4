"""Synthetic accounts and their contacts: names, segment, plan, seats, team and traits."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DAY = 86_400.0


def _words(text: str) -> tuple[str, ...]:
    """The whitespace-separated words of ``text``."""
    return tuple(text.split())


_FIRST = _words(
    "Ada Ben Chloe Dev Elena Farid Grace Hiro Ines Jonas Kira Liam Maya Noor Omar Priya "
    "Quinn Rosa Sam Tara Umar Vera Wes Xin Yara Zane Aiko Bruno Carla Diego Emma Felix "
    "Gita Hugo Ivy Jana Kofi Lena Mateo Nia"
)
_LAST = _words(
    "Adler Brooks Castro Dubois Eriksen Fischer Garcia Haddad Ito Jensen Khan Lopez "
    "Moreau Nakamura Okafor Patel Quist Rossi Silva Tanaka Ueda Varga Weber Xu Yilmaz "
    "Zimmer"
)
_PREFIX = _words(
    "Blue Bright North Silver Quiet Rapid Clear Iron Green Swift Solar Cedar Harbor Polar "
    "Maple Amber Summit Orbit Pixel Vector"
)
_SUFFIX = _words(
    "Labs Works Logistics Health Analytics Foods Capital Systems Retail Media Freight "
    "Energy Robotics Studio Cloud Bank"
)
_INDUSTRIES = (
    "software",
    "healthcare",
    "logistics",
    "retail",
    "financial services",
    "manufacturing",
    "media",
    "education",
)
_TIMEZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Singapore",
    "Australia/Sydney",
)
_CSMS = (("Dana Whitfield", "dana"), ("Luis Ortega", "luis"), ("Mei Chen", "mei"))
_AES = (("Rob Kellerman", "rob"), ("Sofia Andrade", "sofia"))
_TEAM_DOMAIN = "hourglass-demo.example.com"

#: Sales segment -> (weight, plans, seat range, price per seat per month).
_SEGMENTS: dict[str, tuple[float, tuple[str, ...], tuple[int, int], float]] = {
    "smb": (0.5, ("starter", "growth"), (5, 30), 18.0),
    "mid_market": (0.35, ("growth",), (30, 160), 32.0),
    "enterprise": (0.15, ("enterprise",), (160, 900), 55.0),
}
#: Contact roles in the order an account's contacts take them.
_ROLES = ("champion", "decision_maker", "admin", "billing", "user")


@dataclass(slots=True)
class ContactProfile:
    """One person at a synthetic account."""

    user_id: str
    name: str
    email: str
    role: str
    timezone: str

    def traits(self) -> dict[str, Any]:
        """The contact's ``identify`` traits."""
        return {
            "email": self.email,
            "name": self.name,
            "role": self.role,
            "timezone": self.timezone,
        }


@dataclass(slots=True)
class AccountProfile:
    """One synthetic account: who it is and the traits its ``group`` calls carry."""

    account_id: str
    model: str
    name: str
    segment: str
    plan: str
    seats: int
    mrr: float
    timezone: str
    industry: str
    csm: tuple[str, str]
    ae: tuple[str, str]
    domain: str
    contacts: list[ContactProfile] = field(default_factory=list)
    renewal_date: float = 0.0
    go_live_date: float | None = None

    @property
    def champion(self) -> ContactProfile:
        """The account's champion (its first contact)."""
        return self.contacts[0]

    def traits(self, active_seats: int) -> dict[str, Any]:
        """The full ``group`` traits, as declared in ``playbooks/account.yaml``."""
        traits: dict[str, Any] = {
            "name": self.name,
            "plan": self.plan,
            "segment": self.segment,
            "mrr": self.mrr,
            "seats": self.seats,
            "active_seats": active_seats,
            "renewal_date": day_of(self.renewal_date),
            "timezone": self.timezone,
            "csm_email": f"{self.csm[1]}@{_TEAM_DOMAIN}",
            "csm_name": self.csm[0],
            "ae_email": f"{self.ae[1]}@{_TEAM_DOMAIN}",
            "ae_name": self.ae[0],
            "industry": self.industry,
            "journey": self.model,
        }
        if self.go_live_date is not None:
            traits["go_live_date"] = day_of(self.go_live_date)
        return traits

    def new_contact(self, rng: random.Random, role: str) -> ContactProfile:
        """Add a contact with ``role`` (a replacement champion, say) and return it."""
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        contact = ContactProfile(
            user_id=f"{self.account_id}-u{len(self.contacts) + 1}",
            name=f"{first} {last}",
            email=f"{first}.{last}@{self.domain}".lower(),
            role=role,
            timezone=self.timezone,
        )
        self.contacts.append(contact)
        return contact


def day_of(ts: float) -> str:
    """Epoch seconds as an ISO date (``2025-03-03``)."""
    return datetime.fromtimestamp(ts, UTC).date().isoformat()


def _renewal_days(rng: random.Random) -> float:
    """Days from the start of the history to the renewal: 30-400, more of them near."""
    low, high = rng.choices(((30, 150), (150, 240), (240, 400)), (0.4, 0.35, 0.25))[0]
    return rng.uniform(low, high)


def make_account(rng: random.Random, index: int, model: str, start: float) -> AccountProfile:
    """A random account of journey ``model`` whose renewal is 30-400 days after ``start``."""
    segment = rng.choices(list(_SEGMENTS), [v[0] for v in _SEGMENTS.values()])[0]
    _, plans, (low, high), price = _SEGMENTS[segment]
    seats = rng.randint(low, high)
    plan = rng.choice(plans)
    name = f"{rng.choice(_PREFIX)} {rng.choice(_SUFFIX)}"
    account = AccountProfile(
        account_id=f"acct-{index + 1:04d}",
        model=model,
        name=name,
        segment=segment,
        plan=plan,
        seats=seats,
        mrr=round(seats * price * (0.8 if plan == "starter" else 1.0), 2),
        timezone=rng.choice(_TIMEZONES),
        industry=rng.choice(_INDUSTRIES),
        csm=rng.choice(_CSMS),
        ae=rng.choice(_AES),
        domain=f"{name.replace(' ', '-').lower()}-{index + 1}.example.com",
        renewal_date=start + _renewal_days(rng) * DAY,
    )
    for role in _ROLES[: rng.randint(2, 5)]:
        account.new_contact(rng, role)
    return account
