"""The benchmark: its workload, its latency arithmetic, and a bounded smoke run of
``python -m bench`` with a tiny N (a real redis-server and real Celery workers)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from conftest import require_redis_server

from engine.core.events import parse_event
from engine.core.loader import load_playbook_set

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # bench/ is a program next to the package, not installed with it

from bench import compiled  # noqa: E402
from bench.latency import _latencies, percentile  # noqa: E402
from bench.memory import kind_of  # noqa: E402
from bench.workload import PLAYBOOKS, calls, track_calls, write_playbooks  # noqa: E402

KEYS = {
    "events_per_s", "baseline_events_per_s", "ratio", "p50_ms", "p99_ms", "bytes_per_account",
    "workers", "events", "accounts",
}  # fmt: skip


def test_the_playbook_set_has_fifty_valid_playbooks(tmp_path: Path) -> None:
    result = load_playbook_set([write_playbooks(tmp_path)])
    assert result.problems == []
    assert result.pset is not None and len(result.pset.by_id) == PLAYBOOKS
    kinds = Counter(t.kind for p in result.pset.by_id.values() for t in p.triggers)
    assert kinds["event"] >= 10 and kinds["metric"] >= 3 and kinds["call"] >= 3


def test_calls_group_and_identify_every_account_before_its_tracks() -> None:
    generated = calls(40, 10, tag="t-")
    assert [c["type"] for c in generated[:10]] == ["group"] * 10
    assert [c["type"] for c in generated[10:20]] == ["identify"] * 10
    assert {c["type"] for c in generated[20:]} == {"track"}
    assert len({c["messageId"] for c in generated}) == 40
    assert all(c.get("groupId", c.get("context", {}).get("groupId", "")).startswith("t-acct-")
               for c in generated)  # fmt: skip
    for call in generated:
        parse_event(call)  # valid Segment calls


def test_track_calls_have_their_own_message_ids() -> None:
    steady = track_calls(5, 3, "lat")
    assert [c["messageId"] for c in steady] == [f"lat-{n}" for n in range(5)]


def test_latency_is_the_first_read_covering_an_events_place_in_its_shard() -> None:
    # Shard 0 gets events 0 and 2, shard 1 event 1; sent at 0.0, 0.0 and 0.1 s.
    reads = [(0.05, [1, 0]), (0.2, [1, 1]), (0.3, [2, 1])]
    latencies = _latencies([0, 1, 0], [0.0, 0.0, 0.1], reads, [0, 0])
    assert latencies == pytest.approx([50.0, 200.0, 200.0])  # shard 0's, then shard 1's


def test_a_read_before_an_event_was_sent_does_not_cover_it() -> None:
    assert _latencies([0], [1.0], [(0.5, [1]), (1.25, [1])], [0]) == pytest.approx([250.0])


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0 and percentile(values, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0


def test_memory_kinds_follow_the_key_names() -> None:
    assert kind_of(b"hg:{s03}:acct:acct-1") == "states"
    assert kind_of(b"hg:{s03}:seen:m-1") == "dedupe keys"
    assert kind_of(b"hg:{s03}:timers:gen") == "timers"
    assert kind_of(b"hg:{s03}:accounts") == "accounts sets"
    assert kind_of(b"hg:users") == "user directory"
    assert kind_of(b"hg:{s03}:counters") == "other"
    assert kind_of(b"hg:{s03}:outbox") == "outbox"
    assert kind_of(b"hg:{s03}:delivered:2") == kind_of(b"hg:{s03}:recent:acme") == "receipts"


def test_a_tiny_benchmark_run_prints_the_figures_as_one_json_line() -> None:
    require_redis_server()
    compiled.build()  # the workers run the compiled core: built here, outside the run's timeout
    command = [
        sys.executable, "-m", "bench", "--events", "400", "--accounts", "100", "--workers", "1",
        "--latency-rate", "200", "--latency-seconds", "1", "--baseline-events", "60",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(figures) >= KEYS
    assert (figures["events"], figures["accounts"], figures["workers"]) == (400, 100, 1)
    assert figures["core"] == "compiled"
    assert figures["events_per_s"] > 0 and figures["baseline_events_per_s"] > 0
    ratio = figures["events_per_s"] / figures["baseline_events_per_s"]
    assert abs(figures["ratio"] - ratio) <= 0.1  # the figures are printed rounded
    assert 0 <= figures["p50_ms"] <= figures["p99_ms"]
    assert figures["bytes_per_account"] > figures["avg_state_len"] > 0
    assert figures["used_memory_per_account"] > 0
