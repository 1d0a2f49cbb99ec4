"""The one template environment: sandboxed Jinja2 with hard caps on output, time and memory.

Every value a template builds (string concatenation, operators, filter and call results, captured
blocks) is checked against the output cap and charged to a per-render budget, loops check the
clock on every iteration, and operators or methods that can amplify a value (repetition, power,
padding, printf widths) are refused or bounded before they allocate anything.
"""

from __future__ import annotations

import functools
import math
import re
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import StrictUndefined, Template, nodes, pass_environment, pass_eval_context
from jinja2.exceptions import TemplateError as JinjaTemplateError
from jinja2.exceptions import TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing
from jinja2.visitor import NodeTransformer

from engine.core.collector import collector_paused

if TYPE_CHECKING:
    from jinja2.nodes import EvalContext
    from jinja2.runtime import Context

__all__ = [
    "MAX_OUTPUT_CHARS",
    "MAX_RANGE",
    "MAX_RENDER_SECONDS",
    "CompiledTemplate",
    "TemplateEnvironment",
    "TemplateError",
    "TemplateKind",
    "compile_template",
    "environment",
    "format_date",
    "format_money",
    "render_string",
]

TemplateKind = Literal["text", "html"]

#: Default cap on a render's output, and on any single value a template builds.
MAX_OUTPUT_CHARS = 65_536
#: Default cap on a render's wall time, in seconds.
MAX_RENDER_SECONDS = 0.2
#: Most items ``range()`` may produce.
MAX_RANGE = 10_000
#: A render may build at most this many times ``max_chars`` in intermediate values.
WORK_FACTOR = 256
#: Largest product, in bits, that ``*`` may compute on two integers.
MAX_INT_BITS = 4_096
#: Largest printf width or precision (``%`` operator, ``format`` filter).
MAX_FORMAT_WIDTH = 1_000
#: Largest ``indent`` of the ``tojson`` filter and ``target``/``rel`` of ``urlize``.
MAX_DECORATION = 256

