"""The embedded runner: one process, a store, a clock; events routed to accounts, timers
fired at their due times, and live actions delivered through channels."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from engine.channels.base import Channel, DeliveryError
from engine.core.apply import apply, new_account
from engine.core.clock import Clock, VirtualClock
from engine.core.effects import ActionEffect, Effects
from engine.core.event import TIMER, Event, TimerFiring
from engine.core.identity import Router
from engine.core.playbook_set import PlaybookSet
from engine.runtime.memory import MemoryStore
from engine.runtime.store import Commit, DueTimer, Store

ActionSink = Callable[[ActionEffect], None]


@dataclass
class RunnerStats:
    """What a run did, for summaries."""

    events: int = 0
    duplicates: int = 0
    timers_fired: int = 0
    stale_timers: int = 0
    actions: int = 0
    delivered: int = 0
    failed_deliveries: int = 0


class Runner:
    """Applies events and timer firings to accounts, one at a time, in arrival order."""

    def __init__(
        self,
        pset: PlaybookSet,
        *,
        store: Store | None = None,
        clock: Clock | None = None,
        channels: Mapping[str, Channel] | None = None,
        on_action: ActionSink | None = None,
        router: Router | None = None,
    ) -> None:
        self.pset = pset
        self.store = store or MemoryStore()
        self.clock = clock or VirtualClock()
        self.channels = dict(channels or {})
        self.on_action = on_action
        self.router = router or Router()
        self.stats = RunnerStats()
        #: The newest event timestamp seen: a virtual clock never runs behind it.
        self.arrival = 0.0

    @property
    def virtual(self) -> bool:
        return isinstance(self.clock, VirtualClock)

    def submit(self, event: Event) -> None:
        """Route an app event to its account (parking it if unknown) and apply it."""
        for ready in self.admit(event):
            self.play(ready, self.arrival)

    def admit(self, event: Event) -> list[Event]:
        """Deduplicate and route an arriving event: the events now ready, accounts filled in."""
        self.arrival = max(self.arrival, event.ts)
        if not self.store.remember_message(event.message_id):
            self.stats.duplicates += 1
            return []
        return self.router.route(event)

    def play(self, event: Event, arrival: float) -> None:
        """Apply a routed event. On a virtual clock, time first moves to ``arrival`` (the newest
        timestamp seen so far) and every timer due by then fires; a late event is applied at
        that time, not its own."""
        if self.virtual:
            self.advance_to(arrival)
        assert event.account_id is not None
        self.stats.events += 1
        self._apply(event.account_id, event, self.clock.now())

    def advance_to(self, when: float) -> None:
        """Fire every timer due by ``when`` in due order (a virtual clock moves with them)."""
        clock = self.clock
        while True:
            due = self.store.next_due()
            if due is None or due > when:
                break
            if isinstance(clock, VirtualClock):
                clock.advance_to(due)
            for timer in self.store.pop_due(due, limit=1000):
                self._fire(timer)
        if isinstance(clock, VirtualClock):
            clock.advance_to(when)

    def run_due(self) -> int:
        """Fire timers due at the clock's current time (live mode); how many fired."""
        fired = 0
        for timer in self.store.pop_due(self.clock.now()):
            self._fire(timer)
            fired += 1
        return fired

    def _fire(self, timer: DueTimer) -> None:
        self.stats.timers_fired += 1
        event = Event(
            kind=TIMER,
            message_id=f"timer:{timer.timer_id}#{timer.generation}",
            ts=timer.due,
            account_id=timer.account_id,
            timer=TimerFiring(timer.timer_id, timer.generation, timer.due),
        )
        effects = self._apply(timer.account_id, event, self.clock.now())
        if effects.dropped:
            self.stats.stale_timers += 1

    def _apply(self, account_id: str, event: Event, now: float) -> Effects:
        state = self.store.state(account_id) or new_account(account_id, now)
        effects = apply(state, event, now, self.pset)
        commit = Commit()
        commit.add(state, effects)
        self.store.commit(commit)
        self.stats.actions += len(effects.actions)
        for action in effects.actions:
            if self.on_action is not None:
                self.on_action(action)
        self.deliver_pending()
        return effects

    def deliver_pending(self) -> None:
        """Deliver outbox entries through the configured channels (embedded: synchronously)."""
        now = self.clock.now()
        for action in self.store.pending_actions():
            if action.not_before is not None and action.not_before > now:
                continue  # held for quiet hours; a later call delivers it
            channel = self.channels.get(action.type)
            if channel is None:
                self.store.mark_delivered(action.key, "recorded")
                continue
            try:
                receipt = channel.deliver(action)
            except DeliveryError:
                self.stats.failed_deliveries += 1
                continue
            self.store.mark_delivered(action.key, receipt)
            self.stats.delivered += 1
