"""Build the label vocabulary and ontology maps exactly as the published builder edits them.

Orders matter here: the parent maps are walked in file order by the label steps
(later copies win ties), and the possible-pairs walk lets lists grow while they
are being walked (pipeline.md §2).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cxrvqa.build import loaders
from cxrvqa.errors import DataError
from cxrvqa.vocab import (
    ATTRIBUTES_BY_CATEGORY,
    CATEGORIES,
    REMOVED_ATTRIBUTES,
    REMOVED_OBJECTS,
    REPORT_OBJECTS,
    answer_vocabulary,
)

__all__ = ["Ontology", "load_ontology", "build_ontology"]

_HILAR = ["right hilar structures", "left hilar structures"]


@dataclass(frozen=True)
class Ontology:
    """Vocabulary and parent maps of one set of semantics files.

    Attributes:
        objects: the object vocabulary (objects file order).
        attributes: the attribute vocabulary (five categories, minus sternotomy wires).
        category: attribute -> category, for every label of the five categories.
        attribute_parents: child attribute -> parent attributes, in walk order.
        object_parents: child object -> parent objects, in walk order.
        possible: attribute -> objects it may occur at, after the two growth steps.
    """

    objects: tuple[str, ...]
    attributes: tuple[str, ...]
    category: Mapping[str, str]
    attribute_parents: Mapping[str, tuple[str, ...]]
    object_parents: Mapping[str, tuple[str, ...]]
    possible: Mapping[str, frozenset[str]]

    def answer_vocabulary(self, others: Iterable[str] = ()) -> list[str]:
        """The answers a build gives: objects, attributes, yes/no, views, genders, and
        ``others`` (see ``vocab.answer_vocabulary``), sorted."""
        return answer_vocabulary((o for o in self.objects if o not in REMOVED_OBJECTS),
                                 (a for a in self.attributes if a not in REMOVED_ATTRIBUTES),
                                 others)


def load_ontology(objects_file: Path, attributes_file: Path, ontology_file: Path) -> Ontology:
    """Read the three semantics files and build the edited ontology.

    Raises:
        DataError: a file is unreadable, or lacks an object or attribute line the questions
            need (an emptied file would otherwise change the answers silently).
    """
    objects = loaders.read_objects_file(objects_file)
    _require(objects_file, set(objects), REPORT_OBJECTS, "object")
    lines = loaders.read_attributes_file(attributes_file)
    _require(attributes_file, {f"{category}|{label}" for category, _, label in lines},
             [f"{category}|{label}" for category, labels in ATTRIBUTES_BY_CATEGORY.items()
              for label in labels], "'category|yes|label' line for")
    try:
        return build_ontology(objects, lines, loaders.read_ontology(ontology_file))
    except _OntologyKeyError as exc:
        raise DataError(f"{ontology_file}: {exc.args[0]}") from None


def _require(path: Path, present: set[str], needed: Sequence[str], what: str) -> None:
    missing = [name for name in needed if name not in present]
    if missing:
        raise DataError(f"{path}: no {what} {missing[0]!r}"
                        + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                        + f"; expected all {len(needed)} the questions use")


class _OntologyKeyError(Exception):
    pass


def build_ontology(objects: Sequence[str], attribute_lines: Sequence[tuple[str, str, str]],
                   maps: Mapping[str, Mapping[str, list[str]]]) -> Ontology:
    """Apply pipeline.md §2 to already-read semantics."""
    by_category: dict[str, list[str]] = {}
    for category, _relation, label in attribute_lines:
        if category in CATEGORIES:
            by_category.setdefault(category, []).append(label)
    attributes = [label for labels in by_category.values() for label in labels]
    if "sternotomy wires" in attributes:
        attributes.remove("sternotomy wires")
    category_of = {label: cat for cat, labels in by_category.items() for label in labels}

    children = {key: list(value) for key, value in maps["all_children"].items()}
    _edit_children(children)
    attribute_set, object_set = set(attributes), set(objects)
    attribute_children = {parent: [c for c in kids if c in attribute_set]
                          for parent, kids in children.items() if parent in attribute_set}
    object_children = {parent: kept for parent, kids in children.items() if parent in object_set
                       if (kept := [c for c in kids if c in object_set])}
    attribute_parents = _reverse(attribute_children)
    object_parents = _reverse(object_children)

    possible = {key: list(value) for key, value in maps["possible_attribute_of"].items()}
    _grow_by_object_parents(possible, object_parents, attribute_set)
    _grow_by_attribute_parents(possible, attribute_parents)
    return Ontology(
        objects=tuple(objects),
        attributes=tuple(attributes),
        category=category_of,
        attribute_parents={k: tuple(v) for k, v in attribute_parents.items()},
        object_parents={k: tuple(v) for k, v in object_parents.items()},
        possible={k: frozenset(v) for k, v in possible.items()},
    )


def _edit_children(children: dict[str, list[str]]) -> None:
    """The published builder's fixed edits of ``all_children``."""
    for key in ("lungs", "left lung", "right lung", "mediastinum"):
        if not isinstance(children.get(key), list):
            raise _OntologyKeyError(f"all_children must have a list for {key!r}")
    children["lungs"] += ["hilar structures", *_HILAR]
    children["left lung"] += ["left hilar structures"]
    children["right lung"] += ["right hilar structures"]
    children["hilar structures"] = list(_HILAR)
    children["mediastinum"] += ["aortic arch", "svc"]


def _reverse(parent_to_children: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """child -> parents, children in order of first appearance, parents in walk order."""
    parents: dict[str, list[str]] = {}
    for parent, kids in parent_to_children.items():
        for child in kids:
            parents.setdefault(child, []).append(parent)
    return parents


def _grow_by_object_parents(possible: dict[str, list[str]], object_parents: Mapping[str, list[str]],
                            attributes: set[str]) -> None:
    # The list grows during the walk on purpose: a parent appended early is seen later as a child.
    for attribute, objects in possible.items():
        if attribute not in attributes:
            continue
        for child, parents in object_parents.items():
            for parent in parents:
                if child in objects and parent not in objects:
                    objects.append(parent)


def _grow_by_attribute_parents(possible: dict[str, list[str]],
                               attribute_parents: Mapping[str, list[str]]) -> None:
    for child in list(possible):
        for parent in attribute_parents.get(child, ()):
            if parent not in possible:
                raise _OntologyKeyError(
                    f"possible_attribute_of has no entry for {parent!r}, parent of {child!r}")
            missing = [o for o in possible[child] if o not in possible[parent]]
            possible[parent] += missing
