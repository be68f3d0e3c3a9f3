"""Turn label rows into each image's positive findings (pipeline.md §4).

The steps run on one table of rows (silver or gold), with images, boxes, labels
and categories as integer codes: a full-size silver table has ~10^7 rows, and
sorting and de-duplicating integers is what keeps it fast and small. File order
is kept in a ``_seq`` column because it breaks ties: among rows of one
(image, bbox, label) the largest ``sent_loc`` wins, then the row that comes last.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cxrvqa.build.jsonio import paused_gc
from cxrvqa.build.ontology import Ontology
from cxrvqa.errors import DataError
from cxrvqa.facts import Finding
from cxrvqa.vocab import REMOVED_ATTRIBUTES, REMOVED_OBJECTS

__all__ = ["ImageLabels", "LabelOrigin", "image_labels"]

_KEY = ["image_id", "bbox", "label_name"]
_EXEMPT = frozenset({"abnormal", "normal", "artifact"})


@dataclass(frozen=True)
class LabelOrigin:
    """Which input row made a positive finding, and how it got there.

    Attributes:
        row: position of the row in the label rows given to ``image_labels``.
        via_attribute: the child attribute it was copied from (step 4), else None.
        via_object: the child object it was copied from (step 5), else None.
    """

    row: int
    via_attribute: str | None
    via_object: str | None


@dataclass(frozen=True)
class ImageLabels:
    """Images that have labels after §4 step 7, their positive findings and (when asked) origins."""

    labelled: frozenset[str]
    positives: Mapping[str, frozenset[Finding]]
    origins: Mapping[tuple[str, Finding], LabelOrigin] | None = None


@dataclass(frozen=True)
class _Names:
    """The names behind the integer codes of each coded column."""

    image_id: pd.Index
    bbox: pd.Index
    label_name: pd.Index
    categoryID: pd.Index

    def codes(self, column: str, names: Iterable[str]) -> np.ndarray:
        """Codes of ``names`` in ``column`` (names absent from it are left out)."""
        codes = getattr(self, column).get_indexer(list(names))
        return codes[codes >= 0]


def _encode(values: pd.Series, extra: Collection[str] = ()) -> tuple[np.ndarray, pd.Index]:
    """Integer codes of ``values`` over their distinct names plus ``extra``."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        present, codes = values.cat.categories, values.cat.codes.to_numpy()
    else:
        codes, present = pd.factorize(values)
    names = pd.Index(sorted(set(present) | set(extra)), dtype=object)
    return names.get_indexer(present)[codes].astype(np.int32), names


def _coded(rows: pd.DataFrame, ontology: Ontology, sent_loc: pd.Series) -> tuple[pd.DataFrame, _Names]:
    objects = {*ontology.object_parents, *(p for ps in ontology.object_parents.values() for p in ps)}
    labels = {*ontology.attribute_parents,
              *(p for ps in ontology.attribute_parents.values() for p in ps)}
    columns = {"image_id": (), "bbox": objects, "label_name": labels,
               "categoryID": set(ontology.category.values())}
    coded, names = {}, {}
    for column, extra in columns.items():
        coded[column], names[column] = _encode(rows[column], extra)
    frame = pd.DataFrame({**coded, "relation": rows["relation"].to_numpy(),
                          "sent_loc": sent_loc.to_numpy(), "_seq": np.arange(len(rows))})
    return frame, _Names(**names)


