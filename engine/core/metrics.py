"""Windowed metrics kept as time buckets, and the health score computed from them."""

from __future__ import annotations

from typing import NamedTuple

from engine.core.schema import AccountSchema, MetricSpec
from engine.core.state import HEALTH_HISTORY, AccountState

HOUR = 3600.0
DAY = 86400.0
#: What a numeric input is (a bool is not one, checked apart).
NUMBER = (int, float)


def bucket_size(spec: MetricSpec) -> float:
    """Hour buckets for windows up to two days, day buckets beyond: bounded either way."""
    window = spec.window.seconds if spec.window else DAY
    return HOUR if window <= 2 * DAY else DAY


class Shape(NamedTuple):
    """A declared metric as the hot path reads it: its name, kind, bucket and window sizes,
    and for a ``sum``, the property it adds up."""

    name: str
    last_seen: bool
    size: float
    window: float
    sum_of: str | None


class Part(NamedTuple):
    """A health component as the hot path reads it; ``span`` is ``good - bad``."""

    weight: float
    flag: str | None
    metric: str | None
    trait: str
    bad: float
    span: float


class Compiled(NamedTuple):
    """A schema's metrics and health components, read once instead of on every application."""

    shapes: dict[str, Shape]
    parts: tuple[Part, ...]
    #: Track event name -> the metrics it counts, in declaration order.
    by_event: dict[str, tuple[Shape, ...]]


def shape(name: str, spec: MetricSpec) -> Shape:
    window = spec.window.seconds if spec.window else 0.0
    sum_of = (spec.property or "") if spec.kind == "sum" else None
    return Shape(name, spec.kind == "last_seen", bucket_size(spec), window, sum_of)


def compiled(schema: AccountSchema) -> Compiled:
    """The schema's compiled form, cached by identity (schemas are immutable)."""
    entry = _COMPILED.get(id(schema))
    if entry is not None and entry[0] is schema:
        return entry[1]
    if len(_COMPILED) >= 64:
        _COMPILED.clear()
    parts = tuple(
        Part(c.weight, c.flag, c.metric, c.trait or "", c.bad, c.good - c.bad)
        for c in schema.health.components
    )
    shapes = {n: shape(n, s) for n, s in schema.metrics.items()}
    by_event: dict[str, tuple[Shape, ...]] = {}
    for name, spec in schema.metrics.items():
        by_event[spec.event] = (*by_event.get(spec.event, ()), shapes[name])
    result = Compiled(shapes, parts, by_event)
    _COMPILED[id(schema)] = (schema, result)
    return result


#: Compiled schemas by id, each kept with its schema so the id cannot be reused meanwhile.
_COMPILED: dict[int, tuple[AccountSchema, Compiled]] = {}


def record(state: AccountState, name: str, spec: MetricSpec, ts: float, amount: float) -> None:
    """Count an event at its own timestamp (a late event lands in its own bucket)."""
    count(state, shape(name, spec), ts, amount)


def count(state: AccountState, metric: Shape, ts: float, amount: float) -> None:
    """``record`` for a compiled metric."""
    buckets = state.metrics.setdefault(metric.name, {})
    if metric.last_seen:
        if ts > buckets.get(0, 0.0):
            buckets[0] = ts
        return
    size, window = metric.size, metric.window
    index = int(ts // size)
    newest = max(buckets, default=index)
    floor = int((max(newest, index) * size - window) // size)
    if index < floor:
        return  # older than the window: nothing to count
    buckets[index] = buckets.get(index, 0) + amount
    for old in [b for b in buckets if b < floor]:
        del buckets[old]


def _current(buckets: dict[int, float], metric: Shape, now: float) -> float:
    """The value at ``now`` of one metric's (non-empty) buckets."""
    if metric.last_seen:
        return buckets.get(0, 0.0)
    # Bucket b ends at (b + 1) * size; it counts while that end is after now - window,
    # that is while b >= floor((now - window) / size).
    first = (now - metric.window) // metric.size
    return float(sum([v for b, v in buckets.items() if b >= first]))


def value(state: AccountState, name: str, spec: MetricSpec, now: float) -> float:
    """The metric's value at ``now``: the sum of buckets still inside the window."""
    buckets = state.metrics.get(name)
    return _current(buckets, shape(name, spec), now) if buckets else 0.0


def next_expiry(state: AccountState, name: str, spec: MetricSpec, now: float) -> float | None:
    """When the oldest bucket still counted leaves the window (a crossing time alone may cause)."""
    return expiry(state.metrics.get(name), shape(name, spec), now)


def expiry(buckets: dict[int, float] | None, metric: Shape, now: float) -> float | None:
    """``next_expiry`` for one metric's buckets and compiled shape."""
    if metric.last_seen or not buckets:
        return None
    size, window = metric.size, metric.window
    later = [e for b in buckets if (e := (b + 1) * size + window) > now]
    return min(later) if later else None


def metric_values(state: AccountState, schema: AccountSchema, now: float) -> dict[str, float]:
    """Every declared metric's value at ``now``."""
    metrics = state.metrics
    out: dict[str, float] = {}
    for metric in compiled(schema).shapes.values():
        buckets = metrics.get(metric.name)
        out[metric.name] = _current(buckets, metric, now) if buckets else 0.0
    return out


def health_score(
    state: AccountState, schema: AccountSchema, metrics: dict[str, float], now: float
) -> float | None:
    """Weighted components scaled 0-100, plus live manual adjustments, clamped to 0-100."""
    parts = compiled(schema).parts
    if not parts and not state.adjustments:
        return None
    total = weight = 0.0
    traits = state.traits
    for c in parts:
        if c.flag:
            score = 0.0 if state.flag_set(c.flag, now) else 100.0
        else:
            raw = metrics.get(c.metric, 0.0) if c.metric else traits.get(c.trait)
            if not isinstance(raw, NUMBER) or isinstance(raw, bool):
                continue  # an unknown input does not count, neither for nor against
            score = (float(raw) - c.bad) / c.span * 100.0
        total += c.weight * min(100.0, max(0.0, score))
        weight += c.weight
    base = total / weight if weight else 50.0
    if state.adjustments:
        base += sum(amount for amount, expiry in state.adjustments if expiry == 0 or expiry > now)
    return round(min(100.0, max(0.0, base)), 1)


def update_health(
    state: AccountState, schema: AccountSchema, now: float, metrics: dict[str, float]
) -> float | None:
    """Recompute the health score from the metrics' values; keep a short history of changes."""
    if state.adjustments:
        state.adjustments = [(a, e) for a, e in state.adjustments if e == 0 or e > now]
    score = health_score(state, schema, metrics, now)
    if score is not None and score != state.health:
        state.health_history.append((now, score))
        del state.health_history[:-HEALTH_HISTORY]
    state.health = score
    return score
