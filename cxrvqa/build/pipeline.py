"""Run a build: read the question files, load the index, answer every split, write the files.

``build`` is what ``cxrvqa build`` runs; the stages it times (and ``load_index``'s
own) are kept in the report for the summary and the benchmarks.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cxrvqa.build.answering import answer_split
from cxrvqa.build.commit import check_output_dir, remove_stale, settle
from cxrvqa.build.index import SceneIndex, load_index
from cxrvqa.build.jsonio import paused_gc
from cxrvqa.build.layout import SourceLayout
from cxrvqa.build.output import (
    Row,
    ans2idx_bytes,
    row_record,
    rows_bytes,
    write_files_atomically,
)
from cxrvqa.build.questions import read_split, require_question_files, split_mismatches
from cxrvqa.build.stages import Stages
from cxrvqa.vocab import SPLITS

if TYPE_CHECKING:
    from cxrvqa.lang.nodes import Program

__all__ = ["BuildReport", "build"]


@dataclass(repr=False)  # the records run to hundreds of MB of text
class BuildReport:
    """What a build did: answered rows per split (``output.Row``), stage times, where, how long."""

    rows: dict[str, list[Row]]
    stages: Stages
    output_dir: Path
    seconds: float = 0.0

    def __repr__(self) -> str:
        return (f"BuildReport(counts={self.counts()!r}, output_dir={str(self.output_dir)!r}, "
                f"seconds={self.seconds:.2f})")

    def counts(self) -> dict[str, int]:
        return {split: len(rows) for split, rows in self.rows.items()}

    def records(self, split: str) -> list[dict[str, Any]]:
        """The output records of one split, as written (a dict per record: for inspection)."""
        return [row_record(row) for row in self.rows[split]]

    def summary(self, total_seconds: float | None = None) -> str:
        """The summary ``cxrvqa build`` prints: answers by kind per split, types, stage times.

        ``total_seconds`` is the caller's whole run (default: the build's own time); what
        the timed stages do not cover is shown as "other", so the stage times add up.
        """
        total = self.seconds if total_seconds is None else total_seconds
        lines = [f"{'split':<8}{'questions':>10}{'yes':>8}{'no':>8}{'empty':>8}{'list':>8}"]
        for split, rows in self.rows.items():  # a row is (question, subject, study, path, answer)
            kinds = Counter(_answer_kind(row[-1]) for row in rows)
            lines.append(f"{split:<8}{len(rows):>10}{kinds['yes']:>8}{kinds['no']:>8}"
                         f"{kinds['empty']:>8}{kinds['list']:>8}")
        lines.append("(answers: yes and no; empty is []; list is any other answer, e.g. "
                     "['left lung'] or ['ap'])")
        content = Counter(row[0]["content_type"] for rows in self.rows.values() for row in rows)
        lines.append("content types: " + ", ".join(f"{name} {count}"
                                                    for name, count in sorted(content.items())))
        timed = [(stage.name, stage.wall, f" {stage.peak_rss_mb:.0f}MB")
                 for stage in self.stages.times]
        timed.append(("other", max(0.0, total - sum(wall for _, wall, _ in timed)), ""))
        lines.append("stages (wall time, peak memory): " + ", ".join(
            f"{name} {wall:.2f}s{memory}" for name, wall, memory in timed)
            + f" (total {total:.2f}s)")
        lines.append(f"built {sum(self.counts().values())} questions into {self.output_dir} "
                     f"in {total:.1f}s")
        return "\n".join(lines)


def _answer_kind(answer: list[str]) -> str:
    if answer == ["yes"] or answer == ["no"]:
        return answer[0]
    return "list" if answer else "empty"


def build(layout: SourceLayout | str | os.PathLike[str], dataset_dir: str | os.PathLike[str],
          output_dir: str | os.PathLike[str] | None = None, splits: Sequence[str] = SPLITS, *,
          progress: bool = False, index: SceneIndex | None = None,
          stages: Stages | None = None,
          programs: Mapping[str, Program] | None = None) -> BuildReport:
    """Build the requested splits and write them with ans2idx.json, all or nothing.

    ``layout`` is a ``SourceLayout`` or the download root (the folder holding
    ``physionet.org/``). ``index`` is the result of ``load_index(layout)`` when the caller
    already has it; ``stages`` collects the stage times (with the caller's own stages);
    ``programs`` is the program set (default: the bundled 48, see ``programs.program_set``).
    """
    from cxrvqa.programs import load_programs

    started = time.perf_counter()
    if not isinstance(layout, SourceLayout):
        layout = SourceLayout.from_root(Path(layout))
    dataset_dir = Path(dataset_dir)
    output_dir = Path(output_dir) if output_dir is not None else dataset_dir
    require_question_files(dataset_dir, splits)  # before the output folder is made
    # Output-path problems surface before hours of work and before anything is replaced.
    check_output_dir(output_dir, (*(f"{split}.json" for split in splits), "ans2idx.json"))
    remove_stale(output_dir)
    settle(dataset_dir)
    stages = stages if stages is not None else Stages(progress=progress)
    with stages.stage("read questions"):
        questions = {split: read_split(dataset_dir, split) for split in splits}
        for split in splits:
            for note in split_mismatches(split, questions[split]):
                print(f"cxrvqa: note: {note}", file=sys.stderr)
        programs = programs if programs is not None else load_programs()
    if index is None:
        index = load_index(layout, stages=stages)
    rows = {}
    # Answering and writing only build acyclic containers; the cycle collector would rescan
    # the whole index and every record built so far, again and again.
    with stages.stage("answer questions"), paused_gc():
        for split in splits:
            facts, cohort = (index.gold, "gold") if split == "test" else (index.silver, "silver")
            rows[split] = answer_split(questions[split], facts, index.meta, programs, cohort,
                                       progress)
    with stages.stage("write files"), paused_gc():
        files = {f"{split}.json": rows_bytes(rows[split]) for split in splits}
        # Every answer the splits hold is mapped, an author's numbers too (export needs them).
        answers = (answer for split in rows.values() for row in split for answer in row[4])
        files["ans2idx.json"] = ans2idx_bytes(index.ontology.answer_vocabulary(answers))
        write_files_atomically(output_dir, files, manifest=True)
    return BuildReport(rows=rows, stages=stages, output_dir=output_dir,
                       seconds=time.perf_counter() - started)
