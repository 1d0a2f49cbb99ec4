"""Keeping the garbage collector's full passes to what the events allocate.

A worker holds hundreds of thousands of long-lived objects (Celery, the compiled playbook
set, templates, clients). Each full collection scans them all; in the drain that was about a
quarter of the CPU per event. Freezing them once they are loaded (``gc.freeze``) leaves the
collector only the objects made while applying events.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Collect what is garbage now, then exempt every object still alive from collection."""
    gc.collect()
    gc.freeze()
