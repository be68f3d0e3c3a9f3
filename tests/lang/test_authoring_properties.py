"""Properties of the authoring constructs: numbers, count, const and def, printing and fmt.

Answers are compared with the naive evaluator (tests/naive_eval.py); inlining a
definition by hand must never change an answer; printing and formatting are stable.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st
from naive_eval import NaiveError, naive_answer, naive_evaluate
from strategies import TERMS, expressions, finish, image_facts, rewrite

import cxrvqa
from cxrvqa import EvaluationError, ImageFacts, Program, check, parse
from cxrvqa.lang import nodes as n
from cxrvqa.lang.fmt import format_source
from cxrvqa.lang.kinds import SET_KINDS, Kind

DECIMALS = st.sampled_from([0.5, 0.25, 1.5, 2.75])
BODY_KINDS = st.sampled_from([Kind.BOOL, Kind.OBJECTS, Kind.ATTRIBUTES, Kind.NUMBER])
RETURNS = {Kind.BOOL: "bool", Kind.NUMBER: "number"}


def answer(program: Program, facts: ImageFacts, bindings: dict[str, str]) -> object:
    try:
        return cxrvqa.evaluate(program, facts, **bindings)
    except EvaluationError:
        return "error"


def reference(program: Program, facts: ImageFacts, bindings: dict[str, str]) -> object:
    try:
        return naive_answer(naive_evaluate(program, facts, bindings))
    except NaiveError:
        return "error"


def closed(body: n.Expr, kind: Kind) -> Program:
    """A program without params around ``body`` of ``kind``."""
    program, renames = finish(body, (), kind)
    assert not renames
    return replace(program, returns=RETURNS.get(kind, "list"))


@st.composite
def number_bodies(draw: st.DrawFn) -> n.Expr:
    body = draw(expressions(Kind.NUMBER, params=False))
    if draw(st.booleans()):  # decimals: a float result, printed as its shortest repr
        body = n.Binary(draw(st.sampled_from(["*", "+", "/"])), body, n.Number(draw(DECIMALS)))
    return body


@given(number_bodies(), image_facts())
def test_number_answers_agree_with_the_naive_evaluator(body: n.Expr, facts: ImageFacts) -> None:
    program = closed(body, Kind.NUMBER)
    assert check(program) == []
    got = answer(program, facts, {})
    assert got == reference(program, facts, {})
    if got != "error":
        [text] = got  # one decimal string; integer values without a fraction
        assert not text.endswith(".0")


@given(st.sampled_from(SET_KINDS).flatmap(lambda kind: expressions(kind, params=False)),
       image_facts())
def test_count_agrees_with_the_naive_evaluator(operand: n.Expr, facts: ImageFacts) -> None:
    program = closed(n.Call("count", (operand,)), Kind.NUMBER)
    got = answer(program, facts, {})
    assert got == reference(program, facts, {})
    assert got == "error" or got[0].isdigit()


@given(BODY_KINDS.flatmap(lambda kind: st.tuples(st.just(kind),
                                                 expressions(kind, params=False))),
       image_facts())
def test_naming_a_body_as_a_const_or_def_changes_no_answer(drawn: tuple[Kind, n.Expr],
                                                           facts: ImageFacts) -> None:
    kind, body = drawn
    plain = closed(body, kind)
    const = replace(plain, definitions=(n.Const("NAMED", body),), body=n.Name("NAMED"))
    define = replace(plain, definitions=(n.Def("named", (), body),), body=n.Apply("named", ()))
    expected = answer(plain, facts, {})
    assert answer(const, facts, {}) == answer(define, facts, {}) == expected
    assert reference(const, facts, {}) == reference(define, facts, {}) == expected


@given(BODY_KINDS.flatmap(lambda kind: st.tuples(st.just(kind),
                                                 expressions(kind, params=False))),
       st.sampled_from(TERMS[Kind.OBJECT]), image_facts())
def test_a_def_of_a_parameter_changes_no_answer(drawn: tuple[Kind, n.Expr], term: str,
                                                facts: ImageFacts) -> None:
    """``e`` with object T == ``def f(o: object) = e[T := o]`` called as ``f(T)`` or ``f($object)``."""
    kind, body = drawn
    plain = closed(body, kind)
    abstracted = rewrite(body, lambda x: n.Name("o") if x == n.Term("object", term) else None)
    definition = n.Def("f", (n.DefParam("o", "object"),), abstracted)
    called = replace(plain, definitions=(definition,), body=n.Apply("f", (n.Term("object", term),)))
    with_param = replace(called, templates=(n.Template("${object}"),),
                         params=(n.Param("object", "object"),),
                         body=n.Apply("f", (n.ParamRef("object"),)))
    assert check(called) == [] and check(with_param) == []
    expected = answer(plain, facts, {})
    assert answer(called, facts, {}) == expected
    assert answer(with_param, facts, {"object": term}) == expected
    assert reference(with_param, facts, {"object": term}) == expected


@st.composite
def authored(draw: st.DrawFn) -> Program:
    """A program with header types, a const, a def and a number or bool body."""
    kind = draw(st.sampled_from([Kind.BOOL, Kind.NUMBER]))
    program = closed(draw(expressions(kind, params=False)), kind)
    const = n.Const("C", draw(number_bodies()))
    definition = n.Def("g", (n.DefParam("a", "attribute"),),
                       n.Call("exists", (n.Filter(n.Fact("findings"), (
                           n.Condition("attribute", "=", n.Name("a")),)),)))
    return replace(program, content_type=draw(st.sampled_from(["presence", "count"])),
                   semantic_type=draw(st.sampled_from(["verify", "query", "choose"])),
                   definitions=(const, definition))


@given(authored(), st.lists(st.tuples(st.integers(0, 30), st.booleans(),
                                      st.text("abc é/", max_size=8)), max_size=5))
def test_printing_round_trips_and_fmt_is_idempotent(
        program: Program, comments: list[tuple[int, bool, str]]) -> None:
    text = str(program)
    assert parse(text) == program
    lines = text.rstrip("\n").split("\n")
    for line, own_line, words in comments:  # sprinkle comments: own lines and line ends
        at = min(line, len(lines) - 1)
        if own_line:
            lines.insert(at, f"// {words}")
        elif lines[at].strip():
            lines[at] += f"  // {words}"
    messy = "\n".join(lines) + "\n"
    once = format_source(messy)
    assert format_source(once) == once
    assert parse(once) == program
    kept = [line.strip() for line in messy.split("\n") if "//" in line]
    assert sum("//" in line for line in once.split("\n")) == len(kept)  # no comment lost
