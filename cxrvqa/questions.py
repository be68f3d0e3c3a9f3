"""Read released-style question files and validate each record at the boundary.

Records are kept as the parsed dicts (their values are copied to the output
unchanged); pydantic only checks that each has the fields a build reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import DataError
from .vocab import ARGUMENT_KINDS

__all__ = ["QuestionRecord", "SPLIT_FILES", "read_question_file", "read_split"]

SPLIT_FILES: dict[str, tuple[str, ...]] = {
    "train": ("_train_part1.json", "_train_part2.json"),
    "valid": ("_valid.json",),
    "test": ("_test.json",),
}


class QuestionRecord(BaseModel):
    """The fields of a question record that a build reads or copies."""

    model_config = ConfigDict(extra="allow")

    split: str
    idx: int
    image_id: str
    question: str
    content_type: str
    semantic_type: str
    template: str
    template_program: str
    template_arguments: dict[str, dict[str, str]]


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "record"
    return f"{where}: {first['msg'].lower()}"


def _check_record(record: Any, path: Path, number: int) -> dict[str, Any]:
    label = f"{path}: record {number}"
    if not isinstance(record, dict):
        raise DataError(f"{label}: expected a JSON object, got {type(record).__name__}")
    if "idx" in record:
        label += f" (idx {record['idx']!r})"
    try:
        parsed = QuestionRecord.model_validate(record)
    except ValidationError as exc:
        raise DataError(f"{label}: {_describe(exc)}") from None
    missing = [kind for kind in ARGUMENT_KINDS if kind not in parsed.template_arguments]
    if missing:
        raise DataError(f"{label}: template_arguments lacks {', '.join(map(repr, missing))}")
    return record


def read_question_file(path: Path) -> list[dict[str, Any]]:
    """All records of one question file, validated, in file order."""
    if not path.exists():
        raise DataError(f"{path}: file not found (question files come with the MIMIC-CXR-VQA "
                        f"repository's mimiccxrvqa/dataset folder)")
    try:
        with path.open(encoding="utf-8") as handle:
            data = json.load(handle)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of question records")
    return [_check_record(record, path, number) for number, record in enumerate(data)]


def read_split(dataset_dir: Path, split: str) -> list[tuple[Path, int, dict[str, Any]]]:
    """(file, record number, record) for every question of a split, parts concatenated."""
    return [(path, number, record)
            for name in SPLIT_FILES[split]
            for path in [dataset_dir / name]
            for number, record in enumerate(read_question_file(path))]
