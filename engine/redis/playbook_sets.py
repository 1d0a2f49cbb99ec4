"""Published playbook sets in Redis: validated and stored as numbered versions, one of them
current; workers follow the current one without a restart.

A set is its files (relative path -> text: YAML documents, and templates under
``templates/``), compiled by the same loader as ``hourglass validate``. A set that does not
compile is refused and nothing is stored, so the running set stays. History is append-only (a
rollback publishes the old files again as a new version) and bounded: the newest ``keep`` sets
are stored, and every stored set's playbook versions stay loadable for sequences still running
on them (each playbook's ``on_change`` policy decides what such a run does).
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

import orjson
import redis

from engine.core.loader import TEMPLATES, is_document, load_playbook_set, load_texts
from engine.core.playbook_set import CompiledPlaybook, PlaybookSet
from engine.core.source import Problem
from engine.redis.keys import (
    PLAYBOOKS_CURRENT,
    PLAYBOOKS_HISTORY,
    PLAYBOOKS_META,
    PLAYBOOKS_SEQ,
    playbook_files,
)

log = logging.getLogger(__name__)

#: How many published sets are stored (older ones are pruned, with their files).
KEEP = 25
#: Limits on what one set may hold.
MAX_FILES = 1000
MAX_FILE_BYTES = 1024 * 1024
MAX_SET_BYTES = 16 * 1024 * 1024
#: Where problems about the set as a whole (not one of its files) are reported.
WHOLE_SET = "<set>"
#: Who publishes the directory set when a worker finds none in Redis.
BOOTSTRAP_AUTHOR = "worker-bootstrap"

Retained = dict[tuple[str, int], CompiledPlaybook]


@dataclass(frozen=True, slots=True)
class PlaybookInfo:
    """One playbook of a published set."""

    id: str
    version: int
    mode: str
    journey: str | None


@dataclass(frozen=True, slots=True)
class SetInfo:
    """A published set's metadata."""

    version: int
    author: str
    published: float
    digest: str
    note: str
    playbooks: tuple[PlaybookInfo, ...]

    def to_json(self) -> bytes:
        """The metadata as stored."""
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes | str) -> SetInfo:
        """Metadata as stored, back."""
        data: dict[str, Any] = orjson.loads(raw)
        playbooks = tuple(PlaybookInfo(**p) for p in data.pop("playbooks"))
        return cls(playbooks=playbooks, **data)

    @property
    def keys(self) -> set[tuple[str, int]]:
        """The (playbook id, version) pairs this set defines."""
        return {(p.id, p.version) for p in self.playbooks}


@dataclass(frozen=True, slots=True)
class Published:
    """A set was stored as a new version and is now current."""

    info: SetInfo


@dataclass(frozen=True, slots=True)
class Refused:
    """A set was refused; nothing was stored and the current set is unchanged."""

    problems: tuple[Problem, ...]


