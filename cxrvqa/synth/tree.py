"""Write a seeded synthetic PhysioNet source tree that a ``cxrvqa build`` can read.

The tree has every source file of ``source-formats.md`` under its real name, with
the real columns, delimiters and quirks, and content that exercises every rule of
``pipeline.md``. The same seed gives the same bytes. Rows are streamed to the files
so that full-size trees (~65 K patients) fit in memory and take minutes.

Example:
    >>> from pathlib import Path; import tempfile
    >>> manifest = write_sources(Path(tempfile.mkdtemp()), SynthConfig(patients=501))
    >>> len(manifest.gold_images)
    500
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from tqdm import tqdm

from cxrvqa.build.layout import CHEST_IMAGENOME, MIMIC_CXR_JPG, MIMIC_IV
from cxrvqa.errors import DataError
from cxrvqa.synth.cohort import Cohort, Image, Patient, Study, build_cohort
from cxrvqa.synth.ontology import attribute_lines, ontology_json, semantics_text
from cxrvqa.synth.report import study_report
from cxrvqa.synth.scene import (
    BOX_COLUMNS,
    GOLD_BOX_COLUMNS,
    GOLD_LABEL_COLUMNS,
    LABEL_COLUMNS,
    box_rows,
    gold_box_rows,
    gold_label_rows,
    label_lines,
    off_grid_shift,
    scene_graph,
)
from cxrvqa.vocab import REPORT_OBJECTS

__all__ = ["DEMO_MARKER", "SynthConfig", "SynthManifest", "claim_demo_folder", "write_sources"]

CXR, CIG, MIV = MIMIC_CXR_JPG.folder, CHEST_IMAGENOME.folder, MIMIC_IV.folder
METADATA_COLUMNS = ("dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription",
                    "ViewPosition", "Rows", "Columns", "StudyDate", "StudyTime",
                    "ProcedureCodeSequence_CodeMeaning", "ViewCodeSequence_CodeMeaning",
                    "PatientOrientationCodeSequence_CodeMeaning")
PATIENT_COLUMNS = ("subject_id", "gender", "anchor_age", "anchor_year", "anchor_year_group", "dod")
_VIEW_MEANINGS = {"PA": "postero-anterior", "AP": "antero-posterior", "LATERAL": "lateral",
                  "LL": "left lateral", "LAO": "left anterior oblique",
                  "AP AXIAL": "antero-posterior", "XTABLE LATERAL": "lateral",
                  "AP LLD": "antero-posterior", "SWIMMERS": "lateral"}
_YEAR_GROUPS = ("2008 - 2010", "2011 - 2013", "2014 - 2016", "2017 - 2019")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
# Scene graphs as compact UTF-8 JSON; pydantic's serializer is ~3x faster than json.dumps.
_GRAPH_JSON = TypeAdapter(dict[str, Any])


class SynthConfig(BaseModel):
    """What to generate: size, seed, questions per template and split, and file variants."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # At most 1,000,000 (15 times MIMIC-CXR's 65 K patients): subject and study ids are drawn
    # from ranges of 10 million, which a larger cohort would exhaust.
    patients: int = Field(1000, ge=501, le=1_000_000,
                          description="patients in total, 500 of them gold")
    seed: int = 0
    questions_per_template: int = Field(10, ge=0, description="questions per template and split")
    scene_graphs: Literal["none", "dir", "zip"] = "none"
    gzip: bool = Field(False, description="write the metadata and patients CSVs as .csv.gz")
    rare_quirks: bool = Field(False, description=(
        "also plant real-file quirks the pinned demo tree predates: silver image ids with .dcm, "
        "silver boxes off the integer grid and past the canvas, quoted gold sentences with "
        "stray spaces, whole StudyTimes without '.0'"))
    progress: bool = Field(False, description="show tqdm progress bars")


