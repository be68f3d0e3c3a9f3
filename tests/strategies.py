"""Hypothesis strategies: tiny images and well-typed programs built type-first from SIGNATURES.

Programs are generated backwards from a wanted kind: pick a construct whose
result is that kind (an operator of ``SIGNATURES``, a filter, a set literal, a
leaf), then generate its operands' kinds the same way, down to a depth cap
that forces leaves. Choices are ordered simplest first so that failures shrink
to small programs; filters and projections are weighted up because programs
are made of them. Vocabularies are tiny so that values collide often.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import fields, replace
from typing import Any

from hypothesis import strategies as st

from cxrvqa.facts import ImageFacts
from cxrvqa.lang import nodes as n
from cxrvqa.lang.kinds import (
    ELEMENT_OF,
    FIELD_KINDS,
    LIST_KINDS,
    SET_OF,
    SIGNATURES,
    Kind,
)

DEPTH = int(os.environ.get("CXRVQA_GENTEST_DEPTH", "3"))
WEIGHT = 3

OBJECTS = ("left lung", "right lung", "cardiac silhouette", "upper mediastinum")
ATTRIBUTES = ("pleural effusion", "pneumonia", "picc", "low lung volumes")
CATEGORIES = ("anatomicalfinding", "disease", "tubesandlines", "technicalassessment")
TERMS = {Kind.OBJECT: OBJECTS, Kind.ATTRIBUTE: ATTRIBUTES, Kind.CATEGORY: CATEGORIES,
         Kind.VIEWPOS: ("AP", "PA"), Kind.GENDER: ("M", "F")}
KEYWORD = {Kind.OBJECT: "object", Kind.ATTRIBUTE: "attribute", Kind.CATEGORY: "category",
           Kind.VIEWPOS: "viewpos", Kind.GENDER: "gender"}
PLURAL = {Kind.OBJECTS: "objects", Kind.ATTRIBUTES: "attributes", Kind.CATEGORIES: "categories"}
CONSTANTS = {Kind.CATEGORIES: "ABNORMAL", Kind.NUMBER: "THORAX_WIDTH"}


# --- images ---

@st.composite
def image_facts(draw: st.DrawFn) -> ImageFacts:
    """An image over the tiny vocabulary, with optional view position, gender and boxes."""
    finding = st.tuples(st.sampled_from(OBJECTS), st.sampled_from(ATTRIBUTES),
                        st.sampled_from(CATEGORIES))
    coordinate = st.integers(-10, 230)
    return ImageFacts(draw(st.lists(finding, min_size=1, max_size=12)),
                      draw(st.sampled_from((None, "AP", "PA"))),
                      draw(st.sampled_from((None, "M", "F"))),
                      draw(st.dictionaries(st.sampled_from(OBJECTS),
                                           st.tuples(coordinate, coordinate), max_size=4)))


# --- expressions ---

Lets = tuple[tuple[str, Kind], ...]


@functools.cache
def expressions(kind: Kind, depth: int = DEPTH, params: bool = True,
                lets: Lets = ()) -> st.SearchStrategy[n.Expr]:
    """A well-typed expression of ``kind``; ``params`` allows ``$name`` leaves.

    Cached: the strategies form a small graph (kind x depth), built once.
    """
    options = _leaves(kind, params, lets)
    if depth > 0:
        options += _composites(kind, depth - 1, params, lets)
    elif not options:  # a kind without leaves (Bool, ViewPoses, Genders): one operator over leaves
        options = _composites(kind, 0, params, lets, leaf_operands=True)
    # sampled_from keeps repeated options (one_of would merge them), so weights work.
    return st.sampled_from(options).flatmap(lambda option: option)


def _leaves(kind: Kind, params: bool, lets: Lets) -> list[st.SearchStrategy[n.Expr]]:
    options: list[st.SearchStrategy[n.Expr]] = []
    if kind in TERMS:
        options.append(st.builds(n.Term, st.just(KEYWORD[kind]), st.sampled_from(TERMS[kind])))
        if params:
            # Pool names; generated programs rename them to the checker's naming rule.
            options.append(st.sampled_from([n.ParamRef(f"{KEYWORD[kind]}_{i}") for i in (1, 2)]))
    if kind in PLURAL:
        values = st.lists(st.sampled_from(TERMS[ELEMENT_OF[kind]]), max_size=2, unique=True)
        options.append(st.builds(n.TermSet, st.just(PLURAL[kind]), values.map(tuple)))
    if kind is Kind.NUMBER:
        options.append(st.builds(n.Number, st.integers(0, 4)))
    fact = {Kind.FINDINGS: "findings", Kind.VIEWPOS: "viewpos", Kind.GENDER: "gender"}.get(kind)
    if fact is not None:
        options.append(st.just(n.Fact(fact)))
    if kind in CONSTANTS:
        options.append(st.just(n.Name(CONSTANTS[kind])))
    options += [st.just(n.Name(name)) for name, k in lets if k is kind]
    return options


def _composites(kind: Kind, depth: int, params: bool, lets: Lets,
                leaf_operands: bool = False) -> list[st.SearchStrategy[n.Expr]]:
    def sub(k: Kind) -> st.SearchStrategy[n.Expr]:
        return expressions(k, depth, params, lets)

    options: list[st.SearchStrategy[n.Expr]] = []
    if kind is Kind.FINDINGS:
        conditions = st.lists(_conditions(sub), min_size=1, max_size=2).map(tuple)
        # Filters and projections are what programs are made of: drawn WEIGHT times as often.
        options += [st.builds(n.Filter, sub(Kind.FINDINGS), conditions)] * WEIGHT
    if kind in ELEMENT_OF:
        elements = st.lists(sub(ELEMENT_OF[kind]), min_size=1, max_size=2).map(tuple)
        options.append(st.builds(n.SetOf, elements))
    for op in sorted(SIGNATURES):
        # One option per operator (not per case) so that every operator is drawn as often.
        cases = [operands for operands, result in SIGNATURES[op].cases if result is kind
                 and not (leaf_operands and not all(_leaves(k, params, lets) for k in operands))]
        if cases:
            operands = st.one_of([st.tuples(*(sub(k) for k in case)) for case in cases])
            weight = WEIGHT if op in ("objects", "attributes", "categories") else 1
            options += [operands.map(functools.partial(_operator, op))] * weight
    return options


def _operator(op: str, operands: tuple[n.Expr, ...]) -> n.Expr:
    if op in n.FUNCTIONS:
        return n.Call(op, operands)
    if op == "not":
        return n.Not(operands[0])
    return n.Binary(op, operands[0], operands[1])


def _conditions(sub: Callable[[Kind], st.SearchStrategy[n.Expr]]
                ) -> st.SearchStrategy[n.Condition]:
    options = []
    for field in sorted(FIELD_KINDS):
        options.append(st.builds(n.Condition, st.just(field), st.just("="),
                                 sub(FIELD_KINDS[field])))
        options.append(st.builds(n.Condition, st.just(field), st.just("in"),
                                 sub(SET_OF[FIELD_KINDS[field]])))
    return st.one_of(options)


# --- programs ---

@st.composite
def programs(draw: st.DrawFn, depth: int = DEPTH) -> tuple[n.Program, dict[str, str]]:
    """A program that passes the checker, and a binding for each of its params."""
    let_kinds = draw(st.lists(st.sampled_from(list(Kind)), max_size=2))
    lets = tuple(n.Let(f"v{i}", draw(expressions(k, max(depth - 1, 0))))
                 for i, k in enumerate(let_kinds))
    names = tuple((let.name, k) for let, k in zip(lets, let_kinds))
    # Half of the programs answer yes/no: most operators only occur below a Bool.
    returns = draw(st.one_of(st.just(Kind.BOOL), st.sampled_from(LIST_KINDS)))
    program, _ = finish(draw(expressions(returns, depth, lets=names)), lets, returns)
    kinds = {KEYWORD[k]: k for k in TERMS}
    bindings = {p.name: draw(st.sampled_from(TERMS[kinds[p.kind]])) for p in program.params}
    return program, bindings


def finish(body: n.Expr, lets: tuple[n.Let, ...], returns: Kind) -> tuple[n.Program, dict[str, str]]:
    """A program around ``body`` that the checker accepts, and how its params were renamed.

    It keeps the lets that ``body`` uses and declares exactly the params it refers to,
    renamed to the checker's naming rule ('object' alone, else 'object_1', 'object_2').
    """
    used = {x.name for x in walk(body) if isinstance(x, n.Name)}
    draft = n.Program("generated", (n.Template("generated"),), (), "list",
                      tuple(let for let in lets if let.name in used), body)
    renames = _canonical_names(_param_refs(draft))
    params = tuple(n.Param(name, name.split("_")[0]) for name in renames.values())
    template = n.Template(" ".join("${" + p.name + "}" for p in params) or "generated")
    program = replace(_rename(draft, renames), templates=(template,), params=params,
                      returns="bool" if returns is Kind.BOOL else "list")
    return program, renames


def walk(node: Any) -> list[n.Node]:
    """Every node below and including ``node``."""
    found = [node]
    for f in fields(node):
        value = getattr(node, f.name)
        for child in value if isinstance(value, tuple) else (value,):
            if isinstance(child, n.Node):
                found += walk(child)
    return found


def _param_refs(program: n.Program) -> list[str]:
    nodes = [x for let in program.lets for x in walk(let)] + walk(program.body)
    return list(dict.fromkeys(x.name for x in nodes if isinstance(x, n.ParamRef)))


def _canonical_names(pool: list[str]) -> dict[str, str]:
    """Pool name -> 'kind' when it is its kind's only param, else 'kind_<i>' by first use."""
    by_kind: dict[str, list[str]] = {}
    for name in pool:
        by_kind.setdefault(name.split("_")[0], []).append(name)
    renames = {}
    for kind, group in by_kind.items():
        for i, name in enumerate(group, 1):
            renames[name] = kind if len(group) == 1 else f"{kind}_{i}"
    return renames


def _rename(node: Any, renames: dict[str, str]) -> Any:
    return rewrite(node, lambda x: n.ParamRef(renames[x.name]) if isinstance(x, n.ParamRef)
                   else None)


def rewrite(node: Any, replace_node: Callable[[n.Node], n.Node | None]) -> Any:
    """``node`` with every subnode for which ``replace_node`` gives a node replaced by it."""
    replacement = replace_node(node)
    if replacement is not None:
        return replacement
    changes = {}
    for f in fields(node):
        value = getattr(node, f.name)
        if not f.init:
            continue
        if isinstance(value, n.Node):
            changes[f.name] = rewrite(value, replace_node)
        elif isinstance(value, tuple):
            changes[f.name] = tuple(rewrite(v, replace_node) if isinstance(v, n.Node) else v
                                    for v in value)
    return replace(node, **changes)
