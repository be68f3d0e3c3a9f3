"""pipeline.md §7: train/valid by subject, abnormal and normal groups apart, RandomState(103)."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from cxrvqa.build.splits import assign_splits
from cxrvqa.facts import ImageFacts

POSITIVE = [("left lung", "pneumonia", "disease")]


def _index(images: dict[str, tuple[object, bool]]) -> SimpleNamespace:
    """image_id -> (subject_id, abnormal) as an index with silver facts and metadata."""
    return SimpleNamespace(
        silver={image: ImageFacts(POSITIVE if abnormal else [], "AP", "F", {})
                for image, (_, abnormal) in images.items()},
        meta={image: SimpleNamespace(subject_id=subject, study_id=1, viewpos="AP")
              for image, (subject, _) in images.items()},
    )


def _valid(splits: dict[str, str]) -> set[str]:
    return {image for image, split in splits.items() if split == "valid"}


# RandomState(103).permutation(n) starts [18, 16, ...] for n=20 and [19, 16, ...] for n=21.
@pytest.mark.parametrize(("count", "expected"), [
    (1, {0}), (2, {0}), (20, {18}), (21, {19, 16}), (40, {14, 38}), (41, {18, 32, 2}),
])
def test_ceil_of_five_percent_of_subjects_at_the_permutations_front(count: int,
                                                                    expected: set[int]) -> None:
    index = _index({f"img{n}": (10_000_001 + n, True) for n in range(count)})
    assert _valid(assign_splits(index)) == {f"img{n}" for n in expected}


def test_groups_split_separately_so_a_subject_can_be_in_both() -> None:
    # Abnormal: subjects 10000001..10000021 (21 -> positions 19 and 16 go to valid).
    # Normal: subjects 10000011..10000030 (20 -> position 18, subject 10000029, to valid).
    images = {f"abn{s}": (s, True) for s in range(10_000_001, 10_000_022)}
    images |= {f"nrm{s}": (s, False) for s in range(10_000_011, 10_000_031)}
    splits = assign_splits(_index(images))
    assert _valid(splits) == {"abn10000020", "abn10000017", "nrm10000029"}
    assert (splits["abn10000017"], splits["nrm10000017"]) == ("valid", "train")
    assert set(splits) == set(images)


def test_subjects_are_ordered_by_number_whatever_the_index_order() -> None:
    subjects = [10_000_001 + n for n in range(21)]
    shuffled = subjects[:]
    random.Random(5).shuffle(shuffled)
    index = _index({f"img{s}": (str(s), True) for s in shuffled})
    assert _valid(assign_splits(index)) == {"img10000020", "img10000017"}


def test_all_images_of_a_subject_in_one_group_share_its_split() -> None:
    images = {f"img{s}-{k}": (s, True) for s in range(10_000_001, 10_000_022) for k in range(3)}
    splits = assign_splits(_index(images))
    assert _valid(splits) == {f"img{s}-{k}" for s in (10_000_020, 10_000_017) for k in range(3)}


def test_normal_means_no_positive_finding_and_empty_index_gives_nothing() -> None:
    index = _index({"a": (10_000_001, False), "b": (10_000_002, True)})
    assert assign_splits(index) == {"a": "valid", "b": "valid"}  # each group of one: ceil -> 1
    assert assign_splits(_index({})) == {}


def test_any_positive_finding_makes_a_study_abnormal_technical_ones_too() -> None:
    # Abnormal is "at least one positive finding" (§7), not an ABN category: the subject with
    # only a technicalassessment finding joins the 20 abnormal ones (21 -> positions 19 and 16).
    index = _index({f"img{s}": (s, True) for s in range(10_000_001, 10_000_021)})
    index.silver["img10000021"] = ImageFacts([("left lung", "rotated", "technicalassessment")],
                                             "AP", "F", {})
    index.meta["img10000021"] = SimpleNamespace(subject_id=10_000_021, study_id=1, viewpos="AP")
    assert _valid(assign_splits(index)) == {"img10000020", "img10000017"}


def test_scattered_subject_ids_are_sorted_before_the_permutation() -> None:
    # Contiguous ids iterate in order as a Python set anyway; scattered 8-digit ids, like
    # MIMIC's, do not, so only an explicit ascending sort gives positions 19 and 16 here.
    subjects = [10000032, 10000980, 10001217, 10002428, 10003400, 10004235, 10005348, 10006580,
                10007795, 10008454, 10010867, 10012261, 10013049, 10014354, 10015931, 10017531,
                10018081, 10019003, 10019568, 10020740, 10021487]
    assert list({*subjects}) != subjects  # the premise: set order is not numeric order
    index = _index({f"img{s}": (s, True) for s in reversed(subjects)})
    assert _valid(assign_splits(index)) == {"img10020740", "img10018081"}
