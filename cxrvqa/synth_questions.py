"""Released-style question files for all 48 templates, drawn from a built index's image facts.

Arguments respect the ontology (an object and an attribute named together form a
possible pair), numbered placeholders get distinct values, and about half of the
questions are anchored on one of the image's positive findings, so that answers
mix yes and no, empty and non-empty lists.
"""

from __future__ import annotations

import csv
import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .facts import ImageFacts
from .splits import SilverIndex, assign_splits
from .synth_ontology import QUESTION_PAIRS
from .synth_scene import SIZE_BOXES
from .vocab import VQA_ATTRIBUTES, VQA_CATEGORIES, VQA_OBJECTS, category_of

if TYPE_CHECKING:
    from .synth import SynthConfig

__all__ = ["CATEGORY_WORDS", "QUESTION_FILES", "Template", "load_templates", "write_questions"]

QUESTION_FILES = ("_train_part1.json", "_train_part2.json", "_valid.json", "_test.json")
CATEGORY_WORDS = {
    "anatomicalfinding": "anatomical findings", "technicalassessment": "technical assessments",
    "disease": "diseases", "tubesandlines": "tubes/lines", "device": "devices",
}
_GENDER_WORDS = {"M": "male", "F": "female"}
_ARGUMENT_KINDS = ("object", "attribute", "category", "viewpos", "gender")
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")
_ATTEMPTS = 40


@dataclass(frozen=True)
class Template:
    """One row of templates.tsv with its placeholders in text order."""

    program: str
    text: str
    content_type: str
    semantic_type: str

    @property
    def placeholders(self) -> tuple[str, ...]:
        return tuple(_PLACEHOLDER.findall(self.text))


@cache
def load_templates() -> tuple[Template, ...]:
    """The 48 templates, in program order, from the packaged ``templates.tsv``."""
    text = resources.files("cxrvqa").joinpath("templates.tsv").read_text(encoding="utf-8")
    rows = csv.DictReader(text.splitlines(), delimiter="\t")
    return tuple(Template(row["program"], row["template"], row["content_type"],
                          row["semantic_type"]) for row in rows)


class _Index(SilverIndex, Protocol):
    gold: Mapping[str, ImageFacts]


def write_questions(root: Path, index: _Index, config: SynthConfig) -> dict[str, int]:
    """Write the four released question files under ``root/mimiccxrvqa/dataset``.

    Train questions go to two halves (part 1 then part 2 is the split). Returns the
    number of questions written per file name.
    """
    splits = assign_splits(index)
    pools = {
        "train": {i: f for i, f in index.silver.items() if splits[i] == "train"},
        "valid": {i: f for i, f in index.silver.items() if splits[i] == "valid"},
        "test": dict(index.gold),
    }
    pairs = _Pairs(pools)
    records = {split: _split_records(split, pool, pairs, config)
               for split, pool in pools.items()}
    half = (len(records["train"]) + 1) // 2
    files = dict(zip(QUESTION_FILES, (records["train"][:half], records["train"][half:],
                                      records["valid"], records["test"])))
    folder = Path(root) / "mimiccxrvqa" / "dataset"
    folder.mkdir(parents=True, exist_ok=True)
    for name, items in files.items():
        (folder / name).write_text(json.dumps(items, indent=2), encoding="utf-8")
    return {name: len(items) for name, items in files.items()}


class _Pairs:
    """Possible (object, attribute) pairs: the ontology's own plus every observed finding."""

    def __init__(self, pools: Mapping[str, Mapping[str, ImageFacts]]) -> None:
        pairs = set(QUESTION_PAIRS) | {(o, a) for pool in pools.values() for facts in pool.values()
                                       for o, a, _ in facts.findings}
        self.objects_of: dict[str, set[str]] = {a: set() for a in VQA_ATTRIBUTES}
        self.attributes_at: dict[str, set[str]] = {o: set() for o in VQA_OBJECTS}
        for obj, attribute in pairs:
            if obj in self.attributes_at and attribute in self.objects_of:
                self.objects_of[attribute].add(obj)
                self.attributes_at[obj].add(attribute)

    def categories_at(self, obj: str) -> set[str]:
        return {category_of(a) for a in self.attributes_at[obj]}


def _split_records(split: str, pool: Mapping[str, ImageFacts], pairs: _Pairs,
                   config: SynthConfig) -> list[dict[str, Any]]:
    rng = random.Random(f"cxrvqa-synth/questions/{config.seed}/{split}")
    images = sorted(pool)
    records = []
    for template in load_templates():
        eligible = [i for i in images if _eligible(template.program, pool[i])]
        for _ in range(config.questions_per_template if eligible else 0):
            record = _question(rng, template, eligible, pool, pairs)
            if record is not None:
                records.append(record)
    rng.shuffle(records)
    return [{"split": split, "idx": n, **record} for n, record in enumerate(records)]


def _eligible(program: str, facts: ImageFacts) -> bool:
    if program in ("program_45", "program_46"):
        return facts.gender is not None
    if program in ("program_41", "program_42", "program_43"):
        return facts.viewpos is not None
    if program in ("program_47", "program_48"):
        return all(name in facts.boxes for name in SIZE_BOXES)
    return True


