"""Reading a timeline of Segment events from JSON Lines, reporting bad lines and going on."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from engine.core.event import Event
from engine.core.events import EventError, parse_event, to_core


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that could not become an event: where, and why."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


def read_objects(path: Path) -> Iterator[tuple[int, dict[str, Any]] | BadLine]:
    """Each non-blank line's JSON object with its line number, or why it is not one."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                data = orjson.loads(raw.rstrip(b"\r\n"))
            except orjson.JSONDecodeError as error:
                yield BadLine(str(path), number, f"not JSON: {error}")
                continue
            if not isinstance(data, dict):
                yield BadLine(str(path), number, "expected a JSON object")
                continue
            yield number, data


def read_timeline(path: Path) -> Iterator[Event | BadLine]:
    """Each line's event, or why it is not one. A missing timestamp takes the previous one's."""
    last = 0.0
    for item in read_objects(path):
        if isinstance(item, BadLine):
            yield item
            continue
        number, data = item
        try:
            event = to_core(parse_event(data), now=last)
        except EventError as error:
            yield BadLine(str(path), number, str(error))
            continue
        last = max(last, event.ts)
        yield event