_SEQUENCES = (str, bytes, list, tuple)
_SIZED = (str, bytes, list, tuple, dict, set, frozenset)
#: Methods that pad, repeat or substitute: a one-call memory bomb on a str, bytes or int.
_AMPLIFYING_METHODS = frozenset(
    {"center", "ljust", "rjust", "zfill", "expandtabs", "replace", "join", "translate"}
    | {"format", "format_map", "to_bytes"}
)
_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[#0 +\-]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?")
_LOOP_GUARD = "hourglass:loop"
_SIZE_GUARD = "hourglass:checked"
_CURRENCIES = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹", "CAD": "CA$"}
_CURRENCIES |= {"AUD": "A$", "NZD": "NZ$", "BRL": "R$", "MXN": "MX$", "CNY": "CN¥", "KRW": "₩"}
_ZERO_DECIMAL_CURRENCIES = frozenset({"JPY", "KRW"})

T = TypeVar("T")


class TemplateError(ValueError):
    """A template that cannot compile or render; ``line`` is the template line when known."""

    def __init__(self, reason: str, *, line: int | None = None, name: str | None = None) -> None:
        self.reason = reason
        self.line = line
        self.template_name = name
        where = f"line {line}: " if line is not None else ""
        if where and name:
            where = f"{name}, {where}"
        super().__init__(f"{where}{reason}")


class _RenderState:
    """Limits and running totals of the render in progress."""

    __slots__ = ("budget", "context", "deadline", "max_chars", "max_seconds")

    def __init__(
        self, max_chars: int, max_seconds: float, context: Mapping[str, Any] | None
    ) -> None:
        self.max_chars = max_chars
        self.max_seconds = max_seconds
        # CPU time of this thread, not wall time: a busy machine must not change what renders.
        self.deadline = time.thread_time() + max_seconds
        self.budget = max_chars * WORK_FACTOR
        self.context = context

    def tick(self) -> None:
        """Raise once the render has run out of time."""
        if time.thread_time() > self.deadline:
            raise TemplateError(f"render took longer than {self.max_seconds:g} s")

    def ensure(self, size: int, what: str = "value") -> None:
        """Refuse to build a value of ``size`` characters or items before building it."""
        if size > self.max_chars:
            raise TemplateError(f"{what} would exceed {self.max_chars} characters")

    def charge(self, value: T) -> T:
        """Check a value the template built and charge it to the render's budget."""
        if isinstance(value, _SIZED):
            size = len(value)
            if size > self.max_chars:
                unit = "characters" if isinstance(value, str | bytes) else "items"
                raise TemplateError(f"value exceeds {self.max_chars} {unit}")
            self.budget -= size
            if self.budget < 0:
                limit = self.max_chars * WORK_FACTOR
                raise TemplateError(f"template built more than {limit} characters of values")
        return value


_STATE: ContextVar[_RenderState | None] = ContextVar("hourglass_template_render", default=None)


def _state() -> _RenderState:
    """The render in progress, or default limits with no deadline (compile-time folding)."""
    return _STATE.get() or _RenderState(MAX_OUTPUT_CHARS, math.inf, None)


def _brief(value: Any) -> str:
    """A short repr for error messages."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _path_of(target: object, context: Mapping[str, Any]) -> str | None:
    """Where ``target`` sits in the render context, as ``account.owner`` or ``events[0]``."""
    queue: list[tuple[str, Any]] = list(context.items())
    index = 0
    while index < min(len(queue), 10_000):
        path, value = queue[index]
        index += 1
        if value is target:
            return path
        if isinstance(value, Mapping):
            queue.extend(
                (f"{path}.{k}" if isinstance(k, str) and k.isidentifier() else f"{path}[{k!r}]", v)
                for k, v in value.items()
            )
        elif isinstance(value, list | tuple):
            queue.extend((f"{path}[{i}]", item) for i, item in enumerate(value))
    return None


class _NamedUndefined(StrictUndefined):
    """StrictUndefined whose messages name the variable path rather than the Python type."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        state = _STATE.get()
        if self._undefined_hint or self._undefined_obj is missing or state is None:
            return super()._undefined_message
        if state.context is None or (path := _path_of(self._undefined_obj, state.context)) is None:
            return super()._undefined_message
        kind = "attribute" if isinstance(self._undefined_name, str) else "element"
        return f"{path!r} has no {kind} {self._undefined_name!r}"


class _Ticking:
    """An iterable that checks the render clock before every item (wraps every for loop)."""

    __slots__ = ("_items",)

    def __init__(self, items: Any) -> None:
        self._items = items

    def __iter__(self) -> Iterator[Any]:
        state = _state()
        for item in self._items:
            state.tick()
            yield item

    def __len__(self) -> int:
        return len(self._items)


def _bounded_range(*args: int) -> range:
    """``range()`` refusing more than MAX_RANGE items."""
    items = range(*args)
    if len(items) > MAX_RANGE:
        call = f"range({', '.join(map(repr, args))})"
        raise TemplateError(f"{call} has {len(items)} items; the limit is {MAX_RANGE}")
    return items


def _check_printf(state: _RenderState, fmt: str | bytes) -> None:
    """Refuse printf formats whose widths or precisions could build a huge string."""
    text = fmt.decode("latin-1") if isinstance(fmt, bytes) else fmt
    for spec in _PRINTF_SPEC.finditer(text):
        for number in spec.groups():
            if number == "*":
                raise TemplateError(f"{spec.group()!r}: '*' widths are not allowed")
            if number and int(number) > MAX_FORMAT_WIDTH:
                raise TemplateError(
                    f"{spec.group()!r}: width {int(number)} is over the limit of {MAX_FORMAT_WIDTH}"
                )


def _add(state: _RenderState, left: Any, right: Any) -> Any:
    """``+``, refusing to build an oversized string or list."""
    if isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
        state.ensure(len(left) + len(right))
    return state.charge(left + right)


def _multiply(left: Any, right: Any) -> Any:
    """``*`` on numbers only: sequence repetition is refused, integer products are bounded."""
    for operand in (left, right):
        if isinstance(operand, _SEQUENCES):
            kind = "string" if isinstance(operand, str | bytes) else type(operand).__name__
            raise TemplateError(
                f"{_brief(left)} * {_brief(right)}: {kind} repetition is not allowed"
            )
    both_ints = isinstance(left, int) and isinstance(right, int)
    if both_ints and left.bit_length() + right.bit_length() > MAX_INT_BITS:
        raise TemplateError(f"{_brief(left)} * {_brief(right)}: the result is too large")
    return left * right


def _lookup(env: TemplateEnvironment, item: Any, attribute: str | int) -> Any:
    """Follow a dotted ``attribute`` path the way Jinja's ``attribute=`` arguments do."""
    parts = attribute.split(".") if isinstance(attribute, str) else [attribute]
    for part in parts:
        item = env.getitem(item, int(part) if isinstance(part, str) and part.isdigit() else part)
    return item


# --- prechecks for filters that can amplify their input ---------------------------------


def _pre_center(state: _RenderState, value: Any, width: int = 80) -> None:
    state.ensure(max(len(str(value)), width if isinstance(width, int) else 0))


def _pre_indent(state: _RenderState, s: Any, width: int | str = 4, *_: Any, **__: Any) -> None:
    text = str(s)
    pad = width if isinstance(width, int) else len(str(width))
    state.ensure(len(text) + (text.count("\n") + 1) * max(pad, 0))


def _pre_format(state: _RenderState, value: Any, *_: Any, **__: Any) -> None:
    _check_printf(state, str(value))


def _pre_replace(state: _RenderState, s: Any, old: Any, new: Any, count: Any = None) -> None:
    text, old_text, new_text = str(s), str(old), str(new)
    hits = text.count(old_text) if old_text else len(text) + 1
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    state.ensure(len(text) + hits * max(len(new_text) - len(old_text), 0))


def _pre_batch(state: _RenderState, value: Any, linecount: int, fill_with: Any = None) -> None:
    if fill_with is not None and isinstance(linecount, int) and linecount > MAX_RANGE:
        raise TemplateError(f"batch({linecount}) with a fill value is over {MAX_RANGE} items")


def _pre_slice(state: _RenderState, value: Any, slices: int, fill_with: Any = None) -> None:
    if isinstance(slices, int) and slices > MAX_RANGE:
        raise TemplateError(f"slice({slices}) is over the limit of {MAX_RANGE} slices")


def _pre_wordwrap(
    state: _RenderState,
    s: Any,
    width: int = 79,
    break_long_words: bool = True,
    *args: Any,
    **kwargs: Any,
) -> None:
    wrapstring = kwargs.get("wrapstring", args[0] if args else None)
    if wrapstring is not None:
        text = str(s)
        lines = 2 * len(text) // max(width if isinstance(width, int) else 1, 1) + 1
        state.ensure(len(text) + (lines + text.count("\n")) * len(str(wrapstring)))


def _pre_urlize(state: _RenderState, value: Any, *args: Any, **kwargs: Any) -> None:
    for option in (kwargs.get("target"), kwargs.get("rel"), *args[2:4]):
        if isinstance(option, str) and len(option) > MAX_DECORATION:
            raise TemplateError(f"urlize: target/rel longer than {MAX_DECORATION} characters")


def _pre_tojson(state: _RenderState, value: Any, indent: Any = None) -> None:
    size = len(indent) if isinstance(indent, str) else indent if isinstance(indent, int) else 0
    if size > 16:
        raise TemplateError("tojson: indent is over the limit of 16")


_PRECHECKS: dict[str, Callable[..., None]] = {
    "center": _pre_center,
    "indent": _pre_indent,
    "format": _pre_format,
    "replace": _pre_replace,
    "batch": _pre_batch,
    "slice": _pre_slice,
    "wordwrap": _pre_wordwrap,
    "urlize": _pre_urlize,
    "tojson": _pre_tojson,
}


def _guarded(func: Callable[..., Any], precheck: Callable[..., None] | None) -> Callable[..., Any]:
    """Wrap a filter: check the clock, precheck its arguments, charge its result."""
    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        state = _state()
        state.tick()
        if precheck is not None:
            precheck(state, *args[skip:], **kwargs)
        return state.charge(func(*args, **kwargs))

    return guarded


def _make_join(original: Callable[..., str]) -> Callable[..., str]:
    """A ``join`` filter that stops as soon as the joined length would pass the cap."""

    @pass_eval_context
    def join(
        eval_ctx: EvalContext, value: Iterable[Any], d: str = "", attribute: Any = None
    ) -> str:
        state, env = _state(), cast(TemplateEnvironment, eval_ctx.environment)
        parts: list[Any] = []
        total = 0
        for item in value:
            part = item if attribute is None else _lookup(env, item, attribute)
            total += len(str(part)) + (len(str(d)) if parts else 0)
            state.ensure(total, "join result")
            parts.append(part)
        return original(eval_ctx, parts, d)

    return join


@pass_environment
def _sum(
    env: TemplateEnvironment, iterable: Iterable[Any], attribute: Any = None, start: Any = 0
) -> Any:
    """A ``sum`` filter whose additions go through the guarded ``+``."""
    state, total = _state(), start
    for item in iterable:
        total = _add(state, total, item if attribute is None else _lookup(env, item, attribute))
    return total


# --- custom filters -----------------------------------------------------------------------


def _as_datetime(value: Any) -> tuple[datetime, bool]:
    """An aware datetime from an ISO string, epoch seconds, date or datetime; True if date-only."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)), False
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC), True
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, tz=UTC), False
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"date: epoch seconds out of range: {value!r}") from None
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"date: not an ISO date or datetime: {_brief(value)}") from None
        date_only = len(text) <= 10
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)), date_only
    raise ValueError(
        f"date: expected an ISO string, epoch seconds or datetime, got {_brief(value)}"
    )


def format_date(value: Any, fmt: str = "%Y-%m-%d", tz: str | None = None) -> str:
    """Format an ISO string, epoch seconds or datetime with strftime (``date`` filter)."""
    moment, date_only = _as_datetime(value)
    if tz is not None and not date_only:
        try:
            moment = moment.astimezone(ZoneInfo(tz))
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"date: unknown time zone {tz!r}") from None
    return moment.strftime(str(fmt))


def format_money(value: Any, currency: str = "USD") -> str:
    """Format an amount as money: ``1234.5`` gives ``$1,234.50`` (``money`` filter)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise ValueError(f"money: expected a number, got {_brief(value)}")
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Za-z]{3}", currency):
        raise ValueError(f"money: expected a currency code like 'USD', got {_brief(currency)}")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"money: not a number: {_brief(value)}") from None
    if not amount.is_finite():
        raise ValueError(f"money: not a finite number: {_brief(value)}")
    code = currency.upper()
    places = 0 if code in _ZERO_DECIMAL_CURRENCIES else 2
    with localcontext() as ctx:
        ctx.prec = max(28, amount.adjusted() + places + 2)
        rounded = amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    symbol = _CURRENCIES.get(code, f"{code} ")
    sign = "-" if rounded < 0 else ""
    return f"{sign}{symbol}{abs(rounded):,.{places}f}"


