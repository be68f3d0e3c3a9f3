"""Explain one answer: the program, the value of each step of its evaluation, and the label rows behind it.

The trace comes from the interpreter itself: the program is compiled once more
with a tracer that records every node's value as the generated code computes
it, so an explanation can never disagree with an answer. Nodes that were not
evaluated (the right side of a short-circuited ``and``/``or``) show as such.
A call of a definition (``def``) shows its value and, below it, its body as
evaluated for that call.

Support: every finding the evaluation read (a finding in the argument of a
projection, ``exists``, ``empty`` or ``count``) is matched with the one label row
that made it positive in the build: the image's rows go through the build's own
label step (``cxrvqa.build.labels.image_labels`` with ``origins=True``), which
records the row that won each (object, attribute) and the attribute and object
propagation that brought it there. A list answer's element is supported by the
looked-at findings that name it; a yes/no or number answer by all of them. View positions
and genders come from the metadata and patients files, not from label rows.

Python API::

    explanation = explain(program, facts, {"object": "left lung"}, rows=rows, ontology=ontology)
    print(explanation.render())           # or explanation.to_json()

``explain_from_sources`` is what ``cxrvqa explain`` runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from cxrvqa.build.labels import image_labels
from cxrvqa.errors import DataError, EvaluationError, UsageError
from cxrvqa.facts import Finding, ImageFacts
from cxrvqa.lang import nodes as n
from cxrvqa.lang.answers import render
from cxrvqa.lang.check import analyze
from cxrvqa.lang.compiler import Value, compile_program
from cxrvqa.programs import (
    argument_plan,
    bound_arguments,
    bundled_programs,
    evaluate,
    program_named,
)
from cxrvqa.tools.numbers import plain_int
from cxrvqa.vocab import SPLITS

if TYPE_CHECKING:
    from cxrvqa.build.index import SceneIndex
    from cxrvqa.build.layout import SourceLayout
    from cxrvqa.build.ontology import Ontology

__all__ = ["Explanation", "LabelRow", "Step", "Support", "explain", "explain_from_sources",
           "explain_image", "explain_record", "parse_bindings", "record_bindings"]

_LITERALS = (n.Term, n.TermSet, n.Number)
_NOT_EVALUATED = object()


@dataclass(frozen=True)
class LabelRow:
    """One label row behind a finding; ``via`` says how it reached the finding (None: named directly)."""

    object: str
    attribute: str
    category: str
    relation: int
    row_id: str
    via: str | None
    labels: str

    def render(self) -> str:
        how = f"via {self.via}" if self.via else "direct"
        return (f"row {self.row_id}: {self.object} / {self.attribute} ({self.category}) "
                f"relation={self.relation}, {how}, {self.labels}")


@dataclass(frozen=True)
class Step:
    """One evaluated node: its depth in the tree, its source text and its value as text."""

    depth: int
    expression: str
    value: str


@dataclass(frozen=True)
class Support:
    """A finding the evaluation looked at and the label rows that make it positive."""

    finding: Finding
    rows: tuple[LabelRow, ...]


@dataclass(frozen=True)
class Explanation:
    """The answer to one program on one image, with its trace and its support."""

    program: n.Program
    bindings: Mapping[str, str | None]
    answer: list[str]
    steps: tuple[Step, ...]
    support: Mapping[str, tuple[Support, ...]]
    image_id: str | None = None
    labels: str = "facts"
    viewpos: str | None = None
    gender: str | None = None
    rows_given: bool = False
    expected: list[str] | None = field(default=None)

    def render(self) -> str:
        """Readable text: header, program source, steps, answer, support per answer element."""
        lines = [f"image {self.image_id or '(given facts)'} with {self.labels} labels, "
                 f"viewpos {self.viewpos or 'unknown'}, gender {self.gender or 'unknown'}",
                 "bindings: " + (", ".join(f"{k}={v!r}" for k, v in self.bindings.items()) or "none"),
                 "", str(self.program).rstrip(), "", "evaluation:"]
        lines += [f"  {'  ' * step.depth}{step.expression}  =>  {step.value}" for step in self.steps]
        lines += ["", f"answer: {self.answer}"]
        if self.expected is not None:
            same = "same" if self.expected == self.answer else "DIFFERENT"
            lines.append(f"built file says: {self.expected} ({same})")
        lines.append("support:")
        for element, supports in self.support.items():
            if not supports:
                lines.append(f"  {element}: no finding involved")
            for support in supports:
                obj, attribute, category = support.finding
                lines.append(f"  {element}: finding {obj} / {attribute} ({category})")
                if not support.rows:
                    lines.append("      (no label rows given)" if not self.rows_given
                                 else "      no supporting row found")
                lines += [f"      {row.render()}" for row in support.rows]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data with the same content as ``render``."""
        return {
            "image_id": self.image_id, "labels": self.labels, "program": self.program.name,
            "source": str(self.program), "bindings": dict(self.bindings),
            "viewpos": self.viewpos, "gender": self.gender, "answer": self.answer,
            "expected": self.expected,
            "steps": [{"depth": s.depth, "expression": s.expression, "value": s.value}
                      for s in self.steps],
            "support": {element: [{"finding": list(s.finding),
                                   "rows": [vars(row) for row in s.rows]} for s in supports]
                        for element, supports in self.support.items()},
        }