@dataclass(frozen=True)
class SynthManifest:
    """What ``write_sources`` wrote, with the ids of the special cases it planted.

    ``quirks`` maps a box quirk name (see ``synth_cohort.BOX_QUIRKS``) to image ids, and with
    ``rare_quirks`` also ``off_grid`` to the images whose silver boxes ``off_grid_shift`` moved.
    """

    root: Path
    files: tuple[Path, ...]
    patients: int
    studies: int
    images: int
    scene_graphs: int
    silver_label_rows: int
    silver_box_rows: int
    gold_label_rows: int
    gold_box_rows: int
    gold_images: tuple[str, ...]
    subjects_without_gender: tuple[int, ...]
    quirks: Mapping[str, tuple[str, ...]]


DEMO_MARKER = ".cxrvqa-demo"
"""The file that marks a folder as written by ``cxrvqa demo`` (so that it may write there again)."""


def claim_demo_folder(root: Path) -> None:
    """Make ``root`` the demo's folder: new, empty, or an earlier demo's; then mark it.

    A demo overwrites the PhysioNet source and question files under its folder, so a folder
    holding anything else (a real download: hours of credentialed transfers) is refused.

    Raises:
        DataError: ``root`` is a file, or holds files and is not an earlier demo.
    """
    if root.exists() and not root.is_dir():
        raise DataError(f"{root}: is a file; expected a new folder for the demo")
    if root.is_dir() and any(root.iterdir()) and not (root / DEMO_MARKER).is_file():
        raise DataError(f"{root}: holds files and is not an earlier cxrvqa demo; the demo would "
                        f"overwrite PhysioNet and question files there: choose a new folder (a "
                        f"demo from a cxrvqa without {DEMO_MARKER} markers: delete it first)")
    root.mkdir(parents=True, exist_ok=True)
    (root / DEMO_MARKER).write_text("written by cxrvqa demo, which may overwrite this tree\n",
                                    encoding="utf-8")


def write_sources(root: Path, config: SynthConfig) -> SynthManifest:
    """Write every PhysioNet source file of a synthetic tree under ``root``."""
    root = Path(root)
    cohort = build_cohort(config.patients, config.seed)
    suffix = ".csv.gz" if config.gzip else ".csv"
    files = [
        _write_rows(root / CXR / f"mimic-cxr-2.0.0-metadata{suffix}", METADATA_COLUMNS,
                    _metadata_rows(cohort, config.rare_quirks)).path,
        _write_rows(root / MIV / "hosp" / f"patients{suffix}", PATIENT_COLUMNS,
                    _patient_rows(cohort)).path,
        *_write_semantics(root / CIG / "semantics"),
    ]
    silver = _write_silver(root / CIG / "silver_dataset", cohort, config)
    gold_labels, gold_boxes = _write_gold(root / CIG / "gold_dataset", cohort, config.seed,
                                          config.rare_quirks)
    files += [*silver.files, gold_labels.path, gold_boxes.path]
    studies = [study for patient in cohort.patients for study in patient.studies]
    return SynthManifest(
        root=root, files=tuple(path.relative_to(root) for path in files),
        patients=len(cohort.patients), studies=len(studies),
        images=sum(len(study.images) for study in studies), scene_graphs=silver.graphs,
        silver_label_rows=silver.label_rows, silver_box_rows=silver.box_rows,
        gold_label_rows=gold_labels.rows, gold_box_rows=gold_boxes.rows,
        gold_images=tuple(sorted(p.gold_image for p in cohort.patients if p.gold)),
        subjects_without_gender=tuple(p.subject_id for p in cohort.patients if not p.listed),
        quirks={**cohort.quirks(), **({"off_grid": _off_grid_images(cohort, config.seed)}
                                      if config.rare_quirks else {})},
    )


def _off_grid_images(cohort: Cohort, seed: int) -> tuple[str, ...]:
    return tuple(sorted(image.dicom_id for _, _, image in cohort.images()
                        if image.has_graph and off_grid_shift(image, seed) is not None))


