"""The template sandbox: caps, attacks, strict undefined, escaping, errors and filters."""

from __future__ import annotations

import sys
import time
from datetime import UTC, date, datetime
from typing import Any

import pytest

from engine.core import templates
from engine.core.templates import (
    MAX_OUTPUT_CHARS,
    TemplateError,
    compile_template,
    environment,
    render_string,
)


def fails(source: str, context: dict[str, Any] | None = None, **kw: Any) -> TemplateError:
    """Render and return the TemplateError it raises (fails the test if it renders)."""
    with pytest.raises(TemplateError) as info:
        render_string(source, context or {}, **kw)
    return info.value


def fails_fast(source: str, context: dict[str, Any] | None = None) -> TemplateError:
    """Like ``fails``, and the failure takes well under the render time cap."""
    started = time.perf_counter()
    error = fails(source, context)
    assert time.perf_counter() - started < 0.5
    return error


# --- operators that could exhaust a worker ------------------------------------------------


def test_string_repetition_is_refused_fast() -> None:
    error = fails_fast("{{ 'x' * 50000000 }}")
    assert "'x' * 50000000: string repetition is not allowed" in str(error)
    assert error.line == 1


def test_repetition_is_refused_whichever_side_the_sequence_is_on() -> None:
    assert "string repetition" in str(fails_fast("{{ 3 * 'ab' }}"))
    assert "list repetition is not allowed" in str(fails_fast("{{ [1] * 100000000 }}"))
    assert "tuple repetition is not allowed" in str(fails_fast("{{ (1, 2) * 3 }}"))


def test_power_is_always_refused() -> None:
    assert "power is not allowed" in str(fails_fast("{{ 9 ** 9 ** 9 }}"))
    assert "power is not allowed" in str(fails_fast("{{ 2 ** 2 }}"))
    assert "power is not allowed" in str(fails_fast("{{ [1] * 10**8 }}"))


def test_numeric_arithmetic_still_works() -> None:
    out = render_string("{{ 3 * 4 }} {{ 2.5 * 2 }} {{ 7 // 2 }} {{ 7 % 3 }} {{ 1 + 2 }}", {})
    assert out == "12 5.0 3 1 3"
    assert render_string("{{ n * price }}", {"n": 3, "price": 1.5}) == "4.5"


def test_integer_products_are_bounded() -> None:
    source = (
        "{% set ns = namespace(n=10) %}"
        "{% for i in range(40) %}{% set ns.n = ns.n * ns.n %}{% endfor %}{{ ns.n }}"
    )
    assert "the result is too large" in str(fails_fast(source))


def test_range_is_capped_at_ten_thousand_items() -> None:
    assert render_string("{{ range(10000)|list|length }}", {}) == "10000"
    error = fails_fast("{% for i in range(10001) %}{% endfor %}")
    assert "range(10001) has 10001 items; the limit is 10000" in str(error)


def test_printf_widths_are_bounded() -> None:
    assert "width 999999999 is over the limit" in str(fails_fast("{{ '%0999999999d' % 1 }}"))
    assert "width 999999999" in str(fails_fast("{{ '%0999999999d'|format(1) }}"))
    assert "'*' widths are not allowed" in str(fails_fast("{{ '%*d' % (5, 1) }}"))
    assert render_string("{{ '%5.2f'|format(3.14159) }}|{{ '%s-%s' % (1, 2) }}", {}) == (
        " 3.14|1-2"
    )


def test_amplifying_filters_and_methods_are_refused() -> None:
    assert "would exceed 65536 characters" in str(fails_fast("{{ 'x'|center(1000000000) }}"))
    assert "would exceed" in str(fails_fast("{{ 'aaaa'|replace('a', 'x'|center(60000)) }}"))
    assert "unsafe" in str(fails_fast("{{ 'x'.ljust(1000000000) }}"))
    assert "unsafe" in str(fails_fast("{{ '{:>1000000000}'.format(1) }}"))
    assert "unsafe" in str(fails_fast("{{ (5).to_bytes(1000000000, 'big') }}"))
    assert "'lipsum' is undefined" in str(fails_fast("{{ lipsum(1000000) }}"))


def test_doubling_a_string_in_a_loop_is_stopped() -> None:
    source = (
        "{% set ns = namespace(s='x') %}"
        "{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}"
    )
    assert "value exceeds 65536 characters" in str(fails_fast(source))


def test_doubling_through_macro_recursion_is_stopped() -> None:
    source = (
        "{% macro f(s, n) %}{% if n %}{{ f(s ~ s, n - 1) }}{% endif %}{% endmacro %}"
        "{{ f('x', 40) }}"
    )
    assert "exceeds 65536 characters" in str(fails_fast(source))


