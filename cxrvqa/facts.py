"""One image's facts: what every template program reads.

``ImageFacts`` is the boundary between the index builder (pandas) and the
interpreter (plain Python sets). It holds only what answers need: the image's
positive findings as ``(object, attribute, category)`` triples, its view
position, its patient's gender and the x-coordinates of its boxes. Inverted
indices are built once here so that every program runs on frozensets.
"""

from __future__ import annotations

import difflib
from array import array
from collections.abc import Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from types import MappingProxyType
from typing import Protocol

__all__ = ["MISSING", "BoxTable", "Boxes", "Finding", "ImageFacts"]

Finding = tuple[str, str, str]
"""A positive finding: (object, attribute, category)."""

_EMPTY: frozenset[Finding] = frozenset()


def _invert(findings: frozenset[Finding], position: int) -> Mapping[str, frozenset[Finding]]:
    groups: dict[str, set[Finding]] = {}
    for finding in findings:
        groups.setdefault(finding[position], set()).add(finding)
    return {key: frozenset(group) for key, group in groups.items()}


class BoxTable:
    """Box names shared by many images, so each image stores only its coordinates.

    A full-size build holds ~240 K images with 36 boxes each; one dict per image
    would cost about a gigabyte, an int array per image about a tenth of that.
    """

    def __init__(self, names: Iterable[str]) -> None:
        self.names: tuple[str, ...] = tuple(dict.fromkeys(names))
        self.slot = {name: index for index, name in enumerate(self.names)}

    def boxes(self, coordinates: Mapping[str, tuple[int, int]]) -> Boxes:
        """The compact boxes of one image."""
        values = array("q", [MISSING]) * (2 * len(self.names))
        for name, (x1, x2) in coordinates.items():
            values[2 * self.slot[name]] = x1
            values[2 * self.slot[name] + 1] = x2
        return Boxes(self, values)

    def from_values(self, values: Iterable[int] | bytes) -> Boxes:
        """Boxes from x1, x2 pairs in slot order, MISSING where a box is absent.

        ``values`` may also be the pairs' native 8-byte integers as bytes (numpy's
        ``row.tobytes()``), which ``array`` copies without a Python int per value.
        """
        return Boxes(self, array("q", values))


MISSING = -(2**62)
"""Marks an absent box in a BoxTable row."""


class Boxes(Mapping[str, tuple[int, int]]):
    """Read-only box name -> (x1, x2) of one image, backed by a shared BoxTable."""

    __slots__ = ("_table", "_values")

    def __init__(self, table: BoxTable, values: array[int]) -> None:
        self._table = table
        self._values = values

    def __getitem__(self, name: str) -> tuple[int, int]:
        slot = self._table.slot.get(name)
        if slot is None or self._values[2 * slot] == MISSING:
            raise KeyError(name)
        return self._values[2 * slot], self._values[2 * slot + 1]

    def __iter__(self) -> Iterator[str]:
        return (name for index, name in enumerate(self._table.names)
                if self._values[2 * index] != MISSING)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class _Terms(Protocol):
    objects: AbstractSet[str]
    attributes: AbstractSet[str]
    categories: AbstractSet[str]
    viewpos: AbstractSet[str]
    genders: AbstractSet[str]


