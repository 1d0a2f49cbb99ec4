"""The Python closures of ``cel_native`` answer exactly as CEL does, or not at all.

Every case runs both ways: where CEL gives a value the closure gives the same value of the
same type or declines (Unsure); where CEL raises, the closure must decline, or raise Absent
naming the very key CEL's KeyError names. Random expressions from a grammar of the supported
subset check the same over many shapes.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import cel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.core.cel_native import Absent, Unsure, compile_native
from engine.core.conditions import FAILED, PASSED, compile_condition
from engine.core.context import LazyView

CONTEXT: dict[str, Any] = {
    "x": {
        "i": 3,
        "neg": -7,
        "zero": 0,
        "big": 2**62,
        "huge": 2**70,
        "f": 2.5,
        "fz": 0.0,
        "nan": math.nan,
        "s": "abc",
        "e": "",
        "b": True,
        "n": None,
        "l": [1, 2.0, "a"],
        "m": {"a": 1, "b": "two"},
        "t": datetime(2026, 3, 1, tzinfo=UTC),
        "naive": datetime(2026, 3, 1),
        "d": timedelta(hours=36),
        "people": [{"role": "admin", "n": 1}, {"role": "champion", "n": 2}],
    },
    "now": datetime(2026, 1, 1, tzinfo=UTC),
}


def _cel(source: str, context: dict[str, Any]) -> tuple[bool, Any]:
    """(True, CEL's value) or (False, the exception CEL raised)."""
    try:
        return True, cel.compile(source).execute(cel.Context(context))
    except BaseException as exc:  # pyo3 panics derive from BaseException
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        return False, exc


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def check(source: str, context: dict[str, Any] = CONTEXT) -> str:
    """Compare the closure with CEL on ``source``: 'native', 'absent' (both fail naming the
    same missing key), 'declined' or 'unsupported'."""
    native = compile_native(source)
    if native is None:
        return "unsupported"
    ok, expected = _cel(source, context)
    try:
        got = native(context)
    except Unsure:
        return "declined"
    except Absent as absent:
        assert not ok, (
            f"{source}: CEL answered {expected!r}, the closure said {absent.key!r} is missing"
        )
        assert type(expected) is KeyError and expected.args == (absent.key,), (
            f"{source}: CEL raised {expected!r}, the closure said {absent.key!r} is missing"
        )
        return "absent"
    assert ok, f"{source}: CEL raised but the closure answered {got!r}"
    assert _same(got, expected), f"{source}: closure {got!r} vs CEL {expected!r}"
    return "native"


ANSWERED = [
    "x.i > 2",
    "x.i >= 3 && x.s == 'abc'",
    "x.f > 2",
    "x.i == 3.0",
    "x.i in [1, 2, 3]",
    "x.s in ['a', 'abc']",
    "'a' in x.m",
    "x.s == 1",
    "x.n == null",
    "x.b == 1",
    "x.b != false",
    "x.i < x.f || x.s.startsWith('ab')",
    "!(x.i > 2)",
    "-x.i == -3",
    "x.neg / 2 == -3",
    "x.neg % 2 == -1",
    "7 / 2",
    "x.f / 2.0",
    "double(x.i) / double(x.zero + 4) > 0.5",
    "int(-2.7) == -2",
    "size(x.s) == 3 && x.l.size() == 3",
    "string(x.i) + x.s",
    "has(x.m.a) && !has(x.m.c)",
    "x.i > 1 ? x.s : x.e",
    "x.t - now > duration('1440h')",
    "x.t + duration('1h') > timestamp('2026-03-01T00:00:00Z')",
    "x.d < duration('48h')",
    "x.people.exists(p, p.role == 'champion' && p.n > 1)",
    "x.people.all(p, p.n > 0)",
    "x.m.exists(k, k == 'b')",
    "x.l[2] == 'a' && x.m['b'] == 'two'",
    "x.big * 1 == 4611686018427387904",
    "x.s.contains('b') && x.s.endsWith('c')",
    "false < true",
    "'ab' < 'b'",
    "x.missing > 1 || true",  # CEL's logic is commutative: true decides whatever the other side
    "x.missing > 1 && false",
    "x.i && false",
    "x.n || x.s == 'abc'",
    "x.s != 3",  # a literal on the right: the specialised comparisons
    "x.n == 'a'",
    "x.b != 'true'",
    "x.f >= 2",
    "x.i == 3",
    "x.s == 'abc' && x.neg < -6.5",
]

MISSING = [
    "x.missing > 1",  # CEL fails naming the missing value: the closure names the same
    "x.m.c == 1",
    "x.nope.deep == 1",
    "x.missing > 1 && x.i > 1",  # an error on one side, true on the other
    "x.i > 1 && x.missing > 1",
    "x.missing == 1 || false",
    "!(x.missing > 1)",
    "x.missing in ['a']",
    "x.s.startsWith(x.missing)",  # CEL evaluates a method's argument first
    "x.missing.startsWith(x.s)",
    "x.m['c'] == 1",
    "x.missing == 1 ? 1 : 2",
    "has(x.nope.deep)",
    "x.missing + 1 > x.i",
]

DECLINED = [
    "x.missing + 1 > x.other",  # two missing values: which CEL names depends on the operator
    "x.qa == 1 && x.qb == 1",
    "x.qa.startsWith(x.qb)",
    "[x.qa, x.i] == []",
    "x.l.exists(v, x.qa == v)",  # macros absorb errors when an element decides
    "x.huge > 1",  # not an int64
    "x.big * 4",  # overflow
    "x.i + x.f",  # CEL has no int + double
    "x.i / x.zero",  # division by zero
    "x.f / x.fz",  # CEL says inf: left to CEL
    "x.nan < 1.0",
    "x.s < 1",  # no ordering across types
    "x.n > 1",
    "!x.i",
    "x.i && true",
    "x.naive > now",
    "double(x.s) > 1.0",
    "x.l == [1, 2.0, 'a']",  # lists compare in CEL
    "x.s > 3",
    "x.l == 1 || x.nan > 1.0",
    "x.i || false",
]

UNSUPPORTED = [
    "x.s.matches('^a')",
    "x.l.map(v, v)",
    "x.l.filter(v, v == 1).size() > 0",
    "x.l.exists_one(v, v == 1)",
    "0x10 == 16",
    "1u == 1",
    "'a\\tb' == x.s",
    "r'a' == x.s",
    "{'a': 1}.a == 1",
    "timestamp(x.s) > now",
    "duration('1.5h') > x.d",
    "x.i ==",
]


@pytest.mark.parametrize("source", ANSWERED)
def test_the_closure_answers_as_cel_does(source: str) -> None:
    assert check(source) == "native"


@pytest.mark.parametrize("source", MISSING)
def test_a_missing_value_fails_as_in_cel(source: str) -> None:
    assert check(source) == "absent"


@pytest.mark.parametrize("source", DECLINED)
def test_the_closure_declines_where_cel_errors_or_is_unclear(source: str) -> None:
    assert check(source) == "declined"


@pytest.mark.parametrize("source", UNSUPPORTED)
def test_outside_the_subset_no_closure_is_built(source: str) -> None:
    assert compile_native(source) is None


def test_a_condition_gives_the_same_verdict_with_or_without_its_closure() -> None:
    from engine.core.cel_paths import Field

    scope = {"x": Field.any_(), "now": Field.timestamp()}
    sources = ["x.i > 2", "x.missing > 1", "x.i + x.f > 1", "x.s == 'zzz'", "x.i"]
    sources += ["x.m.c == 1 && x.i > 1", "x.qa > 1 || x.qb > 1", "x.s.startsWith(x.gone)"]
    for source in sources:
        with_closure = compile_condition(source, scope)
        assert with_closure._native is not None
        without = compile_condition(source, scope)
        object.__setattr__(without, "_native", None)
        assert with_closure.evaluate(CONTEXT) == without.evaluate(CONTEXT), source
    assert compile_condition("x.i > 2", scope).evaluate(CONTEXT) is PASSED
    assert compile_condition("x.i < 2", scope).evaluate(CONTEXT) is FAILED
    missing = compile_condition("x.missing > 1", scope).evaluate(CONTEXT)
    assert missing.reason == "missing value: x.missing"


def test_lazy_sections_are_read_through() -> None:
    built: list[str] = []

    def traits() -> dict[str, Any]:
        built.append("traits")
        return {"plan": "growth"}

    view = LazyView({"account": lambda: LazyView({"traits": traits, "flags": dict})})
    native = compile_native("account.traits.plan in ['growth', 'enterprise']")
    assert native is not None
    assert native(view) is True
    assert built == ["traits"]


# -- random expressions over the subset ---------------------------------------------------

INTS = ["1", "0", "-3", "7", "9223372036854775807", "x.i", "x.neg", "x.zero", "x.big", "x.m.a"]
INTS += ["x.count", "x.m.n"]  # missing
FLOATS = ["2.5", "0.0", "-1.5", "1e300", "x.f", "x.fz", "x.nan", "x.ratio"]
STRINGS = ["'a'", "'abc'", "''", "x.s", "x.e", "x.m.b", "x.name", "x.gone.deep"]
TIMES = ["x.t", "now", "timestamp('2026-01-01T00:00:00Z')"]
DURATIONS = ["x.d", "duration('1h')", "duration('-30m')", "duration('36h')"]
ODD = ["x.l", "x.m", "x.n", "null", "x.missing", "x.huge", "x.naive", "[]", "[1, 2.0, 'a']"]


def _pair(a: st.SearchStrategy[str], ops: list[str], b: st.SearchStrategy[str]) -> Any:
    return st.tuples(a, st.sampled_from(ops), b).map(lambda t: f"({t[0]} {t[1]} {t[2]})")


def _expressions() -> st.SearchStrategy[str]:
    """Mostly well-typed expressions (where the closures answer), some ill-typed ones."""
    ints: Any = st.deferred(
        lambda: (
            st.sampled_from(INTS)
            | _pair(ints, ["+", "-", "*", "/", "%"], ints)
            | ints.map(lambda e: f"-{e}")
            | strings.map(lambda e: f"size({e})")
            | floats.map(lambda e: f"int({e})")
            | st.tuples(bools, ints, ints).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})")
        )
    )
    floats: Any = st.deferred(
        lambda: (
            st.sampled_from(FLOATS)
            | _pair(floats, ["+", "-", "*", "/"], floats)
            | ints.map(lambda e: f"double({e})")
        )
    )
    strings: Any = st.deferred(
        lambda: (
            st.sampled_from(STRINGS)
            | _pair(strings, ["+"], strings)
            | ints.map(lambda e: f"string({e})")
        )
    )
    times: Any = st.deferred(lambda: st.sampled_from(TIMES) | _pair(times, ["+", "-"], durations))
    durations: Any = st.deferred(
        lambda: (
            st.sampled_from(DURATIONS)
            | _pair(durations, ["+", "-"], durations)
            | _pair(times, ["-"], times)
        )
    )
    scalars = ints | floats | strings | st.sampled_from(["true", "false", "null", *ODD])
    numbers = ints | floats
    lists = st.lists(scalars, max_size=3).map(lambda xs: f"[{', '.join(xs)}]")
    bools: Any = st.deferred(
        lambda: (
            st.sampled_from(
                ["true", "false", "x.b", "has(x.m.a)", "has(x.missing)", "x.missing", "x.i", "null"]
            )
            | _pair(numbers, ["<", "<=", ">", ">=", "==", "!="], numbers)
            | _pair(strings, ["<", "<=", ">", ">=", "==", "!="], strings)
            | _pair(times, ["<", "<=", ">", ">=", "==", "!="], times)
            | _pair(durations, ["<", ">=", "=="], durations)
            | _pair(scalars, ["==", "!="], scalars)
            | st.tuples(scalars, lists).map(lambda t: f"{t[0]} in {t[1]}")
            | _pair(bools, ["&&", "||", "==", "<"], bools)
            | bools.map(lambda e: f"!{e}")
            | st.tuples(
                st.sampled_from(["startsWith", "endsWith", "contains"]), strings, strings
            ).map(lambda t: f"{t[1]}.{t[0]}({t[2]})")
            | st.tuples(st.sampled_from(["exists", "all"]), scalars).map(
                lambda t: f"x.l.{t[0]}(v, v == {t[1]})"
            )
            | st.tuples(st.sampled_from(["exists", "all"]), ints).map(
                lambda t: f"x.people.{t[0]}(p, p.n > {t[1]})"
            )
        )
    )
    return bools | scalars


@settings(
    max_examples=1000,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(_expressions())
def test_random_expressions_agree_with_cel(source: str) -> None:
    assert check(source) in ("native", "absent", "declined", "unsupported")
