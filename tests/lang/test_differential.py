"""Generated well-typed programs give the same answers in the interpreter and the naive evaluator."""

from __future__ import annotations

from collections.abc import Iterator

from hypothesis import example, given, settings
from hypothesis import strategies as st
from naive_eval import NaiveError, naive_answer, naive_evaluate
from strategies import finish, image_facts, programs, walk

import cxrvqa
from cxrvqa import EvaluationError, ImageFacts, Program, check
from cxrvqa.lang import nodes as n
from cxrvqa.lang.check import analyze
from cxrvqa.lang.kinds import SET_OF, SIGNATURES, Kind


def interpreter_answer(program: Program, facts: ImageFacts, bindings: dict[str, str]) -> object:
    try:
        return cxrvqa.evaluate(program, facts, **bindings)
    except EvaluationError:
        return "error"


def reference_answer(program: Program, facts: ImageFacts, bindings: dict[str, str]) -> object:
    try:
        return naive_answer(naive_evaluate(program, facts, bindings))
    except NaiveError:
        return "error"


def subprograms(program: Program, bindings: dict[str, str]
                ) -> Iterator[tuple[Program, dict[str, str]]]:
    """A program for every subexpression (findings and scalars wrapped to answerable kinds)."""
    kinds = analyze(program, None).kinds
    for node in walk(program.body):
        kind = kinds.get(id(node))
        if kind in SET_OF:
            bodies = [(n.SetOf((node,)), SET_OF[kind])]
        elif kind is Kind.FINDINGS:
            bodies = [(n.Call(f, (node,)), k) for f, k in (("objects", Kind.OBJECTS),
                                                            ("attributes", Kind.ATTRIBUTES))]
        elif kind is Kind.NUMBER:
            bodies = [(n.Binary(">", node, n.Number(1)), Kind.BOOL)]
        else:
            bodies = [(node, kind)] if kind is not None else []
        for body, returns in bodies:
            sub, renames = finish(body, program.lets, returns)
            yield sub, {new: bindings[old] for old, new in renames.items()}


def pinned(body: n.Expr) -> tuple[Program, dict[str, str]]:
    return finish(body, (), Kind.BOOL)[0], {}


NO_FACTS = [ImageFacts([("svc", "picc", "tubesandlines")], None, None, {})]


# Unknown view position or gender equals nothing, not even itself (NaN in the original).
@example(pinned(n.Binary("=", n.Fact("gender"), n.Fact("gender"))), NO_FACTS)
@example(pinned(n.Binary("!=", n.Fact("viewpos"), n.Fact("viewpos"))), NO_FACTS)
@given(programs(), st.lists(image_facts(), min_size=1, max_size=6))
def test_interpreter_agrees_with_naive_evaluator(
        generated: tuple[Program, dict[str, str]], images: list[ImageFacts]) -> None:
    program, bindings = generated
    assert check(program) == []
    # Every subexpression is compared, not only the final answer, so that a wrong
    # intermediate value cannot hide behind an operator that discards it.
    for sub, sub_bindings in subprograms(program, bindings):
        for facts in images:
            assert interpreter_answer(sub, facts, sub_bindings) == \
                reference_answer(sub, facts, sub_bindings), str(sub)


def test_strategy_is_comprehensive() -> None:
    """Every operator of SIGNATURES and every expression node class is generated."""
    seen: set[str] = set()

    @settings(max_examples=300, derandomize=True)
    @given(programs())
    def collect(generated: tuple[Program, dict[str, str]]) -> None:
        program, _ = generated
        for node in walk(program):
            seen.add(type(node).__name__)
            if isinstance(node, n.Binary):
                seen.add(node.op)
            elif isinstance(node, n.Call):
                seen.add(node.function)
            elif isinstance(node, n.Not):
                seen.add("not")
            elif isinstance(node, n.Condition):
                seen.add(f"condition {node.op}")

    collect()
    expression_nodes = {"Fact", "Number", "ParamRef", "Name", "Term", "TermSet", "SetOf",
                        "Filter", "Call", "Binary", "Not", "Let", "Param"}
    wanted = set(SIGNATURES) | expression_nodes | {"condition =", "condition in"}
    assert wanted - seen == set()


def test_naive_evaluator_sees_the_errors_the_interpreter_raises() -> None:
    program = Program("generated", (n.Template("generated"),), (), "list", (),
                      n.SetOf((n.Fact("gender"),)))
    facts = ImageFacts([], "AP", None, {})
    assert interpreter_answer(program, facts, {}) == reference_answer(program, facts, {}) \
        == "error"
