"""Read every source file of pipeline.md §1 into plain pandas tables and Python objects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import OracleError

__all__ = [
    "cig_path",
    "read_attribute_lines",
    "read_gold_boxes",
    "read_label_table",
    "read_metadata",
    "read_object_lines",
    "read_ontology_json",
    "read_patients",
    "read_questions",
    "read_silver_boxes",
]

CXR = Path("physionet.org/files/mimic-cxr-jpg/2.0.0")
CIG = Path("physionet.org/files/chest-imagenome/1.0.0")
MIV = Path("physionet.org/files/mimiciv/2.2")

QUESTION_FILES: dict[str, tuple[str, ...]] = {
    "train": ("_train_part1.json", "_train_part2.json"),
    "valid": ("_valid.json",),
    "test": ("_test.json",),
}


def cig_path(root: Path, relative: str) -> Path:
    """A Chest ImaGenome file under a PhysioNet root."""
    return root / CIG / relative


def _plain_or_gz(path: Path) -> Path:
    if path.exists():
        return path
    gz = path.with_name(path.name + ".gz")
    if gz.exists():
        return gz
    raise OracleError(f"{path}: missing")


def _read(path: Path, columns: list[str], **kwargs: Any) -> pd.DataFrame:
    if not path.exists():
        raise OracleError(f"{path}: missing")
    table = pd.read_csv(path, **kwargs)
    absent = [column for column in columns if column not in table.columns]
    if absent:
        raise OracleError(f"{path}: missing columns {absent}")
    return table[columns].copy()


def read_metadata(root: Path) -> pd.DataFrame:
    """The MIMIC-CXR-JPG metadata: one row per image, ``image_id`` without ``.dcm``."""
    path = _plain_or_gz(root / CXR / "mimic-cxr-2.0.0-metadata.csv")
    columns = ["dicom_id", "subject_id", "study_id", "ViewPosition", "StudyDate", "StudyTime"]
    table = _read(path, columns, dtype={"dicom_id": str, "ViewPosition": str})
    return table.rename(columns={"dicom_id": "image_id"})


def read_label_table(path: Path, gold: bool) -> pd.DataFrame:
    """A silver or gold label TSV, ``image_id`` stripped of ``.dcm``, ``sent_loc`` derived."""
    columns = ["study_id", "image_id", "row_id", "bbox", "relation", "label_name", "categoryID"]
    if gold:
        columns = ["patient_id", *columns]
    table = _read(path, columns, sep="\t", dtype={"image_id": str, "row_id": str, "bbox": str,
                                                  "label_name": str, "categoryID": str})
    table["image_id"] = table["image_id"].map(_strip_dcm)
    # The published builder ignores any sent_loc column and reparses the row id.
    table["sent_loc"] = table["row_id"].map(lambda row_id: float(row_id.split("|")[-1]))
    return table


def _strip_dcm(image_id: str) -> str:
    return image_id[: -len(".dcm")] if image_id.endswith(".dcm") else image_id


def read_silver_boxes(root: Path) -> pd.DataFrame:
    """Silver boxes in file order: image_id, bbox_name, width and the truncated x1/x2."""
    path = cig_path(root, "silver_dataset/scene_tabular/bbox_objects_tabular.txt")
    columns = ["object_id", "bbox_name", "x1", "y1", "x2", "y2", "width"]
    table = _read(path, columns, sep="\t", dtype={"object_id": str, "bbox_name": str})
    table["image_id"] = table["object_id"].map(lambda object_id: object_id.split("_")[0])
    # int() truncates toward zero, as the published builder's int(x1) does; it converts all four
    # coordinates, so a missing y fails there too.
    for column in ("x1", "y1", "x2", "y2"):
        table[column] = [int(value) for value in table[column]]
    return table[["image_id", "bbox_name", "width", "x1", "x2"]]


def read_gold_boxes(root: Path) -> pd.DataFrame:
    """Gold boxes in file order: image_id, bbox_name and x1/x2 parsed from ``coord224``."""
    path = cig_path(root, "gold_dataset/gold_bbox_coordinate_annotations_1000images.csv")
    table = _read(path, ["image_id", "bbox_name", "coord224"], dtype=str)
    table["image_id"] = table["image_id"].map(_strip_dcm)
    table["x1"] = table["coord224"].map(lambda text: int(text.strip()[1:-1].split(",")[0]))
    table["x2"] = table["coord224"].map(lambda text: int(text.strip()[1:-1].split(",")[2]))
    return table[["image_id", "bbox_name", "x1", "x2"]]


def _comma_lines(path: Path) -> list[str]:
    if not path.exists():
        raise OracleError(f"{path}: missing")
    lines = [line.strip().replace(",", "") for line in path.read_text().splitlines()]
    return [line for line in lines if line]


def read_object_lines(root: Path) -> list[str]:
    """The objects file, one object a line, commas stripped."""
    return _comma_lines(cig_path(root, "semantics/objects_extracted_from_reports_v1.txt"))


def read_attribute_lines(root: Path) -> list[tuple[str, str]]:
    """The attributes file as (category, label) pairs in file order."""
    pairs = []
    for line in _comma_lines(cig_path(root, "semantics/attribute_relations_v1.txt")):
        category, _relation, label = line.split("|")
        pairs.append((category, label))
    return pairs


def read_ontology_json(root: Path) -> dict[str, Any]:
    """The ontology JSON as loaded (the caller edits a copy)."""
    path = cig_path(root, "semantics/label_to_UMLS_mapping.json")
    if not path.exists():
        raise OracleError(f"{path}: missing")
    return json.loads(path.read_text())


def read_patients(root: Path) -> pd.DataFrame:
    """MIMIC-IV patients: subject_id and gender."""
    path = _plain_or_gz(root / MIV / "hosp" / "patients.csv")
    return _read(path, ["subject_id", "gender"], dtype={"gender": str})


def read_questions(dataset_dir: Path, splits: tuple[str, ...]) -> dict[str, list[dict[str, Any]]]:
    """The released question records per split; train is part 1 then part 2."""
    questions: dict[str, list[dict[str, Any]]] = {}
    for split in splits:
        records: list[dict[str, Any]] = []
        for name in QUESTION_FILES[split]:
            path = dataset_dir / name
            if not path.exists():
                raise OracleError(f"{path}: missing")
            records += json.loads(path.read_text())
        questions[split] = records
    return questions
