"""Authoring commands: validate playbooks, replay a timeline, run the demo."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from engine.cli import app, console

if TYPE_CHECKING:
    from engine.core.effects import ActionEffect
    from engine.core.playbook_set import PlaybookSet


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
    playbooks: Path = typer.Option(  # noqa: B008
        Path("playbooks"),
        envvar="HOURGLASS_PLAYBOOKS",
        help="Playbook directory (the repository's examples when run from its root).",
    ),
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
    if not playbooks.is_dir():
        typer.echo(
            f"no playbook directory at {playbooks.resolve()}: run the demo from the repository's "
            "root (its examples are in playbooks/), or pass --playbooks DIR",
            err=True,
        )
        raise typer.Exit(1)
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
