"""The public API: a small, sorted ``__all__`` that an outside pipeline can use in a few lines."""

from __future__ import annotations

import doctest
import importlib
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import cxrvqa

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = [
    "CxrvqaError", "DataError", "Diagnostic", "EvaluationError", "ImageFacts", "Program",
    "ProgramError", "ProgramHeaderError", "ProgramNameError", "ProgramSyntaxError",
    "ProgramTypeError", "Span", "Vocabulary", "__version__", "answer", "check", "evaluate",
    "load_program",
    "load_programs", "parse",
]
DSL_MODULES = ["lang.answers", "lang.check", "lang.diagnostics", "lang.compiler", "lang.kinds",
               "lang.nodes", "lang.parser", "lang.printer", "lang.resources", "lang.source",
               "lang.templates", "errors", "programs"]


def test_all_is_curated_and_sorted() -> None:
    assert cxrvqa.__all__ == PUBLIC == sorted(PUBLIC)
    for name in cxrvqa.__all__:
        assert getattr(cxrvqa, name) is not None


def test_version_matches_pyproject() -> None:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        version = tomllib.load(handle)["project"]["version"]
    assert cxrvqa.__version__ == version == "0.1.0"


def test_error_classes_form_one_tree() -> None:
    for name in ("ProgramSyntaxError", "ProgramNameError", "ProgramTypeError",
                 "ProgramHeaderError"):
        assert issubclass(getattr(cxrvqa, name), cxrvqa.ProgramError)
    for name in ("ProgramError", "EvaluationError", "DataError"):
        assert issubclass(getattr(cxrvqa, name), cxrvqa.CxrvqaError)


def test_pipeline_in_a_few_lines() -> None:
    programs = cxrvqa.load_programs()
    assert list(programs) == [f"program_{i}" for i in range(1, 49)]
    facts = cxrvqa.ImageFacts([("left lung", "pneumonia", "disease")], "PA", "M", {})
    record = {"template_program": "program_32", "template_arguments": {
        "attribute": {"0": "pneumonia"}, "object": {"0": "left lung", "1": "right lung"}}}
    assert cxrvqa.answer(programs, record, facts) == ["left lung"]
    assert cxrvqa.evaluate(programs["program_43"], facts) == ["pa"]


def test_parse_check_evaluate() -> None:
    program = cxrvqa.parse('program p\ntemplate "Is there ${attribute}?"\n'
                           'param attribute: attribute\nreturns bool\n\n'
                           'exists(findings[attribute = $attribute])\n')
    assert cxrvqa.check(program) == []
    facts = cxrvqa.ImageFacts([("svc", "picc", "tubesandlines")])
    assert cxrvqa.evaluate(program, facts, attribute="picc") == ["yes"]
    with pytest.raises(cxrvqa.EvaluationError, match="p: param 'attribute' needs a name"):
        cxrvqa.evaluate(program, facts)
    with pytest.raises(cxrvqa.EvaluationError, match="p: no param named 'object'"):
        cxrvqa.evaluate(program, facts, attribute="picc", object="svc")


def test_parse_names_a_wrong_argument_type() -> None:
    # Before: parse(5) was an AttributeError, parse(None) Lark's "Cannot lex: No text assigned".
    for wrong in (None, b"program p", 5):
        with pytest.raises(TypeError, match="expected the program text as str"):
            cxrvqa.parse(wrong)  # type: ignore[arg-type]


def test_program_evaluate_is_a_deprecated_shim_for_cxrvqa_evaluate() -> None:
    program = cxrvqa.load_programs()["program_43"]
    facts = cxrvqa.ImageFacts([], "AP")
    with pytest.warns(DeprecationWarning, match=r"use cxrvqa\.evaluate\(program, facts"):
        assert program.evaluate(facts) == cxrvqa.evaluate(program, facts) == ["ap"]


def test_an_unchecked_program_cannot_be_evaluated() -> None:
    program = cxrvqa.parse('program p\ntemplate "t"\nreturns bool\n\nobjects(findings)\n')
    with pytest.raises(cxrvqa.ProgramTypeError):
        cxrvqa.evaluate(program, cxrvqa.ImageFacts([]))


@pytest.mark.parametrize("module", DSL_MODULES)
def test_docstring_examples(module: str) -> None:
    result = doctest.testmod(importlib.import_module(f"cxrvqa.{module}"))
    assert result.failed == 0


def test_example_script_answers_its_new_template() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "answer_new_template.py")],
                          capture_output=True, text=True, env=env, check=True)
    assert done.stdout == "left lung: ['yes']\nright lung: ['no']\n"


@pytest.mark.parametrize("old", ["pipeline", "sources", "sqlite", "interpreter"])
def test_old_module_paths_work_with_a_deprecation_warning(old: str) -> None:
    from cxrvqa._compat import MOVED

    new = importlib.import_module(f"cxrvqa.{MOVED[old]}")
    sys.modules.pop(f"cxrvqa.{old}", None)
    with pytest.warns(DeprecationWarning, match=f"cxrvqa.{old} moved to cxrvqa.{MOVED[old]}"):
        assert importlib.import_module(f"cxrvqa.{old}") is new


def test_old_paths_of_the_readme_still_resolve() -> None:
    for old in ("cxrvqa.pipeline", "cxrvqa.sources"):
        sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning):
        from cxrvqa.pipeline import build, load_index  # noqa: F401
        from cxrvqa.sources import SourceLayout  # noqa: F401
    assert cxrvqa.check.__module__ == "cxrvqa.lang.check" and callable(cxrvqa.evaluate)


def test_importing_the_command_line_loads_no_heavy_library() -> None:
    # `cxrvqa --help` or a small build must not pay for what it does not use (issue 17).
    heavy = ("lark", "pandas", "numpy", "pyarrow", "pydantic", "tqdm", "msgspec")
    code = f"import sys, cxrvqa.cli; print([m for m in {heavy!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.stdout.strip() == "[]"


def test_public_names_are_loaded_on_first_use() -> None:
    code = ("import sys, cxrvqa; before = 'lark' in sys.modules; cxrvqa.parse; "
            "print(before, 'lark' in sys.modules, 'parse' in dir(cxrvqa))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.stdout.split() == ["False", "True", "True"]
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        cxrvqa.nothing  # noqa: B018
