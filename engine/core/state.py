"""An account's state: stages per track, traits, flags, metrics, health, contacts, timers,
open tasks and per-playbook bookkeeping. Every list is bounded.

The stored form (``dumps``/``loads``) is the state as one MessagePack array: its parts are
msgspec Structs laid out by position, so encoding and decoding run in C, with no Python code
per field. Longer states are zstd-compressed behind a one-byte marker. States stored in the
older form (compact JSON, zlib-compressed behind the same marker) still load.
"""

from __future__ import annotations

import threading
import zlib
from typing import Any

import msgspec
import orjson
import zstandard

#: Bounds that keep an account's state well under 1 KB in the common case.
STAGE_HISTORY = 8
HEALTH_HISTORY = 6
MAX_CONTACTS = 25
MAX_OPEN_TASKS = 20
MAX_TRAITS = 64
MAX_FLAGS = 32

#: Stored states longer than this are compressed behind a one-byte marker.
COMPRESS_ABOVE = 128
COMPRESSED = b"\x00"
#: How a zstd frame starts; a zlib stream (the older form) never starts this way.
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
ZSTD_LEVEL = 3

#: The flag that puts an account's customer-facing communication on hold.
COMMS_HOLD = "comms_hold"


class StageVisit(msgspec.Struct, array_like=True):
    """A past stage on a track: which, when entered, when left."""

    stage: str
    entered: float
    left: float


class TrackState(msgspec.Struct, array_like=True):
    """Where an account is on one track, and where it has been."""

    stage: str
    entered: float
    history: list[StageVisit] = msgspec.field(default_factory=list)

    def move(self, stage: str, at: float) -> None:
        self.history.append(StageVisit(self.stage, self.entered, at))
        del self.history[:-STAGE_HISTORY]
        self.stage, self.entered = stage, at


class Contact(msgspec.Struct, array_like=True):
    """One of the account's people, from ``identify`` calls."""

    user_id: str
    email: str | None = None
    role: str | None = None
    tz: str | None = None
    name: str | None = None
    last_seen: float = 0.0
    active: bool = True
    bounced: bool = False


class Timer(msgspec.Struct, array_like=True):
    """A durable per-account deadline; ``generation`` tells a live firing from a stale one."""

    generation: int
    due: float


class OpenTask(msgspec.Struct, array_like=True):
    """A CSM task opened by a playbook and not yet completed."""

    playbook: str
    title: str
    assignee: str
    due: float


class SequenceRun(msgspec.Struct, array_like=True):
    """An account's place in a playbook's sequence of steps."""

    occurrence: str
    version: int
    step: int
    started: float
    goal_by: float | None = None


class PlaybookBook(msgspec.Struct, array_like=True):
    """Per-playbook bookkeeping for one account."""

    fired: int = 0
    last_fired: float | None = None
    run: SequenceRun | None = None
    goals: int = 0
    #: Trigger index -> a marker: 1 while a threshold is crossed or an inactivity trigger
    #: awaits its reset (0 once a threshold is evaluated and not crossed); for a date
    #: trigger, the due time it already fired for. Whole numbers stay ints: one byte stored.
    marks: dict[int, int | float] = msgspec.field(default_factory=dict)

    @property
    def untouched(self) -> bool:
        """Whether this book holds nothing worth storing."""
        return not (self.fired or self.run or self.goals or self.marks)


