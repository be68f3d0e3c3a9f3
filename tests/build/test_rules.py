"""One focused test per rule of pipeline.md §2–§6, each on a tiny hand-made source tree.

Every test writes a tree with ``SourceTree``, runs the real ``cxrvqa build`` on it, checks
that the reference oracle (tests/oracle) produces exactly the same records, and asserts the
answers derived by hand in the test. Rules that exclude an image are observed the only way a
build can show them: a question on an excluded image is an error (both builders refuse).
"""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path
from typing import Any

import pytest
from oracle import OracleError, build_reference, reference_ans2idx
from treebuilder import Box, SourceTree, build_argv, build_checked

from cxrvqa.cli import main

SUBJECT, STUDY = 10_000_000, 50_000_000
LUNG = "left lung"
Records = dict[str, list[dict[str, Any]]]


def _image(tree: SourceTree, n: int, **kwargs: Any) -> str:
    """Patient n's image in its own study; study ids differ in their leading digits."""
    return tree.image(SUBJECT + n, STUDY + n * 10_000, **kwargs)


def _ask(tree: SourceTree, image: str, obj: str, attribute: str) -> None:
    tree.ask("_train_part1", image, "program_2", object=[obj], attribute=[attribute])


def _fails(tree: SourceTree, root: Path) -> None:
    """Both builders must refuse the tree."""
    dataset = tree.write(root)
    with pytest.raises(OracleError):
        build_reference(root, dataset)
    assert main(build_argv(root)) != 0


def _answers(records: list[dict[str, Any]]) -> list[list[str]]:
    return [record["answer"] for record in records]


# --- §4 step 3: report level ------------------------------------------------------------------

def test_later_sentence_wins(tmp_path: Path) -> None:
    tree = SourceTree()
    a, b, c = (_image(tree, n) for n in range(1, 4))
    tree.silver(a, LUNG, "pneumonia", 1, sent=9)
    tree.silver(a, LUNG, "pneumonia", 0, sent=10)
    tree.silver(b, LUNG, "pneumonia", 0, sent=2)
    tree.silver(b, LUNG, "pneumonia", 1, sent=10)
    tree.silver(c, LUNG, "pneumonia", 0, sent=10)
    tree.silver(c, LUNG, "pneumonia", 1, sent=9)
    for image in (a, b, c):
        _ask(tree, image, LUNG, "pneumonia")
    # Sentence 10 decides each time (10 > 9 and 10 > 2 as numbers, not text), wherever it
    # sits in the file.
    assert _answers(build_checked(tree, tmp_path)["train"]) == [["no"], ["yes"], ["no"]]


def test_equal_sent_loc_last_in_file_wins(tmp_path: Path) -> None:
    tree = SourceTree()
    a, b = _image(tree, 1), _image(tree, 2)
    tree.silver(a, LUNG, "pneumonia", 1, sent=3)
    tree.silver(a, LUNG, "pneumonia", 0, sent=3)
    tree.silver(b, LUNG, "pneumonia", 0, sent=3)
    tree.silver(b, LUNG, "pneumonia", 1, sent=3)
    _ask(tree, a, LUNG, "pneumonia")
    _ask(tree, b, LUNG, "pneumonia")
    assert _answers(build_checked(tree, tmp_path)["train"]) == [["no"], ["yes"]]


# --- §4 steps 4–5: propagation ----------------------------------------------------------------

def test_attribute_propagation_gives_parent_label_and_category(tmp_path: Path) -> None:
    tree = SourceTree()
    tree.ontology["all_children"]["fluid overload/heart failure"] = ["pulmonary edema/hazy opacity"]
    a = _image(tree, 1)
    tree.silver(a, LUNG, "pulmonary edema/hazy opacity", 1)
    tree.ask("_train_part1", a, "program_7", object=[LUNG], category=["disease"])
    tree.ask("_train_part1", a, "program_7", object=[LUNG], category=["anatomicalfinding"])
    # Both parents get a copy, each in its own category (disease / anatomicalfinding).
    assert _answers(build_checked(tree, tmp_path)["train"]) == [
        ["fluid overload/heart failure"], ["lung opacity", "pulmonary edema/hazy opacity"]]


def test_attribute_propagation_tie_rule(tmp_path: Path) -> None:
    tree = SourceTree()
    a, b, c, d = (_image(tree, n) for n in range(1, 5))
    tree.silver(a, LUNG, "lung opacity", 0, sent=2)
    tree.silver(a, LUNG, "consolidation", 1, sent=2)
    tree.silver(b, LUNG, "lung opacity", 0, sent=3)
    tree.silver(b, LUNG, "consolidation", 1, sent=2)
    tree.silver(c, LUNG, "consolidation", 1, sent=2)
    tree.silver(c, LUNG, "atelectasis", 0, sent=2)
    tree.silver(d, LUNG, "atelectasis", 1, sent=2)
    tree.silver(d, LUNG, "consolidation", 0, sent=2)
    for image in (a, b, c, d):
        _ask(tree, image, LUNG, "lung opacity")
    # a: the copy beats the original at equal sent_loc; b: the later original wins;
    # c, d: atelectasis follows consolidation in the walk, so its copy wins whatever the file order.
    assert _answers(build_checked(tree, tmp_path)["train"]) == [["yes"], ["no"], ["no"], ["yes"]]


