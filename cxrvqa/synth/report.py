"""Synthetic radiology reports: numbered sentences tagging regions with ``category|yes/no|label``.

A report is what Chest ImaGenome's NLP made of a study's text: numbered
sentences, each naming regions and, per region, affirmed or negated labels. The
generator deliberately writes every case the build's label rules must handle:
later sentences that contradict earlier ones, a label both affirmed and negated in
one sentence, children with parents (attributes and objects) in the same
sentence, impossible and removed pairs, ``unknown`` regions, ``nlp``-only phrases.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from cxrvqa.synth.ontology import (
    ALL_CHILDREN,
    IMPOSSIBLE_PAIRS,
    POSSIBLE_ATTRIBUTE_OF,
    QUESTION_PAIRS,
)
from cxrvqa.vocab import REMOVED_ATTRIBUTES, VQA_ATTRIBUTES, VQA_OBJECTS, category_of

__all__ = ["Mention", "Sentence", "WALK_TRAPS", "study_report"]

# Possible only if the ontology walk were a full closure; the build's ordered walk
# leaves them out, so rows naming them must be dropped.
WALK_TRAPS: tuple[tuple[str, str], ...] = (
    ("left lung", "costophrenic angle blunting"),
    ("mediastinum", "tracheostomy tube"),
    ("mediastinum", "goiter"),
)
_REMOVED_PAIRS: tuple[tuple[str, str], ...] = tuple(
    (obj, attribute) for attribute in sorted(REMOVED_ATTRIBUTES)
    for obj in POSSIBLE_ATTRIBUTE_OF[attribute]) + (
    ("left arm", "picc"), ("right arm", "bone lesion"))
_ATTRIBUTE_FAMILIES: tuple[tuple[str, str], ...] = tuple(
    (parent, child) for parent, children in ALL_CHILDREN.items() if parent in VQA_ATTRIBUTES
    for child in children if child in VQA_ATTRIBUTES)
_OBJECT_FAMILIES: tuple[tuple[str, str], ...] = tuple(
    (parent, child) for parent, children in ALL_CHILDREN.items() if parent in VQA_OBJECTS
    for child in children if child in VQA_OBJECTS)
_NORMAL_PAIRS: tuple[tuple[str, str], ...] = (
    ("left lung", "consolidation"), ("right lung", "consolidation"),
    ("left costophrenic angle", "pleural effusion"),
    ("right costophrenic angle", "pleural effusion"),
    ("left lung", "pneumothorax"), ("right lung", "pneumothorax"),
    ("cardiac silhouette", "enlarged cardiac silhouette"), ("mediastinum", "mediastinal widening"),
)
_ATTRIBUTES_AT: dict[str, tuple[str, ...]] = {
    obj: tuple(a for o, a in QUESTION_PAIRS if o == obj) for obj in VQA_OBJECTS}
_CLEAR_REGIONS = ("left lung", "right lung", "cardiac silhouette", "mediastinum", "spine")


@dataclass(frozen=True, slots=True)
class Mention:
    """One region of a sentence and the tags the sentence gives it."""

    bbox: str
    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Sentence:
    """A numbered report sentence (its number is the row_id's last token)."""

    index: int
    text: str
    mentions: tuple[Mention, ...]


def _tag(attribute: str, affirmed: bool) -> str:
    return f"{category_of(attribute)}|{'yes' if affirmed else 'no'}|{attribute}"


def _nlp(affirmed: bool) -> str:
    return "nlp|yes|abnormal" if affirmed else "nlp|yes|normal"


class _Report:
    """Collects clauses (text + region tags) and numbers them as sentences."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.clauses: list[tuple[str, dict[str, list[str]]]] = []
        self.impression: list[tuple[str, dict[str, list[str]]]] = []

    def add(self, text: str, tags: dict[str, list[str]], *, late: bool = False) -> None:
        if self.rng.random() < 0.8:  # most phrases carry an nlp tag, some none
            affirmed = any("|yes|" in tag for values in tags.values() for tag in values)
            for values in tags.values():
                values.append(_nlp(affirmed))
        (self.impression if late else self.clauses).append((text, tags))

    def finding(self, obj: str, attribute: str, affirmed: bool, *, late: bool = False) -> None:
        text = f"{attribute} in the {obj}." if affirmed else f"no {attribute} in the {obj}."
        self.add(text[0].upper() + text[1:], {obj: [_tag(attribute, affirmed)]}, late=late)

    def sentences(self) -> list[Sentence]:
        rng, index, result = self.rng, self.rng.randint(0, 3), []
        clauses = self.clauses + self.impression
        for position, (text, tags) in enumerate(clauses):
            prefix = ("FINDINGS: " if position == 0 else
                      "IMPRESSION:\n " if position == len(self.clauses) else "")
            mentions = tuple(Mention(bbox, tuple(values)) for bbox, values in tags.items())
            result.append(Sentence(index, prefix + text, mentions))
            index += rng.choice((1, 1, 1, 2))
        return result


def study_report(study_id: int, kind: str, seed: int) -> list[Sentence]:
    """The sentences of a study's report; ``kind`` is abnormal, normal or nolabels."""
    report = _Report(random.Random(f"cxrvqa-synth/report/{seed}/{study_id}"))
    {"abnormal": _abnormal, "normal": _normal, "nolabels": _no_labels}[kind](report)
    return report.sentences()


def _pick(rng: random.Random, pairs: Sequence[tuple[str, str]]) -> tuple[str, str]:
    return pairs[rng.randrange(len(pairs))]


def _abnormal(report: _Report) -> None:
    rng = report.rng
    for _ in range(rng.randint(1, 3)):
        obj, attribute = _pick(rng, QUESTION_PAIRS)
        report.finding(obj, attribute, True)
    for _ in range(rng.randint(1, 3)):
        obj, attribute = _pick(rng, QUESTION_PAIRS)
        report.finding(obj, attribute, False)
    for chance, clause in _EXTRAS:
        if rng.random() < chance:
            clause(report)


def _normal(report: _Report) -> None:
    rng = report.rng
    for obj, attribute in rng.sample(_NORMAL_PAIRS, rng.randint(2, 4)):
        report.finding(obj, attribute, False)
    _clear(report)
    if rng.random() < 0.15:  # a positive the build drops leaves the study normal
        rng.choice((_impossible, _removed, _unknown, _trap))(report)


def _no_labels(report: _Report) -> None:
    """Only tags the build drops: the image is in the tables but has no labels."""
    _clear(report)
    _unknown(report)
    _removed(report)


def _clear(report: _Report) -> None:
    region = report.rng.choice(_CLEAR_REGIONS)
    report.clauses.append((f"The {region} is unremarkable.", {region: ["nlp|yes|normal"]}))


def _contradiction(report: _Report) -> None:
    """A later (impression) sentence flips an earlier one for the same region and label."""
    obj, attribute = _pick(report.rng, QUESTION_PAIRS)
    affirmed = report.rng.random() < 0.5
    report.finding(obj, attribute, affirmed)
    report.finding(obj, attribute, not affirmed, late=True)


def _same_sentence_tie(report: _Report) -> None:
    """One sentence affirms and negates a label at one region: the later tag wins."""
    obj, attribute = _pick(report.rng, QUESTION_PAIRS)
    first = report.rng.random() < 0.5
    tags = [_tag(attribute, first), _tag(attribute, not first)]
    report.add(f"Possible {attribute} in the {obj}, not excluded.", {obj: tags})


def _attribute_family(report: _Report) -> None:
    """A child attribute and its parent with opposite polarity in one sentence."""
    parent, child = _pick(report.rng, _ATTRIBUTE_FAMILIES)
    obj = report.rng.choice(POSSIBLE_ATTRIBUTE_OF[child])
    affirmed = report.rng.random() < 0.7
    tags = [_tag(parent, not affirmed), _tag(child, affirmed)]
    report.rng.shuffle(tags)
    report.add(f"{child} rather than other {parent} in the {obj}.", {obj: tags})


def _sibling_attributes(report: _Report) -> None:
    """Two children of one parent, one affirmed and one negated, in one sentence."""
    rng = report.rng
    parent, first = _pick(rng, _ATTRIBUTE_FAMILIES)
    siblings = [c for p, c in _ATTRIBUTE_FAMILIES if p == parent and c != first]
    objects = [o for o in POSSIBLE_ATTRIBUTE_OF[first]
               if siblings and o in POSSIBLE_ATTRIBUTE_OF[siblings[0]]]
    if objects:
        obj, affirmed = rng.choice(objects), rng.random() < 0.5
        report.add(f"{first} but no {siblings[0]} in the {obj}.",
                   {obj: [_tag(first, affirmed), _tag(siblings[0], not affirmed)]})


def _object_family(report: _Report) -> None:
    """A label at a child region and the opposite at its parent region, same sentence."""
    rng = report.rng
    parent, child = _pick(rng, _OBJECT_FAMILIES)
    attributes = _ATTRIBUTES_AT[child]
    if attributes:
        attribute, affirmed = rng.choice(attributes), rng.random() < 0.7
        report.add(f"{attribute} at the {child}, the rest of the {parent} is clear.",
                   {child: [_tag(attribute, affirmed)], parent: [_tag(attribute, not affirmed)]})


def _sibling_objects(report: _Report) -> None:
    """One label affirmed at a region and negated at a sibling region, same sentence."""
    rng = report.rng
    parent, first = _pick(rng, _OBJECT_FAMILIES)
    siblings = [c for p, c in _OBJECT_FAMILIES if p == parent and c != first]
    second = rng.choice(siblings) if siblings else first
    attributes = [a for a in _ATTRIBUTES_AT[first] if a in _ATTRIBUTES_AT[second]]
    if second != first and attributes:
        attribute, affirmed = rng.choice(attributes), rng.random() < 0.5
        report.add(f"{attribute} in the {first}, none in the {second}.",
                   {first: [_tag(attribute, affirmed)], second: [_tag(attribute, not affirmed)]})


def _bilateral(report: _Report) -> None:
    obj, attribute = _pick(report.rng, QUESTION_PAIRS)
    other = obj.replace("left", "\0").replace("right", "left").replace("\0", "right")
    tags = {obj: [_tag(attribute, True)]}
    if other != obj and other in POSSIBLE_ATTRIBUTE_OF[attribute]:
        tags[other] = [_tag(attribute, True)]
    report.add(f"Bilateral {attribute}.", tags)


def _impossible(report: _Report) -> None:
    obj, attribute = _pick(report.rng, IMPOSSIBLE_PAIRS)
    report.finding(obj, attribute, True)


def _removed(report: _Report) -> None:
    obj, attribute = _pick(report.rng, _REMOVED_PAIRS)
    report.finding(obj, attribute, True)


def _trap(report: _Report) -> None:
    obj, attribute = _pick(report.rng, WALK_TRAPS)
    report.finding(obj, attribute, True)


def _unknown(report: _Report) -> None:
    attribute = report.rng.choice(VQA_ATTRIBUTES)
    report.add(f"{attribute}, location unspecified.", {"unknown": [_tag(attribute, True)]})


def _technical(report: _Report) -> None:
    affirmed = report.rng.random() < 0.6
    report.add("Low lung volumes." if affirmed else "Lung volumes are normal.",
               {"left lung": [_tag("low lung volumes", affirmed)],
                "right lung": [_tag("low lung volumes", affirmed)]})


_EXTRAS = (
    (0.35, _contradiction), (0.15, _same_sentence_tie), (0.3, _attribute_family),
    (0.2, _sibling_attributes), (0.3, _object_family), (0.2, _sibling_objects),
    (0.2, _bilateral), (0.1, _impossible), (0.12, _removed), (0.05, _trap), (0.12, _unknown),
    (0.15, _technical),
)
