"""Turn label rows into each image's positive findings (pipeline.md §4).

The steps run on one table of rows (silver or gold). File order is kept in a
``_seq`` column because it breaks ties: among rows of one (image, bbox, label)
the largest ``sent_loc`` wins, then the row that comes last.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from .errors import DataError
from .facts import Finding
from .ontology import Ontology
from .vocab import REMOVED_ATTRIBUTES, REMOVED_OBJECTS

__all__ = ["ImageLabels", "image_labels"]

_KEY = ["image_id", "bbox", "label_name"]
_EXEMPT = frozenset({"abnormal", "normal", "artifact"})
_SEP = "\x1f"  # joins bbox and label into one key; neither name contains it


@dataclass(frozen=True)
class ImageLabels:
    """Images that have labels after §4 step 7, and their positive findings."""

    labelled: frozenset[str]
    positives: Mapping[str, frozenset[Finding]]


def _keep_last(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (image, bbox, label): the largest sent_loc, ties to the largest _seq."""
    rows = rows.sort_values([*_KEY, "sent_loc", "_seq"])
    rows = rows.drop_duplicates(_KEY, keep="last")
    return rows.assign(_seq=range(len(rows)))


def _propagate(rows: pd.DataFrame, parents: Mapping[str, tuple[str, ...]], column: str,
               category: Mapping[str, str] | None) -> pd.DataFrame:
    """Copy rows of each child to its parents (one level), then keep the last per key.

    Copies come after every original row, in walk order, so on equal sent_loc a
    copy beats an original and a later copy beats an earlier one.
    """
    edges = pd.DataFrame([(child, parent, step) for step, (child, parent) in enumerate(
        (c, p) for c, ps in parents.items() for p in ps)], columns=["_child", column + "_p", "_step"])
    if edges.empty:
        return rows
    copies = rows.merge(edges, left_on=column, right_on="_child")
    copies = copies.sort_values(["_step", "_seq"])
    copies[column] = copies[column + "_p"]
    if category is not None:
        copies["categoryID"] = copies[column].map(category)
    copies = copies[rows.columns]
    copies["_seq"] = range(len(rows), len(rows) + len(copies))
    return _keep_last(pd.concat([rows, copies], ignore_index=True))


def _drop_impossible(rows: pd.DataFrame, ontology: Ontology, source: str) -> pd.DataFrame:
    labels = set(rows["label_name"]) - _EXEMPT
    unknown = sorted(label for label in labels if label not in ontology.possible)
    if unknown:
        raise DataError(f"{source}: label {unknown[0]!r} has no possible_attribute_of entry "
                        f"in the ontology")
    pairs = rows[["bbox", "label_name"]].drop_duplicates()
    impossible = {(bbox, label) for bbox, label in pairs.itertuples(index=False)
                  if label not in _EXEMPT and bbox not in ontology.possible[label]}
    keys = rows["bbox"] + _SEP + rows["label_name"]
    return rows[~keys.isin({bbox + _SEP + label for bbox, label in impossible})]


def image_labels(rows: pd.DataFrame, cohort: frozenset[str], ontology: Ontology,
                 source: str = "labels") -> ImageLabels:
    """Apply pipeline.md §4 steps 1–8 to label rows of one source (file order kept).

    Args:
        rows: label rows with image_id, row_id, bbox, categoryID, label_name, relation.
        cohort: the images to keep (step 2).
        ontology: the edited ontology (parent maps, possible pairs).
        source: the file the rows come from, for error messages.
    """
    # Steps 1 and 2 as one mask, so the large input table is copied once.
    kept = ((rows["categoryID"] != "nlp") & (rows["bbox"] != "unknown")
            & rows["image_id"].isin(list(cohort)))
    rows = rows.loc[kept, ["image_id", "row_id", "bbox", "categoryID", "label_name", "relation"]]
    rows["sent_loc"] = _sentence_locations(rows["row_id"], source)
    rows["_seq"] = range(len(rows))
    rows = _keep_last(rows)
    rows = _propagate(rows, ontology.attribute_parents, "label_name", ontology.category)
    rows = _propagate(rows, ontology.object_parents, "bbox", None)
    rows = _drop_impossible(rows, ontology, source)
    rows = rows[~rows["bbox"].isin(REMOVED_OBJECTS) & ~rows["label_name"].isin(REMOVED_ATTRIBUTES)]
    positive = rows[rows["relation"] == 1]
    positives: dict[str, set[Finding]] = {}
    columns = ("image_id", "bbox", "label_name", "categoryID")
    for image, bbox, label, category in zip(*(positive[c].tolist() for c in columns)):
        positives.setdefault(image, set()).add((bbox, label, category))
    return ImageLabels(labelled=frozenset(rows["image_id"]),
                       positives={image: frozenset(found) for image, found in positives.items()})


def _sentence_locations(row_ids: pd.Series, source: str) -> pd.Series:
    last = row_ids.str.rsplit("|", n=1).str[-1]
    locations = pd.to_numeric(last, errors="coerce")
    if locations.isna().any():
        bad = row_ids[locations.isna()].iloc[0]
        raise DataError(f"{source}: row_id {bad!r} does not end with a sentence number after '|'")
    return locations.astype("float64")
