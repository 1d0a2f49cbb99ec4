"""Which timers an account should have open, and when each is due.

Timer ids: ``trg:<playbook>:<trigger>`` for inactivity, date and schedule triggers,
``seq:<playbook>`` for a sequence's wait, ``win`` for the next metric-window expiry.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from croniter import croniter

from engine.core.application import JOURNEY_TRAIT, Application
from engine.core.context import parse_date
from engine.core.metrics import compiled, expiry
from engine.core.playbook_set import CompiledPlaybook, CompiledTrigger, Followed
from engine.core.playbooks import DateTrigger

WINDOW_TIMER = "win"


def trigger_timer(playbook_id: str, index: int) -> str:
    return f"trg:{playbook_id}:{index}"


@lru_cache(maxsize=4096)
def parse_timer(timer_id: str) -> tuple[str, str, int]:
    """(kind, playbook id, trigger index) of a timer id; index is -1 where it has none."""
    kind, _, rest = timer_id.partition(":")
    if kind == "trg":
        playbook, _, index = rest.rpartition(":")
        return kind, playbook, int(index)
    return kind, rest, -1


def date_due(app: Application, trigger: CompiledTrigger, timezone: str) -> float | None:
    """When a date trigger is due for this account, from its date trait, in its time zone."""
    spec = trigger.spec.date
    assert spec is not None
    value = app.state.traits.get(spec.trait)
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        return None
    key = (value, spec.at, spec.before, spec.after, timezone)
    due = _DATE_DUE.get(key, _UNKNOWN)
    if due is _UNKNOWN:
        if len(_DATE_DUE) > 65536:
            _DATE_DUE.clear()
        due = _DATE_DUE[key] = _date_due(value, spec, timezone)
    return due  # type: ignore[return-value]


#: Due times by (trait value, offset, time zone): shared by every account with the same date.
_DATE_DUE: dict[tuple[object, ...], float | None] = {}
_UNKNOWN = object()


def _date_due(value: str | int | float, spec: DateTrigger, timezone: str) -> float | None:
    """The due time for one trait value."""
    day = parse_date(value)
    if day is None:
        return None
    hour, minute = (int(x) for x in spec.at.split(":"))
    tz = ZoneInfo(timezone)
    wall = datetime.combine(day.date(), time(hour, minute))
    offset = spec.before if spec.before is not None else spec.after
    if offset is not None and not offset.business_days:
        # Shift the local wall clock, so "30d before at 09:00" stays 09:00 across a DST change.
        shift = timedelta(seconds=offset.seconds)
        wall = wall - shift if spec.before is not None else wall + shift
        return wall.replace(tzinfo=tz).timestamp()
    local = wall.replace(tzinfo=tz).timestamp()
    if spec.before is not None:
        return spec.before.before(local, timezone)
    if spec.after is not None:
        return spec.after.after(local, timezone)
    return local


class _Ticks:
    """A schedule's ticks, computed once and shared by every account (croniter is slow)."""

    def __init__(self, cron: str, timezone: str) -> None:
        self.cron, self.timezone = cron, timezone
        self.ticks: list[float] = []
        self.start = float("inf")

    def _extend_from(self, start: float, count: int = 64) -> list[float]:
        it = croniter(self.cron, datetime.fromtimestamp(start, tz=ZoneInfo(self.timezone)))
        return [float(it.get_next(float)) for _ in range(count)]

    def after(self, when: float) -> float:
        ticks = self.ticks
        if when < self.start:
            self.start = when
            self.ticks = ticks = self._extend_from(when)
        while when >= ticks[-1]:
            ticks += self._extend_from(ticks[-1])
        return ticks[bisect_right(ticks, when)]


@lru_cache(maxsize=256)
def _schedule(cron: str, timezone: str) -> _Ticks:
    return _Ticks(cron, timezone)


def next_tick(cron: str, timezone: str, after: float) -> float:
    """The schedule's next tick strictly after ``after``."""
    return _schedule(cron, timezone).after(after)


def in_outcome(app: Application, playbook: CompiledPlaybook) -> bool:
    """Whether the account sits in a terminal outcome on the playbook's track."""
    return playbook.journey is not None and _ended(app, playbook.own_track)


def _ended(app: Application, key: str) -> bool:
    """Whether the account sits in a terminal outcome on track ``key``."""
    track = app.state.tracks.get(key)
    return track is not None and app.pset.is_outcome(key, track.stage)


