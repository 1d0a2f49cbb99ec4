"""The ``hourglass demo`` terminal report: both journeys drawn, KPI tables, what playbooks did."""

from __future__ import annotations

from collections.abc import Iterable

from rich import box
from rich.console import Console, Group, RenderableType
from rich.padding import Padding
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from engine.core.clock import to_datetime
from engine.core.effects import ActionEffect
from engine.core.playbook_set import PlaybookSet
from engine.core.state import AccountState
from engine.demo.drawing import Glyphs, hourglass, outcomes_line, style_of, wheel
from engine.kpis import JourneyKpis, PlaybookKpis, StageKpis, journey_kpis, playbook_kpis

#: The widest the drawings get, even on a wide terminal.
MAX_WIDTH = 100
#: Short marks for playbooks that do not act live.
_MODES = {"dry_run": "dry", "disabled": "off"}
#: The flywheel's ring, in columns; the other tracks go beside it when there is room.
WHEEL_WIDTH = 54


def render(
    console: Console,
    pset: PlaybookSet,
    states: Iterable[AccountState],
    actions: Iterable[ActionEffect],
    *,
    now: float,
    elapsed_s: float | None = None,
) -> None:
    """Print the demo report: journeys drawn, a KPI table per journey, a playbook table."""
    accounts = list(states)
    decided = list(actions)
    journeys = journey_kpis(pset, accounts, now)
    books = playbook_kpis(pset, accounts, decided)
    glyphs = Glyphs.pick(console.encoding)
    width = min(console.width, MAX_WIDTH)
    console.print(_headline(len(accounts), decided, now, elapsed_s, glyphs.dot))
    for kpis in journeys.values():
        console.print()
        console.print(Rule(f"{kpis.name} ({kpis.journey}.{kpis.primary})", style="cyan"))
        console.print(_drawing(kpis, width, glyphs))
        console.print(_stage_table(kpis))
    console.print()
    console.print(Rule("What the playbooks did", style="cyan"))
    console.print(_playbook_table(books))


def _headline(
    accounts: int, actions: list[ActionEffect], now: float, elapsed: float | None, dot: str
) -> Text:
    """Accounts, actions (live and dry run), the clock, how long it took."""
    dry = sum(1 for a in actions if a.mode == "dry_run")
    line = Text(f"Hourglass demo {dot} as of {to_datetime(now):%Y-%m-%d %H:%M} UTC", style="bold")
    line.append(f"\n{accounts} accounts {dot} {len(actions)} actions ")
    line.append(f"({len(actions) - dry} live, {dry} dry run)")
    if elapsed is not None:
        line.append(f" {dot} ran in {elapsed:.1f} s")
    return line


def _drawing(kpis: JourneyKpis, width: int, glyphs: Glyphs) -> RenderableType:
    """The flywheel as a ring with its other tracks beside it; anything else as an hourglass."""
    if "flywheel" in kpis.journey:
        ring = Group(*wheel(kpis, glyphs, min(WHEEL_WIDTH, width)), outcomes_line(kpis, glyphs))
        if width < WHEEL_WIDTH + 24:
            return Group(ring, *_track_tables(kpis))
        beside = Table.grid(padding=(0, 2))
        beside.add_row(ring, Group(*_track_tables(kpis)))
        return beside
    rows: list[RenderableType] = [*hourglass(kpis, min(width, 72), glyphs)]
    rows.append(Padding(outcomes_line(kpis, glyphs), (0, 0, 0, 2)))
    return Group(*rows, *_track_tables(kpis))


def _track_tables(kpis: JourneyKpis) -> list[RenderableType]:
    """Accounts per stage of each of the journey's other tracks."""
    tables: list[RenderableType] = []
    for name, counts in kpis.tracks.items():
        table = Table(title=f"{name} track", box=box.SIMPLE, padding=(0, 1), title_style="bold")
        table.add_column("stage")
        table.add_column("accts", justify="right")
        for stage, count in counts.items():
            table.add_row(stage, str(count))
        tables.append(table)
    return tables


def _stage_table(kpis: JourneyKpis) -> Table:
    """Per stage: accounts now, median days in the stage, conversion onward, stalled."""
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), caption_justify="left")
    table.caption = _caption(kpis)
    table.add_column("stage", no_wrap=True, min_width=max(len(s.stage) for s in kpis.stages))
    table.add_column("now", justify="right")
    table.add_column("days in", justify="right")
    table.add_column("done", justify="right")
    table.add_column("ever", justify="right")
    table.add_column("onward", justify="right")
    table.add_column("to next", justify="right")
    table.add_column("stalled", justify="right")
    for stage in kpis.stages:
        table.add_row(
            Text(stage.stage, style=style_of(stage)),
            str(stage.accounts),
            _days(stage.median_days_current),
            _days(stage.median_days_completed),
            str(stage.entered),
            _share(stage.conversion),
            _next(stage),
            _stalled(stage),
        )
    return table


def _caption(kpis: JourneyKpis) -> Text:
    """What the columns mean, and when each stage counts as stalled."""
    limits = ", ".join(f"{s.stage} {s.stalled_after}" for s in kpis.stages if s.stalled_after)
    return Text(
        "days in: median days of the accounts there now; done: of finished visits; "
        "ever: accounts ever in the stage; onward: share of those later in a later stage; "
        f"to next: in the next stage; stalled: there longer than {limits or 'no limit set'}",
        style="dim",
    )


def _days(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _next(stage: StageKpis) -> str:
    """Share of the stage's accounts that later reached the next stage in order."""
    if not stage.to_stage or not stage.entered:
        return "-"
    return _share(next(iter(stage.to_stage.values())))


def _stalled(stage: StageKpis) -> str:
    return "-" if stage.stalled_after is None else str(stage.stalled)


def _playbook_table(books: list[PlaybookKpis]) -> Table:
    """Per playbook: fired, actions by type, live and dry-run actions, goals, running now."""
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, caption_justify="left")
    table.caption = Text(
        "live/dry: actions sent / recorded by dry-run playbooks; goals: goal reached in time; "
        "seq: accounts in the playbook's sequence (or waiting for its goal) now",
        style="dim",
    )
    table.add_column("playbook", no_wrap=True)
    table.add_column("fired", justify="right")
    table.add_column("live/dry", justify="right", no_wrap=True)
    table.add_column("goals", justify="right")
    table.add_column("seq", justify="right")
    table.add_column("actions by type", ratio=1, min_width=16)
    for book in books:
        name = Text(book.playbook)
        if book.mode != "live":
            name.append(f" ({_MODES.get(book.mode, book.mode)})", style="yellow")
        table.add_row(
            name,
            str(book.fired),
            f"{book.by_mode.get('live', 0)}/{book.by_mode.get('dry_run', 0)}",
            str(book.goals) if book.has_goal else "-",
            str(book.in_sequence),
            ", ".join(f"{kind}:{n}" for kind, n in book.by_type.items()) or "-",
        )
    return table
