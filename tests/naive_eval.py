"""A deliberately naive reference evaluator for cxrvqa programs, written apart from the package.

It walks the AST on every call, keeps findings as a plain list of rows and
filters them one row at a time, the way pipeline.md §5 reads. It shares no
code with cxrvqa/interpreter.py and is never optimised: tests compare the two.
It reads only the raw fields of ``ImageFacts`` (never its indices).

Constants and definitions (``const``, ``def``) are looked up by name and evaluated
where they are used: a ``def``'s body runs with its parameters bound like lets. An
author's prelude is read from its file, apart from the program's own bookkeeping.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from cxrvqa.facts import ImageFacts
from cxrvqa.lang import nodes as n
from cxrvqa.lang.parser import parse_prelude

PRELUDE = Path(__file__).resolve().parent.parent / "programs" / "_prelude.cxr"
FIELDS = ("object", "attribute", "category")


class NaiveError(Exception):
    """The facts cannot answer the program (missing box or fact, division by zero)."""


def prelude_constants(*extra_preludes: Path) -> dict[str, Any]:
    """The constants and definitions of the repository's prelude and the given files, by name."""
    found: dict[str, Any] = {}
    for path in (PRELUDE, *extra_preludes):
        for definition in parse_prelude(path.read_text(encoding="utf-8")).constants:
            found[definition.name] = definition
    return found


def naive_evaluate(program: n.Program, facts: ImageFacts, bindings: dict[str, str],
                   preludes: tuple[Path, ...] = ()) -> object:
    """The program's value: True/False, a set of names, a number or a list of finding rows.

    ``preludes``: an author's prelude files the program uses (besides the repository's).
    """
    env: dict[str, object] = dict(bindings)
    lets: dict[str, object] = {}
    constants = prelude_constants(*preludes)
    for definition in program.definitions:
        constants[definition.name] = definition
    for let in program.lets:
        lets[let.name] = evaluate(let.value, facts, env, lets, constants)
    return evaluate(program.body, facts, env, lets, constants)


def naive_answer(value: Any) -> list[str]:
    """The answer format of pipeline.md §5; a number is one decimal string, no '.0' on integers."""
    if value is True:
        return ["yes"]
    if value is False:
        return ["no"]
    if isinstance(value, int):
        return [str(value)]
    if isinstance(value, float):
        if value == int(value):
            return [str(int(value))]
        return [repr(value)]
    answer = []
    for item in value:
        answer.append(item.lower())
    answer.sort()
    return answer


def evaluate(node: n.Node, facts: ImageFacts, params: dict[str, object], lets: dict[str, object],
             constants: dict[str, Any]) -> object:
    """Evaluate one expression node from scratch."""
    def again(child: n.Node) -> object:
        return evaluate(child, facts, params, lets, constants)

    if isinstance(node, n.Fact):
        if node.name == "findings":
            return [list(row) for row in facts.findings]
        return facts.viewpos if node.name == "viewpos" else facts.gender
    if isinstance(node, n.Number):
        return node.value
    if isinstance(node, n.ParamRef):
        return params[node.name]
    if isinstance(node, n.Name):
        if node.name in lets:  # a let, or a def's parameter inside its body
            return lets[node.name]
        return evaluate(constants[node.name].value, facts, {}, {}, constants)
    if isinstance(node, n.Apply):
        definition = constants[node.name]
        arguments = {p.name: again(a) for p, a in zip(definition.params, node.args)}
        return evaluate(definition.value, facts, {}, arguments, constants)
    if isinstance(node, n.Term):
        return node.value
    if isinstance(node, n.TermSet):
        return set(node.values)
    if isinstance(node, n.SetOf):
        values = [again(e) for e in node.elements]
        if None in values:
            raise NaiveError("missing view position or gender")
        return set(values)
    if isinstance(node, n.Filter):
        rows: Any = again(node.source)
        for condition in node.conditions:
            column = FIELDS.index(condition.field)
            value: Any = again(condition.value)
            kept = []
            for row in rows:
                if condition.op == "=" and row[column] == value:
                    kept.append(row)
                if condition.op == "in" and row[column] in value:
                    kept.append(row)
            rows = kept
        return rows
    if isinstance(node, n.Call):
        return call(node.function, again(node.args[0]), facts)
    if isinstance(node, n.Not):
        return not again(node.operand)
    if isinstance(node, n.Binary):
        return binary(node.op, again(node.left), lambda: again(node.right))
    raise TypeError(f"unknown node {node!r}")


def call(function: str, value: Any, facts: ImageFacts) -> object:
    """Projections, emptiness, counts and box coordinates."""
    if function in ("objects", "attributes", "categories"):
        column = ("objects", "attributes", "categories").index(function)
        return {row[column] for row in value}
    if function == "exists":
        return len(value) > 0
    if function == "empty":
        return len(value) == 0
    if function == "count":
        return len(as_set(value))
    if value not in facts.boxes:
        raise NaiveError(f"no box {value}")
    x1, x2 = facts.boxes[value]
    return {"x1": x1, "x2": x2, "width": x2 - x1}[function]


def as_set(value: Any) -> set[object]:
    """Rows become tuples so that duplicates collapse, as they do in a set."""
    return {tuple(v) if isinstance(v, list) else v for v in value}


def binary(op: str, left: Any, right_thunk: Callable[[], Any]) -> object:
    """``and``/``or`` short-circuit; everything else evaluates the right side after the left."""
    if op == "and":
        return bool(left) and bool(right_thunk())
    if op == "or":
        return bool(left) or bool(right_thunk())
    right = right_thunk()
    if op in ("|", "&", "-") and not isinstance(left, (int, float)):
        a, b = as_set(left), as_set(right)
        result = {"|": a | b, "&": a & b, "-": a - b}[op]
        if isinstance(left, list):  # Findings: back to a list of rows
            return [list(v) for v in result]
        return result
    if op == "=":
        return left is not None and right is not None and left == right
    if op == "!=":
        return not (left is not None and right is not None and left == right)
    if op == "in":
        return left in right
    if op == "/":
        if right == 0:
            raise NaiveError("division by zero")
        return left / right
    return {"+": lambda: left + right, "-": lambda: left - right, "*": lambda: left * right,
            "<": lambda: left < right, "<=": lambda: left <= right,
            ">": lambda: left > right, ">=": lambda: left >= right}[op]()

