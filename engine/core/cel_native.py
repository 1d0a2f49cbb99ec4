"""CEL's everyday subset compiled to Python closures, with the CEL binding as the fallback.

Most playbook conditions compare a field with a literal, test a flag or a stage, and join
such tests with ``&&`` and ``||``. Through the CEL binding each costs 10-20 µs, most of it
converting the account's values into CEL; as Python closures over the same context they
cost about a microsecond. A closure answers only when its answer is certain: operands of
the types it knows, every value present, no overflow. Anything else raises :class:`Unsure`
and the condition runs on CEL, which gives the answer (and the error message) it always did.

Supported: literals (decimal int, double, plain string, bool, null, lists), variables and
field selection, ``[key]`` on maps and lists, ``! - * / % + -``, comparisons, ``in``,
``&& ||``, ``?:``, ``has()``, ``size double int string`` and constant ``duration("...")`` /
``timestamp("...")``, the string methods ``startsWith endsWith contains``, and the macros
``exists`` and ``all``. :func:`compile_native` returns None for any other expression.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import cel

from engine.core.cel_paths import Token, TokenizeError, tokenize

__all__ = ["Native", "Unsure", "compile_native"]

#: A compiled expression: the value of the expression in an environment of variables.
Native = Callable[[Mapping[str, Any]], Any]

INT_MIN, INT_MAX = -(2**63), 2**63 - 1
#: Integers that convert to double exactly: cross-type comparisons are exact below this.
EXACT = 2**53
#: CEL's duration range: about 10,000 years either way.
MAX_DURATION_S = 315_576_000_000
_NUMBERS = frozenset({int, float})
#: Types whose values CEL never finds equal to a value of another of them (bar numbers).
_DISTINCT = frozenset({str, bool, int, float, type(None)})
_ORDERED = frozenset({str, bool, int, float, datetime, timedelta})
_CONSTANT_CALLS = {"duration": timedelta, "timestamp": datetime}
_PLAIN_DURATION = re.compile(r"([\"'])-?(?:\d+(?:h|m|s|ms))+\1\Z")
_PLAIN_TIMESTAMP = re.compile(
    r"([\"'])\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)\1\Z"
)


class Unsure(Exception):
    """The closure cannot be sure of CEL's answer; the caller asks CEL."""


class Absent(Exception):
    """A map has no such key, and CEL's answer is the error naming it (CEL raises
    ``KeyError(key)``). Raised where a field is read; every node that could absorb the error
    or name another one (``&&``, ``||``, macros, lists, a second missing operand) turns it
    into Unsure, so it reaches the caller only when CEL would fail naming this key."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class Unsupported(Exception):
    """The expression uses something outside the subset (compile time only)."""


def compile_native(source: str) -> Native | None:
    """The expression as a closure, or None when it leaves the supported subset."""
    try:
        parser = _Parser(tokenize(source))
        native = parser.expression()
        if parser.pos != len(parser.tokens):
            return None
    except (TokenizeError, Unsupported, IndexError):
        return None
    return native


# -- values ------------------------------------------------------------------------------


def _checked(value: Any) -> Any:
    """A value read from the context, if CEL would see the same value; else Unsure."""
    kind = type(value)
    if kind is int:
        if not INT_MIN <= value <= INT_MAX:
            raise Unsure
        return value
    if kind is float or kind is str or kind is bool or value is None:
        return value
    if kind is dict or kind is list or isinstance(value, dict):
        return value
    if kind is datetime:
        if value.tzinfo is None:
            raise Unsure
        return value
    if kind is timedelta:
        return _duration(value)
    raise Unsure


def _int(value: int) -> int:
    if not INT_MIN <= value <= INT_MAX:
        raise Unsure
    return value


def _duration(value: timedelta) -> timedelta:
    if abs(value.total_seconds()) > MAX_DURATION_S:
        raise Unsure
    return value


def _bool(value: Any) -> bool:
    if value is True or value is False:
        return value
    raise Unsure


def _number(value: Any) -> bool:
    """Whether ``value`` is an int or a finite double (not a bool), safe to compare across."""
    kind = type(value)
    if kind is int:
        return bool(-EXACT <= value <= EXACT)
    return kind is float and not math.isnan(value)


def equal(a: Any, b: Any) -> bool:
    """CEL's heterogeneous equality on scalars: numbers by value, other types never equal."""
    ka, kb = type(a), type(b)
    if (ka is kb and ka in _ORDERED) or (a is None and b is None):
        if ka is float and (math.isnan(a) or math.isnan(b)):
            raise Unsure
        return bool(a == b)
    if ka in _NUMBERS and kb in _NUMBERS:
        if _number(a) and _number(b):
            return bool(a == b)
        raise Unsure
    if ka in _DISTINCT and kb in _DISTINCT:
        return False
    raise Unsure


