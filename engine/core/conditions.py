"""Playbook conditions: CEL compiled and path-checked once at load, evaluated without raising.

Converting Python values into CEL costs one to two microseconds per value, which dominates
evaluation. Given a dict, a condition first tries its Python closure (``cel_native``: the
everyday subset, sure answers only), then converts only the fields it names for CEL; to
share one conversion across many conditions, build a ``cel.Context`` per account snapshot
with :func:`make_context` and pass that instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import cel

from engine.core.cel_native import Absent, Native, compile_native
from engine.core.cel_paths import Field, Scope, analyze, check_paths, format_path

__all__ = [
    "Condition",
    "ConditionError",
    "Field",
    "Scope",
    "Verdict",
    "check_paths",
    "compile_condition",
    "make_context",
]

_UNDEFINED_RE = re.compile(r"Undefined variable or function: '([^']+)'")
_CEL_TYPES: dict[type, str] = {
    int: "int",
    float: "double",
    str: "string",
    bytes: "bytes",
    list: "list",
    dict: "map",
    type(None): "null",
    datetime: "timestamp",
    timedelta: "duration",
}


class ConditionError(ValueError):
    """A condition that cannot be used: a syntax error or a path the schema does not declare."""

    def __init__(self, expression: str, reason: str) -> None:
        super().__init__(f"invalid condition {expression!r}: {reason}")
        self.expression = expression
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of one evaluation; ``reason`` says why it could not pass, if it errored."""

    passed: bool
    reason: str | None = None


PASSED = Verdict(True)
FAILED = Verdict(False)


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled, checked condition; build it with :func:`compile_condition`."""

    source: str
    paths: tuple[str, ...]
    _program: Any = field(repr=False, compare=False)
    _keys: tuple[tuple[str, ...], ...] = field(repr=False, compare=False)
    _roots: tuple[str, ...] = field(repr=False, compare=False)
    _projection: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)
    _native: Native | None = field(repr=False, compare=False, default=None)

    def evaluate(self, context: Mapping[str, Any] | cel.Context) -> Verdict:
        """Run the condition; any error or non-bool result is a failed verdict, never raised."""
        if self._native is not None and not isinstance(context, cel.Context):
            try:
                answer = self._native(context)
            except Absent as absent:  # CEL would fail naming this missing value
                return Verdict(False, self._missing(absent.key))
            except Exception:  # not sure of CEL's answer: CEL gives it below
                answer = None
            if answer is True:
                return PASSED
            if answer is False:
                return FAILED
        try:
            if not isinstance(context, cel.Context):
                # Converting values dominates the cost: pass only the fields this condition names.
                context = _project(context, self._projection)
            result = self._program.execute(context)
        except (KeyboardInterrupt, SystemExit):
            raise
        except KeyError as exc:
            return Verdict(False, self._missing(exc.args[0] if exc.args else None))
        except BaseException as exc:  # pyo3 panics derive from BaseException
            return Verdict(False, self._describe(exc))
        if isinstance(result, bool):
            return Verdict(result)
        return Verdict(False, f"expected a bool, got {cel_type_name(result)}")

    def _missing(self, key: object) -> str:
        """Name the path a missing map key belongs to, as precisely as the key allows."""
        ending = (k for k in self._keys if k[-1] == key)
        inner = (k[: k.index(key) + 1] for k in self._keys if key in k)
        found = next(ending, None) or next(inner, None)
        return f"missing value: {format_path(found)}" if found else f"missing key {key!r}"

    def _describe(self, exc: BaseException) -> str:
        """A runtime error as a one-line reason."""
        text = str(exc) or type(exc).__name__
        m = _UNDEFINED_RE.match(text)
        if m and any(k[0] == m.group(1) for k in self._keys):
            return f"missing value: {m.group(1)}"
        return text


#: In a projection tree: take the whole value from here down.
_ALL: dict[str, Any] = {}


def _projection(keys: tuple[tuple[str, ...], ...], roots: tuple[str, ...]) -> dict[str, Any]:
    """The tree of fields a condition reads: whole values below a list or a map used as such."""
    tree: dict[str, Any] = {root: _ALL for root in roots}
    named = {k[0] for k in keys}
    for root in named & set(roots):
        tree[root] = {}
    for key in keys:
        node = tree
        segments = key[: key.index("[]")] if "[]" in key else key
        if not segments or segments[0] not in roots:
            continue
        for i, segment in enumerate(segments):
            last = i == len(segments) - 1
            child = node.get(segment)
            if child is _ALL:
                break
            if last:
                node[segment] = _ALL
            else:
                node = node.setdefault(segment, {})
    return tree


def _project(value: Any, tree: dict[str, Any]) -> Any:
    """Only the fields ``tree`` names (missing ones stay missing, so errors name them)."""
    if not isinstance(value, Mapping):
        return value
    if tree is _ALL:
        return value if type(value) is dict else dict(value.items())
    return {k: _project(value[k], sub) for k, sub in tree.items() if k in value}


def cel_type_name(value: object) -> str:
    """The CEL name of a result's type (``double`` for float, ``map`` for dict...)."""
    return _CEL_TYPES.get(type(value), type(value).__name__)


def make_context(values: Mapping[str, Any]) -> cel.Context:
    """Convert ``values`` once for several evaluations; do not reuse across snapshots."""
    return cel.Context(dict(values))


def _syntax_reason(message: str) -> str:
    """CEL's first error: its message line, the echoed source line and the caret line."""
    start = message.find("<input>:")
    if start < 0:
        return message.splitlines()[0] if message else "syntax error"
    head, *rest = message[start:].splitlines()
    shown = [line for line in rest[:2] if line.startswith("|")]
    return "\n".join([head, *shown])


def compile_condition(source: str, scope: Scope) -> Condition:
    """Compile ``source`` and check every path it names against ``scope``."""
    try:
        program = cel.compile(source)
    except ValueError as exc:
        raise ConditionError(source, _syntax_reason(str(exc))) from None
    report = analyze(source, scope)
    if report.problems:
        raise ConditionError(source, "; ".join(report.problems))
    paths = tuple(format_path(p) for p in report.paths)
    names = [*program.variables(), *program.functions()]  # functions: custom ones in the dict
    roots = tuple(name for name in dict.fromkeys(names) if name.isidentifier())
    projection = _projection(report.paths, roots)
    native = compile_native(source)
    return Condition(source, paths, program, report.paths, roots, projection, native)
