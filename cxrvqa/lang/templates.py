"""Template text and parameters: the ``${slot}`` syntax and the argument key of each parameter.

Two rules of MIMIC-CXR-VQA live here and nowhere else:

* a template names its parameters as ``${name}`` slots;
* a question record's ``template_arguments`` holds each kind's values under keys
  ``"0"``, ``"1"``, ... in the order of the numbered parameters: a lone ``object`` is
  key ``"0"``, ``object_1`` is ``"0"`` and ``object_2`` is ``"1"``.

Example:
    >>> template_slots("Is there ${attribute} in the ${object}?")
    ['attribute', 'object']
    >>> argument_key("object_2"), param_kind("object_2")
    ('1', 'object')
    >>> fill("Is there ${attribute}?", {"attribute": "pneumonia"})
    'Is there pneumonia?'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

__all__ = ["SLOT", "argument_key", "expected_param_names", "fill", "param_kind", "slot_order",
           "template_slots"]

SLOT = re.compile(r"\$\{([^{}]*)\}")
"""A ``${name}`` placeholder; group 1 is the name."""

_NUMBER = re.compile(r"_(\d+)$")


def template_slots(text: str) -> list[str]:
    """The ``${slot}`` names of a template text, in order."""
    return SLOT.findall(text)


def fill(text: str, values: Mapping[str, str] | Callable[[str], str]) -> str:
    """The template with each ``${slot}`` replaced by its value (a mapping or a function of the name)."""
    value = values if callable(values) else values.__getitem__
    return SLOT.sub(lambda match: value(match.group(1)), text)


def param_kind(name: str) -> str:
    """The kind a parameter name declares: ``object_2`` -> ``object``."""
    return _NUMBER.sub("", name)


def argument_key(name: str) -> str:
    """The ``template_arguments`` key of a parameter: ``object``/``object_1`` -> "0", ``object_2`` -> "1"."""
    number = _NUMBER.search(name)
    return str(int(number.group(1)) - 1) if number else "0"


def slot_order(name: str) -> tuple[str, int]:
    """(kind, position) of a parameter name: the order its value takes among its kind's."""
    return param_kind(name), int(argument_key(name))


def expected_param_names(kind: str, count: int) -> list[str]:
    """The names ``count`` parameters of one kind must have: ``[kind]`` or ``kind_1 .. kind_n``."""
    return [kind] if count == 1 else [f"{kind}_{i}" for i in range(1, count + 1)]
