"""Synthetic radiology reports: numbered sentences tagging regions with ``category|yes/no|label``.

A report is what Chest ImaGenome's NLP made of a study's text: numbered
sentences, each naming regions and, per region, affirmed or negated labels. The
generator deliberately writes every case the build's label rules must handle:
later sentences that contradict earlier ones, a label both affirmed and negated in
one sentence, children with parents (attributes and objects) in the same
sentence, impossible and removed pairs, ``unknown`` regions, ``nlp``-only phrases.

Reports have the real data's density (about 40-50 label rows per image): early
sentences survey many regions (``nlp``-only) and negate findings on both sides,
later sentences restate plain findings (comparing them with the previous exam
when there is one). The added sentences never change what the build keeps:
negations come before every finding, restatements repeat a finding's final
polarity and only for regions and labels no rule-exercising sentence touches.
Phrase texts come from precomputed templates, one random draw per sentence.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

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
    """A numbered report sentence (its number is the row_id's last token) and its cue tags."""

    index: int
    text: str
    mentions: tuple[Mention, ...]
    cues: tuple[str, ...] = ()  # e.g. "comparison|yes|no change", "severity|yes|mild"
    # Added for density (survey, two-sided negation, restatement): nothing a rule depends on.
    added: bool = False


def _tag(attribute: str, affirmed: bool) -> str:
    return f"{category_of(attribute)}|{'yes' if affirmed else 'no'}|{attribute}"


def _nlp(affirmed: bool) -> str:
    return "nlp|yes|abnormal" if affirmed else "nlp|yes|normal"


# --- phrase templates (precomputed; one draw picks a variant) ---------------------------------

# (format, cues) per variant; {a} is the attribute, {o} the region, {A} the capitalised attribute.
_AFFIRMED_TEXTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("{A} is seen in the {o}, new since the outside study and not previously described.",
     ("temporal|yes|acute",)),
    ("There is mild {a} in the {o}, which may in part reflect the patient's positioning and low "
     "inspiratory effort.", ("severity|yes|mild",)),
    ("Moderate {a} is noted in the {o}, likely chronic and without a clear acute component on this "
     "examination.", ("severity|yes|moderate", "temporal|yes|chronic")),
    ("New {a} in the {o} is concerning in the appropriate clinical setting and could represent an "
     "acute process.", ("temporal|yes|acute",)),
    ("Findings in the {o} are suggestive of {a}; clinical correlation and follow-up radiographs "
     "are recommended.", ("severity|yes|hedge",)),
    ("Severe {a} is present in the {o}, more pronounced peripherally than centrally, and "
     "extends toward the adjacent regions.",
     ("severity|yes|severe",)),
    ("Subtle {a} in the {o} is better appreciated on the frontal view than on the lateral view.",
     ("severity|yes|mild",)),
    ("{A} in the {o}.", ()),
)
_NEGATED_TEXTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("No {a} in the {o} is seen, and the remainder of the examination is otherwise within "
     "normal limits.", ()),
    ("There is no evidence of {a} in the {o} on this single portable frontal view of the chest.",
     ()),
    ("No convincing {a} is identified in the {o}, although assessment is limited by overlying "
     "soft tissue and technique.", ("severity|yes|hedge",)),
    ("The {o} shows no {a}, and no other acute cardiopulmonary abnormality is identified.", ()),
    ("There is no {a} in the {o}, and no other focal finding is identified to account for the "
     "patient's symptoms.", ()),
    ("Within the {o} there is no radiographic evidence of {a} or other focal abnormality.", ()),
    ("No acute {a} is seen in the {o}; chronic changes are better assessed on a dedicated "
     "study.", ("temporal|yes|acute",)),
    ("No {a} in the {o} is appreciated on the current examination.", ()),
)
_VARIANTS = len(_AFFIRMED_TEXTS)
_COMPARISONS = ("no change", "improved", "worsened")
_RESTATED_WITH_PRIOR = {
    True: ("{A} in the {o} is unchanged compared to the prior radiograph, without new focal findings.",
           "{A} in the {o} has slightly improved since the prior examination, though it persists.",
           "{A} in the {o} has worsened compared to the prior study and should be followed "
           "closely."),
    False: ("Again, no {a} is seen in the {o}, unchanged from the prior examination.",
            "Previously described {a} in the {o} has resolved and is no longer seen.",
            "No {a} in the {o} despite the interval worsening of the patient's symptoms."),
}
_RESTATED = {
    True: "As noted above, {a} in the {o} is again seen on this examination, as described.",
    False: "Again, no {a} is seen in the {o} on this examination.",
}
# Sentences naming many regions with only an nlp tag: (text, with-prior text, regions).
_SURVEYS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("The lungs are well expanded and clear bilaterally, from the apices to the bases, without "
     "focal airspace disease, and the pulmonary vasculature is normal in caliber and distribution.",
     "The lungs remain well expanded and clear bilaterally from the apices to the bases, "
     "unchanged from the prior study, and the pulmonary vasculature remains normal in caliber.",
     ("right lung", "left lung", "right upper lung zone", "left upper lung zone",
      "right mid lung zone", "left mid lung zone", "right lower lung zone",
      "left lower lung zone")),
    ("The cardiomediastinal and hilar contours are within normal limits given the AP technique "
     "and the patient's positioning, and the heart is not enlarged on this projection.",
     "Heart size, mediastinal and hilar contours are unchanged compared to the prior radiograph, "
     "allowing for differences in technique, patient positioning and inspiratory effort.",
     ("cardiac silhouette", "mediastinum", "upper mediastinum", "right hilar structures",
      "left hilar structures")),
    ("The visualized osseous structures, including both clavicles and the thoracic spine, "
     "are intact, with mild degenerative change only and no suspicious lytic or sclerotic lesion.",
     "The visualized osseous structures are unchanged, with no new fracture since the prior study "
     "and no suspicious lytic or sclerotic lesion of the clavicles or the thoracic spine.",
     ("spine", "right clavicle", "left clavicle")),
    ("Both hemidiaphragms are well defined and the visualized portion of the upper abdomen is "
     "unremarkable, without free air beneath the diaphragm or dilated loops of bowel.",
     "The hemidiaphragms and the visualized portion of the upper abdomen are unchanged from the "
     "prior examination, without free air beneath the diaphragm.",
     ("right hemidiaphragm", "left hemidiaphragm", "abdomen")),
    ("The trachea is midline and the carina is well visualized; the aortic arch is normal in "
     "contour and caliber, without calcification or widening of the aortic knob.",
     "The trachea remains midline and the aortic contour is stable compared to the prior study, "
     "without new widening of the aortic knob or deviation of the airway.",
     ("trachea", "carina", "aortic arch")),
    ("The chest wall and the overlying soft tissues are unremarkable bilaterally, without "
     "subcutaneous air, soft tissue swelling or a radiopaque foreign body.",
     "The chest wall and soft tissues are unchanged from the prior examination, without new "
     "subcutaneous air or soft tissue swelling.",
     ("right chest wall", "left chest wall")),
    ("The lung apices are clear and both costophrenic angles are sharp, without blunting to "
     "suggest fluid and without an apical pleural line to suggest a pneumothorax.",
     "The lung apices and the costophrenic angles remain clear and sharp, as on the prior "
     "radiograph, without a new apical pleural line or blunting.",
     ("right apical zone", "left apical zone", "right costophrenic angle",
      "left costophrenic angle")),
)
# Findings a question can ask about on both sides: (attribute, left region, right region).
_BILATERAL: tuple[tuple[str, str, str], ...] = tuple(
    (attribute, obj, "right " + obj[5:]) for obj, attribute in QUESTION_PAIRS
    if obj.startswith("left ") and ("right " + obj[5:], attribute) in set(QUESTION_PAIRS))
