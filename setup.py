"""The build: pure Python by default; with HOURGLASS_COMPILE=1 the core's hot modules are
compiled to C extensions with mypyc (the image does this; docs/performance.md has the figures).

The compiled modules behave as the Python ones: the unit tests run against both
(``python -m bench.compiled --pytest tests/unit``).
"""

from __future__ import annotations

import os

from setuptools import setup

#: The modules an event's application spends its time in. Others stay Python: pydantic
#: models, the Jinja environment and msgspec structs do not compile, and the rest is not hot.
COMPILED = [
    "engine/core/application.py",
    "engine/core/apply.py",
    "engine/core/cel_native.py",
    "engine/core/clock.py",
    "engine/core/conditions.py",
    "engine/core/context.py",
    "engine/core/effects.py",
    "engine/core/enforce.py",
    "engine/core/event.py",
    "engine/core/metrics.py",
    "engine/core/playbook_set.py",
    "engine/core/quiet.py",
    "engine/core/timers.py",
]


def extensions() -> list[object]:
    if os.environ.get("HOURGLASS_COMPILE") != "1":
        return []
    from mypyc.build import mypycify

    return list(mypycify(COMPILED, opt_level="3"))


setup(ext_modules=extensions())
