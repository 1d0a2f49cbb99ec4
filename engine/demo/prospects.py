"""Before the purchase: accounts enter at any pre-purchase stage, skip, move back, get lost."""

from __future__ import annotations

from engine.demo.story import Story, Usage

#: A pre-purchase stage: its id and the events (with weights) that put an account there.
Stage = tuple[str, tuple[tuple[str, float], ...]]

FLYWHEEL: tuple[Stage, ...] = (
    ("awareness", (("site_visited", 0.8), ("referral_received", 0.2))),
    ("consideration", (("pricing_viewed", 0.45), ("trial_started", 0.35), ("demo_requested", 0.2))),
)
#: Where flywheel accounts enter: awareness, consideration, or straight at conversion.
FLYWHEEL_ENTRY = (0.52, 0.36, 0.12)

HOURGLASS: tuple[Stage, ...] = (
    ("engagement", (("content_engaged", 1.0),)),
    ("education", (("webinar_attended", 0.6), ("guide_downloaded", 0.4))),
    ("research", (("comparison_viewed", 0.65), ("pricing_viewed", 0.35))),
    ("evaluation", (("trial_started", 0.55), ("demo_requested", 0.45))),
    ("justification", (("business_case_requested", 0.6), ("roi_calculator_used", 0.4))),
)
#: Where hourglass accounts enter: any pre-purchase stage, purchase included.
HOURGLASS_ENTRY = (0.3, 0.2, 0.18, 0.14, 0.1, 0.08)

TRIAL = Usage(logins=3.0, reports=0.4)
_LOSS_REASONS = ("price", "chose a competitor", "no decision", "timing", "missing feature")


def walk(
    s: Story, stages: tuple[Stage, ...], entry: tuple[float, ...], fate: str, winback: float = 0.0
) -> float | None:
    """Walk the pre-purchase stages; the time of the purchase, or None if there is none.

    ``fate`` is ``customer`` (walks on to the purchase), ``lost`` (a few steps, then
    ``opportunity_lost``; won back later with probability ``winback``) or ``pipeline``.
    """
    last = len(stages)
    at = s.rng.choices(range(last + 1), entry)[0]
    if fate != "customer":
        at = min(at, last - 1)
    t = s.floor + s.days(0.01, 0.3)
    budget = {"customer": 12, "lost": s.rng.randint(1, 3)}.get(fate, s.rng.randint(0, 3))
    steps = 0
    while at < last:
        _touch(s, stages[at], t)
        t += s.days(2, 12)
        if not s.live(t):
            return None
        if steps >= budget:
            if fate != "lost":
                return t if fate == "customer" else None
            s.track(t, "opportunity_lost", {"reason": s.rng.choice(_LOSS_REASONS)})
            return t + s.days(20, 45) if s.rng.random() < winback else None
        steps += 1
        if at > 0 and s.rng.random() < 0.12:
            at = s.rng.randrange(0, at)
        else:
            at = min(last, at + s.rng.choices((1, 2, 3), (0.65, 0.28, 0.07))[0])
        if fate != "customer":
            at = min(at, last - 1)
    return t


def _touch(s: Story, stage: Stage, t: float) -> None:
    """One or two of the stage's events; a trial brings two weeks of light usage."""
    names = [name for name, _ in stage[1]]
    weights = [w for _, w in stage[1]]
    picked = [s.rng.choices(names, weights)[0]]
    if len(names) > 1 and s.rng.random() < 0.35:
        picked.append(s.rng.choice([n for n in names if n != picked[0]]))
    for i, name in enumerate(picked):
        at = t + i * s.days(0.5, 2)
        s.track(at, name)
        if name == "trial_started":
            s.usage(at, at + s.days(10, 14), TRIAL)