_NEGATION_TEXTS = (
    "No {a} or {b} is seen on either side on this frontal view of the chest, and the "
    "remainder of the lungs is clear.",
    "There is no {a} and no {b} on either side, and no other acute cardiopulmonary abnormality "
    "is identified.",
    "No radiographic evidence of {a} or {b} bilaterally on this semi-upright portable "
    "examination, although subtle findings could be obscured by overlying lines.",
    "Neither {a} nor {b} is seen in either hemithorax, allowing for the limited technique and "
    "patient rotation.",
)
_CAPITALS = {text: text[0].upper() + text[1:] for text in VQA_ATTRIBUTES}


def _finding_text(variant: int, obj: str, attribute: str,
                  affirmed: bool) -> tuple[str, tuple[str, ...]]:
    form, cues = (_AFFIRMED_TEXTS if affirmed else _NEGATED_TEXTS)[variant]
    if affirmed and "opacity" in attribute:
        cues = (*cues, "texture|yes|opacity")
    capital = _CAPITALS.get(attribute) or attribute[0].upper() + attribute[1:]
    return form.format(a=attribute, o=obj, A=capital), cues


def _restated_text(variant: int, obj: str, attribute: str, affirmed: bool,
                   previous: bool) -> tuple[str, tuple[str, ...]]:
    capital = _CAPITALS.get(attribute) or attribute[0].upper() + attribute[1:]
    if previous:
        which = variant % 3
        text = _RESTATED_WITH_PRIOR[affirmed][which]
        return (text.format(a=attribute, o=obj, A=capital),
                (f"comparison|yes|{_COMPARISONS[which]}",))
    return _RESTATED[affirmed].format(a=attribute, o=obj, A=capital), ()