class AccountState(msgspec.Struct, array_like=True):
    """Everything the engine keeps about one account.

    Stored by position: a new field goes at the end, with a default, so stored states
    without it still load."""

    account_id: str
    created: float
    last_event: float = 0.0
    tracks: dict[str, TrackState] = msgspec.field(default_factory=dict)
    traits: dict[str, Any] = msgspec.field(default_factory=dict)
    #: Flag name -> expiry time (0 = never expires).
    flags: dict[str, float] = msgspec.field(default_factory=dict)
    #: Metric name -> bucket index -> value (count/sum), or {0: ts} for last_seen.
    #: Stored apart, as dense lists (see ``dumps``).
    metrics: dict[str, dict[int, float]] = msgspec.field(default_factory=dict)
    health: float | None = None
    health_history: list[tuple[float, float]] = msgspec.field(default_factory=list)
    #: Manual health adjustments: (amount, expiry or 0).
    adjustments: list[tuple[float, float]] = msgspec.field(default_factory=list)
    contacts: dict[str, Contact] = msgspec.field(default_factory=dict)
    timers: dict[str, Timer] = msgspec.field(default_factory=dict)
    timer_seq: int = 0
    tasks: dict[str, OpenTask] = msgspec.field(default_factory=dict)
    books: dict[str, PlaybookBook] = msgspec.field(default_factory=dict)
    dead_letters: int = 0

    def book(self, playbook_id: str) -> PlaybookBook:
        book = self.books.get(playbook_id)
        if book is None:
            book = self.books[playbook_id] = PlaybookBook()
        return book

    def flag_set(self, name: str, now: float) -> bool:
        expiry = self.flags.get(name)
        return expiry is not None and (expiry == 0 or expiry > now)

    def live_flags(self, now: float) -> list[str]:
        return [name for name in self.flags if self.flag_set(name, now)]

    def on_hold(self, now: float) -> bool:
        """Whether a comms hold silences every customer-facing action."""
        return self.flag_set(COMMS_HOLD, now)

    # -- the stored form ---------------------------------------------------------------------

    def dumps(self) -> bytes:
        """The stored form: ``[state, metrics]`` as MessagePack, the state's metrics left empty
        in it and stored beside it as dense lists (a month of daily counts in ~35 bytes);
        zstd-compressed behind a marker when long (nearly every account)."""
        metrics = {k: _dense(buckets) for k, buckets in self.metrics.items() if buckets}
        state = msgspec.structs.replace(self, metrics={}) if self.metrics else self
        raw = _ENCODER.encode((state, metrics))
        if len(raw) > COMPRESS_ABOVE:
            return COMPRESSED + _zstd().compress(raw)
        return raw

    @classmethod
    def loads(cls, raw: bytes | str) -> AccountState:
        """A state from its stored form, the older JSON form included."""
        if isinstance(raw, str):
            return cls.from_dict(orjson.loads(raw))
        if raw[:1] == COMPRESSED:
            body = memoryview(raw)[1:]
            if body[:4] == ZSTD_MAGIC:
                raw = _zstd_reader().decompress(body)
            else:
                raw = zlib.decompress(body)
        if raw[:1] == b"{":
            return cls.from_dict(orjson.loads(raw))
        state, metrics = _DECODER.decode(raw)
        if metrics:
            state.metrics = {k: _sparse(dense) for k, dense in metrics.items()}
        return state

    # -- the JSON form: what was stored before the binary form, and a readable dump -----------

    def to_dict(self) -> dict[str, Any]:
        """A compact, JSON-ready form with short keys (the older stored form)."""
        out: dict[str, Any] = {
            "id": self.account_id,
            "c": _n(self.created),
            "l": _n(self.last_event),
        }
        if self.tracks:
            out["s"] = {
                k: [
                    t.stage,
                    _n(t.entered),
                    [[h.stage, _n(h.entered), _n(h.left)] for h in t.history],
                ]
                for k, t in self.tracks.items()
            }
        _put(out, "t", self.traits)
        _put(out, "f", {k: _n(v) for k, v in self.flags.items()})
        if self.metrics:
            out["m"] = {k: _dense(buckets) for k, buckets in self.metrics.items() if buckets}
        if self.health is not None:
            out["h"] = [_n(self.health), [[_n(t), _n(v)] for t, v in self.health_history]]
        if self.adjustments:
            out["ha"] = [[_n(a), _n(e)] for a, e in self.adjustments]
        if self.contacts:
            out["p"] = {
                k: [c.email, c.role, c.tz, c.name, _n(c.last_seen), c.active, c.bounced]
                for k, c in self.contacts.items()
            }
        if self.timers:
            out["tm"] = {k: [t.generation, _n(t.due)] for k, t in self.timers.items()}
        if self.timer_seq:
            out["ts"] = self.timer_seq
        if self.tasks:
            out["k"] = {
                k: [t.playbook, t.title, t.assignee, _n(t.due)] for k, t in self.tasks.items()
            }
        books = {k: _book_out(b) for k, b in self.books.items()}
        _put(out, "b", {k: b for k, b in books.items() if b})
        if self.dead_letters:
            out["d"] = self.dead_letters
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AccountState:
        health = data.get("h")
        return cls(
            account_id=data["id"],
            created=data["c"],
            last_event=data.get("l", 0.0),
            tracks={
                k: TrackState(v[0], v[1], [StageVisit(*h) for h in v[2]])
                for k, v in data.get("s", {}).items()
            },
            traits=data.get("t", {}),
            flags=data.get("f", {}),
            metrics={k: _sparse(dense) for k, dense in data.get("m", {}).items()},
            health=health[0] if health else None,
            health_history=[(a, b) for a, b in health[1]] if health else [],
            adjustments=[(a, b) for a, b in data.get("ha", [])],
            contacts={k: Contact(k, *v) for k, v in data.get("p", {}).items()},
            timers={k: Timer(v[0], v[1]) for k, v in data.get("tm", {}).items()},
            timer_seq=data.get("ts", 0),
            tasks={k: OpenTask(*v) for k, v in data.get("k", {}).items()},
            books={k: _book_in(v) for k, v in data.get("b", {}).items()},
            dead_letters=data.get("d", 0),
        )


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(tuple[AccountState, dict[str, list[int | float]]])
#: zstd contexts are not thread-safe: one pair per thread.
_LOCAL = threading.local()


