"""The baseline: one Celery task per event (``celery -A bench.naive worker -Q bench.naive``).

The same store code, core and playbooks as the drain, and the same Celery settings as
``workers.app``, so the benchmark's ratio compares designs (a task per event vs. a task per
batch of a shard), not code. Like any naive design it has no per-account ordering across
worker processes and no fence: it is a yardstick, not a runtime.
"""

from __future__ import annotations

import os
import time
from functools import lru_cache

import orjson
from celery import Celery

from bench.baseline import APPLIED, QUEUE, TASK
from engine.core.apply import apply, new_account
from engine.core.event import Event
from engine.core.loader import load_playbook_set
from engine.core.playbook_set import PlaybookSet
from engine.redis.store import RedisStore
from engine.runtime.store import Commit

#: Celery settings taken from the Hourglass app, so both run under the same configuration.
SHARED = (
    "task_acks_late", "task_reject_on_worker_lost", "worker_prefetch_multiplier",
    "task_time_limit", "task_soft_time_limit", "task_ignore_result", "worker_send_task_events",
    "task_send_sent_event", "broker_connection_retry_on_startup", "broker_transport_options",
)  # fmt: skip


def make_app() -> Celery:
    """The baseline's Celery app, on the broker the Hourglass app uses (``REDIS_URL``)."""
    from workers.app import app as hourglass

    app = Celery("bench-naive", broker=hourglass.conf.broker_url)
    app.conf.update({name: hourglass.conf[name] for name in SHARED})
    app.conf.update(task_default_queue=QUEUE)
    return app


app = make_app()


@lru_cache(maxsize=1)
def _store() -> RedisStore:
    url = os.environ["REDIS_URL"]
    return RedisStore.from_url(url, shards=int(os.environ.get("HOURGLASS_SHARDS", "16")))


@lru_cache(maxsize=1)
def _playbooks() -> PlaybookSet:
    pset = load_playbook_set([os.environ["HOURGLASS_PLAYBOOKS"]]).pset
    if pset is None:
        raise RuntimeError("the benchmark's playbook set does not load")
    return pset


@app.task(name=TASK)  # type: ignore[untyped-decorator]
def apply_one(event_json: str) -> None:
    """Load the event's account, apply the event with the core, commit the result."""
    event = Event.from_dict(orjson.loads(event_json))
    account = event.account_id
    if account is None:
        return
    store = _store()
    now = time.time()
    state = store.load([account]).get(account) or new_account(account, now)
    effects = apply(state, event, now, _playbooks())
    commit = Commit()
    commit.add(state, effects)
    store.commit(commit)
    store.client.incr(APPLIED)