class _Clause(NamedTuple):
    text: str
    tags: dict[str, list[str]]
    cues: tuple[str, ...]
    plain: bool  # a single finding no rule-exercising sentence wrote


class _Report:
    """Collects clauses (text + region tags) and numbers them as sentences."""

    def __init__(self, rng: random.Random, previous: bool) -> None:
        self.rng = rng
        self.previous = previous  # the patient has an earlier study to compare with
        self.early: list[_Clause] = []
        self.clauses: list[_Clause] = []
        self.impression: list[_Clause] = []

    def add(self, text: str, tags: dict[str, list[str]], *, late: bool = False,
            cues: tuple[str, ...] = (), plain: bool = False) -> None:
        if self.rng.random() < 0.8:  # most phrases carry an nlp tag, some none
            affirmed = any("|yes|" in tag for values in tags.values() for tag in values)
            for values in tags.values():
                values.append(_nlp(affirmed))
        (self.impression if late else self.clauses).append(_Clause(text, tags, cues, plain))

    def finding(self, obj: str, attribute: str, affirmed: bool, *, late: bool = False,
                plain: bool = False) -> None:
        text, cues = _finding_text(self.rng.randrange(_VARIANTS), obj, attribute, affirmed)
        self.add(text, {obj: [_tag(attribute, affirmed)]}, late=late, cues=cues, plain=plain)

    def restatements(self) -> list[_Clause]:
        """Later sentences repeating plain findings whose region and label nothing else names."""
        seen: dict[tuple[str, str], int] = {}
        touched: set[str] = set()
        for clause in self.clauses + self.impression:
            for region, tags in clause.tags.items():
                for tag in tags:
                    label = tag.rsplit("|", 1)[-1]
                    seen[region, label] = seen.get((region, label), 0) + 1
                    if not clause.plain and not tag.startswith("nlp|"):
                        touched.update((region, label))
        result = []
        for clause in self.clauses:
            if not clause.plain:
                continue
            (region, tags), = clause.tags.items()
            category, polarity, label = tags[0].split("|")
            if seen[region, label] == 1 and region not in touched and label not in touched:
                affirmed = polarity == "yes"
                text, cues = _restated_text(self.rng.randrange(_VARIANTS), region, label,
                                            affirmed, self.previous)
                result.append(_Clause(text, {region: [tags[0], _nlp(affirmed)]}, cues, False))
        return result[:3]

    def sentences(self) -> list[Sentence]:
        rng, index, result = self.rng, self.rng.randint(0, 3), []
        rng.shuffle(self.early)
        body = self.early + self.clauses
        restated = self.restatements()
        clauses = body + restated + self.impression
        added = range(len(self.early)), range(len(body), len(body) + len(restated))
        for position, (text, tags, cues, _) in enumerate(clauses):
            prefix = ("FINDINGS: " if position == 0 else
                      "IMPRESSION:\n " if position == len(body) else "")
            mentions = tuple(Mention(bbox, tuple(values)) for bbox, values in tags.items())
            result.append(Sentence(index, prefix + text, mentions, cues,
                                   position in added[0] or position in added[1]))
            index += rng.choice((1, 1, 1, 2))
        return result


