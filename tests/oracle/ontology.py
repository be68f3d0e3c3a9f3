"""Vocabulary and the edited ontology of pipeline.md §2, built with plain loops over the files."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import OracleError
from .readers import read_attribute_lines, read_object_lines, read_ontology_json

__all__ = ["ABNORMALITY", "REMOVED_ATTRIBUTES", "REMOVED_OBJECTS", "Ontology", "load_ontology"]

TARGET_CATEGORIES = (
    "anatomicalfinding", "technicalassessment", "disease", "tubesandlines", "device",
)
ONTOLOGY_FILE = "label_to_UMLS_mapping.json"
ABNORMALITY = ("anatomicalfinding", "disease", "device", "tubesandlines")
REMOVED_OBJECTS = ("left arm", "right arm")
REMOVED_ATTRIBUTES = (
    "artifact", "bronchiectasis", "pigtail catheter", "skin fold", "aortic graft/repair",
    "diaphragmatic eventration (benign)", "sternotomy wires",
)


@dataclass
class Ontology:
    """Everything §2 derives: vocabularies, the two child->parents maps and the possible pairs."""

    objects: list[str]
    attributes: list[str]
    category_of: dict[str, str]
    attribute_parents: dict[str, list[str]]
    object_parents: dict[str, list[str]]
    possible: dict[str, list[str]]

    def possible_pairs(self) -> list[tuple[str, str, str]]:
        """(object, attribute, category) for every possible pair inside the vocabularies."""
        return [(obj, attribute, self.category_of[attribute])
                for attribute, objects in self.possible.items() if attribute in self.attributes
                for obj in objects if obj in self.objects]

    def answer_vocabulary(self) -> list[str]:
        """Every answer a question can have (objects, attributes, yes/no, views, genders)."""
        objects = [obj for obj in self.objects if obj not in REMOVED_OBJECTS]
        attributes = [a for a in self.attributes if a not in REMOVED_ATTRIBUTES]
        return sorted(set(objects + attributes + ["yes", "no", "ap", "pa", "m", "f"]))


def load_ontology(root: Path) -> Ontology:
    """Read the three semantics files and apply every §2 edit, in the published order."""
    objects = read_object_lines(root)
    by_category: dict[str, list[str]] = {}
    for category, label in read_attribute_lines(root):
        if category in TARGET_CATEGORIES:
            by_category.setdefault(category, []).append(label)
    attributes = [label for labels in by_category.values() for label in labels]
    if "sternotomy wires" not in attributes:
        raise OracleError("attribute_relations_v1.txt: no 'sternotomy wires' line to remove")
    attributes.remove("sternotomy wires")
    category_of = {label: category for category, labels in by_category.items() for label in labels}

    ontology = copy.deepcopy(read_ontology_json(root))
    children = _edited_children(ontology["all_children"])
    possible = ontology["possible_attribute_of"]
    attribute_parents = _reverse({parent: [c for c in kids if c in attributes]
                                  for parent, kids in children.items() if parent in attributes})
    object_children = {parent: [c for c in kids if c in objects]
                       for parent, kids in children.items() if parent in objects}
    object_parents = _reverse({parent: kids for parent, kids in object_children.items() if kids})
    _grow_with_object_parents(possible, object_parents, attributes)
    _grow_with_attribute_parents(possible, attribute_parents)
    return Ontology(objects, attributes, category_of, attribute_parents, object_parents, possible)


def _edited_children(children: dict[str, list[str]]) -> dict[str, list[str]]:
    children["lungs"] += ["hilar structures", "right hilar structures", "left hilar structures"]
    children["left lung"] += ["left hilar structures"]
    children["right lung"] += ["right hilar structures"]
    children["hilar structures"] = ["right hilar structures", "left hilar structures"]
    children["mediastinum"] += ["aortic arch", "svc"]
    return children


def _reverse(parent_to_children: dict[str, list[str]]) -> dict[str, list[str]]:
    """child -> parents, children in first-appearance order while walking the parents in order."""
    child_to_parents: dict[str, list[str]] = {}
    for parent, kids in parent_to_children.items():
        for child in kids:
            child_to_parents.setdefault(child, []).append(parent)
    return child_to_parents


def _grow_with_object_parents(possible: dict[str, list[Any]], object_parents: dict[str, list[str]],
                              attributes: list[str]) -> None:
    # The list object itself grows, so a parent appended early is seen later as a child.
    for attribute, objects in possible.items():
        if attribute not in attributes:
            continue
        for child, parents in object_parents.items():
            for parent in parents:
                if child in objects and parent not in objects:
                    objects.append(parent)


def _grow_with_attribute_parents(possible: dict[str, list[Any]],
                                 attribute_parents: dict[str, list[str]]) -> None:
    for child in list(possible):
        for parent in attribute_parents.get(child, []):
            if parent not in possible:
                raise OracleError(f"{ONTOLOGY_FILE}: no possible_attribute_of {parent!r}")
            missing = [obj for obj in possible[child] if obj not in possible[parent]]
            possible[parent] += list(dict.fromkeys(missing))
