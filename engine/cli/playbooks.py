"""Published playbook sets: load a directory into a running deployment, list, history, rollback."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from engine.cli import app, console
from engine.cli.runtime import _redis

if TYPE_CHECKING:
    from engine.core.source import Problem
    from engine.redis.playbook_sets import PlaybookSets, SetInfo

playbooks = typer.Typer(
    help="Published playbook sets: what the workers run, its history, rollbacks.",
    no_args_is_help=True,
)
app.add_typer(playbooks, name="playbooks")


def _sets() -> PlaybookSets:
    """The deployment's published sets (REDIS_URL), or exit 1 saying what is missing."""
    from engine.redis.playbook_sets import PlaybookSets

    _, client = _redis()
    return PlaybookSets(client)


def _who(author: str | None) -> str:
    """The author to record: the option, else the login name."""
    if author:
        return author
    for name in ("HOURGLASS_AUTHOR", "USER", "LOGNAME", "USERNAME"):
        if os.environ.get(name):
            return os.environ[name]
    return "unknown"


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%MZ")


def _fail(message: str, problems: tuple[Problem, ...] | list[Problem] = ()) -> typer.Exit:
    """Print the problems (``file:line: message``) and a summary to stderr; exit code 1."""
    for problem in problems:
        typer.echo(str(problem), err=True)
    typer.echo(message, err=True)
    return typer.Exit(1)


def _running(sets: PlaybookSets) -> str:
    current = sets.current_version()
    return f"version {current}" if current is not None else "none published"


@playbooks.command("load")
def playbooks_load(
    directory: Path = typer.Argument(..., help="The playbook directory to publish."),  # noqa: B008
    author: str | None = typer.Option(None, help="Recorded as the author (default: $USER)."),
    note: str = typer.Option("", help="Why: recorded with the version."),
) -> None:
    """Validate a directory and publish it as the new current set; workers switch within a
    second. A set with problems is refused and the running set stays."""
    import redis

    from engine.core.source import Problem
    from engine.redis.playbook_sets import Refused, directory_files

    sets = _sets()
    files, problems = directory_files(directory)
    try:
        if problems:
            raise _fail(
                f"refused: {len(problems)} problem(s); running set: {_running(sets)}", problems
            )
        outcome = sets.publish(files, author=_who(author), note=note)
        if isinstance(outcome, Refused):
            shown = [
                Problem(str(directory / p.file), p.line, p.message) if p.file in files else p
                for p in outcome.problems
            ]
            raise _fail(f"refused: {len(shown)} problem(s); running set: {_running(sets)}", shown)
    except redis.RedisError as error:
        raise _fail(f"Redis unavailable: {error}") from None
    info = outcome.info
    console.print(
        f"published version {info.version} ({len(info.playbooks)} playbooks, {len(files)} files, "
        f"digest {info.digest}); workers switch to it within a second"
    )


@playbooks.command("list")
def playbooks_list() -> None:
    """The current set's playbooks: id, version, mode, journey."""
    from rich.table import Table

    info = _sets().current()
    if info is None:
        raise _fail("no playbook set is published yet (a worker publishes its directory)")
    table = Table(title=_title(info))
    for column in ("id", "version", "mode", "journey"):
        table.add_column(column)
    for p in info.playbooks:
        table.add_row(p.id, str(p.version), p.mode, p.journey or "-")
    console.print(table)


def _title(info: SetInfo) -> str:
    note = f": {info.note}" if info.note else ""
    return f"set version {info.version}, by {info.author} at {_when(info.published)}{note}"


@playbooks.command("history")
def playbooks_history(limit: int = typer.Option(20, min=1, help="How many, newest first.")) -> None:
    """Published sets, newest first (the current one marked with *)."""
    from rich.table import Table

    sets = _sets()
    current = sets.current_version()
    table = Table(title="published playbook sets")
    for column in ("version", "published", "author", "playbooks", "digest", "note"):
        table.add_column(column, no_wrap=column in ("published", "digest"))
    for info in sets.history(limit):
        mark = "*" if info.version == current else ""
        table.add_row(
            f"{info.version}{mark}",
            _when(info.published),
            info.author,
            str(len(info.playbooks)),
            info.digest,
            info.note,
        )
    console.print(table)


@playbooks.command("rollback")
def playbooks_rollback(
    version: int = typer.Argument(..., min=1, help="The stored version to run again."),
    author: str | None = typer.Option(None, help="Recorded as the author (default: $USER)."),
) -> None:
    """Publish a stored version's files again, as a new version (history stays append-only)."""
    from engine.redis.playbook_sets import SetError

    sets = _sets()
    try:
        info = sets.rollback(version, author=_who(author))
    except SetError as error:
        raise _fail(f"{error}; running set: {_running(sets)}", error.problems) from None
    console.print(f"published version {info.version}: the files of version {version} again")
