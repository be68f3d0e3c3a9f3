"""Value kinds, operator signatures and the vocabulary that typed terms are checked against.

``SIGNATURES`` is the single table of what every operator and function
accepts: the checker types nodes with it, tests/strategies.py generates
well-typed programs from it, and error messages quote its ``needs`` text.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from cxrvqa import vocab

__all__ = [
    "ELEMENT_OF",
    "FIELD_KINDS",
    "LIST_KINDS",
    "PARAM_KINDS",
    "SCALAR_KINDS",
    "SET_KINDS",
    "SET_OF",
    "SIGNATURES",
    "Kind",
    "Signature",
    "Vocabulary",
]


class Kind(Enum):
    """What an expression evaluates to."""

    FINDINGS = "Findings"
    OBJECTS = "Objects"
    ATTRIBUTES = "Attributes"
    CATEGORIES = "Categories"
    VIEWPOSES = "ViewPoses"
    GENDERS = "Genders"
    OBJECT = "Object"
    ATTRIBUTE = "Attribute"
    CATEGORY = "Category"
    VIEWPOS = "ViewPos"
    GENDER = "Gender"
    BOOL = "Bool"
    NUMBER = "Number"

    def __str__(self) -> str:
        return self.value


SCALAR_KINDS = (Kind.OBJECT, Kind.ATTRIBUTE, Kind.CATEGORY, Kind.VIEWPOS, Kind.GENDER)
SET_OF = {Kind.OBJECT: Kind.OBJECTS, Kind.ATTRIBUTE: Kind.ATTRIBUTES,
          Kind.CATEGORY: Kind.CATEGORIES, Kind.VIEWPOS: Kind.VIEWPOSES,
          Kind.GENDER: Kind.GENDERS}
ELEMENT_OF = {v: k for k, v in SET_OF.items()}
# Sets of names can be list answers; Findings is a set too but has no answer form.
LIST_KINDS = tuple(SET_OF.values())
SET_KINDS = (Kind.FINDINGS, *LIST_KINDS)
# The kind of a param, a typed term or a filter field, by its keyword.
PARAM_KINDS = {"object": Kind.OBJECT, "attribute": Kind.ATTRIBUTE, "category": Kind.CATEGORY,
               "viewpos": Kind.VIEWPOS, "gender": Kind.GENDER}
FIELD_KINDS = {field: PARAM_KINDS[field] for field in ("object", "attribute", "category")}
PLURAL_KINDS = {"objects": Kind.OBJECTS, "attributes": Kind.ATTRIBUTES,
                "categories": Kind.CATEGORIES}
FACT_KINDS = {"findings": Kind.FINDINGS, "viewpos": Kind.VIEWPOS, "gender": Kind.GENDER}
RESULT_KINDS = {"bool": (Kind.BOOL,), "list": LIST_KINDS, "number": (Kind.NUMBER,)}


@dataclass(frozen=True, slots=True)
class Signature:
    """The accepted operand kinds of one operator and what it then returns.

    Args:
        cases: (operand kinds, result kind) pairs; the first match wins.
        needs: what the operands must be, for "'op' needs ..., got ..." messages.
    """

    cases: tuple[tuple[tuple[Kind, ...], Kind], ...]
    needs: str

    @property
    def arity(self) -> int:
        """Number of operands (the same in every case)."""
        return len(self.cases[0][0])

    def result(self, operands: tuple[Kind, ...]) -> Kind | None:
        """The result kind for these operand kinds, or None if none fits."""
        return next((result for args, result in self.cases if args == operands), None)


def _same(kinds: Iterable[Kind], result: Kind | None = None) -> tuple[
        tuple[tuple[Kind, ...], Kind], ...]:
    """(k, k) -> result (or k itself) for every kind k."""
    return tuple(((k, k), result or k) for k in kinds)


_N, _B = Kind.NUMBER, Kind.BOOL
_ARITHMETIC = Signature((((_N, _N), _N),), "two Numbers")
_ORDER = Signature((((_N, _N), _B),), "two Numbers")
_EQUALITY = Signature(_same((*SCALAR_KINDS, _N), _B), "two scalars of the same kind")
_SET_OPERATION = Signature(_same(SET_KINDS), "two sets of the same kind")
_LOGIC = Signature((((_B, _B), _B),), "two Bools")
_EMPTINESS = Signature(tuple(((k,), _B) for k in SET_KINDS), "a set")
_COORDINATE = Signature((((Kind.OBJECT,), _N),), "an Object")

# Keyed by the operator as written (Binary.op, Call.function, "not").
SIGNATURES: dict[str, Signature] = {
    "or": _LOGIC,
    "and": _LOGIC,
    "not": Signature((((_B,), _B),), "a Bool"),
    "=": _EQUALITY,
    "!=": _EQUALITY,
    "<": _ORDER,
    "<=": _ORDER,
    ">": _ORDER,
    ">=": _ORDER,
    "in": Signature(tuple(((k, SET_OF[k]), _B) for k in SCALAR_KINDS),
                    "a scalar and a set of its kind"),
    "|": _SET_OPERATION,
    "&": _SET_OPERATION,
    "-": Signature((*_SET_OPERATION.cases, ((_N, _N), _N)),
                   "two sets of the same kind or two Numbers"),
    "+": _ARITHMETIC,
    "*": _ARITHMETIC,
    "/": _ARITHMETIC,
    "objects": Signature((((Kind.FINDINGS,), Kind.OBJECTS),), "Findings"),
    "attributes": Signature((((Kind.FINDINGS,), Kind.ATTRIBUTES),), "Findings"),
    "categories": Signature((((Kind.FINDINGS,), Kind.CATEGORIES),), "Findings"),
    "exists": _EMPTINESS,
    "empty": _EMPTINESS,
    "count": Signature(tuple(((k,), _N) for k in SET_KINDS), "a set"),
    "x1": _COORDINATE,
    "x2": _COORDINATE,
    "width": _COORDINATE,
}


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """The terms a program may name, per scalar kind.

    Example:
        >>> "left lung" in Vocabulary.default().terms(Kind.OBJECT)
        True
    """

    objects: frozenset[str]
    attributes: frozenset[str]
    categories: frozenset[str]
    viewpos: frozenset[str] = frozenset({"AP", "PA"})
    genders: frozenset[str] = frozenset({"M", "F"})

    @classmethod
    @functools.cache
    def default(cls) -> Vocabulary:
        """The MIMIC-CXR-VQA vocabulary: 36 objects, 68 attributes, 5 categories, AP/PA, M/F."""
        return cls(frozenset(vocab.VQA_OBJECTS), frozenset(vocab.VQA_ATTRIBUTES),
                   frozenset(vocab.VQA_CATEGORIES))

    def terms(self, kind: Kind) -> frozenset[str]:
        """The allowed terms of a scalar kind."""
        return {Kind.OBJECT: self.objects, Kind.ATTRIBUTE: self.attributes,
                Kind.CATEGORY: self.categories, Kind.VIEWPOS: self.viewpos,
                Kind.GENDER: self.genders}[kind]