def _keep_last(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (image, bbox, label): the largest sent_loc, ties to the largest _seq."""
    rows = rows.sort_values([*_KEY, "sent_loc", "_seq"])
    rows = rows.drop_duplicates(_KEY, keep="last")
    return rows.assign(_seq=np.arange(len(rows)))


def _propagate(rows: pd.DataFrame, parents: Mapping[str, tuple[str, ...]], column: str,
               names: _Names, category: Mapping[str, str] | None) -> pd.DataFrame:
    """Copy rows of each child to its parents (one level), then keep the last per key.

    Copies come after every original row, in walk order, so on equal sent_loc a
    copy beats an original and a later copy beats an earlier one.
    """
    pairs = [(child, parent) for child, ps in parents.items() for parent in ps]
    if not pairs:
        return rows
    index = getattr(names, column)
    edges = pd.DataFrame({"_child": index.get_indexer([c for c, _ in pairs]),
                          "_parent": index.get_indexer([p for _, p in pairs]),
                          "_step": np.arange(len(pairs))})
    copies = rows.merge(edges, left_on=column, right_on="_child").sort_values(["_step", "_seq"])
    if f"_via_{column}" in copies:  # provenance: remember the child the copy came from
        copies[f"_via_{column}"] = copies[column]
    copies[column] = copies["_parent"]
    if category is not None:
        of_label = names.categoryID.get_indexer([category.get(label) for label in index])
        copies["categoryID"] = of_label[copies[column].to_numpy()].astype(np.int32)
    copies = copies[rows.columns].assign(_seq=np.arange(len(rows), len(rows) + len(copies)))
    return _keep_last(pd.concat([rows, copies], ignore_index=True))


def _drop_impossible(rows: pd.DataFrame, ontology: Ontology, names: _Names,
                     source: str) -> pd.DataFrame:
    present = names.label_name[np.unique(rows["label_name"].to_numpy())]
    unknown = sorted(set(present) - _EXEMPT - set(ontology.possible))
    if unknown:
        raise DataError(f"{source}: label {unknown[0]!r} has no possible_attribute_of entry "
                        f"in the ontology")
    width = len(names.label_name)
    pairs = rows["bbox"].to_numpy(np.int64) * width + rows["label_name"].to_numpy(np.int64)
    impossible = [pair for pair in np.unique(pairs).tolist()
                  if (label := names.label_name[pair % width]) not in _EXEMPT
                  and names.bbox[pair // width] not in ontology.possible[label]]
    return rows[~np.isin(pairs, impossible)]


def image_labels(rows: pd.DataFrame, cohort: frozenset[str], ontology: Ontology,
                 source: str = "labels", *, origins: bool = False) -> ImageLabels:
    """Apply pipeline.md §4 steps 1–8 to label rows of one source (file order kept).

    Args:
        rows: label rows with image_id, row_id, bbox, categoryID, label_name, relation
            (text or categorical columns).
        cohort: the images to keep (step 2).
        ontology: the edited ontology (parent maps, possible pairs).
        source: the file the rows come from, for error messages.
        origins: also record, for each positive finding, the row that won and the
            propagation that brought it (``ImageLabels.origins``; costs three columns).
    """
    # Steps 1 and 2 as one mask, so the large input table is copied once.
    kept = ((rows["categoryID"] != "nlp") & (rows["bbox"] != "unknown")
            & rows["image_id"].isin(list(cohort)))
    positions = np.flatnonzero(kept.to_numpy())
    rows = rows[kept]
    coded, names = _coded(rows, ontology, _sentence_locations(rows["row_id"], source))
    del rows
    if origins:
        coded = coded.assign(_row=positions, _via_label_name=-1, _via_bbox=-1)
    coded = _keep_last(coded)
    coded = _propagate(coded, ontology.attribute_parents, "label_name", names, ontology.category)
    coded = _propagate(coded, ontology.object_parents, "bbox", names, None)
    coded = _drop_impossible(coded, ontology, names, source)
    coded = coded[~coded["bbox"].isin(names.codes("bbox", REMOVED_OBJECTS))
                  & ~coded["label_name"].isin(names.codes("label_name", REMOVED_ATTRIBUTES))]
    positive = coded[coded["relation"] == 1]
    return ImageLabels(labelled=frozenset(names.image_id[np.unique(coded["image_id"].to_numpy())]),
                       positives=_positives(positive, names),
                       origins=_origins(positive, names) if origins else None)


def _origins(rows: pd.DataFrame, names: _Names) -> dict[tuple[str, Finding], LabelOrigin]:
    def name(index: pd.Index, code: int) -> str | None:
        return None if code < 0 else str(index[code])

    return {(names.image_id[image], (names.bbox[bbox], names.label_name[label],
                                     names.categoryID[category])):
            LabelOrigin(row, name(names.label_name, via_label), name(names.bbox, via_bbox))
            for image, bbox, label, category, row, via_label, via_bbox in zip(*(
                rows[c].tolist() for c in ("image_id", "bbox", "label_name", "categoryID", "_row",
                                           "_via_label_name", "_via_bbox")))}


def _positives(rows: pd.DataFrame, names: _Names) -> dict[str, frozenset[Finding]]:
    positives: dict[str, set[Finding]] = {}
    columns = [getattr(names, c).to_numpy()[rows[c].to_numpy()].tolist()
               for c in ("image_id", "bbox", "label_name", "categoryID")]
    with paused_gc():  # millions of acyclic tuples and sets
        for image, bbox, label, category in zip(*columns):
            positives.setdefault(image, set()).add((bbox, label, category))
        return {image: frozenset(found) for image, found in positives.items()}


def _sentence_locations(row_ids: pd.Series, source: str) -> pd.Series:
    """The number after the last ``|`` of each row_id, parsed once per distinct row_id."""
    if isinstance(row_ids.dtype, pd.CategoricalDtype):
        names, codes = row_ids.cat.categories, row_ids.cat.codes.to_numpy()
    else:
        codes, names = pd.factorize(row_ids)
    last = pd.Series(names).str.rsplit("|", n=1).str[-1]
    locations = pd.to_numeric(last, errors="coerce").to_numpy(dtype=np.float64)[codes]
    bad = np.isnan(locations)
    if bad.any():
        raise DataError(f"{source}: row_id {row_ids.iloc[int(bad.argmax())]!r} does not end with "
                        f"a sentence number after '|'")
    return pd.Series(locations, index=row_ids.index)
