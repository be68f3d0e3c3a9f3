"""The grammar: LALR-clean, located robustly, and parsed into the intended trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxrvqa import CxrvqaError, ProgramSyntaxError, check, parse
from cxrvqa.lang import nodes as n
from cxrvqa.lang.parser import build_parser, parse_prelude
from cxrvqa.lang.resources import data_dir, grammar_path

HEAD = 'program p\ntemplate "t"\nreturns bool\n\n'


def body(text: str) -> n.Expr:
    return parse(HEAD + text).body


def syntax_code(text: str) -> str:
    with pytest.raises(ProgramSyntaxError) as raised:
        parse(text)
    [diagnostic] = raised.value.diagnostics
    return diagnostic.code


def test_grammar_is_found_and_builds_strictly() -> None:
    assert grammar_path().name == "cxrvqa.lark" and grammar_path().is_file()
    build_parser(strict=True)  # raises on any LALR conflict or terminal collision


def test_unknown_data_folder_is_a_clear_error() -> None:
    with pytest.raises(CxrvqaError, match="cannot find the bundled 'nothing' folder"):
        data_dir("nothing")


def test_precedence_layers() -> None:
    a, b, c = n.Name("a"), n.Name("b"), n.Name("c")
    assert body("not a and b or c") == n.Binary("or", n.Binary("and", n.Not(a), b), c)
    assert body("a - b | c") == n.Binary("|", n.Binary("-", a, b), c)
    assert body("a | b - c") == n.Binary("|", a, n.Binary("-", b, c))
    assert body("a & b & c") == n.Binary("&", n.Binary("&", a, b), c)
    assert body("a in b | c") == n.Binary("in", a, n.Binary("|", b, c))
    assert body("1 + 2 * 3 > 4 / 5") == n.Binary(
        ">", n.Binary("+", n.Number(1), n.Binary("*", n.Number(2), n.Number(3))),
        n.Binary("/", n.Number(4), n.Number(5)))
    assert body("a[object = $o][category in b | c]") == n.Filter(
        n.Filter(a, (n.Condition("object", "=", n.ParamRef("o")),)),
        (n.Condition("category", "in", n.Binary("|", b, c)),))


@pytest.mark.parametrize(("text", "code"), [
    (HEAD + "a | b & c", "E103"),
    (HEAD + "a & b | c", "E103"),
    (HEAD + "a < b < c", "E101"),
    (HEAD + "a = b = c", "E101"),
    (HEAD + "exists(findings", "E102"),
    (HEAD + 'object "left lung', "E104"),
    (HEAD + "foo (findings)", "E106"),
    ('program p\nparam object: object\ntemplate "t"\nreturns bool\n\nfindings', "E101"),
    (HEAD + "let exists = findings\nexists(exists)", "E101"),
    (HEAD + "findings\nlet x = findings", "E101"),
    (HEAD + "1 - -1", "E101"),
    (HEAD + "a & b)", "E101"),
    (HEAD + "$here(findings)", "E101"),
])
def test_syntax_errors(text: str, code: str) -> None:
    assert syntax_code(text) == code


def test_name_and_parenthesis_are_a_call_of_a_definition() -> None:
    # 'foo(' is one token: a call the checker resolves (E106 if nothing defines 'foo').
    assert body("foo(findings)") == n.Apply("foo", (n.Fact("findings"),))
    assert body("exists(findings)") == n.Call("exists", (n.Fact("findings"),))
    assert body("not(a)") == n.Not(n.Name("a"))
    assert [d.code for d in check(parse(HEAD + "foo(findings)"))] == ["E106"]


def test_header_and_lets() -> None:
    program = parse('// comment\nprogram p // trailing comment\ntemplate "A ${object}?"\n'
                    'template "Is there something at the ${object}?"\n'
                    'param object: object\nparam category: category ignored\nreturns list\n\n'
                    'let here = findings[object = $object]\nlet what = attributes(here)\nwhat\n')
    assert [t.text for t in program.templates] == ["A ${object}?",
                                                   "Is there something at the ${object}?"]
    assert program.params == (n.Param("object", "object"), n.Param("category", "category", True))
    assert [let.name for let in program.lets] == ["here", "what"]
    assert program.body == n.Name("what")


def test_keywords_that_are_also_param_names() -> None:
    program = parse('program p\ntemplate "${viewpos}"\nparam viewpos: viewpos\nreturns bool\n\n'
                    'viewpos = $viewpos and viewpos != viewpos "AP"')
    assert program.body == n.Binary(
        "and", n.Binary("=", n.Fact("viewpos"), n.ParamRef("viewpos")),
        n.Binary("!=", n.Fact("viewpos"), n.Term("viewpos", "AP")))


def test_strings_and_typed_literals() -> None:
    assert body(r'objects {"a \"b\"", "c\\d"}') == n.TermSet("objects", ('a "b"', "c\\d"))
    assert body("categories {}") == n.TermSet("categories", ())
    assert body('{gender, gender "F"}') == n.SetOf((n.Fact("gender"), n.Term("gender", "F")))


def test_spans_are_one_based_positions() -> None:
    program = parse(HEAD + "exists(findings)\n")
    span = program.body.span
    assert span is not None
    assert (span.line, span.column, span.end_line, span.end_column) == (5, 1, 5, 17)


def test_prelude() -> None:
    assert parse_prelude("").constants == ()
    prelude = parse_prelude('const X = 1\n// note\nconst Y_2 = X + 1\n')
    assert [c.name for c in prelude.constants] == ["X", "Y_2"]
    with pytest.raises(ProgramSyntaxError):
        parse_prelude("const lower = 1")


def test_cached_parser_tables_parse_like_freshly_built_ones(tmp_path: Path) -> None:
    cache = tmp_path / "tables"
    fresh = build_parser()
    written = build_parser(cache=str(cache))   # builds the tables and writes them
    assert cache.stat().st_size > 0
    loaded = build_parser(cache=str(cache))    # reads them back
    text = (data_dir("programs") / "program_32.cxr").read_text(encoding="utf-8")
    trees = [parser.parse(text, start="program") for parser in (fresh, written, loaded)]
    assert trees[0] == trees[1] == trees[2]


def test_parser_cache_lives_in_the_user_cache_folder(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from cxrvqa.lang import parser

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("CXRVQA_NO_CACHE", raising=False)
    assert parser._cache_file() == str(tmp_path / "cxrvqa" / "parser.lark-cache")
    monkeypatch.setenv("CXRVQA_NO_CACHE", "1")
    assert parser._cache_file() is False


def test_a_byte_order_mark_in_a_string_is_not_program_text() -> None:
    # A file read with encoding="utf-8" keeps the BOM; before, parse() stopped at 1:1 on it.
    text = HEAD + "exists(findings)"
    assert parse("\ufeff" + text) == parse(text)
    with pytest.raises(ProgramSyntaxError, match=r"<string>:1:9: error"):
        parse("\ufeffprogram 1p")  # columns count from the first character after the mark