def explain(program: n.Program, facts: ImageFacts, bindings: Mapping[str, str | None], *,
            rows: Iterable[Mapping[str, Any]] | pd.DataFrame | None = None,
            ontology: Ontology | None = None,
            labels: str = "facts", image_id: str | None = None,
            expected: list[str] | None = None) -> Explanation:
    """Answer ``program`` on ``facts`` and explain how.

    Args:
        program: a checked program.
        facts: the image's facts.
        bindings: one value per parameter name (ignored parameters may be left out).
        rows: the image's label rows (keys row_id, bbox, categoryID, label_name,
            relation), in file order; without them support lists findings only.
        ontology: the build's ontology; needed with ``rows`` (the label step uses it).
        labels: "silver", "gold" or "facts", shown with each row.
        image_id: shown in the header.
        expected: an answer to compare with (e.g. the built file's).

    Raises:
        EvaluationError: wrong bindings, or facts that cannot answer.

    Example:
        >>> from cxrvqa.programs import bundled_programs
        >>> facts = ImageFacts([("left lung", "pneumonia", "disease")], "AP", "F", {})
        >>> explain(bundled_programs()["program_22"], facts, {"attribute": "pneumonia"}).answer
        ['yes']
    """
    bindings = dict(bindings)
    evaluate(program, facts, **{k: v for k, v in bindings.items() if v is not None})  # checks bindings
    values: dict[int, Value] = {}

    def record(node: n.Expr, value: Value) -> Value:
        values[id(node)] = value
        return value

    # Traced with each def call inlined as its own copy: a body shared by two calls would
    # record only the last call's values.
    inlined, calls, copies = _inline_calls(program)
    traced = compile_program(inlined, record)
    answer = render(traced.run(facts, [bindings.get(p.name) for p in program.params]))  # type: ignore[arg-type]
    values.update({original: values[id(copy)] for original, copy in copies.items()
                   if id(copy) in values})
    steps = tuple(_steps(program, values, calls))
    looked_at = sorted(frozenset().union(*_read_findings(program, values, calls)))
    if rows is not None and ontology is None:
        raise ValueError("explain: label rows need the ontology the build used")
    table = (_winning_rows(rows, ontology, labels, image_id or "image")
             if rows is not None and ontology is not None else {})
    support = {element: tuple(Support(f, tuple(table.get(f[:2], ())))
                              for f in _involved(element, looked_at, program.returns))
               for element in answer}
    return Explanation(program, bindings, answer, steps, support, image_id, labels,
                       facts.viewpos, facts.gender, rows is not None, expected)