def _ordered(a: Any, b: Any) -> None:
    """Raise Unsure unless CEL orders ``a`` and ``b`` as Python does."""
    ka, kb = type(a), type(b)
    if ka is kb and ka in _ORDERED:
        if ka is float and (math.isnan(a) or math.isnan(b)):
            raise Unsure
        return
    if not (_number(a) and _number(b)):
        raise Unsure


def _lt(a: Any, b: Any) -> bool:
    _ordered(a, b)
    return bool(a < b)


def _le(a: Any, b: Any) -> bool:
    _ordered(a, b)
    return bool(a <= b)


def _gt(a: Any, b: Any) -> bool:
    _ordered(a, b)
    return bool(a > b)


def _ge(a: Any, b: Any) -> bool:
    _ordered(a, b)
    return bool(a >= b)


def _ne(a: Any, b: Any) -> bool:
    return not equal(a, b)


def _member(a: Any, b: Any) -> bool:
    if type(b) is list:
        return any(equal(a, item) for item in b)
    if isinstance(b, dict) and type(a) is str:
        return a in b
    raise Unsure


def _add(a: Any, b: Any) -> Any:
    ka, kb = type(a), type(b)
    try:
        if ka is int and kb is int:
            return _int(a + b)
        if (ka is float and kb is float) or (ka is str and kb is str):
            return a + b
        if ka is timedelta and kb is timedelta:
            return _duration(a + b)
        if (ka is datetime and kb is timedelta) or (ka is timedelta and kb is datetime):
            return a + b
    except OverflowError:
        raise Unsure from None
    raise Unsure


def _sub(a: Any, b: Any) -> Any:
    ka, kb = type(a), type(b)
    try:
        if ka is int and kb is int:
            return _int(a - b)
        if ka is float and kb is float:
            return a - b
        if (ka is datetime and kb is datetime) or (ka is timedelta and kb is timedelta):
            return _duration(a - b)
        if ka is datetime and kb is timedelta:
            return a - b
    except OverflowError:
        raise Unsure from None
    raise Unsure


def _mul(a: Any, b: Any) -> Any:
    ka, kb = type(a), type(b)
    if ka is int and kb is int:
        return _int(a * b)
    if ka is float and kb is float:
        return a * b
    raise Unsure


def _div(a: Any, b: Any) -> Any:
    ka, kb = type(a), type(b)
    if ka is int and kb is int and b != 0:
        quotient = abs(a) // abs(b)  # CEL truncates toward zero
        return _int(quotient if (a < 0) == (b < 0) else -quotient)
    if ka is float and kb is float and b != 0.0:
        return a / b
    raise Unsure


def _mod(a: Any, b: Any) -> Any:
    if type(a) is int and type(b) is int and b != 0:
        rest = abs(a) % abs(b)  # the sign follows the dividend, as in C
        return rest if a >= 0 else -rest
    raise Unsure


_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "<": _lt,
    "<=": _le,
    ">": _gt,
    ">=": _ge,
    "==": equal,
    "!=": _ne,
    "in": _member,
    "+": _add,
    "-": _sub,
    "*": _mul,
    "/": _div,
    "%": _mod,
}


def _size(value: Any) -> int:
    if type(value) in (str, list) or isinstance(value, dict):
        return len(value)
    raise Unsure


def _to_double(value: Any) -> float:
    if type(value) is float:
        return value
    if type(value) is int:
        return float(value)
    raise Unsure


def _to_int(value: Any) -> int:
    if type(value) is int:
        return value
    if type(value) is float and math.isfinite(value) and -EXACT < value < EXACT:
        return int(value)  # truncates toward zero, as CEL does
    raise Unsure


def _to_string(value: Any) -> str:
    if type(value) is str:
        return value
    if type(value) is int:
        return str(value)
    raise Unsure


_FUNCTIONS: dict[str, Callable[[Any], Any]] = {
    "size": _size,
    "double": _to_double,
    "int": _to_int,
    "string": _to_string,
}


def _string_method(name: str) -> Callable[[Any, Any], bool]:
    test = {"startsWith": str.startswith, "endsWith": str.endswith, "contains": str.__contains__}
    method = test[name]

    def call(target: Any, argument: Any) -> bool:
        if type(target) is str and type(argument) is str:
            return bool(method(target, argument))
        raise Unsure

    return call


