"""``python -m bench``: Hourglass's drain against one Celery task per event, end to end.

Starts its own redis-server (127.0.0.1, a free port, AOF everysec, noeviction), writes the
example playbooks plus generated ones (50 in all) to a temporary directory, and runs W real
``celery worker`` processes on the shard queue. Then, in one run:

1. throughput: N events over A accounts, pushed through ``Ingestor`` as fast as it allows
   while the workers drain; events/s = N / (first ingest call -> shard counters show all N);
2. latency: track events at a steady rate (5,000/s), p50/p99 ingest-to-applied
   (bench/latency.py says exactly what is measured);
3. memory: bytes kept per account, the used_memory delta per account, stored state length
   (bench/memory.py says what each counts);
4. baseline: the Hourglass workers stop, Redis is flushed, W workers of ``bench.naive`` (one
   task per event, same store code, core, playbooks and Celery settings) apply a same-shaped
   workload; events/s from the first task sent to the last one run.

Progress goes to stdout; the last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from celery import Celery

from bench import compiled
from bench.baseline import QUEUE, core_events, run_baseline
from bench.cpu import Snapshot, per_event
from bench.driver import SHARDS_QUEUE, Driver
from bench.latency import run_latency
from bench.memory import measure, used_memory
from bench.procs import RedisProcess, Workers, machine, worker_env
from bench.throughput import run_throughput
from bench.workload import PLAYBOOKS, ROOT, calls, track_calls, write_playbooks


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``--quick`` lowers every size for a smoke run)."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, help="events in the throughput run (200,000)")
    parser.add_argument("--accounts", type=int, help="accounts they are spread over (50,000)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (2)")
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--playbooks", type=int, default=PLAYBOOKS, help="playbooks in all (50)")
    parser.add_argument("--latency-rate", type=float, default=5000.0, help="events/s (5,000)")
    parser.add_argument("--latency-seconds", type=float, help="length of the steady run (10)")
    parser.add_argument("--baseline-events", type=int, help="events for the baseline (20,000)")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--no-aof", action="store_true", help="redis-server without AOF")
    parser.add_argument("--quick", action="store_true", help="20,000 events: a smoke run")
    parser.add_argument(
        "--pure",
        action="store_true",
        help="workers on the pure-Python core (default: compiled with mypyc, as the image is)",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    args.events = args.events or (20_000 if quick else 200_000)
    args.accounts = args.accounts or (5_000 if quick else 50_000)
    args.latency_seconds = args.latency_seconds or (3.0 if quick else 10.0)
    args.baseline_events = args.baseline_events or (2_000 if quick else 20_000)
    if args.accounts > args.events or min(args.events, args.workers, args.shards) < 1:
        parser.error("need 1 <= accounts <= events, and at least one worker and one shard")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; print progress, then the figures as one JSON line."""
    args = arguments(argv)
    directory = Path(tempfile.mkdtemp(prefix="hourglass-bench-"))
    server = RedisProcess(directory / "redis", aof=not args.no_aof).start()
    try:
        result = run(args, server, write_playbooks(directory, args.playbooks), directory)
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
    print(json.dumps(result), flush=True)
    return result


