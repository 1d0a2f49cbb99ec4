"""Windowed metrics kept as time buckets, and the health score computed from them."""

from __future__ import annotations

from engine.core.schema import AccountSchema, MetricSpec
from engine.core.state import HEALTH_HISTORY, AccountState

HOUR = 3600.0
DAY = 86400.0


def bucket_size(spec: MetricSpec) -> float:
    """Hour buckets for windows up to two days, day buckets beyond: bounded either way."""
    window = spec.window.seconds if spec.window else DAY
    return HOUR if window <= 2 * DAY else DAY


def record(state: AccountState, name: str, spec: MetricSpec, ts: float, amount: float) -> None:
    """Count an event at its own timestamp (a late event lands in its own bucket)."""
    buckets = state.metrics.setdefault(name, {})
    if spec.kind == "last_seen":
        if ts > buckets.get(0, 0.0):
            buckets[0] = ts
        return
    size = bucket_size(spec)
    window = spec.window.seconds if spec.window else 0.0
    index = int(ts // size)
    newest = max(buckets, default=index)
    floor = int((max(newest, index) * size - window) // size)
    if index < floor:
        return  # older than the window: nothing to count
    buckets[index] = buckets.get(index, 0) + amount
    for old in [b for b in buckets if b < floor]:
        del buckets[old]


def value(state: AccountState, name: str, spec: MetricSpec, now: float) -> float:
    """The metric's value at ``now``: the sum of buckets still inside the window."""
    buckets = state.metrics.get(name)
    if not buckets:
        return 0.0
    if spec.kind == "last_seen":
        return buckets.get(0, 0.0)
    size = bucket_size(spec)
    start = now - (spec.window.seconds if spec.window else 0.0)
    return float(sum(v for b, v in buckets.items() if (b + 1) * size > start))


def next_expiry(state: AccountState, name: str, spec: MetricSpec, now: float) -> float | None:
    """When the oldest bucket still counted leaves the window (a crossing time alone may cause)."""
    if spec.kind == "last_seen" or spec.window is None:
        return None
    size = bucket_size(spec)
    window = spec.window.seconds
    ends = [(b + 1) * size + window for b in state.metrics.get(name, {})]
    later = [e for e in ends if e > now]
    return min(later) if later else None


def metric_values(state: AccountState, schema: AccountSchema, now: float) -> dict[str, float]:
    return {name: value(state, name, spec, now) for name, spec in schema.metrics.items()}


def health_score(
    state: AccountState, schema: AccountSchema, metrics: dict[str, float], now: float
) -> float | None:
    """Weighted components scaled 0-100, plus live manual adjustments, clamped to 0-100."""
    components = schema.health.components
    if not components and not state.adjustments:
        return None
    total = weight = 0.0
    for c in components:
        if c.flag:
            score = 0.0 if state.flag_set(c.flag, now) else 100.0
        else:
            raw = metrics.get(c.metric, 0.0) if c.metric else state.traits.get(c.trait or "")
            if not isinstance(raw, int | float) or isinstance(raw, bool):
                continue  # an unknown input does not count, neither for nor against
            score = (float(raw) - c.bad) / (c.good - c.bad) * 100.0
        total += c.weight * min(100.0, max(0.0, score))
        weight += c.weight
    base = total / weight if weight else 50.0
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