def ensure(app: Application) -> None:
    """Arm the timers the account should have, cancel those it should not."""
    wanted: set[str] = set()
    state = app.state
    timers = state.timers
    followed = app.pset.followed(state.traits.get(JOURNEY_TRAIT))
    outcome: dict[str, bool] = {}
    timezone: str | None = None
    for playbook, trigger in followed.timed:
        key = playbook.own_track
        ended = outcome.get(key)
        if ended is None:
            ended = outcome[key] = in_outcome(app, playbook)
        if ended:
            continue
        timer_id = trigger_timer(playbook.id, trigger.index)
        book = state.books.get(playbook.id)
        mark = book.marks.get(trigger.index) if book is not None else None
        spec = trigger.spec
        if spec.inactivity is not None:
            stage = spec.inactivity.in_stage
            current = state.tracks.get(key)
            if stage is not None and (current is None or current.stage != stage):
                if mark and book is not None:
                    del book.marks[trigger.index]  # re-entering the stage starts a new wait
                continue
            if mark:
                continue  # fired; waits for a reset event
            wanted.add(timer_id)
            if timer_id not in timers:
                since = current.entered if stage is not None and current else app.now
                timezone = timezone or app.timezone
                app.arm(timer_id, spec.inactivity.for_.after(since, timezone))
        elif spec.date is not None:
            timezone = timezone or app.timezone
            due = date_due(app, trigger, timezone)
            if due is None or due <= app.now or mark == due:
                continue
            wanted.add(timer_id)
            timer = timers.get(timer_id)
            if timer is None or timer.due != due:
                app.arm(timer_id, due)
        elif spec.schedule is not None:
            wanted.add(timer_id)
            if timer_id not in timers:
                app.arm(timer_id, next_tick(spec.schedule.cron, spec.schedule.timezone, app.now))
    window = next_window(app, followed, outcome)
    if window is not None:
        wanted.add(WINDOW_TIMER)
        timer = timers.get(WINDOW_TIMER)
        if timer is None or timer.due != window:
            app.arm(WINDOW_TIMER, window)
    for timer_id in list(timers):
        if timer_id in wanted:
            continue
        kind, playbook_id, _ = parse_timer(timer_id)
        keep = False
        if kind == "seq":
            owner = app.pset.by_id.get(playbook_id)
            running = state.books.get(playbook_id)
            keep = owner is not None and owner.mode != "disabled"
            if not keep and running is not None and running.run is not None:
                app.miss(playbook_id, running.run.occurrence, "sequence ended: playbook removed")
                running.run = None
            keep = keep and running is not None and running.run is not None
        if not keep:
            app.cancel(timer_id)


def reset_inactivity(app: Application, name: str, ts: float) -> None:
    """A progress event: re-arm the inactivity timers it resets (a new generation)."""
    for playbook, trigger in app.pset.inactivity_events.get(name, ()):
        spec = trigger.spec.inactivity
        assert spec is not None
        timer_id = trigger_timer(playbook.id, trigger.index)
        book = app.state.books.get(playbook.id)
        if book is not None:
            book.marks.pop(trigger.index, None)
        current = app.state.tracks.get(playbook.own_track)
        if spec.in_stage is not None and (current is None or current.stage != spec.in_stage):
            continue
        since = max(ts, current.entered) if spec.in_stage and current else ts
        due = spec.for_.after(since, app.timezone)
        armed = app.state.timers.get(timer_id)
        if armed is not None and armed.due > due:
            continue  # a late event: a later progress event already set a later deadline
        app.arm(timer_id, due)


def next_window(app: Application, followed: Followed, outcome: dict[str, bool]) -> float | None:
    """When a watched windowed metric next loses a bucket (a crossing caused by time alone);
    ``outcome`` caches, by track, whether the account sits in a terminal outcome there."""
    metrics = app.state.metrics
    watched: set[str] = set()
    for key, names in followed.watched:
        if key is not None:
            ended = outcome.get(key)
            if ended is None:
                ended = outcome[key] = _ended(app, key)
            if ended:
                continue  # a terminal outcome keeps no timers, this one included
        watched.update(names)
    shapes = compiled(app.pset.schema).shapes
    soonest: float | None = None
    for name in watched:
        buckets = metrics.get(name)
        if buckets:  # no buckets, nothing to expire
            due = expiry(buckets, shapes[name], app.now)
            if due is not None and (soonest is None or due < soonest):
                soonest = due
    return soonest
