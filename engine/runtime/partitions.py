"""Simulating on several processes: accounts are independent, so a timeline splits by account.

The parent reads and routes the timeline (one router, one dedupe) and streams each event,
with the newest timestamp seen so far, to the process that owns its account (a stable
hash). Each child runs an ordinary ``Runner`` on its own virtual clock, firing its timers at
their due times, and the actions are merged back in time order.
"""

from __future__ import annotations

import heapq
import multiprocessing
import os
import tempfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO, Any

import orjson

from engine.core.clock import VirtualClock
from engine.core.collector import settle
from engine.core.effects import ActionEffect
from engine.core.event import Event
from engine.core.playbook_set import PlaybookSet
from engine.core.state import AccountState
from engine.runtime.memory import MemoryStore
from engine.runtime.runner import Runner, RunnerStats
from engine.runtime.store import Commit

CHUNK = 2000

Chunk = list[tuple[Event, float]]


def partition_of(account_id: str, partitions: int) -> int:
    return zlib.crc32(account_id.encode()) % partitions


def _child(
    pset: PlaybookSet,
    inbox: Connection,
    outbox: Connection,
    actions_path: str,
    record: Callable[[ActionEffect], dict[str, Any]],
) -> None:
    """Apply one partition's events; send back states, stats and counts at the end."""
    runner = Runner(pset, clock=VirtualClock())
    settle()
    by_playbook: Counter[str] = Counter()
    with open(actions_path, "wb") as sink:

        def on_action(action: ActionEffect) -> None:
            by_playbook[action.playbook] += 1
            sink.write(orjson.dumps(record(action)) + b"\n")

        runner.on_action = on_action
        while True:
            message = inbox.recv()
            if isinstance(message, float):
                runner.advance_to(message)
                break
            for event, arrival in message:
                runner.play(event, arrival)
    store = runner.store
    states = [s.dumps() for s in store.load(store.account_ids()).values()]
    outbox.send((states, asdict(runner.stats), dict(by_playbook)))


def _merged(paths: list[str]) -> Iterator[bytes]:
    """Action lines of every partition, in time order (ties: partition order)."""

    def lines(path: str) -> Iterator[tuple[bytes, int, bytes]]:
        with open(path, "rb") as handle:
            for n, line in enumerate(handle):
                yield orjson.loads(line)["time"].encode(), n, line

    for _, _, line in heapq.merge(*(lines(p) for p in paths)):
        yield line


class Partitioned:
    """Feeds a timeline to ``workers`` child processes and gathers what they did."""

    def __init__(
        self,
        pset: PlaybookSet,
        workers: int,
        record: Callable[[ActionEffect], dict[str, Any]],
    ) -> None:
        self.pset = pset
        self.workers = workers
        self.router = Runner(pset)  # the parent only routes and deduplicates
        self.tmp = tempfile.TemporaryDirectory(prefix="hourglass-sim-")
        self.paths = [os.path.join(self.tmp.name, f"actions-{i}.jsonl") for i in range(workers)]
        context = multiprocessing.get_context("fork")
        self.inboxes: list[Connection] = []
        self.results: list[Connection] = []
        self.processes = []
        for path in self.paths:
            receive, send = context.Pipe(duplex=False)
            result_in, result_out = context.Pipe(duplex=False)
            process = context.Process(
                target=_child, args=(pset, receive, result_out, path, record), daemon=True
            )
            process.start()
            receive.close()
            result_out.close()
            self.inboxes.append(send)
            self.results.append(result_in)
            self.processes.append(process)
        self.buffers: list[Chunk] = [[] for _ in range(workers)]

    def submit(self, event: Event) -> None:
        for ready in self.router.admit(event):
            assert ready.account_id is not None
            index = partition_of(ready.account_id, self.workers)
            buffer = self.buffers[index]
            buffer.append((ready, self.router.arrival))
            if len(buffer) >= CHUNK:
                self.inboxes[index].send(buffer)
                self.buffers[index] = []

    def finish(self, end: float, out: IO[bytes] | None) -> tuple[Runner, Counter[str]]:
        """Flush, run every partition to ``end``, merge their actions; a runner over all states."""
        for index, buffer in enumerate(self.buffers):
            if buffer:
                self.inboxes[index].send(buffer)
            self.inboxes[index].send(float(end))
        store = MemoryStore()
        stats = RunnerStats(duplicates=self.router.stats.duplicates)
        by_playbook: Counter[str] = Counter()
        for result, process in zip(self.results, self.processes, strict=True):
            blobs, child_stats, counts = result.recv()
            process.join()
            store.commit(Commit(states=[AccountState.loads(b) for b in blobs]))
            for name, value in child_stats.items():
                setattr(stats, name, getattr(stats, name) + value)
            by_playbook.update(counts)
        if out is not None:
            for line in _merged(self.paths):
                out.write(line)
        self.tmp.cleanup()
        runner = Runner(self.pset, store=store, clock=VirtualClock(end))
        runner.stats = stats
        return runner, by_playbook


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


__all__ = ["Partitioned", "Path", "cpu_count", "partition_of"]