# --- the environment ----------------------------------------------------------------------


class _Hardener(NodeTransformer):
    """Rewrites a parsed template: every loop ticks the clock, every ``~`` is size-checked."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, _LOOP_GUARD, [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Filter(node, _SIZE_GUARD, [], [], None, None, lineno=node.lineno)


class TemplateEnvironment(ImmutableSandboxedEnvironment):
    """Immutable sandbox with StrictUndefined, bounded operators, filters, loops and methods."""

    intercepted_binops = frozenset({"*", "**", "//", "%", "+"})

    def __init__(self, *, autoescape: bool) -> None:
        super().__init__(autoescape=autoescape, undefined=_NamedUndefined, auto_reload=False)
        self.globals["range"] = _bounded_range
        self.globals.pop("lipsum", None)
        self.filters["join"] = _make_join(self.filters["join"])
        self.filters["sum"] = _sum
        self.filters["date"] = format_date
        self.filters["money"] = format_money
        for name, func in list(self.filters.items()):
            self.filters[name] = _guarded(func, _PRECHECKS.get(name))
        self.filters[_LOOP_GUARD] = _Ticking
        self.filters[_SIZE_GUARD] = lambda value: _state().charge(value)

    def harden(self, tree: nodes.Template) -> nodes.Template:
        """Apply the loop and concatenation guards to a parsed template."""
        hardened = cast(nodes.Template, _Hardener().visit(tree))
        hardened.set_environment(self)
        return hardened

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        state = _state()
        state.tick()
        if operator == "**":
            raise TemplateError(f"{_brief(left)} ** {_brief(right)}: power is not allowed")
        if operator == "*":
            return state.charge(_multiply(left, right))
        if operator == "+":
            return _add(state, left, right)
        if operator == "%" and isinstance(left, str | bytes):
            _check_printf(state, left)
        return state.charge(super().call_binop(context, operator, left, right))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        state = _state()
        state.tick()
        return state.charge(super().call(context, obj, *args, **kwargs))

    def concat(self, parts: Iterable[str]) -> str:
        """Join a captured block (macro, ``set`` block, ``filter`` block), size-checked first."""
        chunks = list(parts)
        state = _state()
        state.ensure(sum(map(len, chunks)), "block")
        return state.charge("".join(chunks))

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, str | bytes | int) and attr in _AMPLIFYING_METHODS:
            return False
        return super().is_safe_attribute(obj, attr, value)

    def wrap_str_format(self, value: Any) -> None:
        """``str.format`` is refused outright (widths are a memory bomb); use ``format``."""
        return None


@functools.cache
def _environment(kind: TemplateKind) -> TemplateEnvironment:
    return TemplateEnvironment(autoescape=kind == "html")


def environment(kind: TemplateKind = "text") -> TemplateEnvironment:
    """The shared environment for text (no autoescape) or HTML (autoescape) templates."""
    if kind not in ("text", "html"):
        raise ValueError(f"template kind must be 'text' or 'html', not {kind!r}")
    return _environment(kind)


def _template_line(tb: TracebackType | None, name: str) -> int | None:
    """The innermost template line in a (Jinja-rewritten) traceback."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == name:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


