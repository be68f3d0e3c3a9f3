"""Tests of the reference oracle itself: its intermediate tables on hand-made trees.

The rule tests compare the oracle with ``cxrvqa build``; these pin the oracle's own cohorts,
ontology, label table and programs to values derived by hand, so that a shared mistake
cannot hide behind agreement.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from oracle import OracleError, build_reference, reference_ans2idx
from oracle.builder import Reference, load_reference
from oracle.labels import dense_labels
from oracle.programs import run_program
from treebuilder import DEFAULT_BOXES, Box, SourceTree

SUBJECT, STUDY = 10_000_000, 50_000_000
LUNG = "left lung"


def _load(tree: SourceTree, root: Path) -> Reference:
    tree.write(root)
    return load_reference(root)


def _day(day: int) -> int:
    return 21800100 + day


def test_study_order_uses_earliest_image_of_any_view_and_dense_ties(tmp_path: Path) -> None:
    tree = SourceTree()
    s = SUBJECT + 1
    tree.image(s, 50_100_000, date=_day(5))
    tree.image(s, 50_200_000, date=_day(9))
    tree.image(s, 50_200_000, view="LATERAL", date=_day(1))
    tree.image(s, 50_300_007, date=_day(7), time=93000.25)
    tree.image(s, 50_300_001, date=_day(7), time=93000.25)
    tree.image(s, 50_400_000, date=_day(7), time=93000.25)
    metadata = _load(tree, tmp_path).metadata
    mine = metadata[metadata["subject_id"] == s]
    order = dict(zip(mine["study_id"], mine["StudyOrder"]))
    # 502 starts on day 1 (its lateral); 503000x share their six leading digits and tie (dense).
    assert order == {50_200_000: 1, 50_100_000: 2, 50_300_007: 3, 50_300_001: 3, 50_400_000: 4}


def test_silver_cohort_applies_every_step(tmp_path: Path) -> None:
    tree = SourceTree()
    kept = {
        "earliest": tree.image(SUBJECT + 1, STUDY + 10_000, time=110000.5,
                               dicom="0c000000-aaaaaaaa-aaaaaaaa-aaaaaaaa-aaaaaaaa"),
        "smaller dicom": tree.image(SUBJECT + 1, STUDY + 20_000,
                                    dicom="0d000000-aaaaaaaa-aaaaaaaa-aaaaaaaa-aaaaaaaa"),
        "no boxes": tree.image(SUBJECT + 2, STUDY + 30_000, boxes=False),
    }
    dropped = {
        "later": tree.image(SUBJECT + 1, STUDY + 10_000, time=120000.5,
                            dicom="0b000000-aaaaaaaa-aaaaaaaa-aaaaaaaa-aaaaaaaa"),
        "larger dicom": tree.image(SUBJECT + 1, STUDY + 20_000,
                                   dicom="0e000000-aaaaaaaa-aaaaaaaa-aaaaaaaa-aaaaaaaa"),
        "lateral": tree.image(SUBJECT + 3, STUDY + 40_000, view="LATERAL"),
        "no view": tree.image(SUBJECT + 4, STUDY + 50_000, view=None),
        "35 boxes": tree.image(SUBJECT + 5, STUDY + 60_000, boxes=False),
        "gold patient": tree.image(SUBJECT + 6, STUDY + 70_000),
    }
    tree.boxes(dropped["35 boxes"], omit=["svc"])
    tree.gold(dropped["gold patient"], LUNG, "pneumonia")
    cohort = set(_load(tree, tmp_path).silver.cohort["image_id"])
    assert set(kept.values()) <= cohort
    assert not set(dropped.values()) & cohort


def test_width_outliers_are_judged_against_all_rows(tmp_path: Path) -> None:
    tree = SourceTree()
    default = DEFAULT_BOXES["svc"]
    for n in range(12):
        tree.silver_box_rows.append((f"filler{n}", "svc", default))
    low = tree.image(SUBJECT + 1, STUDY + 10_000, boxes=False)
    tree.boxes(low, {"svc": Box(0, 20)})
    # 13 equal svc widths (12 box-only rows and the box filler image) and one other value:
    # that value sits 13 / sqrt(14) ≈ 3.47 sd from the mean, beyond 3 sd however close it is.
    assert low not in set(_load(tree, tmp_path).silver.cohort["image_id"])


def test_gold_cohort_swaps_in_the_named_image(tmp_path: Path) -> None:
    tree = SourceTree()
    s = SUBJECT + 7
    pick = tree.image(s, STUDY + 10_000, time=110000.5)
    named = tree.image(s, STUDY + 10_000, view="AP", time=120000.5)
    second = tree.image(s, STUDY + 20_000)
    tree.gold(named, LUNG, "pneumonia")
    reference = _load(tree, tmp_path)
    gold = set(reference.gold.cohort["image_id"])
    assert {named, second} <= gold and pick not in gold
    assert len(reference.gold_pids) == 500 and len(set(reference.gold.kept["image_id"])) == 500


def test_ontology_edits_and_possible_pairs(tmp_path: Path) -> None:
    tree = SourceTree()
    tree.ontology["all_children"] = {"upper mediastinum": ["trachea"],
                                     **tree.ontology["all_children"]}
    tree.ontology["possible_attribute_of"]["tortuous aorta"] = ["trachea"]
    tree.ontology["possible_attribute_of"]["enlarged hilum"] = ["left hilar structures"]
    tree.write(tmp_path)
    ontology = load_reference(tmp_path).ontology
    assert "sternotomy wires" not in ontology.attributes and len(ontology.attributes) == 74
    assert ontology.object_parents["left hilar structures"] == [LUNG]
    assert ontology.object_parents["svc"] == ["mediastinum"]
    assert list(ontology.object_parents)[:2] == ["trachea", "left upper lung zone"]
    assert ontology.attribute_parents["atelectasis"] == ["lung opacity"]
    assert ontology.possible["tortuous aorta"] == ["trachea", "upper mediastinum", "mediastinum"]
    assert ontology.possible["enlarged hilum"] == ["left hilar structures", LUNG]
    assert ontology.category_of["pericardial effusion"] == "disease"


def test_kept_rows_follow_the_tie_rules(tmp_path: Path) -> None:
    tree = SourceTree()
    a = tree.image(SUBJECT + 1, STUDY + 10_000)
    tree.silver(a, LUNG, "lung opacity", 0, sent=2)
    tree.silver(a, "left lower lung zone", "consolidation", 1, sent=2)
    tree.silver(a, "left upper lung zone", "atelectasis", 0, sent=2)
    kept = _load(tree, tmp_path).silver.kept
    relation = {(row.bbox, row.label_name): row.relation for row in kept.itertuples()}
    assert relation == {
        (LUNG, "lung opacity"): 1,  # the lower zone's lung opacity copy, made last in the walk
        ("left lower lung zone", "consolidation"): 1,
        ("left lower lung zone", "lung opacity"): 1,
        ("left upper lung zone", "atelectasis"): 0,
        ("left upper lung zone", "lung opacity"): 0,
        (LUNG, "consolidation"): 1,
        (LUNG, "atelectasis"): 0,
    }


def test_dense_labels_add_every_possible_pair_as_normal(tmp_path: Path) -> None:
    tree = SourceTree()
    a = tree.image(SUBJECT + 1, STUDY + 10_000)
    tree.silver(a, LUNG, "pneumonia", 1)
    reference = _load(tree, tmp_path)
    dense = dense_labels(reference.silver.kept, reference.ontology)
    # 74 attributes x the 16 default objects (their parents are among them already).
    assert len(dense) == len(reference.ontology.possible_pairs()) == 74 * 16
    assert dense[dense["relation"] == 1][["bbox", "label_name"]].values.tolist() == [
        [LUNG, "pneumonia"]]


def _features(rows: list[tuple[str, str, str, int]], view: str | None = "AP",
              gender: str | None = "M") -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=["object", "attribute", "category", "relation"])
    return table.assign(ViewPosition=view, gender=gender, x1=float("nan"), x2=float("nan"))


def _args(**kinds: list[str]) -> dict[str, dict[str, str]]:
    return {kind: {str(i): v for i, v in enumerate(kinds.get(kind, []))}
            for kind in ("object", "attribute", "category", "viewpos", "gender")}


FEATURES = _features([
    (LUNG, "pneumonia", "disease", 1), (LUNG, "rotated", "technicalassessment", 1),
    ("spine", "scoliosis", "anatomicalfinding", 1),
    ("spine", "lung opacity", "anatomicalfinding", 0),
])


@pytest.mark.parametrize(("program", "args", "answer"), [
    ("program_3", _args(object=["spine"], category=["device"]), ["yes"]),
    ("program_8", _args(object=[LUNG]), ["pneumonia"]),
    ("program_10", _args(object=[LUNG], category=["device"], attribute=["rotated", "hernia"]),
     ["rotated"]),
    ("program_15", _args(object=["spine", LUNG], category=["anatomicalfinding"]), ["scoliosis"]),
    ("program_27", _args(), ["pneumonia", "scoliosis"]),
    ("program_33", _args(object=[LUNG, "neck"]), [LUNG]),
    ("program_36", _args(attribute=["scoliosis", "lung opacity"]), ["spine"]),
    ("program_40", _args(category=["disease", "technicalassessment"]), [LUNG]),
    ("program_42", _args(), ["ap"]),
    ("program_44", _args(gender=["M"]), ["yes"]),
])
def test_programs_read_positive_findings(program: str, args: dict[str, dict[str, str]],
                                         answer: list[str]) -> None:
    assert run_program(program, FEATURES, args) == answer


@pytest.mark.parametrize(("program", "args"), [
    ("program_49", _args()),
    ("program_2", _args(object=[LUNG])),
    ("program_45", _args()),
    ("program_47", _args()),
])
def test_programs_refuse_what_the_published_builder_cannot_answer(
        program: str, args: dict[str, dict[str, str]]) -> None:
    # Unknown program, a missing argument, an unknown gender, no boxes.
    with pytest.raises(OracleError):
        run_program(program, _features([(LUNG, "pneumonia", "disease", 1)], gender=None), args)


def test_gold_labels_need_500_patients(tmp_path: Path) -> None:
    tree = SourceTree()
    dataset = tree.write(tmp_path, gold_patients=499)
    with pytest.raises(OracleError, match="499 patients"):
        build_reference(tmp_path, dataset)


def test_ans2idx_matches_the_published_file(tmp_path: Path) -> None:
    SourceTree().write(tmp_path)
    ans2idx = reference_ans2idx(tmp_path)
    assert len(ans2idx) == 110
    assert {"abdomen": 0, "ap": 4, "f": 27, "left lung": 47, "m": 57, "no": 65, "pa": 66,
            "yes": 109}.items() <= ans2idx.items()


def test_oracle_imports_nothing_from_cxrvqa() -> None:
    # Independence is the oracle's point: a fresh interpreter that imports all of it must not
    # have loaded any cxrvqa module (directly or through a test helper such as treebuilder).
    oracle_dir = Path(__file__).resolve().parents[1] / "oracle"
    modules = sorted(path.stem for path in oracle_dir.glob("*.py") if path.stem != "__init__")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import importlib; "
            f"[importlib.import_module('oracle.' + name) for name in {modules!r}]; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'cxrvqa'))")
    done = subprocess.run([sys.executable, "-c", code, str(oracle_dir.parent)],
                          capture_output=True, text=True, check=True)
    assert len(modules) >= 6 and done.stdout.strip() == "[]"
