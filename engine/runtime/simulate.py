"""``hourglass simulate``: replay a timeline on a virtual clock and record every action."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from engine.core.clock import VirtualClock, iso
from engine.core.collector import settle
from engine.core.effects import ActionEffect
from engine.core.playbook_set import PlaybookSet
from engine.runtime.partitions import Partitioned
from engine.runtime.runner import Runner, RunnerStats
from engine.runtime.timeline import BadLine, read_timeline

DAY = 86400.0
DEFAULT_TAIL = 90 * DAY


def action_record(action: ActionEffect) -> dict[str, Any]:
    """One line of ``actions.jsonl``."""
    return {
        "time": iso(action.at),
        "account": action.account,
        "playbook": action.playbook,
        "version": action.version,
        "type": action.type,
        "idempotency_key": action.key,
        "mode": action.mode,
        "payload": action.payload,
    } | ({"not_before": iso(action.not_before)} if action.not_before is not None else {})


@dataclass
class SimulationResult:
    runner: Runner
    bad_lines: list[BadLine] = field(default_factory=list)
    actions_by_playbook: Counter[str] = field(default_factory=Counter)
    started: float = 0.0
    ended: float = 0.0

    @property
    def stats(self) -> RunnerStats:
        return self.runner.stats


def simulate(
    pset: PlaybookSet,
    events: Path,
    *,
    until: float | None = None,
    out: IO[bytes] | None = None,
    runner: Runner | None = None,
    on_bad_line: Callable[[BadLine], None] | None = None,
    progress: Callable[[int], None] | None = None,
    workers: int = 1,
) -> SimulationResult:
    """Apply every event of the file in order, firing timers at their virtual due times, up to
    ``until`` (default: the last event plus 90 days). With ``workers`` > 1, accounts are split
    over that many processes (same results; actions merged in time order)."""
    result = SimulationResult(runner or Runner(pset, clock=VirtualClock()))
    parallel = Partitioned(pset, workers, action_record) if workers > 1 else None

    def record(action: ActionEffect) -> None:
        result.actions_by_playbook[action.playbook] += 1
        if out is not None:
            out.write(orjson.dumps(action_record(action)) + b"\n")

    result.runner.on_action = record
    settle()
    submit = parallel.submit if parallel is not None else result.runner.submit
    last = 0.0
    count = 0
    for item in read_timeline(events):
        if isinstance(item, BadLine):
            result.bad_lines.append(item)
            if on_bad_line is not None:
                on_bad_line(item)
            continue
        if until is not None and item.ts > until:
            break
        if not result.started:
            result.started = item.ts
        submit(item)
        last = max(last, item.ts)
        count += 1
        if progress is not None and count % 10_000 == 0:
            progress(count)
    end = until if until is not None else last + DEFAULT_TAIL
    if parallel is not None:
        result.runner, result.actions_by_playbook = parallel.finish(end, out)
    else:
        result.runner.advance_to(end)
    result.ended = end
    return result
