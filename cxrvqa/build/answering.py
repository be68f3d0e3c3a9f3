"""Answer one split's question records with the programs and make the output rows (pipeline.md §6).

A row is a tuple, not a dict: ``output.rows_bytes`` formats it straight into the file, and
a split has ~10^5 of them. ``output.row_record`` gives the record dict of a row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cxrvqa.build.index import ImageMeta
from cxrvqa.build.output import Row
from cxrvqa.build.stages import progress_bar
from cxrvqa.errors import CxrvqaError, DataError
from cxrvqa.facts import ImageFacts
from cxrvqa.lang import nodes as n
from cxrvqa.lang.answers import render
from cxrvqa.programs import answer, runner

__all__ = ["answer_split", "image_identity", "image_path"]

_Run = Callable[[ImageFacts, list[Any]], Any]
_Bind = Callable[[object], "list[Any] | None"]


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
                 meta: Mapping[str, ImageMeta], programs: Mapping[str, n.Program],
                 cohort: str, progress: bool = False) -> list[Row]:
    """Output rows for one split's questions, in input order.

    Each program's compiled function and binder are looked up once per split; a question
    the fast path cannot bind goes through ``programs.answer``, which raises the error
    that says what is wrong (or answers it, the same way).
    """
    runners: dict[object, tuple[_Run, _Bind] | None] = {}
    identity: dict[str, tuple[str, str, str]] = {}  # image -> subject_id, study_id, image_path
    rows: list[Row] = []
    append = rows.append
    bar = progress_bar(questions, enabled=progress, unit="q", leave=False,
                       desc=f"{cohort} questions answered")
    for path, number, question in bar:
        image = question["image_id"]
        image_facts = facts.get(image)
        if image_facts is None:
            raise DataError(f"{_where(path, number, question)}: image {image!r} has no labels "
                            f"in the {cohort} cohort")
        name = question["template_program"]
        try:
            try:
                fast = runners[name]
            except (KeyError, TypeError):
                fast = _runner(programs, name, runners)
            args = fast[1](question["template_arguments"]) if fast is not None else None
            result = (render(fast[0](image_facts, args)) if args is not None  # type: ignore[index]
                      else answer(programs, question, image_facts))
        except CxrvqaError as exc:
            raise DataError(f"{_where(path, number, question)}: {exc}") from None
        ids = identity.get(image)
        if ids is None:
            ids = identity[image] = image_identity(meta[image], image)
        append((question, *ids, result))
    return rows


def _runner(programs: Mapping[str, n.Program], name: object,
            runners: dict[object, tuple[_Run, _Bind] | None]) -> tuple[_Run, _Bind] | None:
    """The program's (run, bind), remembered; None for a name that is not a program's."""
    program = programs.get(name) if isinstance(name, str) else None
    fast = runner(program) if program is not None else None
    if isinstance(name, str):
        runners[name] = fast
    return fast
