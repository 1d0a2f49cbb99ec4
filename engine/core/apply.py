"""The pure core: applying one event to one account is a function of (state, event, clock
reading, playbook set) -> effects, with the state updated in place.

Stages, in order: account facts (contacts, traits, metrics) -> progress resets -> sequence
exits and goals -> journey transitions -> event triggers -> enforcement -> threshold
crossings -> timers the account should have.
"""

from __future__ import annotations

from engine.core import enforce, timers
from engine.core.application import JOURNEY_TRAIT, Application, Firing
from engine.core.effects import Effects
from engine.core.event import TIMER, Event
from engine.core.metrics import NUMBER, compiled, count, update_health
from engine.core.playbook_set import CompiledPlaybook, PlaybookSet
from engine.core.state import MAX_CONTACTS, MAX_TRAITS, AccountState, Contact

#: Track events the core itself understands.
TASK_COMPLETED = "task_completed"
#: A manual stage override (from the management API): ``properties`` ``{track, stage, by}``
#: with ``track`` as ``journey.track``. It moves the account whatever the journey's rules say.
STAGE_OVERRIDE = "hourglass.stage_override"

EMAIL_BOUNCED = "email_bounced"


def new_account(account_id: str, now: float) -> AccountState:
    return AccountState(account_id=account_id, created=now)


def apply(state: AccountState, event: Event, now: float, pset: PlaybookSet) -> Effects:
    """Apply ``event`` to ``state`` (updated in place) at runner time ``now``."""
    app = Application(state, pset, event, now)
    if event.kind == TIMER:
        if not _timer_fired(app, event):
            return app.effects
        _health(app)
    else:
        _facts(app, event)
        _progress(app, event)
    _drain(app)
    _thresholds(app)
    _drain(app)
    timers.ensure(app)
    _forget_untouched_books(state)
    return app.effects


def _forget_untouched_books(state: AccountState) -> None:
    """Drop bookkeeping that holds nothing, so the stored state stays small."""
    empty = [k for k, book in state.books.items() if book.untouched]
    for key in empty:
        del state.books[key]


def _drain(app: Application) -> None:
    """Enforce queued firings in priority order, including those they cause."""
    queue = app.queue
    if not queue:
        return
    changes = app.changes
    ranks = app.pset.rank

    def rank(firing: Firing) -> int:
        """Highest priority first, then by playbook id; the sort is stable, so a playbook's
        firings keep the order they came in."""
        return ranks[firing.playbook.id]

    queue.sort(key=rank)
    while queue:
        waiting = len(queue) - 1
        enforce.consider(app, queue.pop(0))
        if len(queue) > waiting:  # the firing caused others: they take their turn
            queue.sort(key=rank)
    if app.changes != changes:  # an action changed the account: its health may have moved
        _health(app)


def _health(app: Application) -> None:
    """Recompute the health score; the context is rebuilt only if it changed."""
    before = app.state.health
    update_health(app.state, app.pset.schema, app.now, app.metrics())
    if app.state.health != before:
        app.touched()


# -- events from apps ------------------------------------------------------------------------


def _facts(app: Application, event: Event) -> None:
    """Contacts, traits, metrics and 'last seen' from the event, at the event's own time."""
    state = app.state
    state.last_event = max(state.last_event, event.ts)
    if event.kind == "identify" and event.user_id:
        _contact(state, event)
    elif event.kind == "group":
        for name, value in event.traits.items():
            if name in state.traits or len(state.traits) < MAX_TRAITS:
                state.traits[name] = value
    if event.user_id and event.user_id in state.contacts:
        contact = state.contacts[event.user_id]
        contact.last_seen = max(contact.last_seen, event.ts)
    if event.kind == "track" and event.name:
        for metric in compiled(app.pset.schema).by_event.get(event.name, ()):
            amount = 1.0
            if metric.sum_of is not None:
                raw = event.properties.get(metric.sum_of)
                if not isinstance(raw, NUMBER) or isinstance(raw, bool):
                    continue
                amount = float(raw)
            count(state, metric, event.ts, amount)
            app.recorded()
        if event.name == TASK_COMPLETED:
            state.tasks.pop(str(event.properties.get("task_id", "")), None)
        elif event.name == EMAIL_BOUNCED:
            email = event.properties.get("email")
            for contact in state.contacts.values():
                if contact.email and contact.email == email:
                    contact.bounced = True
    app.touched()
    _health(app)


