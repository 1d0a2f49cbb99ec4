"""The ``hourglass`` command line."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

app = typer.Typer(
    help="Hourglass: customer-success playbooks on an event-driven engine.",
    no_args_is_help=True,
    add_completion=False,
)
if TYPE_CHECKING:
    import redis

    from engine.core.effects import ActionEffect
    from engine.core.playbook_set import PlaybookSet
    from engine.settings import Settings

console = Console()


@app.callback()
def hourglass() -> None:
    """Hourglass: customer-success playbooks on an event-driven engine."""


@app.command()
def validate(
    paths: list[Path] = typer.Argument(..., help="Playbook files or directories."),  # noqa: B008
) -> None:
    """Check journeys, the account schema, destinations, playbooks and templates."""
    from engine.core.loader import load_playbook_set

    result = load_playbook_set(paths)
    for problem in result.problems:
        typer.echo(str(problem), err=True)
    if result.pset is None:
        typer.echo(f"{len(result.problems)} problem(s) in {len(result.files)} file(s)", err=True)
        raise typer.Exit(1)
    pset = result.pset
    console.print(
        f"ok: {len(pset.journeys)} journey(s), {len(pset.playbooks)} playbook(s) "
        f"in {len(result.files)} file(s); set {pset.digest}"
    )


def _load(paths: list[Path]) -> PlaybookSet:
    """Load a playbook set or exit 1 with every problem as ``file:line: message``."""
    from engine.core.loader import load_playbook_set

    result = load_playbook_set(paths)
    if result.pset is None:
        for problem in result.problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(1)
    return result.pset


@app.command()
def simulate(
    playbooks: Path = typer.Option(..., "--playbooks", help="Playbook directory."),  # noqa: B008
    events: Path = typer.Option(..., "--events", help="Timeline as JSON Lines."),  # noqa: B008
    until: str | None = typer.Option(None, help="ISO time to run to (default: last event + 90d)."),
    out: Path | None = typer.Option(None, help="Write one JSON object per action here."),  # noqa: B008
    state_out: Path | None = typer.Option(None, help="Write final account states here."),  # noqa: B008
    workers: int = typer.Option(
        0, min=0, help="Processes to split accounts over (0: one per CPU)."
    ),
) -> None:
    """Replay a timeline on a virtual clock: timers fire at their virtual times."""
    import orjson

    from engine.core.clock import to_epoch
    from engine.runtime.partitions import cpu_count
    from engine.runtime.report import print_summary, state_export
    from engine.runtime.simulate import simulate as run_simulation

    pset = _load([playbooks])
    if not events.is_file():
        typer.echo(f"{events}: no such file", err=True)
        raise typer.Exit(1)
    end = None
    if until is not None:
        try:
            end = to_epoch(datetime.fromisoformat(until.replace("Z", "+00:00")))
        except ValueError:
            typer.echo(f"--until: expected an ISO-8601 time, found '{until}'", err=True)
            raise typer.Exit(1) from None
    sink = out.open("wb") if out is not None else None
    try:
        result = run_simulation(
            pset,
            events,
            until=end,
            out=sink,
            on_bad_line=lambda bad: typer.echo(f"{bad} (skipped)", err=True),
            workers=workers or cpu_count(),
        )
    finally:
        if sink is not None:
            sink.close()
    if state_out is not None:
        states = state_export(result.runner, end or result.ended)
        state_out.write_bytes(orjson.dumps(states, option=orjson.OPT_INDENT_2))
    print_summary(console, result)


@app.command()
def demo(
    playbooks: Path = typer.Option(Path("playbooks"), help="Playbook directory."),  # noqa: B008
    accounts: int = typer.Option(300, min=1, help="How many synthetic accounts."),
    days: int = typer.Option(120, min=7, help="How many days of history."),
    seed: int = typer.Option(7, help="Random seed: the same seed gives the same history."),
    outbox: Path = typer.Option(Path("outbox"), help="Where emails and webhooks land."),  # noqa: B008
) -> None:
    """Generate a realistic customer base, run it through the playbooks, show the journey."""
    import time

    from rich.progress import Progress

    from engine.core.events import parse_event, to_core
    from engine.demo.history import generate
    from engine.demo.report import render
    from engine.runtime.embedded import clear_outbox, embedded_runner

    started = time.perf_counter()
    pset = _load([playbooks])
    console.print(f"Generating {days} days of history for {accounts} accounts (seed {seed})…")
    history = generate(seed=seed, accounts=accounts, days=days)
    clear_outbox(outbox)
    runner = embedded_runner(pset, outbox=outbox)
    actions: list[ActionEffect] = []
    runner.on_action = actions.append
    last = 0.0
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("Applying events", total=len(history))
        for i, raw in enumerate(history, start=1):
            event = to_core(parse_event(raw), now=last)
            last = max(last, event.ts)
            runner.submit(event)
            if i % 500 == 0:
                progress.update(task, completed=i)
    runner.advance_to(last)
    store = runner.store
    states = list(store.load(store.account_ids()).values())
    render(console, pset, states, actions, now=last, elapsed_s=time.perf_counter() - started)
    written = sum(
        1 for a in actions if a.mode == "live" and a.type in ("email", "webhook", "slack")
    )
    console.print(
        f"{len(history)} events, {runner.stats.timers_fired} timers fired, "
        f"{len(actions)} actions; {written} emails/webhooks/Slack messages written to {outbox}/"
    )


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


def main() -> None:
    app()
