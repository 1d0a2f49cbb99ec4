"""What a run leaves behind for people: a summary table and an export of account states."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.console import Console
from rich.table import Table

from engine.core.context import account_view, contacts_view
from engine.runtime.runner import Runner
from engine.runtime.simulate import SimulationResult


def state_export(runner: Runner, now: float) -> dict[str, Any]:
    """Every account as its page would show it: stages, traits, flags, metrics, health."""
    store, schema = runner.store, runner.pset.schema
    states = store.load(sorted(store.account_ids()))
    out: dict[str, Any] = {}
    for account_id, state in states.items():
        view = account_view(state, schema, now).materialize()
        view["contacts"] = contacts_view(state)
        view["timers"] = {
            k: {"generation": t.generation, "due": t.due} for k, t in state.timers.items()
        }
        out[account_id] = view
    return out


def stage_counts(runner: Runner) -> Counter[tuple[str, str]]:
    """(track, stage) -> number of accounts."""
    counts: Counter[tuple[str, str]] = Counter()
    store = runner.store
    for state in store.load(store.account_ids()).values():
        for key, track in state.tracks.items():
            counts[(key, track.stage)] += 1
    return counts


def print_summary(console: Console, result: SimulationResult) -> None:
    """Accounts per stage per track, actions per playbook, and what was skipped."""
    stats = result.stats
    console.print(
        f"{stats.events} events applied, {stats.timers_fired} timers fired "
        f"({stats.stale_timers} stale, dropped), {stats.duplicates} duplicates ignored, "
        f"{len(result.bad_lines)} bad lines skipped, {stats.actions} actions"
    )
    stages = Table(title="Accounts per stage")
    for column in ("track", "stage", "accounts"):
        stages.add_column(column)
    pset = result.runner.pset
    counts = stage_counts(result.runner)
    for key in pset.track_keys():
        for stage in pset.track(key).stages:
            if counts[(key, stage.id)]:
                stages.add_row(key, stage.id, str(counts[(key, stage.id)]))
    console.print(stages)
    actions = Table(title="Actions per playbook")
    actions.add_column("playbook")
    actions.add_column("mode")
    actions.add_column("actions", justify="right")
    for playbook in pset.playbooks:
        actions.add_row(playbook.id, playbook.mode, str(result.actions_by_playbook[playbook.id]))
    console.print(actions)
