"""Assemble the reference output of pipeline.md §6 from sources, cohorts, labels and programs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .cohorts import GOLD_PATIENTS, gold_cohort, silver_cohort, with_study_order
from .errors import OracleError
from .labels import dense_labels, kept_rows
from .ontology import REMOVED_ATTRIBUTES, REMOVED_OBJECTS, Ontology, load_ontology
from .programs import run_program
from .readers import (
    cig_path,
    read_gold_boxes,
    read_label_table,
    read_metadata,
    read_patients,
    read_questions,
    read_silver_boxes,
)

__all__ = ["Reference", "answer_questions", "build_reference", "load_reference",
           "reference_ans2idx"]

SPLITS = ("train", "valid", "test")
SILVER_LABELS = "silver_dataset/scene_tabular/attribute_relations_tabular.txt"
GOLD_LABELS = "gold_dataset/gold_attributes_relations_500pts_500studies1st.txt"
Facts = tuple[frozenset[tuple[str, str, str]], str | None, str | None, dict[str, tuple[int, int]]]
"""(positive findings, view position, gender, first box per name), as cxrvqa's ImageFacts holds."""
FEATURE_NAMES = {"bbox": "object", "label_name": "attribute", "categoryID": "category"}
STRING_FEATURES = ("image_id", "object", "attribute", "category", "ViewPosition", "gender")


@dataclass
class Side:
    """One label source: silver (train/valid) or gold (test), with its cohort and boxes."""

    cohort: pd.DataFrame
    kept: pd.DataFrame
    boxes: pd.DataFrame


@dataclass
class Reference:
    """Every intermediate table of the reference build, kept for inspection by tests."""

    metadata: pd.DataFrame
    patients: pd.DataFrame
    ontology: Ontology
    gold_pids: set[int]
    silver: Side
    gold: Side

    def side(self, split: str) -> Side:
        """Gold labels and boxes answer the test split; silver ones answer train and valid."""
        return self.gold if split == "test" else self.silver

    def features(self, split: str, image_ids: set[str]) -> dict[str, pd.DataFrame]:
        """Per image: its dense label rows joined to view, gender and first box x (as
        generate_answer joins them). Images without labels are absent."""
        side = self.side(split)
        dense = dense_labels(side.kept[side.kept["image_id"].isin(image_ids)], self.ontology)
        dense = dense[~dense["bbox"].isin(REMOVED_OBJECTS)
                      & ~dense["label_name"].isin(REMOVED_ATTRIBUTES)]
        features = dense.rename(columns=FEATURE_NAMES)[["image_id", *FEATURE_NAMES.values(),
                                                        "relation"]]
        metadata = self.metadata[self.metadata["image_id"].isin(image_ids)]
        features = features.merge(metadata[["image_id", "subject_id", "study_id", "ViewPosition"]],
                                  on="image_id", how="left")
        features = features.merge(self.patients, on="subject_id", how="left")
        # Sizes read the first box row per name, in file order.
        boxes = side.boxes[side.boxes["image_id"].isin(image_ids)]
        boxes = boxes.drop_duplicates(["image_id", "bbox_name"], keep="first")
        boxes = boxes.rename(columns={"bbox_name": "object"})[["image_id", "object", "x1", "x2"]]
        features = features.merge(boxes, on=["image_id", "object"], how="left")
        # Plain object columns: per-question masks on small frames are far faster than on
        # pandas' arrow-backed strings, and the values are the same.
        features = features.astype({column: object for column in STRING_FEATURES})
        return {str(image): table for image, table in features.groupby("image_id", sort=False)}

    def facts(self, side: Side) -> dict[str, Facts]:
        """Every labelled image: positive (object, attribute, category) triples, view, gender
        and the first box row per name as (x1, x2)."""
        labelled = list(dict.fromkeys(side.kept["image_id"]))
        findings = _positive_findings(side.kept)
        boxes = _first_boxes(side.boxes, labelled)
        people = self.metadata.merge(self.patients, on="subject_id", how="left")
        people = people[people["image_id"].isin(labelled)].set_index("image_id")
        return {image: (findings.get(image, frozenset()), _text(people.at[image, "ViewPosition"]),
                        _text(people.at[image, "gender"]), boxes.get(image, {}))
                for image in labelled}

    def answer(self, record: dict[str, Any], features: dict[str, pd.DataFrame]) -> dict[str, Any]:
        """The built record of one question, keys in the §6 order."""
        image_id = record["image_id"]
        if image_id not in features:
            raise OracleError(f"image {image_id} has no labels")
        table = features[image_id]
        if pd.isna(table["study_id"].iloc[0]):
            raise OracleError(f"image {image_id} is not in the metadata")
        subject, study = (str(int(table[column].iloc[0])) for column in ("subject_id", "study_id"))
        answer = run_program(record["template_program"], table, record["template_arguments"])
        return {
            "split": record["split"], "idx": record["idx"], "subject_id": subject,
            "study_id": study, "image_id": image_id,
            "image_path": f"p{subject[:2]}/p{subject}/s{study}/{image_id}.jpg",
            "question": record["question"], "semantic_type": record["semantic_type"],
            "content_type": record["content_type"], "template": record["template"],
            "template_program": record["template_program"],
            "template_arguments": record["template_arguments"], "answer": answer,
        }


