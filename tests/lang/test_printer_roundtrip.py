"""``str(node)`` prints canonical source that parses back to the same AST."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from strategies import programs

from cxrvqa import Program, parse
from cxrvqa.lang import nodes as n
from cxrvqa.lang.parser import parse_prelude
from cxrvqa.lang.resources import prelude_path, programs_dir

PROGRAM_FILES = sorted(programs_dir().glob("program_*.cxr"))


@pytest.mark.parametrize("path", PROGRAM_FILES, ids=[p.stem for p in PROGRAM_FILES])
def test_program_files_round_trip_and_are_formatted(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    program = parse(text)
    assert parse(str(program)) == program
    assert eval(repr(program), vars(n)) == program  # noqa: S307  # repr is constructor syntax
    without_comments = "".join(line for line in text.splitlines(keepends=True)
                               if not line.startswith("//"))
    assert str(program) == without_comments


def test_prelude_round_trips() -> None:
    prelude = parse_prelude(prelude_path().read_text(encoding="utf-8"))
    assert parse_prelude(str(prelude)) == prelude


@given(programs())
def test_generated_programs_round_trip(generated: tuple[Program, dict[str, str]]) -> None:
    program, _ = generated
    text = str(program)
    assert parse(text) == program
    assert str(parse(text)) == text


A, B, C = n.Name("a"), n.Name("b"), n.Name("c")


@pytest.mark.parametrize(("node", "text"), [
    (n.Binary("-", A, n.Binary("-", B, C)), "a - (b - c)"),
    (n.Binary("-", n.Binary("-", A, B), C), "a - b - c"),
    (n.Binary("&", n.Binary("|", A, B), C), "(a | b) & c"),
    (n.Binary("|", n.Binary("|", A, B), C), "a | b | c"),
    (n.Binary("|", A, n.Binary("|", B, C)), "a | (b | c)"),
    (n.Binary("|", n.Binary("-", A, B), C), "a - b | c"),
    (n.Binary("-", n.Binary("|", A, B), C), "(a | b) - c"),
    (n.Not(n.Binary("and", A, B)), "not (a and b)"),
    (n.Binary("and", n.Binary("or", A, B), C), "(a or b) and c"),
    (n.Binary("=", n.Binary("=", A, B), C), "(a = b) = c"),
    (n.Binary("in", A, n.Binary("|", B, C)), "a in b | c"),
    (n.Binary("/", n.Number(1), n.Binary("*", n.Number(2), n.Number(3))), "1 / (2 * 3)"),
    (n.Filter(n.Binary("|", A, B), (n.Condition("object", "=", n.ParamRef("object")),)),
     "(a | b)[object = $object]"),
    (n.Filter(n.Filter(A, (n.Condition("category", "in", n.Name("ABNORMAL")),)),
              (n.Condition("attribute", "in", n.Binary("&", B, C)),)),
     "a[category in ABNORMAL][attribute in b & c]"),
    (n.TermSet("objects", ('say "hi"', "back\\slash")), r'objects {"say \"hi\"", "back\\slash"}'),
    (n.TermSet("categories", ()), "categories {}"),
    (n.SetOf((n.Fact("viewpos"), n.Term("viewpos", "AP"))), '{viewpos, viewpos "AP"}'),
])
def test_parentheses_only_where_needed(node: n.Expr, text: str) -> None:
    assert str(node) == text
    program = parse(f'program p\ntemplate "t"\nreturns bool\n\n{text}\n')
    assert program.body == node
