"""The checker: names, kinds, header rules, vocabulary, preludes and ``check_paths`` output."""

from __future__ import annotations

import io
import typing
from pathlib import Path

import pytest

from cxrvqa import (
    ProgramError,
    ProgramHeaderError,
    ProgramNameError,
    ProgramSyntaxError,
    Vocabulary,
    check,
    load_program,
    load_programs,
    parse,
)
from cxrvqa.lang import nodes as n
from cxrvqa.lang.check import Checker, check_paths, check_prelude
from cxrvqa.lang.compiler import CodeGenerator
from cxrvqa.lang.parser import parse_prelude
from cxrvqa.lang.resources import programs_dir


def codes(text: str, path: str | None = None, vocabulary: Vocabulary | None = None) -> list[str]:
    return [d.code for d in check(parse(text, path), vocabulary)]


HEADER = 'program p\ntemplate "Is there ${attribute} in the ${object}?"\n' \
         'param attribute: attribute\nparam object: object\nreturns bool\n\n'


def test_bundled_programs_check(tmp_path: Path) -> None:
    out = io.StringIO()
    assert check_paths([programs_dir()], out=out) == 0
    assert out.getvalue() == "checked 48 programs and 1 prelude: no errors\n"


def test_check_paths_reports_every_file_and_fails(tmp_path: Path) -> None:
    (tmp_path / "bad.cxr").write_text("program bad\ntemplate \"x\"\nreturns bool\n\n\tfoo\n")
    (tmp_path / "worse.cxr").write_text("program worse template")
    (tmp_path / "fine.cxr").write_text("program fine\ntemplate \"x\"\nreturns bool\n\n"
                                       "exists(findings)\n")
    out = io.StringIO()
    assert check_paths([tmp_path], out=out) == 1
    bad, worse = tmp_path / "bad.cxr", tmp_path / "worse.cxr"
    assert out.getvalue() == (
        f"{bad}:5:2: error: unknown name 'foo'\n"
        "          foo\n"          # the tab expands to 8 columns, so does the caret's indent
        "          ^\n"
        f"{worse}:1:23: error: unexpected end of input\n"
        "  program worse template\n"
        "                        ^\n"
        "  hint: expected a string\n"
        "found 2 errors in 2 files\n")


def test_check_paths_missing_or_empty(tmp_path: Path) -> None:
    out = io.StringIO()
    assert check_paths([tmp_path / "nope.cxr", tmp_path], out=out) == 1
    assert out.getvalue() == (f"{tmp_path / 'nope.cxr'}: error: no such file or folder\n"
                              f"{tmp_path}: error: no .cxr files in this folder\n"
                              "found 2 errors in 2 files\n")


def test_one_mistake_gives_one_message() -> None:
    # The unknown name has no kind, so neither '|' nor 'exists' nor 'returns' complain.
    assert codes(HEADER + "exists(findings[object = $object, attribute = $attribute] | nope)") \
        == ["E201"]


def test_diagnostics_are_collected_and_sorted() -> None:
    text = ('program p\ntemplate "${object}"\nparam object: object\nparam object: object\n'
            'returns list\n\nlet x = findings\n{$object} | attributes(findings) | $nope\n')
    diagnostics = check(parse(text))
    assert [(d.code, d.span.line) for d in diagnostics if d.span] == \
        [("E405", 4), ("E205", 7), ("E301", 8), ("E202", 8)]


def test_kind_errors() -> None:
    assert codes(HEADER + "objects(findings) and exists(findings[object = $object, "
                 "attribute = $attribute])") == ["E301"]
    assert codes(HEADER + "exists(findings[object = $object, attribute = $attribute]) "
                 "and x1(object \"left lung\")") == ["E301"]
    assert codes(HEADER + "$object = $attribute") == ["E301"]
    assert codes(HEADER + "count() > 0 and $object = $object and $attribute = $attribute") \
        == ["E302"]
    assert codes(HEADER + "width($object) - objects(findings[attribute = $attribute]) > 1") \
        == ["E301"]
    assert codes(HEADER + "exists({$object}[attribute = $attribute])") == ["E304"]
    assert codes(HEADER + "exists({findings} & findings[object = $object, "
                 "attribute = $attribute])") == ["E305"]


def test_set_difference_and_numeric_minus_share_one_operator() -> None:
    assert codes(HEADER + "count(objects(findings[attribute = $attribute]) - {$object}) - 1 > 0") \
        == []


