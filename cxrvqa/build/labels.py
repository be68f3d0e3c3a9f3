"""Turn label rows into each image's positive findings (pipeline.md §4).

The steps run on one table of rows (silver or gold) held as numpy columns of integer
codes (images, boxes, labels, categories): a full-size silver table has ~10^7 rows,
and sorting and de-duplicating integers is what keeps it fast and small. Row order
stands for file order, which breaks ties: among rows of one (image, bbox, label) the
largest ``sent_loc`` wins, then the row that comes last.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrvqa.build.jsonio import paused_gc
from cxrvqa.build.ontology import Ontology
from cxrvqa.build.stages import progress_bar
from cxrvqa.errors import DataError
from cxrvqa.facts import Finding
from cxrvqa.vocab import REMOVED_ATTRIBUTES, REMOVED_OBJECTS

__all__ = ["ImageLabels", "LabelOrigin", "image_labels"]

# §4 step 6 exempts artifact alone: normal/abnormal rows are gone by then only because their
# category is nlp (step 1); under any other category they are checked like every label.
_EXEMPT = frozenset({"artifact"})
# A table is a dict of equally long numpy columns: the four coded columns, "positive"
# (relation == 1), "sent" (the rank of sent_loc among the table's distinct values) and,
# when origins are asked for, "_row", "_via_label_name" and "_via_bbox". Columns are as
# narrow as their values allow: a full-size table has ~9 M rows after propagation.
_Table = dict[str, np.ndarray]


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


def _distinct(values: pd.Series, positions: np.ndarray) -> tuple[np.ndarray, pd.Index]:
    """Codes of ``values`` at ``positions`` and the distinct values they index (a categorical's
    own codes and categories; otherwise factorized)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.cat.codes.to_numpy()[positions], values.cat.categories
    return pd.factorize(values.iloc[positions])


