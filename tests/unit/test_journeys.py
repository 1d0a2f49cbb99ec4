"""The journey model: stage references checked at load, entry stages, and which moves a
track allows; plus both shipped presets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from corekit import SHIPPED, T0, Driver, shipped, track
from pydantic import ValidationError

from engine.core.journeys import Journey, Track
from engine.core.loader import load_playbook_set

JOURNEY = {
    "kind": "journey",
    "id": "j",
    "name": "J",
    "tracks": {"lifecycle": {"stages": [{"id": "a"}]}},
}


def make_track(**kw: Any) -> Track:
    stages = kw.pop(
        "stages",
        [
            {"id": "lead", "phase": "pre"},
            {"id": "trial", "phase": "pre", "back_to": ["lead"]},
            {"id": "live"},
            {"id": "grown", "back_to": ["live"]},
            {"id": "churned", "phase": "outcome"},
        ],
    )
    return Track.model_validate({"stages": stages, **kw})


def error_of(**kw: Any) -> str:
    with pytest.raises(ValidationError) as info:
        make_track(**kw)
    return str(info.value)


# -- validation ----------------------------------------------------------------------------


def test_back_to_must_name_an_earlier_known_stage() -> None:
    later = [{"id": "a"}, {"id": "b"}, {"id": "c"}]
    later[0] = {"id": "a", "back_to": ["c"]}
    assert "stage a back_to: 'c' is not an earlier stage" in error_of(stages=later)
    unknown = [{"id": "a"}, {"id": "b", "back_to": ["zz"]}]
    assert "stage b back_to: unknown stage 'zz' (stages: a, b)" in error_of(stages=unknown)


def test_stage_references_are_checked() -> None:
    assert "duplicate stage ids: a" in error_of(stages=[{"id": "a"}, {"id": "a"}])
    bad = error_of(transitions=[{"event": "e", "to": "nowhere", "from": ["nope"]}], entry=["x"])
    assert "transitions[0].to: unknown stage 'nowhere'" in bad
    assert "transitions[0].from: unknown stage 'nope'" in bad
    assert "entry: unknown stage 'x'" in bad
    assert "initial" in error_of(initial="y")  # not a field: the engine has no initial stage
    assert "invalid duration '3 weekz'" in error_of(
        stages=[{"id": "a", "stalled_after": "3 weekz"}]
    )


def test_typos_and_bad_ids_are_errors() -> None:
    assert "backto" in error_of(stages=[{"id": "a", "backto": []}])
    assert "string_pattern_mismatch" in error_of(stages=[{"id": "Not Valid"}])
    with pytest.raises(ValidationError, match="primary: unknown track 'main'"):
        Journey.model_validate({**JOURNEY, "primary": "main"})
    with pytest.raises(ValidationError, match="must be lower_snake_case"):
        Journey.model_validate({**JOURNEY, "tracks": {"Life": {"stages": [{"id": "a"}]}}})


# -- entry ---------------------------------------------------------------------------------


def test_entry_defaults_to_every_pre_purchase_stage() -> None:
    assert make_track().entry_stages() == ("lead", "trial")
    assert make_track(entry=["live"]).entry_stages() == ("live",)
    post_only = make_track(stages=[{"id": "a"}, {"id": "b"}, {"id": "x", "phase": "outcome"}])
    assert post_only.entry_stages() == ("a", "b")


# -- allows --------------------------------------------------------------------------------


def test_a_new_account_enters_only_at_an_entry_stage() -> None:
    t = make_track()
    assert t.allows(None, "trial", late=False) is None
    assert t.allows(None, "live", late=False) == "'live' is not an entry stage of this track"


def test_forward_moves_and_skips_are_allowed() -> None:
    t = make_track()
    assert t.allows("lead", "trial", late=False) is None
    assert t.allows("lead", "grown", late=False) is None
    assert t.allows("trial", "churned", late=False) is None
    assert t.allows("live", "live", late=False) == "already in this stage"


def test_back_moves_only_where_back_to_allows() -> None:
    t = make_track()
    assert t.allows("grown", "live", late=False) is None
    assert t.allows("trial", "lead", late=False) is None
    assert (
        t.allows("grown", "lead", late=False) == "moving back from 'grown' to 'lead' is not allowed"
    )
    assert t.allows("live", "trial", late=False) is not None


def test_late_events_never_move_backwards_but_may_move_forwards() -> None:
    t = make_track()
    assert t.allows("grown", "live", late=True) == "a late event does not move an account backwards"
    assert t.allows("live", "grown", late=True) is None


def test_leaving_an_outcome_is_left_to_the_transition_naming_it() -> None:
    # the core only asks when a transition names the outcome in ``from``
    t = make_track()
    assert t.allows("churned", "trial", late=False) is None
    assert t.allows("churned", "trial", late=True) is not None


# -- the shipped presets -------------------------------------------------------------------


def test_both_presets_load_with_their_stages() -> None:
    result = load_playbook_set([SHIPPED / "journeys"])
    assert result.pset is not None, result.problems
    journeys = result.pset.journeys
    flywheel = [s for s in journeys["flywheel"].tracks["lifecycle"].stages if s.phase != "outcome"]
    hourglass = [
        s for s in journeys["hourglass"].tracks["lifecycle"].stages if s.phase != "outcome"
    ]
    assert len(flywheel) == 8
    assert len(hourglass) == 10
    assert sum(s.phase == "pre" for s in hourglass) == 6
    assert set(journeys["flywheel"].tracks) == {"lifecycle", "renewal"}


def test_flywheel_lost_account_can_come_back_by_subscribing(tmp_path: Path) -> None:
    d = Driver(shipped(tmp_path, "journeys/flywheel.yaml"))
    d.send(track("demo_requested", T0), track("opportunity_lost", T0 + 1))
    assert d.stage("flywheel.lifecycle") == "lost"
    d.apply(track("pricing_viewed", T0 + 2))  # not named in any transition from lost
    assert d.stage("flywheel.lifecycle") == "lost"
    d.apply(track("subscription_started", T0 + 3))  # {to: conversion, from: [lost]}
    assert d.stage("flywheel.lifecycle") == "conversion"


def test_flywheel_churned_is_terminal(tmp_path: Path) -> None:
    d = Driver(shipped(tmp_path, "journeys/flywheel.yaml"))
    d.send(track("subscription_started", T0), track("subscription_cancelled", T0 + 1))
    assert d.stage("flywheel.lifecycle") == "churned"
    assert d.stage("flywheel.renewal") == "churned"
    for name in ("subscription_started", "kickoff_completed", "renewal_signed"):
        d.apply(track(name, d.now + 1))
    assert d.stage("flywheel.lifecycle") == "churned"
