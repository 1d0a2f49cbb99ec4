"""Shared by the ingest tests (unit and integration): calls, parity runs, stream readers."""

from __future__ import annotations

import random
from typing import Any

import orjson
import redis

from engine.core.events import parse_event, to_core
from engine.core.identity import ParkingLot, Router
from engine.redis.ingest import Ingestor
from engine.redis.keys import PARKED_COUNT, ShardKeys, parked_events
from engine.redis.routing import RedisRouter


def call(kind: str, mid: str, **fields: Any) -> dict[str, Any]:
    """A raw Segment call."""
    return {"type": kind, "messageId": mid, "timestamp": "2026-01-05T09:00:00Z", **fields}


def track(mid: str, **fields: Any) -> dict[str, Any]:
    """A raw track call."""
    return call("track", mid, event="Used", **fields)


def stream(client: redis.Redis, shards: int = 1) -> list[tuple[str, str]]:
    """(account, messageId) of every stream entry, shard by shard, in order."""
    out = []
    for shard in range(shards):
        for _, fields in client.xrange(ShardKeys(shard).stream):
            data = orjson.loads(fields[b"e"])
            out.append((data["a"], data["m"]))
    return out


def parked_ids(client: redis.Redis, user: str) -> list[str]:
    """The messageIds parked for a user, oldest first."""
    entries = [orjson.loads(raw) for raw in client.lrange(parked_events(user), 0, -1)]
    return [data["m"] for _, data in sorted(entries, key=lambda entry: entry[0])]


def counts(client: redis.Redis) -> dict[str, int]:
    """The parking counters."""
    return {k.decode(): int(v) for k, v in client.hgetall(PARKED_COUNT).items()}


def pure(raws: list[dict[str, Any]], per_user: int = 100) -> tuple[list[tuple[str, str]], Router]:
    """What the pure Router sends where, in order, for the same calls."""
    router = Router(parking=ParkingLot(per_user=per_user, max_total=10**9))
    out = []
    for raw in raws:
        for ready in router.route(to_core(parse_event(raw), 0.0)):
            assert ready.account_id is not None
            out.append((ready.account_id, ready.message_id))
    return out, router


def on_redis(
    client: redis.Redis, raws: list[dict[str, Any]], chunks: list[int], per_user: int = 100
) -> list[tuple[str, str]]:
    """The same calls through the Ingestor (one shard), in chunks of the given sizes."""
    ingestor = Ingestor(client, shards=1, router=RedisRouter(client, per_user=per_user))
    at = 0
    for size in chunks:
        ingestor.ingest(raws[at : at + size])
        at += size
    assert at == len(raws)
    return stream(client)


SEQUENCES = {
    "parked then grouped": [
        track("1", userId="u1"),
        call("page", "2", anonymousId="a1"),
        track("3", userId="u1"),
        call("group", "g", groupId="acme", userId="u1", anonymousId="a1"),
        track("4", anonymousId="a1"),
    ],
    "context groupId groups": [
        track("1", userId="u1"),
        track("2", userId="u1", context={"groupId": "acme"}),
        track("3", userId="u1"),
    ],
    "regrouping moves the user": [
        call("group", "g1", groupId="acme", userId="u1"),
        track("1", userId="u1"),
        call("group", "g2", groupId="globex", userId="u1"),
        track("2", userId="u1"),
    ],
    "alias links previous id": [
        call("group", "g", groupId="acme", anonymousId="anon-1"),
        call("alias", "al", userId="u1", previousId="anon-1"),
        track("t", userId="u1"),
    ],
    "parked alias links previous id when released": [
        call("page", "p", anonymousId="anon-1"),
        call("alias", "al", userId="u1", previousId="anon-1"),
        call("group", "g", groupId="acme", userId="u1"),
        track("t", anonymousId="anon-1"),
    ],
    "alias keeps new user's account": [
        call("group", "g1", groupId="acme", userId="old"),
        call("group", "g2", groupId="globex", userId="new"),
        call("alias", "al", userId="new", previousId="old"),
        track("t", userId="old"),
    ],
}


def random_calls(rng: random.Random, n: int) -> list[dict[str, Any]]:
    """Random calls over a few users, visitors and accounts (unique messageIds)."""
    users = [f"u{i}" for i in range(6)]
    anons = [f"a{i}" for i in range(6)]
    accounts = ["acme", "globex", "ini"]
    kinds = ["track"] * 6 + ["page", "identify", "group", "alias", "context"]
    raws = []
    for i in range(n):
        kind = rng.choice(kinds)
        ids: dict[str, Any] = {}
        if rng.random() < 0.7:
            ids["userId"] = rng.choice(users)
        if not ids or rng.random() < 0.4:
            ids["anonymousId"] = rng.choice(anons)
        if kind == "group":
            raws.append(call("group", f"m{i}", groupId=rng.choice(accounts), **ids))
        elif kind == "alias":
            previous = rng.choice(users + anons)
            raws.append(call("alias", f"m{i}", userId=rng.choice(users), previousId=previous))
        elif kind == "context":
            raws.append(track(f"m{i}", context={"groupId": rng.choice(accounts)}, **ids))
        elif kind == "identify":
            raws.append(call("identify", f"m{i}", traits={"n": i}, **ids))
        else:
            raws.append(call(kind, f"m{i}", event="E", **ids))
    return raws
