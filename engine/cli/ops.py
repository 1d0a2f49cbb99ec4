"""Operations commands: ``hourglass status`` and the outbox's dead letters."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import typer

from engine.cli import app, console
from engine.cli.runtime import _redis

if TYPE_CHECKING:
    import redis

    from engine.redis.status import DeploymentStatus


def celery_ping(timeout: float) -> list[str]:
    """Names of the Celery workers that answer ``control.ping`` within ``timeout`` seconds."""
    from workers.app import app as celery

    replies = celery.control.ping(timeout=timeout) or []
    return [name for reply in replies for name in reply]


def broker_client(url: str) -> redis.Redis | None:
    """A client of the broker when it is a Redis (queue depths are read there), else None."""
    import redis as redis_lib

    if not url.startswith(("redis://", "rediss://", "unix://")):
        return None
    return redis_lib.Redis.from_url(url, socket_timeout=5)


@app.command()
def status(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
    ping_timeout: float = typer.Option(
        1.0, min=0.0, help="Seconds to wait for workers to answer a ping (0: do not ping)."
    ),
) -> None:
    """Backlog, lag and lease per shard, dead letters, timers, outbox, queues, live workers."""
    import redis as redis_lib

    from engine.redis.status import StatusReader

    config, client = _redis()  # first: workers.app needs REDIS_URL to import
    from workers.app import QUEUES

    reader = StatusReader(client, config.shards, config.clock)
    try:
        report = reader.read(
            broker=broker_client(config.broker),
            queues=QUEUES,
            ping=celery_ping if ping_timeout > 0 else None,
            ping_timeout=ping_timeout,
        )
    except redis_lib.RedisError as error:
        typer.echo(f"Redis unavailable: {error}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
    else:
        _print(report)


def _print(report: DeploymentStatus) -> None:
    """The status as tables: totals, busy shards, queues and workers."""
    from rich.table import Table

    totals = report.totals()
    lag = "-" if totals["lag_ms"] is None else f"{totals['lag_ms'] / 1000:.1f}s"
    console.print(
        f"[bold]{len(report.shards)} shards[/]  backlog {totals['backlog']} "
        f"(unread {totals['unread']}, pending {totals['pending']}), oldest {lag}, "
        f"leased {totals['leased']}, applied {totals['applied']}"
    )
    console.print(
        f"dead letters: events {totals['dead_letters']}, outbox {totals['outbox_dead']}   "
        f"accounts waiting on timers: {totals['timers']}, {totals['timers_due']} due, "
        f"{totals['timers_overdue']} overdue   outbox: {totals['outbox_pending']} pending, "
        f"{totals['outbox_due']} due, {totals['outbox_retrying']} retrying"
    )
    table = Table(title="Shards with work")
    columns = ["shard", "stream", "unread", "pending", "lag", "lease", "dlq", "accounts due"]
    for column in [*columns, "outbox"]:
        table.add_column(column, overflow="fold")
    for s in report.shards:
        if not (s.backlog or s.lease_holder or s.dead_letters or s.timers_due or s.outbox_due):
            continue
        table.add_row(
            str(s.shard), str(s.stream), str(s.unread), str(s.pending),
            "-" if s.lag_ms is None else f"{s.lag_ms / 1000:.1f}s",
            s.lease_holder or "-", str(s.dead_letters), str(s.timers_due),
            f"{s.outbox_pending} ({s.outbox_retrying} retrying, {s.outbox_dead} dead)",
        )  # fmt: skip
    console.print(table if table.row_count else "every shard is idle")
    if report.queues is not None:
        queues = ", ".join(f"{name} {depth}" for name, depth in report.queues.items())
        console.print(f"queues: {queues}; unacknowledged {report.unacked}")
    if report.workers is not None:
        names = ", ".join(report.workers) or "none answered"
        console.print(f"workers alive: {len(report.workers)} ({names}; {report.probe})")
    for note in report.notes:
        console.print(f"note: {note}")


outbox = typer.Typer(help="Outbox dead letters: actions whose delivery was given up.")
app.add_typer(outbox, name="outbox")


@outbox.command("list")
def outbox_list(limit: int = typer.Option(100, min=1)) -> None:
    """Outbox dead letters of every shard, oldest first: id, action, attempts, last error."""
    from rich.table import Table

    from engine.redis.outbox import Outbox

    config, client = _redis()
    letters = Outbox(client, config.shards).dead_letters(limit=limit)
    table = Table(title=f"{len(letters)} outbox dead letter(s)")
    for column in ("id", "action", "attempts", "error", "at"):
        table.add_column(column)
    for letter in letters:
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(letter.at))
        kind = str(letter.action.get("type", "?"))
        row = (f"{letter.shard}:{letter.key}", kind, str(letter.attempts), letter.error, at)
        table.add_row(*row)
    console.print(table)


def _outbox_id(identifier: str) -> tuple[int, str]:
    shard, _, key = identifier.partition(":")
    if not shard.isdigit() or not key:
        typer.echo(f"expected an id as 'outbox list' prints it (SHARD:KEY), found '{identifier}'")
        raise typer.Exit(1)
    return int(shard), key


@outbox.command("replay")
def outbox_replay(identifier: str = typer.Argument(..., metavar="ID")) -> None:
    """Put a dead letter back in the outbox, due now, its attempts reset (after fixing the
    destination); the next dispatch sweep (every 2 s) delivers it."""
    from engine.redis.outbox import Outbox

    config, client = _redis()
    shard, key = _outbox_id(identifier)
    if shard >= config.shards or not Outbox(client, config.shards).replay(shard, key, time.time()):
        typer.echo(f"no outbox dead letter {identifier}", err=True)
        raise typer.Exit(1)
    console.print(f"replayed {identifier}")


@outbox.command("discard")
def outbox_discard(identifier: str = typer.Argument(..., metavar="ID")) -> None:
    """Drop an outbox dead letter for good."""
    from engine.redis.outbox import Outbox

    config, client = _redis()
    shard, key = _outbox_id(identifier)
    if shard >= config.shards or not Outbox(client, config.shards).discard(shard, key):
        typer.echo(f"no outbox dead letter {identifier}", err=True)
        raise typer.Exit(1)
    console.print(f"discarded {identifier}")