@contextlib.contextmanager
def _text_file(path: Path) -> Iterator[IO[str]]:
    """A text file with ``\\n`` line ends; ``.gz`` paths get a reproducible gzip stream."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as raw:
        if path.suffix == ".gz":
            # No name and a zero mtime in the gzip header: same input, same bytes.
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as packed, \
                    io.TextIOWrapper(packed, encoding="utf-8", newline="") as text:
                yield text
        else:
            with io.TextIOWrapper(raw, encoding="utf-8", newline="") as text:
                yield text


@dataclass(frozen=True)
class _Written:
    path: Path
    rows: int


def _write_rows(path: Path, columns: Iterable[str], rows: Iterable[Iterable[object]],
                delimiter: str = ",") -> _Written:
    """Write a header and rows; values are quoted only when they need it."""
    count = 0
    with _text_file(path) as handle:
        writer = csv.writer(handle, delimiter=delimiter, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(row)
            count += 1
    return _Written(path, count)


def _metadata_rows(cohort: Cohort, rare: bool = False) -> Iterator[tuple[object, ...]]:
    for patient, study, image in cohort.images():
        procedure = _procedure(study)
        yield (image.dicom_id, patient.subject_id, study.study_id, procedure, image.view,
               image.rows, image.columns, image.study_date, _study_time(image, rare), procedure,
               _VIEW_MEANINGS.get(image.view, ""), _orientation(study, image))


def _study_time(image: Image, rare: bool) -> str:
    """HHMMSS.fff as Python writes the float; with ``rare``, every other whole second is
    written without its '.0' (source-formats.md §2.1: some values have no fractional part)."""
    text = repr(image.study_time)
    return text[:-2] if rare and text.endswith(".0") and image.seconds % 2 else text


def _procedure(study: Study) -> str:
    views = {image.view for image in study.images}
    if study.study_id % 23 == 0:
        return ""
    if "AP" in views:
        return "CHEST (PORTABLE AP)"
    return "CHEST (PA AND LAT)" if "PA" in views else "CHEST (LAT)"


def _orientation(study: Study, image: Image) -> str:
    if image.view == "AP":
        return ("Recumbent", "Erect", "")[study.study_id % 3]
    return "Erect" if image.view else ""


def _patient_rows(cohort: Cohort) -> Iterator[tuple[object, ...]]:
    """Listed cohort patients plus MIMIC-IV patients without chest X-rays, by subject_id."""
    listed = {p.subject_id: p for p in cohort.patients if p.listed}
    for subject_id in sorted([*listed, *cohort.mimic_iv_only]):
        patient = listed.get(subject_id)
        gender = patient.gender if patient else "MF"[subject_id % 2]
        age = patient.age if patient else 18 + subject_id % 73
        anchor_year = (patient.studies[0].images[0].study_date // 10_000 if patient
                       else 2110 + subject_id % 80)
        dod = f"{anchor_year + 3}-0{1 + subject_id % 9}-1{subject_id % 10}" \
            if subject_id % 7 == 0 else ""
        yield (subject_id, gender, age, anchor_year, _YEAR_GROUPS[subject_id % 4], dod)


def _write_semantics(folder: Path) -> list[Path]:
    texts = {
        "objects_extracted_from_reports_v1.txt": semantics_text(REPORT_OBJECTS),
        "attribute_relations_v1.txt": semantics_text(attribute_lines()),
        "label_to_UMLS_mapping.json": ontology_json(),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        (folder / name).write_bytes(text.encode("utf-8"))
    return [folder / name for name in texts]


@dataclass(frozen=True)
class _Silver:
    files: list[Path]
    graphs: int
    label_rows: int
    box_rows: int


def _write_silver(folder: Path, cohort: Cohort, config: SynthConfig) -> _Silver:
    """Scene graphs (optional) and their flattening, images in dicom_id order."""
    images = sorted(((image.dicom_id, patient, study, image)
                     for patient, study, image in cohort.images() if image.has_graph),
                    key=lambda item: item[0])
    labels_path = folder / "scene_tabular" / "attribute_relations_tabular.txt"
    boxes_path = folder / "scene_tabular" / "bbox_objects_tabular.txt"
    label_count = box_count = 0
    with _text_file(labels_path) as labels, _text_file(boxes_path) as boxes, \
            _graph_sink(folder, config.scene_graphs) as sink:
        labels.write("\t".join(LABEL_COLUMNS) + "\n")
        boxes.write("\t".join(BOX_COLUMNS) + "\n")
        for _, patient, study, image in tqdm(images, desc="scene graphs", unit="image",
                                             disable=not config.progress):
            report = study_report(study.study_id, study.kind, config.seed, study.order > 1)
            graph = scene_graph(patient, study, image, report, config.seed,
                                relationships=config.scene_graphs != "none",
                                rare=config.rare_quirks)
            sink(image.dicom_id, graph)
            # The tables may name images with ".dcm" (source-formats.md §3.3); graphs never do.
            lines = label_lines(graph, ".dcm" if config.rare_quirks else "")
            if lines:
                labels.write("\n".join(lines) + "\n")
            label_count += len(lines)
            box_count += _write_tsv_rows(boxes, box_rows(graph))
    graph_files = {"none": [], "dir": [folder / "scene_graph"],
                   "zip": [folder / "scene_graph.zip"]}[config.scene_graphs]
    return _Silver([labels_path, boxes_path, *graph_files], len(images), label_count, box_count)


def _write_tsv_rows(handle: IO[str], rows: Iterable[tuple[object, ...]]) -> int:
    lines = ["\t".join(map(str, row)) for row in rows]
    if lines:
        handle.write("\n".join(lines) + "\n")
    return len(lines)


@contextlib.contextmanager
def _graph_sink(folder: Path, mode: str) -> Iterator[Callable[[str, dict[str, Any]], object]]:
    """A callable storing one scene graph JSON per image (or dropping it for ``none``)."""
    if mode == "none":
        yield lambda dicom_id, graph: None
    elif mode == "dir":
        target = folder / "scene_graph"
        target.mkdir(parents=True, exist_ok=True)
        yield lambda dicom_id, graph: (target / f"{dicom_id}_SceneGraph.json").write_bytes(
            _GRAPH_JSON.dump_json(graph))
    else:
        folder.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(folder / "scene_graph.zip", "w") as archive:
            def store(dicom_id: str, graph: dict[str, Any]) -> None:
                info = zipfile.ZipInfo(f"scene_graph/{dicom_id}_SceneGraph.json", _ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                # A ZipInfo does not take the archive's level (zipfile would deflate at 6).
                archive.writestr(info, _GRAPH_JSON.dump_json(graph), compresslevel=1)
            yield store


def _write_gold(folder: Path, cohort: Cohort, seed: int,
                rare: bool = False) -> tuple[_Written, _Written]:
    gold = [patient for patient in cohort.patients if patient.gold]
    labels = _write_rows(folder / "gold_attributes_relations_500pts_500studies1st.txt",
                         GOLD_LABEL_COLUMNS, _gold_label_rows(gold, seed, rare), delimiter="\t")
    boxes = _write_rows(folder / "gold_bbox_coordinate_annotations_1000images.csv",
                        GOLD_BOX_COLUMNS, _gold_box_rows(gold, seed))
    return labels, boxes


def _gold_label_rows(gold: list[Patient], seed: int,
                     rare: bool = False) -> Iterator[tuple[object, ...]]:
    for patient in gold:
        first = patient.studies[0]
        report = study_report(first.study_id, first.kind, seed)
        yield from gold_label_rows(patient, first, patient.gold_image, report, seed, rare)


def _gold_box_rows(gold: list[Patient], seed: int) -> Iterator[list[object]]:
    """The gold first-study image and the second study's selected image, per gold patient."""
    for patient in gold:
        first = next(image for image in patient.studies[0].images
                     if image.dicom_id == patient.gold_image)
        second = patient.studies[1].selected
        assert second is not None  # gold patients' second studies have a frontal image
        yield from gold_box_rows(first, True, seed)
        yield from gold_box_rows(second, False, seed)
