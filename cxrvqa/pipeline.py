"""Run a build: sources -> cohorts -> labels -> per-image facts -> answers -> files.

``load_index`` does everything up to the facts (it is also what question
generation and the SQL bridge use); ``build`` answers the question files and
writes the dataset. Each stage's wall time, CPU time and peak memory are kept
for the summary and the benchmarks.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from . import loaders
from .cohorts import select_cohorts
from .errors import CxrvqaError, DataError
from .facts import MISSING, Boxes, BoxTable, ImageFacts
from .labels import image_labels
from .ontology import Ontology, load_ontology
from .output import ans2idx_bytes, dataset_bytes, write_files_atomically
from .questions import read_split
from .sources import SourceLayout
from .vocab import SPLITS

__all__ = ["BuildReport", "ImageMeta", "SceneIndex", "Stages", "build", "first_boxes", "load_index",
           "load_silver_rows", "peak_rss_mb"]


@dataclass(frozen=True)
class ImageMeta:
    """Identifiers and view of one image, from the metadata."""

    subject_id: int
    study_id: int
    viewpos: str | None


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB.

    Linux's VmHWM restarts at exec; ru_maxrss would also count the pages a child
    shared with its parent before exec, inflating a benchmark child's figure.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass(frozen=True)
class StageTime:
    name: str
    wall: float
    cpu: float
    peak_rss_mb: float


@dataclass
class Stages:
    """Times each stage and drives the progress bar."""

    progress: bool = False
    times: list[StageTime] = field(default_factory=list)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.progress:
            tqdm.write(f"cxrvqa: {name}…")
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self.times.append(StageTime(name, time.perf_counter() - wall,
                                    time.process_time() - cpu, peak_rss_mb()))


@dataclass(frozen=True)
class SceneIndex:
    """Everything answers need: facts of the labelled silver and gold images, and their metadata."""

    silver: Mapping[str, ImageFacts]
    gold: Mapping[str, ImageFacts]
    meta: Mapping[str, ImageMeta]
    ontology: Ontology


def load_silver_rows(layout: SourceLayout, *, progress: bool = False
                     ) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Silver label rows, box rows and their source, from the tabular files or else the scene graphs."""
    if layout.has_scene_tabular():
        return (loaders.read_silver_labels(layout.silver_labels),
                loaders.read_silver_boxes(layout.silver_boxes), str(layout.silver_labels))
    from .scenegraph import find_scene_graphs, read_scene_graphs

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
    # In slices, as a TSV is read: each slice's object ids become Python strings only briefly.
    step = loaders.BOX_CHUNK
    slices = (scan.boxes.iloc[start:start + step] for start in range(0, len(scan.boxes), step))
    boxes = loaders.silver_boxes_from_frames(slices, source.path, lines_per_frame=step)
    return labels, boxes, str(source.path)


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
    return {image: table.from_values(row) for image, row in zip(image_ids.tolist(), matrix)}


def _metadata_by_image(metadata: pd.DataFrame, images: frozenset[str]) -> dict[str, ImageMeta]:
    rows = metadata[metadata["dicom_id"].isin(list(images))].drop_duplicates("dicom_id")
    return {image: ImageMeta(int(subject), int(study), None if pd.isna(view) else str(view))
            for image, subject, study, view in zip(*(rows[column].tolist() for column in (
                "dicom_id", "subject_id", "study_id", "ViewPosition")))}


def _genders(patients: pd.DataFrame) -> dict[int, str]:
    rows = patients.drop_duplicates("subject_id").dropna(subset=["gender"])
    return dict(zip(rows["subject_id"].astype(int), rows["gender"].astype(str)))


def _facts(images: frozenset[str], positives: Mapping[str, frozenset], meta: Mapping[str, ImageMeta],
           genders: Mapping[int, str], boxes: Mapping[str, Boxes]) -> dict[str, ImageFacts]:
    return {image: ImageFacts(positives.get(image, ()), meta[image].viewpos,
                              genders.get(meta[image].subject_id), boxes.get(image))
            for image in sorted(images)}


