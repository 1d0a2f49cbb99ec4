"""Dispatching a shard's outbox: claim due entries, deliver each through its channel, record.

A delivery is recorded by idempotency key: ``delivered`` with the channel's receipt, or
``failed`` (retried with backoff, dead-lettered after the last attempt or at once when the
channel says retrying cannot help). Entries are claimed under a lease; a delivery is only
started in the first half of it, so that it ends (channel timeouts permitting) before the lease
does, and the rest of a claim is released for the next dispatch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from engine.channels.base import Channel, DeliveryError
from engine.redis.outbox import Claimed, Outbox

log = logging.getLogger(__name__)


@dataclass
class DispatchReport:
    """What one dispatch of a shard did."""

    shard: int
    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    released: int = 0
    #: Whether the shard still had due entries when the dispatch ended.
    more: bool = False


class Dispatcher:
    """Delivers the outbox entries of a shard through channels, by action type."""

    def __init__(
        self,
        outbox: Outbox,
        channels: Mapping[str, Channel],
        *,
        lease_s: float = 60.0,
        attempts: int = 6,
        batch: int = 10,
        budget_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.outbox = outbox
        self.channels = dict(channels)
        self.lease_s = lease_s
        self.attempts = attempts
        self.batch = batch
        self.budget_s = budget_s
        self.clock = clock

    def dispatch(self, shard: int) -> DispatchReport:
        """Claim and deliver due entries of ``shard`` for up to ``budget_s`` seconds."""
        report = DispatchReport(shard)
        started = self.clock()
        while self.clock() - started < self.budget_s:
            claimed = self.outbox.claim(shard, self.clock(), self.lease_s, self.batch)
            if not claimed:
                break
            report.claimed += len(claimed)
            for entry in claimed:
                if self.clock() > entry.until - self.lease_s / 2:
                    self.outbox.release(shard, entry.key, self.clock())
                    report.released += 1
                else:
                    self.deliver(entry, report)
        report.more = self.outbox.has_due(shard, self.clock())
        return report

    def deliver(self, entry: Claimed, report: DispatchReport) -> None:
        """Deliver one claimed entry and record the outcome by its idempotency key."""
        try:
            action = entry.action()
        except (ValueError, TypeError, KeyError) as error:
            self._failed(entry, f"undecodable outbox entry: {error!r}", False, report)
            return
        channel = self.channels.get(action.type)
        if channel is None:
            self._failed(entry, f"no channel delivers {action.type!r} actions", False, report)
            return
        try:
            receipt = channel.deliver(action)
        except DeliveryError as error:
            self._failed(entry, str(error), error.retryable, report)
            return
        except Exception as error:  # a bug or an outage in a channel: retry, keep the rest going
            log.exception("outbox %s: channel %s crashed", entry.key, action.type)
            self._failed(entry, f"{type(error).__name__}: {error}", True, report)
            return
        self.outbox.delivered(entry.shard, entry.key, receipt, action)
        report.delivered += 1

    def _failed(self, entry: Claimed, error: str, retryable: bool, report: DispatchReport) -> None:
        failure = self.outbox.failed(
            entry.shard, entry.key, error, self.attempts, self.clock(), retryable=retryable
        )
        if failure.outcome == "dead":
            log.warning(
                "outbox %s: dead letter after %d attempts: %s", entry.key, failure.attempts, error
            )
            report.dead += 1
        elif failure.outcome == "retry":
            report.retried += 1
