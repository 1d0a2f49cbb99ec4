"""The ``hourglass`` command line: one Typer app, its commands in one module per area."""

from __future__ import annotations

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


def main() -> None:
    """The console script."""
    app()


# Each command module registers its commands on ``app`` when imported (after ``app`` exists).
from engine.cli import api, authoring, ops, playbooks, runtime  # noqa: E402, F401
