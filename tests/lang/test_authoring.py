"""An author's folder of new programs (examples/authoring) works in every command.

The folder uses a folder prelude (a const and a def), a program const, ``returns number``,
a decimal literal and header question types. Its answers through generate, build and
explain must equal the naive evaluator's (tests/naive_eval.py, not the compiler).
"""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from naive_eval import naive_answer, naive_evaluate

import cxrvqa
from cxrvqa.build.index import SceneIndex, load_index
from cxrvqa.build.layout import SourceLayout
from cxrvqa.cli import main
from cxrvqa.errors import DataError, EvaluationError
from cxrvqa.lang.check import facts_read
from cxrvqa.programs import bundled_programs, program_set
from cxrvqa.synth import SynthConfig, write_sources
from cxrvqa.tools.sqlite import register
from cxrvqa.vocab import VQA_ATTRIBUTES, VQA_OBJECTS, answer_vocabulary

REPO = Path(__file__).resolve().parents[2]
AUTHORING = REPO / "examples" / "authoring"
FOLDER_PRELUDE = (AUTHORING / "_prelude.cxr",)
NAMES = {"abnormal_left_count", "count_abnormalities", "free_of_abnormality",
         "left_side_findings", "mostly_abnormal"}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("authoring_tree")
    write_sources(folder, SynthConfig(patients=600, seed=11))
    return folder


@pytest.fixture(scope="module")
def index(root: Path) -> SceneIndex:
    return load_index(SourceLayout.from_root(root))


