"""The label steps 1–8 of pipeline.md §4 on a row table, one pandas step per rule."""

from __future__ import annotations

import pandas as pd

from .errors import OracleError
from .ontology import ONTOLOGY_FILE, REMOVED_ATTRIBUTES, REMOVED_OBJECTS, Ontology

__all__ = ["dense_labels", "kept_rows"]

KEY = ["study_id", "image_id", "bbox", "label_name"]
ORDER = ["study_id", "image_id", "sent_loc", "bbox", "label_name"]
COLUMNS = ["study_id", "image_id", "sent_loc", "bbox", "relation", "label_name", "categoryID"]
EXEMPT_FROM_POSSIBLE = ("artifact",)


def _last_mention(rows: pd.DataFrame) -> pd.DataFrame:
    # A stable sort keeps file (then copy) order among equal sent_loc, so keep="last" takes
    # the latest sentence and, on a tie, the row that came last.
    rows = rows.sort_values(ORDER, kind="stable")
    return rows.drop_duplicates(KEY, keep="last").reset_index(drop=True)


def _propagate(rows: pd.DataFrame, parents: dict[str, list[str]], column: str,
               category_of: dict[str, str] | None) -> pd.DataFrame:
    """Copy child rows to their parents. Copies come only from the rows as they were before
    this step (one level) and follow the originals in walk order, which is what makes copies
    beat originals, and later copies earlier ones, at equal sent_loc."""
    copies = []
    for child, child_parents in parents.items():
        for parent in child_parents:
            copy = rows[rows[column] == child].copy()
            copy[column] = parent
            if category_of is not None:
                copy["categoryID"] = category_of[parent]
            copies.append(copy)
    return _last_mention(pd.concat([rows, *copies], ignore_index=True))


def _drop_impossible(rows: pd.DataFrame, possible: dict[str, list[str]]) -> pd.DataFrame:
    impossible = set()
    for bbox, label in rows[["bbox", "label_name"]].drop_duplicates().itertuples(index=False):
        if label in EXEMPT_FROM_POSSIBLE:
            continue
        if label not in possible:
            raise OracleError(f"{ONTOLOGY_FILE}: no possible_attribute_of {label!r}")
        if bbox not in possible[label]:
            impossible.add((bbox, label))
    possible_rows = [pair not in impossible for pair in zip(rows["bbox"], rows["label_name"])]
    return rows[pd.Series(possible_rows, index=rows.index, dtype=bool)]


def kept_rows(rows: pd.DataFrame, cohort_images: set[str], ontology: Ontology) -> pd.DataFrame:
    """Steps 1–7: the rows that survive, one per (study, image, bbox, label)."""
    rows = rows[(rows["categoryID"] != "nlp") & (rows["bbox"] != "unknown")]
    rows = rows[rows["image_id"].isin(cohort_images)][COLUMNS]
    rows = _last_mention(rows)
    rows = _propagate(rows, ontology.attribute_parents, "label_name", ontology.category_of)
    rows = _propagate(rows, ontology.object_parents, "bbox", None)
    rows = _drop_impossible(rows, ontology.possible)
    rows = rows[~rows["bbox"].isin(REMOVED_OBJECTS) & ~rows["label_name"].isin(REMOVED_ATTRIBUTES)]
    return rows.reset_index(drop=True)


def dense_labels(kept: pd.DataFrame, ontology: Ontology) -> pd.DataFrame:
    """Step 8: every image with kept rows x every possible pair, relation 1 where a row says 1."""
    images = kept[["study_id", "image_id"]].drop_duplicates()
    normal = pd.DataFrame(ontology.possible_pairs(), columns=["bbox", "label_name", "categoryID"])
    normal["relation"] = 0
    everything = pd.concat([kept, images.merge(normal, how="cross")], ignore_index=True)
    everything = everything.sort_values([*KEY, "relation"], kind="stable")
    return everything.drop_duplicates(KEY, keep="last").reset_index(drop=True)