def _encode(values: pd.Series, positions: np.ndarray,
            extra: Collection[str] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Codes of ``values`` at ``positions`` over the sorted names present plus ``extra``."""
    codes, present = _distinct(values, positions)
    names = pd.Index(sorted(set(present) | set(extra)), dtype=object)
    return names.get_indexer(present)[codes].astype(_narrow(len(names))), names.to_numpy()


def _narrow(count: int) -> type[np.signedinteger]:
    """The smallest signed integer type that holds codes 0..count-1 and -1."""
    return np.int16 if count < 2 ** 15 else np.int32


def _coded(rows: pd.DataFrame, positions: np.ndarray, ontology: Ontology,
           source: str) -> tuple[_Table, dict[str, np.ndarray]]:
    """The kept rows as a table of codes, and the names behind each coded column."""
    objects = {*ontology.object_parents, *(p for ps in ontology.object_parents.values() for p in ps)}
    labels = {*ontology.attribute_parents,
              *(p for ps in ontology.attribute_parents.values() for p in ps)}
    extras = {"image_id": (), "bbox": objects, "label_name": labels,
              "categoryID": set(ontology.category.values())}
    table, names = {}, {}
    for column, extra in extras.items():
        table[column], names[column] = _encode(rows[column], positions, extra)
    table["positive"] = rows["relation"].to_numpy()[positions] == 1
    table["sent"] = _sentence_ranks(rows["row_id"], positions, source)
    return table, names


def _take(table: _Table, index: np.ndarray) -> _Table:
    return {column: values[index] for column, values in table.items()}


def _key(table: _Table, names: Mapping[str, np.ndarray]) -> tuple[np.ndarray, int]:
    """One int64 per row, (image, bbox, label) then the sent_loc rank in that order of weight,
    and the weight of the (image, bbox, label) part."""
    widths = [len(names["image_id"]), len(names["bbox"]), len(names["label_name"]),
              int(table["sent"].max(initial=0)) + 1]
    if np.prod(np.array(widths, dtype=np.float64)) >= 2.0 ** 62:
        raise DataError("label rows: too many distinct images, boxes, labels and sentence "
                        "numbers to index together")  # ~10^18 combinations: not a real table
    key = table["image_id"].astype(np.int64)
    for column, width in zip(("bbox", "label_name", "sent"), widths[1:]):
        key = key * width + table[column]
    return key, widths[-1]


def _keep_last(table: _Table, names: Mapping[str, np.ndarray]) -> _Table:
    """Per (image, bbox, label): the largest sent_loc, ties to the later row; sorted by key."""
    key, sent_width = _key(table, names)
    order = np.argsort(key, kind="stable")  # stable: equal keys keep row (file) order
    key = key[order] // sent_width
    last = np.ones(len(key), dtype=bool)
    np.not_equal(key[1:], key[:-1], out=last[:-1])
    return _take(table, order[last])


def _propagate(table: _Table, parents: Mapping[str, tuple[str, ...]], column: str,
               names: Mapping[str, np.ndarray], category: Mapping[str, str] | None) -> _Table:
    """Copy rows of each child to its parents (one level), then keep the last per key.

    Copies come after every original row, in walk order, so on equal sent_loc a
    copy beats an original and a later copy beats an earlier one.
    """
    pairs = [(child, parent) for child, ps in parents.items() for parent in ps]
    if not pairs:
        return table
    index = pd.Index(names[column])
    children = index.get_indexer([child for child, _ in pairs])
    parent_codes = index.get_indexer([parent for _, parent in pairs])
    values = table[column]
    by_code = np.argsort(values, kind="stable")  # rows of each code together, in row order
    starts = np.searchsorted(values[by_code], children, side="left")
    ends = np.searchsorted(values[by_code], children, side="right")
    picked = np.concatenate([by_code[start:end] for start, end in zip(starts, ends)])
    copies = _take(table, picked)
    if f"_via_{column}" in copies:  # provenance: remember the child the copy came from
        copies[f"_via_{column}"] = copies[column]
    copies[column] = np.repeat(parent_codes, ends - starts).astype(values.dtype)
    if category is not None:
        of_label = pd.Index(names["categoryID"]).get_indexer(
            [category.get(label) for label in names[column]])
        copies["categoryID"] = of_label[copies[column]].astype(table["categoryID"].dtype)
    return _keep_last({name: np.concatenate([table[name], copies[name]]) for name in table}, names)


def _drop_impossible(table: _Table, ontology: Ontology, names: Mapping[str, np.ndarray],
                     source: str) -> _Table:
    labels, objects = names["label_name"], names["bbox"]
    present = labels[np.unique(table["label_name"])]
    unknown = sorted(set(present) - _EXEMPT - set(ontology.possible))
    if unknown:
        raise DataError(f"{source}: label {unknown[0]!r} has no possible_attribute_of entry "
                        f"in the ontology")
    allowed = np.ones((len(objects), len(labels)), dtype=bool)
    for code, label in enumerate(labels):
        if label not in _EXEMPT and label in ontology.possible:
            allowed[:, code] = [obj in ontology.possible[label] for obj in objects]
    return _take(table, allowed[table["bbox"], table["label_name"]])


def _not_removed(table: _Table, names: Mapping[str, np.ndarray]) -> _Table:
    removed_objects = np.isin(names["bbox"], list(REMOVED_OBJECTS))
    removed_attributes = np.isin(names["label_name"], list(REMOVED_ATTRIBUTES))
    return _take(table, ~removed_objects[table["bbox"]] & ~removed_attributes[table["label_name"]])


def image_labels(rows: pd.DataFrame, cohort: frozenset[str], ontology: Ontology,
                 source: str = "labels", *, origins: bool = False,
                 progress: bool = False) -> ImageLabels:
    """Apply pipeline.md §4 steps 1–8 to label rows of one source (file order kept).

    Args:
        rows: label rows with image_id, row_id, bbox, categoryID, label_name, relation
            (text or categorical columns).
        cohort: the images to keep (step 2).
        ontology: the edited ontology (parent maps, possible pairs).
        source: the file the rows come from, for error messages.
        origins: also record, for each positive finding, the row that won and the
            propagation that brought it (``ImageLabels.origins``; costs three columns).
        progress: show a tqdm bar on stderr: the steps done and the rows after each.
    """
    steps = progress_bar(total=6, enabled=progress, unit="step", leave=False,
                         desc=f"labelling {len(rows):,} rows of {Path(source).name}")
    with steps:
        # Steps 1 and 2 as one mask over the input; only the kept rows are coded.
        kept = ((rows["categoryID"] != "nlp") & (rows["bbox"] != "unknown")
                & rows["image_id"].isin(list(cohort)))
        positions = np.flatnonzero(kept.to_numpy())
        table, names = _coded(rows, positions, ontology, source)
        if origins:
            table.update(_row=positions, _via_label_name=np.full(len(positions), -1, np.int32),
                         _via_bbox=np.full(len(positions), -1, np.int32))
        _done(steps, table)
        for step in (lambda t: _keep_last(t, names),
                     lambda t: _propagate(t, ontology.attribute_parents, "label_name", names,
                                          ontology.category),
                     lambda t: _propagate(t, ontology.object_parents, "bbox", names, None),
                     lambda t: _not_removed(_drop_impossible(t, ontology, names, source), names)):
            table = step(table)
            _done(steps, table)
        positive = _take(table, table["positive"])
        labelled = frozenset(names["image_id"][np.unique(table["image_id"])].tolist())
        findings = _findings(positive, names)
        found = _positives(positive["image_id"], findings, names)
        steps.update()
    return ImageLabels(labelled=labelled, positives=found,
                       origins=_origins(positive, findings, names) if origins else None)


def _done(steps: Any, table: _Table) -> None:
    """One more step done; the bar shows how many rows the table has now."""
    steps.set_postfix(rows=f"{len(table['positive']):,}")
    steps.update()


def _findings(table: _Table, names: Mapping[str, np.ndarray]) -> np.ndarray:
    """Each row's (bbox, label, category) tuple; equal findings share one tuple object."""
    # Categories shift by one: a parent label without a category has code -1, which (as a
    # numpy index) names the last category.
    width_l, width_c = len(names["label_name"]), len(names["categoryID"]) + 1
    code = ((table["bbox"].astype(np.int64) * width_l + table["label_name"]) * width_c
            + table["categoryID"] + 1)
    distinct, inverse = np.unique(code, return_inverse=True)
    bbox, rest = np.divmod(distinct, width_l * width_c)
    label, category = np.divmod(rest, width_c)
    found = np.empty(len(distinct), dtype=object)
    found[:] = list(zip(names["bbox"][bbox].tolist(), names["label_name"][label].tolist(),
                        names["categoryID"][category - 1].tolist()))
    return found[inverse.reshape(-1)]


def _positives(images: np.ndarray, found: np.ndarray,
               names: Mapping[str, np.ndarray]) -> dict[str, frozenset[Finding]]:
    """image -> its positive findings; rows are sorted by image (``_keep_last``)."""
    starts: np.ndarray | list[int]
    starts = np.flatnonzero(np.r_[True, images[1:] != images[:-1]]) if len(images) else []
    bounds = np.r_[starts, len(images)].astype(np.int64).tolist()
    image_names = names["image_id"][images[bounds[:-1]]].tolist() if len(images) else []
    with paused_gc():  # ~10^5 frozensets of shared tuples
        return {image: frozenset(found[start:end].tolist())
                for image, start, end in zip(image_names, bounds, bounds[1:])}


def _origins(table: _Table, found: np.ndarray,
             names: Mapping[str, np.ndarray]) -> dict[tuple[str, Finding], LabelOrigin]:
    def name(column: str, code: int) -> str | None:
        return None if code < 0 else str(names[column][code])

    return {(image, finding): LabelOrigin(row, name("label_name", via_label), name("bbox", via_bbox))
            for image, finding, row, via_label, via_bbox in zip(
                names["image_id"][table["image_id"]].tolist(), found.tolist(),
                *(table[c].tolist() for c in ("_row", "_via_label_name", "_via_bbox")))}


def _sentence_ranks(row_ids: pd.Series, positions: np.ndarray, source: str) -> np.ndarray:
    """Rank (0, 1, …) of the number after the last ``|`` of each kept row's row_id.

    Parsed once per distinct row_id; ranks order rows as the numbers do (equal numbers,
    equal ranks), and fit the sort key better than floats.
    """
    codes, distinct = _distinct(row_ids, positions)
    numbers = _sentence_numbers(distinct)
    located = numbers[codes]  # one float per kept row (~10^7 at full size): gathered once
    bad = np.isnan(located)
    if bad.any():
        raise DataError(f"{source}: row_id {distinct[codes[int(bad.argmax())]]!r} does not end "
                        f"with a sentence number after '|'")
    used = np.zeros(len(numbers), dtype=bool)
    used[codes] = True
    present = np.unique(numbers[used])
    return np.searchsorted(present, located).astype(_narrow(len(present)))


def _sentence_numbers(row_ids: pd.Index) -> np.ndarray:
    """The number after the last ``|`` of each row_id, NaN where there is none."""
    import pyarrow as pa
    import pyarrow.compute as pc

    # ~3 M distinct row_ids at full size: Arrow's kernels take ~1 s where pandas' string
    # methods take ~9. Plain digits (the published files) are read by Arrow; anything
    # else by pd.to_numeric, the rule's definition.
    last = pc.replace_substring_regex(pa.array(row_ids, type=pa.string()), r"(?s)^.*\|", "")
    if len(last) and pc.all(pc.match_substring_regex(last, r"^[0-9]{1,15}$")).as_py():
        return pc.cast(last, pa.int64()).to_numpy().astype(np.float64)
    return pd.to_numeric(pd.Series(last.to_pylist(), dtype=object),
                         errors="coerce").to_numpy(dtype=np.float64)
