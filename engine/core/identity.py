"""Pure account resolution for events that carry only a user (no I/O)."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from engine.core.event import Event


def user_keys(event: Event) -> list[str]:
    """The event's user keys, most specific first: userId, then anonymousId."""
    keys: list[str] = []
    for value in (event.user_id, event.anonymous_id):
        if value and value not in keys:
            keys.append(value)
    return keys


class IdentityDirectory:
    """User key (userId or anonymousId) -> the account it was last grouped with, bounded."""

    def __init__(self, max_users: int = 1_000_000) -> None:
        if max_users < 1:
            raise ValueError("max_users must be at least 1")
        self.max_users = max_users
        self.evicted = 0
        self._links: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._links)

    def __contains__(self, user_key: object) -> bool:
        return user_key in self._links

    def link(self, user_key: str, account_id: str) -> None:
        """Record (or refresh) the user's account; drops the least-recently linked when full."""
        self._links[user_key] = account_id
        self._links.move_to_end(user_key)
        while len(self._links) > self.max_users:
            self._links.popitem(last=False)
            self.evicted += 1

    def account_of(self, user_key: str) -> str | None:
        """The account the user was last linked to, or None."""
        return self._links.get(user_key)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, oldest link first."""
        return {
            "max_users": self.max_users,
            "evicted": self.evicted,
            "links": [[user, account] for user, account in self._links.items()],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IdentityDirectory:
        """Rebuild from :meth:`to_dict` output."""
        directory = cls(int(data.get("max_users", 1_000_000)))
        for user, account in data.get("links", []):
            directory.link(user, account)
        directory.evicted = int(data.get("evicted", 0))
        return directory


class ParkingLot:
    """Events waiting for their user's account, per user key, bounded per user and in total."""

    def __init__(self, per_user: int = 100, max_total: int = 100_000) -> None:
        if per_user < 1 or max_total < 1:
            raise ValueError("per_user and max_total must be at least 1")
        self.per_user = per_user
        self.max_total = max_total
        self.dropped = 0
        self._next_seq = 0
        self._by_user: dict[str, deque[tuple[int, Event]]] = {}
        self._order: OrderedDict[int, str] = OrderedDict()

    @property
    def parked(self) -> int:
        """How many events are parked now."""
        return len(self._order)

    def users(self) -> list[str]:
        """The user keys that have parked events."""
        return list(self._by_user)

    def park(self, user_key: str, event: Event) -> None:
        """Park an event; drops the oldest (the user's, then overall) when a bound is hit."""
        queue = self._by_user.get(user_key)
        if queue is not None and len(queue) >= self.per_user:
            seq, _ = queue.popleft()
            del self._order[seq]
            self.dropped += 1
        elif len(self._order) >= self.max_total:
            self._drop_oldest()  # may empty (and forget) this very user's queue
        self._by_user.setdefault(user_key, deque()).append((self._next_seq, event))
        self._order[self._next_seq] = user_key
        self._next_seq += 1

    def _drop_oldest(self) -> None:
        seq, user_key = self._order.popitem(last=False)
        queue = self._by_user[user_key]
        head, _ = queue.popleft()  # a user's queue is in arrival order: its head is the oldest
        assert head == seq
        if not queue:
            del self._by_user[user_key]
        self.dropped += 1

    def release(self, user_key: str) -> list[Event]:
        """Remove and return the user's parked events, in arrival order."""
        return [event for _, event in self._take(user_key)]

    def release_all(self, user_keys: Iterable[str]) -> list[Event]:
        """Remove and return the parked events of several users, merged in arrival order."""
        taken = [item for key in dict.fromkeys(user_keys) for item in self._take(key)]
        taken.sort(key=lambda item: item[0])
        return [event for _, event in taken]

    def _take(self, user_key: str) -> list[tuple[int, Event]]:
        queue = self._by_user.pop(user_key, None)
        if not queue:
            return []
        for seq, _ in queue:
            del self._order[seq]
        return list(queue)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "per_user": self.per_user,
            "max_total": self.max_total,
            "dropped": self.dropped,
            "next_seq": self._next_seq,
            "users": {
                key: [[seq, event.to_dict()] for seq, event in queue]
                for key, queue in self._by_user.items()
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ParkingLot:
        """Rebuild from :meth:`to_dict` output."""
        lot = cls(int(data.get("per_user", 100)), int(data.get("max_total", 100_000)))
        lot.dropped = int(data.get("dropped", 0))
        items = sorted(
            (int(seq), key, Event.from_dict(raw))
            for key, entries in data.get("users", {}).items()
            for seq, raw in entries
        )
        for seq, key, event in items:
            lot._by_user.setdefault(key, deque()).append((seq, event))
            lot._order[seq] = key
        lot._next_seq = max(int(data.get("next_seq", 0)), items[-1][0] + 1 if items else 0)
        return lot


class Router:
    """Fills in each event's account from groupings, parking events until it is known."""

    def __init__(
        self, directory: IdentityDirectory | None = None, parking: ParkingLot | None = None
    ) -> None:
        self.directory = directory if directory is not None else IdentityDirectory()
        self.parking = parking if parking is not None else ParkingLot()
        #: Events dropped because they had neither an account nor a user to wait on.
        self.unroutable = 0

    def route(self, event: Event) -> list[Event]:
        """The events ready to apply now, each with its account_id set (possibly none)."""
        keys = user_keys(event)
        previous = event.previous_id if event.kind == "alias" else None
        if event.account_id:
            # A group call, or any call carrying context.groupId: it groups its users.
            grouped = [*keys, previous] if previous else keys
            return [event, *self._attach(grouped, event.account_id)]
        if previous:
            return self._alias(event, keys, previous)
        for key in keys:
            account = self.directory.account_of(key)
            if account is not None:
                self.directory.link(key, account)  # refresh: active users are evicted last
                return [replace(event, account_id=account)]
        if not keys:
            self.unroutable += 1
            return []
        self.parking.park(keys[0], event)
        return []

    def _alias(self, event: Event, keys: list[str], previous: str) -> list[Event]:
        """Route an alias by the new user's account, else the previous id's; link the other."""
        found = [(key, self.directory.account_of(key)) for key in dict.fromkeys([*keys, previous])]
        account = next((acc for _, acc in found if acc is not None), None)
        if account is None:
            self.parking.park(keys[0] if keys else previous, event)
            return []
        unknown = [key for key, acc in found if acc is None]
        return [replace(event, account_id=account), *self._attach(unknown, account)]

    def _attach(self, keys: list[str], account_id: str) -> list[Event]:
        """Link users to an account and release what they had parked (following aliases)."""
        pending = list(keys)
        seen: set[str] = set()
        released: list[Event] = []
        while pending:
            batch = [key for key in dict.fromkeys(pending) if key not in seen]
            pending = []
            seen.update(batch)
            for key in batch:
                self.directory.link(key, account_id)
            for parked in self.parking.release_all(batch):
                released.append(replace(parked, account_id=account_id))
                previous = parked.previous_id if parked.kind == "alias" else None
                if previous and self.directory.account_of(previous) is None:
                    pending.append(previous)
        return released

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form of the directory, the parked events and the counter."""
        return {
            "directory": self.directory.to_dict(),
            "parking": self.parking.to_dict(),
            "unroutable": self.unroutable,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Router:
        """Rebuild from :meth:`to_dict` output."""
        router = cls(
            IdentityDirectory.from_dict(data.get("directory", {})),
            ParkingLot.from_dict(data.get("parking", {})),
        )
        router.unroutable = int(data.get("unroutable", 0))
        return router
