"""Write the demo's four released-style question files with the question generator.

The synthetic tree's questions come from ``cxrvqa.generate`` (same sampling and
balancing as ``cxrvqa generate``), in the base wording and without answers, as the
released files are. Arguments use the synthetic ontology's possible pairs plus every
observed finding, so a hand-made index without an ontology works too.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from cxrvqa.build.layout import DATASET_SUBDIR, QUESTION_FILES
from cxrvqa.build.output import write_files_atomically
from cxrvqa.build.splits import SilverIndex
from cxrvqa.facts import ImageFacts
from cxrvqa.synth.ontology import QUESTION_PAIRS
from cxrvqa.tools.generate import (
    GenerateOptions,
    Pairs,
    generate_split,
    question_bytes,
    split_pools,
)

__all__ = ["write_questions"]



class _QuestionConfig(Protocol):
    """What of a ``SynthConfig`` the questions need (read-only: SynthConfig is frozen)."""

    @property
    def questions_per_template(self) -> int: ...
    @property
    def seed(self) -> int: ...


class _Index(SilverIndex, Protocol):
    @property
    def gold(self) -> Mapping[str, ImageFacts]: ...


def write_questions(root: Path, index: _Index, config: _QuestionConfig) -> dict[str, int]:
    """Write the four released question files under ``root/mimiccxrvqa/dataset``.

    Train questions go to two halves (part 1 then part 2 is the split). Returns the
    number of questions written per file name.
    """
    pools = split_pools(index)
    pairs = Pairs.of([*QUESTION_PAIRS, *((o, a) for pool in pools.values()
                                         for facts in pool.values() for o, a, _ in facts.findings)])
    options = GenerateOptions(per_template=config.questions_per_template, seed=config.seed,
                              answers=False, paraphrases=False)
    records = {split: generate_split(pool, split, pairs, options).records
               for split, pool in pools.items()}
    half = (len(records["train"]) + 1) // 2
    names = [name for split in ("train", "valid", "test") for name in QUESTION_FILES[split]]
    files = dict(zip(names, (records["train"][:half], records["train"][half:],
                                      records["valid"], records["test"])))
    write_files_atomically(Path(root) / DATASET_SUBDIR,
                           {name: question_bytes(items) for name, items in files.items()})
    return {name: len(items) for name, items in files.items()}