def _inline_calls(program: n.Program) -> tuple[n.Program, dict[int, n.Expr], dict[int, n.Expr]]:
    """``program`` with each call of a definition replaced by a fresh copy of its body.

    Returns the new program, the copied body of each call (by id of the call node) and
    the copy of each of the program's own nodes (by id of the original).
    """
    defs = analyze(program, None).environment.defs
    calls: dict[int, n.Expr] = {}
    copies: dict[int, n.Expr] = {}

    def copy(node: n.Expr, scope: Mapping[str, n.Expr] | None) -> n.Expr:
        new = _copied(node, scope, defs, copy)
        if scope is None:  # the program's own node, not one of a definition's body
            copies[id(node)] = new
            if isinstance(node, n.Apply):
                calls[id(node)] = new
        return new

    lets = tuple(replace(let, value=copy(let.value, None)) for let in program.lets)
    return replace(program, lets=lets, body=copy(program.body, None)), calls, copies


def _copied(node: n.Expr, scope: Mapping[str, n.Expr] | None, defs: Mapping[str, n.Def],
            copy: Callable[[n.Expr, Mapping[str, n.Expr] | None], n.Expr]) -> n.Expr:
    """A fresh ``node`` whose children are ``copy``'d in ``scope`` (a def's params while its
    body is copied) and whose def calls are replaced by their bodies."""
    def child(expr: n.Expr) -> n.Expr:
        return copy(expr, scope)

    match node:
        case n.Name() if scope is not None and node.name in scope:
            return scope[node.name]  # a definition's parameter: its argument
        case n.Apply():
            definition = defs[node.name]
            args = {p.name: child(a) for p, a in zip(definition.params, node.args)}
            return copy(definition.value, args)
        case n.Filter():
            return replace(node, source=child(node.source), conditions=tuple(
                replace(c, value=child(c.value)) for c in node.conditions))
        case n.Call():
            return replace(node, args=tuple(map(child, node.args)))
        case n.SetOf():
            return replace(node, elements=tuple(map(child, node.elements)))
        case n.Binary():
            return replace(node, left=child(node.left), right=child(node.right))
        case n.Not():
            return replace(node, operand=child(node.operand))
    return node  # a leaf: its value is the same wherever it is


def _read_findings(program: n.Program, values: Mapping[int, Value],
                   calls: Mapping[int, n.Expr]) -> Iterable[frozenset[Finding]]:
    """The Findings values that a projection, exists, empty or count read: where answers come from."""
    for root in (*(let.value for let in program.lets), program.body):
        for node in _descendants(root, calls):
            value = values.get(id(node.args[0])) if isinstance(node, n.Call) else None
            if isinstance(value, frozenset) and any(isinstance(v, tuple) for v in value):
                yield value  # type: ignore[misc]  # a set of findings, checked above


def _descendants(node: n.Expr, calls: Mapping[int, n.Expr]) -> Iterable[n.Expr]:
    yield node
    for child in _children(node, calls):
        yield from _descendants(child, calls)


def _involved(element: str, looked_at: Sequence[Finding], returns: str) -> list[Finding]:
    if returns in ("bool", "number"):  # a yes/no or a count rests on all it looked at
        return list(looked_at)
    return [f for f in looked_at if element in (f[0].lower(), f[1].lower(), f[2].lower())]


# --- the trace -------------------------------------------------------------------------------

def _steps(program: n.Program, values: Mapping[int, Value],
           calls: Mapping[int, n.Expr]) -> Iterable[Step]:
    for let in program.lets:
        yield Step(0, f"let {let.name} = {let.value}", _show(values.get(id(let.value), _NOT_EVALUATED)))
        yield from _walk(let.value, values, calls, 1, show_self=False)
    yield from _walk(program.body, values, calls, 0, show_self=True)


