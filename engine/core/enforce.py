"""Enforcement: a matched trigger passes policy and conditions, then its steps run and its
actions are decided, rendered and recorded."""

from __future__ import annotations

from typing import Any

from engine.core.application import Application, Firing
from engine.core.clock import iso
from engine.core.effects import ActionEffect, idempotency_key
from engine.core.playbook_set import CompiledAction, CompiledPlaybook
from engine.core.playbooks import DELIVERED
from engine.core.quiet import quiet_until
from engine.core.state import MAX_FLAGS, MAX_OPEN_TASKS, MAX_TRAITS, OpenTask, SequenceRun
from engine.core.templates import TemplateError


class ActionSkipped(Exception):
    """An action that cannot be carried out for this account (no recipient, template error)."""


def sequence_timer(playbook_id: str) -> str:
    return f"seq:{playbook_id}"


def consider(app: Application, firing: Firing) -> None:
    """Policy, then conditions, then ``unless``; if all pass, start the playbook's sequence."""
    playbook, occurrence = firing.playbook, firing.occurrence
    book = app.state.books.get(playbook.id)  # created only if the playbook acts
    run = book.run if book is not None else None
    if run is not None and run.goal_by is not None and app.now > run.goal_by:
        end_run(app, playbook.id, "goal window passed")
        run = None
    if run is not None:
        app.miss(playbook.id, occurrence, f"already running since {iso(run.started)}")
        return
    cooldown = playbook.spec.cooldown
    if cooldown is not None and book is not None and book.last_fired is not None:
        ready = cooldown.after(book.last_fired, app.timezone)
        if app.now < ready:
            app.miss(playbook.id, occurrence, f"cooling down until {iso(ready)}")
            return
    if firing.trigger.filter is not None:
        verdict = firing.trigger.filter.evaluate(app.conditions())
        if not verdict.passed:
            app.miss(playbook.id, occurrence, f"filter false: {verdict.reason or 'false'}")
            return
    for condition in playbook.conditions:
        verdict = condition.evaluate(app.conditions())
        if not verdict.passed:
            why = verdict.reason or f"condition false: {condition.source}"
            app.miss(playbook.id, occurrence, why)
            return
    for condition in playbook.unless:
        if condition.evaluate(app.conditions()).passed:
            app.miss(playbook.id, occurrence, f"suppressed by unless: {condition.source}")
            return
    book = app.state.book(playbook.id)
    book.fired += 1
    book.last_fired = app.now
    goal = playbook.spec.goal
    goal_by = goal.within.after(app.now, app.timezone) if goal else None
    book.run = SequenceRun(occurrence, playbook.version, 0, app.now, goal_by)
    run_steps(app, playbook)


def end_run(app: Application, playbook_id: str, why: str | None = None) -> None:
    book = app.state.book(playbook_id)
    if book.run is not None and why:
        app.miss(playbook_id, book.run.occurrence, f"sequence ended: {why}")
    book.run = None
    app.cancel(sequence_timer(playbook_id))


def run_steps(app: Application, playbook: CompiledPlaybook) -> None:
    """Run steps from the account's place until a wait, an exit, or the end."""
    book = app.state.book(playbook.id)
    run = book.run
    assert run is not None
    while run.step < len(playbook.steps):
        index, step = run.step, playbook.steps[run.step]
        run.step += 1
        if step.kind == "actions":
            for action in step.actions:
                decide(app, playbook, run, action, f"{index}.{action.ref}")
        elif step.kind == "if":
            assert step.condition is not None
            verdict = step.condition.evaluate(app.conditions())
            branch, label = (step.actions, "then") if verdict.passed else (step.otherwise, "else")
            for action in branch:
                decide(app, playbook, run, action, f"{index}.{label}.{action.ref}")
        elif step.kind == "exit_if":
            assert step.condition is not None
            if step.condition.evaluate(app.conditions()).passed:
                end_run(app, playbook.id, f"exit_if at step {index}: {step.condition.source}")
                return
        elif step.kind == "wait":
            assert step.wait is not None
            app.arm(sequence_timer(playbook.id), step.wait.after(app.now, app.timezone))
            return
    if run.goal_by is None:
        book.run = None


def decide(
    app: Application,
    playbook: CompiledPlaybook,
    run: SequenceRun,
    action: CompiledAction,
    step: str,
) -> None:
    """Render one action, apply it to the account if it changes the account, and record it."""
    key = idempotency_key(playbook.id, app.state.account_id, run.occurrence, step)
    try:
        payload, customer_facing = render(app, playbook, action, key)
    except ActionSkipped as skipped:
        app.miss(playbook.id, run.occurrence, f"{action.kind} at step {step} skipped: {skipped}")
        return
    if customer_facing and app.state.on_hold(app.now):
        app.miss(playbook.id, run.occurrence, f"{action.kind} at step {step}: comms hold")
        return
    live = playbook.mode == "live"
    if live:
        change(app, action, payload, key, playbook.id, run.occurrence)
    quiet = playbook.spec.quiet_hours
    held = quiet_until(quiet, app.now, app.timezone) if quiet and customer_facing else None
    app.effects.actions.append(
        ActionEffect(
            key=key,
            at=app.now,
            account=app.state.account_id,
            playbook=playbook.id,
            version=playbook.version,
            type=action.kind,
            mode=playbook.mode,
            payload=payload,
            step=step,
            not_before=held,
        )
    )