def _positive_findings(kept: pd.DataFrame) -> dict[str, frozenset[tuple[str, str, str]]]:
    positive = kept[kept["relation"] == 1]
    findings: dict[str, set[tuple[str, str, str]]] = {}
    for image, bbox, label, category in positive[["image_id", "bbox", "label_name",
                                                  "categoryID"]].itertuples(index=False):
        findings.setdefault(image, set()).add((bbox, label, category))
    return {image: frozenset(triples) for image, triples in findings.items()}


def _first_boxes(boxes: pd.DataFrame, images: list[str]) -> dict[str, dict[str, tuple[int, int]]]:
    first = boxes[boxes["image_id"].isin(images)].drop_duplicates(["image_id", "bbox_name"])
    boxes_of: dict[str, dict[str, tuple[int, int]]] = {}
    for image, name, x1, x2 in first[["image_id", "bbox_name", "x1", "x2"]].itertuples(
            index=False):
        boxes_of.setdefault(image, {})[name] = (int(x1), int(x2))
    return boxes_of


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def load_reference(root: Path) -> Reference:
    """Read a PhysioNet tree and run §2–§4 on all of it."""
    ontology = load_ontology(root)
    metadata = with_study_order(read_metadata(root))
    silver_rows = read_label_table(cig_path(root, SILVER_LABELS), gold=False)
    gold_rows = read_label_table(cig_path(root, GOLD_LABELS), gold=True)
    gold_pids = set(gold_rows["patient_id"])
    if len(gold_pids) != GOLD_PATIENTS:
        raise OracleError(f"{GOLD_LABELS}: {len(gold_pids)} patients, expected {GOLD_PATIENTS}")
    silver_boxes = read_silver_boxes(root)
    silver = silver_cohort(metadata, silver_boxes, gold_pids)
    gold = gold_cohort(metadata, gold_pids, set(gold_rows["image_id"]))
    return Reference(
        metadata=metadata, patients=read_patients(root), ontology=ontology, gold_pids=gold_pids,
        silver=Side(silver, kept_rows(silver_rows, set(silver["image_id"]), ontology),
                    silver_boxes),
        gold=Side(gold, kept_rows(gold_rows, set(gold["image_id"]), ontology),
                  read_gold_boxes(root)),
    )


def build_reference(root: Path, dataset_dir: Path,
                    splits: tuple[str, ...] = SPLITS) -> dict[str, list[dict[str, Any]]]:
    """The records ``cxrvqa build`` must write for each split."""
    return answer_questions(load_reference(root), dataset_dir, splits)


def answer_questions(reference: Reference, dataset_dir: Path,
                     splits: tuple[str, ...] = SPLITS) -> dict[str, list[dict[str, Any]]]:
    """Answer the released question files of ``dataset_dir`` from a loaded reference."""
    built = {}
    for split, records in read_questions(dataset_dir, splits).items():
        features = reference.features(split, {record["image_id"] for record in records})
        built[split] = [reference.answer(record, features) for record in records]
    return built


def reference_ans2idx(root: Path) -> dict[str, int]:
    """``ans2idx.json``: every answer of the vocabulary mapped to its sorted position."""
    return {answer: index for index, answer in enumerate(load_ontology(root).answer_vocabulary())}
