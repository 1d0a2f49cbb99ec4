"""The ``hourglass`` command line."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(
    help="Hourglass: customer-success playbooks on an event-driven engine.",
    no_args_is_help=True,
    add_completion=False,
)
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


def main() -> None:
    app()
