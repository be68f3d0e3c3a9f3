"""Write the demo's four released-style question files with the question generator.

The synthetic tree's questions come from ``cxrvqa.generate`` (same sampling and
balancing as ``cxrvqa generate``), in the base wording and without answers, as the
released files are. Arguments use the synthetic ontology's possible pairs plus every
observed finding, so a hand-made index without an ontology works too.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .facts import ImageFacts
from .generate import GenerateOptions, Pairs, Template, generate_split, \
    load_templates, question_bytes, split_pools
from .output import write_files_atomically
from .splits import SilverIndex
from .synth_ontology import QUESTION_PAIRS

if TYPE_CHECKING:
    from .synth import SynthConfig

__all__ = ["QUESTION_FILES", "Template", "load_templates", "write_questions"]

QUESTION_FILES = ("_train_part1.json", "_train_part2.json", "_valid.json", "_test.json")


class _Index(SilverIndex, Protocol):
    gold: Mapping[str, ImageFacts]


def write_questions(root: Path, index: _Index, config: SynthConfig) -> dict[str, int]:
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
    files = dict(zip(QUESTION_FILES, (records["train"][:half], records["train"][half:],
                                      records["valid"], records["test"])))
    write_files_atomically(Path(root) / "mimiccxrvqa" / "dataset",
                           {name: question_bytes(items) for name, items in files.items()})
    return {name: len(items) for name, items in files.items()}
