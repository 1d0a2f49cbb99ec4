"""The API's response (and management request) models: what ``/openapi.json`` documents."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.api.errors import Rejected

# -- ingestion ---------------------------------------------------------------------------------


class Accepted(BaseModel):
    """An ingestion request's outcome: events stored (appended or parked), duplicates skipped,
    and the invalid ones by index (kept for inspection in ``GET /v1/rejected``)."""

    success: Literal[True] = True
    accepted: int = Field(ge=0, description="Events durably stored by this request.")
    duplicates: int = Field(ge=0, description="Events whose messageId was already stored.")
    parked: int = Field(ge=0, description="Stored, waiting for a group call naming the account.")
    rejected: list[Rejected] = Field(default_factory=list)


# -- accounts ----------------------------------------------------------------------------------


class StageVisit(BaseModel):
    """A past stage on a track."""

    stage: str
    entered: datetime
    left: datetime


class TrackStage(BaseModel):
    """Where an account is on one track (``journey.track``), and its bounded history."""

    track: str
    stage: str
    entered: datetime
    days: float = Field(description="Days in the stage, as of the request.")
    history: list[StageVisit] = Field(default_factory=list)


class HealthPoint(BaseModel):
    """A past health score."""

    at: datetime
    score: float


class Health(BaseModel):
    """The health score (0-100), its band, and recent history."""

    score: float
    band: str | None = None
    history: list[HealthPoint] = Field(default_factory=list)


class Contact(BaseModel):
    """One of the account's people (from identify calls)."""

    user_id: str
    email: str
    role: str
    timezone: str
    name: str
    active: bool
    bounced: bool
    last_seen: datetime


class OpenTimer(BaseModel):
    """A durable timer armed for the account."""

    id: str
    due: datetime
    generation: int


class OpenTask(BaseModel):
    """A CSM task a playbook opened and nobody completed yet."""

    id: str
    playbook: str
    title: str
    assignee: str
    due: datetime


class PlaybookRecord(BaseModel):
    """What one playbook has done for the account."""

    playbook: str
    fired: int
    last_fired: datetime | None = None
    goals: int = 0
    running_step: int | None = Field(default=None, description="Step of a sequence still running.")


class RecentAction(BaseModel):
    """An action decided for the account: pending in the outbox, delivered, or a task (open or
    done)."""

    key: str = Field(description="The action's idempotency key.")
    type: str
    playbook: str
    at: datetime
    status: Literal["pending", "delivered", "open", "done"]
    summary: str = ""


class Account(BaseModel):
    """Everything the engine keeps about one account, explained."""

    id: str
    created: datetime
    last_event: datetime | None = None
    stages: list[TrackStage]
    traits: dict[str, Any]
    flags: list[str]
    metrics: dict[str, Any]
    health: Health | None = None
    hold: bool = Field(description="Whether customer-facing communication is on hold.")
    contacts: list[Contact]
    open_timers: list[OpenTimer]
    open_tasks: list[OpenTask]
    playbooks: list[PlaybookRecord]
    recent_actions: list[RecentAction]
    dead_letters: int = Field(description="Events of this account that failed to apply.")


class AccountSummary(BaseModel):
    """One row of the account list."""

    id: str
    stages: dict[str, str] = Field(description="Track (`journey.track`) -> current stage.")
    health: float | None = None
    band: str | None = None
    last_event: datetime | None = None


class AccountList(BaseModel):
    """A page of accounts; pass ``next`` as ``cursor`` for the next page (null: the end)."""

    items: list[AccountSummary]
    next: str | None = None


class StageOverride(BaseModel):
    """A manual stage change for one track."""

    model_config = ConfigDict(extra="forbid")

    track: str = Field(
        min_length=1,
        max_length=200,
        description="`journey.track`, or a track name that is unique across journeys.",
    )
    stage: str = Field(min_length=1, max_length=200)
    reason: str = Field(default="", max_length=2000)


class StageOverrideQueued(BaseModel):
    """The override event is stored on the account's shard; a worker applies it."""

    message_id: str
    account: str
    track: str
    stage: str


# -- events ------------------------------------------------------------------------------------