def test_join_stops_before_building_a_huge_string() -> None:
    source = "{{ range(10000)|map('string')|map('center', 60000)|join }}"
    assert "join result would exceed" in str(fails_fast(source))


def test_many_intermediate_values_exhaust_the_work_budget() -> None:
    source = "{{ range(10000)|map('string')|map('center', 60000)|list|length }}"
    assert "characters of values" in str(fails_fast(source))


def test_runaway_recursion_is_a_template_error() -> None:
    error = fails_fast("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}")
    assert "RecursionError" in str(error)


# --- caps on output and time -------------------------------------------------------------


def test_output_is_capped() -> None:
    error = fails_fast("{% for i in range(10000) %}{{ 'abcdefghij' }}{% endfor %}")
    assert str(error) == f"output exceeds {MAX_OUTPUT_CHARS} characters"


def test_output_cap_can_be_lowered() -> None:
    template = compile_template("{{ text }}")
    assert template.render({"text": "x" * 100}, max_chars=100) == "x" * 100
    with pytest.raises(TemplateError, match="output exceeds 99 characters"):
        template.render({"text": "x" * 100}, max_chars=99)


def test_output_just_under_the_cap_renders() -> None:
    source = "{% for i in range(6553) %}{{ 'abcdefghij' }}{% endfor %}"
    assert len(render_string(source, {})) == 65530


def test_nested_loops_hit_the_time_cap() -> None:
    source = (
        "{% for i in range(10000) %}{% for j in range(10000) %}"
        "{% if j == 0 %}.{% endif %}{% endfor %}{% endfor %}"
    )
    started = time.perf_counter()
    error = fails(source)
    assert time.perf_counter() - started < 1.0
    assert "render took longer than 0.2 s" in str(error)


def test_loops_with_no_output_still_hit_the_time_cap() -> None:
    source = "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}"
    assert "render took longer than 0.05 s" in str(fails(source, max_seconds=0.05))


# --- strict undefined ---------------------------------------------------------------------


def test_missing_variable_is_named() -> None:
    error = fails("Hello\n{{ foo }}")
    assert "'foo' is undefined" in str(error)
    assert error.line == 2


def test_missing_attribute_names_the_variable_path() -> None:
    context = {"account": {"name": "Acme", "owner": {"name": "Ann"}}}
    assert "'account' has no attribute 'foo'" in str(fails("{{ account.foo }}", context))
    assert "'account.owner' has no attribute 'email'" in str(
        fails("{{ account.owner.email }}", context)
    )


def test_missing_attribute_inside_a_loop_names_the_item() -> None:
    error = fails("{% for e in events %}{{ e.nme }}{% endfor %}", {"events": [{"name": "a"}]})
    assert "'events[0]' has no attribute 'nme'" in str(error)


def test_missing_variable_in_a_condition_fails() -> None:
    assert "'plan' is undefined" in str(fails("{% if plan == 'pro' %}x{% endif %}"))


def test_default_and_defined_still_work() -> None:
    source = "{{ x|default('n/a') }}{% if y is defined %}!{% endif %}"
    assert render_string(source, {}) == "n/a"


# --- escaping -----------------------------------------------------------------------------


def test_html_autoescapes() -> None:
    assert render_string("<p>{{ n }}</p>", {"n": "<b>&"}, kind="html") == "<p>&lt;b&gt;&amp;</p>"


def test_text_does_not_escape() -> None:
    assert render_string("<p>{{ n }}</p>", {"n": "<b>&"}, kind="text") == "<p><b>&</p>"


def test_html_escapes_concatenation_and_captured_blocks() -> None:
    source = "{{ 'a' ~ x }}{% set b %}{{ x }}!{% endset %}{{ b }}"
    assert render_string(source, {"x": "<"}, kind="html") == "a&lt;&lt;!"


def test_environments_are_shared_and_distinct() -> None:
    assert environment("text") is environment("text")
    assert environment("html").autoescape is True
    assert environment("text").autoescape is False
    with pytest.raises(ValueError, match="'text' or 'html'"):
        compile_template("x", kind="xml")  # type: ignore[arg-type]


# --- syntax errors ------------------------------------------------------------------------


def test_syntax_error_carries_the_line() -> None:
    with pytest.raises(TemplateError) as info:
        compile_template("Hi\n\n{{ name }", name="welcome")
    assert info.value.line == 3
    assert str(info.value).startswith("welcome, line 3: syntax error:")