@pytest.fixture(scope="module")
def generated(root: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("generated") / "questions.json"
    assert main(["generate", "--physionet-root", str(root), "--split", "test",
                 "--per-template", "24", "--seed", "3", "--programs", str(AUTHORING),
                 "--out", str(out)]) == 0
    return json.loads(out.read_text(encoding="utf-8"))


def naive_bindings(program: cxrvqa.Program, arguments: dict[str, dict[str, str]]
                   ) -> dict[str, str]:
    """Param name -> value, read the way the released files are laid out (written apart)."""
    bindings = {}
    for param in program.params:
        kind, _, number = param.name.partition("_")
        bindings[param.name] = arguments[kind][str(int(number) - 1) if number else "0"]
    return bindings


def naive(record: dict[str, Any], index: SceneIndex) -> list[str]:
    program = cxrvqa.load_program(AUTHORING / f"{record['template_program']}.cxr")
    facts = index.gold[record["image_id"]]
    return naive_answer(naive_evaluate(program, facts, naive_bindings(
        program, record["template_arguments"]), FOLDER_PRELUDE))


def test_folder_checks_and_is_formatted(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--programs", str(AUTHORING)]) == 0
    assert "checked 5 programs and 1 prelude: no errors" in capsys.readouterr().out
    assert main(["fmt", "--check", str(AUTHORING), str(REPO / "programs")]) == 0
    assert set(cxrvqa.load_programs(AUTHORING)) == NAMES


def test_generate_answers_equal_the_naive_evaluation(generated: list[dict[str, Any]],
                                                     index: SceneIndex) -> None:
    assert {r["template_program"] for r in generated} == NAMES  # the folder's programs only
    for record in generated:
        assert record["answer"] == naive(record, index), record
    counts = [r["answer"] for r in generated if r["template_program"] == "count_abnormalities"]
    assert all(len(a) == 1 and a[0].isdigit() for a in counts)
    assert len({a[0] for a in counts}) >= 3  # numbers are balanced like any answer
    types = {(r["template_program"], r["content_type"], r["semantic_type"]) for r in generated}
    assert ("count_abnormalities", "count", "query") in types
    templates = {r["template"] for r in generated if r["template_program"] == "free_of_abnormality"}
    assert templates == {"Is the ${object} free of any abnormality?",
                         "Does the ${object} look normal?"}


def test_build_and_explain_with_the_folder(generated: list[dict[str, Any]], root: Path,
                                           index: SceneIndex, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    dataset, out = tmp_path / "dataset", tmp_path / "built"
    dataset.mkdir()
    questions = [{k: v for k, v in r.items() if k != "answer"} for r in generated]
    (dataset / "_test.json").write_text(json.dumps(questions, indent=2), encoding="utf-8")
    assert main(["build", "--physionet-root", str(root), "--dataset-dir", str(dataset),
                 "--output-dir", str(out), "--splits", "test",
                 "--programs", str(AUTHORING)]) == 0
    built = json.loads((out / "test.json").read_text(encoding="utf-8"))
    assert [r["answer"] for r in built] == [r["answer"] for r in generated]
    # ans2idx maps the default answers and the numbers the folder's programs gave, so that
    # export's multi-hot column (and a model's answer classes) cover every built answer.
    ans2idx = json.loads((out / "ans2idx.json").read_text(encoding="utf-8"))
    numbers = {a for r in built for a in r["answer"] if a.replace(".", "", 1).isdigit()}
    assert len(numbers) >= 3
    assert ans2idx.keys() == {*answer_vocabulary(VQA_OBJECTS, VQA_ATTRIBUTES), *numbers}
    assert list(ans2idx) == sorted(ans2idx) and list(ans2idx.values()) == list(range(len(ans2idx)))
    assert main(["export", "--format", "parquet", "--dataset-dir", str(out),
                 "--out", str(tmp_path / "parquet")]) == 0
    capsys.readouterr()
    number = next(r for r in built if r["template_program"] == "count_abnormalities")
    assert main(["explain", "--physionet-root", str(root), "--dataset-dir", str(out),
                 "--record", f"test:{number['idx']}", "--programs", str(AUTHORING),
                 "--json"]) == 0
    explained = json.loads(capsys.readouterr().out)
    assert explained["answer"] == explained["expected"] == number["answer"] == naive(number, index)
    # Without the folder the program is unknown: the folder is what makes it work.
    assert main(["explain", "--physionet-root", str(root), "--dataset-dir", str(out),
                 "--record", f"test:{number['idx']}"]) != 0


def test_func_vqa_with_the_folder(index: SceneIndex) -> None:
    conn = sqlite3.connect(":memory:")
    programs = program_set([AUTHORING])
    vqa = register(conn, index, programs=programs)
    study = next(iter(index.meta.values())).study_id
    with vqa.named_errors():
        value = conn.execute("select func_vqa(?, ?)",
                             ("How many objects on the left side are abnormal?", study)).fetchone()
    assert value is not None


def test_bad_argument_stops_the_build_with_file_record_and_term(
        generated: list[dict[str, Any]], root: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    questions = [{k: v for k, v in r.items() if k != "answer"} for r in generated]
    bad = next(i for i, r in enumerate(questions) if r["template_program"] == "count_abnormalities")
    questions[bad]["template_arguments"]["object"]["0"] = "left lugn"
    (tmp_path / "_test.json").write_text(json.dumps(questions, indent=2), encoding="utf-8")
    code = main(["build", "--physionet-root", str(root), "--dataset-dir", str(tmp_path),
                 "--output-dir", str(tmp_path / "out"), "--splits", "test",
                 "--programs", str(AUTHORING)])
    err = capsys.readouterr().err.strip()
    assert code == 3 and len(err.splitlines()) == 1
    assert f"_test.json: record {bad} " in err and "'left lugn'" in err
    assert "did you mean 'left lung'?" in err


def test_arguments_are_checked_in_evaluate_explain_and_image_facts(
        root: Path, index: SceneIndex, capsys: pytest.CaptureFixture[str]) -> None:
    program = cxrvqa.load_program(AUTHORING / "count_abnormalities.cxr")
    facts = cxrvqa.ImageFacts([("left lung", "pneumonia", "disease")], "AP", "F", {})
    assert cxrvqa.evaluate(program, facts, object="left lung") == ["1"]
    with pytest.raises(EvaluationError, match="'left lugn' is not a known object; did you mean"):
        cxrvqa.evaluate(program, facts, object="left lugn")
    image = next(iter(index.gold))
    assert main(["explain", "--physionet-root", str(root), "--programs", str(AUTHORING),
                 "--image-id", image, "--program", "count_abnormalities",
                 "--args", "object=martian lung"]) != 0
    assert "'martian lung' is not a known object" in capsys.readouterr().err
    vocabulary = cxrvqa.Vocabulary.default()
    with pytest.raises(ValueError, match="'martian flu' is not a known attribute"):
        cxrvqa.ImageFacts([("left lung", "martian flu", "disease")], vocabulary=vocabulary)
    with pytest.raises(ValueError, match="expected one of AP, PA"):
        cxrvqa.ImageFacts([], "LAT", vocabulary=vocabulary)
    # Before: a pair passed with no category checked, ints and strings ended in TypeErrors.
    for findings in ([("left lung", "pneumonia")], [(1, 2, 3)], "abc",
                     [("left lung", "pneumonia", "disease", "extra")]):
        with pytest.raises(ValueError, match="expected an .object, attribute, category. triple"):
            cxrvqa.ImageFacts(findings, vocabulary=vocabulary)
    with pytest.raises(ValueError, match="view position 5: expected a string or None"):
        cxrvqa.ImageFacts([], 5, vocabulary=vocabulary)  # type: ignore[arg-type]


def test_a_folder_program_replaces_a_bundled_one_said_once(tmp_path: Path) -> None:
    text = (REPO / "programs" / "program_3.cxr").read_text(encoding="utf-8")
    (tmp_path / "program_3.cxr").write_text(text.replace("exists(", "not exists("),
                                            encoding="utf-8")
    said = io.StringIO()
    programs = program_set([tmp_path], out=said)
    assert said.getvalue().count("\n") == 1 and "program_3" in said.getvalue()
    assert programs["program_3"] != bundled_programs()["program_3"]
    assert len(programs) == len(bundled_programs())


def test_programs_that_only_gain_wordings_are_said_in_one_line(tmp_path: Path) -> None:
    # A `cxrvqa paraphrases` copy replaces all 48 programs with the same answers: one note, not 48.
    for name, line in (("program_2", "Do you see ${attribute} in the ${object}?"),
                       ("program_22", "Do you see ${attribute}?"), ("program_3", None)):
        text = (REPO / "programs" / f"{name}.cxr").read_text(encoding="utf-8")
        if line is None:
            text = text.replace("exists(", "not exists(")
        else:
            text = text.replace("\ncontent_type", f'\ntemplate "{line}"\ncontent_type')
        (tmp_path / f"{name}.cxr").write_text(text, encoding="utf-8")
    said = io.StringIO()
    programs = program_set([tmp_path], out=said)
    assert said.getvalue().splitlines() == [
        f"note: {tmp_path / 'program_3.cxr'} replaces the program 'program_3' loaded before",
        f"note: {tmp_path}: 2 program(s) differ from those loaded before only in their template "
        "lines"]
    assert programs["program_22"].templates[-1].text == "Do you see ${attribute}?"


def test_folder_prelude_adds_names_and_clashes_are_reported(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    shutil.copy(AUTHORING / "_prelude.cxr", tmp_path / "_prelude.cxr")
    with (tmp_path / "_prelude.cxr").open("a", encoding="utf-8") as prelude:
        prelude.write('const ABNORMAL = categories {"disease"}\n')
    shutil.copy(AUTHORING / "free_of_abnormality.cxr", tmp_path)
    shutil.copy(AUTHORING / "count_abnormalities.cxr", tmp_path)
    assert main(["check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert out.count("'ABNORMAL' is already defined by a prelude (the bundled prelude, line 4)") == 1
    # The prelude's one error, counted once; the programs using it are not checked at all.
    assert out.endswith("found 1 error in 1 file; not checked: 2 programs whose folder's "
                        "_prelude.cxr has errors\n")
    assert main(["check", str(tmp_path / "count_abnormalities.cxr")]) == 1
    assert capsys.readouterr().out.endswith(
        "found 1 error in 1 file; not checked: 1 program whose folder's _prelude.cxr has errors\n")
    with pytest.raises(cxrvqa.ProgramError):
        cxrvqa.load_programs(tmp_path)


def test_generate_needs_the_header_types(root: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "untyped.cxr").write_text(
        'program untyped\ntemplate "Is there any abnormality?"\nreturns bool\n\n'
        "exists(findings[category in ABNORMAL])\n", encoding="utf-8")
    assert main(["generate", "--physionet-root", str(root), "--split", "test",
                 "--per-template", "2", "--programs", str(tmp_path),
                 "--out", str(tmp_path / "out.json")]) == DataError.exit_code
    assert "no 'content_type' header line" in capsys.readouterr().err


def test_fmt_rewrites_keeps_comments_and_checks(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "messy.cxr"
    path.write_text('// why this program exists\nprogram messy\ntemplate "Is there ${object}?"'
                    "  // the base wording\nparam object : object\nreturns bool\n// the answer\n"
                    "exists( findings[object=$object] )\n", encoding="utf-8")
    assert main(["fmt", "--check", str(path)]) == 1
    assert "+exists(findings[object = $object])" in capsys.readouterr().out
    assert main(["fmt", str(path)]) == 0
    assert path.read_text(encoding="utf-8") == (
        '// why this program exists\nprogram messy\ntemplate "Is there ${object}?"  '
        "// the base wording\nparam object: object\nreturns bool\n\n// the answer\n"
        "exists(findings[object = $object])\n")
    assert main(["fmt", "--check", str(path)]) == 0


def test_decimal_literals_and_their_limits() -> None:
    head = 'program p\ntemplate "t"\nreturns number\n\n'
    assert cxrvqa.evaluate(cxrvqa.parse(head + "count(findings) * 0.5 + 1.25"),
                           cxrvqa.ImageFacts([("left lung", "pneumonia", "disease")])) == ["1.75"]
    assert cxrvqa.evaluate(cxrvqa.parse(head + "3.0 + 0.0"), cxrvqa.ImageFacts([])) == ["3"]
    with pytest.raises(cxrvqa.ProgramSyntaxError, match="number literal too large"):
        cxrvqa.parse(head + "9" * 400 + ".5")


def test_generate_works_for_any_param_kinds(root: Path, index: SceneIndex, tmp_path: Path) -> None:
    (tmp_path / "any_kinds.cxr").write_text(
        'program any_kinds\n'
        'template "Is this a ${viewpos} image of a ${gender} patient with ${category} in the '
        '${object_1} but not the ${object_2}?"\n'
        "content_type presence\nsemantic_type verify\n"
        "param viewpos: viewpos\nparam gender: gender\nparam category: category\n"
        "param object_1: object\nparam object_2: object\nreturns bool\n\n"
        "viewpos = $viewpos and gender = $gender\n"
        "  and exists(findings[object = $object_1, category = $category])\n"
        "  and empty(findings[object = $object_2, category = $category])\n", encoding="utf-8")
    out = tmp_path / "out.json"
    assert main(["generate", "--physionet-root", str(root), "--split", "test",
                 "--per-template", "30", "--programs", str(tmp_path), "--out", str(out)]) == 0
    records = json.loads(out.read_text(encoding="utf-8"))
    programs = program_set([tmp_path])
    assert len(records) == 30 and {tuple(r["answer"]) for r in records} == {("yes",), ("no",)}
    for record in records:
        arguments = record["template_arguments"]
        assert arguments["viewpos"]["0"] in ("AP", "PA") and arguments["gender"]["0"] in "MF"
        assert arguments["object"]["0"] != arguments["object"]["1"]  # numbered params distinct
        assert cxrvqa.answer(programs, record, index.gold[record["image_id"]]) == record["answer"]


def test_facts_read_follows_only_the_definitions_a_program_uses(tmp_path: Path) -> None:
    # A prelude definition reading the view position used to count for every program of the
    # folder: generate then skipped images without one, func_vqa answered NULL for them.
    shutil.copy(AUTHORING / "_prelude.cxr", tmp_path / "_prelude.cxr")
    with (tmp_path / "_prelude.cxr").open("a", encoding="utf-8") as prelude:
        prelude.write('def seen_as(v: viewpos) = viewpos = v\n'
                      'def female_seen_as(v: viewpos) = gender = gender "F" and seen_as(v)\n')
    shutil.copy(AUTHORING / "free_of_abnormality.cxr", tmp_path)
    for name, body in {"seen": "seen_as($viewpos)", "both": "female_seen_as($viewpos)"}.items():
        (tmp_path / f"{name}.cxr").write_text(
            f'program {name}\ntemplate "Is this an ${{viewpos}} view?"\nparam viewpos: viewpos\n'
            f'returns bool\n\n{body}\n', encoding="utf-8")
    programs = cxrvqa.load_programs(tmp_path)

    assert facts_read(programs["free_of_abnormality"]) == {"findings"}
    assert facts_read(programs["seen"]) == {"viewpos"}
    assert facts_read(programs["both"]) == {"gender", "viewpos"}
    assert facts_read(bundled_programs()["program_44"]) == {"gender"}
