"""The channels of a deployment, by action type: the one place both the embedded runner and the
Celery dispatcher get them from.

Without settings (embedded mode: the demo, simulations) nothing leaves the machine: emails,
webhooks and Slack messages are written to the file outbox, tasks go to the store. With
settings (workers): emails go over SMTP when ``HOURGLASS_SMTP_HOST`` is set (else to the file
outbox under ``HOURGLASS_OUTBOX_DIR``), webhooks and Slack messages are POSTed to their named
destinations through the SSRF guard, tasks go to the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from engine.channels.base import Channel
from engine.channels.files import FileOutbox
from engine.channels.guard import Resolver, system_resolver
from engine.channels.smtp import SmtpChannel
from engine.channels.tasks import TaskChannel
from engine.channels.webhook import WebhookChannel
from engine.core.destinations import Destinations
from engine.runtime.store import Store
from engine.settings import Settings

EMAIL, TASK, WEBHOOK, SLACK = "email", "task", "webhook", "slack"
#: Action types the file outbox writes.
FILE_TYPES = (EMAIL, WEBHOOK, SLACK)


def allow_listed(config: Settings) -> frozenset[str]:
    """Destination names ``HOURGLASS_ALLOW_PRIVATE_DESTINATIONS`` allows on private addresses."""
    return frozenset(n.strip() for n in config.allow_private_destinations.split(",") if n.strip())


def build_channels(
    store: Store,
    destinations: Destinations,
    config: Settings | None = None,
    *,
    outbox: Path | None = None,
    env: Mapping[str, str] | None = None,
    resolver: Resolver = system_resolver,
) -> dict[str, Channel]:
    """Action type -> channel. ``config=None``: offline (files under ``outbox``, if given)."""
    channels: dict[str, Channel] = {TASK: TaskChannel(store)}
    if config is None:
        if outbox is not None:
            files = FileOutbox(outbox)
            channels.update(dict.fromkeys(FILE_TYPES, files))
        return channels
    files = FileOutbox(outbox if outbox is not None else Path(config.outbox_dir))
    channels[EMAIL] = SmtpChannel.from_settings(config) if config.smtp_host else files
    allowed = allow_listed(config)
    channels[WEBHOOK] = WebhookChannel(
        destinations.webhooks, kind="webhook", allow_private=allowed, env=env, resolver=resolver
    )
    channels[SLACK] = WebhookChannel(
        destinations.slack, kind="slack", allow_private=allowed, env=env, resolver=resolver
    )
    return channels
