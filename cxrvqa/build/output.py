"""Write dataset files atomically, in the exact bytes of the published builder.

JSON is written by Python's ``json`` with ``indent=4``, default separators and
ASCII escaping, without a trailing newline; ``ans2idx.json`` is one line with
sorted keys. All files of a build are staged, fsynced and
committed together through a journal (``cxrvqa.build.commit``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from json.encoder import encode_basestring_ascii as _quote
from pathlib import Path
from typing import Any

from cxrvqa.build.commit import StagedFiles

__all__ = ["OUTPUT_KEYS", "Row", "ans2idx_bytes", "dataset_bytes", "folder_mode", "row_record",
           "rows_bytes", "write_files_atomically"]


OUTPUT_KEYS = ("split", "idx", "subject_id", "study_id", "image_id", "image_path", "question",
               "semantic_type", "content_type", "template", "template_program",
               "template_arguments", "answer")
"""The key order of an output record (pipeline.md §6). A record with exactly these keys and
the usual value types is written by ``_usual_record``, several times faster than the generic walk."""
# Line breaks plus indentation for items 12 and 16 spaces deep.
_PAD_12 = "\n" + " " * 12
_PAD_16 = "\n" + " " * 16


Row = tuple[dict[str, Any], str, str, str, list[str]]
"""An answered question as a build keeps it: (question record, subject_id, study_id,
image_path, answer). The output record takes its other fields from the question record."""


def row_record(row: Row) -> dict[str, Any]:
    """The output record of a row, keys in ``OUTPUT_KEYS`` order."""
    question, subject_id, study_id, path, answer = row
    return {"split": question["split"], "idx": question["idx"], "subject_id": subject_id,
            "study_id": study_id, "image_id": question["image_id"], "image_path": path,
            "question": question["question"], "semantic_type": question["semantic_type"],
            "content_type": question["content_type"], "template": question["template"],
            "template_program": question["template_program"],
            "template_arguments": question["template_arguments"], "answer": answer}


def rows_bytes(rows: list[Row]) -> bytes:
    """A split file's bytes from its rows: ``dataset_bytes(list(map(row_record, rows)))``,
    without building a dict per row."""
    if not rows:
        return b"[]"
    body = ",\n    ".join(map(_row, rows)).encode("ascii")
    return b"".join((b"[\n    ", body, b"\n]"))


def _row(row: Row) -> str:
    question, subject_id, study_id, path, answer = row
    try:
        return _usual_record(question["split"], question["idx"], subject_id, study_id,
                             question["image_id"], path, question["question"],
                             question["semantic_type"], question["content_type"],
                             question["template"], question["template_program"],
                             question["template_arguments"], answer)
    except TypeError:  # an unusual value type: the generic walk writes it as json would
        return _indented(row_record(row), 4)


def dataset_bytes(records: list[dict[str, Any]]) -> bytes:
    """A split file's bytes: exactly ``json.dumps(records, indent=4)``."""
    if not records:
        return b"[]"
    # Each step copies the whole file once and keeps at most two copies alive (a split is
    # hundreds of MB): the str is freed once encoded, and the brackets join without a third.
    body = ",\n    ".join(map(_record, records)).encode("ascii")
    return b"".join((b"[\n    ", body, b"\n]"))


def _record(record: Any) -> str:
    """One element of the split's list, as ``json.dumps`` writes it 4 spaces deep."""
    if type(record) is dict and tuple(record) == OUTPUT_KEYS:
        try:
            return _usual_record(*record.values())
        except TypeError:  # raised by _quote and the helpers for any unusual value
            pass
    return _indented(record, 4)