def run(
    args: argparse.Namespace, server: RedisProcess, playbooks: Path, logs: Path
) -> dict[str, Any]:
    """The four measurements, in order, on a started redis-server."""
    client = server.client()
    about = machine(server.version())
    print(f"machine: {about}", flush=True)
    tree = None if args.pure else compiled.build()
    env = worker_env(server.url, playbooks, args.shards, tree)
    cwd = tree or ROOT
    if tree is not None:
        compiled.check(tree, [sys.executable], cwd, env)
    core = "python" if tree is None else "compiled"
    print(
        f"{args.playbooks} playbooks in {playbooks}; {args.workers} worker(s); core: {core}",
        flush=True,
    )
    ping = Celery("bench-ping", broker=server.url)
    driver = Driver(client, server.url, args.shards)
    workers = Workers("workers.app", SHARDS_QUEUE, args.workers, env, logs / "logs", cwd)
    workers.start(ping)
    try:
        warm = calls(20 * args.shards, 10 * args.shards, tag="warm-")
        driver.wait_applied(driver.ingest(warm), 0, 60)  # every shard, so every worker, warm
        before = used_memory(client)
        timeout = 120 + args.events / 200
        print(f"throughput: {args.events:,} events over {args.accounts:,} accounts", flush=True)
        workload = calls(args.events, args.accounts)
        start = Snapshot.take(client, workers.pids)
        throughput = run_throughput(driver, workload, timeout)
        cpu = per_event(start, Snapshot.take(client, workers.pids), throughput.events)
        print(
            f"  {throughput.events_per_s:,.0f} events/s end to end "
            f"(ingest alone ran at {throughput.ingest_events_per_s:,.0f} events/s)\n"
            f"  per event: {_figures(cpu)}",
            flush=True,
        )
        count = round(args.latency_rate * args.latency_seconds)
        print(f"latency: {count:,} events at {args.latency_rate:,.0f}/s", flush=True)
        steady = track_calls(count, args.accounts, "lat")
        latency = run_latency(driver, steady, args.latency_rate, timeout)
        print(
            f"  p50 {latency.p50_ms:.1f} ms, p99 {latency.p99_ms:.1f} ms, max "
            f"{latency.max_ms:.1f} ms (sent at {latency.sent_per_s:,.0f}/s)",
            flush=True,
        )
        memory = measure(client, before, args.accounts)
        print(
            f"memory: {memory.kept_per_account:,.0f} B/account kept per account; "
            f"{memory.used_per_account:,.0f} B/account used_memory delta; stored state "
            f"{memory.avg_state_len:,.0f} B on average; by kind: {memory.kinds}",
            flush=True,
        )
    finally:
        workers.stop()
    baseline = None if args.skip_baseline else baseline_run(args, server, env, cwd, ping, logs)
    ratio = None if baseline is None else throughput.events_per_s / baseline
    return {
        "events_per_s": round(throughput.events_per_s),
        "baseline_events_per_s": None if baseline is None else round(baseline),
        "ratio": None if ratio is None else round(ratio, 1),
        "p50_ms": round(latency.p50_ms, 1),
        "p99_ms": round(latency.p99_ms, 1),
        "bytes_per_account": round(memory.kept_per_account),
        "workers": args.workers,
        "core": core,
        "playbooks": args.playbooks,
        "events": args.events,
        "accounts": args.accounts,
        "ingest_events_per_s": round(throughput.ingest_events_per_s),
        "latency_rate": args.latency_rate,
        "latency_sent_per_s": round(latency.sent_per_s),
        "used_memory_per_account": round(memory.used_per_account),
        "per_event": {name: round(value, 2) for name, value in cpu.items()},
        "avg_state_len": round(memory.avg_state_len),
        "machine": about,
    }


def baseline_run(
    args: argparse.Namespace,
    server: RedisProcess,
    env: dict[str, str],
    cwd: Path,
    ping: Celery,
    logs: Path,
) -> float:
    """One Celery task per event on a flushed Redis, with a same-shaped, smaller workload."""
    client = server.client()
    client.flushall()
    accounts = max(1, args.baseline_events * args.accounts // args.events)
    print(f"baseline: {args.baseline_events:,} events over {accounts:,} accounts, one task each")
    workers = Workers("bench.naive", QUEUE, args.workers, env, logs / "logs", cwd).start(ping)
    try:
        run_baseline(client, server.url, core_events(calls(10 * args.workers, 5, "warm-")), 60)
        events = core_events(calls(args.baseline_events, accounts))
        start = Snapshot.take(client, workers.pids)
        rate = run_baseline(client, server.url, events, 120 + args.baseline_events / 50)
        cpu = per_event(start, Snapshot.take(client, workers.pids), len(events))
    finally:
        workers.stop()
    print(f"  {rate:,.0f} events/s\n  per event: {_figures(cpu)}", flush=True)
    return rate


def _figures(cpu: dict[str, float]) -> str:
    """Per-event CPU and Redis figures, for the progress lines."""
    return (
        f"CPU {cpu['ingest_us']:.0f} us producer (this process), {cpu['workers_us']:.0f} us "
        f"workers, {cpu['redis_us']:.0f} us redis-server; {cpu['redis_commands']:.1f} Redis "
        f"commands (scripts' own included) + {cpu['redis_scripts']:.2f} script calls"
    )


if __name__ == "__main__":
    main()
