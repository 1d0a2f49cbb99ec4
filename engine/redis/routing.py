"""Account resolution on Redis: the users hash and per-user parked lists.

Every decision is made by the pure :class:`engine.core.identity.Router`, run over what Redis
holds for the batch's users; this module only loads that state and writes the outcome back.

A call is: :meth:`RedisRouter.plan` (reads only), :meth:`RedisRouter.write` (links, parks),
the caller appends ``plan.routed`` to the shard streams, then :meth:`RedisRouter.settle`
removes the released entries from their parked lists. Released entries are removed only
after they are appended, so a failure in between re-releases them later (the shard's
messageId dedupe drops the second copy) instead of losing them.

Concurrency: a linker writes the link, then re-reads the user's parked list; a parker pushes,
then re-reads the link. Whichever goes second sees the other, so a concurrently parked event
is released by one of them (or by both, and deduplicated).

Most events park nothing and release nothing, so planning reads only the parked lists of users
in the parked index (``PARKED_INDEX``), which a parker updates before it pushes: one ZMSCORE a
call instead of a read per event. The linker's re-read above reads the list itself, whatever
the index says, so a list the index does not know (parked before the index existed) is still
released when its user is linked.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from copy import copy
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from redis import Redis
from redis.typing import EncodableT

from engine.core.event import Event
from engine.core.identity import IdentityDirectory, ParkingLot, Router, user_keys
from engine.redis.keys import PARKED_COUNT, PARKED_INDEX, USERS, parked_events

#: Events kept per parked user (the oldest are dropped), as in the pure ParkingLot.
PER_USER = 100
#: A parked list expires this long after its last park (users never grouped, e.g. visitors).
PARK_TTL_S = 30 * 86_400
#: A user stays in the parked index this much longer than its list can live (clock skew between
#: this host and Redis, which expires the list).
INDEX_SLACK_S = 86_400


@dataclass(slots=True)
class Routed:
    """An event ready to append to its account's shard; ``index`` is None if parked earlier."""

    account_id: str
    event: Event
    index: int | None


@dataclass(frozen=True, slots=True)
class _Stored:
    """A parked entry as Redis holds it: ``[seq, Event.to_dict()]``."""

    key: str
    raw: bytes
    seq: int
    event: Event


@dataclass
class RoutePlan:
    """What routing a batch decided, and what must be written for it."""

    #: Events to append, in order (a group event is followed by what it released).
    routed: list[Routed] = field(default_factory=list)
    #: Input indexes left parked, dropped by the per-user bound, or with nobody to route by.
    parked: list[int] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)
    unroutable: list[int] = field(default_factory=list)
    #: User key -> account, where it differs from the users hash.
    links: dict[str, str] = field(default_factory=dict)
    #: User key -> new entries to park.
    new_parks: dict[str, list[tuple[int, bytes]]] = field(default_factory=dict)
    #: User key -> stored entries routed now (removed after they are appended).
    released: dict[str, list[bytes]] = field(default_factory=dict)
    #: User key -> stored entries the per-user bound dropped, or undecodable ones.
    stale: dict[str, list[bytes]] = field(default_factory=dict)
    #: User key -> every stored entry seen while planning (to spot later arrivals).
    seen: dict[str, set[bytes]] = field(default_factory=dict)
    #: Entries dropped by Redis's own trim (pushes racing with this call).
    trimmed: int = 0

    @property
    def released_count(self) -> int:
        """How many entries of earlier calls this plan routes."""
        return sum(len(raws) for raws in self.released.values())


class _Directory(IdentityDirectory):
    """The users hash as loaded (unbounded); notes lookups of users it was not given."""

    def __init__(self, links: Mapping[str, str | None]) -> None:
        super().__init__(max_users=sys.maxsize)
        self.known = links
        self.missing: set[str] = set()
        for user, account in links.items():
            if account is not None:
                self.link(user, account)

    def account_of(self, user_key: str) -> str | None:
        """The linked account; a user not loaded is noted as missing."""
        account = super().account_of(user_key)
        if account is None and user_key not in self.known:
            self.missing.add(user_key)
        return account


