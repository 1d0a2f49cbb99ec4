"""CEL conditions: load-time path checks against the schema, and evaluation that never raises."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import cel
import pytest

from engine.core.cel_paths import tokenize
from engine.core.conditions import (
    ConditionError,
    Field,
    Scope,
    Verdict,
    check_paths,
    compile_condition,
    make_context,
)

CONTACT = Field.map_(
    email=Field.string(),
    role=Field.string(),
    active=Field.bool_(),
    tags=Field.list_(Field.string()),
)
SCOPE: Scope = {
    "account": Field.map_(
        id=Field.string(),
        traits=Field.map_(
            plan=Field.string(),
            mrr=Field.double(),
            segment=Field.string(),
            renewal_date=Field.timestamp(),
        ),
        metrics=Field.map_(logins_7d=Field.int_(), seats=Field.int_()),
        health=Field.map_(score=Field.double()),
        flags=Field.free(Field.bool_()),
        custom=Field.any_(),
    ),
    "contacts": Field.list_(CONTACT),
    "event": Field.map_(name=Field.string(), properties=Field.free()),
    "now": Field.timestamp(),
}
NOW = datetime(2027, 3, 1, tzinfo=UTC)


def context(**overrides: Any) -> dict[str, Any]:
    """A realistic account snapshot; keyword arguments replace whole root variables."""
    ctx: dict[str, Any] = {
        "account": {
            "id": "acct_1",
            "traits": {
                "plan": "enterprise",
                "mrr": 1200.0,
                "segment": "mid",
                "renewal_date": NOW + timedelta(days=20),
            },
            "metrics": {"logins_7d": 3, "seats": 12},
            "health": {"score": 71.5},
            "flags": {"renewal_risk": True},
            "custom": {"tier": {"name": "gold"}},
        },
        "contacts": [
            {"email": "a@x.com", "role": "champion", "active": True, "tags": ["vip"]},
            {"email": "b@x.com", "role": "user", "active": False, "tags": []},
        ],
        "event": {"name": "login", "properties": {"plan-name": "pro"}},
        "now": NOW,
    }
    ctx.update(overrides)
    return ctx


def reason_of(source: str) -> str:
    """The ConditionError reason compiling ``source`` raises."""
    with pytest.raises(ConditionError) as info:
        compile_condition(source, SCOPE)
    assert info.value.expression == source
    return info.value.reason


# -- load-time path checks ---------------------------------------------------------------------


def test_valid_paths_compile_and_are_listed() -> None:
    cond = compile_condition(
        'account.traits.plan == "enterprise" && account.metrics.logins_7d > 2'
        " && account.traits.renewal_date - now < duration('720h')",
        SCOPE,
    )
    assert cond.paths == (
        "account.traits.plan",
        "account.metrics.logins_7d",
        "account.traits.renewal_date",
        "now",
    )
    assert cond.evaluate(context()) == Verdict(True, None)


def test_trait_typo_names_the_path_and_the_declared_traits() -> None:
    assert reason_of('account.traits.plna == "enterprise"') == (
        "unknown field 'account.traits.plna' (declared traits: mrr, plan, renewal_date, segment)"
    )


def test_metric_typo_names_the_declared_metrics() -> None:
    assert reason_of("account.metrics.login_7d > 2") == (
        "unknown field 'account.metrics.login_7d' (declared metrics: logins_7d, seats)"
    )


def test_root_typo_lists_the_variables() -> None:
    assert reason_of('acount.traits.plan == "x"') == (
        "unknown variable 'acount' (expected one of: account, contacts, event, now)"
    )


def test_all_problems_are_reported_together() -> None:
    source = "account.traits.plna == 'x' || acount.id == 'y' || account.helth.score > 1.0"
    problems = check_paths(source, SCOPE)
    assert len(problems) == 3
    assert reason_of(source) == "; ".join(problems)


def test_macro_variable_is_bound_to_the_list_element() -> None:
    cond = compile_condition('contacts.exists(c, c.role == "champion" && c.active)', SCOPE)
    assert cond.paths == ("contacts", "contacts[].role", "contacts[].active")
    assert cond.evaluate(context()).passed
    assert reason_of('contacts.exists(c, c.rol == "champion")') == (
        "unknown field 'c.rol' (declared contacts[]: active, email, role, tags)"
    )


def test_macro_variable_is_scoped_to_its_parentheses() -> None:
    assert reason_of('contacts.exists(c, c.active) && c.role == "x"') == (
        "unknown variable 'c' (expected one of: account, contacts, event, now)"
    )


def test_nested_macros_bind_each_level() -> None:
    ok = 'contacts.exists(c, c.active && c.tags.exists(t, t == "vip"))'
    assert compile_condition(ok, SCOPE).evaluate(context()).passed
    # The inner variable is a string; the outer one is still a contact inside the inner macro.
    assert reason_of('contacts.all(c, c.tags.all(t, t.size() > 0 && c.emial != ""))') == (
        "unknown field 'c.emial' (declared contacts[]: active, email, role, tags)"
    )
    assert reason_of('contacts.exists(c, c.tags.exists(t, t.name == "vip"))') == (
        "cannot select 'name' from 't' (a string)"
    )


def test_filter_result_keeps_the_element_schema() -> None:
    assert reason_of('contacts.filter(c, c.active).exists(d, d.rol == "x")') == (
        "unknown field 'd.rol' (declared contacts[]: active, email, role, tags)"
    )


def test_macro_over_a_map_binds_its_keys() -> None:
    cond = compile_condition('account.metrics.exists(k, k == "seats")', SCOPE)
    assert cond.evaluate(context()).passed
    assert check_paths("account.metrics.exists(k, k.value > 1)", SCOPE) == [
        "cannot select 'value' from 'k' (a string)"
    ]


def test_words_inside_string_literals_are_not_paths() -> None:
    cond = compile_condition('account.traits.plan == "account.traits.nope"', SCOPE)
    assert cond.paths == ("account.traits.plan",)
    tricky = (
        'account.id != r\'acount.x\\\' && account.id != """a\n"b".nope"""'
        " && account.id != 'it\\'s account.zz' // account.comment.ignored"
    )
    assert check_paths(tricky, SCOPE) == []
    assert compile_condition(tricky, SCOPE).paths == ("account.id",)


def test_has_on_a_free_key_map_passes() -> None:
    cond = compile_condition("has(account.flags.renewal_risk)", SCOPE)
    assert cond.paths == ("account.flags.renewal_risk",)
    assert cond.evaluate(context()).passed
    absent = context()
    absent["account"]["flags"] = {}
    assert cond.evaluate(absent) == Verdict(False, None)


def test_has_still_checks_known_key_maps() -> None:
    assert reason_of("has(account.traits.plna)").startswith("unknown field 'account.traits.plna'")


def test_index_with_a_string_literal_is_a_selection() -> None:
    cond = compile_condition('event.properties["plan-name"] == "pro"', SCOPE)
    assert cond.paths == ('event.properties["plan-name"]',)
    assert cond.evaluate(context()).passed
    assert reason_of('account.traits["plna"] == "x"') == (
        "unknown field 'account.traits[\"plna\"]'"
        " (declared traits: mrr, plan, renewal_date, segment)"
    )


def test_computed_index_into_a_list_resolves_the_element() -> None:
    assert check_paths('contacts[0].role == "champion"', SCOPE) == []
    assert check_paths('contacts[size(contacts) - 1].rol == "x"', SCOPE) == [
        "unknown field 'contacts[...].rol' (declared contacts[]: active, email, role, tags)"
    ]


def test_selecting_into_a_leaf_or_a_list_fails_but_any_is_open() -> None:
    assert reason_of("account.health.score.x > 1.0") == (
        "cannot select 'x' from 'account.health.score' (a double)"
    )
    assert reason_of('contacts.role == "x"').startswith("cannot select 'role' from 'contacts'")
    assert check_paths('account.custom.tier.name == "gold"', SCOPE) == []


def test_functions_methods_and_type_names_are_not_variables() -> None:
    source = (
        'size(contacts) > 0 && account.traits.plan.startsWith("ent")'
        ' && type(account.health.score) == double && int("3") == 3'
        ' && account.traits.plan.matches("^ent") && string(1) == "1"'
    )
    assert check_paths(source, SCOPE) == []
    assert compile_condition(source, SCOPE).evaluate(context()).passed


def test_bad_duration_and_timestamp_literals_fail_at_load() -> None:
    assert reason_of('account.traits.renewal_date - now < duration("14d")') == (
        'invalid duration "14d"'
        ' (CEL durations use h, m, s, ms, us, ns units, e.g. "336h" for 14 days)'
    )
    assert reason_of('now > timestamp("2027-01-01")').startswith('invalid timestamp "2027-01-01"')


def test_syntax_error_keeps_cel_position_and_caret() -> None:
    reason = reason_of("account.traits.plan ==")
    lines = reason.splitlines()
    assert lines[0].startswith("<input>:1:23: Syntax error")
    assert lines[1:] == ["| account.traits.plan ==", "| ......................^"]


def test_syntax_error_on_a_later_line_reports_only_the_first_error() -> None:
    reason = reason_of("account.id == 'x' &&\n  (contacts &&& now")
    assert reason.startswith("<input>:2:")
    assert reason.count("<input>:") == 1
    assert len(reason.splitlines()) == 3


def test_tokenizer_reads_every_literal_form() -> None:
    texts = [t.text for t in tokenize("1u 1.5e3 .5 0x1F r'a\\' b\"x\" '''m\n'''")]
    assert texts == ["1u", "1.5e3", ".5", "0x1F", "r'a\\'", 'b"x"', "'''m\n'''"]


def test_field_rejects_contradictory_shapes() -> None:
    with pytest.raises(ValueError, match="only a list has an element"):
        Field("string", element=Field.string())
    with pytest.raises(ValueError, match="only a map has children"):
        Field("list", any_key=Field.string())


# -- evaluation --------------------------------------------------------------------------------


def test_missing_value_names_the_path() -> None:
    cond = compile_condition('account.traits.plan == "enterprise"', SCOPE)
    snapshot = context()
    del snapshot["account"]["traits"]["plan"]
    assert cond.evaluate(snapshot) == Verdict(False, "missing value: account.traits.plan")


def test_missing_intermediate_map_names_the_path_prefix() -> None:
    cond = compile_condition('account.traits.plan == "enterprise"', SCOPE)
    snapshot = context()
    del snapshot["account"]["traits"]
    assert cond.evaluate(snapshot) == Verdict(False, "missing value: account.traits")


def test_missing_value_inside_a_macro_names_the_element_path() -> None:
    cond = compile_condition('contacts.exists(c, c.role == "champion")', SCOPE)
    verdict = cond.evaluate(context(contacts=[{"email": "a@x.com"}]))
    assert verdict == Verdict(False, "missing value: contacts[].role")


def test_missing_root_variable_names_it() -> None:
    cond = compile_condition('event.name == "login"', SCOPE)
    snapshot = context()
    del snapshot["event"]
    assert cond.evaluate(snapshot) == Verdict(False, "missing value: event")


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("account.metrics.seats", "int"),
        ("account.health.score", "double"),
        ("account.traits.plan", "string"),
        ("account.traits.renewal_date", "timestamp"),
        ("contacts", "list"),
    ],
)
def test_non_bool_result_fails(source: str, kind: str) -> None:
    verdict = compile_condition(source, SCOPE).evaluate(context())
    assert verdict == Verdict(False, f"expected a bool, got {kind}")


def test_false_result_has_no_reason() -> None:
    cond = compile_condition('account.traits.plan == "starter"', SCOPE)
    assert cond.evaluate(context()) == Verdict(False, None)


def test_int_and_double_compare_but_do_not_add() -> None:
    """CEL here compares across int/double (3 > 2.5, 12 == 12.0) but arithmetic needs one type."""
    assert compile_condition("account.metrics.logins_7d > 2.5", SCOPE).evaluate(context()).passed
    assert compile_condition("account.metrics.seats == 12.0", SCOPE).evaluate(context()).passed
    assert compile_condition("account.health.score < 72", SCOPE).evaluate(context()).passed
    mixed = compile_condition("account.health.score + 1 > 70.0", SCOPE).evaluate(context())
    assert not mixed.passed
    assert mixed.reason is not None and "int" in mixed.reason
    fixed = compile_condition("account.health.score + double(1) > 70.0", SCOPE)
    assert fixed.evaluate(context()).passed


def test_type_error_on_null_is_a_failed_verdict() -> None:
    cond = compile_condition("account.health.score > 50.0", SCOPE)
    verdict = cond.evaluate(context(account={**context()["account"], "health": {"score": None}}))
    assert not verdict.passed
    assert verdict.reason is not None and verdict.reason.startswith("No such overload")


def test_evaluate_never_raises() -> None:
    cond = compile_condition('account.traits.plan == "enterprise"', SCOPE)
    assert cond.evaluate(context(account=object())) == Verdict(
        False, "Conversion Error: Failed to convert Python object of type object to Value"
    )
    division = compile_condition("account.metrics.seats / 0 > 1", SCOPE).evaluate(context())
    assert division.passed is False and division.reason


def test_accepts_any_mapping_and_a_shared_context() -> None:
    cond = compile_condition('contacts.exists(c, c.role == "champion")', SCOPE)
    assert cond.evaluate(MappingProxyType(context())).passed
    shared = make_context(context())
    assert isinstance(shared, cel.Context)
    assert cond.evaluate(shared).passed
    other = compile_condition('account.traits.plan == "starter"', SCOPE)
    assert other.evaluate(shared) == Verdict(False, None)


def test_condition_error_is_a_value_error_with_its_parts() -> None:
    with pytest.raises(ValueError, match="invalid condition") as info:
        compile_condition("acount.id", SCOPE)
    assert isinstance(info.value, ConditionError)
    assert info.value.expression == "acount.id"
    assert info.value.reason.startswith("unknown variable 'acount'")


def test_a_dict_context_passes_only_what_the_condition_uses() -> None:
    cond = compile_condition('shout(account.traits.plan) == "ENTERPRISE"', SCOPE)
    snapshot = context(contacts=[object()])  # unconvertible, but this condition never reads it
    snapshot["shout"] = lambda text: text.upper()
    assert cond.evaluate(snapshot) == Verdict(True, None)
