"""Golden cases: every bundled program on hand-made images, through the API and the naive evaluator.

Cases live in tests/golden/cases/program_<N>.json (expected answers derived by
hand from pipeline.md §5); the images in tests/golden/cases/_scenes.txt.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from naive_eval import NaiveError, naive_answer, naive_evaluate

from cxrvqa import EvaluationError, ImageFacts, Program, answer
from cxrvqa.programs import bundled_programs

CASES = Path(__file__).resolve().parents[1] / "golden" / "cases"


def read_scenes(path: Path) -> dict[str, ImageFacts]:
    """Parse the scene file format described at the top of _scenes.txt."""
    scenes: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or line == "object | attribute | category":
            continue
        key, _, value = line.partition(":")
        if key == "scene":
            current = scenes[value.strip()] = {"findings": [], "boxes": {}}
        elif key in ("viewpos", "gender"):
            current[key] = None if value.strip() == "none" else value.strip()
        elif key.startswith("box "):
            x1, x2 = value.split()
            current["boxes"][key[4:]] = (int(x1), int(x2))
        else:
            obj, attribute, category = (part.strip() for part in line.split("|"))
            current["findings"].append((obj, attribute, category))
    return {name: ImageFacts(s["findings"], s["viewpos"], s["gender"], s["boxes"])
            for name, s in scenes.items()}


SCENES = read_scenes(CASES / "_scenes.txt")


def load_cases() -> list[Any]:
    params = []
    for path in sorted(CASES.glob("program_*.json")):
        for case in json.loads(path.read_text(encoding="utf-8")):
            params.append(pytest.param(path.stem, case, id=f"{path.stem}:{case['title']}"))
    return params


def naive_bindings(program: Program, arguments: dict[str, dict[str, str]]) -> dict[str, str]:
    """Bind params by their names ('object' -> "0", 'object_2' -> "1"), written apart from cxrvqa."""
    bindings = {}
    for param in program.params:
        given = arguments.get(param.kind, {})
        if len(given) != sum(p.kind == param.kind for p in program.params):
            raise NaiveError("wrong number of arguments")
        number = param.name[len(param.kind) + 1:]
        bindings[param.name] = given[str(int(number) - 1) if number else "0"]
    return bindings


@pytest.mark.parametrize(("name", "case"), load_cases())
def test_program_case(name: str, case: dict[str, Any]) -> None:
    facts = SCENES[case["scene"]]
    record = {"template_program": name, "template_arguments": case["arguments"]}
    program = bundled_programs()[name]
    if "error" in case:
        with pytest.raises(EvaluationError, match=re.escape(case["error"])):
            answer(bundled_programs(), record, facts)
        with pytest.raises(NaiveError):
            naive_evaluate(program, facts, naive_bindings(program, case["arguments"]))
    else:
        assert answer(bundled_programs(), record, facts) == case["answer"]
        value = naive_evaluate(program, facts, naive_bindings(program, case["arguments"]))
        assert naive_answer(value) == case["answer"]


def test_every_program_has_cases_for_each_branch() -> None:
    for name, program in bundled_programs().items():
        cases = json.loads((CASES / f"{name}.json").read_text(encoding="utf-8"))
        answers = [c["answer"] for c in cases if "answer" in c]
        if program.returns == "bool":
            assert ["yes"] in answers and ["no"] in answers, name
        elif name not in ("program_42", "program_43", "program_45", "program_46"):
            assert [] in answers and any(answers), name  # one-element lists are never empty
        else:
            assert any("error" in c for c in cases), name


def test_record_errors() -> None:
    facts = SCENES["mixed"]
    with pytest.raises(EvaluationError, match="unknown template program 'program_49'"):
        answer(bundled_programs(), {"template_program": "program_49"}, facts)
    with pytest.raises(EvaluationError, match="program_1: expected 1 category argument"):
        answer(bundled_programs(), {"template_program": "program_1",
                                    "template_arguments": {"object": {"0": "svc"}}}, facts)
    with pytest.raises(EvaluationError, match="object argument '0' needs a name, got None"):
        answer(bundled_programs(), {"template_program": "program_3",
                                    "template_arguments": {"object": {"1": "svc"}}}, facts)
    with pytest.raises(EvaluationError, match="template_arguments must map kinds"):
        answer(bundled_programs(), {"template_program": "program_3",
                                    "template_arguments": {"object": ["svc"]}}, facts)
