"""Embedded mode: the runner wired to the in-memory store and the local file outbox."""

from __future__ import annotations

from pathlib import Path

from engine.channels.files import FileOutbox
from engine.core.clock import Clock, VirtualClock
from engine.core.playbook_set import PlaybookSet
from engine.runtime.memory import MemoryStore
from engine.runtime.runner import Runner

#: Action types the file outbox writes (tasks are kept in the store).
FILE_CHANNELS = ("email", "webhook", "slack")


def clear_outbox(outbox: Path) -> None:
    """Remove what an earlier run wrote to the outbox (only the folders Hourglass writes)."""
    for kind in FILE_CHANNELS:
        folder = outbox / f"{kind}s"
        if folder.is_dir():
            for path in folder.iterdir():
                if path.suffix in (".eml", ".json"):
                    path.unlink()


def embedded_runner(
    pset: PlaybookSet, *, outbox: Path | None = Path("outbox"), clock: Clock | None = None
) -> Runner:
    """One process, no services: emails as .eml and webhooks/Slack as JSON under ``outbox``."""
    channels = {}
    if outbox is not None:
        files = FileOutbox(outbox)
        channels = {kind: files for kind in FILE_CHANNELS}
    return Runner(pset, store=MemoryStore(), clock=clock or VirtualClock(), channels=channels)
