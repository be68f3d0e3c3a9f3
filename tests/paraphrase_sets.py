"""Paraphrase sets (tests/data/paraphrases/*.tsv) and how well func_vqa recognises them on a demo.

A set is a TSV with header ``program<TAB>style<TAB>template``. A line counts as recognised when
every question filled from it (with the arguments of each built record of its program) maps to
its program with the record's arguments, and func_vqa gives exactly the base wording's answer
on every study of the demo. A line is *wrong* when any of its questions maps to another program.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers import render_question

from cxrvqa.build.index import SceneIndex
from cxrvqa.lang.nodes import Program
from cxrvqa.tools.sqlite import register

DATA = Path(__file__).resolve().parent / "data" / "paraphrases"


@dataclass(frozen=True)
class Line:
    program: str
    style: str
    template: str


def read_set(path: Path) -> list[Line]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return [Line(row["program"], row["style"], row["template"]) for row in rows]


def studies_connection(index: SceneIndex) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute("create table studies (subject_id integer, study_id integer)")
    conn.executemany("insert into studies values (?, ?)",
                     sorted({(m.subject_id, m.study_id) for m in index.meta.values()}))
    return conn


def built_records(dataset: Path) -> list[dict[str, Any]]:
    return [r for split in ("train", "valid", "test")
            for r in json.loads((dataset / f"{split}.json").read_text())]


def filled(line: Line, record: Mapping[str, Any]) -> str:
    """``line``'s template filled with ``record``'s arguments, rendered as questions show them."""
    return render_question({**record, "template": line.template})


@dataclass
class Score:
    lines: int = 0
    recognised: int = 0
    wrong: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def share(self) -> float:
        return self.recognised / self.lines


def score(lines: Iterable[Line], records: list[dict[str, Any]], index: SceneIndex,
          programs: Mapping[str, Program]) -> Score:
    conn = studies_connection(index)
    vqa = register(conn, index, programs)
    by_program: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_program.setdefault(record["template_program"], []).append(record)
    result = Score()
    for line in lines:
        result.lines += 1
        problems = []
        for record in by_program[line.program]:
            question = filled(line, record)
            found = vqa.matcher.recognise(question)
            expected = {k: v for k, v in record["template_arguments"].items() if v}
            if found.program is not None and found.program != line.program:
                result.wrong.append(f"{line.program} {question!r} -> {found.program} ({found.reason})")
                problems.append("wrong")
                break
            if found.program is None:
                problems.append(found.error())
                break
            if found.arguments != expected:
                problems.append(f"{question!r}: arguments {found.arguments} != {expected}")
                break
            differ = conn.execute("select count(*) from studies "
                                  "where func_vqa(?, study_id) is not func_vqa(?, study_id)",
                                  (question, record["question"])).fetchone()[0]
            if differ:
                problems.append(f"{question!r}: {differ} studies answered unlike the base wording")
                break
        if problems:
            result.failed.append(f"{line.program} {line.template!r}: {problems[0]}")
        else:
            result.recognised += 1
    return result