def _walk(node: n.Expr, values: Mapping[int, Value], calls: Mapping[int, n.Expr], depth: int,
          show_self: bool) -> Iterable[Step]:
    """Pre-order steps of ``node``'s subtree, literals and the bare ``findings`` left out."""
    if isinstance(node, _LITERALS) or node == n.Fact("findings"):
        return
    if show_self:
        yield Step(depth, str(node), _show(values.get(id(node), _NOT_EVALUATED)))
        depth += 1
    for child in _children(node, calls):
        yield from _walk(child, values, calls, depth, show_self=True)


def _children(node: n.Expr, calls: Mapping[int, n.Expr]) -> tuple[n.Expr, ...]:
    match node:
        case n.Apply():  # a call of a definition: its body, evaluated for this call
            return (calls[id(node)],)
        case n.Filter():
            return (node.source, *(c.value for c in node.conditions))
        case n.Call():
            return node.args
        case n.SetOf():
            return node.elements
        case n.Binary():
            return (node.left, node.right)
        case n.Not():
            return (node.operand,)
    return ()


def _show(value: object) -> str:
    if value is _NOT_EVALUATED:
        return "(not evaluated)"
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "unknown"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, frozenset):
        shown = sorted(f"{v[0]} / {v[1]} ({v[2]})" if isinstance(v, tuple) else str(v) for v in value)
        return "{" + ", ".join(shown) + "}"
    return repr(value) if isinstance(value, str) else str(value)


# --- label rows behind findings ---------------------------------------------------------------

def _winning_rows(rows: Iterable[Mapping[str, Any]] | pd.DataFrame, ontology: Ontology,
                  labels: str, image_id: str) -> dict[tuple[str, str], list[LabelRow]]:
    """(object, attribute) -> the row the build's label step kept for it, for positive findings."""
    frame = pd.DataFrame(rows if isinstance(rows, pd.DataFrame) else list(rows))
    if frame.empty:
        return {}
    frame = frame.assign(image_id=image_id).reset_index(drop=True)
    origins = image_labels(frame, frozenset({image_id}), ontology, f"label rows of {image_id}",
                           origins=True).origins or {}
    table: dict[tuple[str, str], list[LabelRow]] = {}
    for (_, (obj, attribute, _category)), origin in origins.items():
        row = frame.iloc[origin.row]
        via = " and ".join(f"{kind} '{name}'" for kind, name in (
            ("attribute", origin.via_attribute), ("object", origin.via_object)) if name) or None
        table[obj, attribute] = [LabelRow(str(row["bbox"]), str(row["label_name"]),
                                          str(row["categoryID"]), int(row["relation"]),
                                          str(row["row_id"]), via, labels)]
    return table


# --- images, records and sources --------------------------------------------------------------

def parse_bindings(pairs: Iterable[str]) -> dict[str, str]:
    """``["object=left lung", "attribute_1=pneumonia"]`` -> bindings by parameter name.

    Raises:
        UsageError: a pair without ``=``, or a name given twice (the command line is wrong).
    """
    bindings: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--args {pair!r}: expected NAME=VALUE, e.g. object='left lung'")
        if name.strip() in bindings:
            raise UsageError(f"--args {pair!r}: {name.strip()} is given twice")
        bindings[name.strip()] = value.strip().strip("'\"")
    return bindings


def record_bindings(program: n.Program, record: Mapping[str, Any]) -> dict[str, str | None]:
    """A question record's ``template_arguments`` as bindings by parameter name."""
    arguments = record.get("template_arguments") or {}
    bindings: dict[str, str | None] = {}
    for kind, keys, positions in argument_plan(program):
        given = arguments.get(kind) or {}
        for key, position in zip(keys, positions):
            bindings[program.params[position].name] = given.get(key)
    return bindings


