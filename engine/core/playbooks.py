"""The playbook format CS ops write in YAML: triggers, conditions, actions or steps, policy."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.core.durations import DurationField, parse_duration

Mode = Literal["live", "dry_run", "disabled"]
Call = Literal["track", "identify", "group", "page", "screen", "alias"]
OnChange = Literal["finish", "migrate", "exit"]

_ID = r"^[a-z][a-z0-9_-]*$"


class Authored(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _exactly_one(model: BaseModel, names: tuple[str, ...], what: str) -> str:
    """The one field of ``names`` that is set, or a clear error."""
    found = [n for n in names if getattr(model, n) is not None]
    if len(found) != 1:
        listed = ", ".join(n.rstrip("_") for n in names)
        got = ", ".join(n.rstrip("_") for n in found) or "none"
        raise ValueError(f"{what} needs exactly one of: {listed} (found: {got})")
    return found[0]


# -- triggers ------------------------------------------------------------------------------


class Inactivity(Authored):
    """None of ``events`` for ``for_``, optionally only while the account is in a stage."""

    events: tuple[str, ...] = Field(min_length=1)
    for_: DurationField = Field(alias="for")
    in_stage: str | None = None


class DateTrigger(Authored):
    """Relative to a date trait (``before: 30d``, ``after: 7d``, or on the day), at ``at``
    local time in the account's time zone."""

    trait: str
    before: DurationField | None = None
    after: DurationField | None = None
    at: str = Field(default="09:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")

    @model_validator(mode="after")
    def _one_offset(self) -> DateTrigger:
        if self.before is not None and self.after is not None:
            raise ValueError("date: give 'before' or 'after', not both")
        return self


class Schedule(Authored):
    """A cron schedule in a time zone."""

    cron: str
    timezone: str = "UTC"


class Threshold(Authored):
    """A crossing: from not-below to below, or not-above to above, or into a health band."""

    name: str | None = None
    below: float | None = None
    above: float | None = None
    band: Literal["green", "yellow", "red"] | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> Threshold:
        _exactly_one(self, ("below", "above", "band"), "a threshold")
        return self


class Trigger(Authored):
    """One way a playbook fires. Any of a playbook's triggers fires it."""

    event: str | None = None
    call: Call | None = None
    filter: str | None = None
    stage_entered: str | None = None
    stage_exited: str | None = None
    track: str | None = None
    inactivity: Inactivity | None = None
    date: DateTrigger | None = None
    schedule: Schedule | None = None
    metric: Threshold | None = None
    health: Threshold | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Trigger:
        kind = self.kind
        if self.filter is not None and kind not in ("event", "call"):
            raise ValueError("filter only applies to event and call triggers")
        if self.track is not None and kind not in ("stage_entered", "stage_exited"):
            raise ValueError("track only applies to stage_entered and stage_exited triggers")
        if kind == "metric" and not (self.metric and self.metric.name):
            raise ValueError("metric: needs 'name' (a declared metric)")
        if kind == "metric" and self.metric and self.metric.band:
            raise ValueError("metric: 'band' only applies to health triggers")
        return self

    @property
    def kind(self) -> str:
        return _exactly_one(self, TRIGGER_KINDS, "a trigger")


TRIGGER_KINDS = (
    "event",
    "call",
    "stage_entered",
    "stage_exited",
    "inactivity",
    "date",
    "schedule",
    "metric",
    "health",
)

# -- actions -------------------------------------------------------------------------------


class Email(Authored):
    """An email to a contact by role, or to the CSM / account executive (``csm``, ``ae``)."""

    to: str
    subject: str
    body: str | None = None
    template: str | None = None

    @model_validator(mode="after")
    def _body(self) -> Email:
        _exactly_one(self, ("body", "template"), "email")
        return self


class TaskAction(Authored):
    """A to-do for a CSM (like a Gainsight CTA)."""

    title: str
    assignee: str = "csm"
    due: DurationField = Field(default=parse_duration("2 business days"))
    priority: Literal["low", "normal", "high", "urgent"] = "normal"
    notes: str = ""


class WebhookAction(Authored):
    """A POST to a destination named in configuration, never a raw URL."""

    destination: str
    payload: dict[str, Any] = {}


class SlackAction(Authored):
    destination: str
    text: str


class SetTrait(Authored):
    name: str
    value: Any