def _contact(state: AccountState, event: Event) -> None:
    """Create or update a contact from an ``identify`` call's traits."""
    assert event.user_id is not None
    traits = event.traits
    contact = state.contacts.get(event.user_id) or Contact(event.user_id)
    contact.email = traits.get("email", contact.email)
    contact.role = traits.get("role", contact.role)
    contact.tz = traits.get("timezone", contact.tz)
    contact.name = traits.get("name", contact.name)
    if "active" in traits:
        contact.active = _truthy(traits["active"])
    if "email" in traits:
        contact.bounced = False
    contact.last_seen = max(contact.last_seen, event.ts)
    state.contacts[event.user_id] = contact
    if len(state.contacts) > MAX_CONTACTS:
        oldest = min(state.contacts.values(), key=lambda c: c.last_seen)
        del state.contacts[oldest.user_id]


def _truthy(value: object) -> bool:
    """An SDK's boolean, also when it arrives as a string: ``"false"``, ``"0"``, ``"no"``."""
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "no", "off", "")
    return bool(value)


def _progress(app: Application, event: Event) -> None:
    """Resets, exits and goals, journey transitions, and event triggers."""
    late = event.ts < app.state.last_event
    name = event.name if event.kind == "track" else None
    if name:
        timers.reset_inactivity(app, name, event.ts)
    _exits_and_goals(app, name)
    if name == STAGE_OVERRIDE:
        _override(app, event)
    elif name:
        _transitions(app, event, name, late)
        for playbook, trigger in app.pset.on_event.get(name, ()):
            app.fire(playbook, trigger, event.message_id)
    for playbook, trigger in app.pset.on_call.get(event.kind, ()):
        app.fire(playbook, trigger, event.message_id)


def _transitions(app: Application, event: Event, name: str, late: bool) -> None:
    """Move the account on each track whose transitions this event drives (first match wins)."""
    moved: set[str] = set()
    chosen = app.state.traits.get(JOURNEY_TRAIT)
    for transition in app.pset.transitions.get(name, ()):
        key = transition.key
        if key in moved or (isinstance(chosen, str) and chosen != transition.journey):
            continue
        track = app.pset.track(key)
        current = app.state.tracks.get(key)
        here = current.stage if current else None
        spec = transition.spec
        if spec.from_ and here not in spec.from_:
            continue
        if here is not None and track.stage(here).phase == "outcome" and here not in spec.from_:
            continue
        if track.allows(here, spec.to, late=late) is not None:
            continue
        if transition.when is not None and not transition.when.evaluate(app.conditions()).passed:
            continue
        moved.add(key)
        app.move(key, spec.to, cause=f"event {name}", occurrence=event.message_id)


def _override(app: Application, event: Event) -> None:
    """A person moved the account by hand: any stage of a known track, audited by ``by``."""
    props = event.properties
    key, stage = str(props.get("track", "")), str(props.get("stage", ""))
    if key not in app.pset.track_keys():
        app.effects.dropped = f"stage override: unknown track '{key}'"
        return
    if stage not in {s.id for s in app.pset.track(key).stages}:
        app.effects.dropped = f"stage override: unknown stage '{stage}' on {key}"
        return
    who = props.get("by") or "someone"
    app.move(key, stage, cause=f"manual override by {who}", occurrence=event.message_id)


