"""The benchmark's workload: the example playbooks plus generated ones (50 in all), and the
Segment calls pushed at them (a group and an identify per account, then track events)."""

from __future__ import annotations

import random
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "playbooks"
#: Playbooks in the set the benchmark loads: the examples plus generated ones.
PLAYBOOKS = 50
FEATURES = 10
#: Track events and their weights (the events the generated plays and the examples read).
TRACKS = {
    "feature_used": 40,
    "login": 30,
    "report_created": 10,
    "api_used": 12,
    "support_ticket_opened": 4,
    "nps_submitted": 2,
    "integration_connected": 2,
}


def example_count() -> int:
    """How many playbooks the shipped examples hold."""
    return sum(p.read_text().count("kind: playbook") for p in EXAMPLES.glob("*.yaml"))


def generated_playbook(n: int) -> str:
    """One generated playbook: an event, call or threshold trigger, conditions on traits and
    metrics, and actions that change the account (a few open tasks, with a cooldown)."""
    feature = f"f{n % FEATURES}"
    head = f"kind: playbook\nid: gen-{n:02d}\nname: Generated play {n}\npriority: {n % 7}\n"
    shape = n % 6
    if shape == 0:
        body = f"""triggers:
  - event: feature_used
    filter: event.properties.feature == "{feature}" && event.properties.count >= {n % 4 + 1}
conditions:
  - account.traits.plan in ["growth", "enterprise"]
  - account.metrics.logins_7d >= {n % 3}
actions:
  - set_flag: {{name: power_{feature}, ttl: 30d}}
"""
    elif shape == 1:
        body = f"""triggers:
  - event: login
conditions:
  - account.traits.seats > {n % 20}
  - double(account.traits.active_seats) / double(account.traits.seats) > 0.{n % 9 + 1}
unless:
  - has(account.flags.adopted_{n})
actions:
  - set_flag: adopted_{n}
  - set_trait: {{name: adoption_tier, value: tier_{n % 3}}}
"""
    elif shape == 2:
        body = f"""triggers:
  - metric: {{name: api_calls_7d, above: {200 + 50 * n}}}
conditions:
  - account.traits.segment != "smb"
cooldown: 30d
actions:
  - set_flag: {{name: api_heavy, ttl: 14d}}
  - task:
      title: "API usage over {200 + 50 * n} calls a week at {{{{ account.traits.name }}}}"
      assignee: csm
      due: 3 business days
"""
    elif shape == 3:
        body = f"""triggers:
  - event: report_created
conditions:
  - account.traits.mrr > {n * 40}
  - account.metrics.reports_30d >= {n % 4 + 1}
unless:
  - has(account.flags.reporting_champion_{n % 5})
actions:
  - set_flag: reporting_champion_{n % 5}
"""
    elif shape == 4:
        body = f"""triggers:
  - call: identify
    filter: has(event.traits.role) && event.traits.role == "{["champion", "admin"][n % 2]}"
conditions:
  - account.traits.segment in ["mid_market", "enterprise"]
actions:
  - set_flag: {{name: has_{["champion", "admin"][n % 2]}_{n}, ttl: 90d}}
"""
    else:
        body = f"""triggers:
  - event: support_ticket_opened
conditions:
  - account.metrics.support_tickets_30d >= {n % 3 + 2}
  - account.metrics.logins_30d < {n + 5}
cooldown: 14d
actions:
  - adjust_health: {{by: -5, reason: support load, ttl: 14d}}
  - task:
      title: "{{{{ account.metrics.support_tickets_30d }}}} tickets in 30 days at \\
        {{{{ account.traits.name }}}}"
      assignee: csm
      priority: high
"""
    return head + body