class _Lot(ParkingLot):
    """Parked lists as loaded (no total bound); notes releases of users it was not given."""

    def __init__(self, per_user: int, loaded: Iterable[str]) -> None:
        super().__init__(per_user=per_user, max_total=sys.maxsize)
        self.loaded = set(loaded)
        self.missing: set[str] = set()
        self.log: list[Event] = []

    def release_all(self, user_keys: Iterable[str]) -> list[Event]:
        """Release as the pure lot does, logging what came out (to trace where it came from)."""
        wanted = list(user_keys)
        if not self.loaded.issuperset(wanted):
            self.missing.update(key for key in wanted if key not in self.loaded)
        if not self.parked:  # most calls: nothing to release
            return []
        released = super().release_all(wanted)
        self.log.extend(released)
        return released


def event_keys(event: Event) -> list[str]:
    """Every user key an event names: userId, anonymousId and an alias's previousId."""
    found = user_keys(event)
    if event.kind == "alias" and event.previous_id and event.previous_id not in found:
        found.append(event.previous_id)
    return found


def _text(value: Any) -> str:
    """A reply as text (clients may or may not decode responses)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _raw(value: Any) -> bytes:
    """A reply as bytes."""
    return value.encode() if isinstance(value, str) else bytes(value)


def _decode(key: str, raw: bytes) -> _Stored | None:
    """A stored parked entry, or None if it is not one."""
    try:
        seq, data = orjson.loads(raw)
        return _Stored(key, raw, int(seq), Event.from_dict(data))
    except (ValueError, TypeError, KeyError):
        return None


def _distinct(events: Sequence[Event]) -> list[Event]:
    """The events as distinct objects (planning traces them by identity): repeats are copied."""
    ids: set[int] = set()
    out: list[Event] = []
    for event in events:
        if id(event) in ids:
            event = copy(event)
        ids.add(id(event))
        out.append(event)
    return out


def _attempt(
    events: Sequence[Event],
    links: Mapping[str, str | None],
    stored: Mapping[str, list[_Stored]],
    per_user: int,
    now_ns: int,
) -> tuple[RoutePlan, set[str], set[str]]:
    """Route the batch with the pure Router over the loaded state; also what was missing.

    A new park's sequence number is ``base + index``: after every stored one and the clock.
    Events are traced by identity: the pure lot hands back the very objects it was given.
    """
    directory = _Directory(links)
    lot = _Lot(per_user, stored)
    origin: dict[int, int | _Stored] = {}
    for entry in sorted((s for entries in stored.values() for s in entries), key=_seq):
        lot.park(entry.key, entry.event)
        origin[id(entry.event)] = entry
    router = Router(directory, lot)
    plan = RoutePlan()
    waiting: list[int] = []
    for index, event in enumerate(events):
        origin[id(event)] = index
        lot.log.clear()
        unroutable = router.unroutable
        ready = router.route(event)
        if not ready:
            (plan.unroutable if router.unroutable > unroutable else waiting).append(index)
            continue
        sources = [index, *(origin[id(released)] for released in lot.log)] if lot.log else [index]
        for source, out in zip(sources, ready, strict=True):
            assert out.account_id is not None
            if isinstance(source, _Stored):
                plan.released.setdefault(source.key, []).append(source.raw)
                plan.routed.append(Routed(out.account_id, out, None))
            else:
                plan.routed.append(Routed(out.account_id, out, source))
    if directory.missing or lot.missing:
        return plan, directory.missing, lot.missing
    _leftovers(plan, lot, origin, stored, waiting, now_ns)
    for user, account in directory.to_dict()["links"]:
        if links.get(user) != account:
            plan.links[user] = account
    return plan, set(), set()


def _leftovers(
    plan: RoutePlan,
    lot: ParkingLot,
    origin: Mapping[int, int | _Stored],
    stored: Mapping[str, list[_Stored]],
    waiting: list[int],
    now_ns: int,
) -> None:
    """Fill in what stays parked (new parks get a sequence number), dropped and stale."""
    base = max([now_ns, *(s.seq + 1 for entries in stored.values() for s in entries)])
    kept: set[bytes] = set()
    for key in lot.users():
        for event in lot.release(key):
            source = origin[id(event)]
            if isinstance(source, _Stored):
                kept.add(source.raw)
            else:
                plan.parked.append(source)
                raw = orjson.dumps([base + source, event.to_dict()])
                plan.new_parks.setdefault(key, []).append((source, raw))
    plan.parked.sort()
    done = {item.index for item in plan.routed}.union(plan.parked)
    plan.dropped = [index for index in waiting if index not in done]
    released = {raw for raws in plan.released.values() for raw in raws}
    for key, entries in stored.items():
        plan.seen[key] = {entry.raw for entry in entries}
        stale = [e.raw for e in entries if e.raw not in kept and e.raw not in released]
        if stale:
            plan.stale[key] = stale


def _seq(entry: _Stored) -> int:
    """Sort key: the order entries were parked in."""
    return entry.seq


class RedisRouter:
    """The Router's rules on Redis: ``hg:users`` (user key -> account) and parked lists."""

    def __init__(
        self,
        client: Redis,
        *,
        per_user: int = PER_USER,
        park_ttl_s: int = PARK_TTL_S,
        now_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if per_user < 1 or park_ttl_s < 1:
            raise ValueError("per_user and park_ttl_s must be at least 1")
        self.client = client
        self.per_user = per_user
        self.park_ttl_s = park_ttl_s
        self._now_ns = now_ns

    def plan(self, events: Sequence[Event]) -> RoutePlan:
        """Route a batch in order (reads only): what to append, park, link and release."""
        batch = _distinct(events)
        want_links: set[str] = set()
        want_parked: set[str] = set()
        for event in batch:
            keys = event_keys(event)
            want_links.update(keys)
            if event.account_id or event.kind == "alias":
                want_parked.update(keys)
        links: dict[str, str | None] = {}
        stored: dict[str, list[_Stored]] = {}
        bad: dict[str, list[bytes]] = {}
        while True:
            self._load(want_links - links.keys(), want_parked - stored.keys(), links, stored, bad)
            now = self._now_ns()
            plan, want_links, want_parked = _attempt(batch, links, stored, self.per_user, now)
            if not want_links and not want_parked:
                break
        for key, raws in bad.items():
            plan.stale.setdefault(key, []).extend(raws)
            plan.seen.setdefault(key, set()).update(raws)
        return plan

    def _load(
        self,
        link_keys: set[str],
        park_keys: set[str],
        links: dict[str, str | None],
        stored: dict[str, list[_Stored]],
        bad: dict[str, list[bytes]],
    ) -> None:
        """Read the links of these users and which of them the parked index holds (one round
        trip), then the parked lists of those (a second one, only when there are any)."""
        users, lists = sorted(link_keys), sorted(park_keys)
        if not users and not lists:
            return
        pipe = self.client.pipeline(transaction=False)
        if users:
            pipe.hmget(USERS, users)
        if lists:
            pipe.zmscore(PARKED_INDEX, lists)
        replies = pipe.execute()
        if users:
            found = replies.pop(0)
            links.update(
                (u, None if a is None else _text(a)) for u, a in zip(users, found, strict=True)
            )
        scores = replies[0] if lists else []
        indexed = [key for key, at in zip(lists, scores, strict=True) if at is not None]
        stored.update((key, []) for key in lists)
        for key in indexed:
            pipe.lrange(parked_events(key), 0, -1)
        for key, entries in zip(indexed, pipe.execute() if indexed else [], strict=True):
            for value in entries:
                entry = _decode(key, _raw(value))
                if entry is None:
                    bad.setdefault(key, []).append(_raw(value))
                else:
                    stored[key].append(entry)

    def write(self, plan: RoutePlan) -> None:
        """Write links and parks; add to ``plan.routed`` what concurrent calls parked meanwhile."""
        pipe = self.client.pipeline(transaction=False)
        relinked = list(plan.links)
        parked_keys = list(plan.new_parks)
        if plan.links:
            mapping: dict[EncodableT, EncodableT] = dict(plan.links.items())
            pipe.hset(USERS, mapping=mapping)
        for key in relinked:  # after the link: anything parked from now on sees it
            pipe.lrange(parked_events(key), 0, -1)
        for key, raws in plan.stale.items():
            for raw in raws:
                pipe.lrem(parked_events(key), 1, raw.decode())
        if parked_keys:  # indexed before the push: a planner that misses the index misses no list
            now_s = self._now_ns() // 1_000_000_000
            pipe.zremrangebyscore(PARKED_INDEX, "-inf", now_s)
            until = now_s + self.park_ttl_s + INDEX_SLACK_S
            pipe.zadd(PARKED_INDEX, dict.fromkeys(parked_keys, until), gt=True)
        for key in parked_keys:
            name = parked_events(key)
            pipe.rpush(name, *(raw for _, raw in plan.new_parks[key]))
            pipe.ltrim(name, -self.per_user, -1)
            pipe.expire(name, self.park_ttl_s)
        counts = {
            "parked": len(plan.parked),
            "dropped": len(plan.dropped) + sum(map(len, plan.stale.values())),
        }
        for name, count in counts.items():
            if count:
                pipe.hincrby(PARKED_COUNT, name, count)
        if parked_keys:  # after the push: a link made meanwhile is seen here
            pipe.hmget(USERS, parked_keys)
        if not len(pipe):
            return
        replies = pipe.execute()
        at = 1 if plan.links else 0
        late = replies[at : at + len(relinked)]
        at += len(relinked) + sum(map(len, plan.stale.values())) + (2 if parked_keys else 0)
        for _ in parked_keys:
            plan.trimmed += max(0, int(replies[at]) - self.per_user)
            at += 3
        linked: dict[str, str] = {}
        if parked_keys:
            for key, account in zip(parked_keys, replies[-1], strict=True):
                if account is not None:
                    linked[key] = _text(account)
        found = {key: plan.links[key] for key in relinked}
        self._release_late(plan, found, dict(zip(relinked, late, strict=True)))
        if linked:
            pipe = self.client.pipeline(transaction=False)
            for key in linked:
                pipe.lrange(parked_events(key), 0, -1)
            self._release_late(plan, linked, dict(zip(linked, pipe.execute(), strict=True)))

    def _release_late(
        self, plan: RoutePlan, accounts: Mapping[str, str], lists: Mapping[str, list[Any]]
    ) -> None:
        """Route entries found on users now linked that this plan has not routed yet."""
        ours = {raw: index for entries in plan.new_parks.values() for index, raw in entries}
        late: list[tuple[_Stored, str]] = []
        for key, values in lists.items():
            seen = plan.seen.get(key, set())
            for value in values:
                raw = _raw(value)
                entry = _decode(key, raw)
                if raw in seen or entry is None:
                    continue
                seen.add(raw)
                late.append((entry, accounts[key]))
            plan.seen[key] = seen
        late.sort(key=lambda item: item[0].seq)
        for entry, account in late:
            index = ours.get(entry.raw)
            if index is not None:
                plan.parked.remove(index)
            plan.released.setdefault(entry.key, []).append(entry.raw)
            plan.routed.append(Routed(account, replace(entry.event, account_id=account), index))

    def settle(self, plan: RoutePlan) -> None:
        """After the appends: remove the released entries from their lists, count them."""
        pipe = self.client.pipeline(transaction=False)
        for key, raws in plan.released.items():
            for raw in raws:
                pipe.lrem(parked_events(key), 1, raw.decode())
        if plan.released:
            pipe.hincrby(PARKED_COUNT, "released", plan.released_count)
        if plan.trimmed:
            pipe.hincrby(PARKED_COUNT, "dropped", plan.trimmed)
        if len(pipe):
            pipe.execute()
