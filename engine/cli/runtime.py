"""Runtime commands for a deployment on Redis: ingest, worker, beat, dead letters."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from engine.cli import app, console

if TYPE_CHECKING:
    import redis

    from engine.settings import Settings


def _redis() -> tuple[Settings, redis.Redis]:
    """The settings and a client of the state Redis, or exit 1 saying what is missing."""
    import redis as redis_lib

    from engine.settings import settings

    config = settings()
    if config.redis_url is None:
        typer.echo("REDIS_URL is not set: this command needs a running deployment", err=True)
        raise typer.Exit(1)
    return config, redis_lib.Redis.from_url(config.redis_url)


@app.command()
def ingest(
    file: Path = typer.Argument(..., help="A timeline of Segment events, one per line."),  # noqa: B008
    rate: float | None = typer.Option(None, min=1, help="At most this many events per second."),
    batch: int = typer.Option(500, min=1, max=10_000, help="Events per ingest call."),
) -> None:
    """Push a timeline into a running deployment (REDIS_URL), with a progress bar."""
    from rich.progress import Progress

    from engine.redis.ingest import Ingestor, IngestUnavailable
    from engine.runtime.push import push_file
    from workers.tasks import kick

    config, client = _redis()
    ingestor = Ingestor(
        client, shards=config.shards, dedupe_window_s=config.dedupe_window_s, kick=kick
    )
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"Ingesting {file.name}", total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        try:
            report = push_file(file, ingestor.ingest, batch_size=batch, rate=rate, progress=update)
        except IngestUnavailable as error:
            typer.echo(f"ingest failed, Redis unavailable: {error}", err=True)
            raise typer.Exit(1) from None
    for bad in report.bad_lines:
        typer.echo(f"{bad} (skipped)", err=True)
    console.print(
        f"{report.accepted} accepted, {report.duplicates} duplicates, {report.parked} parked "
        f"(waiting for a group call), {len(report.bad_lines)} bad lines, "
        f"in {report.elapsed_s:.1f}s"
    )


@app.command()
def worker(
    concurrency: int = typer.Option(0, min=0, help="Worker processes (0: one per CPU)."),
    queues: str = typer.Option("hourglass.shards,hourglass.dispatch,hourglass.slow"),
    loglevel: str = typer.Option("info"),
) -> None:
    """Start a Celery worker on Hourglass's queues (Celery's own options apply to it)."""
    import os

    from engine.runtime.partitions import cpu_count

    _redis()
    command = [
        "celery", "-A", "workers.app", "worker", "-Q", queues,
        "-c", str(concurrency or cpu_count()), "-l", loglevel, "-E",
    ]  # fmt: skip
    os.execvp(command[0], command)


@app.command()
def beat(loglevel: str = typer.Option("info")) -> None:
    """Start Celery beat: the periodic sweeps the runtime needs (run exactly one)."""
    import os

    _redis()
    command = ["celery", "-A", "workers.app", "beat", "-l", loglevel]
    os.execvp(command[0], command)


dlq = typer.Typer(help="Dead letters: events that failed to apply, kept with their error.")
app.add_typer(dlq, name="dlq")


@dlq.command("list")
def dlq_list(limit: int = typer.Option(100, min=1)) -> None:
    """Dead letters of every shard: id, account, error."""
    from rich.table import Table

    from engine.redis.store import RedisStore

    config, client = _redis()
    store = RedisStore(client, shards=config.shards)
    letters = store.dead_letters(limit=limit)
    table = Table(title=f"{len(letters)} dead letter(s)")
    for column in ("id", "account", "error"):
        table.add_column(column)
    for letter in letters:
        ident = f"{letter['shard']}:{letter['id']}"
        table.add_row(ident, str(letter["account"] or "-"), str(letter["error"]))
    console.print(table)


def _dead_letter(identifier: str) -> tuple[int, str]:
    shard, _, entry = identifier.partition(":")
    if not shard.isdigit() or not entry:
        typer.echo(f"expected an id as 'dlq list' prints it (SHARD:ENTRY), found '{identifier}'")
        raise typer.Exit(1)
    return int(shard), entry


@dlq.command("replay")
def dlq_replay(identifier: str = typer.Argument(..., metavar="ID")) -> None:
    """Append a dead letter's event to its shard again (after fixing what made it fail)."""
    from engine.redis.store import RedisStore
    from workers.tasks import kick

    config, client = _redis()
    shard, entry = _dead_letter(identifier)
    if not RedisStore(client, shards=config.shards).replay_dead_letter(shard, entry):
        typer.echo(f"no dead letter {identifier}", err=True)
        raise typer.Exit(1)
    kick(shard)
    console.print(f"replayed {identifier}")


@dlq.command("discard")
def dlq_discard(identifier: str = typer.Argument(..., metavar="ID")) -> None:
    """Drop a dead letter for good."""
    from engine.redis.store import RedisStore

    config, client = _redis()
    shard, entry = _dead_letter(identifier)
    if not RedisStore(client, shards=config.shards).discard_dead_letter(shard, entry):
        typer.echo(f"no dead letter {identifier}", err=True)
        raise typer.Exit(1)
    console.print(f"discarded {identifier}")
