"""Every Redis key name Hourglass uses is built here, and nowhere else.

Keys a shard's batch touches carry the shard's hash tag (``hg:{s07}:...``) so the ingest and
commit scripts are valid on Redis Cluster. Shards come from a stable hash of the account id.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from hashlib import blake2b

PREFIX = "hg"
#: A shard's dedupe hashes, one per period of a window / (SEEN_SLOTS - 1) (ingest_lua.py).
SEEN_SLOTS = 3
#: A shard's receipt hashes, one per period of the receipt retention / (RECEIPT_SLOTS - 1)
#: (engine/redis/lua/receipts.lua).
RECEIPT_SLOTS = 3
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
        """The shard's event stream (app events and wakes of accounts with due timers)."""
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
        """Sorted set: one member per account with open timers, scored with its earliest due."""
        return f"{self.tag}:timers"

    @property
    def timer_generations(self) -> str:
        """The old timer format's hash ``account|timer_id`` -> generation (one member per timer).

        Nothing writes it any more: the pop script reads it to recognise old members that are
        still in ``timers`` and empties it as they come due.
        """
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
    def receipts(self) -> list[str]:
        """The ring of receipt hashes, one per period: idempotency key -> delivery receipt."""
        return [f"{self.tag}:delivered:{slot}" for slot in range(RECEIPT_SLOTS)]

    @property
    def legacy_receipts(self) -> str:
        """The earlier versions' one receipts hash (idempotency key -> receipt), never pruned.

        Nothing adds receipts to it any more: it is read until it ages out (lua/receipts.lua).
        """
        return f"{self.tag}:delivered"

    @property
    def seen(self) -> list[str]:
        """The ring of dedupe hashes, one per period: ``seen_field(messageId)`` -> append time."""
        return [f"{self.tag}:dedupe:seen:{slot}" for slot in range(SEEN_SLOTS)]

    def recent(self, account_id: str) -> str:
        """An account's latest delivered actions (a bounded list, newest first)."""
        return f"{self.tag}:recent:{account_id}"

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
PARKED_COUNT = f"{PREFIX}:parked:count"
#: Sorted set of the user keys that may have parked events, each scored with a time after
#: which its parked list has surely expired: ingest reads the parked lists of these users only.
PARKED_INDEX = f"{PREFIX}:parked:index"
TASKS = f"{PREFIX}:tasks"
#: The order tasks were first saved in (a list of task ids). Its hash tag is ``TASKS`` itself,
#: so both keys share a Redis Cluster slot and one script can write them together.
TASK_ORDER = f"{{{TASKS}}}:order"


def seen_field(message_id: str) -> bytes:
    """A messageId's field in its shard's seen hashes: 12 bytes (96 bits) of its BLAKE2b hash."""
    return blake2b(message_id.encode(), digest_size=12).digest()


def message(message_id: str) -> str:
    """A messageId seen outside a shard (the embedded runner's dedupe, on Redis)."""
    return f"{PREFIX}:seen:{message_id}"


CONFIG = f"{PREFIX}:config"


#: Invalid ingested events kept for inspection: raw JSON, index, field, reason, time (bounded).
REJECTED = f"{PREFIX}:rejected"


def parked_events(user_key: str) -> str:
    """A user's parked events (list of ``[seq, event]``).

    ``user:`` keeps user ids off the other ``hg:parked:`` keys: a user id ``count`` would
    otherwise name :data:`PARKED_COUNT` (a hash of ``parked``/``released``/``dropped`` totals).
    """
    return f"{PREFIX}:parked:user:{user_key}"


#: The virtual clock of a deployment driven through a replay (``HOURGLASS_CLOCK=virtual``).
CLOCK = f"{PREFIX}:clock"


# -- outbox dispatch: delivery attempts, errors, dead letters (see engine/redis/outbox.py) --


def outbox_attempts(shard: int) -> str:
    """Hash: idempotency key -> failed delivery attempts so far (pending and dead entries)."""
    return f"{ShardKeys(shard).tag}:outbox:attempts"


def outbox_errors(shard: int) -> str:
    """Hash: idempotency key -> the last delivery error (pending and dead entries)."""
    return f"{ShardKeys(shard).tag}:outbox:errors"


def outbox_dead(shard: int) -> str:
    """Hash: idempotency key -> dead letter JSON ``{key, action, error, attempts, at}``."""
    return f"{ShardKeys(shard).tag}:outbox:dead"


def dispatch_kicked(shard: int) -> str:
    """Set (NX, with a TTL) while a dispatch task for the shard is queued and not started."""
    return f"{ShardKeys(shard).tag}:outbox:kicked"


# -- published playbook sets -----------------------------------------------------------------
# One hash tag for all of them, so a publish is one transaction (MULTI/EXEC) on Redis Cluster.

PLAYBOOKS = f"{PREFIX}:{{playbooks}}"
#: The version number of the set workers run; they GET it at most once a second.
PLAYBOOKS_CURRENT = f"{PLAYBOOKS}:current"
#: The last version number handed out (never reused, even when old sets are pruned).
PLAYBOOKS_SEQ = f"{PLAYBOOKS}:seq"
#: List of the stored versions, newest first (bounded: the oldest are pruned).
PLAYBOOKS_HISTORY = f"{PLAYBOOKS}:history"
#: Hash: version -> JSON metadata (author, time, digest, note, playbooks).
PLAYBOOKS_META = f"{PLAYBOOKS}:meta"


def playbook_files(version: int) -> str:
    """Hash of one published set's files: relative path -> text."""
    return f"{PLAYBOOKS}:files:{version}"


# -- HTTP API ---------------------------------------------------------------------------------

#: Stream of every management write through the API: who (token name), role, what, when.
AUDIT = f"{PREFIX}:audit"
