"""Run a build: read the question files, load the index, answer every split, write the files.

``build`` is what ``cxrvqa build`` runs; the stages it times (and ``load_index``'s
own) are kept in the report for the summary and the benchmarks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from cxrvqa.build.answering import answer_split
from cxrvqa.build.commit import check_output_dir, remove_stale, settle
from cxrvqa.build.index import SceneIndex, load_index
from cxrvqa.build.jsonio import paused_gc
from cxrvqa.build.layout import SourceLayout
from cxrvqa.build.output import ans2idx_bytes, dataset_bytes, write_files_atomically
from cxrvqa.build.questions import read_split
from cxrvqa.build.stages import Stages
from cxrvqa.vocab import SPLITS

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
          index: SceneIndex | None = None) -> BuildReport:
    """Build the requested splits and write them with ans2idx.json, all or nothing.

    ``index`` is the result of ``load_index(layout)`` when the caller already has it.
    """
    from cxrvqa.programs import answer, load_programs

    output_dir = output_dir or dataset_dir
    # Output-path problems surface before hours of work and before anything is replaced.
    check_output_dir(output_dir, (*(f"{split}.json" for split in splits), "ans2idx.json"))
    remove_stale(output_dir)
    settle(dataset_dir)
    stages = Stages(progress=progress)
    with stages.stage("read questions"):
        questions = {split: read_split(dataset_dir, split) for split in splits}
        programs = load_programs()
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
        write_files_atomically(output_dir, files, manifest=True)
    return BuildReport(records=records, stages=stages, output_dir=output_dir)
