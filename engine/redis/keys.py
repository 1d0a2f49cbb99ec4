"""Every Redis key name Hourglass uses is built here, and nowhere else.

Keys a shard's batch touches carry the shard's hash tag (``hg:{s07}:...``) so the ingest and
commit scripts are valid on Redis Cluster. Shards come from a stable hash of the account id.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

PREFIX = "hg"
#: The consumer group every shard stream is read with.
GROUP = "appliers"


def shard_of(account_id: str, shards: int) -> int:
    """The account's shard: crc32 of its id (stable across processes, unlike ``hash()``)."""
    return zlib.crc32(account_id.encode()) % shards


@dataclass(frozen=True, slots=True)
class ShardKeys:
    """The keys of one shard; all share the hash tag ``{sNN}``."""

    shard: int

    @property
    def tag(self) -> str:
        return f"{PREFIX}:{{s{self.shard:02d}}}"

    @property
    def stream(self) -> str:
        """The shard's event stream (app events and timer firings, in arrival order)."""
        return f"{self.tag}:stream"

    def account(self, account_id: str) -> str:
        """One account's stored state."""
        return f"{self.tag}:acct:{account_id}"

    @property
    def accounts(self) -> str:
        """The set of account ids on this shard."""
        return f"{self.tag}:accounts"

    @property
    def timers(self) -> str:
        """Sorted set of open timers, member ``account|timer_id``, score = due."""
        return f"{self.tag}:timers"

    @property
    def timer_generations(self) -> str:
        """Hash ``account|timer_id`` -> generation of the armed timer."""
        return f"{self.tag}:timers:gen"

    @property
    def outbox(self) -> str:
        """Hash: idempotency key -> action JSON, for actions not yet delivered."""
        return f"{self.tag}:outbox"

    @property
    def outbox_queue(self) -> str:
        """Sorted set of outbox keys by when they may next be attempted."""
        return f"{self.tag}:outbox:queue"

    @property
    def delivered(self) -> str:
        """Hash: idempotency key -> delivery receipt."""
        return f"{self.tag}:delivered"

    def dedupe(self, message_id: str) -> str:
        """Marks a messageId as seen on this shard; expires with the dedupe window."""
        return f"{self.tag}:seen:{message_id}"

    @property
    def lease(self) -> str:
        """Who holds the shard (a consumer token), with a TTL."""
        return f"{self.tag}:lease"

    @property
    def kicked(self) -> str:
        """Set (NX) when a drain task is queued for the shard; cleared when it finishes."""
        return f"{self.tag}:kicked"

    @property
    def dead_letters(self) -> str:
        """Stream of entries that failed to apply, with their error."""
        return f"{self.tag}:dlq"

    @property
    def counters(self) -> str:
        """Hash of per-shard counters (applied, duplicates, dead letters...)."""
        return f"{self.tag}:counters"


#: Not shard-bound: which account a user was last grouped with, and events parked until then.
USERS = f"{PREFIX}:users"


def parked(user_key: str) -> str:
    """Events of a user whose account is not known yet (a bounded list)."""
    return f"{PREFIX}:parked:{user_key}"


PARKED_COUNT = f"{PREFIX}:parked:count"
TASKS = f"{PREFIX}:tasks"
#: The order tasks were first saved in (a list of task ids). Its hash tag is ``TASKS`` itself,
#: so both keys share a Redis Cluster slot and one script can write them together.
TASK_ORDER = f"{{{TASKS}}}:order"


def message(message_id: str) -> str:
    """A messageId seen outside a shard (the embedded runner's dedupe, on Redis)."""
    return f"{PREFIX}:seen:{message_id}"


CONFIG = f"{PREFIX}:config"


#: Invalid ingested events kept for inspection: raw JSON, index, field, reason, time (bounded).
REJECTED = f"{PREFIX}:rejected"


def parked_events(user_key: str) -> str:
    """A user's parked events (list of ``[seq, event]``); ``user:`` keeps ids off PARKED_COUNT.

    Ingest parks here, not under :func:`parked`: a user id ``count`` would make that key
    collide with :data:`PARKED_COUNT` (a hash of ``parked``/``released``/``dropped`` totals).
    """
    return f"{PREFIX}:parked:user:{user_key}"
