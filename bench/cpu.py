"""Where a run's CPU went: the benchmark process (ingest), the workers, redis-server; and how
many Redis commands it took (INFO commandstats, commands run inside Lua scripts included)."""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

import redis

TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of one process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def own_cpu() -> float:
    """User + system CPU seconds of this process (and its threads) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def redis_cpu(client: redis.Redis) -> float:
    """redis-server's user + system CPU seconds so far (INFO cpu, main process)."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def redis_commands(client: redis.Redis) -> dict[str, int]:
    """Calls per command so far (INFO commandstats)."""
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(row["calls"]) for name, row in stats.items()}


@dataclass(frozen=True, slots=True)
class Snapshot:
    """CPU seconds and command counts at one moment."""

    own: float
    workers: float
    server: float
    commands: dict[str, int]

    @classmethod
    def take(cls, client: redis.Redis, pids: list[int]) -> Snapshot:
        workers = sum(process_cpu(pid) for pid in pids)
        return cls(own_cpu(), workers, redis_cpu(client), redis_commands(client))


def per_event(before: Snapshot, after: Snapshot, events: int) -> dict[str, float]:
    """CPU microseconds per event by process, and Redis commands per event (EVALSHA apart)."""
    calls = {n: c - before.commands.get(n, 0) for n, c in after.commands.items()}
    scripts = calls.get("evalsha", 0) + calls.get("eval", 0)
    return {
        "ingest_us": 1e6 * (after.own - before.own) / events,
        "workers_us": 1e6 * (after.workers - before.workers) / events,
        "redis_us": 1e6 * (after.server - before.server) / events,
        "redis_commands": (sum(calls.values()) - scripts) / events,
        "redis_scripts": scripts / events,
    }