EventState = Literal["queued", "processing", "applied", "dead_letter", "rejected", "parked"]


class EventStatus(BaseModel):
    """What became of one messageId (see docs/api.md for how each state is decided)."""

    message_id: str
    status: EventState
    shard: int | None = None
    account: str | None = None
    entry_id: str | None = Field(
        default=None, description="The shard stream entry, while it is kept."
    )
    received_at: datetime | None = None
    field: str | None = Field(default=None, description="For rejected events: the offending field.")
    reason: str | None = Field(
        default=None, description="For rejected events and dead letters: why."
    )


class RejectedEvent(BaseModel):
    """An invalid event kept for inspection."""

    id: str
    at: datetime
    index: int
    field: str
    reason: str
    raw: str = Field(description="The event as received (JSON, cut at 64 KB).")


class RejectedList(BaseModel):
    """Rejected events, newest first."""

    items: list[RejectedEvent]


# -- tasks -------------------------------------------------------------------------------------


class Task(BaseModel):
    """A CSM task (fields beyond these are the playbook's own)."""

    model_config = ConfigDict(extra="allow")

    task_id: str
    account: str
    playbook: str
    title: str = ""
    assignee: str = ""
    status: str
    due: str | None = None
    completed_at: datetime | None = None


class TaskList(BaseModel):
    """A page of tasks, oldest first."""

    items: list[Task]
    total: int
    next_offset: int | None = None


# -- dead letters ------------------------------------------------------------------------------


class DeadLetter(BaseModel):
    """An event that failed to apply, with its error; ``id`` is what replay and discard take."""

    id: str
    shard: int
    entry_id: str
    account: str | None = None
    error: str
    entry: str


class DeadLetterList(BaseModel):
    """Dead letters, oldest first per shard."""

    items: list[DeadLetter]


class DeadLetterDone(BaseModel):
    """A replayed or discarded dead letter."""

    id: str
    shard: int
    action: Literal["replayed", "discarded"]


# -- playbooks ---------------------------------------------------------------------------------


class PlaybookEntry(BaseModel):
    """One playbook of a set."""

    id: str
    version: int
    mode: str
    journey: str | None = None


class PlaybookSetInfo(BaseModel):
    """A published playbook set."""

    version: int
    author: str
    published: datetime
    digest: str
    note: str
    playbooks: list[PlaybookEntry]


class PlaybookSetList(BaseModel):
    """The set workers run, and the stored sets (newest first)."""

    current: PlaybookSetInfo | None = None
    history: list[PlaybookSetInfo]


class PlaybookUpload(BaseModel):
    """A new playbook set: every file by relative path (YAML, and ``templates/*``)."""

    model_config = ConfigDict(extra="forbid")

    files: dict[str, str] = Field(min_length=1)
    note: str = Field(default="", max_length=2000)


# -- operations --------------------------------------------------------------------------------


class Liveness(BaseModel):
    """The process is up."""

    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """Whether this API can serve: Redis answers PING, and Celery workers answer a ping."""

    ready: bool
    redis: bool
    workers: int = Field(ge=0, description="Workers that answered Celery's control.ping.")


class ShardStatus(BaseModel):
    """One shard's stream and counters."""

    shard: int
    stream: int = Field(description="Entries in the stream (unread, pending and not trimmed).")
    pending: int = Field(description="Entries read by a worker and not yet committed.")
    dead_letters: int
    counters: dict[str, float] = Field(
        description="applied, dead_letters, fenced_out... (and event_clock in replays)."
    )


class Status(BaseModel):
    """The deployment at a glance."""

    shards: list[ShardStatus]
    backlog: int = Field(description="Stream entries over all shards.")
    max_backlog: int
    rejected: int = Field(description="Invalid events kept in `hg:rejected`.")
    tasks_open: int
    workers: int
    playbook_version: int | None = None


class AuditRecord(BaseModel):
    """One management write."""

    id: str
    at: datetime
    who: str
    role: str
    action: str
    target: str
    outcome: str
    detail: dict[str, Any]


class AuditList(BaseModel):
    """Audit entries, newest first."""

    items: list[AuditRecord]