class _Bound(Mapping[str, Any]):
    """The environment inside a macro: its variable, then the enclosing environment."""

    __slots__ = ("name", "outer", "value")

    def __init__(self, outer: Mapping[str, Any], name: str, value: Any) -> None:
        self.outer, self.name, self.value = outer, name, value

    def __getitem__(self, key: str) -> Any:
        return self.value if key == self.name else self.outer[key]

    def __iter__(self) -> Any:
        return iter([self.name, *self.outer])

    def __len__(self) -> int:
        return len(self.outer) + 1


# -- parsing -------------------------------------------------------------------------------


def _constant(value: Any) -> Native:
    return lambda env: value


_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


def _string_equality(left: Native, literal: str, *, negated: bool) -> Native:
    """``x == "a"`` / ``x != "a"``: scalars of other types are never equal to a string."""

    def equality(env: Mapping[str, Any]) -> bool:
        value = left(env)
        if type(value) is str:
            return (value == literal) is not negated
        if type(value) in _DISTINCT:
            return negated
        raise Unsure

    return equality


def _numeric_comparison(left: Native, symbol: str, literal: float) -> Native:
    """``x > 3`` and the like: an int or a double compared with a number by value."""
    compare = _COMPARISONS[symbol]
    equality = symbol in ("==", "!=")

    def comparison(env: Mapping[str, Any]) -> bool:
        value = left(env)
        kind = type(value)
        if (kind is int and -EXACT <= value <= EXACT) or (kind is float and value == value):
            return compare(value, literal)
        if equality and kind in _DISTINCT and kind is not int and kind is not float:
            return symbol == "!="
        raise Unsure

    return comparison


def _in_strings(left: Native, values: frozenset[str]) -> Native:
    """``x in ["a", "b"]``: a set lookup for a string, false for a scalar of another type."""

    def member(env: Mapping[str, Any]) -> bool:
        value = left(env)
        if type(value) is str:
            return value in values
        if type(value) in _DISTINCT:
            return False
        raise Unsure

    return member


