"""Keeping Python's cyclic garbage collector out of the hot paths.

A worker holds hundreds of thousands of long-lived objects (Celery, the compiled playbook
set, templates, clients). Each full collection scans them all; in the drain that was about a
quarter of the CPU per event. Freezing them once they are loaded (:func:`settle`) leaves the
collector only the objects made while applying events. Short stretches that allocate much
and keep little (an ingest batch, a template render) run with the collector paused
(:func:`collector_paused`): their objects are freed by reference counting instead of being
promoted and rescanned.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


def settle() -> None:
    """Collect what is garbage now, then exempt every object still alive from collection."""
    gc.collect()
    gc.freeze()


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic collector for the block (and restore it as it was)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