def _question(rng: random.Random, template: Template, eligible: Sequence[str],
              pool: Mapping[str, ImageFacts], pairs: _Pairs) -> dict[str, Any] | None:
    for attempt in range(_ATTEMPTS):
        image_id = rng.choice(eligible)
        facts = pool[image_id]
        values = _Filler(rng, facts, pairs, template.placeholders,
                         anchored=attempt < _ATTEMPTS // 2 and rng.random() < 0.5).fill()
        if values is not None:
            return _record(template, image_id, values)
    return None


def _record(template: Template, image_id: str, values: dict[str, str]) -> dict[str, Any]:
    arguments: dict[str, dict[str, str]] = {kind: {} for kind in _ARGUMENT_KINDS}
    for name, value in sorted(values.items()):  # "x" < "x_1" < "x_2": keys in order
        kind, _, number = name.partition("_")
        arguments[kind][str(int(number or 1) - 1)] = value
    question = _PLACEHOLDER.sub(lambda m: _render(m.group(1), values[m.group(1)]), template.text)
    return {"image_id": image_id, "question": question, "content_type": template.content_type,
            "semantic_type": template.semantic_type, "template": template.text,
            "template_program": template.program, "template_arguments": arguments}


def _render(name: str, value: str) -> str:
    kind = name.partition("_")[0]
    if kind == "category":
        return CATEGORY_WORDS[value]
    return _GENDER_WORDS[value] if kind == "gender" else value


class _Filler:
    """Fills one template's placeholders for one image, or fails (returns None)."""

    def __init__(self, rng: random.Random, facts: ImageFacts, pairs: _Pairs,
                 placeholders: Sequence[str], anchored: bool) -> None:
        self.rng, self.facts, self.pairs = rng, facts, pairs
        self.slots = {kind: [p for p in placeholders if p.partition("_")[0] == kind]
                      for kind in _ARGUMENT_KINDS}
        self.values: dict[str, str] = {}
        findings = sorted(facts.findings)
        crowded = [f for f in findings if len(facts.at_object(f[0])) > 1]
        if crowded and rng.random() < 0.5:  # room for a second finding at the same object
            findings = crowded
        if anchored and findings:
            obj, attribute, category = rng.choice(findings)
            for kind, value in (("object", obj), ("attribute", attribute),
                                ("category", category)):
                if self.slots[kind]:
                    self.values[self.slots[kind][0]] = value

    def fill(self) -> dict[str, str] | None:
        # Two objects must share their attribute or category: choose those first.
        kinds = (("category", "attribute", "object") if len(self.slots["object"]) > 1
                 else ("object", "category", "attribute"))
        for kind in (*kinds, "viewpos", "gender"):
            for slot in self.slots[kind]:
                if slot not in self.values:
                    value = self._choose(kind)
                    if value is None:
                        return None
                    self.values[slot] = value
        return self.values

    def assigned(self, kind: str) -> list[str]:
        return [self.values[s] for s in self.slots[kind] if s in self.values]

    def _choose(self, kind: str) -> str | None:
        candidates = sorted(self._candidates(kind) - set(self.assigned(kind)))
        if not candidates:
            return None
        seen = [c for c in candidates if c in self._observed(kind)]
        return self.rng.choice(seen if seen and self.rng.random() < 0.6 else candidates)

    def _observed(self, kind: str) -> set[str]:
        if kind == "viewpos":
            return {self.facts.viewpos} if self.facts.viewpos else set()
        if kind == "gender":
            return {self.facts.gender} if self.facts.gender else set()
        # Prefer findings that agree with the values chosen so far, so that "both"
        # and "common" questions can come out yes or non-empty too.
        kinds = ("object", "attribute", "category")
        chosen = [(k, set(self.assigned(k))) for k in kinds if k != kind and self.assigned(k)]
        agreeing = [f for f in self.facts.findings
                    if all(f[kinds.index(k)] in values for k, values in chosen)]
        return {f[kinds.index(kind)] for f in agreeing or self.facts.findings}

    def _candidates(self, kind: str) -> set[str]:
        if kind == "viewpos":
            return {"AP", "PA"}
        if kind == "gender":
            return set(_GENDER_WORDS)
        return {"object": self._objects, "attribute": self._attributes,
                "category": self._categories}[kind]()

    def _objects(self) -> set[str]:
        result = set(VQA_OBJECTS)
        for attribute in self.assigned("attribute"):
            result &= self.pairs.objects_of[attribute]
        if not self.slots["attribute"]:
            for category in self.assigned("category"):
                result = {o for o in result if category in self.pairs.categories_at(o)}
        return result

    def _attributes(self) -> set[str]:
        result = set(VQA_ATTRIBUTES)
        for obj in self.assigned("object"):
            result &= self.pairs.attributes_at[obj]
        for category in self.assigned("category"):
            result = {a for a in result if category_of(a) == category}
        return result

    def _categories(self) -> set[str]:
        result = set(VQA_CATEGORIES)
        if self.slots["attribute"]:
            # The category names the attributes still to choose: it needs enough of them.
            return {c for c in result if sum(category_of(a) == c for a in self._attributes())
                    >= len(self.slots["attribute"])}
        for obj in self.assigned("object"):
            result &= self.pairs.categories_at(obj)
        return result