def test_header_rules() -> None:
    ignored = ('program p\ntemplate "Which ${category} at the ${object}?"\n'
               'param category: category ignored\nparam object: object\nreturns list\n\n'
               'attributes(findings[object = $object])\n')
    assert codes(ignored) == []
    paraphrased = HEADER.replace('\nparam attribute', '\ntemplate "Is ${attribute} there?"\nparam attribute', 1)
    assert codes(paraphrased + "exists(findings[object = $object, attribute = $attribute])") \
        == ["E402"]
    assert codes(HEADER + "exists(findings[object = $object, attribute = $attribute])",
                 "elsewhere/q.cxr") == ["E406"]
    assert codes(HEADER.replace("param attribute: attribute", "param attribute_2: attribute")
                 .replace("${attribute}", "${attribute_2}")
                 + "exists(findings[object = $object, attribute = $attribute_2])") == ["E407"]


def test_vocabulary_is_checked_against_the_given_vocabulary() -> None:
    text = HEADER + ('exists(findings[object = $object, attribute = $attribute]) and '
                     'exists(findings[object = object "left ventricle"])')
    assert codes(text) == ["E203"]
    custom = Vocabulary(frozenset({"left ventricle"}), frozenset(), frozenset())
    assert codes(text, vocabulary=custom) == []


def test_prelude_checks() -> None:
    prelude = parse_prelude('const A = objects {"left lung"}\nconst A = $object\n'
                            'const B = A | attributes(findings)\n')
    assert [d.code for d in check_prelude(prelude)] == ["E204", "E206", "E301"]


def test_load_program_raises_every_diagnostic(tmp_path: Path) -> None:
    path = tmp_path / "p.cxr"
    path.write_text('program p\ntemplate "${object}"\nparam object: object\nreturns bool\n\n'
                    'exists(findings[object = $object, category = category "diseases"]) and '
                    '$objet = $objet\n')
    with pytest.raises(ProgramNameError) as raised:
        load_program(path)
    assert [d.code for d in raised.value.diagnostics] == ["E203", "E202", "E202"]
    path.write_text("program p template")
    with pytest.raises(ProgramSyntaxError):
        load_program(path)


def test_load_programs_collects_all_files(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / f"{name}.cxr").write_text(f'program {name}\ntemplate "${{x}}"\nreturns bool\n'
                                             '\nexists(findings)\n')
    with pytest.raises(ProgramHeaderError) as raised:
        load_programs(tmp_path)
    assert {d.source.name for d in raised.value.diagnostics if d.source} == \
        {str(tmp_path / "a.cxr"), str(tmp_path / "b.cxr")}
    (tmp_path / "c.cxr").write_text("program c")
    with pytest.raises(ProgramError) as mixed:
        load_programs(tmp_path)
    assert type(mixed.value) is ProgramError  # syntax and header errors: the common base


def test_program_built_in_code_renders_without_position() -> None:
    program = n.Program("p", (n.Template("t"),), (), "bool", (), n.Fact("findings"))
    [diagnostic] = check(program)
    assert diagnostic.render() == "<program>: error: the body is Findings but the header says " \
                                  "'returns bool'"


def test_every_expression_node_has_checker_and_interpreter_visitors() -> None:
    for cls in typing.get_args(n.Expr):
        assert hasattr(Checker, f"visit_{cls.__name__}"), cls
        assert hasattr(CodeGenerator, f"visit_{cls.__name__}"), cls



def test_control_characters_in_names_and_text_are_shown_escaped(tmp_path: Path) -> None:
    # Before: a line break in a file name split the diagnostic's first line in two, and a
    # terminal escape in the name or the source line reached the terminal as is.
    folder = tmp_path / "odd\nname \x1b[31m"
    folder.mkdir()
    (folder / "program_1.cxr").write_text(
        'program program_1\ntemplate "Is ${object}?"\nparam object: object\nreturns bool\n\n'
        'exists(findings[object = $object, attribute = attribute "\x1b[2J"]) %\n')
    out = io.StringIO()
    assert check_paths([folder / "program_1.cxr"], out=out) == 1
    first, source, caret = out.getvalue().splitlines()[:3]
    escaped = str(tmp_path / "odd\\nname \\x1b[31m" / "program_1.cxr")
    assert first == f"{escaped}:6:66: error: unexpected character '%'"
    assert source == '  exists(findings[object = $object, attribute = attribute "\\x1b[2J"]) %'
    assert caret == " " * source.index("%") + "^"  # under the '%' as shown
