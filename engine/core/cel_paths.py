"""Static checks for CEL conditions: a tokenizer, select-chain extraction, and schema lookup.

The CEL binding has no type checker and no AST, so field paths are recovered from tokens:
an identifier that is not itself selected starts a chain, ``.name`` and ``["literal"]``
extend it, and comprehension macros (``xs.exists(x, ...)``) bind their variable to the
element schema of the range for the extent of their parentheses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Literal

import cel

Kind = Literal["string", "int", "double", "bool", "timestamp", "duration", "map", "list", "any"]
LEAF_KINDS = frozenset({"string", "int", "double", "bool", "timestamp", "duration"})


@dataclass(frozen=True, slots=True)
class Field:
    """The declared shape of one value: a leaf, a map (known and/or free keys), a list, or any."""

    kind: Kind
    children: Mapping[str, Field] | None = field(default=None, hash=False)
    element: Field | None = None
    any_key: Field | None = None
    doc: str = ""

    def __post_init__(self) -> None:
        if self.kind != "map" and (self.children is not None or self.any_key is not None):
            raise ValueError(f"only a map has children or any_key, not a {self.kind}")
        if self.kind != "list" and self.element is not None:
            raise ValueError(f"only a list has an element, not a {self.kind}")
        if self.children is not None:
            object.__setattr__(self, "children", MappingProxyType(dict(self.children)))

    @classmethod
    def string(cls, doc: str = "") -> Field:
        """A string leaf."""
        return cls("string", doc=doc)

    @classmethod
    def int_(cls, doc: str = "") -> Field:
        """An int leaf."""
        return cls("int", doc=doc)

    @classmethod
    def double(cls, doc: str = "") -> Field:
        """A double leaf."""
        return cls("double", doc=doc)

    @classmethod
    def bool_(cls, doc: str = "") -> Field:
        """A bool leaf."""
        return cls("bool", doc=doc)

    @classmethod
    def timestamp(cls, doc: str = "") -> Field:
        """A timestamp leaf (a Python datetime in the context)."""
        return cls("timestamp", doc=doc)

    @classmethod
    def duration(cls, doc: str = "") -> Field:
        """A duration leaf (a Python timedelta in the context)."""
        return cls("duration", doc=doc)

    @classmethod
    def any_(cls, doc: str = "") -> Field:
        """A value of unknown shape: anything may be selected from it."""
        return cls("any", doc=doc)

    @classmethod
    def map_(cls, **children: Field) -> Field:
        """A map with exactly these known keys."""
        return cls("map", children=children)

    @classmethod
    def free(cls, value: Field | None = None) -> Field:
        """A map whose keys are free (flags, event properties); every value has this schema."""
        return cls("map", any_key=value if value is not None else cls("any"))

    @classmethod
    def list_(cls, element: Field) -> Field:
        """A list whose elements have this schema."""
        return cls("list", element=element)

    def described(self, doc: str) -> Field:
        """This field with a doc string attached."""
        return replace(self, doc=doc)


#: The root variables a condition may name.
Scope = Mapping[str, Field]

_ANY = Field("any")
_STRING = Field("string")
ELEMENT = "[]"  # path segment standing for "an element of this list / a key of this map"
MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_WORD_LIST = (
    "true false null in as break const continue else for function if import let loop namespace "
    "package return var void while"
)
_TYPE_LIST = "bool bytes double duration dyn int list map null_type string timestamp type uint"
_WORDS = frozenset(_WORD_LIST.split())  # literals and reserved words: never variables
_TYPE_NAMES = frozenset(_TYPE_LIST.split())
_EXPR_END = frozenset({")", "]", "}"})

# -- tokenizer -------------------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"""
    (?P<space>[ \t\n\r\f]+|//[^\n]*)
  | (?P<raw>(?:[rR][bB]?|[bB][rR])(?:'''[\s\S]*?'''|\"\"\"[\s\S]*?\"\"\"|'[^'\r\n]*'|"[^"\r\n]*"))
  | (?P<str>[bB]?(?:'''(?:\\[\s\S]|[^\\])*?'''|\"\"\"(?:\\[\s\S]|[^\\])*?\"\"\"
                   |'(?:\\.|[^\\'\r\n])*'|"(?:\\.|[^\\"\r\n])*"))
  | (?P<number>\d+\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\.\d+(?:[eE][+-]?\d+)?
               |0[xX][0-9a-fA-F]+[uU]?|\d+[uU]?)
  | (?P<ident>[_a-zA-Z][_a-zA-Z0-9]*)
  | (?P<punct>==|!=|<=|>=|&&|\|\||\.\?|[-+*/%!<>?:,.\[\]{}()])
    """,
    re.VERBOSE,
)

TokenKind = Literal["ident", "string", "bytes", "number", "punct"]
_PLAIN_KINDS: dict[str, TokenKind] = {"number": "number", "ident": "ident", "punct": "punct"}


@dataclass(frozen=True, slots=True)
class Token:
    """One CEL token: its kind, its exact source text and its offset."""

    kind: TokenKind
    text: str
    pos: int


class TokenizeError(ValueError):
    """The source has a character no CEL token starts with."""


def line_col(source: str, pos: int) -> str:
    """A 1-based ``line:col`` for an offset, as CEL reports positions."""
    line = source.count("\n", 0, pos) + 1
    col = pos - source.rfind("\n", 0, pos)
    return f"{line}:{col}"


def tokenize(source: str) -> list[Token]:
    """Split CEL source into tokens, dropping whitespace and comments."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(source):
        m = _TOKEN_RE.match(source, pos)
        if m is None:
            raise TokenizeError(f"unexpected {source[pos]!r} at {line_col(source, pos)}")
        group, text = m.lastgroup, m.group()
        if group in ("raw", "str"):
            is_bytes = text[0] in "bB" or text[:2] in ("rb", "rB", "Rb", "RB")
            tokens.append(Token("bytes" if is_bytes else "string", text, pos))
        elif group is not None and group in _PLAIN_KINDS:
            tokens.append(Token(_PLAIN_KINDS[group], text, pos))
        pos = m.end()
    return tokens


def string_value(token: Token) -> str | None:
    """The value of a string literal token (decoded by CEL itself), or None."""
    if token.kind != "string":
        return None
    try:
        value = cel.compile(token.text).execute({})
    except Exception:
        return None
    return value if isinstance(value, str) else None


# -- paths -----------------------------------------------------------------------------------

_IDENT_RE = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*\Z")


def format_path(segments: tuple[str, ...]) -> str:
    """``("event", "properties", "plan-name")`` -> ``event.properties["plan-name"]``."""
    out = ""
    for seg in segments:
        if seg == ELEMENT:
            out += "[]"
        elif _IDENT_RE.match(seg):
            out += f".{seg}" if out else seg
        else:
            out += f"[{json.dumps(seg)}]"
    return out


@dataclass(frozen=True, slots=True)
class PathReport:
    """What a condition names: resolved paths (as segments) and the problems found."""

    paths: tuple[tuple[str, ...], ...]
    problems: tuple[str, ...]


@dataclass(slots=True)
class _Binding:
    """A macro variable, bound for tokens ``start <= i < end`` to ``schema``."""

    name: str
    start: int
    end: int
    schema: Field
    origin: tuple[str, ...]


def _match_brackets(tokens: list[Token]) -> dict[int, int]:
    """Map each opening bracket's index to its closing one (unclosed: to the end)."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack: list[int] = []
    out: dict[int, int] = {}
    for i, tok in enumerate(tokens):
        if tok.kind != "punct":
            continue
        if tok.text in pairs:
            stack.append(i)
        elif tok.text in pairs.values() and stack and pairs[tokens[stack[-1]].text] == tok.text:
            out[stack.pop()] = i
    for i in stack:
        out[i] = len(tokens)
    return out


def _kind_name(schema: Field) -> str:
    """``a list``, ``a double``, ``an int``: for messages."""
    return f"an {schema.kind}" if schema.kind[0] in "aeiou" else f"a {schema.kind}"


class _Walker:
    """One left-to-right pass over the tokens, resolving every select chain."""

    def __init__(self, tokens: list[Token], scope: Scope) -> None:
        self.toks = tokens
        self.scope = scope
        self.close = _match_brackets(tokens)
        self.bindings: dict[int, _Binding] = {}  # keyed by the macro's "(" index
        self.skip: set[int] = set()
        self.paths: list[tuple[str, ...]] = []
        self.problems: list[str] = []
        self._declare_macro_vars()

    def _is(self, i: int, text: str) -> bool:
        return (
            0 <= i < len(self.toks) and self.toks[i].kind == "punct" and self.toks[i].text == text
        )

    def _ident(self, i: int) -> str | None:
        return self.toks[i].text if i < len(self.toks) and self.toks[i].kind == "ident" else None

    def _declare_macro_vars(self) -> None:
        """Bind every ``.macro(v, ...)`` variable, untyped until its range is resolved."""
        for i in range(len(self.toks) - 4):
            if (
                self._is(i, ".")
                and self._ident(i + 1) in MACROS
                and self._is(i + 2, "(")
                and (var := self._ident(i + 3)) is not None
                and self._is(i + 4, ",")
            ):
                end = self.close[i + 2]
                self.bindings[i + 2] = _Binding(var, i + 5, end, _ANY, (var,))
                self.skip.add(i + 3)

    def _bound(self, name: str, i: int) -> _Binding | None:
        found = [b for b in self.bindings.values() if b.name == name and b.start <= i < b.end]
        return max(found, key=lambda b: b.start, default=None)

    def _is_selected(self, i: int) -> bool:
        """Whether token ``i`` follows a ``.`` that selects from an expression."""
        if not self._is(i - 1, "."):
            return False
        if i >= 2:
            prev = self.toks[i - 2]
            if prev.kind != "punct" or prev.text in _EXPR_END:
                return True
        self.problems.append(f"leading '.' before '{self.toks[i].text}' is not supported")
        return False

    def run(self) -> PathReport:
        for i, tok in enumerate(self.toks):
            if tok.kind == "ident" and i not in self.skip and not self._is_selected(i):
                self._chain(i)
        problems = tuple(dict.fromkeys(self.problems))
        return PathReport(tuple(dict.fromkeys(self.paths)), problems)

    def _chain(self, i: int) -> None:
        name = self.toks[i].text
        if self._is(i + 1, "(") or name in _WORDS:
            return  # a function call or a literal word
        if self._is(i + 1, "{"):
            self.problems.append(f"message construction '{name}{{...}}' is not supported")
            self.skip.update(range(i, self.close[i + 1]))
            return
        binding = self._bound(name, i)
        if binding is not None:
            schema, resolved = binding.schema, binding.origin
        elif name in self.scope:
            schema, resolved = self.scope[name], (name,)
        elif name in _TYPE_NAMES:
            return
        else:
            bound = (b.name for b in self.bindings.values() if b.start <= i < b.end)
            known = ", ".join(sorted({*self.scope, *bound}))
            self.problems.append(f"unknown variable '{name}' (expected one of: {known})")
            return
        self._extend(i + 1, name, schema, resolved, named=binding is None)

    def _extend(
        self, j: int, typed: str, schema: Field, resolved: tuple[str, ...], named: bool
    ) -> None:
        """Follow selections from token ``j``; record the resolved path, or note a problem."""
        while True:
            if self._is(j, ".") and (seg := self._ident(j + 1)) is not None:
                if self._is(j + 2, "("):
                    binding = self.bindings.get(j + 2)
                    if binding is None or seg not in MACROS:
                        break  # a method call ends the chain
                    elem = self._element(schema, typed)
                    binding.schema, binding.origin = elem, (*resolved, ELEMENT)
                    if seg != "filter":
                        break
                    typed, schema = f"{typed}.filter(...)", Field.list_(elem)
                    j = self.close[j + 2] + 1
                    continue
                step = self._select(schema, seg, typed, f"{typed}.{seg}", resolved)
                typed, j = f"{typed}.{seg}", j + 2
            elif self._is(j, "["):
                end = self.close[j]
                seg = string_value(self.toks[j + 1]) if end == j + 2 else None
                if seg is not None:
                    child = f"{typed}[{self.toks[j + 1].text}]"
                    step = self._select(schema, seg, typed, child, resolved)
                    typed = child
                else:
                    seg, step = ELEMENT, self._index(schema, typed)
                    typed = f"{typed}[...]"
                j = end + 1
            else:
                break
            if step is None:
                return
            schema, resolved, named = step, (*resolved, seg), True
        if named:
            self.paths.append(resolved)

    def _select(
        self, schema: Field, key: str, parent: str, child: str, resolved: tuple[str, ...]
    ) -> Field | None:
        """Select ``key`` from ``schema`` (``parent`` -> ``child`` as typed): its schema or None."""
        if schema.kind == "any":
            return _ANY
        if schema.kind == "map":
            if schema.children is not None and key in schema.children:
                return schema.children[key]
            if schema.any_key is not None:
                return schema.any_key
            if schema.children is None:
                return _ANY
            label = resolved[-1] if resolved[-1] != ELEMENT else format_path(resolved)
            declared = ", ".join(sorted(schema.children)) or "none"
            self.problems.append(f"unknown field '{child}' (declared {label}: {declared})")
            return None
        hint = "; iterate with exists/all/map/filter" if schema.kind == "list" else ""
        self.problems.append(f"cannot select '{key}' from '{parent}' ({_kind_name(schema)}{hint})")
        return None

    def _index(self, schema: Field, typed: str) -> Field | None:
        """Index ``schema`` with a computed key: the value's schema, or None."""
        if schema.kind == "list":
            return schema.element or _ANY
        if schema.kind == "map":
            return schema.any_key or _ANY
        if schema.kind == "any":
            return _ANY
        self.problems.append(f"cannot index '{typed}' ({_kind_name(schema)})")
        return None

    def _element(self, schema: Field, typed: str) -> Field:
        """What a macro over ``schema`` binds its variable to: list element or map key."""
        if schema.kind == "list":
            return schema.element or _ANY
        if schema.kind == "map":
            return _STRING
        if schema.kind != "any":
            self.problems.append(f"cannot iterate over '{typed}' ({_kind_name(schema)})")
        return _ANY


_LITERAL_FUNCS = {
    "duration": 'durations use h, m, s, ms, us, ns units, e.g. "336h" for 14 days',
    "timestamp": 'timestamps are RFC 3339, e.g. "2024-01-31T00:00:00Z"',
}


def _literal_problems(tokens: list[Token]) -> list[str]:
    """Check ``duration("...")`` / ``timestamp("...")`` literals now rather than at run time."""
    problems = []
    for i in range(len(tokens) - 3):
        name, lit = tokens[i], tokens[i + 1 : i + 4]
        if name.kind != "ident" or name.text not in _LITERAL_FUNCS:
            continue
        if i > 0 and tokens[i - 1].text == ".":
            continue
        if [t.text for t in lit[::2]] != ["(", ")"] or lit[1].kind != "string":
            continue
        try:
            cel.compile(f"{name.text}({lit[1].text})").execute({})
        except Exception:
            problems.append(f"invalid {name.text} {lit[1].text} (CEL {_LITERAL_FUNCS[name.text]})")
    return problems


def analyze(source: str, scope: Scope) -> PathReport:
    """Resolve every field path ``source`` names against ``scope``."""
    try:
        tokens = tokenize(source)
    except TokenizeError as exc:
        return PathReport((), (f"cannot read condition: {exc}",))
    report = _Walker(tokens, scope).run()
    extra = tuple(p for p in _literal_problems(tokens) if p not in report.problems)
    return PathReport(report.paths, report.problems + extra)


def check_paths(source: str, scope: Scope) -> list[str]:
    """The problems with the field paths (and literal arguments) that ``source`` names."""
    return list(analyze(source, scope).problems)