def test_unknown_tag_is_a_syntax_error() -> None:
    with pytest.raises(TemplateError) as info:
        compile_template("a\n{% frobnicate %}")
    assert info.value.line == 2
    assert "frobnicate" in str(info.value)


def test_unknown_filter_is_a_compile_error() -> None:
    with pytest.raises(TemplateError, match="No filter named 'nope'"):
        compile_template("{{ x|nope }}")


def test_runtime_error_carries_the_line() -> None:
    error = fails("a\nb\n{{ 1 / 0 }}")
    assert error.line == 3
    assert "ZeroDivisionError" in str(error)


def test_include_has_no_loader() -> None:
    assert "no loader" in str(fails("{% include 'other.html' %}"))


def test_core_module_imports_no_jinja_loader() -> None:
    assert not any(name == "FileSystemLoader" for name in vars(templates))
    with open(templates.__file__, encoding="utf-8") as handle:
        source = handle.read()
    assert "loaders" not in source and "FileSystemLoader" not in source
    assert "jinja2.loaders" not in sys.modules or templates.environment().loader is None


# --- sandbox ------------------------------------------------------------------------------


def test_dunder_attributes_are_blocked() -> None:
    assert "unsafe" in str(fails("{{ x.__class__ }}", {"x": []}))
    assert "unsafe" in str(fails("{{ x.__class__.__mro__ }}", {"x": "s"}))


def test_lists_and_dicts_cannot_be_mutated() -> None:
    assert "access to attribute 'append' of 'list' object is unsafe" in str(
        fails("{{ x.append(1) }}", {"x": []})
    )
    assert "unsafe" in str(fails("{{ d.update({'a': 1}) }}", {"d": {}}))
    assert "unsafe" in str(fails("{{ d.clear() }}", {"d": {"a": 1}}))


def test_context_is_not_modified() -> None:
    context: dict[str, Any] = {"x": [1], "d": {"a": 1}}
    fails("{{ x.append(2) }}", context)
    assert context == {"x": [1], "d": {"a": 1}}


# --- everyday templates -------------------------------------------------------------------


def test_loops_and_loop_variables() -> None:
    source = "{% for x in xs %}{{ loop.index }}/{{ loop.length }} {% else %}none{% endfor %}"
    assert render_string(source, {"xs": ["a", "b"]}) == "1/2 2/2 "
    assert render_string(source, {"xs": []}) == "none"


def test_common_filters_still_work() -> None:
    source = (
        "{{ xs|join(', ') }}|{{ xs|sum }}|{{ rows|sum(attribute='n') }}|{{ name|title }}"
        "|{{ 'aaaa'|replace('a', 'b', 2) }}|{{ text|truncate(9) }}|{{ d|dictsort|first|first }}"
    )
    context = {
        "xs": [1, 2, 3],
        "rows": [{"n": 2}, {"n": 3}],
        "name": "ann lee",
        "text": "hello there world",
        "d": {"b": 1, "a": 2},
    }
    assert render_string(source, context) == "1, 2, 3|6|5|Ann Lee|bbaa|hello...|a"


def test_compile_is_cached_and_template_is_reusable() -> None:
    template = compile_template("Hi {{ name }}")
    assert compile_template("Hi {{ name }}") is template
    assert template.render({"name": "A"}) == "Hi A"
    assert template.render({"name": "B"}) == "Hi B"


# --- custom filters -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ 1234.5|money }}", "$1,234.50"),
        ("{{ 0|money }}", "$0.00"),
        ("{{ 2.675|money }}", "$2.68"),
        ("{{ -1234567.891|money }}", "-$1,234,567.89"),
        ("{{ 5|money('EUR') }}", "€5.00"),
        ("{{ 1234.5|money('gbp') }}", "£1,234.50"),
        ("{{ 1234.5|money('JPY') }}", "¥1,235"),
        ("{{ 10|money('SEK') }}", "SEK 10.00"),
        ("{{ '99.999'|money }}", "$100.00"),
    ],
)
def test_money(source: str, expected: str) -> None:
    assert render_string(source, {}) == expected