def test_object_propagation_and_tie_rule(tmp_path: Path) -> None:
    tree = SourceTree()
    a, b, c, d, e = (_image(tree, n) for n in range(1, 6))
    tree.silver(a, "left lower lung zone", "consolidation", 1)
    tree.silver(b, LUNG, "pneumonia", 0, sent=2)
    tree.silver(b, "left lower lung zone", "pneumonia", 1, sent=2)
    tree.silver(c, LUNG, "pneumonia", 0, sent=3)
    tree.silver(c, "left lower lung zone", "pneumonia", 1, sent=2)
    tree.silver(d, "left lower lung zone", "pneumonia", 0, sent=2)
    tree.silver(d, "left upper lung zone", "pneumonia", 1, sent=2)
    tree.silver(e, "left lower lung zone", "pneumonia", 1, sent=2)
    tree.silver(e, "left upper lung zone", "pneumonia", 0, sent=2)
    _ask(tree, a, LUNG, "lung opacity")
    tree.ask("_train_part1", a, "program_31", attribute=["consolidation"])
    for image in (b, c, d, e):
        _ask(tree, image, LUNG, "pneumonia")
    # a: attribute copies propagate to the parent object too. b: copy beats original;
    # c: later original wins; d, e: the lower zone comes after the upper zone in the walk.
    assert _answers(build_checked(tree, tmp_path)["train"]) == [
        ["yes"], ["left lower lung zone", "left lung"], ["yes"], ["no"], ["no"], ["yes"]]


def test_attribute_propagation_comes_before_object_propagation(tmp_path: Path) -> None:
    tree = SourceTree()
    a = _image(tree, 1)
    tree.silver(a, "left lower lung zone", "consolidation", 1, sent=2)
    tree.silver(a, "left upper lung zone", "atelectasis", 0, sent=2)
    _ask(tree, a, LUNG, "lung opacity")
    # Step 4 gives each zone a lung opacity row (lower: 1, upper: 0); step 5 copies both to the
    # left lung, and the lower zone, later in the walk, wins: yes. Objects first would give the
    # left lung consolidation 1 and atelectasis 0, and then atelectasis' copy would win: no.
    assert _answers(build_checked(tree, tmp_path)["train"]) == [["yes"]]


def test_propagation_is_one_level(tmp_path: Path) -> None:
    tree = SourceTree()
    tree.ontology["all_children"]["upper mediastinum"] = ["trachea"]
    a, b = _image(tree, 1), _image(tree, 2)
    tree.silver(a, LUNG, "linear/patchy atelectasis", 1)
    tree.silver(b, "trachea", "tortuous aorta", 1)
    _ask(tree, a, LUNG, "atelectasis")
    _ask(tree, a, LUNG, "lung opacity")
    tree.ask("_train_part1", b, "program_31", attribute=["tortuous aorta"])
    # The grandparents (lung opacity, mediastinum) get nothing.
    assert _answers(build_checked(tree, tmp_path)["train"]) == [
        ["yes"], ["no"], ["trachea", "upper mediastinum"]]


def test_negative_child_rows_override_parents(tmp_path: Path) -> None:
    tree = SourceTree()
    a, b, c = (_image(tree, n) for n in range(1, 4))
    tree.silver(a, LUNG, "lung opacity", 1, sent=2)
    tree.silver(a, LUNG, "consolidation", 0, sent=5)
    tree.silver(b, LUNG, "pneumonia", 1, sent=2)
    tree.silver(b, "left lower lung zone", "pneumonia", 0, sent=5)
    tree.silver(c, LUNG, "lung opacity", 1, sent=5)
    tree.silver(c, LUNG, "consolidation", 0, sent=2)
    _ask(tree, a, LUNG, "lung opacity")
    _ask(tree, b, LUNG, "pneumonia")
    _ask(tree, c, LUNG, "lung opacity")
    # Negative rows propagate; a later negative child silences the parent (c: earlier one does not).
    assert _answers(build_checked(tree, tmp_path)["train"]) == [["no"], ["no"], ["yes"]]


# --- §4 steps 6–7: possible pairs and removals ------------------------------------------------

def test_impossible_pairs_dropped_after_propagation(tmp_path: Path) -> None:
    tree = SourceTree()
    tree.ontology["possible_attribute_of"]["pneumothorax"] = [LUNG]
    tree.ontology["possible_attribute_of"]["consolidation"] = ["right lung"]
    a, b, c = (_image(tree, n) for n in range(1, 4))
    tree.silver(a, "left lower lung zone", "pneumothorax", 1)
    tree.silver(b, LUNG, "consolidation", 1)
    tree.silver(c, "neck", "pneumonia", 1)
    tree.silver(c, LUNG, "pneumonia", 0)
    tree.ask("_train_part1", a, "program_31", attribute=["pneumothorax"])
    tree.ask("_train_part1", b, "program_7", object=[LUNG], category=["anatomicalfinding"])
    tree.ask("_train_part1", c, "program_31", attribute=["pneumonia"])
    # The impossible rows reach their parents before they are dropped themselves.
    assert _answers(build_checked(tree, tmp_path)["train"]) == [[LUNG], ["lung opacity"], []]


def test_artifact_exempt_from_possible_pairs(tmp_path: Path) -> None:
    tree = SourceTree()
    del tree.ontology["possible_attribute_of"]["artifact"]
    a = _image(tree, 1)
    tree.silver(a, LUNG, "artifact", 1)
    tree.silver(a, LUNG, "rotated", 1)
    tree.ask("_train_part1", a, "program_25", category=["technicalassessment"])
    # No possible_attribute_of entry is needed for artifact; it is removed later anyway.
    assert _answers(build_checked(tree, tmp_path)["train"]) == [["rotated"]]