def study_report(study_id: int, kind: str, seed: int, previous: bool = False) -> list[Sentence]:
    """The sentences of a study's report; ``kind`` is abnormal, normal or nolabels.

    ``previous``: the patient has an earlier study, so some sentences compare with it.
    """
    report = _Report(random.Random(f"cxrvqa-synth/report/{seed}/{study_id}"), previous)
    {"abnormal": _abnormal, "normal": _normal, "nolabels": _no_labels}[kind](report)
    _survey(report)
    if kind != "nolabels":
        _negations(report)
    return report.sentences()


def _pick(rng: random.Random, pairs: Sequence[tuple[str, str]]) -> tuple[str, str]:
    return pairs[rng.randrange(len(pairs))]


def _abnormal(report: _Report) -> None:
    rng = report.rng
    for _ in range(rng.randint(1, 3)):
        obj, attribute = _pick(rng, QUESTION_PAIRS)
        report.finding(obj, attribute, True, plain=True)
    for _ in range(rng.randint(1, 3)):
        obj, attribute = _pick(rng, QUESTION_PAIRS)
        report.finding(obj, attribute, False, plain=True)
    for chance, clause in _EXTRAS:
        if rng.random() < chance:
            clause(report)


def _normal(report: _Report) -> None:
    rng = report.rng
    for obj, attribute in rng.sample(_NORMAL_PAIRS, rng.randint(2, 4)):
        report.finding(obj, attribute, False, plain=True)
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
    report.clauses.append(_Clause(f"The {region} is unremarkable.", {region: ["nlp|yes|normal"]},
                                  (), False))


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
    report.add(f"Possible {attribute} in the {obj}, not excluded.", {obj: tags},
               cues=("severity|yes|hedge",))


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


def _survey(report: _Report) -> None:
    """Two to four early sentences naming many regions, each with ``nlp|yes|normal`` only."""
    rng = report.rng
    picked = rng.sample(range(len(_SURVEYS)), rng.randint(2, 4))
    for k in picked:
        text, with_prior, regions = _SURVEYS[k]
        compare = report.previous  # a study with a prior compares with it
        report.early.append(_Clause(with_prior if compare else text,
                                    {region: ["nlp|yes|normal"] for region in regions},
                                    ("comparison|yes|no change",) if compare else (), False))


def _negations(report: _Report) -> None:
    """Two to four early sentences negating two findings on both sides."""
    rng = report.rng
    for _ in range(rng.randint(2, 4)):
        first, second = rng.sample(range(len(_BILATERAL)), 2)
        a, left_a, right_a = _BILATERAL[first]
        b, left_b, right_b = _BILATERAL[second]
        tags: dict[str, list[str]] = {}
        for region, label in ((left_a, a), (right_a, a), (left_b, b), (right_b, b)):
            tags.setdefault(region, []).append(_tag(label, False))
        for values in tags.values():
            values.append("nlp|yes|normal")
        text = _NEGATION_TEXTS[(first + second) % len(_NEGATION_TEXTS)].format(a=a, b=b)
        cues: tuple[str, ...] = ()
        if report.previous and rng.random() < 0.5:
            text, cues = text[:-1] + ", unchanged from the prior study.", (
                "comparison|yes|no change",)
        report.early.append(_Clause(text, tags, cues, False))