def render(
    app: Application, playbook: CompiledPlaybook, action: CompiledAction, key: str
) -> tuple[dict[str, Any], bool]:
    """The action's payload with every template rendered; and whether a customer receives it."""
    spec = action.spec
    customer_facing = False
    context: dict[str, Any] = {}
    if action.texts:  # the template context: built only for actions with templates
        context = app.context().materialize()
        context["playbook"] = {"id": playbook.id, "name": playbook.spec.name}
    if action.kind == "email":
        recipient, customer_facing = recipient_of(app, spec.to)
        context["recipient"] = recipient
        payload: dict[str, Any] = {
            "to": recipient["email"],
            "to_role": spec.to,
            "subject": text(action, "subject", context),
            "body": text(action, "body", context),
            "html": action.html,
            "message_id": f"<{key}@hourglass>",
        }
    elif action.kind == "task":
        assignee, _ = recipient_of(app, spec.assignee)
        payload = {
            "task_id": key,
            "title": text(action, "title", context),
            "notes": text(action, "notes", context) if "notes" in action.texts else "",
            "assignee": spec.assignee,
            "assignee_email": assignee["email"],
            "due": iso(spec.due.after(app.now, app.timezone)),
            "priority": spec.priority,
        }
    elif action.kind == "webhook":
        payload = {
            "destination": spec.destination,
            "body": rendered(spec.payload, action, context, "payload"),
            "idempotency_key": key,
        }
    elif action.kind == "slack":
        payload = {"destination": spec.destination, "text": text(action, "text", context)}
    elif action.kind == "set_trait":
        payload = {"name": spec.name, "value": spec.value}
    elif action.kind == "set_flag":
        expires = spec.ttl.after(app.now, app.timezone) if spec.ttl else 0.0
        payload = {"name": spec.name, "expires": iso(expires) if expires else None}
    elif action.kind == "clear_flag":
        payload = {"name": spec}
    elif action.kind == "move_stage":
        payload = {"track": playbook.track_key(spec.track, spec.journey), "stage": spec.stage}
    else:  # adjust_health
        expires = spec.ttl.after(app.now, app.timezone) if spec.ttl else 0.0
        payload = {
            "by": spec.by,
            "reason": spec.reason,
            "expires": iso(expires) if expires else None,
        }
    return payload, customer_facing


def recipient_of(app: Application, who: str) -> tuple[dict[str, Any], bool]:
    """A contact by role (customer-facing), or an internal owner from the ``<who>_email`` trait."""
    if who in app.pset.schema.contact_roles:
        for contact in app.context()["contacts"]:
            usable = contact["active"] and not contact["bounced"] and contact["email"]
            if contact["role"] == who and usable:
                return contact, True
        raise ActionSkipped(f"no active contact with role '{who}' and a deliverable email")
    email = app.state.traits.get(f"{who}_email")
    if not isinstance(email, str) or not email:
        raise ActionSkipped(f"the account has no '{who}_email' trait")
    return {"email": email, "role": who, "name": app.state.traits.get(f"{who}_name", "")}, False


def text(action: CompiledAction, field: str, context: dict[str, Any]) -> str:
    try:
        return action.texts[field].render(context)
    except TemplateError as error:
        raise ActionSkipped(f"template {field}: {error}") from error


def rendered(value: Any, action: CompiledAction, context: dict[str, Any], path: str) -> Any:
    """A webhook body with every string leaf rendered as a template."""
    if isinstance(value, str):
        return text(action, path, context)
    if isinstance(value, dict):
        return {k: rendered(v, action, context, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [rendered(v, action, context, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def change(
    app: Application,
    action: CompiledAction,
    payload: dict[str, Any],
    key: str,
    playbook_id: str,
    occurrence: str,
) -> None:
    """Apply an action that changes the account itself (live mode only)."""
    state = app.state
    kind = action.kind
    if kind in DELIVERED and kind != "task":
        return
    if kind == "task":
        state.tasks[key] = OpenTask(
            playbook_id,
            payload["title"],
            payload["assignee"],
            action.spec.due.after(app.now, app.timezone),
        )
        while len(state.tasks) > MAX_OPEN_TASKS:
            del state.tasks[next(iter(state.tasks))]
    elif kind == "set_trait":
        if payload["name"] in state.traits or len(state.traits) < MAX_TRAITS:
            state.traits[payload["name"]] = payload["value"]
    elif kind == "set_flag":
        spec = action.spec
        expires = spec.ttl.after(app.now, app.timezone) if spec.ttl else 0.0
        for name in [n for n in state.flags if not state.flag_set(n, app.now)]:
            del state.flags[name]  # expired flags free their place
        if spec.name in state.flags or len(state.flags) < MAX_FLAGS:
            state.flags[spec.name] = expires
    elif kind == "clear_flag":
        state.flags.pop(payload["name"], None)
    elif kind == "adjust_health":
        spec = action.spec
        expires = spec.ttl.after(app.now, app.timezone) if spec.ttl else 0.0
        state.adjustments.append((spec.by, expires))
        del state.adjustments[:-8]
    elif kind == "move_stage":
        app.move(
            payload["track"],
            payload["stage"],
            cause=f"playbook {playbook_id}",
            occurrence=occurrence,
        )
    app.touched()
