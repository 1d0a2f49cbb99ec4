"""HTTP ingest benchmark: events/s through ``POST /v1/batch`` into Redis.

Starts its own redis-server (AOF on, ``appendfsync everysec``, as in production) and one API
process (``hourglass api``, one uvicorn worker), then pushes batches of 100 Segment track calls
from a few client threads over keep-alive connections (``http.client``). Counts only what the
API answered 200 for, checks the shard streams hold exactly that many entries, and prints a
final JSON line. No Celery worker runs: this measures ingestion alone.

    python -m bench.http [--events 200000] [--threads 4] [--batch 100] [--shards 16]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson
import redis

ROOT = Path(__file__).resolve().parent.parent
WRITE_KEY = "bench-write-key"


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(check: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``check()`` until it is true, or exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


def start_redis(directory: Path, aof: bool) -> tuple[subprocess.Popen[bytes], int]:
    """A redis-server of the benchmark's own, on loopback."""
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not on PATH (scripts/ensure-redis installs it)")
    port = free_port()
    command = [
        "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "yes" if aof else "no", "--appendfsync", "everysec",
        "--dir", str(directory), "--maxmemory-policy", "noeviction", "--logfile", "redis.log",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: redis.Redis(port=port).ping(), 10, "redis-server")
    return process, port


def start_api(redis_port: int, shards: int, directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    """One ``hourglass api`` process (one uvicorn worker, no access log)."""
    port = free_port()
    env = dict(os.environ)
    env.update(
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        HOURGLASS_WRITE_KEYS=f"bench:{WRITE_KEY}",
        HOURGLASS_SHARDS=str(shards),
        HOURGLASS_MAX_BACKLOG=str(10**9),
        HOURGLASS_PLAYBOOKS=str(ROOT / "playbooks"),
    )
    hourglass = str(Path(sys.executable).parent / "hourglass")
    command = [
        hourglass, "api", "--host", "127.0.0.1", "--port", str(port),
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    log = (directory / "api.log").open("ab")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def up() -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200

    wait_for(up, 30, "the API")
    return process, port


class Connection(http.client.HTTPConnection):
    """A keep-alive connection with Nagle off: http.client sends a body over 2,920 bytes in a
    second write, which Nagle holds back until the server's delayed ACK (~40 ms)."""

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def batch_body(size: int, thread: int, number: int, accounts: int) -> bytes:
    """A /v1/batch body of ``size`` track calls, as an SDK sends it."""
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".000Z"
    events = []
    for i in range(size):
        n = (thread * 1_000_003 + number * size + i) % (accounts * 10)
        events.append(
            {
                "type": "track",
                "event": "Feature Used",
                "messageId": str(uuid.uuid4()),
                "userId": f"user-{n}",
                "timestamp": stamp,
                "context": {"groupId": f"acct-{n % accounts}", "library": {"name": "bench"}},
                "properties": {"feature": "reports", "plan": "pro", "seats": n % 50},
            }
        )
    return orjson.dumps({"batch": events, "sentAt": stamp})


class Pusher(threading.Thread):
    """One client: POSTs its share of batches over one keep-alive connection."""

    def __init__(self, port: int, number: int, batches: int, size: int, accounts: int) -> None:
        super().__init__(daemon=True)
        self.port, self.number, self.batches, self.size = port, number, batches, size
        self.accounts = accounts
        self.accepted = 0
        self.finished = 0.0
        self.errors: list[str] = []
        self.auth = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()

    def run(self) -> None:
        connection = Connection("127.0.0.1", self.port, timeout=30)
        headers = {"Content-Type": "application/json", "Authorization": self.auth}
        for number in range(self.batches):
            body = batch_body(self.size, self.number, number, self.accounts)
            connection.request("POST", "/v1/batch", body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            if response.status != 200:
                self.errors.append(f"{response.status}: {data[:200]!r}")
                continue
            self.accepted += int(orjson.loads(data)["accepted"])
        self.finished = time.perf_counter()
        connection.close()


def machine() -> str:
    """A one-line description of this machine."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores, {model or platform.processor()}, {platform.system()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--threads", type=int, default=4, choices=range(1, 9))
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--no-aof", action="store_true", help="run redis-server without AOF")
    args = parser.parse_args()
    batches = max(1, args.events // (args.batch * args.threads))
    directory = Path(tempfile.mkdtemp(prefix="hourglass-bench-"))
    redis_process, redis_port = start_redis(directory, aof=not args.no_aof)
    api_process = None
    try:
        api_process, api_port = start_api(redis_port, args.shards, directory)
        warm = Pusher(api_port, 99, 5, args.batch, args.accounts)  # warm up: connections, scripts
        warm.run()
        pushers = [
            Pusher(api_port, n, batches, args.batch, args.accounts) for n in range(args.threads)
        ]
        started = time.perf_counter()
        for pusher in pushers:
            pusher.start()
        for pusher in pushers:
            while pusher.is_alive():
                pusher.join(2.0)
                done = sum(p.accepted for p in pushers)
                rate = done / (time.perf_counter() - started)
                print(f"  {done:>9,} events  {rate:>9,.0f} events/s", file=sys.stderr)
        elapsed = max(p.finished for p in pushers) - started
        accepted = sum(p.accepted for p in pushers)
        errors = [e for p in pushers for e in p.errors]
        client = redis.Redis(port=redis_port)
        stored = sum(client.xlen(f"hg:{{s{s:02d}}}:stream") for s in range(args.shards))
        result = {
            "benchmark": "http_ingest",
            "events": accepted,
            "seconds": round(elapsed, 3),
            "events_per_s": round(accepted / elapsed),
            "threads": args.threads,
            "batch": args.batch,
            "shards": args.shards,
            "aof": not args.no_aof,
            "stored": stored - warm.accepted,
            "errors": len(errors),
            "machine": machine(),
        }
        print(f"{result['events_per_s']:,} events/s ({accepted:,} events in {elapsed:.1f}s)")
        print(json.dumps(result))
        if errors or result["stored"] != accepted:
            print(f"errors: {errors[:3]}; stored {stored} of {accepted}", file=sys.stderr)
            raise SystemExit(1)
    finally:
        if api_process is not None:
            api_process.terminate()
            api_process.wait(10)
        redis_process.terminate()
        redis_process.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
