"""The default MIMIC-CXR-VQA vocabulary: objects, attributes, categories and removals.

These are the names as they appear in the Chest ImaGenome semantics files
(see ``shared/spec/source-formats.md`` §3.5). The build reads the real files;
these constants serve the checker's default vocabulary, the synthetic tree
generator and tests.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "ABNORMAL_CATEGORIES",
    "ATTRIBUTES_BY_CATEGORY",
    "BBOX_NAMES",
    "CATEGORIES",
    "GOLD_BBOX_NAMES",
    "REMOVED_ATTRIBUTES",
    "REMOVED_OBJECTS",
    "REPORT_OBJECTS",
    "SPLITS",
    "VQA_ATTRIBUTES",
    "VQA_CATEGORIES",
    "VQA_OBJECTS",
    "ARGUMENT_KINDS",
    "FIXED_ANSWERS",
    "answer_vocabulary",
    "CATEGORY_WORDS",
    "GENDER_WORDS",
    "category_of",
]

# The 36 regions the bounding-box pipeline detects, in MedVQA's order.
BBOX_NAMES: tuple[str, ...] = (
    "right lung", "right upper lung zone", "right mid lung zone", "right lower lung zone",
    "right hilar structures", "right apical zone", "right costophrenic angle",
    "right cardiophrenic angle", "right hemidiaphragm", "left lung", "left upper lung zone",
    "left mid lung zone", "left lower lung zone", "left hilar structures", "left apical zone",
    "left costophrenic angle", "left hemidiaphragm", "trachea", "spine", "right clavicle",
    "left clavicle", "aortic arch", "mediastinum", "upper mediastinum", "svc",
    "cardiac silhouette", "left cardiac silhouette", "right cardiac silhouette",
    "cavoatrial junction", "right atrium", "descending aorta", "carina",
    "left upper abdomen", "right upper abdomen", "abdomen", "left cardiophrenic angle",
)

# The 26 regions the gold box file annotates.
GOLD_BBOX_NAMES: tuple[str, ...] = (
    "aortic arch", "cardiac silhouette", "carina", "cavoatrial junction",
    "left apical zone", "right apical zone", "left clavicle", "right clavicle",
    "left costophrenic angle", "right costophrenic angle", "left hemidiaphragm",
    "right hemidiaphragm", "left hilar structures", "right hilar structures",
    "left upper lung zone", "right upper lung zone", "left mid lung zone",
    "right mid lung zone", "left lower lung zone", "right lower lung zone",
    "left lung", "right lung", "right atrium", "svc", "trachea", "upper mediastinum",
)

# The 38 objects named in reports: 29 groundable regions and 9 without boxes.
REPORT_OBJECTS: tuple[str, ...] = (
    "right lung", "right upper lung zone", "right mid lung zone", "right lower lung zone",
    "right hilar structures", "right apical zone", "right costophrenic angle",
    "right hemidiaphragm", "left lung", "left upper lung zone", "left mid lung zone",
    "left lower lung zone", "left hilar structures", "left apical zone",
    "left costophrenic angle", "left hemidiaphragm", "trachea", "spine", "right clavicle",
    "left clavicle", "aortic arch", "mediastinum", "upper mediastinum", "svc",
    "cardiac silhouette", "cavoatrial junction", "right atrium", "carina", "abdomen",
    "neck", "left chest wall", "right chest wall", "left shoulder", "right shoulder",
    "left arm", "right arm", "left breast", "right breast",
)

ATTRIBUTES_BY_CATEGORY: dict[str, tuple[str, ...]] = {
    "anatomicalfinding": (
        "lung opacity", "airspace opacity", "consolidation", "infiltration", "atelectasis",
        "linear/patchy atelectasis", "lobar/segmental collapse",
        "pulmonary edema/hazy opacity", "vascular congestion", "vascular redistribution",
        "increased reticular markings/ild pattern", "pleural effusion",
        "costophrenic angle blunting", "pleural/parenchymal scarring", "bronchiectasis",
        "enlarged cardiac silhouette", "mediastinal displacement", "mediastinal widening",
        "enlarged hilum", "tortuous aorta", "vascular calcification", "pneumomediastinum",
        "pneumothorax", "hydropneumothorax", "lung lesion",
        "mass/nodule (not otherwise specified)", "multiple masses/nodules",
        "calcified nodule", "superior mediastinal mass/enlargement", "rib fracture",
        "clavicle fracture", "spinal fracture", "hyperaeration", "cyst/bullae",
        "elevated hemidiaphragm", "diaphragmatic eventration (benign)",
        "sub-diaphragmatic air", "subcutaneous air", "hernia", "scoliosis",
        "spinal degenerative changes", "shoulder osteoarthritis", "bone lesion",
    ),
    "nlp": ("abnormal", "normal"),
    "disease": (
        "pneumonia", "fluid overload/heart failure", "copd/emphysema",
        "granulomatous disease", "interstitial lung disease", "goiter", "lung cancer",
        "aspiration", "alveolar hemorrhage", "pericardial effusion",
    ),
    "technicalassessment": (
        "low lung volumes", "rotated", "artifact", "breast/nipple shadows", "skin fold",
    ),
    "tubesandlines": (
        "chest tube", "mediastinal drain", "pigtail catheter", "endotracheal tube",
        "tracheostomy tube", "picc", "ij line", "chest port", "subclavian line",
        "swan-ganz catheter", "intra-aortic balloon pump", "enteric tube",
    ),
    "device": (
        "sternotomy wires", "cabg grafts", "aortic graft/repair", "prosthetic valve",
        "cardiac pacer and wires",
    ),
}

# The five attribute categories a build uses (``nlp`` is dropped everywhere).
CATEGORIES: tuple[str, ...] = (
    "anatomicalfinding", "technicalassessment", "disease", "tubesandlines", "device",
)
# "Abnormality": every category but technicalassessment.
ABNORMAL_CATEGORIES: frozenset[str] = frozenset(
    {"anatomicalfinding", "disease", "device", "tubesandlines"}
)

REMOVED_OBJECTS: frozenset[str] = frozenset({"left arm", "right arm"})
REMOVED_ATTRIBUTES: frozenset[str] = frozenset({
    "artifact", "bronchiectasis", "pigtail catheter", "skin fold", "aortic graft/repair",
    "diaphragmatic eventration (benign)", "sternotomy wires",
})

# What questions and answers may name: 36 objects, 68 attributes, 5 categories.
VQA_OBJECTS: tuple[str, ...] = tuple(o for o in REPORT_OBJECTS if o not in REMOVED_OBJECTS)
VQA_ATTRIBUTES: tuple[str, ...] = tuple(
    a for c in CATEGORIES for a in ATTRIBUTES_BY_CATEGORY[c] if a not in REMOVED_ATTRIBUTES
)
VQA_CATEGORIES: tuple[str, ...] = CATEGORIES

# The dataset splits, in the order they are built and listed.
SPLITS: tuple[str, ...] = ("train", "valid", "test")

# The argument kinds of a question record's template_arguments, in the released key order.
ARGUMENT_KINDS: tuple[str, ...] = ("object", "attribute", "category", "viewpos", "gender")

# How category and gender arguments read in question text.
CATEGORY_WORDS: dict[str, str] = {
    "anatomicalfinding": "anatomical findings", "technicalassessment": "technical assessments",
    "disease": "diseases", "tubesandlines": "tubes/lines", "device": "devices",
}
GENDER_WORDS: dict[str, str] = {"M": "male", "F": "female"}

# Answers every build can give besides objects and attributes: yes/no, views, genders (lower case).
FIXED_ANSWERS: tuple[str, ...] = ("yes", "no", "ap", "pa", "m", "f")


def answer_vocabulary(objects: Iterable[str], attributes: Iterable[str],
                      others: Iterable[str] = ()) -> list[str]:
    """The sorted answers of a build over these objects and attributes (what ans2idx.json maps).

    ``others`` are the answers the questions hold besides those: the 48 bundled programs give
    none, an author's ``returns number`` program gives "0", "3", "1.25"...

    Example:
        >>> len(answer_vocabulary(VQA_OBJECTS, VQA_ATTRIBUTES))
        110
        >>> answer_vocabulary(["trachea"], [], ["3", "yes"])
        ['3', 'ap', 'f', 'm', 'no', 'pa', 'trachea', 'yes']
    """
    return sorted({*objects, *attributes, *FIXED_ANSWERS, *others})


_CATEGORY_OF = {a: c for c in CATEGORIES for a in ATTRIBUTES_BY_CATEGORY[c]}


def category_of(attribute: str) -> str:
    """Return the category of a default-vocabulary attribute (KeyError if unknown)."""
    return _CATEGORY_OF[attribute]
