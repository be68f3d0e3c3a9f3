"""Mistakes authors of new templates make: each gets a located message, never a silent answer."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from cxrvqa import ProgramSyntaxError, check, load_program, parse
from cxrvqa.cli import main
from cxrvqa.errors import DataError
from cxrvqa.lang.check import check_prelude
from cxrvqa.lang.fmt import format_source
from cxrvqa.lang.parser import parse_prelude
from cxrvqa.programs import program_set

REPO = Path(__file__).resolve().parents[2]
HEADER = 'program p\ntemplate "Is the patient ${gender}?"\nparam gender: gender\nreturns bool\n\n'


@pytest.mark.parametrize(("body", "what", "column"), [
    # Declared, the keyword lexes as a name; used, it is the keyword: the image's gender.
    ("def is_g(gender: gender) = gender = gender\nis_g($gender)", "a definition's parameter", 10),
    ("let findings = findings[attribute = attribute \"pneumonia\"]\nexists(findings)",
     "a let", 5),
    # 'count(' calls the built-in, never the definition.
    ("def count(g: gender) = g = gender\ncount($gender)", "a definition", 5),
])
def test_a_keyword_cannot_name_a_let_a_def_or_its_param(body: str, what: str, column: int) -> None:
    with pytest.raises(ProgramSyntaxError) as caught:
        parse(HEADER + body, "p.cxr")
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.code == "E101"
    assert f"is a keyword and cannot name {what}" in diagnostic.message
    assert diagnostic.span is not None
    assert (diagnostic.span.line, diagnostic.span.column) == (6, column)
    assert diagnostic.render().splitlines()[2].strip() == "^"


@pytest.mark.parametrize(("body", "name", "what"), [
    # Used, the keyword does not parse ('count' needs '('): the error names the declaration,
    # not the use, where 'expected (' would send the author looking in the wrong place.
    ("let count = findings\nexists(count)", "count", "a let"),
    ("let x1 = findings\nlet a = x1\nexists(a)", "x1", "a let"),
    ("def width(g: gender) = g = gender\nwidth + 1 > 2", "width", "a definition"),
])
def test_a_keyword_named_let_is_named_when_its_use_does_not_parse(body: str, name: str,
                                                                  what: str) -> None:
    with pytest.raises(ProgramSyntaxError) as caught:
        parse(HEADER + body, "p.cxr")
    (diagnostic,) = caught.value.diagnostics
    assert (diagnostic.code, diagnostic.message) == (
        "E101", f"'{name}' is a keyword and cannot name {what}")
    assert diagnostic.span is not None
    assert (diagnostic.span.line, diagnostic.span.column) == (6, 5)


OBJECT_HEADER = 'program p\ntemplate "Is the ${object} odd?"\nparam object: object\nreturns bool\n\n'


@pytest.mark.parametrize(("body", "code", "message"), [
    ("def f(o: object) = f(o)\nf($object)", "E106",
     "'f' is used in its own definition: definitions cannot be recursive"),
    ("def f(o: object) = g(o)\ndef g(o: object) = f(o)\nf($object)", "E106",
     "'g' is defined further down, at line 7: a name can be used only below its definition"),
    ("const A = B\nconst B = findings[object = object \"left lung\"]\nexists(A) and $object in objects(B)",
     "E201", "'B' is defined further down, at line 7: a name can be used only below its definition"),
    ("let a = b\nlet b = findings[object = $object]\nexists(a) and exists(b)", "E201",
     "'b' is defined further down, at line 7: a name can be used only below its definition"),
    # README: a program's param or let inside a definition is E206.
    ("def f(o: object) = exists(here[object = o])\nlet here = findings\nf($object) and exists(here)",
     "E206", "a definition cannot use the program's let 'here'"),
])
def test_out_of_order_and_recursive_names_say_so(body: str, code: str, message: str) -> None:
    (diagnostic,) = check(parse(OBJECT_HEADER + body, "p.cxr"))
    assert (diagnostic.code, diagnostic.message) == (code, message)
    assert diagnostic.span is not None and diagnostic.span.line == 6


def test_a_prelude_definition_cannot_use_a_later_one() -> None:
    prelude = parse_prelude("def f(o: object) = g(o)\ndef g(o: object) = exists(findings[object = o])\n",
                            "_prelude.cxr")
    (diagnostic,) = check_prelude(prelude)
    assert diagnostic.message == ("'g' is defined further down, at line 2: a name can be used "
                                  "only below its definition")


PROGRAM_1 = (REPO / "programs" / "program_1.cxr").read_text(encoding="utf-8")


def test_an_editors_byte_order_mark_and_line_ends_are_accepted(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Before: "program_1.cxr:1:1: error: unexpected character '\ufeff'" from check, fmt and build.
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "program_1.cxr").write_bytes(b"\xef\xbb\xbf" + PROGRAM_1.replace("\n", "\r\n").encode())
    assert main(["check", str(folder)]) == 0
    assert main(["fmt", "--check", str(folder)]) == 0  # formatted: the mark is not the program's
    assert "would reformat 0 of 1" in capsys.readouterr().out
    assert load_program(folder / "program_1.cxr") == load_program(REPO / "programs" / "program_1.cxr")


def test_a_file_that_is_not_utf8_names_line_and_column(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "program_1.cxr"
    text = PROGRAM_1.partition("\n")[2]  # without its first line's '§'
    path.write_bytes(text.replace('"Are', '"\xc4re').encode("latin-1"))  # 'Äre' in Latin-1
    line = text[:text.index('"Are')].count("\n") + 1
    assert main(["check", str(path)]) == 1
    assert capsys.readouterr().out.startswith(
        f"{path}:{line}:11: error: cannot read this file as UTF-8 text (byte 0xc4 is not UTF-8")
    with pytest.raises(DataError, match=rf"program_1\.cxr:{line}:11: cannot read"):
        load_program(path)


def test_fmt_keeps_a_blank_line_between_comments_after_the_last_item() -> None:
    # README: single blank lines between comment lines are kept; after the body they were not.
    text = (PROGRAM_1.rstrip("\n") + "\n\n// notes\n\n// more notes\n")
    formatted = format_source(text, "program_1.cxr")
    assert formatted.endswith("\n// notes\n\n// more notes\n")
    assert format_source(formatted, "program_1.cxr") == formatted


def test_a_definition_called_with_a_blank_before_the_parenthesis_says_how_to_call_it() -> None:
    text = OBJECT_HEADER + "def f(o: object) = exists(findings[object = o])\nf ($object)"
    with pytest.raises(ProgramSyntaxError) as caught:
        parse(text, "p.cxr")
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.code == "E106" and diagnostic.span is not None
    assert (diagnostic.span.line, diagnostic.span.column) == (7, 1)
    assert diagnostic.hint is not None
    assert diagnostic.hint.endswith("a definition is called with no blank before '(': 'f(...)'")
    # Without a blank the hint stays as it was: tests/golden/errors/e106_unknown_function.err.


@pytest.mark.parametrize("template", ["Is the $object ok?", "Is the ${object ok?"])
def test_a_slot_written_without_braces_is_pointed_at(template: str) -> None:
    text = f'program p\ntemplate "{template}"\nparam object: object\nreturns bool\n\n' \
           'exists(findings[object = $object])'
    (diagnostic,) = check(parse(text, "p.cxr"))
    assert (diagnostic.code, diagnostic.hint) == ("E402", "write the slot as '${object}'")
    assert diagnostic.span is not None
    assert (diagnostic.span.line, diagnostic.span.column) == (2, 18)  # at the '$'


def test_programs_in_a_subfolder_of_a_programs_folder_are_said_to_be_left_out(
        tmp_path: Path) -> None:
    # Before: 'check mine' checked mine/sub/*.cxr but '--programs mine' left them out silently.
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "program_1.cxr").write_text(PROGRAM_1, encoding="utf-8")
    (tmp_path / "sub" / "deeper" / "program_2.cxr").write_text(
        (REPO / "programs" / "program_2.cxr").read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "sub" / "_prelude.cxr").write_text("const NOTHING = objects {}\n", encoding="utf-8")
    said = io.StringIO()
    program_set([tmp_path], out=said)
    deeper = tmp_path / "sub" / "deeper"
    assert (f"note: {deeper}: programs in a subfolder are not loaded; add --programs {deeper}"
            in said.getvalue().splitlines())
    assert f"{tmp_path / 'sub'}:" not in said.getvalue()  # a prelude alone is no program


def test_a_misspelt_fact_gets_a_did_you_mean() -> None:
    (diagnostic,) = check(parse(OBJECT_HEADER + "exists(findngs[object = $object])", "p.cxr"))
    assert (diagnostic.code, diagnostic.message, diagnostic.hint) == (
        "E201", "unknown name 'findngs'", "did you mean 'findings'?")


@pytest.mark.parametrize(("text", "where", "message"), [
    # 'boolean' lexed as 'bool' and a body 'ean': "unexpected 'exists('" two lines below.
    ('program p\ntemplate "x ${object}?"\nparam object: object\nreturns boolean\n\n'
     "exists(findings[object = $object])", (4, 9), "'returns boolean': not a result kind"),
    # The body read as the name 'param': "unexpected 'object'".
    ('program p\ntemplate "x ${object}?"\nreturns bool\nparam object: object\n\n'
     "exists(findings[object = $object])", (4, 1), "'param' line after a 'returns' line"),
    ('program p\ntemplate "x ${object}?"\nparam object: object\nreturns bool\n\n'
     "let a = findings[object = $object]\nconst C = 1\nexists(a)", (7, 1),
     "'const' line after a 'let' line"),
    # "unexpected 'exists('" without a hint.
    ('program p\ntemplate "x ${object}?"\nparam object: object\n\n'
     "exists(findings[object = $object])", (5, 1), "no 'returns' line before the body"),
])
def test_misplaced_or_missing_item_lines_are_named(text: str, where: tuple[int, int],
                                                   message: str) -> None:
    with pytest.raises(ProgramSyntaxError) as caught:
        parse(text, "p.cxr")
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.span is not None
    assert (diagnostic.code, diagnostic.message) == ("E101", message)
    assert (diagnostic.span.line, diagnostic.span.column) == where


@pytest.mark.parametrize(("line", "body", "where", "word", "keyword"), [
    ("param object: objects", "exists(findings[object = $object])", (3, 15), "objects", "object"),
    ("param object: object", "exists(findings[objects = $object])", (6, 17), "objects", "object"),
])
def test_a_keyword_with_letters_after_it_is_shown_whole(line: str, body: str,
                                                        where: tuple[int, int], word: str,
                                                        keyword: str) -> None:
    # Before: "unexpected 's'" (the lexer takes the keyword and leaves the rest).
    with pytest.raises(ProgramSyntaxError) as caught:
        parse(f'program p\ntemplate "x ${{object}}?"\n{line}\nreturns bool\n\n{body}', "p.cxr")
    (diagnostic,) = caught.value.diagnostics
    assert (diagnostic.message, diagnostic.hint) == (f"unexpected {word!r}",
                                                     f"did you mean {keyword!r}?")
    assert diagnostic.span is not None
    assert (diagnostic.span.line, diagnostic.span.column) == where


def test_a_misspelt_keyword_gets_a_did_you_mean() -> None:
    with pytest.raises(ProgramSyntaxError) as caught:
        parse('program p\ntemplate "x ${object}?"\nparam object: object ignore\nreturns bool\n\n'
              "exists(findings)", "p.cxr")
    (diagnostic,) = caught.value.diagnostics
    assert (diagnostic.message, diagnostic.hint) == ("unexpected 'ignore'",
                                                     "did you mean 'ignored'?")


def test_a_long_flat_chain_says_why_it_is_deep() -> None:
    terms = " or ".join(f"exists(findings[object = $object, attribute = attribute \"a{i}\"])"
                        for i in range(120))
    with pytest.raises(ProgramSyntaxError) as caught:
        parse(OBJECT_HEADER + terms, "p.cxr")
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.code == "E107"
    assert diagnostic.hint == ("each 'or' of a chain is one level: group its terms, e.g. "
                               "'(a or b) or (c or d)', or name parts with let")
    halves = " or ".join(f"({' or '.join(terms.split(' or ')[i:i + 60])})" for i in (0, 60))
    assert parse(OBJECT_HEADER + halves, "p.cxr").body is not None  # grouped, it parses


def test_a_term_set_of_a_kind_without_one_says_which_kinds_have_them() -> None:
    # Before: "unexpected '{'" with the hint "expected ')' or 'or'".
    with pytest.raises(ProgramSyntaxError) as caught:
        parse('program p\ntemplate "Which view?"\nreturns list\n\n{viewpos} - viewposes {"AP"}',
              "p.cxr")
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.message == "unexpected 'viewposes {'"
    assert diagnostic.hint is not None and diagnostic.hint.startswith(
        "term sets are objects {…}, attributes {…} and categories {…}")
    assert diagnostic.span is not None and (diagnostic.span.line, diagnostic.span.column) == (5, 13)
