"""Assign silver cohort images to train or valid as the published split did (pipeline.md §7).

Abnormal images (at least one positive finding) and normal images are split
separately and by subject: the group's subject ids in ascending order are
permuted by ``numpy.random.RandomState(103)`` and the first ``ceil(0.05 * n)``
go to valid. This is what ``sklearn.model_selection.train_test_split(ids,
test_size=0.05, random_state=103)`` computes, without the dependency. A subject
with both abnormal and normal images may thus land in both splits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Protocol

import numpy as np

from cxrvqa.facts import ImageFacts

__all__ = ["SPLIT_SEED", "VALID_SHARE", "SilverIndex", "assign_splits"]

SPLIT_SEED = 103
VALID_SHARE = 0.05


# Read-only members (properties), so that frozen dataclasses such as SceneIndex match.
class _Meta(Protocol):
    @property
    def subject_id(self) -> int: ...


class SilverIndex(Protocol):
    """What the split needs of a build's index: silver facts and each image's subject."""

    @property
    def silver(self) -> Mapping[str, ImageFacts]: ...
    @property
    def meta(self) -> Mapping[str, _Meta]: ...


def assign_splits(index: SilverIndex) -> dict[str, str]:
    """``{image_id: "train" | "valid"}`` for every silver image of ``index``, in index order."""
    subjects = {image_id: int(index.meta[image_id].subject_id) for image_id in index.silver}
    abnormal = {i for i, facts in index.silver.items() if facts.findings}
    valid = (_valid_subjects({subjects[i] for i in abnormal}),
             _valid_subjects({s for i, s in subjects.items() if i not in abnormal}))
    return {image_id: "valid" if subject in valid[image_id not in abnormal] else "train"
            for image_id, subject in subjects.items()}


def _valid_subjects(subjects: set[int]) -> set[int]:
    """The subjects sklearn's shuffle split would hold out: ceil(5 %) after a seeded shuffle."""
    if not subjects:
        return set()
    ordered = sorted(subjects)
    # The float product, as sklearn computes it (exact for every n below 10**6).
    held_out = math.ceil(VALID_SHARE * len(ordered))
    permutation = np.random.RandomState(SPLIT_SEED).permutation(len(ordered))
    return {ordered[position] for position in permutation[:held_out]}
