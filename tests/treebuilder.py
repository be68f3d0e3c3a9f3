"""Write a tiny, valid PhysioNet source tree plus question files from Python rows.

A rule test describes only the few images it is about; ``SourceTree.write`` fills in the
rest the published builder insists on: 500 gold patients (each with a frontal first-study
image named by the gold labels file), the three semantics files, a small ontology, an
image carrying all 36 box names, metadata and patients rows.

Example:
    tree = SourceTree()
    image = tree.image(subject=10000001, study=50000001, view="AP")
    tree.silver(image, "left lung", "pneumonia", relation=1, sent=2)
    tree.ask("_train_part1", image, "program_2", object=["left lung"], attribute=["pneumonia"])
    dataset_dir = tree.write(tmp_path)
"""

from __future__ import annotations

import csv
import datetime
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxrvqa.vocab import (
    ATTRIBUTES_BY_CATEGORY,
    BBOX_NAMES,
    GOLD_BBOX_NAMES,
    REPORT_OBJECTS,
)

__all__ = ["Box", "DEFAULT_BOXES", "SourceTree", "build_argv", "default_ontology", "read_built"]

CXR = Path("physionet.org/files/mimic-cxr-jpg/2.0.0")
CIG = Path("physionet.org/files/chest-imagenome/1.0.0")
MIV = Path("physionet.org/files/mimiciv/2.2")
DATASET = Path("mimiccxrvqa/dataset")
QUESTION_FILES = {"_train_part1": "train", "_train_part2": "train", "_valid": "valid",
                  "_test": "test"}
GOLD_PATIENTS = 500
FILLER_SUBJECT = 19_000_000
FILLER_STUDY = 59_000_000
FIRST_DATE = datetime.date(2180, 1, 1)

METADATA_COLUMNS = [
    "dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition",
    "Rows", "Columns", "StudyDate", "StudyTime", "ProcedureCodeSequence_CodeMeaning",
    "ViewCodeSequence_CodeMeaning", "PatientOrientationCodeSequence_CodeMeaning",
]
SILVER_LABEL_COLUMNS = ["study_id", "image_id", "row_id", "sent_loc", "bbox", "categoryID",
                        "label_name", "relation", "context"]
SILVER_BOX_COLUMNS = [
    "object_id", "x1", "y1", "x2", "y2", "width", "height", "bbox_name", "synsets", "name",
    "original_x1", "original_y1", "original_x2", "original_y2", "original_width", "original_height",
]
GOLD_LABEL_COLUMNS = ["patient_id", "study_id", "image_id", "row_id", "bbox", "categoryID",
                      "label_name", "relation", "context", "sentence"]
GOLD_BOX_COLUMNS = [
    "image_id", "x1", "y1", "x2", "y2", "width", "height", "bbox_name", "annot_id",
    "original_x1", "original_x2", "original_y1", "original_y2", "original_width",
    "original_height", "annotator", "coord224", "coord_original",
]
PATIENT_COLUMNS = ["subject_id", "gender", "anchor_age", "anchor_year", "anchor_year_group", "dod"]
CUE_LINES = ["texture|yes|opacity", "temporal|yes|acute", "severity|yes|mild"]
# Objects every default attribute may sit at; tests override single attributes as needed.
DEFAULT_POSSIBLE_OBJECTS = [
    "left lung", "right lung", "left upper lung zone", "right upper lung zone",
    "left lower lung zone", "right lower lung zone", "left hilar structures",
    "right hilar structures", "mediastinum", "upper mediastinum", "cardiac silhouette",
    "aortic arch", "svc", "trachea", "spine", "left arm",
]
CATEGORY_OF = {label: category for category, labels in ATTRIBUTES_BY_CATEGORY.items()
               for label in labels}


@dataclass(frozen=True)
class Box:
    """One box row: 224-scale x1/x2 (floats allowed) and the width column the cohort reads."""

    x1: float
    x2: float
    width: float | None = None

    @property
    def stated_width(self) -> float:
        return self.x2 - self.x1 if self.width is None else self.width


def _default_boxes() -> dict[str, Box]:
    # Integer geometry keeps width statistics exact; thorax 20..200, heart 70..150 (ratio 0.44),
    # upper mediastinum 90..130 (ratio 0.22), so both size questions default to "no".
    boxes = {name: Box(10 + index, 60 + 2 * index) for index, name in enumerate(BBOX_NAMES)}
    boxes.update({"right lung": Box(20, 110), "left lung": Box(110, 200),
                  "cardiac silhouette": Box(70, 150), "upper mediastinum": Box(90, 130)})
    return boxes


