"""A realistic, deterministic synthetic history of Segment calls for ``hourglass demo``."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from engine.demo.customers import (
    FATE_WEIGHTS,
    FATES,
    flywheel_customer,
    hourglass_customer,
    stray_bounce,
)
from engine.demo.profiles import DAY, make_account
from engine.demo.prospects import FLYWHEEL, FLYWHEEL_ENTRY, HOURGLASS, HOURGLASS_ENTRY, walk
from engine.demo.story import Call, Story

#: Where the history starts unless told otherwise (fixed, so a seed always gives the same file).
DEFAULT_START = datetime(2025, 1, 6, tzinfo=UTC)
#: Namespace of the history's message ids (uuid5 of seed, account and call number).
_NAMESPACE = uuid.UUID("0b6f3c1e-9a7d-5e2b-8c4f-1d2e3f405162")
#: What happens to an account before the purchase, and how often.
_PRE_FATES = ("customer", "lost", "pipeline")
_PRE_WEIGHTS = (0.55, 0.17, 0.28)


def generate(
    seed: int = 7, accounts: int = 300, days: int = 120, start: datetime | None = None
) -> list[dict[str, Any]]:
    """Segment calls for ``accounts`` accounts over ``days`` days, sorted by timestamp.

    Even-numbered accounts speak the flywheel's event vocabulary, odd ones the hourglass's.
    Each account opens with a ``group`` call and its contacts' ``identify`` calls.
    """
    begin = (start or DEFAULT_START).timestamp()
    end = begin + days * DAY
    timeline: list[tuple[float, int, int, str, Call]] = []
    for index in range(accounts):
        story = _story(seed, index, begin, end)
        ordered = sorted(story.calls, key=lambda c: c.ts)
        for seq, call in enumerate(ordered):
            timeline.append((call.ts, index, seq, story.account.account_id, call))
    timeline.sort(key=lambda row: row[:3])
    return [_segment(call, account, f"{seed}:{i}:{n}") for _, i, n, account, call in timeline]


def _story(seed: int, index: int, begin: float, end: float) -> Story:
    """One account's whole story, from its own random stream."""
    rng = random.Random(f"hourglass-demo:{seed}:{index}")
    model = "flywheel" if index % 2 == 0 else "hourglass"
    account = make_account(rng, index, model, begin)
    fate = rng.choices(_PRE_FATES, _PRE_WEIGHTS)[0]
    reach = 0.4 if fate == "customer" else 0.9
    story = Story(rng, account, begin + rng.uniform(0, reach) * (end - begin), end)
    story.open()
    if model == "flywheel":
        bought = walk(story, FLYWHEEL, FLYWHEEL_ENTRY, fate, winback=0.15)
    else:
        bought = walk(story, HOURGLASS, HOURGLASS_ENTRY, fate)
    if bought is not None:
        after = rng.choices(FATES, FATE_WEIGHTS)[0]
        if model == "flywheel":
            flywheel_customer(story, bought, after)
        else:
            hourglass_customer(story, bought, after)
    stray_bounce(story)
    return story


def _segment(call: Call, account: str, key: str) -> dict[str, Any]:
    """A story call as a Segment-spec JSON dict."""
    out: dict[str, Any] = {
        "type": call.type,
        "messageId": str(uuid.uuid5(_NAMESPACE, key)),
        "timestamp": iso(call.ts),
        "userId": call.user_id,
        "context": {"groupId": account},
    }
    if call.type == "track":
        out["event"] = call.event
        out["properties"] = call.body or {}
    else:
        out["traits"] = call.body or {}
    if call.type == "group":
        out["groupId"] = account
    return out


def iso(ts: float) -> str:
    """Epoch seconds as ISO-8601 UTC with milliseconds and a Z."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def write_jsonl(events: Iterable[dict[str, Any]], path: str | Path) -> int:
    """Write one event per line; how many were written."""
    count = 0
    with Path(path).open("wb") as out:
        for event in events:
            out.write(orjson.dumps(event) + b"\n")
            count += 1
    return count
