"""Benchmark: the build's answer and write stages on a generated tree (not a test).

Loads the index and the question files of a tree once, then times, best of ``--repeat``
runs, what ``cxrvqa build`` does after that: ``answer_split`` for every split (fresh
ImageFacts each run, so every image's inverted indices are built again, as in a build)
and the formatting of the split files. Prints questions/second.

    python bench/bench_answer_build.py TREE [--repeat 3]

TREE is a folder as ``cxrvqa demo`` or ``bench_build.py`` writes (physionet.org/ and
mimiccxrvqa/dataset/); the target is >= 100 K questions/s for the answer stage.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from cxrvqa.build.answering import answer_split
from cxrvqa.build.index import load_index
from cxrvqa.build.jsonio import paused_gc
from cxrvqa.build.layout import DATASET_SUBDIR, SourceLayout
from cxrvqa.build.output import rows_bytes
from cxrvqa.build.questions import read_split
from cxrvqa.facts import ImageFacts
from cxrvqa.programs import load_programs
from cxrvqa.vocab import SPLITS


def _fresh(facts: dict[str, ImageFacts]) -> dict[str, ImageFacts]:
    """Copies without the per-image indices a previous run built."""
    return {image: ImageFacts(f.findings, f.viewpos, f.gender, f.boxes) for image, f in facts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tree", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    index = load_index(SourceLayout.from_root(options.tree))
    questions = {split: read_split(options.tree / DATASET_SUBDIR, split) for split in SPLITS}
    programs = load_programs()
    total = sum(map(len, questions.values()))
    best_answer = best_write = float("inf")
    for _ in range(options.repeat):
        silver, gold = _fresh(dict(index.silver)), _fresh(dict(index.gold))
        with paused_gc():
            started = time.process_time()
            rows = {split: answer_split(questions[split], gold if split == "test" else silver,
                                        index.meta, programs,
                                        "gold" if split == "test" else "silver")
                    for split in SPLITS}
            answered = time.process_time()
            size = sum(len(rows_bytes(rows[split])) for split in SPLITS)
            written = time.process_time()
        best_answer = min(best_answer, answered - started)
        best_write = min(best_write, written - answered)
    print(f"{total:,} questions over {len(index.silver):,} + {len(index.gold):,} images: "
          f"answer {best_answer:.2f} s CPU ({total / best_answer:,.0f} q/s), "
          f"format {best_write:.2f} s CPU ({total / best_write:,.0f} records/s, {size / 1e6:.0f} MB); "
          f"best of {options.repeat}")


if __name__ == "__main__":
    main()
