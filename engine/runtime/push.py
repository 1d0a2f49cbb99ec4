"""The client side of ``hourglass ingest FILE.jsonl``: read a timeline, batch, pace, sum up.

Lines that are not JSON objects are reported with their line numbers (the timeline reader's
:class:`BadLine`) without being sent; events the ingest rejects are mapped back to theirs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from engine.redis.ingest import IngestResult
from engine.runtime.timeline import BadLine, read_objects

Ingest = Callable[[list[dict[str, Any]]], IngestResult]
#: Segment's limit on one request: a batch is cut before it would grow past this.
MAX_BATCH_BYTES = 500 * 1024


@dataclass
class PushReport:
    """What a push did: lines read, events sent, and the ingest results summed."""

    lines: int = 0
    sent: int = 0
    batches: int = 0
    accepted: int = 0
    duplicates: int = 0
    parked: int = 0
    released: int = 0
    dropped: int = 0
    #: Events the ingest refused (also listed in ``bad_lines`` with their line numbers).
    rejected: int = 0
    bad_lines: list[BadLine] = field(default_factory=list)
    kicked: set[int] = field(default_factory=set)
    elapsed_s: float = 0.0

    def add(self, result: IngestResult) -> None:
        """Sum one batch's result into the report."""
        self.batches += 1
        self.accepted += result.accepted
        self.duplicates += result.duplicates
        self.parked += result.parked
        self.released += result.released
        self.dropped += result.dropped
        self.rejected += len(result.rejected)
        self.kicked |= result.kicked


def _count_lines(path: Path) -> int:
    """How many non-blank lines the file has (the progress total)."""
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


class _Pusher:
    """Sends batches at a pace, maps rejections to lines, reports progress."""

    def __init__(
        self,
        path: Path,
        ingest: Ingest,
        rate: float | None,
        progress: Callable[[int, int], None] | None,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self.path, self.ingest, self.rate = path, ingest, rate
        self.progress, self.clock, self.sleep = progress, clock, sleep
        self.total = _count_lines(path) if progress is not None else 0
        self.report = PushReport()
        self.start = clock()

    def send(self, batch: list[tuple[int, dict[str, Any]]], done: int) -> None:
        """Wait for the batch's turn, send it, and account for it."""
        if batch:
            if self.rate is not None:
                wait = self.start + self.report.sent / self.rate - self.clock()
                if wait > 0:
                    self.sleep(wait)
            result = self.ingest([data for _, data in batch])
            self.report.sent += len(batch)
            self.report.add(result)
            for problem in result.rejected:
                line = batch[problem.index][0]
                self.report.bad_lines.append(
                    BadLine(str(self.path), line, f"{problem.field}: {problem.reason}")
                )
        if self.progress is not None:
            self.progress(done, self.total)


def push_file(
    path: Path | str,
    ingest: Ingest,
    *,
    batch_size: int = 500,
    rate: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    max_batch_bytes: int = MAX_BATCH_BYTES,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> PushReport:
    """Send a JSONL timeline through ``ingest`` in batches, at most ``rate`` events/s if given.

    ``progress(lines_done, lines_total)`` is called after each batch.
    """
    if batch_size < 1 or max_batch_bytes < 1:
        raise ValueError("batch_size and max_batch_bytes must be at least 1")
    if rate is not None and rate <= 0:
        raise ValueError("rate must be positive")
    if rate is not None:  # at most a second's worth per batch, so the pace stays even
        batch_size = min(batch_size, max(1, int(rate)))
    path = Path(path)
    pusher = _Pusher(path, ingest, rate, progress, clock, sleep)
    report = pusher.report
    batch: list[tuple[int, dict[str, Any]]] = []
    size = 0
    for item in read_objects(path):
        if isinstance(item, BadLine):
            report.bad_lines.append(item)
            report.lines += 1
            continue
        weight = len(orjson.dumps(item[1], default=str)) + 1
        if batch and (len(batch) >= batch_size or size + weight > max_batch_bytes):
            pusher.send(batch, report.lines)
            batch, size = [], 0
        batch.append(item)
        size += weight
        report.lines += 1
    pusher.send(batch, report.lines)
    report.bad_lines.sort(key=lambda bad: bad.line)
    report.elapsed_s = clock() - pusher.start
    return report