class SetError(Exception):
    """A stored set cannot be found or compiled, or a rollback was refused."""

    def __init__(self, message: str, problems: tuple[Problem, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


class PlaybookSets:
    """The published playbook sets of a deployment."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        keep: int = KEEP,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.client = client
        self.keep = keep
        self.clock = clock
        #: Compiled stored sets by version, with the digest they were compiled from.
        self._compiled: dict[int, tuple[str, PlaybookSet]] = {}

    # -- publishing --------------------------------------------------------------------------

    def publish(
        self, files: Mapping[str, str], *, author: str, note: str = ""
    ) -> Published | Refused:
        """Validate and compile ``files``; store them as a new current version, or refuse."""
        outcome = self._publish(files, author, note, first=False)
        assert outcome is not None
        return outcome

    def publish_first(
        self, files: Mapping[str, str], *, author: str, note: str = ""
    ) -> Published | Refused | None:
        """Like :meth:`publish`, but only while no set is published (None if one is)."""
        return self._publish(files, author, note, first=True)

    def rollback(self, version: int, *, author: str) -> SetInfo:
        """Publish the files of a stored ``version`` again, as a new version."""
        outcome = self.publish(
            self.files(version), author=author, note=f"rollback to version {version}"
        )
        if isinstance(outcome, Refused):
            raise SetError(f"version {version} no longer compiles", outcome.problems)
        return outcome.info

    def _publish(
        self, files: Mapping[str, str], author: str, note: str, *, first: bool
    ) -> Published | Refused | None:
        """Check, compile and store; None when ``first`` and a set is already published."""
        problems = check_files(files)
        if problems:
            return Refused(tuple(problems))
        result = load_texts(files)
        if result.pset is None:
            return Refused(tuple(result.problems))
        playbooks = tuple(
            PlaybookInfo(p.id, p.version, p.mode, p.journey)
            for p in sorted(result.pset.playbooks, key=lambda p: p.id)
        )
        draft = SetInfo(0, author, self.clock(), files_digest(files), note, playbooks)
        info = self._store(dict(files), draft, first=first)
        if info is None:
            return None
        self._compiled[info.version] = (info.digest, result.pset)
        log.info("playbook set version %d published by %s", info.version, author)
        return Published(info)

    def _store(self, files: dict[str, str], draft: SetInfo, *, first: bool) -> SetInfo | None:
        """Store a set as the next version and make it current, in one transaction (WATCH on
        the counter, current and history: a concurrent publish makes this one retry)."""
        stored: list[SetInfo] = []

        def write(pipe: redis.client.Pipeline) -> None:
            stored.clear()
            if first and pipe.get(PLAYBOOKS_CURRENT) is not None:
                return
            version = int(pipe.get(PLAYBOOKS_SEQ) or 0) + 1
            pruned = [int(v) for v in pipe.lrange(PLAYBOOKS_HISTORY, self.keep - 1, -1)]
            info = replace(draft, version=version)
            pipe.multi()
            pipe.set(PLAYBOOKS_SEQ, version)
            pipe.delete(playbook_files(version))
            pipe.hset(playbook_files(version), items=[x for pair in files.items() for x in pair])
            pipe.hset(PLAYBOOKS_META, str(version), info.to_json())
            pipe.lpush(PLAYBOOKS_HISTORY, version)
            pipe.ltrim(PLAYBOOKS_HISTORY, 0, self.keep - 1)
            for old in pruned:
                pipe.delete(playbook_files(old))
                pipe.hdel(PLAYBOOKS_META, str(old))
            pipe.set(PLAYBOOKS_CURRENT, version)
            stored.append(info)

        self.client.transaction(write, PLAYBOOKS_SEQ, PLAYBOOKS_CURRENT, PLAYBOOKS_HISTORY)
        return stored[0] if stored else None

    # -- reading -----------------------------------------------------------------------------

    def current_version(self) -> int | None:
        """The current version number (one GET), or None when nothing is published."""
        raw = self.client.get(PLAYBOOKS_CURRENT)
        return int(raw) if raw is not None else None

    def current(self) -> SetInfo | None:
        """The current set's metadata, or None when nothing is published."""
        version = self.current_version()
        return self.info(version) if version is not None else None

    def info(self, version: int) -> SetInfo:
        """A stored set's metadata."""
        raw = self.client.hget(PLAYBOOKS_META, str(version))
        if raw is None:
            raise SetError(f"no stored playbook set version {version}")
        return SetInfo.from_json(raw)

    def history(self, limit: int = 20) -> list[SetInfo]:
        """Stored sets' metadata, newest first."""
        if limit <= 0:
            return []
        versions = self.client.lrange(PLAYBOOKS_HISTORY, 0, limit - 1)
        if not versions:
            return []
        raws = self.client.hmget(PLAYBOOKS_META, [_text(v) for v in versions])
        return [SetInfo.from_json(raw) for raw in raws if raw is not None]

    def files(self, version: int) -> dict[str, str]:
        """A stored set's files (relative path -> text)."""
        raw = self.client.hgetall(playbook_files(version))
        if not raw:
            raise SetError(f"no stored playbook set version {version}")
        return {_text(k): _text(v) for k, v in raw.items()}

    # -- compiling ---------------------------------------------------------------------------

    def load(self, version: int | None = None) -> tuple[SetInfo, PlaybookSet]:
        """Compile a stored set (default: the current one), keeping the playbook versions of
        every earlier stored set for sequences still running on them."""
        if version is None:
            version = self.current_version()
            if version is None:
                raise SetError("no playbook set is published")
        info = self.info(version)
        retained = self._retained(info)
        result = load_texts(self.files(version), retained=retained)
        if result.pset is None:
            raise SetError(f"stored set version {version} does not compile", tuple(result.problems))
        self._compiled[version] = (info.digest, result.pset)
        return info, result.pset

    def _retained(self, info: SetInfo) -> Retained:
        """Playbook versions of the stored sets before ``info``; the newest definition of a
        (playbook, version) wins, and a set is compiled only if it adds one not seen yet."""
        earlier = [s for s in self.history(self.keep) if s.version < info.version]
        stored = {info.version, *(s.version for s in earlier)}
        for version in [v for v in self._compiled if v not in stored]:
            del self._compiled[version]  # pruned from Redis: forget it here too
        covered = set(info.keys)
        retained: Retained = {}
        for older in earlier:
            if older.keys <= covered:
                continue
            pset = self._compiled_set(older)
            if pset is None:
                continue
            for playbook in pset.playbooks:
                retained.setdefault((playbook.id, playbook.version), playbook)
            covered |= older.keys
        return retained

    def _compiled_set(self, info: SetInfo) -> PlaybookSet | None:
        """A stored set compiled on its own (cached: stored sets never change)."""
        cached = self._compiled.get(info.version)
        if cached is not None and cached[0] == info.digest:
            return cached[1]
        try:
            result = load_texts(self.files(info.version))
        except SetError:
            return None  # pruned meanwhile
        if result.pset is None:
            shown = "; ".join(str(p) for p in result.problems[:5])
            log.warning("stored set version %d no longer compiles: %s", info.version, shown)
            return None
        self._compiled[info.version] = (info.digest, result.pset)
        return result.pset


class LivePlaybooks:
    """What workers call for the playbook set to apply: the current published set, compiled.

    The current version is checked at most once per ``interval`` seconds (one GET) and the set
    recompiled only when it changed. With nothing published, the directory set is published as
    the first version. A stored set that does not compile leaves the previous set running.
    """

    def __init__(
        self,
        sets: PlaybookSets,
        fallback_dir: str | Path,
        *,
        interval: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sets = sets
        self.fallback_dir = Path(fallback_dir)
        self.interval = interval
        self.monotonic = monotonic
        self.pset: PlaybookSet | None = None
        #: The stored version running (None: none yet, or the directory set as a last resort).
        self.version: int | None = None
        self._failed: int | None = None
        self._checked = -float("inf")
        self._lock = threading.Lock()

    def __call__(self) -> PlaybookSet:
        """The set to apply now."""
        with self._lock:
            now = self.monotonic()
            if self.pset is not None and now - self._checked < self.interval:
                return self.pset
            self._checked = now
            return self._refresh()

    def _refresh(self) -> PlaybookSet:
        """Check the current version; switch to it if it is new and loads."""
        try:
            version = self.sets.current_version()
        except redis.RedisError as error:
            if self.pset is None:
                raise
            log.warning("cannot check the published playbook set (%s); keeping the set", error)
            return self.pset
        if version is None:
            return self._bootstrap()
        if self.pset is not None and version in (self.version, self._failed):
            return self.pset
        return self._switch(version)

    def _switch(self, version: int) -> PlaybookSet:
        """Compile and run ``version``; on failure keep what runs (or fall back)."""
        try:
            info, pset = self.sets.load(version)
        except redis.RedisError as error:
            if self.pset is None:
                raise
            log.warning("cannot load playbook set version %d (%s); keeping the set", version, error)
            return self.pset
        except Exception as error:
            self._failed = version
            problems = getattr(error, "problems", ())
            log.error(
                "PLAYBOOK SET VERSION %d DOES NOT LOAD IN THIS WORKER; still running %s: %s%s",
                version,
                f"version {self.version}" if self.pset is not None else "the directory set",
                error,
                "".join(f"\n  {p}" for p in problems[:20]),
                exc_info=not problems,
            )
            return self.pset if self.pset is not None else self._directory()
        previous = self.version
        self.pset, self.version, self._failed = pset, version, None
        log.info(
            "playbook set version %d is live (was %s; published by %s; %d playbooks)",
            version,
            previous,
            info.author,
            len(info.playbooks),
        )
        return pset

    def _bootstrap(self) -> PlaybookSet:
        """Nothing is published: publish the directory set as the first version."""
        files, problems = directory_files(self.fallback_dir)
        outcome: Published | Refused | None = Refused(tuple(problems))
        if not problems:
            note = f"{self.fallback_dir} at worker start"
            outcome = self.sets.publish_first(files, author=BOOTSTRAP_AUTHOR, note=note)
        if isinstance(outcome, Refused):
            shown = "".join(f"\n  {p}" for p in outcome.problems[:20])
            log.error(
                "NO PLAYBOOK SET IS PUBLISHED and %s does not load:%s", self.fallback_dir, shown
            )
            if self.pset is not None:
                return self.pset
            raise RuntimeError(
                f"no playbook set is published and {self.fallback_dir} does not load"
            )
        version = outcome.info.version if outcome is not None else self.sets.current_version()
        if version is None:  # published by another worker, then... removed: try again later
            raise RuntimeError("the published playbook set disappeared")
        return self._switch(version)

    def _directory(self) -> PlaybookSet:
        """Last resort with nothing running: the directory set, loaded as is."""
        result = load_playbook_set([self.fallback_dir])
        if result.pset is None:
            shown = "; ".join(str(p) for p in result.problems[:5])
            raise RuntimeError(f"no playbook set loads (not {self.fallback_dir} either: {shown})")
        log.error(
            "running the directory set %s until a loadable set is published", self.fallback_dir
        )
        self.pset, self.version = result.pset, None
        return result.pset


# -- files -------------------------------------------------------------------------------------


def directory_files(directory: str | Path) -> tuple[dict[str, str], list[Problem]]:
    """A set directory's files as :meth:`PlaybookSets.publish` takes them: every YAML file and
    everything under ``templates/`` (hidden files and folders left out), by relative path."""
    root = Path(directory)
    if not root.is_dir():
        return {}, [Problem(str(root), 1, "not a directory")]
    files: dict[str, str] = {}
    problems: list[Problem] = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            path = Path(folder, name)
            relative = path.relative_to(root).as_posix()
            if not (is_document(relative) or _is_template(relative)):
                continue
            try:
                files[relative] = path.read_bytes().decode("utf-8-sig")
            except UnicodeDecodeError:
                problems.append(Problem(str(path), 1, "not a UTF-8 text file"))
            except OSError as error:
                reason = (error.strerror or str(error)).lower()
                problems.append(Problem(str(path), 1, f"could not read file: {reason}"))
    return files, problems


def check_files(files: Mapping[str, str]) -> list[Problem]:
    """Problems with a set's file names and sizes (before its contents are compiled)."""
    problems: list[Problem] = []
    if len(files) > MAX_FILES:
        problems.append(Problem(WHOLE_SET, 1, f"{len(files)} files: at most {MAX_FILES} allowed"))
    total = 0
    documents = 0
    for name, text in files.items():
        if not isinstance(name, str) or not isinstance(text, str):
            problems.append(Problem(str(name), 1, "file names and contents must be text"))
            continue
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            problems.append(Problem(name, 1, "not valid Unicode text"))
            continue
        total += size
        reason = _bad_name(name)
        if reason is not None:
            problems.append(Problem(name or "''", 1, reason))
        elif size > MAX_FILE_BYTES:
            problems.append(Problem(name, 1, f"{size} bytes: at most {MAX_FILE_BYTES} allowed"))
        documents += is_document(name)
    if total > MAX_SET_BYTES:
        problems.append(Problem(WHOLE_SET, 1, f"{total} bytes: at most {MAX_SET_BYTES} allowed"))
    if not documents and not problems:
        problems.append(Problem(WHOLE_SET, 1, "the set holds no YAML files"))
    return problems


def files_digest(files: Mapping[str, str]) -> str:
    """A digest of a set's files, names included (the same files give the same digest)."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(orjson.dumps([name, files[name]]))
    return digest.hexdigest()[:16]


def _bad_name(name: str) -> str | None:
    """Why ``name`` is not an acceptable relative path in a set, or None."""
    if not name or name.startswith("/") or "\\" in name or "\x00" in name:
        return "expected a relative path like 'onboarding.yaml' or 'templates/welcome.txt.j2'"
    if posixpath.normpath(name) != name or ".." in PurePosixPath(name).parts:
        return "expected a normalized relative path (no '.', '..' or '//')"
    if any(part.startswith(".") for part in PurePosixPath(name).parts):
        return "hidden files are not part of a set"
    if not (is_document(name) or _is_template(name)):
        return f"expected a .yaml/.yml file, or a template under {TEMPLATES}/"
    return None


def _is_template(name: str) -> bool:
    """Whether a relative path is a file under ``templates/`` (not hidden)."""
    parts = PurePosixPath(name).parts
    return len(parts) > 1 and parts[0] == TEMPLATES and not any(p.startswith(".") for p in parts)


def _text(value: bytes | str) -> str:
    """A Redis reply as text (the client may or may not decode responses)."""
    return value.decode() if isinstance(value, bytes) else value