@pytest.mark.parametrize("label", ["normal", "abnormal"])
def test_only_artifact_is_exempt_from_possible_pairs(tmp_path: Path, label: str) -> None:
    # normal/abnormal rows go in step 1 only by their category nlp; under another category
    # they are labels like any other (§4 step 6 exempts artifact alone).
    tree = SourceTree()
    tree.ontology["possible_attribute_of"][label] = ["right lung"]
    a = _image(tree, 1)
    tree.silver(a, LUNG, label, 1, category="anatomicalfinding")
    tree.silver(a, LUNG, "pneumonia", 1)
    tree.ask("_train_part1", a, "program_7", object=[LUNG], category=["anatomicalfinding"])
    assert _answers(build_checked(tree, tmp_path)["train"]) == [[]]
    del tree.ontology["possible_attribute_of"][label]
    _fails(tree, tmp_path / "no entry")


@pytest.mark.parametrize("label", ["rotated", "skin fold"])
def test_label_missing_from_possible_pairs_is_an_error(tmp_path: Path, label: str) -> None:
    # skin fold is removed in step 7, but the possible-pair check of step 6 comes first.
    tree = SourceTree()
    del tree.ontology["possible_attribute_of"][label]
    a = _image(tree, 1)
    tree.silver(a, LUNG, label, 1)
    tree.silver(a, LUNG, "pneumonia", 1)
    tree.ask("_train_part1", a, "program_25", category=["technicalassessment"])
    _fails(tree, tmp_path)


def test_removals_apply_after_propagation(tmp_path: Path) -> None:
    tree = SourceTree()
    children = tree.ontology["all_children"]
    children["lung opacity"].append("bronchiectasis")
    children["left chest wall"] = ["left arm"]
    children["cabg grafts"] = ["sternotomy wires"]
    a = _image(tree, 1)
    tree.silver(a, LUNG, "bronchiectasis", 1)
    tree.silver(a, "left arm", "pneumonia", 1)
    tree.silver(a, "spine", "sternotomy wires", 1)
    tree.ask("_train_part1", a, "program_25", category=["anatomicalfinding"])
    tree.ask("_train_part1", a, "program_31", attribute=["pneumonia"])
    tree.ask("_train_part1", a, "program_25", category=["device"])
    # Removed labels reach their parents first; sternotomy wires is outside the attribute
    # vocabulary, so it has no parents at all.
    assert _answers(build_checked(tree, tmp_path)["train"]) == [
        ["lung opacity"], ["left chest wall"], []]


def test_nlp_and_unknown_rows_dropped(tmp_path: Path) -> None:
    tree = SourceTree()
    tree.ontology["possible_attribute_of"]["pneumonia"].append("unknown")
    a = _image(tree, 1)
    tree.silver(a, LUNG, "lung opacity", 1, category="nlp")
    tree.silver(a, "unknown", "pneumonia", 1)
    tree.silver(a, "right lung", "pneumonia", 0)
    tree.ask("_train_part1", a, "program_22", attribute=["lung opacity"])
    tree.ask("_train_part1", a, "program_31", attribute=["pneumonia"])
    # Both positive rows go in step 1, even though "unknown" is a possible object here.
    assert _answers(build_checked(tree, tmp_path)["train"]) == [["no"], []]


ROWS_WITHOUT_LABELS = {
    "no rows": [],
    "removed only": [(LUNG, "bronchiectasis", 1, None)],
    "nlp and unknown only": [(LUNG, "abnormal", 1, "nlp"), ("unknown", "pneumonia", 1, None)],
    "impossible only": [("neck", "pneumonia", 1, None)],
}


@pytest.mark.parametrize("rows", ROWS_WITHOUT_LABELS.values(), ids=ROWS_WITHOUT_LABELS.keys())
def test_images_without_rows_have_no_labels(tmp_path: Path, rows: list[tuple[Any, ...]]) -> None:
    tree = SourceTree()
    a = _image(tree, 1)
    for bbox, label, relation, category in rows:
        tree.silver(a, bbox, label, relation, category=category)
    tree.ask("_train_part1", a, "program_43")
    _fails(tree, tmp_path)


# --- §3: silver cohort ------------------------------------------------------------------------

def _outlier_tree(asked: int) -> SourceTree:
    tree = SourceTree()
    for n in range(20):
        width = 62 if n % 2 else 72
        tree.silver_box_rows.append((f"filler{n}", "trachea", Box(10, 10 + width)))
    inside = _image(tree, 1, boxes=False)
    outside = _image(tree, 2, boxes=False)
    tree.boxes(inside, {"trachea": Box(10, 120, width=112.6)})
    tree.boxes(outside, {"trachea": Box(10, 120, width=113.5)})
    for image in (inside, outside):
        tree.silver(image, LUNG, "pneumonia", 1)
    tree.ask("_train_part1", (inside, outside)[asked], "program_43")
    return tree


def _trachea_widths(root: Path) -> list[float]:
    path = next(root.rglob("bbox_objects_tabular.txt"))
    with path.open() as handle:
        return [float(row["width"]) for row in csv.DictReader(handle, delimiter="\t")
                if row["bbox_name"] == "trachea"]


