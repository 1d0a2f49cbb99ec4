"""The one place that turns authored playbooks and journeys into compiled conditions and
templates, checking every name they use against the declared schema."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from engine.core.conditions import Condition, ConditionError, compile_condition
from engine.core.destinations import Destinations
from engine.core.journeys import Journey
from engine.core.playbook_set import (
    CompiledAction,
    CompiledPlaybook,
    CompiledStep,
    CompiledTransition,
    CompiledTrigger,
)
from engine.core.playbooks import Action, Playbook
from engine.core.schema import AccountSchema
from engine.core.scope import condition_scope, sample_context
from engine.core.source import Problem, SourceDocument
from engine.core.templates import CompiledTemplate, TemplateError, compile_template

Loc = list[str | int]

#: Action fields that are templates.
TEXT_FIELDS = {"email": ("subject", "body"), "task": ("title", "notes"), "slack": ("text",)}


class TemplateSource(Protocol):
    """Where the files named by ``template:`` come from (a folder on disk, or stored texts)."""

    def read(self, name: str) -> str | None:
        """The template's text, None when there is none; ValueError when it cannot be read."""

    def where(self) -> str:
        """Where templates were looked for, for the 'not found' message."""


class PlaybookCompiler:
    """Compiles against one schema, one set of journeys and destinations."""

    def __init__(
        self,
        schema: AccountSchema,
        journeys: dict[str, Journey],
        destinations: Destinations,
        templates: TemplateSource,
    ) -> None:
        self.schema = schema
        self.journeys = journeys
        self.destinations = destinations
        self.templates = templates
        self.scope = condition_scope(schema, journeys)
        self.sample = sample_context(schema, journeys)
        #: Only emails have a recipient; other templates render without one.
        self.unaddressed = {k: v for k, v in self.sample.items() if k != "recipient"}
        self._addressed = False
        self._doc: SourceDocument | None = None
        self._problems: list[Problem] = []

    # -- helpers --------------------------------------------------------------------------

    def _problem(self, loc: Loc, message: str) -> None:
        assert self._doc is not None
        where = ".".join(f"[{p}]" if isinstance(p, int) else p for p in loc).replace(".[", "[")
        self._problems.append(self._doc.problem(loc, f"{where}: {message}" if where else message))

    def _condition(self, source: str, loc: Loc) -> Condition | None:
        try:
            return compile_condition(source, self.scope)
        except ConditionError as error:
            self._problem(loc, f"invalid condition: {error.reason}")
            return None

    def _template(self, source: str, loc: Loc, *, html: bool = False) -> CompiledTemplate | None:
        try:
            compiled = compile_template(source, kind="html" if html else "text", name=str(loc[-1]))
            compiled.render(self.sample if self._addressed else self.unaddressed)
        except TemplateError as error:
            self._problem(loc, f"template: {error}")
            return None
        return compiled

    def _start(self, document: SourceDocument) -> None:
        self._doc, self._problems = document, []

    def _finish(self) -> list[Problem]:
        problems, self._problems, self._doc = self._problems, [], None
        return problems

    # -- journeys ---------------------------------------------------------------------------

    def transitions(
        self, journey: Journey, document: SourceDocument
    ) -> tuple[list[CompiledTransition], list[Problem]]:
        self._start(document)
        found = []
        for name, track in journey.tracks.items():
            for i, t in enumerate(track.transitions):
                when = None
                if t.when is not None:
                    when = self._condition(t.when, ["tracks", name, "transitions", i, "when"])
                found.append(CompiledTransition(journey.id, name, t, when))
        return found, self._finish()

    # -- playbooks --------------------------------------------------------------------------

    def playbook(
        self, playbook: Playbook, document: SourceDocument
    ) -> tuple[CompiledPlaybook | None, list[Problem]]:
        self._start(document)
        journey_id = self._journey_of(playbook)
        triggers = tuple(
            self._trigger(playbook, journey_id, i, t) for i, t in enumerate(playbook.triggers)
        )
        conditions = self._conditions(playbook.conditions, ["conditions"])
        unless = self._conditions(playbook.unless, ["unless"])
        steps = self._steps(playbook, journey_id)
        exits = self._conditions(playbook.exit_when.conditions, ["exit_when", "conditions"])
        goal = None
        if playbook.goal is not None and playbook.goal.condition is not None:
            goal = self._condition(playbook.goal.condition, ["goal", "condition"])
        problems = self._finish()
        if problems:
            return None, problems
        compiled = CompiledPlaybook(
            spec=playbook,
            journey=journey_id,
            file=document.file,
            triggers=triggers,
            conditions=conditions,
            unless=unless,
            steps=steps,
            exit_conditions=exits,
            goal_condition=goal,
        )
        return compiled, []

    def _conditions(self, sources: Sequence[str], loc: Loc) -> tuple[Condition, ...]:
        compiled = [self._condition(s, [*loc, i]) for i, s in enumerate(sources)]
        return tuple(c for c in compiled if c is not None)

    def _journey_of(self, playbook: Playbook) -> str | None:
        if playbook.journey is not None:
            if playbook.journey not in self.journeys:
                known = ", ".join(self.journeys) or "none loaded"
                self._problem(["journey"], f"unknown journey '{playbook.journey}' ({known})")
                return None
            journey = self.journeys[playbook.journey]
        elif len(self.journeys) == 1:
            journey = next(iter(self.journeys.values()))
        else:
            return None
        if playbook.track not in journey.tracks:
            tracks = ", ".join(journey.tracks)
            self._problem(["track"], f"unknown track '{playbook.track}' (tracks: {tracks})")
        return journey.id

    def _stage(self, journey_id: str | None, track: str, stage: str, loc: Loc) -> None:
        if journey_id is None:
            self._problem(loc, "name the playbook's 'journey' to use stages")
            return
        tracks = self.journeys[journey_id].tracks
        if track not in tracks:
            self._problem(loc, f"unknown track '{track}' (tracks: {', '.join(tracks)})")
            return
        stages = [s.id for s in tracks[track].stages]
        if stage not in stages:
            self._problem(loc, f"unknown stage '{stage}' on {track} (stages: {', '.join(stages)})")

    def _trigger(
        self, playbook: Playbook, journey_id: str | None, index: int, trigger: Any
    ) -> CompiledTrigger:
        loc: Loc = ["triggers", index]
        kind = trigger.kind
        track = trigger.track or playbook.track
        if kind in ("stage_entered", "stage_exited"):
            self._stage(journey_id, track, getattr(trigger, kind), [*loc, kind])
        elif kind == "inactivity" and trigger.inactivity.in_stage is not None:
            stage = trigger.inactivity.in_stage
            self._stage(journey_id, playbook.track, stage, [*loc, "inactivity", "in_stage"])
        elif kind == "date":
            spec = self.schema.traits.get(trigger.date.trait)
            if spec is None or spec.type not in ("date", "datetime"):
                dates = [n for n, t in self.schema.traits.items() if t.type in ("date", "datetime")]
                self._problem(
                    [*loc, "date", "trait"],
                    f"'{trigger.date.trait}' is not a declared date trait "
                    f"(date traits: {', '.join(dates) or 'none'})",
                )
        elif kind == "schedule":
            if not croniter.is_valid(trigger.schedule.cron):
                self._problem([*loc, "schedule", "cron"], f"invalid cron '{trigger.schedule.cron}'")
            self._timezone(trigger.schedule.timezone, [*loc, "schedule", "timezone"])
        elif kind == "metric" and trigger.metric.name not in self.schema.metrics:
            known = ", ".join(self.schema.metrics) or "none declared"
            self._problem(
                [*loc, "metric", "name"], f"unknown metric '{trigger.metric.name}' ({known})"
            )
        elif kind == "health" and not self.schema.health.components:
            self._problem([*loc, "health"], "the account schema declares no health components")
        flt = self._condition(trigger.filter, [*loc, "filter"]) if trigger.filter else None
        return CompiledTrigger(index, trigger, kind, flt)

    def _timezone(self, name: str, loc: Loc) -> None:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            self._problem(loc, f"unknown time zone '{name}'")

    def _steps(self, playbook: Playbook, journey_id: str | None) -> tuple[CompiledStep, ...]:
        steps: list[CompiledStep] = []
        body = "steps" if playbook.steps is not None else "actions"
        for i, step in enumerate(playbook.sequence):
            base: Loc = [body, i] if body == "steps" else []
            kind = step.kind
            if kind == "actions":
                loc: Loc = [*base, "actions"] if body == "steps" else ["actions"]
                actions = self._actions(step.actions or (), loc, playbook, journey_id)
                steps.append(CompiledStep("actions", actions))
            elif kind == "wait":
                steps.append(CompiledStep("wait", wait=step.wait))
            elif kind == "if":
                cond = self._condition(step.if_ or "", [*base, "if"])
                then = self._actions(step.then, [*base, "then"], playbook, journey_id)
                other = self._actions(step.else_, [*base, "else"], playbook, journey_id)
                steps.append(CompiledStep("if", then, other, condition=cond))
            else:
                cond = self._condition(step.exit_if or "", [*base, "exit_if"])
                steps.append(CompiledStep("exit_if", condition=cond))
        return tuple(steps)

    def _actions(
        self, actions: Sequence[Action], loc: Loc, playbook: Playbook, journey_id: str | None
    ) -> tuple[CompiledAction, ...]:
        return tuple(
            self._action(a, [*loc, i], str(i), playbook, journey_id) for i, a in enumerate(actions)
        )

    def _action(
        self, action: Action, loc: Loc, ref: str, playbook: Playbook, journey_id: str | None
    ) -> CompiledAction:
        kind = action.kind
        spec = action.spec
        at: Loc = [*loc, kind]
        texts: dict[str, CompiledTemplate] = {}
        html = False
        self._addressed = kind == "email"
        if kind == "email":
            self._recipient(spec.to, [*at, "to"], contacts=True)
            if spec.template is not None:
                source = self._template_file(spec.template, [*at, "template"])
                html = spec.template.endswith((".html", ".html.j2"))
                spec_body = source
            else:
                spec_body = spec.body
            if spec_body is not None:
                self._text(
                    texts, "body", spec_body, [*at, "template" if spec.template else "body"], html
                )
            self._text(texts, "subject", spec.subject, [*at, "subject"], False)
        elif kind == "task":
            self._recipient(spec.assignee, [*at, "assignee"], contacts=False)
            self._text(texts, "title", spec.title, [*at, "title"], False)
            if spec.notes:
                self._text(texts, "notes", spec.notes, [*at, "notes"], False)
        elif kind in ("webhook", "slack"):
            named = self.destinations.webhooks if kind == "webhook" else self.destinations.slack
            if spec.destination not in named:
                known = ", ".join(named) or "none configured"
                self._problem(
                    [*at, "destination"],
                    f"unknown {kind} destination '{spec.destination}' ({known})",
                )
            if kind == "slack":
                self._text(texts, "text", spec.text, [*at, "text"], False)
            else:
                self._payload(texts, spec.payload, [*at, "payload"], "payload")
        elif kind == "move_stage":
            journey = spec.journey or journey_id
            if spec.journey is not None and spec.journey not in self.journeys:
                self._problem([*at, "journey"], f"unknown journey '{spec.journey}'")
            else:
                self._stage(journey, spec.track or playbook.track, spec.stage, [*at, "stage"])
        return CompiledAction(ref, kind, spec, texts, html)

    def _text(
        self, texts: dict[str, CompiledTemplate], key: str, source: str, loc: Loc, html: bool
    ) -> None:
        compiled = self._template(source, loc, html=html)
        if compiled is not None:
            texts[key] = compiled

    def _payload(self, texts: dict[str, CompiledTemplate], value: Any, loc: Loc, key: str) -> None:
        if isinstance(value, str):
            self._text(texts, key, value, loc, False)
        elif isinstance(value, dict):
            for k, v in value.items():
                self._payload(texts, v, [*loc, k], f"{key}.{k}")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self._payload(texts, v, [*loc, i], f"{key}[{i}]")

    def _recipient(self, who: str, loc: Loc, *, contacts: bool) -> None:
        if contacts and who in self.schema.contact_roles:
            return
        if f"{who}_email" in self.schema.traits:
            return
        roles = f"a contact role ({', '.join(self.schema.contact_roles)}) or " if contacts else ""
        self._problem(loc, f"'{who}': expected {roles}an owner with a declared '{who}_email' trait")

    def _template_file(self, name: str, loc: Loc) -> str | None:
        try:
            source = self.templates.read(name)
        except ValueError as error:
            self._problem(loc, f"template '{name}': {error}")
            return None
        if source is None:
            self._problem(loc, f"template '{name}' not found (looked in {self.templates.where()})")
        return source
