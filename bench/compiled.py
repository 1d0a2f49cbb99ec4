"""A copy of the package with the core compiled by mypyc, as ``HOURGLASS_COMPILE=1`` builds it
for a deployment, kept apart from the source tree (an extension module next to its ``.py``
would shadow every later edit of it).

``python -m bench.compiled`` builds it (or reuses the copy built from the same sources) and
prints where it is; ``--pytest ARGS...`` then runs pytest with that copy first on the path,
after checking that the compiled modules are the ones imported (``make test`` runs the unit
tests this way, so both forms of the core pass the same tests).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench.workload import ROOT

#: What a build copies: the packages the workers import, and the build's own files.
PACKAGES = ("engine", "workers")
BUILD_FILES = ("setup.py", "pyproject.toml", "README.md")
#: A module the build compiles: its presence as an extension shows the copy is compiled.
PROBE = "engine.core.apply"


def _sources(root: Path) -> list[Path]:
    files = [root / name for name in BUILD_FILES]
    for package in PACKAGES:
        files += sorted(
            path
            for path in (root / package).rglob("*")
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".so"
        )
    return files


def _digest(root: Path, files: list[Path]) -> str:
    """The sources, the interpreter and the compiler: a change to any of them rebuilds."""
    from mypy.version import __version__ as mypy_version

    digest = hashlib.sha256(f"{sys.version}|{mypy_version}".encode())
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def build(root: Path = ROOT) -> Path:
    """The compiled copy's directory (built now unless a copy of the same sources exists)."""
    files = _sources(root)
    tree = root / "build" / "compiled" / _digest(root, files)
    if (tree / ".built").exists():
        return tree
    staging = tree.with_name(tree.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    for path in files:
        target = staging / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    print(f"compiling the core with mypyc into {tree.relative_to(root)} (about a minute)...")
    log = staging / "build.log"
    with log.open("wb") as out:
        done = subprocess.run(
            [sys.executable, "setup.py", "build_ext", "--inplace"],
            cwd=staging,
            env={**os.environ, "HOURGLASS_COMPILE": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if done.returncode != 0:
        raise SystemExit(f"mypyc build failed: see {log}")
    shutil.rmtree(staging / "build", ignore_errors=True)  # intermediate C files
    (staging / ".built").touch()
    for older in tree.parent.iterdir():  # copies of earlier sources
        if older != staging:
            shutil.rmtree(older, ignore_errors=True)
    staging.rename(tree)
    return tree


def environment(tree: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """An environment whose Python imports the compiled copy before anything else."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(tree), env.get("PYTHONPATH")) if p)
    return env


def check(tree: Path, python: list[str], cwd: Path, env: dict[str, str]) -> None:
    """Exit unless ``python`` started from ``cwd`` with ``env`` imports the compiled core."""
    probe = f"import {PROBE} as m; print(m.__file__)"
    found = subprocess.run(
        [*python, "-c", probe], cwd=cwd, env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    if not found.startswith(str(tree)) or not found.endswith(".so"):
        raise SystemExit(f"{PROBE} loads from {found}, not from the compiled copy in {tree}")


def main(argv: list[str]) -> int:
    tree = build()
    # ``-P``: the working directory (the source tree) stays off the front of the path.
    python, env = [sys.executable, "-P"], environment(tree)
    check(tree, python, ROOT, env)
    print(tree)
    if argv[:1] != ["--pytest"]:
        return 0
    command = [*python, "-m", "pytest", "-p", "no:cacheprovider", *argv[1:]]
    return subprocess.run(command, cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