def _zstd() -> zstandard.ZstdCompressor:
    """This thread's compressor (frames carry their size: the reader allocates once)."""
    compressor: zstandard.ZstdCompressor | None = getattr(_LOCAL, "compressor", None)
    if compressor is None:
        compressor = _LOCAL.compressor = zstandard.ZstdCompressor(
            level=ZSTD_LEVEL, write_checksum=False, write_content_size=True, write_dict_id=False
        )
    return compressor


def _zstd_reader() -> zstandard.ZstdDecompressor:
    """This thread's decompressor."""
    reader: zstandard.ZstdDecompressor | None = getattr(_LOCAL, "reader", None)
    if reader is None:
        reader = _LOCAL.reader = zstandard.ZstdDecompressor()
    return reader


def _n(value: float) -> float | int:
    """Whole numbers as ints: ``1767571200`` is two bytes shorter than ``1767571200.0``."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _dense(buckets: dict[int, float]) -> list[float | int]:
    """Buckets as ``[first index, value, value, ...]`` (zero for empty buckets)."""
    first = min(buckets)
    if len(buckets) == 1:
        return [first, _n(buckets[first])]
    get = buckets.get
    return [first, *[_n(get(i, 0)) for i in range(first, max(buckets) + 1)]]


def _sparse(dense: list[Any]) -> dict[int, float]:
    first = int(dense[0])
    return {i: float(v) for i, v in enumerate(dense[1:], first) if v}


def _put(out: dict[str, Any], key: str, value: dict[str, Any]) -> None:
    if value:
        out[key] = value


def _book_out(book: PlaybookBook) -> list[Any]:
    """A book as a list without its trailing defaults; empty for an untouched book."""
    run = book.run
    out: list[Any] = [
        book.fired,
        _n(book.last_fired) if book.last_fired is not None else None,
        [run.occurrence, run.version, run.step, _n(run.started), run.goal_by] if run else None,
        book.goals,
        [x for i, m in book.marks.items() for x in (i, _n(m))],
    ]
    while out and out[-1] in (None, 0, []):
        out.pop()
    return out


def _book_in(raw: list[Any]) -> PlaybookBook:
    raw = raw + [0, None, None, 0, []][len(raw) :]
    run, marks = raw[2], raw[4]
    return PlaybookBook(
        fired=raw[0],
        last_fired=raw[1],
        run=SequenceRun(*run) if run else None,
        goals=raw[3],
        marks={int(marks[i]): float(marks[i + 1]) for i in range(0, len(marks), 2)},
    )