def test_money_rejects_non_numbers() -> None:
    assert "money: not a number" in str(fails("{{ 'abc'|money }}"))
    assert "money: expected a currency code" in str(fails("{{ 5|money('dollars') }}"))
    assert "money: expected a number" in str(fails("{{ x|money }}", {"x": None}))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ '2024-05-01T12:00:00Z'|date }}", "2024-05-01"),
        ("{{ '2024-05-01'|date('%b %d, %Y') }}", "May 01, 2024"),
        ("{{ 0|date('%Y-%m-%d %H:%M') }}", "1970-01-01 00:00"),
        ("{{ 1714564800.5|date('%H:%M') }}", "12:00"),
        ("{{ '2024-05-01T12:00:00Z'|date('%H:%M %Z', tz='America/New_York') }}", "08:00 EDT"),
        ("{{ '2024-05-01'|date('%d', tz='America/New_York') }}", "01"),
        ("{{ '2024-05-01T12:00:00+02:00'|date('%H:%M') }}", "12:00"),
    ],
)
def test_date(source: str, expected: str) -> None:
    assert render_string(source, {}) == expected


def test_date_accepts_datetimes() -> None:
    when = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
    assert render_string("{{ now|date('%d/%m %H:%M') }}", {"now": when}) == "01/05 09:30"


def test_date_rejects_garbage() -> None:
    assert "date: not an ISO date" in str(fails("{{ 'soon'|date }}"))
    assert "date: unknown time zone 'Mars/Base'" in str(fails("{{ 0|date(tz='Mars/Base') }}"))
    assert "date: expected an ISO string" in str(fails("{{ x|date }}", {"x": None}))


def test_the_collector_is_paused_only_while_rendering() -> None:
    import gc

    from engine.core.templates import compile_template

    template = compile_template("{{ n }}")
    assert gc.isenabled()
    assert template.render({"n": 1}) == "1"
    assert gc.isenabled()
    gc.disable()
    try:
        template.render({"n": 2})
        assert not gc.isenabled()  # a caller's choice is left as it was
    finally:
        gc.enable()


# -- plain templates: text and {{ a.b }} paths, rendered without Jinja ------------------------

PLAIN_CONTEXT: dict[str, Any] = {
    "account": {
        "id": "acct-1",
        "traits": {
            "name": "Acme Ünïcode",
            "seats": 40,
            "mrr": 1200.0,
            "vip": True,
            "nothing": None,
        },
        "metrics": {"logins_7d": 0},
        "items": {"x": 1},
        "when": date(2026, 1, 2),
        "people": ["a", "b"],
    },
    "event": {"properties": {"score": 3}},
}
PLAIN_TEMPLATES = [
    "No placeholders at all { with braces } here",
    "{{ account.traits.name }}",
    "Hi {{account.traits.name}}, {{ account.traits.seats }} seats at {{ account.traits.mrr }} MRR",
    "{{ account.traits.vip }} / {{ account.traits.nothing }} / {{ account.metrics.logins_7d }}",
    "Line one\nLine two {{ event.properties.score }}/10",
    "{{ account.traits.missing }}",  # Jinja's error, named
    "{{ account.items }}",  # a dict method's name: Jinja's attribute rules apply
    "{{ account.traits.keys }}",
    "{{ account.when }} {{ account.people }}",  # other types: Jinja writes them
    "{{ nobody.here }}",
    "{{ account.traits.name | upper }}",  # a filter: not plain
    "{% if true %}x{% endif %}",
    "trailing newline {{ account.id }}\n",
]


@pytest.mark.parametrize("source", PLAIN_TEMPLATES)
def test_plain_templates_render_exactly_as_jinja_does(source: str) -> None:
    from dataclasses import replace

    fast = compile_template(source)
    jinja = replace(fast, parts=None)
    try:
        expected: str | None = jinja.render(PLAIN_CONTEXT)
    except TemplateError as error:
        expected = None
        with pytest.raises(TemplateError) as raised:
            fast.render(PLAIN_CONTEXT)
        assert str(raised.value) == str(error)  # the same message: Jinja rendered it
    if expected is not None:
        assert fast.render(PLAIN_CONTEXT) == expected


def test_which_templates_skip_jinja() -> None:
    plain = [t for t in PLAIN_TEMPLATES if compile_template(t).parts is not None]
    assert plain == PLAIN_TEMPLATES[:10]
    substituted = [
        t
        for t in plain
        if templates._substitute(compile_template(t).parts or (), PLAIN_CONTEXT, 100)
    ]
    assert substituted == PLAIN_TEMPLATES[:5]  # the rest: missing, attributes, other types
    assert compile_template("<b>{{ account.id }}</b>", kind="html").parts is None  # escaping


def test_a_plain_template_over_the_output_cap_is_refused_as_before() -> None:
    template = compile_template("{{ account.traits.name }}{{ account.traits.name }}")
    with pytest.raises(TemplateError, match="exceeds 20 characters"):
        template.render(PLAIN_CONTEXT, max_chars=20)
