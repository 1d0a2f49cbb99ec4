"""The account page and the account list, read from the Redis store.

The page reuses the core's own views (``account_view``, ``contacts_view``): what the API shows
is what conditions and templates see. Recent actions are derived, not stored: actions still in
the account's shard outbox, and the account's tasks (open or done). Delivered emails, webhooks
and Slack messages leave the outbox, and no per-account record of them is kept (that needs a
write at commit time, in the commit script).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from engine.api.errors import ApiError
from engine.api.models import (
    Account,
    AccountList,
    AccountSummary,
    Contact,
    Health,
    HealthPoint,
    OpenTask,
    OpenTimer,
    PlaybookRecord,
    RecentAction,
    StageVisit,
    TrackStage,
)
from engine.core.clock import to_datetime
from engine.core.context import account_view, contacts_view
from engine.core.effects import ActionEffect
from engine.core.playbook_set import PlaybookSet
from engine.core.schema import AccountSchema
from engine.core.state import AccountState
from engine.redis.store import RedisStore

#: Outbox entries examined for one account page (the outbox holds undelivered actions only).
OUTBOX_SCAN = 5000
#: Recent actions shown on an account page.
RECENT_ACTIONS = 20
#: Account states examined for one page of the list (a page may come back short, with a cursor).
LIST_SCAN = 5000
_EMPTY = AccountSchema(kind="account")


def schema_of(pset: PlaybookSet | None) -> AccountSchema:
    """The account schema of the set, or an empty one (traits shown raw, no metrics)."""
    return pset.schema if pset is not None else _EMPTY


def _stages(state: AccountState, now: float) -> list[TrackStage]:
    return [
        TrackStage(
            track=key,
            stage=track.stage,
            entered=to_datetime(track.entered),
            days=round((now - track.entered) / 86400.0, 3),
            history=[
                StageVisit(stage=h.stage, entered=to_datetime(h.entered), left=to_datetime(h.left))
                for h in track.history
            ],
        )
        for key, track in sorted(state.tracks.items())
    ]


def _health(state: AccountState, schema: AccountSchema) -> Health | None:
    if state.health is None:
        return None
    return Health(
        score=state.health,
        band=schema.health.bands.band(state.health),
        history=[HealthPoint(at=to_datetime(t), score=v) for t, v in state.health_history],
    )


def _playbooks(state: AccountState) -> list[PlaybookRecord]:
    return [
        PlaybookRecord(
            playbook=playbook,
            fired=book.fired,
            last_fired=to_datetime(book.last_fired) if book.last_fired is not None else None,
            goals=book.goals,
            running_step=book.run.step if book.run is not None else None,
        )
        for playbook, book in sorted(state.books.items())
        if not book.untouched
    ]


def account_page(
    state: AccountState, pset: PlaybookSet | None, now: float, actions: list[RecentAction]
) -> Account:
    """The whole page of one account."""
    schema = schema_of(pset)
    view = account_view(state, schema, now)
    return Account(
        id=state.account_id,
        created=to_datetime(state.created),
        last_event=to_datetime(state.last_event) if state.last_event else None,
        stages=_stages(state, now),
        traits=view["traits"],
        flags=sorted(view["flags"]),
        metrics=view["metrics"],
        health=_health(state, schema),
        hold=view["hold"],
        contacts=[Contact(**c) for c in contacts_view(state)],
        open_timers=[
            OpenTimer(id=timer_id, due=to_datetime(t.due), generation=t.generation)
            for timer_id, t in sorted(state.timers.items(), key=lambda item: item[1].due)
        ],
        open_tasks=[
            OpenTask(
                id=key,
                playbook=t.playbook,
                title=t.title,
                assignee=t.assignee,
                due=to_datetime(t.due),
            )
            for key, t in state.tasks.items()
        ],
        playbooks=_playbooks(state),
        recent_actions=actions,
        dead_letters=state.dead_letters,
    )


def _summary(action: ActionEffect) -> str:
    payload = action.payload
    for field in ("subject", "title", "text", "destination", "name"):
        value = payload.get(field)
        if isinstance(value, str) and value:
            return value[:200]
    return ""


def recent_actions(store: RedisStore, account_id: str) -> list[RecentAction]:
    """The account's actions still in its shard's outbox, its latest deliveries, and its
    tasks; newest first."""
    shard = store.shard_of(account_id)
    marker = b'"account":' + orjson.dumps(account_id)
    out: list[RecentAction] = []
    outbox = store.client.hscan_iter(store.keys(shard).outbox, count=500)
    for seen, (_, raw) in enumerate(outbox):
        if seen >= OUTBOX_SCAN:
            break
        if marker not in raw:
            continue
        action = ActionEffect.from_dict(orjson.loads(raw))
        if action.account != account_id:
            continue
        out.append(
            RecentAction(
                key=action.key, type=action.type, playbook=action.playbook,
                at=to_datetime(action.at), status="pending", summary=_summary(action),
            )
        )  # fmt: skip
    for raw in store.client.lrange(store.keys(shard).recent(account_id), 0, -1):
        done = orjson.loads(raw)
        out.append(
            RecentAction(
                key=done["key"], type=done["type"], playbook=done["playbook"],
                at=to_datetime(float(done["at"])), status="delivered", summary=done["receipt"],
            )
        )  # fmt: skip
    for task in store.tasks():
        if task.get("account") != account_id:
            continue
        at = task.get("completed_at") or task.get("at") or 0.0
        out.append(
            RecentAction(
                key=str(task.get("task_id", "")),
                type="task",
                playbook=str(task.get("playbook", "")),
                at=to_datetime(float(at)) if isinstance(at, int | float) else to_datetime(0.0),
                status="done" if task.get("status") == "done" else "open",
                summary=str(task.get("title", ""))[:200],
            )
        )
    out.sort(key=lambda a: a.at, reverse=True)
    return out[:RECENT_ACTIONS]


# -- the list ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page of the list starts: a shard, and the last account id returned from it."""

    shard: int = 0
    after: str = ""

    def encode(self) -> str:
        raw = orjson.dumps([self.shard, self.after])
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str | None, shards: int) -> Cursor:
        """A cursor from ``next``; 400 for anything else."""
        if not text:
            return cls()
        try:
            shard, after = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        except (ValueError, TypeError, binascii.Error):
            raise ApiError(
                400, "invalid_cursor", "cursor: not a cursor this API returned"
            ) from None
        if not isinstance(shard, int) or not isinstance(after, str) or not 0 <= shard < shards:
            raise ApiError(400, "invalid_cursor", "cursor: not a cursor this API returned")
        return cls(shard, after)


