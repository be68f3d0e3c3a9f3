"""Answer one split's question records with the programs and make the output records (pipeline.md §6)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from cxrvqa.build.index import ImageMeta
from cxrvqa.errors import CxrvqaError, DataError
from cxrvqa.facts import ImageFacts

__all__ = ["answer_split", "image_identity", "image_path"]


def image_path(meta: ImageMeta, image_id: str) -> str:
    """The JPG's path relative to ``physionet.org/files/mimic-cxr-jpg/2.0.0/files/``."""
    subject = str(meta.subject_id)
    return f"p{subject[:2]}/p{subject}/s{meta.study_id}/{image_id}.jpg"


def image_identity(meta: ImageMeta, image_id: str) -> tuple[str, str, str]:
    """The subject_id, study_id and image_path of an output record (as strings)."""
    return str(meta.subject_id), str(meta.study_id), image_path(meta, image_id)


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
            identity[image] = image_identity(meta[image], image)
        subject_id, study_id, path = identity[image]
        records.append({
            "split": question["split"], "idx": question["idx"], "subject_id": subject_id,
            "study_id": study_id, "image_id": image, "image_path": path,
            "question": question["question"], "semantic_type": question["semantic_type"],
            "content_type": question["content_type"], "template": question["template"],
            "template_program": question["template_program"],
            "template_arguments": question["template_arguments"], "answer": result})
    return records