@dataclass(frozen=True, eq=False, slots=True)
class CompiledTemplate:
    """A compiled, reusable template; ``render`` enforces the output and time caps."""

    name: str
    kind: TemplateKind
    source: str = field(repr=False)
    template: Template = field(repr=False)
    #: Text and ``{{ a.b }}`` paths, when that is all a text template is (see ``_substitute``).
    parts: tuple[str | tuple[str, ...], ...] | None = field(default=None, repr=False)

    def render(
        self,
        context: Mapping[str, Any],
        *,
        max_chars: int = MAX_OUTPUT_CHARS,
        max_seconds: float = MAX_RENDER_SECONDS,
    ) -> str:
        """Render with plain data; raise TemplateError on errors or when a cap is passed."""
        if self.parts is not None:
            text = _substitute(self.parts, context, max_chars)
            if text is not None:
                return text
        # The garbage collector runs in this thread and may take its time over a large heap:
        # it is paused while rendering, so the time cap measures the template alone.
        with collector_paused():
            state = _RenderState(max_chars, max_seconds, context)
            token = _STATE.set(state)
            stream = cast(Generator[str, None, None], self.template.generate(context))
            chunks: list[str] = []
            size = 0
            try:
                for chunk in stream:
                    size += len(chunk)
                    if size > max_chars:
                        raise TemplateError(
                            f"output exceeds {max_chars} characters", name=self.name
                        )
                    chunks.append(chunk)
                    state.tick()
            except Exception as exc:
                raise self._error(exc) from exc
            finally:
                stream.close()
                _STATE.reset(token)
        return "".join(chunks)

    def _error(self, exc: Exception) -> TemplateError:
        """A TemplateError with the template line, from anything a render raised."""
        line = _template_line(exc.__traceback__, self.name)
        if isinstance(exc, TemplateError):
            reason = exc.reason
        elif isinstance(exc, JinjaTemplateError | ValueError):
            reason = str(exc) or type(exc).__name__
        else:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return TemplateError(reason, line=line, name=self.name)


