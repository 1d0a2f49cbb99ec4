"""push_file: batching, pacing on a fake clock, bad lines and rejections by line number."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from engine.core.events import BatchProblem
from engine.redis.ingest import Ingestor, IngestResult
from engine.runtime.push import push_file
from engine.runtime.timeline import BadLine, read_timeline

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "timelines"


def event(i: int, **fields: Any) -> dict[str, Any]:
    return {"type": "track", "event": "E", "userId": "u1", "messageId": f"m{i}", **fields}


def write(path: Path, lines: list[Any]) -> Path:
    path.write_bytes(
        b"\n".join(line if isinstance(line, bytes) else orjson.dumps(line) for line in lines)
    )
    return path


class Recorder:
    """A fake ingest: records batches, accepts everything except events marked bad."""

    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []

    def __call__(self, batch: list[dict[str, Any]]) -> IngestResult:
        self.batches.append(batch)
        bad = [BatchProblem(i, "event", "bad") for i, item in enumerate(batch) if item.get("bad")]
        ids = [item["messageId"] for item in batch if not item.get("bad")]
        return IngestResult(accepted=len(ids), rejected=bad, message_ids=ids, kicked={1})


class FakeTime:
    """A clock that only moves when slept on."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_batches_and_sums(tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl", [event(i) for i in range(7)])
    ingest = Recorder()
    report = push_file(path, ingest, batch_size=3)
    assert [len(b) for b in ingest.batches] == [3, 3, 1]
    assert [b["messageId"] for batch in ingest.batches for b in batch] == [
        f"m{i}" for i in range(7)
    ]
    assert (report.lines, report.sent, report.batches, report.accepted) == (7, 7, 3, 7)
    assert report.kicked == {1} and report.bad_lines == []


def test_batches_are_cut_by_bytes(tmp_path: Path) -> None:
    big = [event(i, properties={"pad": "x" * 400}) for i in range(5)]
    path = write(tmp_path / "t.jsonl", big)
    ingest = Recorder()
    push_file(path, ingest, max_batch_bytes=1100)
    assert [len(b) for b in ingest.batches] == [2, 2, 1]


def test_bad_lines_and_rejections_are_reported_with_line_numbers(tmp_path: Path) -> None:
    lines = [event(0), b"{not json", b"", b"[1, 2]", event(4, bad=True), event(5)]
    path = write(tmp_path / "t.jsonl", lines)
    ingest = Recorder()
    report = push_file(path, ingest, batch_size=2)
    assert [(bad.line, bad.reason.split(":")[0]) for bad in report.bad_lines] == [
        (2, "not JSON"),
        (4, "expected a JSON object"),
        (5, "event"),
    ]
    assert str(report.bad_lines[2]) == f"{path}:5: event: bad"
    assert (report.lines, report.sent, report.accepted, report.rejected) == (5, 3, 2, 1)


def test_pacing_to_a_rate_on_a_fake_clock(tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl", [event(i) for i in range(5)])
    fake = FakeTime()
    sent_at: list[float] = []

    def ingest(batch: list[dict[str, Any]]) -> IngestResult:
        sent_at.append(fake.now)
        return IngestResult(accepted=len(batch))

    report = push_file(path, ingest, rate=2, clock=fake.clock, sleep=fake.sleep)
    assert sent_at == [100.0, 101.0, 102.0]  # batches of a second's worth, one per second
    assert fake.sleeps == [1.0, 1.0]
    assert report.elapsed_s == 2.0


def test_pacing_does_not_sleep_when_behind(tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl", [event(i) for i in range(4)])
    fake = FakeTime()

    def slow(batch: list[dict[str, Any]]) -> IngestResult:
        fake.now += 5  # each call takes longer than its share
        return IngestResult(accepted=len(batch))

    push_file(path, slow, rate=1, clock=fake.clock, sleep=fake.sleep)
    assert fake.sleeps == []


def test_progress_reports_lines_done_of_total(tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl", [event(0), b"oops", event(2), event(3), event(4)])
    seen: list[tuple[int, int]] = []
    push_file(
        path, Recorder(), batch_size=2, progress=lambda done, total: seen.append((done, total))
    )
    assert seen == [(3, 5), (5, 5)]


@pytest.mark.parametrize("kwargs", [{"batch_size": 0}, {"rate": 0}, {"max_batch_bytes": 0}])
def test_arguments_are_checked(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        push_file(write(tmp_path / "t.jsonl", []), Recorder(), **kwargs)


def test_pushing_a_fixture_into_redis(fake_redis: redis.Redis) -> None:
    path = FIXTURES / "bad-lines.jsonl"
    ingestor = Ingestor(fake_redis, shards=4)
    report = push_file(path, ingestor.ingest, batch_size=3)
    expected = [item for item in read_timeline(path) if isinstance(item, BadLine)]
    assert [bad.line for bad in report.bad_lines] == [bad.line for bad in expected]
    assert report.accepted == report.sent - report.rejected - report.duplicates
    again = push_file(path, ingestor.ingest)
    assert (again.accepted, again.duplicates) == (0, report.accepted)
