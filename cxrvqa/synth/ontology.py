"""The synthetic Chest ImaGenome semantics: vocabulary files, hierarchies and possible pairs.

The real ``label_to_UMLS_mapping.json`` is credentialed, so this module invents an
ontology with the same shape and the same traps: a mixed ``all_children`` map
(object and attribute parents, non-vocabulary keys such as ``lungs``, chains that
make the builder's order-dependent walks matter, a removed attribute that is the
child of a kept one) and a ``possible_attribute_of`` map that is *not* closed
under those hierarchies, so that the build's ontology edits have work to do.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from functools import cache

from cxrvqa.vocab import (
    ATTRIBUTES_BY_CATEGORY,
    REMOVED_ATTRIBUTES,
    REMOVED_OBJECTS,
    REPORT_OBJECTS,
    VQA_ATTRIBUTES,
    VQA_OBJECTS,
)

__all__ = [
    "ALL_CHILDREN",
    "IMPOSSIBLE_PAIRS",
    "POSSIBLE_ATTRIBUTE_OF",
    "QUESTION_PAIRS",
    "attribute_lines",
    "concept_id",
    "object_display_name",
    "ontology_json",
    "semantics_text",
]

_L_ZONES = ("left apical zone", "left upper lung zone", "left mid lung zone",
            "left lower lung zone")
_R_ZONES = ("right apical zone", "right upper lung zone", "right mid lung zone",
            "right lower lung zone")
_ZONES = _L_ZONES + _R_ZONES
_LUNGS = ("left lung", "right lung")
_CPA = ("left costophrenic angle", "right costophrenic angle")
_HEMI = ("left hemidiaphragm", "right hemidiaphragm")
_HILA = ("left hilar structures", "right hilar structures")
_WALLS = ("left chest wall", "right chest wall")
_CLAVICLES = ("left clavicle", "right clavicle")
_SHOULDERS = ("left shoulder", "right shoulder")
_BREASTS = ("left breast", "right breast")
_MEDIASTINUM = ("mediastinum", "upper mediastinum")
_VESSELS = ("svc", "cavoatrial junction", "right atrium")

# Key order matters to the build (parent->child maps follow it). "left lower lung
# zone" comes after "left lung", so the possible-pairs walk sees the zone as a
# child before the costophrenic angle can add it: the left side's pairs are then
# not closed under the hierarchy, which is what the published builder does.
ALL_CHILDREN: dict[str, list[str]] = {
    "lungs": [*_LUNGS, *_ZONES, *_CPA],
    "left lung": list(_L_ZONES),
    "right lung": [*_R_ZONES, "right costophrenic angle"],
    "left lower lung zone": ["left costophrenic angle"],
    "hilar structures": ["left hilar structures"],
    "mediastinum": ["upper mediastinum", "cardiac silhouette"],
    "upper mediastinum": ["trachea", "svc", "aortic arch"],
    "cardiac silhouette": ["right atrium", "cavoatrial junction"],
    "neck": ["trachea"],
    "chest wall": list(_WALLS),
    "abdomen": ["stomach", "bowel"],
    "lung opacity": ["airspace opacity", "consolidation", "infiltration", "atelectasis",
                     "linear/patchy atelectasis", "pulmonary edema/hazy opacity", "lung lesion",
                     "mass/nodule (not otherwise specified)", "opacity"],
    "atelectasis": ["linear/patchy atelectasis", "lobar/segmental collapse"],
    "lung lesion": ["mass/nodule (not otherwise specified)", "multiple masses/nodules",
                    "calcified nodule"],
    "fluid overload/heart failure": ["pulmonary edema/hazy opacity", "vascular congestion"],
    "vascular congestion": ["vascular redistribution"],
    "enlarged cardiac silhouette": ["pericardial effusion"],
    "pneumothorax": ["hydropneumothorax"],
    "pleural effusion": ["hydropneumothorax"],
    "interstitial lung disease": ["increased reticular markings/ild pattern", "bronchiectasis"],
    "copd/emphysema": ["hyperaeration", "cyst/bullae"],
    "mediastinal widening": ["superior mediastinal mass/enlargement"],
    "superior mediastinal mass/enlargement": ["goiter"],
    "artifact": ["skin fold"],
    "sternotomy wires": ["cabg grafts"],
    "pneumonia": [],
}

_PARENCHYMA = (*_ZONES, *_CPA)
_DIFFUSE = (*_ZONES, *_LUNGS, *_CPA, *_HILA)
_NODULAR = (*_ZONES, *_HILA, *_CPA)

_RAW_POSSIBLE: dict[str, tuple[str, ...]] = {
    "lung opacity": _PARENCHYMA,
    "airspace opacity": _PARENCHYMA,
    "consolidation": _PARENCHYMA,
    "infiltration": _PARENCHYMA,
    "atelectasis": _PARENCHYMA,
    "linear/patchy atelectasis": _PARENCHYMA,
    "lobar/segmental collapse": (*_PARENCHYMA, *_HILA),
    "pulmonary edema/hazy opacity": _DIFFUSE,
    "vascular congestion": (*_LUNGS, *_HILA),
    "vascular redistribution": (*_LUNGS, *_HILA),
    "increased reticular markings/ild pattern": _DIFFUSE,
    "pleural effusion": (*_CPA, "left lower lung zone", "right lower lung zone", *_LUNGS, *_HEMI),
    "costophrenic angle blunting": (*_CPA, *_HEMI),
    "pleural/parenchymal scarring": (*_PARENCHYMA, *_CPA),
    "bronchiectasis": _DIFFUSE,
    "enlarged cardiac silhouette": ("cardiac silhouette",),
    "mediastinal displacement": (*_MEDIASTINUM, "trachea"),
    "mediastinal widening": _MEDIASTINUM,
    "enlarged hilum": _HILA,
    "tortuous aorta": ("aortic arch",),
    "vascular calcification": ("aortic arch", "cardiac silhouette", *_MEDIASTINUM),
    "pneumomediastinum": _MEDIASTINUM,
    "pneumothorax": (*_DIFFUSE, *_HEMI),
    "hydropneumothorax": (*_LUNGS, *_CPA, "left lower lung zone", "right lower lung zone", *_HEMI),
    "lung lesion": _NODULAR,
    "mass/nodule (not otherwise specified)": (*_NODULAR, *_BREASTS),
    "multiple masses/nodules": _NODULAR,
    "calcified nodule": _NODULAR,
    "superior mediastinal mass/enlargement": ("upper mediastinum", "trachea"),
    "rib fracture": (*_WALLS, *_LUNGS, *_ZONES),
    "clavicle fracture": _CLAVICLES,
    "spinal fracture": ("spine",),
    "hyperaeration": _DIFFUSE,
    "cyst/bullae": _PARENCHYMA,
    "elevated hemidiaphragm": (*_HEMI, "left lower lung zone", "right lower lung zone"),
    "diaphragmatic eventration (benign)": _HEMI,
    "sub-diaphragmatic air": (*_HEMI, "abdomen"),
    "subcutaneous air": (*_WALLS, "neck", *_SHOULDERS, *_BREASTS),
    "hernia": (*_HEMI, "abdomen", "mediastinum", "left lower lung zone", "right lower lung zone"),
    "scoliosis": ("spine",),
    "spinal degenerative changes": ("spine",),
    "shoulder osteoarthritis": _SHOULDERS,
    "bone lesion": ("spine", *_CLAVICLES, *_SHOULDERS, *_WALLS, "left arm", "right arm"),
    "pneumonia": _PARENCHYMA,
    "fluid overload/heart failure": (*_LUNGS, "cardiac silhouette"),
    "copd/emphysema": _DIFFUSE,
    "granulomatous disease": (*_NODULAR, "mediastinum"),
    "interstitial lung disease": _DIFFUSE,
    "goiter": ("neck", "trachea"),
    "lung cancer": (*_NODULAR, "mediastinum"),
    "aspiration": _PARENCHYMA,
    "alveolar hemorrhage": _PARENCHYMA,
    "pericardial effusion": ("cardiac silhouette",),
    "low lung volumes": (*_LUNGS, *_ZONES),
    "rotated": (*_LUNGS, "mediastinum", "trachea", "spine", *_CLAVICLES),
    "artifact": ("abdomen", *_LUNGS, *_WALLS),
    "breast/nipple shadows": (*_BREASTS, "left lower lung zone", "right lower lung zone",
                              "left mid lung zone", "right mid lung zone"),
    "skin fold": (*_LUNGS, *_WALLS, *_ZONES),
    "chest tube": (*_LUNGS, *_CPA, *_ZONES),
    "mediastinal drain": _MEDIASTINUM,
    "pigtail catheter": (*_LUNGS, *_CPA),
    "endotracheal tube": ("trachea", "carina", "upper mediastinum"),
    "tracheostomy tube": ("trachea", "neck"),
    "picc": (*_VESSELS, *_WALLS, "left arm", "right arm"),
    "ij line": ("svc", "neck", "cavoatrial junction"),
    "chest port": ("svc", "right atrium", *_WALLS),
    "subclavian line": ("svc", *_CLAVICLES),
    "swan-ganz catheter": ("right atrium", "cardiac silhouette", "svc"),
    "intra-aortic balloon pump": ("aortic arch",),
    "enteric tube": ("abdomen", "mediastinum", "left hemidiaphragm", "left upper abdomen"),
    "sternotomy wires": ("mediastinum", "cardiac silhouette"),
    "cabg grafts": ("cardiac silhouette", "mediastinum"),
    "aortic graft/repair": ("aortic arch",),
    "prosthetic valve": ("cardiac silhouette",),
    "cardiac pacer and wires": ("cardiac silhouette", "right atrium", "svc", *_WALLS,
                                "left clavicle", "left upper lung zone"),
}

# File order is the attribute vocabulary's order; every non-nlp label has an entry.
POSSIBLE_ATTRIBUTE_OF: dict[str, list[str]] = {
    label: list(_RAW_POSSIBLE[label])
    for category, labels in ATTRIBUTES_BY_CATEGORY.items() if category != "nlp"
    for label in labels
}

# Pairs a question may name: possible before any ontology edit, so possible after.
QUESTION_PAIRS: tuple[tuple[str, str], ...] = tuple(
    (obj, attribute) for attribute in VQA_ATTRIBUTES for obj in POSSIBLE_ATTRIBUTE_OF[attribute]
    if obj in VQA_OBJECTS
)


@cache
def _upward_closure() -> frozenset[tuple[str, str]]:
    """Raw pairs closed under every parent edge: a superset of what the build makes possible."""
    parents: dict[str, set[str]] = {}
    for parent, children in ALL_CHILDREN.items():
        for child in children:
            parents.setdefault(child, set()).add(parent)
    for parent in ("lungs", "left lung", "right lung", "hilar structures"):
        for child in ("left hilar structures", "right hilar structures"):
            parents.setdefault(child, set()).add(parent)
    parents.setdefault("aortic arch", set()).add("mediastinum")
    parents.setdefault("svc", set()).add("mediastinum")
    pairs = {(obj, attr) for attr, objs in POSSIBLE_ATTRIBUTE_OF.items() for obj in objs}
    frontier = list(pairs)
    while frontier:
        obj, attr = frontier.pop()
        for new in [(p, attr) for p in parents.get(obj, ())] + [
                (obj, p) for p in parents.get(attr, ())]:
            if new not in pairs:
                pairs.add(new)
                frontier.append(new)
    return frozenset(pairs)


# Pairs no ontology edit can make possible: rows naming them are always dropped.
IMPOSSIBLE_PAIRS: tuple[tuple[str, str], ...] = tuple(
    pair for pair in ((obj, attribute) for attribute in VQA_ATTRIBUTES for obj in VQA_OBJECTS)
    if pair not in _upward_closure()
)

# Cue lines follow the VQA categories in the real file; builders must skip them.
_CUE_LINES = (
    "texture|yes|opacity", "texture|yes|alveolar", "texture|yes|interstitial",
    "texture|yes|calcified", "texture|yes|lucency", "temporal|yes|acute",
    "temporal|yes|chronic", "severity|yes|hedge", "severity|yes|mild",
    "severity|yes|moderate", "severity|yes|severe", "laterality|yes|left",
    "laterality|yes|right",
)


def attribute_lines() -> list[str]:
    """The ``category|yes|label`` lines of ``attribute_relations_v1.txt``, in file order."""
    return [f"{category}|yes|{label}" for category, labels in ATTRIBUTES_BY_CATEGORY.items()
            for label in labels] + list(_CUE_LINES)


def semantics_text(lines: Iterable[str]) -> str:
    """Comma-terminated lines joined by newlines, the last one bare (the real files' format)."""
    items = list(lines)
    return ",\n".join(items[:-1]) + ",\n" + items[-1] if len(items) > 1 else "".join(items)


@cache
def concept_id(label: str) -> str:
    """A stable made-up UMLS-style concept id (``CL`` for custom, ``C`` otherwise)."""
    number = zlib.crc32(label.encode("utf-8"))
    return f"CL{number % 10**6:06d}" if number % 7 == 0 else f"C{number % 10**7:07d}"


@cache
def object_display_name(bbox: str) -> str:
    """The UMLS preferred name(s) of a region; a few carry two names joined by ``;;``."""
    name = bbox[0].upper() + bbox[1:]
    return f"{name};;Heart shadow" if bbox == "cardiac silhouette" else name


def ontology_json() -> str:
    """The text of ``label_to_UMLS_mapping.json``, with unrelated keys loaders must ignore."""
    labels = [label for labels in ATTRIBUTES_BY_CATEGORY.values() for label in labels]
    document = {
        "label_to_UMLS": {label: concept_id(label) for label in [*REPORT_OBJECTS, *labels]},
        "all_children": ALL_CHILDREN,
        "possible_attribute_of": POSSIBLE_ATTRIBUTE_OF,
        "removed_labels": sorted(REMOVED_OBJECTS | REMOVED_ATTRIBUTES),
        "version": "1.0.0",
    }
    return json.dumps(document, indent=1)