_PLAIN_PATH = re.compile(r"\{\{\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*\}\}", re.ASCII)
_MARKUP = ("{{", "{%", "{#", "}}", "%}", "#}")


def _plain_parts(source: str) -> tuple[str | tuple[str, ...], ...] | None:
    """The template as text and ``{{ a.b.c }}`` paths, or None when it holds anything else
    (filters, tags, comments) or text Jinja rewrites (line endings, a trailing newline)."""
    if "\r" in source or source.endswith("\n"):
        return None
    parts: list[str | tuple[str, ...]] = []
    start = 0
    for match in _PLAIN_PATH.finditer(source):
        parts += [source[start : match.start()], tuple(match.group(1).split("."))]
        start = match.end()
    parts.append(source[start:])
    texts = [part for part in parts if isinstance(part, str)]
    if any(mark in text for text in texts for mark in _MARKUP):
        return None
    return tuple(part for part in parts if part != "")


def _substitute(
    parts: tuple[str | tuple[str, ...], ...], context: Mapping[str, Any], max_chars: int
) -> str | None:
    """Render a plain template without Jinja: each path read from dicts by key, each value a
    string, number, bool or None (written as Jinja writes it). None whenever Jinja could say
    otherwise (a missing value, an attribute, another type, too long): Jinja then renders."""
    out: list[str] = []
    size = 0
    for part in parts:
        if isinstance(part, str):
            out.append(part)
            size += len(part)
            continue
        value: Any = context
        for name in part:
            if not isinstance(value, dict) or hasattr(type(value), name) or name not in value:
                return None
            value = value[name]
        if type(value) not in _PLAIN_VALUES:
            return None
        text = str(value)
        out.append(text)
        size += len(text)
    return "".join(out) if size <= max_chars else None


