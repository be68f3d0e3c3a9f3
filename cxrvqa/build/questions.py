"""Read released-style question files and validate each record at the boundary.

Records are kept as the parsed dicts (their values are copied to the output
unchanged); pydantic only checks that each has the fields a build reads.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from typing_extensions import TypedDict

from cxrvqa.build.jsonio import not_found, paused_gc, read_json
from cxrvqa.build.layout import QUESTION_FILES
from cxrvqa.errors import DataError
from cxrvqa.vocab import ARGUMENT_KINDS

__all__ = ["read_question_file", "read_split", "require_question_files", "split_mismatches"]



# Pydantic checks a batch of records per call (in Rust, ~2x faster than one call per record);
# batches bound the validated copy it makes, which is thrown away.
_BATCH = 20_000


@functools.cache
def _records_adapter() -> Any:
    # Built on first use: importing pydantic and building the validator cost ~0.1 s of start-up.
    from pydantic import Field, Strict, TypeAdapter

    class QuestionRecord(TypedDict):
        """The fields of a question record that a build reads or copies (others are allowed)."""

        split: str
        idx: Annotated[int, Strict(), Field(ge=0, lt=2**63)]  # not "3", 3.0 or true
        image_id: str
        question: str
        content_type: str
        semantic_type: str
        template: str
        template_program: str
        template_arguments: dict[str, dict[str, str]]

    return TypeAdapter(list[QuestionRecord])


def _check_records(records: list[Any], path: Path) -> None:
    from pydantic import ValidationError

    adapter = _records_adapter()
    for start in range(0, len(records), _BATCH):
        try:
            adapter.validate_python(records[start:start + _BATCH])
        except ValidationError as exc:
            first = exc.errors()[0]
            offset, *where = first["loc"]
            number = start + int(offset)
            raise DataError(f"{_label(path, number, records[number])}: "
                            f"{'.'.join(map(str, where)) or 'record'}: {first['msg'].lower()}"
                            ) from None
    for number, record in enumerate(records):
        missing = [kind for kind in ARGUMENT_KINDS if kind not in record["template_arguments"]]
        if missing:
            raise DataError(f"{_label(path, number, record)}: template_arguments lacks "
                            f"{', '.join(map(repr, missing))}")


def _label(path: Path, number: int | str, record: Any) -> str:
    label = f"{path}: record {number}"
    if isinstance(record, dict) and "idx" in record:
        label += f" (idx {record['idx']!r})"
    return label


_EXPECTED = "a question file from the MIMIC-CXR-VQA repository's mimiccxrvqa/dataset folder"


def require_question_files(dataset_dir: Path, splits: Sequence[str]) -> None:
    """Fail at once when a split's question file is absent (a mistyped --dataset-dir), before
    a build makes its output folder.

    Raises:
        DataError: the first absent file, as ``read_question_file`` names it.
    """
    for split in splits:
        for path in (dataset_dir / name for name in QUESTION_FILES[split]):
            if not path.exists():
                raise not_found(path, _EXPECTED)


def read_question_file(path: Path) -> list[dict[str, Any]]:
    """All records of one question file, validated, in file order."""
    data = read_json(path, _EXPECTED)
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of question records")
    _check_records(data, path)
    return data


def split_mismatches(split: str, entries: list[tuple[Path, int, dict[str, Any]]]) -> list[str]:
    """One note per file whose records name another split than the file's.

    Such a value is copied unchanged (pipeline.md §6: the file decides the labels), but the
    user is told, since it usually means files were renamed or mixed up.
    """
    counts: Counter[tuple[Path, str]] = Counter(
        (path, str(record["split"])) for path, _, record in entries if record["split"] != split)
    return [f"{path}: {count} record(s) say split {value!r}; copied unchanged, answered as "
            f"{split} (the file decides)" for (path, value), count in sorted(counts.items())]


def read_split(dataset_dir: Path, split: str) -> list[tuple[Path, int, dict[str, Any]]]:
    """(file, record number, record) for every question of a split, parts concatenated.

    Raises:
        DataError: a record is invalid or repeats an idx of the split.
    """
    # Hundreds of thousands of acyclic records: the cycle collector would rescan them all.
    with paused_gc():
        entries = [(path, number, record)
                   for name in QUESTION_FILES[split]
                   for path in [dataset_dir / name]
                   for number, record in enumerate(read_question_file(path))]
    # A record's own split value is copied unchanged (pipeline.md §6): which labels answer it
    # follows from its file, so a disagreeing value is not an error.
    seen: set[int] = set()
    for path, number, record in entries:
        if record["idx"] in seen:
            raise DataError(f"{_label(path, number, record)}: idx repeats an earlier record's "
                            f"idx in the {split} split")
        seen.add(record["idx"])
    return entries
