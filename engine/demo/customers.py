"""Life after the purchase: onboarding, usage, seats, NPS, people leaving, renewal, churn."""

from __future__ import annotations

from engine.demo.profiles import DAY, ContactProfile, day_of
from engine.demo.story import Story, Usage

#: What a customer turns out to be, and how often.
FATES = ("healthy", "expander", "promoter", "at_risk", "churn")
FATE_WEIGHTS = (0.34, 0.16, 0.15, 0.19, 0.16)

ONBOARDING = Usage(logins=3.0, reports=0.5, api=0.5, tickets=0.1)
STALLED = Usage(logins=1.2, reports=0.1, tickets=0.4)
HEALTHY = Usage(logins=9.0, reports=2.0, api=2.0, tickets=0.1)
SLIPPING = Usage(logins=6.0, reports=1.5, api=1.5, tickets=0.3)
AT_RISK = Usage(logins=0.4, reports=0.1, api=0.1, tickets=1.2)
_INTEGRATIONS = ("salesforce", "hubspot", "slack", "snowflake", "zendesk")
_CHURN_REASONS = ("price", "missing features", "switched vendor", "budget cut", "low adoption")


def flywheel_customer(story: Story, converted: float, fate: str) -> None:
    """Subscription, kickoff, onboarding (sometimes stalled for weeks), then life after go-live."""
    s, account = story, story.account
    s.track(converted, "subscription_started", {"plan": account.plan, "mrr": account.mrr})
    kickoff = converted + s.days(1, 6)
    if not s.track(kickoff, "kickoff_completed"):
        return
    stall = s.rng.random() < (0.2 if account.segment == "smb" else 0.45)
    if not stall:
        live: float | None = kickoff + s.days(4, 18)
    else:
        live = kickoff + s.days(22, 45) if s.rng.random() < 0.55 else None
    s.active_share = s.rng.uniform(0.1, 0.3)
    s.usage(kickoff, live or s.end, STALLED if stall else ONBOARDING)
    if live is None or not s.track(live, "integration_connected", _integration(s)):
        _seat_updates(s, kickoff, s.end)
        if stall and s.rng.random() < 0.3:
            _champion_leaves(s, kickoff + s.days(10, 40))
        return
    _after_go_live(s, live, fate)


def hourglass_customer(story: Story, purchased: float, fate: str) -> None:
    """Contract, first value (sometimes slow), then life after go-live."""
    s, account = story, story.account
    s.track(purchased, "contract_signed", {"plan": account.plan, "mrr": account.mrr})
    roll = s.rng.random()
    slow = roll < 0.3
    s.active_share = s.rng.uniform(0.1, 0.3)
    if roll < 0.08:
        s.usage(purchased, s.end, STALLED)
        _seat_updates(s, purchased, s.end)
        return
    live = purchased + (s.days(40, 75) if slow else s.days(5, 30))
    s.usage(purchased, live, STALLED if slow else ONBOARDING)
    if not s.track(live, "first_value_reached", {"milestone": "first report shared"}):
        return
    _after_go_live(s, live, fate)


def _after_go_live(s: Story, live: float, fate: str) -> None:
    """Usage, seats, NPS, expansion, advocacy, people leaving, renewal or churn after go-live."""
    account, healthy = s.account, fate in ("healthy", "expander", "promoter")
    account.go_live_date = live
    s.active_share = s.rng.uniform(0.55, 0.85) if healthy else s.rng.uniform(0.2, 0.42)
    s.group(live + 60.0)
    renews = account.renewal_date
    stop = s.end
    if fate == "churn":
        near = live + 30 * DAY < renews < s.end
        stop = renews - s.days(0, 5) if near else live + s.days(45, 90)
    if healthy:
        s.usage(live, stop, HEALTHY)
    else:
        slide = live + s.days(25, 55)
        s.usage(live, slide, SLIPPING, AT_RISK)
        s.usage(slide, stop, AT_RISK)
    _seat_updates(s, live, stop)
    if fate == "expander":
        _expand(s, live + s.days(20, 45))
    if fate == "promoter":
        _promote(s, live + s.days(15, 40))
    elif fate == "healthy" and s.rng.random() < 0.45:
        _nps(s, live + s.days(20, 60), s.rng.randint(7, 10))
    elif not healthy:
        if s.rng.random() < 0.6:
            _nps(s, live + s.days(15, 45), s.rng.randint(1, 6))
        if s.rng.random() < 0.35:
            _champion_leaves(s, live + s.days(10, 50))
    if fate == "churn":
        s.track(stop, "subscription_cancelled", {"reason": s.rng.choice(_CHURN_REASONS)})
    elif account.model == "flywheel":
        _flywheel_renewal(s, live, healthy)
    elif renews - 20 * DAY > live and s.rng.random() < (0.92 if healthy else 0.45):
        _renewed(s, max(renews - s.days(0, 40), live + s.days(15, 25)))


