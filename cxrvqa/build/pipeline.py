"""Run a build: read the question files, load the index, answer every split, write the files.

``build`` is what ``cxrvqa build`` runs; the stages it times (and ``load_index``'s
own) are kept in the report for the summary and the benchmarks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cxrvqa.build.answering import answer_split
from cxrvqa.build.index import SceneIndex, load_index
from cxrvqa.build.jsonio import paused_gc
from cxrvqa.build.layout import SourceLayout
from cxrvqa.build.output import ans2idx_bytes, dataset_bytes, write_files_atomically
from cxrvqa.build.questions import read_split
from cxrvqa.build.stages import Stages
from cxrvqa.vocab import SPLITS

if TYPE_CHECKING:
    from cxrvqa.lang.nodes import Program

__all__ = ["BuildReport", "build"]


@dataclass
class BuildReport:
    """What a build did: records per split, answers by template, stage times."""

    records: dict[str, list[dict[str, Any]]]
    stages: Stages
    output_dir: Path

    def counts(self) -> dict[str, int]:
        return {split: len(records) for split, records in self.records.items()}


def build(layout: SourceLayout, dataset_dir: Path, output_dir: Path | None = None,
          splits: Sequence[str] = SPLITS, *, progress: bool = False,
          index: SceneIndex | None = None,
          programs: Mapping[str, Program] | None = None) -> BuildReport:
    """Build the requested splits and write them with ans2idx.json, all or nothing.

    ``index`` is the result of ``load_index(layout)`` when the caller already has it;
    ``programs`` the program set (default: the bundled 48, see ``programs.program_set``).
    """
    from cxrvqa.programs import answer, load_programs

    output_dir = output_dir or dataset_dir
    stages = Stages(progress=progress)
    with stages.stage("read questions"):
        questions = {split: read_split(dataset_dir, split) for split in splits}
        programs = programs if programs is not None else load_programs()
    if index is None:
        index = load_index(layout, stages=stages)
    records = {}
    # Answering and writing only build acyclic containers; the cycle collector would rescan
    # the whole index and every record built so far, again and again.
    with stages.stage("answer questions"), paused_gc():
        for split in splits:
            facts, cohort = (index.gold, "gold") if split == "test" else (index.silver, "silver")
            records[split] = answer_split(
                questions[split], facts, index.meta,
                partial(answer, programs),
                cohort, progress)
    with stages.stage("write files"), paused_gc():
        files = {f"{split}.json": dataset_bytes(records[split]) for split in splits}
        files["ans2idx.json"] = ans2idx_bytes(index.ontology.answer_vocabulary())
        write_files_atomically(output_dir, files)
    return BuildReport(records=records, stages=stages, output_dir=output_dir)
