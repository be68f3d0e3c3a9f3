"""Algebraic laws of the operators, checked through the DSL (parser, checker and interpreter).

A law is written as DSL text over the names ``a``, ``b``, ``c`` (parsed once
and cached: parsing is the slow part), into which generated expressions are
substituted. Most laws of one example are joined into a single yes/no program;
when it says no, each law is run alone to name the broken one. The laws of
difference compare answers in Python, so that ``same_set`` (built on ``-`` and
``empty``) is not trusted blindly.
"""

from __future__ import annotations

import functools

from hypothesis import given
from hypothesis import strategies as st
from strategies import expressions, image_facts, rewrite

import cxrvqa
from cxrvqa import EvaluationError, ImageFacts, parse
from cxrvqa.lang import nodes as n
from cxrvqa.lang.kinds import FIELD_KINDS, SET_OF, Kind

SET_KINDS = st.sampled_from((Kind.OBJECTS, Kind.ATTRIBUTES, Kind.CATEGORIES))


Values = dict[str, n.Expr]


@functools.cache
def law_body(text: str) -> n.Expr:
    return parse(f'program law\ntemplate "law"\nreturns bool\n\n{text}\n').body


def run(text: str, facts: ImageFacts, values: Values, returns: str = "list") -> object:
    """The answer of ``text`` with ``values`` put in for its names, or "error"."""
    body = rewrite(law_body(text), lambda x: values.get(x.name) if isinstance(x, n.Name)
                   else None)
    program = n.Program("law", (n.Template("law"),), (), returns, (), body)
    try:
        return cxrvqa.evaluate(program, facts)
    except EvaluationError:
        return "error"


def assert_laws(laws: list[str], facts: ImageFacts, values: Values) -> None:
    """Every law (a yes/no expression) holds on ``facts``."""
    if run(" and ".join(f"({law})" for law in laws), facts, values, "bool") != ["yes"]:
        assert [law for law in laws if run(law, facts, values, "bool") != ["yes"]] == []


def same_set(left: str, right: str) -> str:
    return f"empty(({left}) - ({right})) and empty(({right}) - ({left}))"


def same_truth(left: str, right: str) -> str:
    return f"(({left}) and ({right})) or (not ({left}) and not ({right}))"


@st.composite
def three_sets(draw: st.DrawFn) -> Values:
    kind = draw(SET_KINDS)
    return {name: draw(expressions(kind, 2, params=False)) for name in "abc"}


@given(three_sets(), image_facts())
def test_union_and_intersection_laws(sets: Values, facts: ImageFacts) -> None:
    assert_laws([
        *(law for op in ("|", "&") for law in (
            same_set(f"a {op} b", f"b {op} a"),                  # commutative
            same_set(f"(a {op} b) {op} c", f"a {op} (b {op} c)"),  # associative
            same_set(f"a {op} a", "a"))),                        # idempotent
        same_set("a & (b | c)", "(a & b) | (a & c)"),            # distributive
        same_set("a | (b & c)", "(a | b) & (a | c)"),
        same_set("a | (a & b)", "a"),                            # absorption
    ], facts, sets)
    left, right = set(run("a", facts, sets)), set(run("b", facts, sets))  # type: ignore[arg-type]
    assert run("a | b", facts, sets) == sorted(left | right)
    assert run("a & b", facts, sets) == sorted(left & right)


@given(three_sets(), image_facts())
def test_difference_laws(sets: Values, facts: ImageFacts) -> None:
    assert set(run("a - b", facts, sets)) <= set(run("a", facts, sets))  # type: ignore[arg-type]
    assert run("(a - b) & b", facts, sets) == []
    assert run("a - a", facts, sets) == []
    assert run("(a - b) | (a & b)", facts, sets) == run("a", facts, sets)


@given(three_sets(), image_facts())
def test_exists_empty_and_count_laws(sets: Values, facts: ImageFacts) -> None:
    assert_laws([
        same_truth("exists(a | b)", "exists(a) or exists(b)"),
        same_truth("empty(a)", "not exists(a)"),
        "count(a | b) + count(a & b) = count(a) + count(b)",
    ], facts, sets)


@st.composite
def findings_and_conditions(draw: st.DrawFn) -> tuple[Values, str, str]:
    """Findings expressions f and g, and two filter conditions as text over names v1, v2."""
    values = {name: draw(expressions(Kind.FINDINGS, 2, params=False)) for name in "fg"}
    conditions = []
    for name in ("v1", "v2"):
        field = draw(st.sampled_from(sorted(FIELD_KINDS)))
        op = draw(st.sampled_from(("=", "in")))
        kind = FIELD_KINDS[field] if op == "=" else SET_OF[FIELD_KINDS[field]]
        values[name] = draw(expressions(kind, 1, params=False))
        conditions.append(f"{field} {op} {name}")
    return values, conditions[0], conditions[1]


@given(findings_and_conditions(), image_facts())
def test_filter_laws(parts: tuple[Values, str, str], facts: ImageFacts) -> None:
    values, c1, c2 = parts
    assert_laws([
        f"empty(f[{c1}] - f)",                           # a filter keeps a subset
        same_set(f"f[{c1}][{c1}]", f"f[{c1}]"),          # idempotent
        same_set(f"f[{c1}][{c2}]", f"f[{c2}][{c1}]"),    # filters commute
        same_set(f"f[{c1}][{c2}]", f"f[{c1}, {c2}]"),    # conditions are ANDed
        same_set(f"(f | g)[{c1}]", f"f[{c1}] | g[{c1}]"),  # distributes over union
    ], facts, values)


@given(st.fixed_dictionaries({name: expressions(Kind.BOOL, 2, params=False) for name in "pq"}),
       image_facts())
def test_boolean_laws(claims: Values, facts: ImageFacts) -> None:
    def truth(text: str) -> object:
        return run(text, facts, claims, "bool")
    assert truth("not (p and q)") == truth("not p or not q")
    assert truth("not (p or q)") == truth("not p and not q")
    assert truth("not not p") == truth("p")
    if "error" not in (truth("p"), truth("q")):  # else short-circuits differ
        for op in ("and", "or"):
            assert truth(f"p {op} q") == truth(f"q {op} p")
