"""Timelines for the runtime tests: realistic calls within two days, so that no timer comes due
(timers are Runtime II's; here every state is decided by events alone)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

START = datetime(2026, 3, 3, 8, 0, tzinfo=UTC)  # a Tuesday: no Monday digest tick inside


def _at(minutes: float) -> str:
    return (START + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def account_calls(index: int, logins: int) -> list[dict[str, Any]]:
    """One account's calls: group, contacts, a walk along the flywheel, logins, NPS."""
    account = f"acct-{index:03d}"
    base = index * 0.5
    calls: list[dict[str, Any]] = [
        {
            "type": "group",
            "messageId": f"{account}-g",
            "groupId": account,
            "userId": f"{account}-u1",
            "timestamp": _at(base),
            "traits": {
                "name": f"Account {index}",
                "segment": ["smb", "mid_market", "enterprise"][index % 3],
                "plan": "growth",
                "seats": 20,
                "active_seats": 19 if index % 4 == 0 else 8,
                "renewal_date": "2027-06-30",
                "go_live_date": "2026-03-20",
                "timezone": "Europe/Paris",
                "csm_email": "csm@vendor.example",
                "ae_email": "ae@vendor.example",
                "journey": "flywheel",
            },
        }
    ]
    for n, role in enumerate(("champion", "admin", "decision_maker"), start=1):
        calls.append(
            {
                "type": "identify",
                "messageId": f"{account}-i{n}",
                "userId": f"{account}-u{n}",
                "timestamp": _at(base + n),
                "context": {"groupId": account},
                "traits": {"email": f"{role}@{account}.example", "role": role, "name": role},
            }
        )
    steps = ["site_visited", "pricing_viewed", "subscription_started", "kickoff_completed"]
    if index % 2:
        steps.append("integration_connected")
    for n, name in enumerate(steps):
        calls.append(_track(account, f"s{n}", name, base + 10 + n * 30))
    for n in range(logins):
        calls.append(_track(account, f"l{n}", "login", base + 200 + n * 7, user="u2"))
    score = [3, 9, 7][index % 3]
    calls.append(_track(account, "nps", "nps_submitted", base + 2000, props={"score": score}))
    if index % 5 == 0:
        calls.append(
            _track(account, "bounce", "email_bounced", base + 2100,
                   props={"email": f"champion@{account}.example"})
        )  # fmt: skip
    return calls


def _track(
    account: str, suffix: str, name: str, minutes: float, *, user: str = "u1", props: Any = None
) -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": f"{account}-{suffix}",
        "userId": f"{account}-{user}",
        "event": name,
        "timestamp": _at(minutes),
        "context": {"groupId": account},
        "properties": props or {},
    }


def timeline(accounts: int, logins: int = 5) -> list[dict[str, Any]]:
    """Every account's calls, in time order."""
    calls = [c for i in range(accounts) for c in account_calls(i, logins)]
    return sorted(calls, key=lambda c: c["timestamp"])


def write(calls: list[dict[str, Any]], path: Path) -> Path:
    path.write_text("".join(json.dumps(c) + "\n" for c in calls))
    return path
