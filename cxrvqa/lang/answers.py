"""Render program values as MIMIC-CXR-VQA answers (pipeline.md §5), in one place."""

from __future__ import annotations

import math
from collections.abc import Set

from cxrvqa.errors import EvaluationError

__all__ = ["render", "render_number"]


def render(value: bool | int | float | Set[str]) -> list[str]:
    """``True`` -> ``["yes"]``, ``False`` -> ``["no"]``, a set -> its values lower-cased and sorted.

    A number (``returns number``) is a one-element list of its decimal string: an
    integer-valued result without a fraction (``3`` and ``3.0`` -> ``"3"``), any other
    as Python's shortest round-trip ``repr`` of the float (``0.5`` -> ``"0.5"``).

    Example:
        >>> render(frozenset({"PA"})), render(False), render(frozenset()), render(6 / 2), render(0.25)
        (['pa'], ['no'], [], ['3'], ['0.25'])
    """
    if value is True:
        return ["yes"]
    if value is False:
        return ["no"]
    if isinstance(value, (int, float)):
        return [render_number(value)]
    return sorted(map(str.lower, value))


def render_number(value: int | float) -> str:
    """The answer text of a number (see ``render``); inf and nan are refused."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise EvaluationError(f"a number answer must be finite, got {value!r}")
        if value.is_integer():
            return str(int(value))
        return repr(value)
    return str(value)
