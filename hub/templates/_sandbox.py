"""The sandbox admin-written Jinja runs in: Jinja's immutable sandbox, narrowed further (no attribute
that reaches Python internals, only methods whose output stays bounded), with every loop, call and
buffered output counted against the render budget."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range

from hub.templates._budget import MAX_OUTPUT_CHARS, LimitExceeded, check_argument, check_size, sized_text, tick
from hub.templates._context import Record
from hub.templates._filters import join_filter, replace_filter, template_filters

__all__ = ["ENV", "FILTERS", "Guard", "NamedUndefined", "unsafe_attribute"]

_MAX_INT_BITS = 10_000

# Attributes that reach Python internals or run format strings; anything starting with "_" too.
_UNSAFE_ATTRIBUTES = frozenset(
    {
        "mro",
        "format",
        "format_map",
        "globals",
        "subclasses",
        "builtins",
        "import_module",
        "modules",
        "gi_frame",
        "gi_code",
        "cr_frame",
        "cr_code",
        "ag_frame",
        "ag_code",
        "f_globals",
        "f_locals",
        "f_builtins",
        "f_back",
        "f_code",
        "func_globals",
        "func_code",
        "im_func",
        "im_self",
        "im_class",
        "tb_frame",
        "tb_next",
        "co_code",
        "environment",
        "eval_ctx",
        "exported_vars",
        "system",
        "popen",
    }
)

# Methods of str, list and dict a template may call: their output is bounded by the
# input and by integer arguments (which the sandbox caps). No format, expandtabs, encode.
_SAFE_METHODS = frozenset(
    {
        "capitalize", "casefold", "center", "count", "endswith", "find", "get", "index", "isalnum",
        "isalpha", "isdecimal", "isdigit", "islower", "isnumeric", "isspace", "istitle", "isupper",
        "items", "join", "keys", "ljust", "lower", "lstrip", "partition", "removeprefix", "removesuffix",
        "replace", "rfind", "rjust", "rpartition", "rsplit", "rstrip", "split", "splitlines", "startswith",
        "strip", "swapcase", "title", "upper", "values", "zfill",
    }
)  # fmt: skip


def unsafe_attribute(name: str) -> bool:
    """Private names and those of ``_UNSAFE_ATTRIBUTES``: refused as attributes and as items."""
    return name.startswith("_") or name in _UNSAFE_ATTRIBUTES


class NamedUndefined(StrictUndefined):
    """StrictUndefined that names the missing thing (``order`` or ``contact.company``)."""

    __slots__ = ()

    @property
    def missing_name(self) -> str:
        obj = self._undefined_obj
        name = str(self._undefined_name)
        if isinstance(obj, Record):
            return f"{obj.path}.{name}"
        return name


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, narrowed further and with every loop/call/output counted."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if unsafe_attribute(attr):
            return False
        if callable(value) and isinstance(obj, (str, list, tuple, dict)):
            # methods of plain values: only those whose output cannot explode (see _SAFE_METHODS)
            return attr in _SAFE_METHODS and bool(super().is_safe_attribute(obj, attr, value))
        return bool(super().is_safe_attribute(obj, attr, value))

    def getattr(self, obj: Any, attribute: str) -> Any:
        # context objects are records of fields, not Python objects: no dict methods
        if type(obj) is Record:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        tick()
        if __obj is not safe_range and isinstance(getattr(__obj, "__self__", None), (str, list, tuple, dict)):
            for arg in (*args, *kwargs.values()):
                check_argument(arg)
            method = getattr(__obj, "__name__", "")
            if method == "replace" and isinstance(__obj.__self__, str) and len(args) >= 2:
                return replace_filter(__obj.__self__, args[0], args[1], args[2] if len(args) > 2 else None)
            if method == "join" and isinstance(__obj.__self__, str) and len(args) == 1 and not kwargs:
                return join_filter(args[0], __obj.__self__)
        result = ImmutableSandboxedEnvironment.call(__self, __context, __obj, *args, **kwargs)
        check_size(result)
        return result

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "%" and isinstance(left, str):
            raise SecurityError("string formatting with % is not allowed in templates")
        both_ints = isinstance(left, int) and isinstance(right, int)
        if operator == "**" and both_ints and abs(left) > 1 and right * abs(left).bit_length() > _MAX_INT_BITS:
            raise LimitExceeded("too_long", "the power is too large")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > MAX_OUTPUT_CHARS:
                    raise LimitExceeded("too_long", f"repetition would exceed {MAX_OUTPUT_CHARS} characters")
            if both_ints and left.bit_length() + right.bit_length() > _MAX_INT_BITS:
                raise LimitExceeded("too_long", "the product is too large")
        sequences = isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple))
        if operator == "+" and sequences and len(left) + len(right) > MAX_OUTPUT_CHARS:
            raise LimitExceeded("too_long", f"concatenation would exceed {MAX_OUTPUT_CHARS} characters")
        return super().call_binop(context, operator, left, right)


# Reached from the rewritten AST as filters (a direct call; users cannot name a filter
# starting with "_"): every loop item, every buffered output and every ``~`` result.
def _guard_iter(iterable: Any) -> Iterator[Any]:
    for item in iterable:
        tick()
        yield item


def _guard_emit(value: Any) -> Any:
    budget = tick()
    budget.buffered += len(sized_text(value))
    if budget.buffered > MAX_OUTPUT_CHARS:
        raise LimitExceeded("too_long", f"the output grew past {MAX_OUTPUT_CHARS} characters")
    return value


def _guard_concat(operands: tuple[Any, ...]) -> str:
    """``a ~ b ~ c``: the running length is checked before each operand is added, so a chain of thousands
    of long operands stops at the first one past the limit instead of after joining them all."""
    parts: list[str] = []
    size = 0
    for operand in operands:
        text = sized_text(operand)
        size += len(text)
        if size > MAX_OUTPUT_CHARS:
            raise LimitExceeded("too_long", f"concatenation would exceed {MAX_OUTPUT_CHARS} characters")
        parts.append(text)
    return "".join(parts)


def _finalize(value: Any) -> Any:
    """What every ``{{ ... }}`` prints, sized before it is turned into text."""
    return sized_text(value)


class Guard:
    """Rewrites the parsed template so loops, buffered output and ``~`` pass through guards."""

    _BUFFERING = (nodes.For, nodes.Macro, nodes.CallBlock, nodes.FilterBlock, nodes.AssignBlock)

    def visit_node(self, node: nodes.Node, *, buffered: bool) -> None:
        if isinstance(node, nodes.For):
            node.iter = self._call("guard_iter", node.iter)
        if isinstance(node, nodes.Output) and buffered:
            node.nodes = [self._call("guard_emit", child) for child in node.nodes]
        inner = buffered or isinstance(node, self._BUFFERING)
        for name in node.fields:
            value = getattr(node, name, None)
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, nodes.Concat):
                        value[i] = self._concat(item)
                    if isinstance(item, nodes.Node):
                        self.visit_node(item, buffered=inner)
            elif isinstance(value, nodes.Node):
                if isinstance(value, nodes.Concat):
                    setattr(node, name, self._concat(value))
                self.visit_node(value, buffered=inner)

    @staticmethod
    def _call(guard: str, arg: nodes.Node) -> nodes.Filter:
        return nodes.Filter(arg, f"_{guard}", [], [], None, None, lineno=arg.lineno)

    @classmethod
    def _concat(cls, concat: nodes.Concat) -> nodes.Filter:
        # the operands as a tuple (references, no text yet), joined by _guard_concat
        return cls._call("guard_concat", nodes.Tuple(concat.nodes, "load", lineno=concat.lineno))


def _build_environment() -> _Sandbox:
    env = _Sandbox(
        undefined=NamedUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        cache_size=0,
        finalize=_finalize,
    )
    env.globals.clear()
    env.globals["range"] = safe_range
    env.filters.clear()
    env.filters.update(template_filters())
    env.filters["_guard_iter"] = _guard_iter
    env.filters["_guard_emit"] = _guard_emit
    env.filters["_guard_concat"] = _guard_concat
    return env


ENV = _build_environment()
FILTERS: frozenset[str] = frozenset(name for name in ENV.filters if not name.startswith("_"))