def test_width_outliers_use_all_rows_and_3_sd(tmp_path: Path) -> None:
    build_checked(_outlier_tree(asked=0), tmp_path / "inside")
    widths = _trachea_widths(tmp_path / "inside")
    # Hand check of the premise: the statistics include the 20 box-only filler rows, and
    # 112.6 < mean + 3 sample sd ≈ 113.30 < 113.5 (with the population sd, 112.37, the
    # inside image would be dropped too).
    limit = statistics.mean(widths) + 3 * statistics.stdev(widths)
    assert len(widths) == 23 and 112.6 < limit < 113.5
    assert statistics.mean(widths) + 3 * statistics.pstdev(widths) < 112.6
    _fails(_outlier_tree(asked=1), tmp_path / "outside")


def _edge_width_tree(low: int, *asked: int) -> SourceTree:
    """trachea widths 67 (the filler image's default), 9 x 68, 9 x 66, then 76 and ``low``."""
    tree = SourceTree()
    for n, width in enumerate([68] * 9 + [66] * 9):
        tree.silver_box_rows.append((f"filler{n}", "trachea", Box(10, 10 + width)))
    edges = [_image(tree, n, boxes=False, view=view) for n, view in ((1, "AP"), (2, "PA"))]
    for image, width in zip(edges, (76, low)):
        tree.boxes(image, {"trachea": Box(10, 10 + width)})
        tree.silver(image, LUNG, "pneumonia", 1)
    for number in asked:
        tree.ask("_train_part1", edges[number], "program_43")
    return tree


def test_widths_exactly_3_sd_from_the_mean_are_kept(tmp_path: Path) -> None:
    # mean 67 and sample sd sqrt((18 + 2 * 81) / 20) = 3, exact in floats: 76 and 58 sit on
    # mean ± 3 sd, and "below" / "above" are strict, so both edge images stay.
    built = build_checked(_edge_width_tree(58, 0, 1), tmp_path)
    assert sorted(_trachea_widths(tmp_path)) == [58.0, *[66.0] * 9, 67.0, *[68.0] * 9, 76.0]
    assert _answers(built["train"]) == [["ap"], ["pa"]]


def test_narrow_outliers_are_dropped_too(tmp_path: Path) -> None:
    # With 57 instead of 58: mean - 3 sd ≈ 57.49 > 57, while 76 < mean + 3 sd ≈ 76.41.
    assert _answers(build_checked(_edge_width_tree(57, 0), tmp_path)["train"]) == [["ap"]]
    _fails(_edge_width_tree(57, 1), tmp_path / "narrow")


def _box_count_tree(*asked: str) -> SourceTree:
    tree = SourceTree()
    images = {"35 boxes": _image(tree, 1, boxes=False), "no boxes": _image(tree, 2, boxes=False),
              "duplicate": _image(tree, 3)}
    tree.boxes(images["35 boxes"], omit=["trachea"])
    tree.silver_box_rows.append((images["duplicate"], "trachea", Box(20, 90)))
    for image in images.values():
        tree.silver(image, LUNG, "pneumonia", 1)
    for name in asked:
        tree.ask("_train_part1", images[name], "program_22", attribute=["pneumonia"])
    return tree


def test_box_less_and_36_distinct_box_images_are_kept(tmp_path: Path) -> None:
    tree = _box_count_tree("no boxes", "duplicate")
    assert _answers(build_checked(tree, tmp_path)["train"]) == [["yes"], ["yes"]]


def test_35_box_images_are_dropped(tmp_path: Path) -> None:
    _fails(_box_count_tree("35 boxes"), tmp_path)


def _day(day: int) -> int:
    return 21800100 + day


def _order_tree(*asked: str) -> SourceTree:
    """One subject with 21 studies; study X's lateral image makes it the first study."""
    tree = SourceTree()
    subject = SUBJECT + 1
    images = {}
    for day in range(2, 22):
        images[day] = tree.image(subject, STUDY + day * 10_000, date=_day(day))
    study_x = STUDY + 99 * 10_000
    tree.image(subject, study_x, view="LATERAL", date=_day(1), boxes=False)
    images["x"] = tree.image(subject, study_x, date=_day(30))
    for image in images.values():
        tree.silver(image, LUNG, "pneumonia", 1)
    for name in asked:
        tree.ask("_train_part1", images[{"x": "x", "20th": 20, "21st": 21}[name]], "program_43")
    return tree


def test_study_order_counts_all_views(tmp_path: Path) -> None:
    # Study X ranks first (its lateral image is the subject's earliest), so the day-20 study is
    # the 20th and is kept.
    assert _answers(build_checked(_order_tree("x", "20th"), tmp_path)["train"]) == [["pa"], ["pa"]]


def test_study_order_above_20_is_cut(tmp_path: Path) -> None:
    _fails(_order_tree("21st"), tmp_path)


def _tie_tree(first_study: int, second_study: int, asked: int) -> SourceTree:
    """19 studies, then two studies at the very same instant on day 20."""
    tree = SourceTree()
    subject = SUBJECT + 1
    for day in range(1, 20):
        tree.silver(tree.image(subject, STUDY + day * 10_000, date=_day(day)), LUNG, "pneumonia")
    # The later study id is written first: file order must not matter.
    tied = [tree.image(subject, study, date=_day(20), time=93000.25)
            for study in (second_study, first_study)][::-1]
    for image in tied:
        tree.silver(image, LUNG, "pneumonia")
    tree.ask("_train_part1", tied[asked], "program_43")
    return tree


