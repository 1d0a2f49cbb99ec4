"""The Celery application: queues for shard draining, action dispatch and slow channels."""

from __future__ import annotations

from celery import Celery
from kombu import Queue  # type: ignore[attr-defined]

from engine.settings import settings

SHARDS_QUEUE = "hourglass.shards"
DISPATCH_QUEUE = "hourglass.dispatch"
SLOW_QUEUE = "hourglass.slow"
QUEUES = (SHARDS_QUEUE, DISPATCH_QUEUE, SLOW_QUEUE)


def make_app() -> Celery:
    """The app, configured from the environment (``REDIS_URL``, ``HOURGLASS_BROKER_URL``)."""
    config = settings()
    app = Celery("hourglass", broker=config.broker, include=["workers.tasks", "workers.dispatch"])
    app.conf.update(
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue=SHARDS_QUEUE,
        task_routes={
            "hourglass.drain_shard": {"queue": SHARDS_QUEUE},
            "hourglass.dispatch": {"queue": DISPATCH_QUEUE},
            "hourglass.dispatch_sweep": {"queue": DISPATCH_QUEUE},
        },
        # A lost drain would only delay (the sweep kicks the shard again), but acks_late keeps
        # the kick with the task until it has run.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=300,
        task_soft_time_limit=240,
        task_ignore_result=True,
        # Task events on, so Flower works unchanged.
        worker_send_task_events=True,
        task_send_sent_event=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": 3600},
        beat_schedule={
            # Every second: due timers fire within about a second; a lost kick only delays.
            "sweep-shards": {"task": "hourglass.sweep", "schedule": 1.0},
            # Every 2 s: outbox entries due (retries, expired claims) are dispatched promptly.
            "sweep-outbox": {"task": "hourglass.dispatch_sweep", "schedule": 2.0},
        },
    )
    return app


app = make_app()
