"""Benchmark: recognise distinct func_vqa questions (not a test).

Fills the paraphrase templates of tests/data/paraphrases/dev.tsv (wordings the bundled
programs do not hold, so every question goes through the slot-first parser) and the
bundled template lines (the exact layer) with seeded random vocabulary, keeps distinct
texts only (the recogniser caches by text), and times a fresh recogniser on them.

    python bench/bench_recognise.py [--questions N] [--seed S]

Target: >= 20 K distinct questions/s through the parser.
"""

from __future__ import annotations

import argparse
import csv
import random
import time
from collections import Counter
from pathlib import Path

from cxrvqa.lang.templates import argument_key, fill, param_kind
from cxrvqa.programs import bundled_programs
from cxrvqa.tools.recognise import Recogniser
from cxrvqa.vocab import (
    CATEGORY_WORDS,
    GENDER_WORDS,
    VQA_ATTRIBUTES,
    VQA_CATEGORIES,
    VQA_OBJECTS,
)

DEV = Path(__file__).resolve().parent.parent / "tests" / "data" / "paraphrases" / "dev.tsv"


def questions(templates: list[str], count: int, rng: random.Random) -> list[str]:
    """``count`` distinct questions filled from ``templates``."""
    pools = {"object": VQA_OBJECTS, "attribute": VQA_ATTRIBUTES,
             "category": [CATEGORY_WORDS[c] for c in VQA_CATEGORIES] + list(VQA_CATEGORIES),
             "viewpos": ["AP", "PA"], "gender": list(GENDER_WORDS.values())}
    seen: set[str] = set()
    while len(seen) < count:
        template = rng.choice(templates)
        chosen: dict[str, list[str]] = {}

        def value(slot: str) -> str:
            kind = param_kind(slot)
            picked = chosen.setdefault(kind, rng.sample(list(pools[kind]), 2 if kind in (
                "object", "attribute", "category") else 1))
            return picked[min(int(argument_key(slot)), len(picked) - 1)]
        text = fill(template, value)
        seen.add(text.lower() if rng.random() < 0.5 else text)
    return sorted(seen)


def run(label: str, texts: list[str]) -> None:
    recogniser = Recogniser(bundled_programs())
    started, cpu = time.perf_counter(), time.process_time()
    layers = Counter(recogniser.recognise(text).layer for text in texts)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    # CPU time too: on a shared machine the wall time also counts other jobs.
    print(f"{label}: {len(texts)} distinct questions in {seconds:.2f} s wall, {cpu:.2f} s CPU = "
          f"{len(texts) / seconds:,.0f} questions/s (wall), {len(texts) / cpu:,.0f} (CPU); "
          f"layers {dict(layers)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with DEV.open(encoding="utf-8") as handle:
        paraphrases = [row["template"] for row in csv.DictReader(handle, delimiter="\t")]
    base = [t.text for program in bundled_programs().values() for t in program.templates]
    started = time.perf_counter()
    Recogniser(bundled_programs())
    print(f"building a recogniser for {len(base)} template lines: "
          f"{(time.perf_counter() - started) * 1000:.0f} ms")
    run("parser (dev paraphrases)", questions(paraphrases, args.questions, rng))
    run("exact (bundled template lines)", questions(base, args.questions, rng))


if __name__ == "__main__":
    main()