def _usual_record(split: str, idx: int, subject_id: str, study_id: str, image_id: str,
                  image_path: str, question: str, semantic_type: str, content_type: str,
                  template: str, template_program: str, template_arguments: dict[str, dict[str, str]],
                  answer: list[str]) -> str:
    """A built record 4 spaces deep; TypeError unless every value has its usual type."""
    # bool is an int subclass that json writes as true/false, hence the exact type test.
    if type(idx) is not int:
        raise TypeError("idx is not an int")
    return ("{\n"
            f'        "split": {_quote(split)},\n'
            f'        "idx": {idx},\n'
            f'        "subject_id": {_quote(subject_id)},\n'
            f'        "study_id": {_quote(study_id)},\n'
            f'        "image_id": {_quote(image_id)},\n'
            f'        "image_path": {_quote(image_path)},\n'
            f'        "question": {_quote(question)},\n'
            f'        "semantic_type": {_quote(semantic_type)},\n'
            f'        "content_type": {_quote(content_type)},\n'
            f'        "template": {_quote(template)},\n'
            f'        "template_program": {_quote(template_program)},\n'
            f'        "template_arguments": {_arguments(template_arguments)},\n'
            f'        "answer": {_strings(answer)}\n'
            "    }")


def _arguments(arguments: Any) -> str:
    """Template arguments (dict of dicts of strings) 8 spaces deep; TypeError for other types."""
    if type(arguments) is not dict:
        raise TypeError("not a dict")
    return _container("{}", [_quote(kind) + ": " + _slots(slots)
                             for kind, slots in arguments.items()], _PAD_12)


def _slots(slots: Any) -> str:
    """One kind's placeholders (dict of strings) 12 spaces deep; TypeError for other types."""
    if type(slots) is not dict:
        raise TypeError("not a dict")
    if not slots:  # most kinds are empty: skip building an empty list for them
        return "{}"
    return _container("{}", [_quote(key) + ": " + _quote(value)
                             for key, value in slots.items()], _PAD_16)


def _strings(values: Any) -> str:
    """A list of strings 8 spaces deep; TypeError for other types."""
    if type(values) is not list:
        raise TypeError("not a list")
    return _container("[]", list(map(_quote, values)), _PAD_12)


def _container(brackets: str, items: list[str], pad: str) -> str:
    """Encoded ``items`` in ``brackets``, each on a line after ``pad``; empty ones inline.

    ``pad`` is a line break and the items' indentation; the closing bracket sits 4 spaces less deep.
    """
    if not items:
        return brackets
    return brackets[0] + pad + ("," + pad).join(items) + pad[:-4] + brackets[1]


def _indented(value: Any, depth: int) -> str:
    """``json.dumps(value, indent=4)`` nested ``depth`` spaces deep, for any value.

    With ``indent`` set, ``json`` falls back to its pure-Python encoder; strings, lists
    and string-keyed dicts are joined here around the C string quoting instead.
    Anything else goes through ``json`` itself.
    """
    if isinstance(value, str):
        return _quote(value)
    pad = "\n" + " " * (depth + 4)
    if isinstance(value, list):
        return _container("[]", [_indented(item, depth + 4) for item in value], pad)
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return _container("{}", [_quote(key) + ": " + _indented(item, depth + 4)
                                 for key, item in value.items()], pad)
    return json.dumps(value, indent=4).replace("\n", "\n" + " " * depth)


def ans2idx_bytes(answers: list[str]) -> bytes:
    """The answer-to-index map over the sorted answers."""
    return json.dumps({answer: index for index, answer in enumerate(sorted(answers))}).encode("ascii")


def folder_mode() -> int:
    """The mode ``mkdir`` gives a new folder under the current umask (``mkdtemp`` gives 0700)."""
    mask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return 0o777 & ~mask


def write_files_atomically(directory: Path, files: Mapping[str, bytes], *,
                           manifest: bool = False) -> None:
    """Write every file or none (see ``cxrvqa.build.commit``); ``manifest`` records their SHA-256s.

    Raises:
        DataError: the folder or a target cannot be written (found before anything is replaced).
    """
    with StagedFiles(directory, tuple(files), manifest=manifest) as staged:
        for name, data in files.items():
            staged.write(name, data)
