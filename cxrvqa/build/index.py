"""The scene index: every labelled cohort image's facts, computed from the sources (pipeline.md §2–§4).

``load_index`` reads the sources, selects the cohorts, applies the label rules and
packs each image's positive findings, view position, gender and box x-coordinates
into an ``ImageFacts``. It is what the build answers questions from, and what
question generation, statistics, explanations and the SQL bridge read.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from cxrvqa.build import loaders
from cxrvqa.build.cohorts import select_cohorts
from cxrvqa.build.commit import settle
from cxrvqa.build.jsonio import paused_gc
from cxrvqa.build.labels import image_labels
from cxrvqa.build.layout import SourceLayout
from cxrvqa.build.ontology import Ontology, load_ontology
from cxrvqa.build.stages import Stages
from cxrvqa.errors import DataError
from cxrvqa.facts import MISSING, Boxes, BoxTable, Finding, ImageFacts

__all__ = ["ImageMeta", "SceneIndex", "first_boxes", "load_index", "load_silver_rows"]


@dataclass(frozen=True)
class ImageMeta:
    """Identifiers and view of one image, from the metadata."""

    subject_id: int
    study_id: int
    viewpos: str | None


@dataclass(frozen=True)
class SceneIndex:
    """Everything answers need: facts of the labelled silver and gold images, and their metadata."""

    silver: Mapping[str, ImageFacts]
    gold: Mapping[str, ImageFacts]
    meta: Mapping[str, ImageMeta]
    ontology: Ontology
    # (labels, image) -> the image's label rows as read, in file order: kept only for the images
    # ``load_index(..., keep_rows_of=...)`` names, so that an explanation reads the sources once.
    rows: Mapping[tuple[str, str], pd.DataFrame] = field(default_factory=dict)


def load_silver_rows(layout: SourceLayout, *, progress: bool = False
                     ) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Silver label rows, box rows and their source, from the tabular files or else the scene graphs."""
    boxes, labels, source = _silver_sources(layout, progress)
    return labels(), boxes, source


def _silver_sources(layout: SourceLayout, progress: bool
                    ) -> tuple[pd.DataFrame, Callable[[], pd.DataFrame], str]:
    """Silver box rows, a function giving the label rows, and their source.

    From the tabular files the label rows are read when asked, so that the full box
    table can be gone by then (together they would be the build's memory peak).
    """
    settle(layout.scene_tabular)  # a scene-tabular run interrupted mid-commit is finished first
    if layout.has_scene_tabular():
        _note_skipped_graphs(layout.skipped_graphs)
        return (loaders.read_silver_boxes(layout.silver_boxes),
                partial(loaders.read_silver_labels, layout.silver_labels), str(layout.silver_labels))
    from cxrvqa.build.scenegraph import find_scene_graphs, read_scene_graphs

    source = find_scene_graphs(layout.chest_imagenome)
    if source is None:
        raise DataError(f"{layout.silver_labels}: file not found, and no scene graphs "
                        f"(silver_dataset/scene_graph.zip or scene_graph/) to read instead")
    # Only the columns a build reads, names as categoricals: all columns of ~240 K graphs
    # would take ~5 GiB.
    scan = read_scene_graphs(
        source, progress=progress,
        attribute_columns=("image_id", "row_id", "bbox", "categoryID", "label_name", "relation"),
        box_columns=("object_id", "bbox_name", "x1", "x2", "width"),
        categorical=("image_id", "bbox", "categoryID", "label_name", "bbox_name"))
    labels = scan.attributes.assign(image_id=loaders.strip_dcm(scan.attributes["image_id"]))
    return _silver_boxes(scan.boxes, source.path), lambda: labels, str(source.path)


def _note_skipped_graphs(listing: Path) -> None:
    """Say so when the tabular files lack graphs that `scene-tabular --skip-bad` left out."""
    try:
        with listing.open("rb") as handle:
            count = sum(1 for _ in handle)
    except FileNotFoundError:
        return
    print(f"cxrvqa: note: {listing.parent}: the tables lack {count} unreadable scene graph(s) "
          f"that scene-tabular --skip-bad left out (listed in {listing.name}); those images "
          f"have no silver labels here, so a question on one of them fails", file=sys.stderr)


def _silver_boxes(rows: pd.DataFrame, path: Path) -> pd.DataFrame:
    """The box table of the scene graphs' box rows, checked as a TSV's are."""
    import pyarrow as pa

    boxes = loaders.silver_boxes_from_arrow(pa.Table.from_pandas(rows, preserve_index=False))
    if boxes is not None:
        return boxes
    # In slices, as a TSV is read: each slice's object ids become Python strings only briefly.
    step = loaders.BOX_CHUNK
    slices = (rows.iloc[start:start + step] for start in range(0, len(rows), step))
    return loaders.silver_boxes_from_frames(slices, path, lines_per_frame=step)