def explain_image(index: SceneIndex, image_id: str, program: n.Program,
                  bindings: Mapping[str, str | None], *,
                  rows: Iterable[Mapping[str, Any]] | pd.DataFrame | None,
                  labels: str | None = None, expected: list[str] | None = None) -> Explanation:
    """Explain ``program`` on an indexed image with the silver or gold facts (default: whichever holds it)."""
    labels = labels or ("gold" if image_id in index.gold else "silver")
    facts = (index.gold if labels == "gold" else index.silver).get(image_id)
    if facts is None:
        raise DataError(f"image {image_id!r}: not a labelled image of the {labels} cohort")
    return explain(program, facts, bindings, rows=rows, ontology=index.ontology, labels=labels,
                   image_id=image_id, expected=expected)


def explain_record(index: SceneIndex, record: Mapping[str, Any], *,
                   rows: Iterable[Mapping[str, Any]] | pd.DataFrame | None, labels: str,
                   programs: Mapping[str, n.Program] | None = None) -> Explanation:
    """Explain one built (or question) record; ``labels`` follows its file (test: gold)."""
    programs = programs if programs is not None else bundled_programs()
    program = programs.get(str(record.get("template_program")))
    if program is None:
        raise EvaluationError(f"unknown template program {record.get('template_program')!r}")
    return explain_image(index, str(record["image_id"]), program, record_bindings(program, record),
                         rows=rows, labels=labels, expected=record.get("answer"))


def explain_from_sources(layout: SourceLayout, *, image_id: str | None = None,
                         program: str | None = None, bindings: Mapping[str, str] | None = None,
                         record: str | None = None, dataset_dir: Path | None = None,
                         labels: str | None = None,
                         programs: Mapping[str, n.Program] | None = None) -> Explanation:
    """What ``cxrvqa explain`` runs: either image + program + bindings, or ``record="split:idx"``.

    ``programs`` is the program set (default: the bundled 48; ``--programs DIR`` adds a folder's).

    Raises:
        UsageError: neither mode, a record with an image, program or bindings of its own, an
            unknown program or wrong bindings.
        DataError: unknown image or record, unreadable files.
        EvaluationError: the record names an unknown program or holds wrong arguments, or the
            facts cannot answer.
    """
    from cxrvqa.build.index import load_index

    if record is not None:
        # A record names its image, program and arguments: others given too would be ignored.
        if image_id is not None or program is not None or bindings:
            raise UsageError("--record names the image, program and arguments; drop --image-id, "
                             "--program and --args")
        found = _built_record(Path(dataset_dir or "mimiccxrvqa/dataset"), record)
        cohort = labels or ("gold" if record.partition(":")[0] == "test" else "silver")
        image = str(found["image_id"])
        index = load_index(layout, keep_rows_of=frozenset({image}))
        return explain_record(index, found, rows=index.rows[cohort, image], labels=cohort,
                              programs=programs)
    if image_id is None or program is None:
        raise UsageError("explain needs --image-id with --program, or --record")
    # --program and --args come from the command line: wrong ones are usage errors (exit 2),
    # found before the sources are read.
    chosen = program_named(programs if programs is not None else bundled_programs(), program,
                           "--program")
    try:
        bound_arguments(chosen, bindings or {})
    except EvaluationError as err:
        raise UsageError(f"--args: {err}") from None
    index = load_index(layout, keep_rows_of=frozenset({image_id}))
    cohort = labels or ("gold" if image_id in index.gold else "silver")
    return explain_image(index, image_id, chosen, bindings or {}, labels=cohort,
                         rows=index.rows[cohort, image_id])


def _built_record(dataset_dir: Path, key: str) -> dict[str, Any]:
    from cxrvqa.tools.verify import read_records

    split, _, idx = key.partition(":")
    number = plain_int(idx)
    if split not in SPLITS or number is None:
        raise UsageError(f"--record {key!r}: expected SPLIT:IDX with a split of "
                         f"{', '.join(SPLITS)} and a decimal idx, e.g. test:12")
    path = dataset_dir / f"{split}.json"
    for record in read_records(path):
        if record.get("idx") == number:
            return record
    raise DataError(f"{path}: no record with idx {idx}")
