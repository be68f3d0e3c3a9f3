"""The AST of template programs: frozen, slotted, structurally compared nodes.

Value kinds (see cxrvqa/kinds.py), all computed over ONE image:

    Findings                    a set of positive (object, attribute, category) findings
    Objects / Attributes / Categories / ViewPoses / Genders   sets of names
    Object / Attribute / Category / ViewPos / Gender          single names
    Bool, Number

Semantics are closed-world and order-free: an image's findings are exactly
its positive findings, anything not listed is absent, and every set is a
frozenset whose order never shows (answers are sorted when rendered).

Nodes never evaluate and never type-check: the checker needs the whole
program (parameters, lets, the prelude) to do that and reports every problem
with a span. Spans and the source text are excluded from equality and
hashing, so ``parse(str(ast)) == ast`` holds. ``str(node)`` is canonical
source text (cxrvqa/printer.py); ``repr(node)`` is the dataclass repr.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Union, get_args

from cxrvqa.lang.source import Source, Span

if TYPE_CHECKING:
    from cxrvqa.facts import ImageFacts

__all__ = [
    "BINARY_OPERATORS",
    "FUNCTIONS",
    "Apply",
    "Binary",
    "Call",
    "Condition",
    "Const",
    "Def",
    "DefParam",
    "Definition",
    "Expr",
    "Fact",
    "Filter",
    "Let",
    "Name",
    "Node",
    "Not",
    "Number",
    "Param",
    "ParamRef",
    "Prelude",
    "Program",
    "SetOf",
    "Template",
    "Term",
    "TermSet",
]

ParamKind = Literal["object", "attribute", "category", "viewpos", "gender"]
Field = Literal["object", "attribute", "category"]
FactName = Literal["findings", "viewpos", "gender"]
PluralKind = Literal["objects", "attributes", "categories"]
ResultKind = Literal["bool", "list", "number"]
ConditionOp = Literal["=", "in"]
BinaryOp = Literal["or", "and", "=", "!=", "<", "<=", ">", ">=", "in", "|", "&", "+", "-", "*", "/"]
Function = Literal["objects", "attributes", "categories", "exists", "empty", "count", "x1", "x2",
                   "width"]

BINARY_OPERATORS: tuple[str, ...] = get_args(BinaryOp)
FUNCTIONS: tuple[str, ...] = get_args(Function)


def _require(value: str, allowed: object, what: str) -> None:
    if value not in get_args(allowed):
        raise ValueError(f"{what} must be one of {get_args(allowed)}, got {value!r}")


@dataclass(frozen=True, slots=True)
class Node:
    """Base of every node: an optional span that equality ignores."""

    span: Span | None = field(default=None, kw_only=True, compare=False, repr=False)

    def __str__(self) -> str:
        # printer imports this module; importing it at call time keeps the layering one-way.
        from cxrvqa.lang.printer import format_node

        return format_node(self)


# --- leaves: facts of the image, literals, references ---

@dataclass(frozen=True, slots=True)
class Fact(Node):
    """``findings``, ``viewpos`` or ``gender`` of the current image."""

    name: FactName

    def __post_init__(self) -> None:
        _require(self.name, FactName, "fact")


@dataclass(frozen=True, slots=True)
class Number(Node):
    """A non-negative number literal: an integer (``3``) or a decimal (``0.5``, a float)."""

    value: int | float

    def __post_init__(self) -> None:
        if self.value < 0:
            raise ValueError("number literals are non-negative")


@dataclass(frozen=True, slots=True)
class ParamRef(Node):
    """``$name``: the value bound to a declared parameter."""

    name: str


@dataclass(frozen=True, slots=True)
class Name(Node):
    """A ``let`` name (lower case) or a prelude constant (UPPER_CASE)."""

    name: str


@dataclass(frozen=True, slots=True)
class Term(Node):
    """A typed vocabulary term: ``object "left lung"``, ``viewpos "AP"``."""

    kind: ParamKind
    value: str

    def __post_init__(self) -> None:
        _require(self.kind, ParamKind, "term kind")


@dataclass(frozen=True, slots=True)
class TermSet(Node):
    """A typed set of vocabulary terms: ``categories {"disease", "device"}`` (may be empty)."""

    kind: PluralKind
    values: tuple[str, ...]

    def __post_init__(self) -> None:
        _require(self.kind, PluralKind, "term set kind")


# --- sets ---

@dataclass(frozen=True, slots=True)
class SetOf(Node):
    """``{a, b}``: the set of the values of scalar expressions of one kind."""

    elements: tuple[Expr, ...]

    def __post_init__(self) -> None:
        if not self.elements:
            raise ValueError("a set literal needs at least one element; use a typed empty set")


@dataclass(frozen=True, slots=True)
class Condition(Node):
    """One condition of a filter: ``field = value`` or ``field in value``."""

    field: Field
    op: ConditionOp
    value: Expr

    def __post_init__(self) -> None:
        _require(self.field, Field, "filter field")
        _require(self.op, ConditionOp, "condition operator")


@dataclass(frozen=True, slots=True)
class Filter(Node):
    """``source[cond, ...]``: the findings of ``source`` meeting every condition."""

    source: Expr
    conditions: tuple[Condition, ...]

    def __post_init__(self) -> None:
        if not self.conditions:
            raise ValueError("a filter needs at least one condition")


# --- operators (typed by kinds.SIGNATURES) ---

@dataclass(frozen=True, slots=True)
class Call(Node):
    """``function(args)``: projections, exists/empty/count, box coordinates."""

    function: Function
    args: tuple[Expr, ...]

    def __post_init__(self) -> None:
        _require(self.function, Function, "function")


@dataclass(frozen=True, slots=True)
class Apply(Node):
    """``name(args)``: a call of a parameterised definition (``def name(...) = ...``)."""

    name: str
    args: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Binary(Node):
    """``left op right`` for every binary operator, set, numeric, comparison or boolean."""

    op: BinaryOp
    left: Expr
    right: Expr

    def __post_init__(self) -> None:
        _require(self.op, BinaryOp, "binary operator")


@dataclass(frozen=True, slots=True)
class Not(Node):
    """``not operand``."""

    operand: Expr


Expr = Union[Fact, Number, ParamRef, Name, Term, TermSet, SetOf, Filter, Call, Apply, Binary, Not]


# --- files: programs and the prelude ---

@dataclass(frozen=True, slots=True)
class Template(Node):
    """A ``template "..."`` line: question text with ``${slot}`` placeholders."""

    text: str


@dataclass(frozen=True, slots=True)
class Param(Node):
    """``param name: kind [ignored]``."""

    name: str
    kind: ParamKind
    ignored: bool = False

    def __post_init__(self) -> None:
        _require(self.kind, ParamKind, "param kind")


@dataclass(frozen=True, slots=True)
class Let(Node):
    """``let name = value``: a named subexpression of one program."""

    name: str
    value: Expr


@dataclass(frozen=True, slots=True)
class Const(Node):
    """``const NAME = value`` in the prelude: a named expression without parameters."""

    name: str
    value: Expr


@dataclass(frozen=True, slots=True)
class DefParam(Node):
    """``name: kind``, one parameter of a ``def``."""

    name: str
    kind: ParamKind

    def __post_init__(self) -> None:
        _require(self.kind, ParamKind, "def param kind")


@dataclass(frozen=True, slots=True)
class Def(Node):
    """``def name(p: kind, ...) = value``: a named expression of typed parameters.

    Its body names its parameters bare (``p``) and sees constants and definitions only.
    """

    name: str
    params: tuple[DefParam, ...]
    value: Expr


Definition = Union[Const, Def]


@dataclass(frozen=True, slots=True)
class Program(Node):
    """One template program: its header, its own definitions, its lets and its answer.

    ``content_type`` and ``semantic_type`` are the question types of its records
    (None when the header leaves them out; ``generate`` needs them). ``preludes``
    are the author's folder preludes the program sees besides the bundled one; like
    ``source`` they are where it came from, not what it is, so equality ignores them.
    """

    name: str
    templates: tuple[Template, ...]
    params: tuple[Param, ...]
    returns: ResultKind
    lets: tuple[Let, ...]
    body: Expr
    content_type: str | None = field(default=None, kw_only=True)
    semantic_type: str | None = field(default=None, kw_only=True)
    definitions: tuple[Definition, ...] = field(default=(), kw_only=True)
    source: Source | None = field(default=None, kw_only=True, compare=False, repr=False)
    preludes: tuple[Prelude, ...] = field(default=(), kw_only=True, compare=False, repr=False)

    def __post_init__(self) -> None:
        _require(self.returns, ResultKind, "returns")
        if not self.templates:
            raise ValueError("a program needs at least one template")

    def evaluate(self, facts: ImageFacts, /, **bindings: str) -> list[str]:
        """Deprecated since 0.2, removed in 0.3: use ``cxrvqa.evaluate(program, facts, **bindings)``.

        Nodes never evaluate; this thin shim forwards to the runtime that
        ``cxrvqa.programs`` registers (see ``RUNTIME``), so the AST imports no runtime.
        """
        warnings.warn("Program.evaluate is deprecated; use cxrvqa.evaluate(program, facts, ...)",
                      DeprecationWarning, stacklevel=2)
        if "evaluate" not in RUNTIME:
            # Late-bound on purpose: the runtime imports this module, so nodes never import it;
            # the package loads it lazily, and this deprecated path may run first.
            importlib.import_module("cxrvqa.programs")
        return RUNTIME["evaluate"](self, facts, **bindings)


# The deprecated Program.evaluate needs the runtime, which imports this module. Instead of
# importing it back, cxrvqa.programs registers its ``evaluate`` here when it is imported.
RUNTIME: dict[str, Callable[..., list[str]]] = {}


@dataclass(frozen=True, slots=True)
class Prelude(Node):
    """A prelude file: constants and definitions shared by every program that sees it."""

    constants: tuple[Definition, ...]
    source: Source | None = field(default=None, kw_only=True, compare=False, repr=False)