def test_study_order_ties_broken_by_study_id(tmp_path: Path) -> None:
    built = build_checked(_tie_tree(50_200_000, 50_300_000, 0), tmp_path)
    assert _answers(built["train"]) == [["pa"]]
    # 50300000 is the 21st study.
    _fails(_tie_tree(50_200_000, 50_300_000, 1), tmp_path / "second")


def test_study_order_tie_sees_only_six_leading_study_id_digits(tmp_path: Path) -> None:
    # The published builder appends study_id to the millisecond datetime text and re-parses it,
    # so only the first six digits break the tie: 50200001 and 50200002 share order 20 and both
    # stay in the cohort.
    built = build_checked(_tie_tree(50_200_001, 50_200_002, 1), tmp_path)
    assert _answers(built["train"]) == [["pa"]]


def test_study_order_is_dense_after_a_shared_order(tmp_path: Path) -> None:
    # Two studies at one instant whose ids share six leading digits share order 19; the next
    # study is the 20th (a dense rank), not the 21st (a "min" rank or a plain count), and stays.
    tree = SourceTree()
    subject = SUBJECT + 1
    for day in range(1, 19):
        tree.silver(tree.image(subject, STUDY + day * 10_000, date=_day(day)), LUNG, "pneumonia")
    tied = [tree.image(subject, study, date=_day(19), time=93000.25)
            for study in (50_990_001, 50_990_002)]
    last = tree.image(subject, STUDY + 20 * 10_000, date=_day(20), view="AP")
    for image in (*tied, last):
        tree.silver(image, LUNG, "pneumonia")
        tree.ask("_train_part1", image, "program_43")
    assert _answers(build_checked(tree, tmp_path)["train"]) == [["pa"], ["pa"], ["ap"]]


def _one_per_study_tree(*asked: str) -> SourceTree:
    tree = SourceTree()
    subject = SUBJECT + 1
    images = {
        "lateral": tree.image(subject, STUDY + 10_000, view="LATERAL", time=100000.5,
                              dicom="00000000-aaaaaaaa-aaaaaaaa-aaaaaaaa-aaaaaaaa"),
        "later": tree.image(subject, STUDY + 10_000, time=120000.5,
                            dicom="0b000000-aaaaaaaa-aaaaaaaa-aaaaaaaa-aaaaaaaa"),
        "earliest": tree.image(subject, STUDY + 10_000, view="AP", time=110000.5,
                               dicom="0c000000-aaaaaaaa-aaaaaaaa-aaaaaaaa-aaaaaaaa"),
        "larger id": tree.image(subject, STUDY + 20_000, time=110000.5,
                                dicom="0e000000-aaaaaaaa-aaaaaaaa-aaaaaaaa-aaaaaaaa"),
        "smaller id": tree.image(subject, STUDY + 20_000, view="AP", time=110000.5,
                                 dicom="0d000000-aaaaaaaa-aaaaaaaa-aaaaaaaa-aaaaaaaa"),
    }
    for image in images.values():
        tree.silver(image, LUNG, "pneumonia", 1)
    for name in asked:
        tree.ask("_train_part1", images[name], "program_43")
    return tree


def test_one_frontal_image_per_study(tmp_path: Path) -> None:
    # The lateral image is earlier still but not frontal; the kept images are both AP.
    tree = _one_per_study_tree("earliest", "smaller id")
    assert _answers(build_checked(tree, tmp_path)["train"]) == [["ap"], ["ap"]]


@pytest.mark.parametrize("asked", ["later", "larger id", "lateral"])
def test_other_images_of_a_study_are_dropped(tmp_path: Path, asked: str) -> None:
    _fails(_one_per_study_tree(asked), tmp_path)


# --- §3 gold cohort and §6 label source per split ------------------------------------------

def _gold_tree(file: str, asked: str) -> SourceTree:
    """A gold patient whose labels file names the later of two first-study frontal images."""
    tree = SourceTree()
    subject = SUBJECT + 7
    images = {
        "rule's pick": tree.image(subject, STUDY + 10_000, view="PA", time=110000.5),
        "named": tree.image(subject, STUDY + 10_000, view="AP", time=120000.5),
        "second study": tree.image(subject, STUDY + 20_000, view="PA"),
    }
    tree.gold(images["named"], LUNG, "pneumonia", 1)
    for image in images.values():
        tree.silver(image, LUNG, "pleural effusion", 1)
    tree.ask(file, images[asked], "program_43")
    return tree


def test_gold_image_replaces_first_study_image(tmp_path: Path) -> None:
    assert _answers(build_checked(_gold_tree("_test", "named"), tmp_path)["test"]) == [["ap"]]


@pytest.mark.parametrize(("file", "asked"), [("_test", "rule's pick"), ("_valid", "second study")])
def test_gold_patients_have_only_their_gold_image(tmp_path: Path, file: str, asked: str) -> None:
    # Test questions see only the 500 gold images; train/valid see no image of a gold patient.
    _fails(_gold_tree(file, asked), tmp_path)


