"""Study order and the silver and gold cohorts of pipeline.md §3, as DataFrame filters."""

from __future__ import annotations

import pandas as pd

from .errors import OracleError

__all__ = ["GOLD_PATIENTS", "MAX_STUDY_ORDER", "gold_cohort", "silver_cohort", "with_study_order"]

MAX_STUDY_ORDER = 20
GOLD_PATIENTS = 500
BOXES_PER_IMAGE = 36
N_SD = 3


def with_study_order(metadata: pd.DataFrame) -> pd.DataFrame:
    """Add StudyDateTime and StudyOrder (dense rank per subject, ties by study_id) to all rows."""
    table = metadata.copy()
    dates = table["StudyDate"].astype(int).astype(str)
    # "%010.3f" restores the leading zeros the file lost: 84935.531 -> 084935.531.
    times = table["StudyTime"].map(lambda value: "%010.3f" % value)
    table["StudyDateTime"] = pd.to_datetime(dates + " " + times, format="%Y%m%d %H%M%S.%f")
    studies = table.sort_values(["subject_id", "study_id", "StudyDateTime"], kind="stable")
    studies = studies.drop_duplicates(["subject_id", "study_id"], keep="first").copy()
    # The published builder appends study_id to the millisecond datetime text and re-parses
    # it: only the first six digits of study_id survive (as nanoseconds), so studies at the
    # same instant whose ids share those digits tie and share a StudyOrder.
    instant = studies["StudyDateTime"].astype("datetime64[ns]").astype("int64")
    tie_break = studies["study_id"].astype(str).str[:6].str.ljust(6, "0").astype("int64")
    studies["instant"] = instant + tie_break
    studies["StudyOrder"] = studies.groupby("subject_id")["instant"].rank(method="dense")
    order = studies.set_index("study_id")["StudyOrder"].astype(int)
    table["StudyOrder"] = table["study_id"].map(order)
    return table


def _frontal_one_per_study(metadata: pd.DataFrame) -> pd.DataFrame:
    frontal = metadata[metadata["ViewPosition"].isin(["AP", "PA"])]
    frontal = frontal.sort_values(["study_id", "StudyDateTime", "image_id"], kind="stable")
    return frontal.drop_duplicates("study_id", keep="first")


def _box_outlier_images(boxes: pd.DataFrame) -> set[str]:
    outliers: set[str] = set()
    for name in boxes["bbox_name"].unique():
        widths = boxes[boxes["bbox_name"] == name]
        mean, sd = widths["width"].mean(), widths["width"].std()
        outside = (widths["width"] < mean - N_SD * sd) | (widths["width"] > mean + N_SD * sd)
        outliers |= set(widths.loc[outside, "image_id"])
    return outliers


def silver_cohort(metadata: pd.DataFrame, boxes: pd.DataFrame, gold_pids: set[int]) -> pd.DataFrame:
    """Train/valid images: steps 1–6 of §3, in order."""
    cohort = _frontal_one_per_study(metadata)
    names_per_image = boxes.groupby("image_id")["bbox_name"].nunique()
    incomplete = set(names_per_image[names_per_image != BOXES_PER_IMAGE].index)
    cohort = cohort[~cohort["image_id"].isin(incomplete)]
    cohort = cohort[~cohort["image_id"].isin(_box_outlier_images(boxes))]
    cohort = cohort[cohort["StudyOrder"] <= MAX_STUDY_ORDER]
    return cohort[~cohort["subject_id"].isin(gold_pids)]


def gold_cohort(metadata: pd.DataFrame, gold_pids: set[int], gold_images: set[str]) -> pd.DataFrame:
    """Test-side images: steps 1, 2, 5 for gold patients; first studies become the gold images."""
    cohort = _frontal_one_per_study(metadata)
    cohort = cohort[cohort["StudyOrder"] <= MAX_STUDY_ORDER]
    cohort = cohort[cohort["subject_id"].isin(gold_pids)]
    named = metadata[metadata["image_id"].isin(gold_images)]
    firsts = cohort[cohort["StudyOrder"] == 1]
    if len(named) != GOLD_PATIENTS or len(firsts) != len(named):
        raise OracleError(f"gold cohort: {len(named)} gold images in the metadata and "
                          f"{len(firsts)} first studies, expected {GOLD_PATIENTS} of each")
    return pd.concat([cohort[cohort["StudyOrder"] != 1], named])