def write_playbooks(directory: Path, total: int = PLAYBOOKS) -> Path:
    """Copy the examples into ``directory`` and add generated plays up to ``total`` (the
    examples alone when ``total`` is not more than their number)."""
    target = directory / "playbooks"
    shutil.copytree(EXAMPLES, target)
    documents = [generated_playbook(n) for n in range(total - example_count())]
    if documents:
        (target / "generated.yaml").write_text("---\n".join(documents))
    return target


def _stamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def group_call(account: int, at: str, tag: str = "") -> dict[str, Any]:
    """The account's group call: the traits conditions read."""
    rng = random.Random(account)
    seats = rng.randint(5, 200)
    return {
        "type": "group",
        "messageId": f"{tag}g-{account}",
        "groupId": f"{tag}acct-{account}",
        "userId": f"{tag}u-{account}",
        "timestamp": at,
        "traits": {
            "name": f"Account {account}",
            "plan": rng.choice(["starter", "growth", "enterprise"]),
            "segment": rng.choice(["smb", "mid_market", "enterprise"]),
            "mrr": rng.randint(100, 5000),
            "seats": seats,
            "active_seats": rng.randint(0, seats),
            "renewal_date": "2027-09-30",
            "csm_email": "csm@vendor.example",
            "journey": "flywheel",
        },
    }


def identify_call(account: int, at: str, tag: str = "") -> dict[str, Any]:
    """A contact of the account."""
    role = ["champion", "admin", "decision_maker"][account % 3]
    return {
        "type": "identify",
        "messageId": f"{tag}i-{account}",
        "userId": f"{tag}u-{account}",
        "timestamp": at,
        "context": {"groupId": f"{tag}acct-{account}"},
        "traits": {"email": f"{role}@acct-{account}.example", "role": role, "name": role},
    }


def track_call(
    account: int, number: int, name: str, at: str, rng: random.Random, tag: str = ""
) -> dict[str, Any]:
    """A product event of the account, with the properties the plays read."""
    properties: dict[str, Any] = {}
    if name == "feature_used":
        properties = {"feature": f"f{rng.randrange(FEATURES)}", "count": rng.randint(1, 5)}
    elif name == "api_used":
        properties = {"calls": rng.randint(10, 400)}
    elif name == "nps_submitted":
        properties = {"score": rng.randint(0, 10)}
    return {
        "type": "track",
        "messageId": f"{tag}t-{account}-{number}",
        "userId": f"{tag}u-{account}",
        "event": name,
        "timestamp": at,
        "context": {"groupId": f"{tag}acct-{account}"},
        "properties": properties,
    }


def calls(
    events: int, accounts: int, tag: str = "", seed: int = 7, at: float | None = None
) -> list[dict[str, Any]]:
    """``events`` calls over ``accounts`` accounts, round by round: every account's group call,
    then its identify call, then track events of random accounts (all stamped ``at``); ``tag``
    prefixes account, user and message ids."""
    rng = random.Random(seed)
    stamp = _stamp(time.time() if at is None else at)
    names, weights = list(TRACKS), list(TRACKS.values())
    out: list[dict[str, Any]] = []
    for i in range(events):
        account, round_ = i % accounts, i // accounts
        if round_ == 0:
            out.append(group_call(account, stamp, tag))
        elif round_ == 1:
            out.append(identify_call(account, stamp, tag))
        else:
            account = rng.randrange(accounts)
            name = rng.choices(names, weights)[0]
            out.append(track_call(account, i, name, stamp, rng, tag))
    return out


def track_calls(count: int, accounts: int, tag: str, seed: int = 11) -> list[dict[str, Any]]:
    """``count`` track calls of random accounts among ``accounts``, message ids ``tag-N``;
    their timestamps are set when they are sent."""
    rng = random.Random(seed)
    names, weights = list(TRACKS), list(TRACKS.values())
    out = []
    for i in range(count):
        call = track_call(rng.randrange(accounts), i, rng.choices(names, weights)[0], "", rng)
        call["messageId"] = f"{tag}-{i}"
        out.append(call)
    return out
