"""Compile checked programs into Python functions and run them on one image's facts.

Each program becomes one generated function ``run(facts, args)``: every node
turns into a Python expression over frozensets and the facts' inverted
indices (``by_object`` / ``by_attribute`` / ``by_category``), each ``let`` into
one local assignment, computed once per call. A program is compiled once;
answering a question is then a single call with no tree walking, no parsing
and no type checks at run time (the checker has done those).

Constants and calls of definitions (``def``) are inlined where they are used: a call
becomes the definition's body with each parameter replaced by its argument's code
(definitions are pure, so recomputing an argument never changes a value).

A filter is an intersection with index entries: every Findings value is a
subset of the image's findings, so ``S[object = o]`` is ``S & by_object[o]``.

Missing facts follow the original builder: an unknown gender or view position
equals nothing (it compared like NaN), but asking for it as an answer fails.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Union, cast

from cxrvqa.errors import EvaluationError
from cxrvqa.facts import Finding, ImageFacts
from cxrvqa.lang import nodes as n
from cxrvqa.lang.check import Analysis, analyze
from cxrvqa.lang.diagnostics import program_error
from cxrvqa.lang.kinds import Kind

__all__ = ["CodeGenerator", "Evaluator", "Tracer", "Value", "compile_program"]

Value = Union[bool, int, float, str, None, frozenset[str], frozenset[Finding]]
Tracer = Callable[[n.Expr, Value], Value]

_EMPTY: frozenset[Finding] = frozenset()
_INDEX = {"object": "facts.by_object", "attribute": "facts.by_attribute",
          "category": "facts.by_category"}
_PROJECTION = {"objects": "_object_of", "attributes": "_attribute_of",
               "categories": "_category_of"}
_MISSING = {Kind.VIEWPOSES: "no view position for this image",
            Kind.GENDERS: "no gender for this patient"}
_NULLABLE = (Kind.VIEWPOS, Kind.GENDER)


@dataclass(frozen=True, slots=True)
class Evaluator:
    """A compiled program: ``run(facts, args)`` gives its value on one image.

    ``args`` holds one value per ``params`` entry, in order (None for an ignored
    parameter). ``source`` is the generated Python code, for reading and debugging.
    """

    name: str
    params: tuple[n.Param, ...]
    source: str
    run: Callable[[ImageFacts, Sequence[str | None]], Value]


def compile_program(program: n.Program, tracer: Tracer | None = None) -> Evaluator:
    """Check ``program`` (vocabulary aside) and compile it.

    Args:
        program: the program to compile.
        tracer: when given, every evaluated node's value is passed through
            ``tracer(node, value)`` (which must return the value), so that a trace
            reuses exactly the semantics of the untraced code.

    Raises:
        ProgramError: the program does not check.
    """
    analysis = analyze(program, None)
    if analysis.diagnostics:
        raise program_error(analysis.diagnostics)
    generator = CodeGenerator(analysis, {p.name: f"p_{p.name}" for p in program.params}, tracer)
    lines = []
    for let in program.lets:
        lines.append(f"v_{let.name} = {generator.visit(let.value)}")
        generator.lets[let.name] = f"v_{let.name}"
    lines.append(f"return {generator.visit(program.body)}")
    source = _function(program.name, [f"p_{p.name}" for p in program.params], lines)
    namespace = generator.namespace
    exec(compile(source, f"<cxrvqa {program.name}>", "exec"), namespace)  # noqa: S102
    run = cast(Callable[[ImageFacts, Sequence[str | None]], Value], namespace["run"])
    return Evaluator(program.name, program.params, source, run)


def _function(name: str, params: Sequence[str], lines: Iterable[str]) -> str:
    unpack = [f"{', '.join(params)}, = args"] if params else []
    body = "\n".join(f"        {line}" for line in [*unpack, *lines])
    return (f"def run(facts, args):\n"
            f"    try:\n{body}\n"
            f"    except EvaluationError as err:\n"
            f"        raise EvaluationError({name!r} + ': ' + str(err)) from None\n")


# --- run-time helpers the generated code calls ---

def _any_of(index: Mapping[str, frozenset[Finding]], values: Iterable[str]) -> frozenset[Finding]:
    return frozenset().union(*[index.get(value, _EMPTY) for value in values])


def _set_of(values: tuple[str | None, ...], missing: str) -> frozenset[str]:
    if None in values:
        raise EvaluationError(missing)
    return frozenset(values)  # type: ignore[arg-type]


def _equal(left: str | None, right: str | None) -> bool:
    # An unknown gender or view position (None) equals nothing, as NaN did in the original.
    return left is not None and left == right


def _divide(left: float, right: float, divisor: str) -> float:
    if right == 0:
        raise EvaluationError(f"division by zero: '{divisor}' is 0")
    return left / right


def _box(facts: ImageFacts, name: str) -> tuple[int, int]:
    box = facts.boxes.get(name)
    if box is None:
        raise EvaluationError(f"image has no '{name}' box")
    return box


def _width(facts: ImageFacts, name: str) -> int:
    x1, x2 = _box(facts, name)
    return x2 - x1


_HELPERS: dict[str, object] = {
    "EvaluationError": EvaluationError, "_EMPTY": _EMPTY, "_any_of": _any_of,
    "_set_of": _set_of, "_equal": _equal, "_divide": _divide, "_box": _box, "_width": _width,
    "_object_of": operator.itemgetter(0), "_attribute_of": operator.itemgetter(1),
    "_category_of": operator.itemgetter(2),
}


class CodeGenerator:
    """One ``visit_<Node>`` per expression node, returning that node as a Python expression."""

    def __init__(self, analysis: Analysis, params: dict[str, str],
                 tracer: Tracer | None = None) -> None:
        self.tracer = tracer
        self.kinds = analysis.kinds
        self.constants = analysis.environment.constants
        self.defs = analysis.environment.defs
        self.params = params
        self.lets: dict[str, str] = {}
        # A def's params while its body is inlined at a call: name -> the argument's code.
        self.scope: dict[str, str] = {}
        self.namespace: dict[str, object] = dict(_HELPERS)

    def visit(self, node: n.Expr) -> str:
        code: str = getattr(self, "visit_" + type(node).__name__)(node)
        if self.tracer is None:
            return code
        return f"{self.literal(functools.partial(self.tracer, node))}({code})"

    def literal(self, value: object) -> str:
        """A name in the generated code's namespace bound to ``value``."""
        name = f"_k{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def visit_Fact(self, node: n.Fact) -> str:
        return f"facts.{node.name}"

    def visit_Number(self, node: n.Number) -> str:
        return repr(node.value)

    def visit_Term(self, node: n.Term) -> str:
        return self.literal(node.value)

    def visit_TermSet(self, node: n.TermSet) -> str:
        return self.literal(frozenset(node.values))

    def visit_ParamRef(self, node: n.ParamRef) -> str:
        return self.params[node.name]

    def visit_Name(self, node: n.Name) -> str:
        if node.name in self.scope:
            return self.scope[node.name]
        if node.name in self.lets:
            return self.lets[node.name]
        # Constants use no params or lets, so they expand the same in every program.
        outer, self.scope = self.scope, {}
        try:
            return self.visit(self.constants[node.name].value)
        finally:
            self.scope = outer

    def visit_Apply(self, node: n.Apply) -> str:
        # Inlined: a definition is pure, so each use of a parameter may recompute its argument.
        definition = self.defs[node.name]
        args = [f"({self.visit(arg)})" for arg in node.args]
        outer, self.scope = self.scope, {p.name: a for p, a in zip(definition.params, args)}
        try:
            return f"({self.visit(definition.value)})"
        finally:
            self.scope = outer

    def visit_SetOf(self, node: n.SetOf) -> str:
        elements = "".join(f"{self.visit(e)}, " for e in node.elements)
        missing = _MISSING.get(self.kinds[id(node)])
        if missing is None:
            return f"frozenset(({elements}))"
        return f"_set_of(({elements}), {self.literal(missing)})"

    def visit_Filter(self, node: n.Filter) -> str:
        parts = [self.condition(c) for c in node.conditions]
        if node.source != n.Fact("findings"):
            parts.insert(0, self.visit(node.source))
        return f"({' & '.join(parts)})"

    def condition(self, node: n.Condition) -> str:
        """The image's findings that meet the condition."""
        value = self.visit(node.value)
        if node.op == "=":
            return f"{_INDEX[node.field]}.get({value}, _EMPTY)"
        return f"_any_of({_INDEX[node.field]}, {value})"

    def visit_Call(self, node: n.Call) -> str:
        arg = self.visit(node.args[0])
        function = node.function
        if function in _PROJECTION:
            return f"frozenset(map({_PROJECTION[function]}, {arg}))"
        return {"exists": f"bool({arg})", "empty": f"(not {arg})", "count": f"len({arg})",
                "x1": f"_box(facts, {arg})[0]", "x2": f"_box(facts, {arg})[1]",
                "width": f"_width(facts, {arg})"}[function]

    def visit_Binary(self, node: n.Binary) -> str:
        left, right, op = self.visit(node.left), self.visit(node.right), node.op
        if op in ("=", "!=") and self.kinds[id(node.left)] in _NULLABLE:
            return f"({'' if op == '=' else 'not '}_equal({left}, {right}))"
        if op == "/":
            return f"_divide({left}, {right}, {self.literal(str(node.right))})"
        return f"({left} {'==' if op == '=' else op} {right})"

    def visit_Not(self, node: n.Not) -> str:
        return f"(not {self.visit(node.operand)})"
