"""One image's facts: what every template program reads.

``ImageFacts`` is the boundary between the index builder (pandas) and the
interpreter (plain Python sets). It holds only what answers need: the image's
positive findings as ``(object, attribute, category)`` triples, its view
position, its patient's gender and the x-coordinates of its boxes. Inverted
indices are built once here so that every program runs on frozensets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

__all__ = ["Finding", "ImageFacts"]

Finding = tuple[str, str, str]
"""A positive finding: (object, attribute, category)."""

_EMPTY: frozenset[Finding] = frozenset()


def _invert(findings: frozenset[Finding], position: int) -> Mapping[str, frozenset[Finding]]:
    groups: dict[str, set[Finding]] = {}
    for finding in findings:
        groups.setdefault(finding[position], set()).add(finding)
    return MappingProxyType({key: frozenset(group) for key, group in groups.items()})


class ImageFacts:
    """The facts of one image, indexed for set-based evaluation.

    Args:
        findings: positive findings as (object, attribute, category) triples.
        viewpos: the image's ViewPosition (``AP``/``PA``), or None when unknown.
        gender: the patient's gender (``M``/``F``), or None when unknown.
        boxes: box name -> (x1, x2), integer 224-scale coordinates.

    Example:
        >>> facts = ImageFacts([("left lung", "pneumonia", "disease")], "AP", "F", {})
        >>> sorted(facts.by_object)
        ['left lung']
    """

    __slots__ = ("findings", "viewpos", "gender", "boxes", "by_object", "by_attribute",
                 "by_category")

    def __init__(
        self,
        findings: Iterable[Finding],
        viewpos: str | None = None,
        gender: str | None = None,
        boxes: Mapping[str, tuple[int, int]] | None = None,
    ) -> None:
        self.findings: frozenset[Finding] = frozenset(findings)
        self.viewpos = viewpos
        self.gender = gender
        self.boxes: Mapping[str, tuple[int, int]] = MappingProxyType(dict(boxes or {}))
        self.by_object = _invert(self.findings, 0)
        self.by_attribute = _invert(self.findings, 1)
        self.by_category = _invert(self.findings, 2)

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