class _Parser:
    """Recursive descent over CEL's grammar, building closures as it goes."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0
        #: The literal sub-expressions built so far, by id of their closure (kept alive here,
        #: so an id is never reused while parsing).
        self.constants: dict[int, tuple[Native, Any]] = {}

    def _literal(self, value: Any) -> Native:
        native = _constant(value)
        self.constants[id(native)] = (native, value)
        return native

    def _value(self, native: Native) -> tuple[bool, Any]:
        """Whether ``native`` is a literal, and its value."""
        known = self.constants.get(id(native))
        return (True, known[1]) if known is not None else (False, None)

    def _peek(self, text: str) -> bool:
        if self.pos >= len(self.tokens):
            return False
        token = self.tokens[self.pos]
        return token.text == text and token.kind in ("punct", "ident")

    def _take(self, text: str) -> None:
        if not self._peek(text):
            raise Unsupported
        self.pos += 1

    def _ident(self) -> str:
        token = self.tokens[self.pos]
        if token.kind != "ident":
            raise Unsupported
        self.pos += 1
        return token.text

    def expression(self) -> Native:
        test = self._or()
        if not self._peek("?"):
            return test
        self.pos += 1
        then = self._or()
        self._take(":")
        otherwise = self.expression()
        return lambda env: then(env) if _bool(test(env)) else otherwise(env)

    def _or(self) -> Native:
        left = self._and()
        while self._peek("||"):
            self.pos += 1
            left = _logical(left, self._and(), decisive=True)
        return left

    def _and(self) -> Native:
        left = self._relation()
        while self._peek("&&"):
            self.pos += 1
            left = _logical(left, self._relation(), decisive=False)
        return left

    def _relation(self) -> Native:
        return self._binary(self._addition, ("<", "<=", ">", ">=", "==", "!=", "in"))

    def _addition(self) -> Native:
        return self._binary(self._multiplication, ("+", "-"))

    def _multiplication(self) -> Native:
        return self._binary(self._unary, ("*", "/", "%"))

    def _binary(self, operand: Callable[[], Native], operators: tuple[str, ...]) -> Native:
        left = operand()
        while self.pos < len(self.tokens) and self.tokens[self.pos].text in operators:
            text = self.tokens[self.pos].text
            self.pos += 1
            right = operand()
            left = self._specialised(text, left, right) or _apply2(_BINARY[text], left, right)
        return left

    def _specialised(self, symbol: str, left: Native, right: Native) -> Native | None:
        """A faster closure for the commonest shapes: a value against a literal, or in a
        list of string literals; None for any other shape."""
        known, value = self._value(right)
        if not known:
            return None
        if symbol == "in" and type(value) is list and all(type(v) is str for v in value):
            return _in_strings(left, frozenset(value))
        if symbol in ("==", "!=") and type(value) is str:
            return _string_equality(left, value, negated=symbol == "!=")
        if symbol in _COMPARISONS and _number(value):
            return _numeric_comparison(left, symbol, value)
        return None

    def _unary(self) -> Native:
        """``!``s or ``-``s (CEL's grammar does not mix them) before a member expression."""
        for sign in ("!", "-"):
            count = 0
            while self._peek(sign):
                self.pos += 1
                count += 1
            if count:
                return self._signed(sign, count)
        return self._member(self._primary())

    def _signed(self, sign: str, count: int) -> Native:
        if sign == "-" and self.tokens[self.pos].kind == "number":
            inner = self._member(self._number(negative=True))
            count -= 1
        else:
            inner = self._member(self._primary())
        for _ in range(count):
            inner = _not(inner) if sign == "!" else _minus(inner)
        return inner

    def _member(self, target: Native) -> Native:
        while True:
            if self._peek("."):
                self.pos += 1
                name = self._ident()
                target = self._method(target, name) if self._peek("(") else _select(target, name)
            elif self._peek("["):
                self.pos += 1
                key = self.expression()
                self._take("]")
                target = _index(target, key)
            else:
                return target

    def _method(self, target: Native, name: str) -> Native:
        self._take("(")
        if name in ("exists", "all"):
            variable = self._ident()
            self._take(",")
            predicate = self.expression()
            self._take(")")
            return _macro(name, target, variable, predicate)
        if name in ("startsWith", "endsWith", "contains"):
            argument = self.expression()
            self._take(")")
            return _apply2(_string_method(name), target, argument)
        if name == "size":
            self._take(")")
            return lambda env: _size(target(env))
        raise Unsupported

    def _primary(self) -> Native:
        token = self.tokens[self.pos]
        if token.kind == "number":
            return self._number(negative=False)
        if token.kind == "string":
            self.pos += 1
            return self._literal(_string(token.text))
        if token.kind == "ident":
            return self._name()
        if self._peek("("):
            self.pos += 1
            inner = self.expression()
            self._take(")")
            return inner
        if self._peek("["):
            return self._list()
        raise Unsupported

    def _number(self, *, negative: bool) -> Native:
        text = self.tokens[self.pos].text
        self.pos += 1
        if text[:2].lower() == "0x" or text[-1] in "uU":
            raise Unsupported
        sign = "-" if negative else ""
        if any(c in text for c in ".eE"):
            return self._literal(float(sign + text))
        value = int(sign + text)
        if not INT_MIN <= value <= INT_MAX:
            raise Unsupported
        return self._literal(value)

    def _name(self) -> Native:
        name = self._ident()
        if name in ("true", "false", "null"):
            return self._literal({"true": True, "false": False, "null": None}[name])
        if not self._peek("("):
            return _path(name, self._selections())
        self.pos += 1
        if name == "has":
            return self._has()
        if name in _CONSTANT_CALLS:
            return self._constant_call(name)
        function = _FUNCTIONS.get(name)
        if function is None:
            raise Unsupported
        argument = self.expression()
        self._take(")")
        return lambda env: function(argument(env))

    def _selections(self) -> tuple[str, ...]:
        """The field names selected after a variable, up to a method call or anything else."""
        names: list[str] = []
        tokens = self.tokens
        while (
            self._peek(".")
            and self.pos + 1 < len(tokens)
            and tokens[self.pos + 1].kind == "ident"
            and not (self.pos + 2 < len(tokens) and tokens[self.pos + 2].text == "(")
        ):
            names.append(tokens[self.pos + 1].text)
            self.pos += 2
        return tuple(names)

    def _has(self) -> Native:
        """``has(variable.field...)``: whether the last field is present in its map."""
        root = self._ident()
        names = self._selections()
        self._take(")")
        if not names:
            raise Unsupported
        parent, field = _path(root, names[:-1]), names[-1]

        def has(env: Mapping[str, Any]) -> bool:
            value = parent(env)
            if isinstance(value, dict):
                return field in value
            raise Unsure

        return has

    def _constant_call(self, name: str) -> Native:
        """``duration("336h")`` or ``timestamp("...")``: CEL computes it once, here."""
        token = self.tokens[self.pos]
        pattern = _PLAIN_DURATION if name == "duration" else _PLAIN_TIMESTAMP
        if token.kind != "string" or not pattern.match(token.text):
            raise Unsupported
        self.pos += 1
        self._take(")")
        value = cel.compile(f"{name}({token.text})").execute({})
        if type(value) is not _CONSTANT_CALLS[name] or getattr(value, "tzinfo", True) is None:
            raise Unsupported
        return self._literal(value)

    def _list(self) -> Native:
        self._take("[")
        items: list[Native] = []
        while not self._peek("]"):
            items.append(self.expression())
            if not self._peek("]"):
                self._take(",")
        self._take("]")
        values = [self._value(item) for item in items]
        if all(known for known, _ in values):
            return self._literal([value for _, value in values])

        def elements(env: Mapping[str, Any]) -> list[Any]:
            try:
                return [item(env) for item in items]
            except Absent:
                raise Unsure from None  # another element may be missing too

        return elements


def _string(text: str) -> str:
    """A plain double- or single-quoted literal; escapes, raw and triple quotes go to CEL."""
    if "\\" in text or text[:1] not in "\"'" or text[:3] in ('"""', "'''"):
        raise Unsupported
    return text[1:-1]


def _not(inner: Native) -> Native:
    return lambda env: not _bool(inner(env))


def _minus(inner: Native) -> Native:
    return lambda env: _negate(inner(env))


def _negate(value: Any) -> Any:
    if type(value) is int:
        return _int(-value)
    if type(value) is float:
        return -value
    raise Unsure


def _logical(left: Native, right: Native, decisive: bool) -> Native:
    """``&&`` (decisive False) or ``||`` (decisive True). CEL's are commutative: a decisive
    side decides even when the other side is an error or not a bool; a missing value on one
    side is the answer when the other side is a bool that does not decide."""
    undecided = not decisive

    def logical(env: Mapping[str, Any]) -> bool:
        missing: Absent | None = None
        try:
            first = left(env)
        except Absent as absent:
            first, missing = None, absent
        except Exception:
            first = None
        if first is decisive:
            return decisive is True
        try:
            second = right(env)
        except Absent:
            if first is undecided:
                raise
            raise Unsure from None
        if second is decisive:
            return decisive is True
        if first is None:
            if missing is not None and second is undecided:
                raise missing
            raise Unsure
        if first is not undecided:
            raise Unsure
        return _bool(second)

    return logical


def _operands(left: Native, right: Native, env: Mapping[str, Any]) -> tuple[Any, Any]:
    """Both operands. A missing value on one side is CEL's answer; on both, CEL may name
    either (it depends on the operator), so the closure is unsure."""
    try:
        a = left(env)
    except Absent:
        try:
            right(env)
        except Exception:
            raise Unsure from None
        raise
    return a, right(env)


def _apply2(op: Callable[[Any, Any], Any], left: Native, right: Native) -> Native:
    def apply2(env: Mapping[str, Any]) -> Any:
        a, b = _operands(left, right, env)
        return op(a, b)

    return apply2


def _field(value: dict[str, Any], name: str) -> Any:
    """A map's field, read as CEL reads it (a lazy view builds it); Absent when it has none."""
    try:
        return value[name]
    except KeyError:
        raise Absent(name) from None


def _path(root: str, names: tuple[str, ...]) -> Native:
    """A variable and the fields selected from it, read in one closure."""

    def path(env: Mapping[str, Any]) -> Any:
        value = env[root]
        for name in names:
            if not isinstance(value, dict):
                raise Unsure
            value = _field(value, name)
        return _checked(value)

    return path


def _select(target: Native, name: str) -> Native:
    def select(env: Mapping[str, Any]) -> Any:
        value = target(env)
        if not isinstance(value, dict):
            raise Unsure
        return _checked(_field(value, name))

    return select


def _index(target: Native, key: Native) -> Native:
    def index(env: Mapping[str, Any]) -> Any:
        value, at = _operands(target, key, env)
        if isinstance(value, dict) and type(at) is str:
            return _checked(_field(value, at))
        if type(value) is list and type(at) is int and 0 <= at < len(value):
            return _checked(value[at])
        raise Unsure

    return index


def _macro(name: str, target: Native, variable: str, predicate: Native) -> Native:
    """``exists`` / ``all`` over a list's elements or a map's keys."""
    wanted = name == "exists"

    def macro(env: Mapping[str, Any]) -> bool:
        value = target(env)
        if type(value) is not list and not isinstance(value, dict):
            raise Unsure
        try:
            for item in value:
                if _bool(predicate(_Bound(env, variable, _checked(item)))) is wanted:
                    return wanted
        except Absent:
            raise Unsure from None  # CEL's macros absorb errors when an element decides
        return not wanted

    return macro
