"""cxrvqa.tools.explain: traced values, not-evaluated steps, supporting label rows, and explaining built records."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from helpers import built_demo

from cxrvqa import load_programs, parse
from cxrvqa.build.labels import image_labels
from cxrvqa.build.layout import SourceLayout
from cxrvqa.build.loaders import read_gold_labels
from cxrvqa.build.ontology import build_ontology
from cxrvqa.cli import main
from cxrvqa.errors import DataError, EvaluationError, UsageError
from cxrvqa.facts import ImageFacts
from cxrvqa.programs import bundled_programs
from cxrvqa.synth.ontology import attribute_lines, ontology_json
from cxrvqa.tools.explain import (
    explain,
    explain_from_sources,
    explain_record,
    parse_bindings,
)
from cxrvqa.vocab import REPORT_OBJECTS

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PROGRAMS = bundled_programs()
LESION = "mass/nodule (not otherwise specified)"
# The synthetic semantics files: LESION's parents are lung opacity and lung lesion, and the left
# lower lung zone's parent is the left lung.
ONTOLOGY = build_ontology(REPORT_OBJECTS, [tuple(line.split("|")) for line in attribute_lines()],
                          json.loads(ontology_json()))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    demo = built_demo(tmp_path_factory.mktemp("demo"), seed=7)
    demo.gold_rows = read_gold_labels(demo.layout.gold_labels)
    return demo


def row(row_id: str, obj: str, attribute: str, relation: int,
        category: str = "anatomicalfinding") -> dict[str, object]:
    return {"row_id": row_id, "bbox": obj, "categoryID": category, "label_name": attribute,
            "relation": relation}


def test_steps_show_each_value_and_skip_short_circuited_ones() -> None:
    facts = ImageFacts([("right lung", "pneumonia", "disease")], "AP", "F", {})
    result = explain(PROGRAMS["program_12"], facts, {"object_1": "left lung",
                                                     "object_2": "right lung"})
    assert result.answer == ["no"]
    steps = {step.expression: step.value for step in result.steps}
    assert steps["exists(abnormal[object = $object_1])"] == "false"
    assert steps["$object_1"] == "'left lung'"
    # 'and' stopped at its left side, as the compiled code does
    assert steps["exists(abnormal[object = $object_2])"] == "(not evaluated)"
    assert steps["let abnormal = findings[category in ABNORMAL]"] == \
        "{right lung / pneumonia (disease)}"
    assert result.support == {"no": ()}


def test_support_is_the_row_the_label_step_kept_and_how_it_got_there() -> None:
    rows = [row("9|3", "left lung", "pneumonia", 0, "disease"),
            row("9|5", "left lung", "pneumonia", 1, "disease"),      # later sentence wins
            row("9|1", "left lung", "lung lesion", 0),               # loses the tie to a copy
            row("9|1", "left lower lung zone", LESION, 1),
            row("9|1", "left lower lung zone", "pneumonia", 1, "nlp")]  # nlp rows never count
    labels = image_labels(pd.DataFrame(rows).assign(image_id="i"), frozenset({"i"}), ONTOLOGY)
    facts = ImageFacts(labels.positives["i"])
    result = explain(PROGRAMS["program_7"], facts, {"category": "anatomicalfinding",
                                                    "object": "left lung"},
                     rows=rows, ontology=ONTOLOGY, labels="gold", image_id="i")
    assert result.answer == ["lung lesion", "lung opacity", LESION]
    (support,) = result.support["lung lesion"]
    assert support.finding == ("left lung", "lung lesion", "anatomicalfinding")
    # On equal sent_loc a propagated copy beats the original row (pipeline.md §4 step 4).
    assert [(r.row_id, r.object, r.attribute, r.via, r.labels) for r in support.rows] == [
        ("9|1", "left lower lung zone", LESION,
         f"attribute '{LESION}' and object 'left lower lung zone'", "gold")]
    (support,) = result.support[LESION]
    assert [(r.row_id, r.via) for r in support.rows] == [("9|1", "object 'left lower lung zone'")]
    disease = explain(PROGRAMS["program_2"], facts, {"attribute": "pneumonia", "object": "left lung"},
                      rows=rows, ontology=ONTOLOGY)
    assert [(r.row_id, r.via) for s in disease.support["yes"] for r in s.rows] == [("9|5", None)]
    assert "row 9|5: left lung / pneumonia (disease) relation=1, direct" in disease.render()


def test_rows_without_the_ontology_are_refused() -> None:
    with pytest.raises(ValueError, match="ontology"):
        explain(PROGRAMS["program_22"], ImageFacts([]), {"attribute": "pneumonia"},
                rows=[row("9|1", "left lung", "pneumonia", 1, "disease")])


def test_without_rows_findings_are_listed_alone() -> None:
    facts = ImageFacts([("trachea", "endotracheal tube", "tubesandlines")], "PA", None, {})
    result = explain(PROGRAMS["program_31"], facts, {"attribute": "endotracheal tube"})
    assert result.answer == ["trachea"]
    assert "(no label rows given)" in result.render()
    assert json.loads(json.dumps(result.to_json()))["support"]["trachea"][0]["rows"] == []


def test_bad_bindings() -> None:
    facts = ImageFacts([])
    with pytest.raises(EvaluationError, match="needs a name"):
        explain(PROGRAMS["program_22"], facts, {})
    assert parse_bindings(["object=left lung", "attribute_1='pneumonia'"]) == {
        "object": "left lung", "attribute_1": "pneumonia"}
    # The command line is wrong (exit 2), not the facts; a name given twice kept the last.
    with pytest.raises(UsageError, match="NAME=VALUE"):
        parse_bindings(["left lung"])
    with pytest.raises(UsageError, match="object is given twice"):
        parse_bindings(["object=left lung", "object=right lung"])


def test_every_built_record_is_explained_with_its_answer_and_rows(demo: SimpleNamespace) -> None:
    rows = {image: frame.to_dict("records") for image, frame in demo.gold_rows.groupby("image_id", observed=True)}
    for record in json.loads((demo.dataset / "test.json").read_text()):
        result = explain_record(demo.index, record, rows=rows[record["image_id"]], labels="gold")
        assert result.answer == record["answer"] == result.expected
        # Every finding an answer rests on is positive, so the label step kept one row for it.
        assert all(len(support.rows) == 1 and support.rows[0].relation == 1
                   for supports in result.support.values() for support in supports)


def test_record_and_image_modes_from_sources(demo: SimpleNamespace) -> None:
    record = json.loads((demo.dataset / "test.json").read_text())[3]
    result = explain_from_sources(demo.layout, record=f"test:{record['idx']}",
                                  dataset_dir=demo.dataset)
    assert (result.answer, result.labels, result.image_id) == (
        record["answer"], "gold", record["image_id"])
    result = explain_from_sources(demo.layout, image_id=record["image_id"],
                                  program="program_45", bindings={})
    assert result.labels == "gold" and result.answer in (["f"], ["m"])


def test_record_mode_refuses_other_modes_options_and_honours_labels(
        demo: SimpleNamespace) -> None:
    # Before: --image-id, --program and --args beside --record were ignored, --labels too, and
    # giving neither mode was a data error (exit 3).
    record = json.loads((demo.dataset / "test.json").read_text())[3]
    key = f"test:{record['idx']}"
    for extra in ({"image_id": "other"}, {"program": "program_1"}, {"bindings": {"a": "b"}}):
        with pytest.raises(UsageError, match="--record names the image"):
            explain_from_sources(demo.layout, record=key, dataset_dir=demo.dataset, **extra)
    with pytest.raises(DataError, match="not a labelled image of the silver cohort"):
        explain_from_sources(demo.layout, record=key, dataset_dir=demo.dataset, labels="silver")
    with pytest.raises(UsageError, match="needs --image-id with --program"):
        explain_from_sources(demo.layout, image_id=record["image_id"])


def test_bad_record_and_image(demo: SimpleNamespace) -> None:
    with pytest.raises(DataError, match="no record with idx 99999"):
        explain_from_sources(demo.layout, record="test:99999", dataset_dir=demo.dataset)
    with pytest.raises(DataError, match="not a labelled image"):
        explain_from_sources(demo.layout, image_id="nope", program="program_45")


def test_bad_bindings_fail_before_the_sources_are_read(tmp_path: Path) -> None:
    # Before: the whole index loaded first (tens of seconds at full size), so a typo in --args
    # was reported after it; here the sources do not even exist.
    layout = SourceLayout.from_root(tmp_path)
    for bindings, message in (({"object": "left lugn", "attribute": "pneumonia"}, "left lung"),
                              ({"object": "left lung"}, "param 'attribute' needs a name"),
                              ({"objet": "left lung"}, "no param named 'objet'")):
        with pytest.raises(UsageError, match=message):
            explain_from_sources(layout, image_id="x", program="program_2", bindings=bindings)


def test_example_script_runs() -> None:
    result = subprocess.run([sys.executable, str(EXAMPLES / "explain_answer.py")],
                            capture_output=True, text=True, check=True)
    assert "answer: ['lung opacity']" in result.stdout
    assert "via object 'left lower lung zone'" in result.stdout


def test_a_definition_called_twice_shows_each_call_and_its_findings_support_the_answer(
        tmp_path: Path) -> None:
    # Before: both calls shared the definition's nodes, the trace stopped at the call and a
    # 'yes' resting on two abnormal findings said "no finding involved".
    (tmp_path / "_prelude.cxr").write_text(
        "def n_abnormal(o: object) = count(attributes(findings[object = o, category in ABNORMAL]))\n")
    (tmp_path / "more_abnormal.cxr").write_text(
        'program more_abnormal\ntemplate "Does the ${object_1} have more abnormalities than the '
        '${object_2}?"\nparam object_1: object\nparam object_2: object\nreturns bool\n\n'
        "n_abnormal($object_1) > n_abnormal($object_2)\n")
    program = load_programs(tmp_path)["more_abnormal"]
    facts = ImageFacts([("left lung", "pneumonia", "disease"), ("left lung", "effusion", "disease"),
                        ("right lung", "atelectasis", "anatomicalfinding"),
                        ("right lung", "low lung volumes", "technicalassessment")], "AP", "F", {})
    result = explain(program, facts, {"object_1": "left lung", "object_2": "right lung"})
    assert result.answer == ["yes"]
    steps = [(s.depth, s.expression, s.value) for s in result.steps]
    assert (1, "n_abnormal($object_1)", "2") in steps and (1, "n_abnormal($object_2)", "1") in steps
    assert (2, "count(attributes(findings[object = $object_2, category in ABNORMAL]))", "1") in steps
    assert {s.finding for s in result.support["yes"]} == {
        ("left lung", "pneumonia", "disease"), ("left lung", "effusion", "disease"),
        ("right lung", "atelectasis", "anatomicalfinding")}


def test_a_category_answer_is_supported_by_its_findings() -> None:
    program = parse('program p\ntemplate "Which kinds of findings are in the ${object}?"\n'
                    'param object: object\nreturns list\n\ncategories(findings[object = $object])')
    facts = ImageFacts([("left lung", "pneumonia", "disease"),
                        ("left lung", "low lung volumes", "technicalassessment")], "AP", "F", {})
    result = explain(program, facts, {"object": "left lung"})
    assert result.answer == ["disease", "technicalassessment"]
    assert [s.finding for s in result.support["disease"]] == [("left lung", "pneumonia", "disease")]
    assert "no finding involved" not in result.render()


def test_a_wrong_program_or_args_on_the_command_line_is_a_usage_error(
        demo: SimpleNamespace, capsys: pytest.CaptureFixture[str]) -> None:
    # Before: exit 3 (a data error) after reading the sources, and no did-you-mean for a program.
    image = next(iter(demo.index.gold))
    base = ["explain", "--physionet-root", str(demo.root), "--image-id", image]
    for extra, message in (
            (["--program", "program_222", "--args", "attribute=pneumonia"],
             "--program: 'program_222': no such template program; did you mean 'program_22'?"),
            (["--program", "program_22", "--args", "attribute=pneumonya"],
             "--args: program_22: param 'attribute' 'pneumonya' is not a known attribute; "
             "did you mean 'pneumonia'?"),
            (["--program", "program_22"], "--args: program_22: param 'attribute' needs a name"),
            (["--program", "program_22", "--args", "object=left lung"],
             "--args: program_22: no param named 'object'")):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"cxrvqa: error: {message}") and err.count("\n") == 1
