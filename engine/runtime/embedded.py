"""Embedded mode: the runner wired to the in-memory store and the channel registry (offline by
default: the local file outbox)."""

from __future__ import annotations

from pathlib import Path

from engine.channels.registry import FILE_TYPES, build_channels
from engine.core.clock import Clock, VirtualClock
from engine.core.playbook_set import PlaybookSet
from engine.runtime.memory import MemoryStore
from engine.runtime.runner import Runner
from engine.settings import Settings

#: Action types the file outbox writes (tasks are kept in the store).
FILE_CHANNELS = FILE_TYPES


def clear_outbox(outbox: Path) -> None:
    """Remove what an earlier run wrote to the outbox (only the folders Hourglass writes)."""
    for kind in FILE_CHANNELS:
        folder = outbox / f"{kind}s"
        if folder.is_dir():
            for path in folder.iterdir():
                if path.suffix in (".eml", ".json"):
                    path.unlink()


def embedded_runner(
    pset: PlaybookSet,
    *,
    outbox: Path | None = Path("outbox"),
    clock: Clock | None = None,
    config: Settings | None = None,
) -> Runner:
    """One process, no services: emails as .eml and webhooks/Slack as JSON under ``outbox``.

    With ``config``, the channels are the workers' (SMTP, HTTP webhooks) instead.
    """
    store = MemoryStore()
    channels = build_channels(store, pset.destinations, config, outbox=outbox)
    return Runner(pset, store=store, clock=clock or VirtualClock(), channels=channels)
