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
    from engine.core.playbook_set import PlaybookSet

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
) -> None:
    """Replay a timeline on a virtual clock: timers fire at their virtual times."""
    import orjson

    from engine.core.clock import to_epoch
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
        )
    finally:
        if sink is not None:
            sink.close()
    if state_out is not None:
        states = state_export(result.runner, end or result.ended)
        state_out.write_bytes(orjson.dumps(states, option=orjson.OPT_INDENT_2))
    print_summary(console, result)


def main() -> None:
    app()