def _flywheel_renewal(s: Story, live: float, healthy: bool) -> None:
    """Renewal window, renewal call, sometimes a risk flag or a commitment, then the signature."""
    renews = s.account.renewal_date
    opened = max(renews - 90 * DAY, live + s.days(5, 12))
    if not s.track(opened, "renewal_window_opened", {"renewal_date": day_of(renews)}):
        return
    call = opened + s.days(7, 25)
    if not s.track(call, "renewal_call_held"):
        return
    if not healthy and s.rng.random() < 0.4:
        s.track(call + s.days(2, 10), "renewal_risk_flagged", {"source": "crm"})
    elif healthy and s.rng.random() < 0.5:
        s.track(call + s.days(5, 20), "renewal_committed")
    if s.rng.random() < (0.9 if healthy else 0.4):
        _renewed(s, max(renews - s.days(0, 50), call + s.days(3, 10)))


def _renewed(s: Story, at: float) -> None:
    """Renewal signed; the next term's renewal date follows in a ``group`` call."""
    if s.track(at, "renewal_signed", {"term_months": 12}):
        s.account.renewal_date += 365 * DAY
        s.group(at + 600.0)


def _seat_updates(s: Story, start: float, stop: float) -> None:
    """The product reports active seats every two to three weeks."""
    at = start + s.days(10, 20)
    while at < min(stop, s.end):
        s.active_share = min(1.0, max(0.05, s.active_share + s.rng.uniform(-0.05, 0.06)))
        s.group(at)
        at += s.days(14, 24)


def _expand(s: Story, at: float) -> None:
    """Seat usage climbs over 90%, then the account buys more seats."""
    s.active_share = s.rng.uniform(0.92, 1.0)
    if not s.group(at):
        return
    bought = at + s.days(5, 15)
    extra = max(2, round(s.account.seats * s.rng.uniform(0.2, 0.5)))
    event = "seats_added" if s.account.model == "flywheel" else "upgrade_purchased"
    if s.track(bought, event, {"seats": extra}):
        price = s.account.mrr / s.account.seats
        s.account.seats += extra
        s.account.mrr = round(s.account.mrr + extra * price, 2)
        s.active_share *= 0.8
        s.group(bought + 600.0)


def _promote(s: Story, at: float) -> None:
    """A promoter's NPS answer, often followed by a review and sometimes a referral."""
    _nps(s, at, s.rng.choice((9, 10)))
    if s.rng.random() < 0.75:
        review = at + s.days(8, 20)
        s.track(review, "review_left", {"site": s.rng.choice(("g2", "capterra"))})
        if s.rng.random() < 0.4:
            s.track(review + s.days(10, 30), "referral_made", {"referred": "a peer company"})


def _nps(s: Story, at: float, score: int) -> None:
    """An NPS answer, and the ``nps`` trait that the health score reads."""
    comment = "love it" if score >= 9 else ("it's fine" if score >= 7 else "too many issues")
    if s.track(at, "nps_submitted", {"score": score, "comment": comment}):
        s.group(at + 300.0, nps=score)


def _champion_leaves(s: Story, at: float) -> None:
    """The champion leaves (``identify`` with active=false), mail to them bounces; a new
    champion turns up weeks later."""
    old = s.account.champion
    if old.user_id in s.left or not s.identify(at, old, active=False):
        return
    s.left.add(old.user_id)
    if s.rng.random() < 0.6:
        _bounce(s, at + s.days(1, 7), old)
    if s.rng.random() < 0.6:
        new = s.account.new_contact(s.rng, "champion")
        s.account.contacts.insert(0, s.account.contacts.pop())
        s.identify(at + s.days(10, 25), new)


def stray_bounce(s: Story) -> None:
    """Now and then a mail to one of the account's people bounces, customer or not."""
    if s.rng.random() < 0.08:
        contact = s.rng.choice(s.account.contacts)
        _bounce(s, s.arrival + s.days(3, 100), contact)


def _bounce(s: Story, at: float, contact: ContactProfile) -> None:
    """An email to ``contact`` bounced."""
    s.track(at, "email_bounced", {"email": contact.email, "kind": "hard"})


def _integration(s: Story) -> dict[str, str]:
    return {"integration": s.rng.choice(_INTEGRATIONS)}