def _exits_and_goals(app: Application, name: str | None) -> None:
    """End running sequences whose exit or goal this event (or the new state) reached."""
    for playbook_id, book in list(app.state.books.items()):
        run = book.run
        playbook = app.pset.by_id.get(playbook_id)
        if run is None or playbook is None:
            continue
        goal = playbook.spec.goal
        if run.goal_by is not None and app.now > run.goal_by:
            enforce.end_run(app, playbook_id, "goal window passed")
            continue
        if goal is not None and (
            (goal.event is not None and goal.event == name)
            or (playbook.goal_condition is not None and _holds(app, playbook, "goal"))
        ):
            book.goals += 1
            enforce.end_run(app, playbook_id, "goal reached")
            continue
        if name in playbook.spec.exit_when.events or _holds(app, playbook, "exit"):
            enforce.end_run(app, playbook_id, f"exit_when {name or 'condition'}")


def _holds(app: Application, playbook: CompiledPlaybook, which: str) -> bool:
    if which == "goal":
        return (
            playbook.goal_condition is not None
            and playbook.goal_condition.evaluate(app.conditions()).passed
        )
    return any(c.evaluate(app.conditions()).passed for c in playbook.exit_conditions)


# -- time passing ----------------------------------------------------------------------------


def _timer_fired(app: Application, event: Event) -> bool:
    """Handle a timer firing; False (and a reason) when it is stale and dropped."""
    firing = event.timer
    assert firing is not None
    timer = app.state.timers.get(firing.timer_id)
    if timer is None or timer.generation != firing.generation:
        app.effects.dropped = f"stale timer {firing.timer_id} generation {firing.generation}"
        return False
    del app.state.timers[firing.timer_id]
    kind, playbook_id, index = timers.parse_timer(firing.timer_id)
    occurrence = f"{firing.timer_id}#{firing.generation}"
    _exits_and_goals(app, None)
    if kind == "seq":
        _continue(app, playbook_id)
    elif kind == "trg":
        playbook = app.pset.by_id.get(playbook_id)
        if playbook is None or index >= len(playbook.triggers):
            app.effects.dropped = f"timer {firing.timer_id}: playbook or trigger no longer exists"
            return True
        trigger = playbook.triggers[index]
        book = app.state.book(playbook_id)
        if trigger.spec.date is not None:
            book.marks[index] = firing.due
            occurrence = f"{firing.timer_id}@{firing.due:.0f}"
        elif trigger.spec.schedule is not None:
            occurrence = f"{firing.timer_id}@{firing.due:.0f}"
        else:
            book.marks[index] = 1
        app.fire(playbook, trigger, occurrence)
    return True


def _continue(app: Application, playbook_id: str) -> None:
    """A sequence's wait is over: go on, on the version the playbook's policy says."""
    book = app.state.book(playbook_id)
    run = book.run
    current = app.pset.by_id.get(playbook_id)
    if run is None or current is None:
        return
    playbook: CompiledPlaybook | None = current
    if run.version != current.version:
        policy = current.spec.on_change
        if policy == "exit":
            enforce.end_run(app, playbook_id, f"playbook changed to version {current.version}")
            return
        if policy == "finish":
            playbook = app.pset.version_of(playbook_id, run.version) or current
        run.version = playbook.version if playbook else run.version
    assert playbook is not None
    enforce.run_steps(app, playbook)


def _thresholds(app: Application) -> None:
    """Metric and health crossings, whether an event or time passing caused them."""
    state = app.state
    crossings = app.pset.followed(state.traits.get(JOURNEY_TRAIT)).thresholds
    if not crossings:
        return
    values = app.metrics()
    health = state.health
    bands = app.pset.schema.health.bands
    for playbook, trigger, metric, band, below, above in crossings:
        value = health if metric is None else values.get(metric)
        if value is None:
            continue
        if band is not None:
            past = bands.band(value) == band
        elif below is not None:
            past = value < below
        else:
            past = above is not None and value > above
        book = state.books.get(playbook.id)  # created only to write a mark
        index = trigger.index
        before = book.marks.get(index) if book is not None else None
        if before is None or bool(before) != past:  # a first reading, or a crossing
            if book is None:
                book = state.book(playbook.id)
            book.marks[index] = int(past)
            if before is not None and past:
                app.fire(playbook, trigger, f"cross:{index}@{app.now:.0f}")