_PLAIN_VALUES = frozenset({str, int, float, bool, type(None)})


@functools.lru_cache(maxsize=512)
def _compile(source: str, kind: TemplateKind, name: str) -> CompiledTemplate:
    env = environment(kind)
    try:
        tree = env.harden(env.parse(source, name=name, filename=name))
        code = env.compile(tree, name=name, filename=name)
    except TemplateSyntaxError as exc:
        reason = f"syntax error: {exc.message or exc}"
        raise TemplateError(reason, line=exc.lineno, name=name) from exc
    except RecursionError as exc:
        raise TemplateError("template is nested too deeply", name=name) from exc
    template = env.template_class.from_code(env, code, env.make_globals(None))
    parts = _plain_parts(source) if kind == "text" else None
    return CompiledTemplate(name=name, kind=kind, source=source, template=template, parts=parts)


def compile_template(
    source: str, *, kind: TemplateKind = "text", name: str = "<inline>"
) -> CompiledTemplate:
    """Compile a template once (cached); syntax errors raise TemplateError with ``.line``."""
    if not isinstance(source, str):
        raise TypeError(f"template source must be a str, not {type(source).__name__}")
    environment(kind)
    return _compile(source, kind, name)


def render_string(
    source: str,
    context: Mapping[str, Any],
    kind: TemplateKind = "text",
    *,
    max_chars: int = MAX_OUTPUT_CHARS,
    max_seconds: float = MAX_RENDER_SECONDS,
) -> str:
    """Compile (cached) and render in one go."""
    template = compile_template(source, kind=kind)
    return template.render(context, max_chars=max_chars, max_seconds=max_seconds)
