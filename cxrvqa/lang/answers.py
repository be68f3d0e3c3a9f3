"""Render program values as MIMIC-CXR-VQA answers (pipeline.md §5), in one place."""

from __future__ import annotations

from collections.abc import Set

__all__ = ["render"]


def render(value: bool | Set[str]) -> list[str]:
    """``True`` -> ``["yes"]``, ``False`` -> ``["no"]``, a set -> its values lower-cased and sorted.

    Example:
        >>> render(frozenset({"PA"})), render(False), render(frozenset())
        (['pa'], ['no'], [])
    """
    if value is True:
        return ["yes"]
    if value is False:
        return ["no"]
    return sorted(map(str.lower, value))