def _matches(state: AccountState, stage: str | None, track: str | None) -> bool:
    for key, place in state.tracks.items():
        if track is not None and track not in (key, key.partition(".")[2]):
            continue
        if stage is None or place.stage == stage:
            return True
    return stage is None and track is None


def _ids_after(store: RedisStore, shard: int, after: str) -> Iterator[str]:
    raw: Any = store.client.smembers(store.keys(shard).accounts)
    members = sorted(m.decode() for m in raw)
    return (account for account in members if account > after)


def list_accounts(
    store: RedisStore,
    pset: PlaybookSet | None,
    *,
    stage: str | None,
    track: str | None,
    cursor: Cursor,
    limit: int,
) -> AccountList:
    """A page of accounts in (shard, id) order, filtered by stage and track."""
    schema = schema_of(pset)
    items: list[AccountSummary] = []
    examined = 0
    shard, after = cursor.shard, cursor.after
    while shard < store.shards:
        pending = list(_ids_after(store, shard, after))
        for start in range(0, len(pending), 200):
            chunk = pending[start : start + 200]
            states = store.load(chunk)
            for account in chunk:
                examined += 1
                after = account
                state = states.get(account)
                if state is not None and _matches(state, stage, track):
                    items.append(_row(state, schema))
                if len(items) >= limit or examined >= LIST_SCAN:
                    return AccountList(items=items, next=Cursor(shard, after).encode())
        shard, after = shard + 1, ""
    return AccountList(items=items, next=None)


def _row(state: AccountState, schema: AccountSchema) -> AccountSummary:
    return AccountSummary(
        id=state.account_id,
        stages={key: t.stage for key, t in sorted(state.tracks.items())},
        health=state.health,
        band=schema.health.bands.band(state.health) if state.health is not None else None,
        last_event=to_datetime(state.last_event) if state.last_event else None,
    )