class SetFlag(Authored):
    name: str
    ttl: DurationField | None = None


class MoveStage(Authored):
    stage: str
    track: str | None = None
    journey: str | None = None


class AdjustHealth(Authored):
    by: float
    reason: str = ""
    ttl: DurationField | None = None


class Action(Authored):
    """One action; exactly one key is set."""

    email: Email | None = None
    task: TaskAction | None = None
    webhook: WebhookAction | None = None
    slack: SlackAction | None = None
    set_trait: SetTrait | None = None
    set_flag: SetFlag | None = None
    clear_flag: str | None = None
    move_stage: MoveStage | None = None
    adjust_health: AdjustHealth | None = None

    @field_validator("set_flag", mode="before")
    @classmethod
    def _flag_shorthand(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("move_stage", mode="before")
    @classmethod
    def _stage_shorthand(cls, value: Any) -> Any:
        return {"stage": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_kind(self) -> Action:
        _ = self.kind
        return self

    @property
    def kind(self) -> str:
        return _exactly_one(self, ACTION_KINDS, "an action")

    @property
    def spec(self) -> Any:
        return getattr(self, self.kind)


ACTION_KINDS = (
    "email",
    "task",
    "webhook",
    "slack",
    "set_trait",
    "set_flag",
    "clear_flag",
    "move_stage",
    "adjust_health",
)
#: Actions that leave the engine (through the outbox) rather than change the account.
DELIVERED = frozenset({"email", "task", "webhook", "slack"})

# -- steps and policy ----------------------------------------------------------------------


class Step(Authored):
    """One step of a sequence: run actions, wait, branch, or exit."""

    name: str | None = None
    actions: tuple[Action, ...] | None = None
    wait: DurationField | None = None
    if_: str | None = Field(default=None, alias="if")
    then: tuple[Action, ...] = ()
    else_: tuple[Action, ...] = Field(default=(), alias="else")
    exit_if: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        kind = _exactly_one(self, ("actions", "wait", "if_", "exit_if"), "a step")
        if kind != "if_" and (self.then or self.else_):
            raise ValueError("then/else only belong to an 'if' step")
        if kind == "if_" and not (self.then or self.else_):
            raise ValueError("an 'if' step needs 'then' or 'else' actions")
        return self

    @property
    def kind(self) -> str:
        return _exactly_one(self, ("actions", "wait", "if_", "exit_if"), "a step").rstrip("_")


class QuietHours(Authored):
    """Local hours in which customer-facing emails wait (in the recipient's or the account's
    time zone); an email decided then is held until ``end``."""

    start: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    end: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    weekends: bool = False

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("quiet_hours: start and end must differ")
        return self


class ExitWhen(Authored):
    """What ends a running sequence early: any of these events, or any of these conditions."""

    events: tuple[str, ...] = ()
    conditions: tuple[str, ...] = ()


class Goal(Authored):
    """What success looks like: an event or a condition reached within a window."""

    event: str | None = None
    condition: str | None = None
    within: DurationField

    @model_validator(mode="after")
    def _one(self) -> Goal:
        _exactly_one(self, ("event", "condition"), "goal")
        return self


class Playbook(Authored):
    """One automated routine, as a CS ops team writes it."""

    kind: Literal["playbook"]
    id: str = Field(pattern=_ID)
    name: str
    description: str = ""
    version: int = Field(default=1, ge=1)
    mode: Mode = "live"
    journey: str | None = None
    track: str = "lifecycle"
    priority: int = 0
    cooldown: DurationField | None = None
    unless: tuple[str, ...] = ()
    triggers: tuple[Trigger, ...] = Field(min_length=1)
    conditions: tuple[str, ...] = ()
    actions: tuple[Action, ...] | None = None
    steps: tuple[Step, ...] | None = None
    exit_when: ExitWhen = ExitWhen()
    goal: Goal | None = None
    on_change: OnChange = "finish"
    quiet_hours: QuietHours | None = None

    @field_validator("unless", "conditions", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _body(self) -> Playbook:
        _exactly_one(self, ("actions", "steps"), "a playbook")
        return self

    @property
    def sequence(self) -> tuple[Step, ...]:
        """The playbook as steps: plain ``actions`` are one step."""
        if self.steps is not None:
            return self.steps
        return (Step(actions=self.actions),)