def first_boxes(boxes: pd.DataFrame, images: frozenset[str]) -> dict[str, Boxes]:
    """image -> its boxes {name: (x1, x2)}; the first row of a name counts, coordinates truncated."""
    boxes = boxes[boxes["image_id"].isin(list(images))].drop_duplicates(["image_id", "bbox_name"])
    boxes = boxes.dropna(subset=["x1", "x2"])
    names = boxes["bbox_name"].astype("category").cat.remove_unused_categories()
    table = BoxTable(sorted(names.cat.categories))
    image_codes, image_ids = pd.factorize(boxes["image_id"])
    slot_of_code = np.array([table.slot[name] for name in names.cat.categories], dtype=np.int64)
    slots = 2 * slot_of_code[names.cat.codes.to_numpy()]
    matrix = np.full((len(image_ids), 2 * len(table.names)), MISSING, dtype=np.int64)
    matrix[image_codes, slots] = np.trunc(boxes["x1"].to_numpy(dtype=np.float64))
    matrix[image_codes, slots + 1] = np.trunc(boxes["x2"].to_numpy(dtype=np.float64))
    return {image: table.from_values(row.tobytes())
            for image, row in zip(image_ids.tolist(), matrix)}


def _metadata_by_image(metadata: pd.DataFrame, images: frozenset[str]) -> dict[str, ImageMeta]:
    rows = metadata[metadata["dicom_id"].isin(list(images))].drop_duplicates("dicom_id")
    return {image: ImageMeta(int(subject), int(study), None if pd.isna(view) else str(view))
            for image, subject, study, view in zip(*(rows[column].tolist() for column in (
                "dicom_id", "subject_id", "study_id", "ViewPosition")))}


def _genders(patients: pd.DataFrame) -> dict[int, str]:
    rows = patients.drop_duplicates("subject_id").dropna(subset=["gender"])
    return dict(zip(rows["subject_id"].astype(int), rows["gender"].astype(str)))


def _facts(images: frozenset[str], positives: Mapping[str, frozenset[Finding]], meta: Mapping[str, ImageMeta],
           genders: Mapping[int, str], boxes: Mapping[str, Boxes]) -> dict[str, ImageFacts]:
    return {image: ImageFacts(positives.get(image, ()), meta[image].viewpos,
                              genders.get(meta[image].subject_id), boxes.get(image))
            for image in sorted(images)}


def load_index(layout: SourceLayout, *, stages: Stages | None = None,
               keep_rows_of: frozenset[str] = frozenset()) -> SceneIndex:
    """Read the sources and compute the facts of every labelled cohort image (pipeline.md §2–§4).

    ``keep_rows_of`` names images whose silver and gold label rows the index keeps (``rows``).
    """
    stages = stages or Stages()
    with stages.stage("load sources"):
        metadata = loaders.read_metadata(layout.metadata)
        silver_boxes, silver_labels, silver_source = _silver_sources(layout, stages.progress)
        gold_rows = loaders.read_gold_labels(layout.gold_labels)
        gold_boxes = loaders.read_gold_boxes(layout.gold_boxes)
        patients = loaders.read_patients(layout.patients)
        ontology = load_ontology(layout.objects_file, layout.attributes_file, layout.ontology_file)
    with stages.stage("select cohorts"):
        cohorts = select_cohorts(metadata, silver_boxes, gold_rows,
                                 gold_path=str(layout.gold_labels), boxes_path=silver_source)
        # Only the cohort's first boxes are read on: the ~9 M box rows go before the ~10^7
        # label rows come.
        silver_first = first_boxes(silver_boxes, cohorts.silver)
        del silver_boxes
    with stages.stage("compute labels"):
        silver_rows = silver_labels()
        silver = image_labels(silver_rows, cohorts.silver, ontology, silver_source,
                              progress=stages.progress)
        gold = image_labels(gold_rows, cohorts.gold, ontology, str(layout.gold_labels))
        rows = {(labels, image): frame[frame["image_id"] == image].reset_index(drop=True)
                for labels, frame in (("silver", silver_rows), ("gold", gold_rows))
                for image in sorted(keep_rows_of)}
        del silver_rows, gold_rows  # the largest tables; only metadata is read on
    # Only acyclic objects from here on (~240 K facts, metadata and box rows): without the
    # cycle collector's rescans of them all, this stage takes about half the time.
    with stages.stage("index facts"), paused_gc():
        meta = _metadata_by_image(metadata, silver.labelled | gold.labelled)
        genders = _genders(patients)
        silver_facts = _facts(silver.labelled, silver.positives, meta, genders, silver_first)
        gold_facts = _facts(gold.labelled, gold.positives, meta, genders,
                            first_boxes(gold_boxes, gold.labelled))
    return SceneIndex(silver=silver_facts, gold=gold_facts, meta=meta, ontology=ontology,
                      rows=rows)