def load_index(layout: SourceLayout, *, stages: Stages | None = None) -> SceneIndex:
    """Read the sources and compute the facts of every labelled cohort image (pipeline.md §2–§4)."""
    stages = stages or Stages()
    with stages.stage("load sources"):
        metadata = loaders.read_metadata(layout.metadata)
        silver_rows, silver_boxes, silver_source = load_silver_rows(layout, progress=stages.progress)
        gold_rows = loaders.read_gold_labels(layout.gold_labels)
        gold_boxes = loaders.read_gold_boxes(layout.gold_boxes)
        patients = loaders.read_patients(layout.patients)
        ontology = load_ontology(layout.objects_file, layout.attributes_file, layout.ontology_file)
    with stages.stage("select cohorts"):
        cohorts = select_cohorts(metadata, silver_boxes, gold_rows,
                                 gold_path=str(layout.gold_labels), boxes_path=silver_source)
    with stages.stage("compute labels"):
        silver = image_labels(silver_rows, cohorts.silver, ontology, silver_source)
        gold = image_labels(gold_rows, cohorts.gold, ontology, str(layout.gold_labels))
        del silver_rows, gold_rows  # the largest tables; only boxes and metadata are read on
    # Only acyclic objects from here on (~240 K facts, metadata and box rows): without the
    # cycle collector's rescans of them all, this stage takes about half the time.
    with stages.stage("index facts"), loaders.paused_gc():
        meta = _metadata_by_image(metadata, silver.labelled | gold.labelled)
        genders = _genders(patients)
        silver_facts = _facts(silver.labelled, silver.positives, meta, genders,
                              first_boxes(silver_boxes, silver.labelled))
        gold_facts = _facts(gold.labelled, gold.positives, meta, genders,
                            first_boxes(gold_boxes, gold.labelled))
    return SceneIndex(silver=silver_facts, gold=gold_facts, meta=meta, ontology=ontology)


@dataclass
class BuildReport:
    """What a build did: records per split, answers by template, stage times."""

    records: dict[str, list[dict[str, Any]]]
    stages: Stages
    output_dir: Path

    def counts(self) -> dict[str, int]:
        return {split: len(records) for split, records in self.records.items()}


def _image_path(meta: ImageMeta, image_id: str) -> str:
    subject = str(meta.subject_id)
    return f"p{subject[:2]}/p{subject}/s{meta.study_id}/{image_id}.jpg"


def _where(path: Path, number: int, question: dict[str, Any]) -> str:
    return f"{path}: record {number} (idx {question['idx']!r})"


def answer_split(questions: Sequence[tuple[Path, int, dict[str, Any]]], facts: Mapping[str, ImageFacts],
                 meta: Mapping[str, ImageMeta], answer: Callable[[dict[str, Any], ImageFacts], list[str]],
                 cohort: str, progress: bool = False) -> list[dict[str, Any]]:
    """Output records for one split's questions, in input order."""
    identity: dict[str, tuple[str, str, str]] = {}  # image -> subject_id, study_id, image_path
    records = []
    for path, number, question in tqdm(questions, disable=not progress, unit="q", leave=False):
        image = question["image_id"]
        image_facts = facts.get(image)
        if image_facts is None:
            raise DataError(f"{_where(path, number, question)}: image {image!r} has no labels "
                            f"in the {cohort} cohort")
        try:
            result = answer(question, image_facts)
        except CxrvqaError as exc:
            raise DataError(f"{_where(path, number, question)}: {exc}") from None
        if image not in identity:
            identity[image] = (str(meta[image].subject_id), str(meta[image].study_id),
                               _image_path(meta[image], image))
        subject_id, study_id, image_path = identity[image]
        records.append({
            "split": question["split"], "idx": question["idx"], "subject_id": subject_id,
            "study_id": study_id, "image_id": image, "image_path": image_path,
            "question": question["question"], "semantic_type": question["semantic_type"],
            "content_type": question["content_type"], "template": question["template"],
            "template_program": question["template_program"],
            "template_arguments": question["template_arguments"], "answer": result})
    return records


def build(layout: SourceLayout, dataset_dir: Path, output_dir: Path | None = None,
          splits: Sequence[str] = SPLITS, *, progress: bool = False,
          index: SceneIndex | None = None) -> BuildReport:
    """Build the requested splits and write them with ans2idx.json, all or nothing.

    ``index`` is the result of ``load_index(layout)`` when the caller already has it.
    """
    from .programs import answer, load_programs

    output_dir = output_dir or dataset_dir
    stages = Stages(progress=progress)
    with stages.stage("read questions"):
        questions = {split: read_split(dataset_dir, split) for split in splits}
        programs = load_programs()
    if index is None:
        index = load_index(layout, stages=stages)
    records = {}
    # Answering and writing only build acyclic containers; the cycle collector would rescan
    # the whole index and every record built so far, again and again.
    with stages.stage("answer questions"), loaders.paused_gc():
        for split in splits:
            facts, cohort = (index.gold, "gold") if split == "test" else (index.silver, "silver")
            records[split] = answer_split(
                questions[split], facts, index.meta,
                partial(answer, programs),
                cohort, progress)
    with stages.stage("write files"), loaders.paused_gc():
        files = {f"{split}.json": dataset_bytes(records[split]) for split in splits}
        files["ans2idx.json"] = ans2idx_bytes(index.ontology.answer_vocabulary())
        write_files_atomically(output_dir, files)
    return BuildReport(records=records, stages=stages, output_dir=output_dir)
