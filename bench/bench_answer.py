"""Benchmark: answer questions over synthetic images through the public API (not a test).

Builds >= 10 K seeded random ImageFacts (0-30 findings each, every box present)
and >= 300 K question records spread over all 48 bundled programs, warms the
compiled programs up, then times answering them all and prints questions/second.

    python bench/bench_answer.py [--images N] [--questions N] [--seed S]

(with cxrvqa installed, e.g. ``pip install .``; the target is >= 100 K questions/s).
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter

from cxrvqa import ImageFacts, Program, answer, load_programs
from cxrvqa.vocab import (
    BBOX_NAMES,
    VQA_ATTRIBUTES,
    VQA_CATEGORIES,
    VQA_OBJECTS,
    category_of,
)

Record = dict[str, object]


def make_facts(rng: random.Random) -> ImageFacts:
    """One image: up to 30 findings, a view position, a gender and all 36 boxes."""
    findings = set()
    for _ in range(rng.randint(0, 30)):
        attribute = rng.choice(VQA_ATTRIBUTES)
        findings.add((rng.choice(VQA_OBJECTS), attribute, category_of(attribute)))
    boxes = {}
    for name in BBOX_NAMES:
        x1 = rng.randint(0, 150)
        boxes[name] = (x1, x1 + rng.randint(10, 70))
    boxes["right lung"] = (rng.randint(10, 40), rng.randint(90, 110))
    boxes["left lung"] = (rng.randint(115, 135), rng.randint(180, 215))
    return ImageFacts(findings, rng.choice(("AP", "PA")), rng.choice(("M", "F")), boxes)


_CHOICES = {"object": VQA_OBJECTS, "attribute": VQA_ATTRIBUTES, "category": VQA_CATEGORIES,
            "viewpos": ("AP", "PA"), "gender": ("M", "F")}


def make_record(rng: random.Random, program: Program) -> Record:
    """A question on ``program`` with distinct random arguments for each declared kind."""
    counts = Counter(p.kind for p in program.params)
    if not counts and rng.random() < 0.3:
        counts["category"] = 1  # published ABN questions sometimes carry an unused category
    arguments = {kind: {str(i): v for i, v in enumerate(rng.sample(_CHOICES[kind], count))}
                 for kind, count in counts.items()}
    return {"template_program": program.name, "template_arguments": arguments}


def main() -> None:
    """Generate the workload, warm up, time it and print the rate."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--questions", type=int, default=300_000)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args()
    rng = random.Random(options.seed)
    programs = load_programs()
    images = [make_facts(rng) for _ in range(options.images)]
    names = sorted(programs)
    work = [(make_record(rng, programs[names[i % len(names)]]), rng.choice(images))
            for i in range(options.questions)]
    for record, facts in work[: len(names) * 10]:  # warm-up: compile every program
        answer(programs, record, facts)
    start = time.perf_counter()
    yes = sum(answer(programs, record, facts) == ["yes"] for record, facts in work)
    elapsed = time.perf_counter() - start
    print(f"{len(work):,} questions over {len(images):,} images and {len(names)} programs "
          f"in {elapsed:.2f} s: {len(work) / elapsed:,.0f} questions/s ({yes:,} answered yes)")


if __name__ == "__main__":
    main()