def test_labels_and_boxes_follow_the_question_file(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    tree = SourceTree()
    gold = _image(tree, 1, view="AP")
    silver = _image(tree, 2)
    tree.gold(gold, LUNG, "pneumonia", 1)
    tree.silver(gold, LUNG, "pleural effusion", 1)
    tree.silver(silver, LUNG, "pleural effusion", 1)
    # coord224 gives 91 / 181 > 1/2; the gold x1/x2 columns would give 90 / 180.
    tree.gold_boxes(gold, {"right lung": Box(20, 110), LUNG: Box(110, 201),
                           "cardiac silhouette": Box(40, 131)})
    for file, image in (("_test", gold), ("_valid", silver), ("_train_part2", silver)):
        tree.ask(file, image, "program_25", category=["anatomicalfinding"])
        tree.ask(file, image, "program_22", attribute=["pneumonia"])
        tree.ask(file, image, "program_47")
    tree.questions["_test"][0]["split"] = "train"
    built = build_checked(tree, tmp_path)
    # Gold labels and coord224 boxes for the test file, whatever the record's split says;
    # silver labels and (default, 80/180) silver boxes for valid and train.
    assert _answers(built["test"]) == [[], ["yes"], ["yes"]]
    assert built["test"][0]["split"] == "train"
    # Copied unchanged, but said: one note naming the file.
    notes = [line for line in capsys.readouterr().err.splitlines() if "cxrvqa: note:" in line]
    assert len(notes) == 1 and notes[0].endswith(
        "_test.json: 1 record(s) say split 'train'; copied unchanged, answered as test "
        "(the file decides)")
    assert _answers(built["valid"]) == _answers(built["train"]) == [
        ["pleural effusion"], ["no"], ["no"]]


# --- §5: answers ------------------------------------------------------------------------------

def test_abnormality_is_four_categories_not_technicalassessment(tmp_path: Path) -> None:
    tree = SourceTree()
    a, b = _image(tree, 1), _image(tree, 2)
    for label in ("airspace opacity", "pneumonia", "rotated", "chest tube", "prosthetic valve"):
        tree.silver(a, LUNG, label, 1)
    tree.silver(b, LUNG, "rotated", 1)
    tree.ask("_train_part1", a, "program_8", object=[LUNG])
    tree.ask("_train_part1", a, "program_27")
    tree.ask("_train_part1", b, "program_1", object=[LUNG], category=["technicalassessment"])
    tree.ask("_train_part1", b, "program_3", object=[LUNG])
    tree.ask("_train_part1", b, "program_20")
    tree.ask("_train_part1", b, "program_33", object=[LUNG, "right lung"])
    abnormal = ["airspace opacity", "chest tube", "pneumonia", "prosthetic valve"]
    # anatomicalfinding, disease, tubesandlines and device count; "rotated" does not.
    assert _answers(build_checked(tree, tmp_path)["train"]) == [
        abnormal, abnormal, ["yes"], ["no"], ["no"], []]


def _size_tree(boxes: list[dict[str, Box]], program: str = "program_47") -> SourceTree:
    tree = SourceTree()
    for n, overrides in enumerate(boxes, start=1):
        image = _image(tree, n, boxes=False)
        tree.boxes(image, overrides)
        tree.silver(image, LUNG, "pneumonia", 1)
        tree.ask("_train_part1", image, program)
    return tree


THORAX_180 = {"right lung": Box(20, 110), LUNG: Box(110, 200)}


def test_first_box_row_wins(tmp_path: Path) -> None:
    tree = _size_tree([{**THORAX_180, "cardiac silhouette": Box(40, 131)},
                       {**THORAX_180, "cardiac silhouette": Box(70, 150)}])
    first, second = (record["image_id"] for record in tree.questions["_train_part1"])
    tree.silver_box_rows.append((first, "cardiac silhouette", Box(70, 150)))
    tree.silver_box_rows.append((second, "cardiac silhouette", Box(40, 131)))
    # 91/180 > 1/2 for the first image's first row; 80/180 for the second's.
    assert _answers(build_checked(tree, tmp_path)["train"]) == [["yes"], ["no"]]


def test_silver_x_truncated_toward_zero(tmp_path: Path) -> None:
    tree = _size_tree([
        {"right lung": Box(-0.7, 110), LUNG: Box(110, 181.3), "cardiac silhouette": Box(40, 131)},
        {**THORAX_180, "cardiac silhouette": Box(60.2, 150.9)},
    ])
    # int(): thorax 181 - 0 = 181, heart 91 -> yes (floor or floats give 182 -> exactly 1/2);
    # heart 150 - 60 = 90 of 180 -> no (floats 90.7, rounding 91 would say yes).
    assert _answers(build_checked(tree, tmp_path)["train"]) == [["yes"], ["no"]]


def test_gold_sizes_read_coord224_at_the_boundary(tmp_path: Path) -> None:
    tree = SourceTree()
    for n, heart in enumerate((Box(40, 130), Box(40, 131)), start=1):
        image = _image(tree, n)
        tree.gold(image, LUNG, "pneumonia", 1)
        tree.gold_boxes(image, {**THORAX_180, "cardiac silhouette": heart})
        tree.ask("_test", image, "program_47")
    # coord224 "[40, 30, 130, 190]": 90 / 180 is exactly 1/2, so "no"; 91 / 180 says "yes".
    assert _answers(build_checked(tree, tmp_path)["test"]) == [["no"], ["yes"]]


def test_size_ratios_are_strict_divisions(tmp_path: Path) -> None:
    tree = _size_tree([
        {**THORAX_180, "cardiac silhouette": Box(40, 130)},
        {"right lung": Box(150, 110), LUNG: Box(110, 50), "cardiac silhouette": Box(100, 40)},
    ])
    for n, width in enumerate((60, 61), start=3):
        image = _image(tree, n, boxes=False)
        tree.boxes(image, {**THORAX_180, "upper mediastinum": Box(100, 100 + width)})
        tree.silver(image, LUNG, "pneumonia", 1)
        tree.ask("_train_part1", image, "program_48")
    # 90/180 is not > 1/2; -60 / -100 = 0.6 > 1/2 (a division, not a cross-multiplication);
    # 60/180 is not > 1/3; 61/180 is.
    assert _answers(build_checked(tree, tmp_path)["train"]) == [["no"], ["yes"], ["no"], ["yes"]]


def test_view_and_gender_answers(tmp_path: Path) -> None:
    tree = SourceTree()
    a = _image(tree, 1, view="AP", gender="F")
    b = _image(tree, 2, view="PA", gender="M")
    for image in (a, b):
        tree.silver(image, LUNG, "pneumonia", 1)
        tree.ask("_valid", image, "program_41", viewpos=["AP"])
        tree.ask("_valid", image, "program_42")
        tree.ask("_valid", image, "program_43")
        tree.ask("_valid", image, "program_44", gender=["F"])
        tree.ask("_valid", image, "program_45")
        tree.ask("_valid", image, "program_46")
    assert _answers(build_checked(tree, tmp_path)["valid"]) == [
        ["yes"], ["ap"], ["ap"], ["yes"], ["f"], ["f"],
        ["no"], ["pa"], ["pa"], ["no"], ["m"], ["m"]]


def test_view_of_a_gold_image_without_view_position(tmp_path: Path) -> None:
    tree = SourceTree()
    _image(tree, 1, view="PA")
    gold = _image(tree, 1, view=None)
    tree.gold(gold, LUNG, "pneumonia", 1)
    tree.ask("_test", gold, "program_41", viewpos=["AP"])
    tree.ask("_test", gold, "program_41", viewpos=["PA"])
    # The named gold image replaces its study's frontal image whatever its own view; an
    # unknown view equals no argument.
    assert _answers(build_checked(tree, tmp_path)["test"]) == [["no"], ["no"]]


def _no_gender_tree(program: str, gender: list[str]) -> SourceTree:
    tree = SourceTree()
    a = _image(tree, 1, gender=None)
    tree.silver(a, LUNG, "pneumonia", 1)
    tree.ask("_train_part1", a, program, gender=gender)
    return tree


def test_missing_gender_compares_unequal(tmp_path: Path) -> None:
    tree = _no_gender_tree("program_44", ["M"])
    tree.ask("_train_part1", tree.questions["_train_part1"][0]["image_id"], "program_44",
             gender=["F"])
    assert _answers(build_checked(tree, tmp_path)["train"]) == [["no"], ["no"]]


def test_missing_gender_has_no_gender_answer(tmp_path: Path) -> None:
    _fails(_no_gender_tree("program_45", []), tmp_path)


# --- §2: ontology edits and possible pairs ---------------------------------------------------

def test_ontology_edits_hilar_structures_and_mediastinum(tmp_path: Path) -> None:
    tree = SourceTree()
    possible = tree.ontology["possible_attribute_of"]
    possible["enlarged hilum"] = ["left hilar structures", "right hilar structures"]
    possible["tortuous aorta"] = ["aortic arch"]
    possible["vascular congestion"] = ["svc"]
    a = _image(tree, 1)
    tree.silver(a, "left hilar structures", "enlarged hilum", 1)
    tree.silver(a, "right hilar structures", "enlarged hilum", 1)
    tree.silver(a, "aortic arch", "tortuous aorta", 1)
    tree.silver(a, "svc", "vascular congestion", 1)
    for attribute in ("enlarged hilum", "tortuous aorta", "vascular congestion"):
        tree.ask("_train_part1", a, "program_31", attribute=[attribute])
    # The added edges both propagate the rows and make the parents possible objects.
    assert _answers(build_checked(tree, tmp_path)["train"]) == [
        ["left hilar structures", "left lung", "right hilar structures", "right lung"],
        ["aortic arch", "mediastinum"], ["mediastinum", "svc"]]


def test_object_maps_skip_children_outside_the_vocabulary(tmp_path: Path) -> None:
    tree = SourceTree()
    tree.ontology["all_children"]["mediastinum"].append("hilar structures")
    tree.ontology["possible_attribute_of"]["enlarged hilum"] = ["hilar structures"]
    a = _image(tree, 1)
    tree.silver(a, "mediastinum", "enlarged hilum", 1)
    tree.silver(a, LUNG, "pneumonia", 1)
    tree.ask("_train_part1", a, "program_31", attribute=["enlarged hilum"])
    # hilar structures is not among the 38 objects, so it is nobody's child: mediastinum never
    # joins enlarged hilum's possible objects and the row is dropped.
    assert _answers(build_checked(tree, tmp_path)["train"]) == [[]]


def _cue_label_tree(bbox: str) -> SourceTree:
    """One image whose only row is the texture label "opacity" (outside the five categories)."""
    tree = SourceTree()
    tree.ontology["possible_attribute_of"]["opacity"] = ["left lower lung zone"]
    a = _image(tree, 1)
    tree.silver(a, bbox, "opacity", 1, category="texture")
    tree.ask("_train_part1", a, "program_43")
    return tree


def test_possible_pairs_grow_only_for_vocabulary_attributes(tmp_path: Path) -> None:
    # At its listed object the row survives step 6, so the image has labels ...
    built = build_checked(_cue_label_tree("left lower lung zone"), tmp_path)
    assert _answers(built["train"]) == [["pa"]]
    # ... but "opacity" is not in the attribute vocabulary, so its list does not gain the
    # zone's parent: the left lung row is dropped and the image has no labels.
    _fails(_cue_label_tree(LUNG), tmp_path / "parent")


@pytest.mark.parametrize(("chain_first", "expected"), [
    (True, ["mediastinum", "trachea", "upper mediastinum"]),
    (False, ["trachea", "upper mediastinum"]),
])
def test_possible_pairs_walk_grows_as_it_goes(tmp_path: Path, chain_first: bool,
                                              expected: list[str]) -> None:
    tree = SourceTree()
    children = tree.ontology["all_children"]
    chain = {"upper mediastinum": ["trachea"]}
    tree.ontology["all_children"] = {**chain, **children} if chain_first else {**children, **chain}
    tree.ontology["possible_attribute_of"]["tortuous aorta"] = ["trachea"]
    a = _image(tree, 1)
    tree.silver(a, "trachea", "tortuous aorta", 1)
    tree.silver(a, "mediastinum", "tortuous aorta", 1)
    tree.ask("_train_part1", a, "program_31", attribute=["tortuous aorta"])
    # trachea -> upper mediastinum is always added. Only when the walk meets trachea before
    # upper mediastinum does the appended parent bring in mediastinum, keeping that row.
    assert _answers(build_checked(tree, tmp_path)["train"]) == [expected]


@pytest.mark.parametrize(("grandchild_first", "expected"), [(True, ["spine"]), (False, [])])
def test_attribute_possible_pairs_grow_in_key_order(tmp_path: Path, grandchild_first: bool,
                                                   expected: list[str]) -> None:
    tree = SourceTree()
    children = tree.ontology["all_children"]
    children["lung opacity"] = ["atelectasis"]
    children["atelectasis"] = ["linear/patchy atelectasis"]
    possible = tree.ontology["possible_attribute_of"]
    possible.update({"linear/patchy atelectasis": ["spine"], "atelectasis": [LUNG],
                     "lung opacity": ["right lung"]})
    if grandchild_first:
        tree.ontology["possible_attribute_of"] = {
            "linear/patchy atelectasis": possible.pop("linear/patchy atelectasis"), **possible}
    a = _image(tree, 1)
    tree.silver(a, "spine", "lung opacity", 1)
    tree.silver(a, LUNG, "pneumonia", 0)
    tree.ask("_train_part1", a, "program_31", attribute=["lung opacity"])
    # spine reaches atelectasis, and reaches lung opacity only if atelectasis is visited after.
    assert _answers(build_checked(tree, tmp_path)["train"]) == [expected]


# --- §6: records and ans2idx ------------------------------------------------------------------

def test_records_keep_question_fields_and_order(tmp_path: Path) -> None:
    tree = SourceTree()
    a = tree.image(12345678, 56789012, view="AP")
    tree.silver(a, LUNG, "pneumonia", 1)
    tree.ask("_train_part2", a, "program_43")
    tree.ask("_train_part1", a, "program_22", attribute=["pneumonia"])
    tree.questions["_train_part1"][0].update({"idx": 41, "question": "Is there pneumonia?",
                                              "content_type": "attribute"})
    built = build_checked(tree, tmp_path)
    first, second = built["train"]
    assert list(first) == ["split", "idx", "subject_id", "study_id", "image_id", "image_path",
                           "question", "semantic_type", "content_type", "template",
                           "template_program", "template_arguments", "answer"]
    # Part 1 before part 2; ids as strings; the path has no files/ prefix.
    assert (first["template_program"], second["template_program"]) == ("program_22", "program_43")
    assert (first["subject_id"], first["study_id"]) == ("12345678", "56789012")
    assert first["image_path"] == f"p12/p12345678/s56789012/{a}.jpg"
    assert (first["idx"], first["question"], first["content_type"]) == (
        41, "Is there pneumonia?", "attribute")


def test_arguments_bind_by_key_not_by_file_order(tmp_path: Path) -> None:
    tree = SourceTree()
    a = _image(tree, 1)
    tree.silver(a, LUNG, "pneumonia", 1)
    tree.silver(a, "right lung", "pneumonia", 1)
    tree.silver(a, "right lung", "atelectasis", 1)
    record = tree.ask("_train_part1", a, "program_36", attribute=["pneumonia", "atelectasis"])
    record["template_arguments"]["attribute"] = {"1": "atelectasis", "0": "pneumonia"}
    built = build_checked(tree, tmp_path)
    # Key "0" is the first attribute wherever it sits: objects with pneumonia minus objects
    # with atelectasis (file order would give right lung minus both lungs, []).
    assert _answers(built["train"]) == [[LUNG]]
    # The arguments are copied unchanged, their key order too.
    text = (tmp_path / "mimiccxrvqa/dataset/train.json").read_text()
    assert '"attribute": {\n                "1": "atelectasis",\n                "0": "pneumonia"' in text


PUBLISHED_ANS2IDX_SAMPLE = {"abdomen": 0, "ap": 4, "f": 27, "m": 57, "no": 65, "pa": 66,
                            "vascular redistribution": 108, "yes": 109}


def test_ans2idx(tmp_path: Path) -> None:
    tree = SourceTree()
    build_checked(tree, tmp_path)
    ans2idx = json.loads((tmp_path / "mimiccxrvqa/dataset/ans2idx.json").read_text())
    assert ans2idx == reference_ans2idx(tmp_path)
    assert len(ans2idx) == 110 and list(ans2idx.values()) == list(range(110))
    assert PUBLISHED_ANS2IDX_SAMPLE.items() <= ans2idx.items()