DEFAULT_BOXES = _default_boxes()


def default_ontology() -> dict[str, Any]:
    """A small ontology: the parents the edits need, a few attribute families, every label."""
    all_children = {
        "lungs": ["left lung", "right lung"],
        "left lung": ["left upper lung zone", "left lower lung zone"],
        "right lung": ["right upper lung zone", "right lower lung zone"],
        "mediastinum": ["upper mediastinum", "cardiac silhouette"],
        "hilar structures": ["trachea"],
        "lung opacity": ["consolidation", "atelectasis", "pulmonary edema/hazy opacity"],
        "atelectasis": ["linear/patchy atelectasis", "lobar/segmental collapse"],
        "lung lesion": ["mass/nodule (not otherwise specified)", "multiple masses/nodules"],
        "pneumonia": [],
    }
    possible = {label: list(DEFAULT_POSSIBLE_OBJECTS) for label in CATEGORY_OF
                if CATEGORY_OF[label] != "nlp"}
    return {"all_children": all_children, "possible_attribute_of": possible,
            "label_to_CUI": {"pneumonia": "C0000001"}}


@dataclass
class _Image:
    """One metadata row."""

    dicom_id: str
    subject_id: int
    study_id: int
    view: str | None
    date: int
    time: float


@dataclass
class SourceTree:
    """Rows of a source tree, written by :meth:`write`; every field may be edited directly."""

    images: list[_Image] = field(default_factory=list)
    silver_rows: list[dict[str, Any]] = field(default_factory=list)
    silver_box_rows: list[tuple[str, str, Box]] = field(default_factory=list)
    gold_rows: list[dict[str, Any]] = field(default_factory=list)
    gold_box_rows: list[tuple[str, str, Box]] = field(default_factory=list)
    genders: dict[int, str | None] = field(default_factory=dict)
    questions: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {name: [] for name in QUESTION_FILES})
    ontology: dict[str, Any] = field(default_factory=default_ontology)
    objects: list[str] = field(default_factory=lambda: list(REPORT_OBJECTS))

    # --- rows -------------------------------------------------------------------------------

    def image(self, subject: int, study: int, *, view: str | None = "PA",
              date: int | None = None, time: float = 120000.5, dicom: str | None = None,
              gender: str | None = "F", boxes: bool = True) -> str:
        """Add a metadata row (and by default the 36 default silver boxes); return its dicom id.

        Without ``date`` each new study of a subject falls one day after the previous one.
        A subject whose first image says ``gender=None`` gets no patients.csv row.
        """
        if date is None:
            date = self._next_date(subject, study)
        dicom = dicom or _dicom_id(len(self.images) + 1)
        self.images.append(_Image(dicom, subject, study, view, date, time))
        self.genders.setdefault(subject, gender)
        if boxes:
            self.boxes(dicom)
        return dicom

    def _next_date(self, subject: int, study: int) -> int:
        known = {image.study_id: image.date for image in self.images
                 if image.subject_id == subject}
        if study in known:
            return known[study]
        day = FIRST_DATE + datetime.timedelta(days=len(known))
        return int(day.strftime("%Y%m%d"))

    def _image(self, dicom: str) -> _Image:
        return next(image for image in self.images if image.dicom_id == dicom)

    def silver(self, dicom: str, bbox: str, label: str, relation: int = 1, sent: float = 1,
               category: str | None = None) -> None:
        """Add a silver label row (category defaults to the label's vocabulary category)."""
        image = self._image(dicom)
        self.silver_rows.append(_label_row(image, bbox, label, relation, sent, category))

    def gold(self, dicom: str, bbox: str, label: str, relation: int = 1, sent: float = 1,
             category: str | None = None) -> None:
        """Add a gold label row; its image's subject becomes a gold patient."""
        image = self._image(dicom)
        self.gold_rows.append(_label_row(image, bbox, label, relation, sent, category))

    def boxes(self, dicom: str, overrides: dict[str, Box] | None = None,
              omit: Iterable[str] = ()) -> None:
        """Add one silver box row per default box name (minus ``omit``), with ``overrides``."""
        chosen = {**DEFAULT_BOXES, **(overrides or {})}
        self.silver_box_rows += [(dicom, name, box) for name, box in chosen.items()
                                 if name not in set(omit)]

    def gold_boxes(self, dicom: str, overrides: dict[str, Box] | None = None) -> None:
        """Add the 26 gold box rows of an image, with ``overrides``."""
        chosen = {name: DEFAULT_BOXES[name] for name in GOLD_BBOX_NAMES}
        chosen.update(overrides or {})
        self.gold_box_rows += [(dicom, name, box) for name, box in chosen.items()]

    def ask(self, file: str, dicom: str, program: str, *, object: Sequence[str] = (),
            attribute: Sequence[str] = (), category: Sequence[str] = (),
            viewpos: Sequence[str] = (), gender: Sequence[str] = ()) -> dict[str, Any]:
        """Add a question record to a released question file (``_train_part1`` … ``_test``)."""
        records = self.questions[file]
        arguments = {"object": object, "attribute": attribute, "category": category,
                     "viewpos": viewpos, "gender": gender}
        # idx is unique within a split (its train parts share one numbering).
        split = QUESTION_FILES[file]
        idx = sum(len(others) for name, others in self.questions.items()
                  if QUESTION_FILES[name] == split)
        record = {
            "split": split, "idx": idx, "image_id": dicom,
            "question": f"{program} question {len(records)}?", "content_type": "presence",
            "semantic_type": "verify", "template": f"{program} template?",
            "template_program": program,
            "template_arguments": {kind: {str(i): v for i, v in enumerate(values)}
                                   for kind, values in arguments.items()},
        }
        records.append(record)
        return record

    # --- writing ----------------------------------------------------------------------------

    def write(self, root: Path, gold_patients: int = GOLD_PATIENTS) -> Path:
        """Write every source and question file under ``root``; return the dataset folder.

        Filler gold patients are added until the gold labels file names ``gold_patients``.
        """
        images, gold_rows = list(self.images), list(self.gold_rows)
        genders = dict(self.genders)
        _add_gold_fillers(images, gold_rows, genders, gold_patients)
        box_rows = self.silver_box_rows + [(_dicom_id(0), name, DEFAULT_BOXES[name])
                                           for name in BBOX_NAMES]
        _write_metadata(root / CXR / "mimic-cxr-2.0.0-metadata.csv", images)
        tabular = root / CIG / "silver_dataset" / "scene_tabular"
        _write_rows(tabular / "attribute_relations_tabular.txt", SILVER_LABEL_COLUMNS,
                    [_silver_line(row) for row in self.silver_rows], "\t")
        _write_rows(tabular / "bbox_objects_tabular.txt", SILVER_BOX_COLUMNS,
                    [_silver_box_line(*row) for row in box_rows], "\t")
        gold_dir = root / CIG / "gold_dataset"
        _write_rows(gold_dir / "gold_attributes_relations_500pts_500studies1st.txt",
                    GOLD_LABEL_COLUMNS, [_gold_line(row) for row in gold_rows], "\t")
        _write_rows(gold_dir / "gold_bbox_coordinate_annotations_1000images.csv", GOLD_BOX_COLUMNS,
                    [_gold_box_line(*row) for row in self.gold_box_rows], ",")
        self._write_semantics(root / CIG / "semantics")
        _write_rows(root / MIV / "hosp" / "patients.csv", PATIENT_COLUMNS,
                    [[subject, gender, 60, 2180, "2014 - 2016", ""]
                     for subject, gender in sorted(genders.items()) if gender is not None], ",")
        dataset = root / DATASET
        dataset.mkdir(parents=True, exist_ok=True)
        for name, records in self.questions.items():
            (dataset / f"{name}.json").write_text(json.dumps(records, indent=2))
        return dataset

    def _write_semantics(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        attribute_lines = [f"{category}|yes|{label}" for category, labels in
                           ATTRIBUTES_BY_CATEGORY.items() for label in labels] + CUE_LINES
        _write_comma_lines(folder / "objects_extracted_from_reports_v1.txt", self.objects)
        _write_comma_lines(folder / "attribute_relations_v1.txt", attribute_lines)
        (folder / "label_to_UMLS_mapping.json").write_text(json.dumps(self.ontology, indent=1))


def build_argv(root: Path) -> list[str]:
    """The ``cxrvqa`` arguments that build the tree written under ``root``."""
    return ["build", "--physionet-root", str(root), "--dataset-dir", str(root / DATASET)]


def read_built(dataset_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """The records of train/valid/test.json that a build wrote."""
    return {split: json.loads((dataset_dir / f"{split}.json").read_text())
            for split in ("train", "valid", "test")}


def build_checked(tree: SourceTree, root: Path) -> dict[str, list[dict[str, Any]]]:
    """Write ``tree`` under ``root`` and build it with cxrvqa and with the independent oracle
    (tests/oracle); they must agree record for record. The built records, per split."""
    from oracle import build_reference

    from cxrvqa.cli import main

    dataset = tree.write(root)
    expected = build_reference(root, dataset)
    assert main(build_argv(root)) == 0
    built = read_built(dataset)
    assert built == expected
    return built


def _dicom_id(number: int) -> str:
    return f"{number:08x}-{number * 7919 % 2**32:08x}-0c0ffee0-{number:08x}-d1c0d1c0"


def _label_row(image: _Image, bbox: str, label: str, relation: int, sent: float,
               category: str | None) -> dict[str, Any]:
    return {"patient_id": image.subject_id, "study_id": image.study_id, "image_id": image.dicom_id,
            "bbox": bbox, "label": label, "relation": relation, "sent": sent,
            "category": category or CATEGORY_OF[label]}


def _add_gold_fillers(images: list[_Image], gold_rows: list[dict[str, Any]],
                      genders: dict[int, str | None], wanted: int) -> None:
    patients = {row["patient_id"] for row in gold_rows}
    number = 0
    while len(patients) < wanted:
        number += 1
        subject, study = FILLER_SUBJECT + number, FILLER_STUDY + number
        image = _Image(_dicom_id(10**6 + number), subject, study, "AP", 21800101, 80000.25)
        images.append(image)
        genders[subject] = "M"
        gold_rows.append(_label_row(image, "left lung", "pneumonia", 0, 1, None))
        patients.add(subject)


def _write_rows(path: Path, header: list[str], rows: list[list[Any]], delimiter: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _write_comma_lines(path: Path, lines: list[str]) -> None:
    # The real semantics files end every line but the last with a comma, and have no final newline.
    path.write_text(",\n".join(lines))


def _write_metadata(path: Path, images: list[_Image]) -> None:
    rows = [[image.dicom_id, image.subject_id, image.study_id, "CHEST (PA AND LAT)",
             image.view or "", 3056, 2544, image.date, repr(float(image.time)),
             "CHEST (PA AND LAT)", "postero-anterior", "Erect"] for image in images]
    _write_rows(path, METADATA_COLUMNS, rows, ",")


def _sentence(row: dict[str, Any]) -> tuple[str, str]:
    return f"{row['study_id']}|{row['sent']}", str(row["sent"])


def _silver_line(row: dict[str, Any]) -> list[Any]:
    row_id, sent = _sentence(row)
    return [row["study_id"], row["image_id"], row_id, sent, row["bbox"], row["category"],
            row["label"], row["relation"], "yes" if row["relation"] == 1 else "no"]


def _gold_line(row: dict[str, Any]) -> list[Any]:
    row_id, _ = _sentence(row)
    return [row["patient_id"], row["study_id"], f"{row['image_id']}.dcm", row_id, row["bbox"],
            row["category"], row["label"], row["relation"],
            "yes" if row["relation"] == 1 else "no", f"Sentence about the {row['bbox']}."]


def _silver_box_line(dicom: str, name: str, box: Box) -> list[Any]:
    return [f"{dicom}_{name}", box.x1, 30, box.x2, 190, box.stated_width,
            160, name, "['C0000000']", name.capitalize(), 100.0, 400.0, 1500.0, 2600.0, 1400.0,
            2200.0]


def _gold_box_line(dicom: str, name: str, box: Box) -> list[Any]:
    # The x1/x2 columns deliberately differ from coord224: answers must read coord224.
    coord = f"[{int(box.x1)}, 30, {int(box.x2)}, 190]"
    return [f"{dicom}.dcm", float(box.x1) + 0.5, 30.0, float(box.x2) - 0.5, 190.0,
            float(box.stated_width), 160.0, name, f"{dicom}.dcm|{name}", 100.0, 1500.0, 400.0,
            2600.0, 1400.0, 2200.0, "J", coord, "[100, 400, 1500, 2600]"]
