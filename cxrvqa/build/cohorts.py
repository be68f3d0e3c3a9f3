"""Select the silver (train/valid) and gold (test) cohorts of images (pipeline.md §3)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from cxrvqa.errors import DataError

__all__ = ["Cohorts", "select_cohorts", "study_datetime_key", "study_order"]

FRONTAL = ("AP", "PA")
MAX_STUDY_ORDER = 20
GOLD_PATIENTS = 500


@dataclass(frozen=True)
class Cohorts:
    """Image ids of the two cohorts, and the 500 gold first-study images."""

    silver: frozenset[str]
    gold: frozenset[str]
    gold_first: frozenset[str]


def study_datetime_key(metadata: pd.DataFrame) -> pd.Series:
    """StudyDate + StudyTime as one sortable integer (YYYYMMDDHHMMSSfff).

    StudyTime lost its leading zeros in the file; formatting it as ``%010.3f``
    restores them, as the published builder does before parsing.
    """
    text = metadata["StudyTime"].map(lambda t: "%010.3f" % t)
    hhmmss = text.str.slice(0, 6).astype("int64")
    millis = text.str.slice(7, 10).astype("int64")
    return metadata["StudyDate"].astype("int64") * 10**9 + hhmmss * 1000 + millis


def study_order(metadata: pd.DataFrame) -> pd.Series:
    """StudyOrder per row: dense rank of the study within its subject.

    Studies rank by their earliest image's datetime (all views count), then study_id.
    The published builder breaks datetime ties by appending the study_id digits to
    the millisecond datetime text and parsing it back at nanosecond precision, so
    only the first six digits of the study_id count: studies at the same instant
    whose ids share those digits share a rank. That is kept.
    """
    studies = (metadata.assign(_when=study_datetime_key(metadata))
               .groupby(["subject_id", "study_id"], sort=False)["_when"].min().reset_index())
    digits = studies["study_id"].astype(str).str.slice(0, 6).str.ljust(6, "0")
    studies["_tie"] = digits.astype("int64")
    studies = studies.sort_values(["subject_id", "_when", "_tie"])
    keys = studies[["subject_id", "_when", "_tie"]]
    starts_rank = keys.ne(keys.shift()).any(axis=1)
    studies["order"] = starts_rank.astype("int64").groupby(studies["subject_id"]).cumsum()
    order = studies.drop_duplicates("study_id").set_index("study_id")["order"]
    return metadata["study_id"].map(order)


def _first_frontal_per_study(metadata: pd.DataFrame) -> pd.DataFrame:
    frontal = metadata[metadata["ViewPosition"].isin(FRONTAL)]
    frontal = frontal.sort_values(["study_id", "_when", "dicom_id"])
    return frontal.drop_duplicates("study_id", keep="first")


def _box_outliers(candidates: set[str], boxes: pd.DataFrame) -> set[str]:
    """Images among ``candidates`` with a box width beyond mean ± 3 sd of its box name.

    Mean and sample sd of a name come from all of its rows, candidates or not.
    """
    # A mask and per-name row positions, not a copy of the ~9 M-row box table.
    candidate = boxes["image_id"].isin(list(candidates)).to_numpy()
    widths = boxes["width"]
    outliers: set[str] = set()
    # observed=True: the names are categoricals (pandas 2 defaults to every category).
    for _name, rows in boxes.groupby("bbox_name", sort=False, observed=True).indices.items():
        named = widths.iloc[rows]
        mean, sd = named.mean(), named.std()
        outside = candidate[rows] & ((named < mean - 3 * sd) | (named > mean + 3 * sd)).to_numpy()
        outliers.update(boxes["image_id"].iloc[rows[outside]].tolist())
    return outliers


def _silver(images: pd.DataFrame, boxes: pd.DataFrame, gold_patients: set[int]) -> frozenset[str]:
    box_counts = boxes.groupby("image_id", observed=True)["bbox_name"].nunique()
    incomplete = set(box_counts.index[box_counts != 36])
    images = images[~images["dicom_id"].isin(incomplete)]
    images = images[~images["dicom_id"].isin(_box_outliers(set(images["dicom_id"]), boxes))]
    images = images[(images["StudyOrder"] <= MAX_STUDY_ORDER)
                    & ~images["subject_id"].isin(gold_patients)]
    return frozenset(images["dicom_id"])


def _gold(images: pd.DataFrame, metadata: pd.DataFrame, gold_labels: pd.DataFrame,
          gold_path: str) -> tuple[frozenset[str], frozenset[str]]:
    gold_patients = set(gold_labels["patient_id"])
    named_first = set(gold_labels["image_id"])
    images = images[(images["StudyOrder"] <= MAX_STUDY_ORDER)
                    & images["subject_id"].isin(gold_patients)]
    found = set(metadata.loc[metadata["dicom_id"].isin(named_first), "dicom_id"])
    if len(found) != GOLD_PATIENTS or (images["StudyOrder"] == 1).sum() != len(found):
        raise DataError(f"{gold_path}: expected each of the {GOLD_PATIENTS} gold patients' first "
                        f"frontal study to be the image the file names; {len(found)} of its images "
                        f"are in the metadata, {(images['StudyOrder'] == 1).sum()} first studies "
                        f"are in the cohort")
    gold = set(images.loc[images["StudyOrder"] != 1, "dicom_id"]) | found
    return frozenset(gold), frozenset(found)


def select_cohorts(metadata: pd.DataFrame, silver_boxes: pd.DataFrame, gold_labels: pd.DataFrame,
                   *, gold_path: str = "gold labels", boxes_path: str = "silver boxes") -> Cohorts:
    """Apply pipeline.md §3 to the full metadata, the silver boxes and the gold labels."""
    names = silver_boxes["bbox_name"].nunique()
    if names != 36:
        raise DataError(f"{boxes_path}: expected 36 distinct bbox_name values, found {names}")
    patients = gold_labels["patient_id"].nunique()
    if patients != GOLD_PATIENTS:
        raise DataError(f"{gold_path}: expected {GOLD_PATIENTS} distinct patient_id values, "
                        f"found {patients}")
    metadata = metadata.assign(_when=study_datetime_key(metadata),
                               StudyOrder=study_order(metadata))
    images = _first_frontal_per_study(metadata)
    silver = _silver(images, silver_boxes, set(gold_labels["patient_id"]))
    gold, gold_first = _gold(images, metadata, gold_labels, gold_path)
    return Cohorts(silver=silver, gold=gold, gold_first=gold_first)