def _check_terms(findings: frozenset[Finding], viewpos: str | None, gender: str | None,
                 vocabulary: _Terms) -> None:
    """Raise ValueError for the first name that is not a term of its kind."""
    # Shapes first: a pair would pass with its category unchecked, and ints or a string of
    # letters would reach difflib and fail there with an unrelated TypeError.
    for finding in sorted(findings, key=repr):
        if not (isinstance(finding, tuple) and len(finding) == 3
                and all(isinstance(name, str) for name in finding)):
            raise ValueError(f"finding {finding!r}: expected an (object, attribute, category) "
                             f"triple of strings")
    for value, where in ((viewpos, "view position"), (gender, "gender")):
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{where} {value!r}: expected a string or None")
    named: list[tuple[str, str | None, str]]
    named = [(kind, value, f"finding {finding!r}") for finding in sorted(findings)
             for kind, value in zip(("object", "attribute", "category"), finding)]
    named += [("viewpos", viewpos, "view position"), ("gender", gender, "gender")]
    sets = {"object": vocabulary.objects, "attribute": vocabulary.attributes,
            "category": vocabulary.categories, "viewpos": vocabulary.viewpos,
            "gender": vocabulary.genders}
    for kind, value, where in named:
        if value is not None and value not in sets[kind]:
            close = difflib.get_close_matches(value, sorted(sets[kind]), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else \
                f"; expected one of {', '.join(sorted(sets[kind]))}" if len(sets[kind]) <= 5 else ""
            raise ValueError(f"{where}: {value!r} is not a known {kind}{hint}")


class ImageFacts:
    """The facts of one image, indexed for set-based evaluation.

    Args:
        findings: positive findings as (object, attribute, category) triples.
        viewpos: the image's ViewPosition (``AP``/``PA``), or None when unknown.
        gender: the patient's gender (``M``/``F``), or None when unknown.
        boxes: box name -> (x1, x2), integer 224-scale coordinates.
        vocabulary: when given (e.g. ``cxrvqa.Vocabulary.default()``, anything with
            ``objects``, ``attributes``, ``categories``, ``viewpos`` and ``genders`` sets),
            every finding, the view position and the gender must be terms of it, else
            ``ValueError`` names the first that is not (with a did-you-mean). The index
            builder passes none: its findings come from the ontology, so the hot path of a
            build checks nothing twice; facts written by hand should pass one.

    The inverted indices (``by_object``, ``by_attribute``, ``by_category``) are
    built on first use: a build holds every cohort image but asks about fewer.

    Example:
        >>> facts = ImageFacts([("left lung", "pneumonia", "disease")], "AP", "F", {})
        >>> sorted(facts.by_object)
        ['left lung']
    """

    __slots__ = ("findings", "viewpos", "gender", "boxes", "_by_object", "_by_attribute",
                 "_by_category")

    def __init__(
        self,
        findings: Iterable[Finding],
        viewpos: str | None = None,
        gender: str | None = None,
        boxes: Mapping[str, tuple[int, int]] | None = None,
        *,
        vocabulary: _Terms | None = None,
    ) -> None:
        self.findings: frozenset[Finding] = frozenset(findings)
        if vocabulary is not None:
            _check_terms(self.findings, viewpos, gender, vocabulary)
        self.viewpos = viewpos
        self.gender = gender
        self.boxes: Mapping[str, tuple[int, int]] = (
            boxes if isinstance(boxes, Boxes) else MappingProxyType(dict(boxes or {})))
        self._by_object: Mapping[str, frozenset[Finding]] | None = None
        self._by_attribute: Mapping[str, frozenset[Finding]] | None = None
        self._by_category: Mapping[str, frozenset[Finding]] | None = None

    # Each index is built on its own first use: most programs read one or two of them.
    # (An image without findings has empty indices: test for None, not for emptiness.)
    @property
    def by_object(self) -> Mapping[str, frozenset[Finding]]:
        """object -> findings located there."""
        index = self._by_object
        return self._inverted("_by_object", 0) if index is None else index

    @property
    def by_attribute(self) -> Mapping[str, frozenset[Finding]]:
        """attribute -> findings naming it."""
        index = self._by_attribute
        return self._inverted("_by_attribute", 1) if index is None else index

    @property
    def by_category(self) -> Mapping[str, frozenset[Finding]]:
        """category -> findings of that category."""
        index = self._by_category
        return self._inverted("_by_category", 2) if index is None else index

    def _inverted(self, slot: str, position: int) -> Mapping[str, frozenset[Finding]]:
        index = _invert(self.findings, position)
        setattr(self, slot, index)
        return index

    def at_object(self, obj: str) -> frozenset[Finding]:
        """Findings located at ``obj`` (empty when none)."""
        return self.by_object.get(obj, _EMPTY)

    def with_attribute(self, attribute: str) -> frozenset[Finding]:
        """Findings naming ``attribute`` (empty when none)."""
        return self.by_attribute.get(attribute, _EMPTY)

    def in_category(self, category: str) -> frozenset[Finding]:
        """Findings of ``category`` (empty when none)."""
        return self.by_category.get(category, _EMPTY)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ImageFacts):
            return NotImplemented
        return (self.findings, self.viewpos, self.gender, dict(self.boxes)) == (
            other.findings, other.viewpos, other.gender, dict(other.boxes))

    def __hash__(self) -> int:
        return hash((self.findings, self.viewpos, self.gender))

    def __repr__(self) -> str:
        return (f"ImageFacts(findings={sorted(self.findings)!r}, viewpos={self.viewpos!r}, "
                f"gender={self.gender!r}, boxes={dict(sorted(self.boxes.items()))!r})")
