"""The 48 template programs of pipeline.md §5 as boolean masks over one image's feature table.

A feature table has one row per (object, attribute) label of the image with columns
object, attribute, category, relation, ViewPosition, gender, x1, x2 (the box of the row's
object, NaN when the image has none).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from .errors import OracleError
from .ontology import ABNORMALITY

__all__ = ["run_program"]

Args = dict[str, list[str]]
Answer = bool | set[str] | list[str]

KINDS = {"o": "object", "a": "attribute", "c": "category", "v": "viewpos", "g": "gender"}


def _pos(f: pd.DataFrame) -> pd.DataFrame:
    return f[f["relation"] == 1]


def _at(f: pd.DataFrame, obj: str) -> pd.DataFrame:
    return f[f["object"] == obj]


def _of(f: pd.DataFrame, categories: list[str] | tuple[str, ...]) -> pd.DataFrame:
    return f[f["category"].isin(list(categories))]


def _named(f: pd.DataFrame, attributes: list[str]) -> pd.DataFrame:
    return f[f["attribute"].isin(attributes)]


def _some(f: pd.DataFrame) -> bool:
    return len(f) > 0


def _attrs(f: pd.DataFrame) -> set[str]:
    return set(f["attribute"])


def _objs(f: pd.DataFrame) -> set[str]:
    return set(f["object"])


def _scalar(f: pd.DataFrame, column: str) -> Any:
    values = f[column].unique()
    if len(values) != 1:
        raise OracleError(f"{column}: expected one value for the image, got {list(values)}")
    return values[0]


def _known(f: pd.DataFrame, column: str) -> list[str]:
    value = _scalar(f, column)
    if not isinstance(value, str):
        # The published builder calls .lower() on NaN here and crashes.
        raise OracleError(f"{column}: unknown for this image")
    return [value]


def _box_x(f: pd.DataFrame, obj: str, column: str) -> int:
    rows = _at(f, obj)
    if len(rows) == 0 or pd.isna(rows[column].iloc[0]):
        raise OracleError(f"no {obj} box for this image")
    return int(rows[column].iloc[0])


def _size_ratio(f: pd.DataFrame, organ: str) -> float:
    thorax = _box_x(f, "left lung", "x2") - _box_x(f, "right lung", "x1")
    organ_width = _box_x(f, organ, "x2") - _box_x(f, organ, "x1")
    if thorax == 0:
        raise OracleError("thorax width is zero")
    return organ_width / thorax


Program = Callable[[pd.DataFrame, Args], Answer]
ABN = ABNORMALITY


def _o(a: Args, i: int = 0) -> str:
    return a["object"][i]


def _a(a: Args, i: int = 0) -> str:
    return a["attribute"][i]


def _c(a: Args, i: int = 0) -> str:
    return a["category"][i]


# (argument counts the published builder asserts, program). Counts read "o1c1a0": one object,
# one category, no attribute; kinds not listed are not checked (ABN programs ignore a category).
PROGRAMS: dict[str, tuple[str, Program]] = {
    "program_1": ("o1c1a0", lambda f, a: _some(_of(_at(_pos(f), _o(a)), [_c(a)]))),
    "program_2": ("o1c0a1", lambda f, a: _some(_named(_at(_pos(f), _o(a)), [_a(a)]))),
    "program_3": ("o1a0", lambda f, a: _some(_of(_at(_pos(f), _o(a)), ABN))),
    "program_4": ("o1c2a0", lambda f, a: _some(_of(_at(_pos(f), _o(a)), [_c(a)]))
                  or _some(_of(_at(_pos(f), _o(a)), [_c(a, 1)]))),
    "program_5": ("o1c0a2", lambda f, a: _some(_named(_at(_pos(f), _o(a)), [_a(a)]))
                  and _some(_named(_at(_pos(f), _o(a)), [_a(a, 1)]))),
    "program_6": ("o1c0a2", lambda f, a: _some(_named(_at(_pos(f), _o(a)), [_a(a)]))
                  or _some(_named(_at(_pos(f), _o(a)), [_a(a, 1)]))),
    "program_7": ("o1c1a0", lambda f, a: _attrs(_of(_at(_pos(f), _o(a)), [_c(a)]))),
    "program_8": ("o1a0", lambda f, a: _attrs(_of(_at(_pos(f), _o(a)), ABN))),
    "program_9": ("o1c2a0", lambda f, a: _attrs(_of(_at(_pos(f), _o(a)), a["category"]))),
    "program_10": ("o1c1a2", lambda f, a: _attrs(_named(_at(_pos(f), _o(a)), a["attribute"]))),
    "program_11": ("o2a0", lambda f, a: _some(_of(_at(_pos(f), _o(a)), ABN))
                   or _some(_of(_at(_pos(f), _o(a, 1)), ABN))),
    "program_12": ("o2a0", lambda f, a: _some(_of(_at(_pos(f), _o(a)), ABN))
                   and _some(_of(_at(_pos(f), _o(a, 1)), ABN))),
    "program_13": ("o2c1a0", lambda f, a: _attrs(_of(_at(_pos(f), _o(a)), [_c(a)]))
                   | _attrs(_of(_at(_pos(f), _o(a, 1)), [_c(a)]))),
    "program_14": ("o2c1a0", lambda f, a: _attrs(_of(_at(_pos(f), _o(a)), [_c(a)]))
                   & _attrs(_of(_at(_pos(f), _o(a, 1)), [_c(a)]))),
    "program_15": ("o2c1a0", lambda f, a: _attrs(_of(_at(_pos(f), _o(a)), [_c(a)]))
                   - _attrs(_of(_at(_pos(f), _o(a, 1)), [_c(a)]))),
    "program_16": ("o2a0", lambda f, a: _attrs(_of(_at(_pos(f), _o(a)), ABN))
                   | _attrs(_of(_at(_pos(f), _o(a, 1)), ABN))),
    "program_17": ("o2a0", lambda f, a: _attrs(_of(_at(_pos(f), _o(a)), ABN))
                   & _attrs(_of(_at(_pos(f), _o(a, 1)), ABN))),
    "program_18": ("o2a0", lambda f, a: _attrs(_of(_at(_pos(f), _o(a)), ABN))
                   - _attrs(_of(_at(_pos(f), _o(a, 1)), ABN))),
    "program_19": ("o0c1a0", lambda f, a: _some(_of(_pos(f), [_c(a)]))),
    "program_20": ("o0a0", lambda f, a: _some(_of(_pos(f), ABN))),
    "program_21": ("o0c2a0", lambda f, a: _some(_of(_pos(f), [_c(a)]))
                   or _some(_of(_pos(f), [_c(a, 1)]))),
    "program_22": ("o0c0a1", lambda f, a: _some(_named(_pos(f), [_a(a)]))),
    "program_23": ("o0c0a2", lambda f, a: _some(_named(_pos(f), [_a(a)]))
                   and _some(_named(_pos(f), [_a(a, 1)]))),
    "program_24": ("o0c0a2", lambda f, a: _some(_named(_pos(f), [_a(a)]))
                   or _some(_named(_pos(f), [_a(a, 1)]))),
    "program_25": ("o0c1a0", lambda f, a: _attrs(_of(_pos(f), [_c(a)]))),
    "program_26": ("o0c2a0", lambda f, a: _attrs(_of(_pos(f), a["category"]))),
    "program_27": ("o0a0", lambda f, a: _attrs(_of(_pos(f), ABN))),
    "program_28": ("o0c1a2", lambda f, a: _attrs(_named(_pos(f), a["attribute"]))),
    "program_29": ("o2c0a1", lambda f, a: _some(_at(_named(_pos(f), [_a(a)]), _o(a)))
                   and _some(_at(_named(_pos(f), [_a(a)]), _o(a, 1)))),
    "program_30": ("o2c0a1", lambda f, a: _some(_at(_named(_pos(f), [_a(a)]), _o(a)))
                   or _some(_at(_named(_pos(f), [_a(a)]), _o(a, 1)))),
    "program_31": ("o0c0a1", lambda f, a: _objs(_named(_pos(f), [_a(a)]))),
    "program_32": ("o2c0a1", lambda f, a: _objs(_named(_pos(f), [_a(a)])) & set(a["object"])),
    "program_33": ("o2a0", lambda f, a: _objs(_of(_pos(f), ABN)) & set(a["object"])),
    "program_34": ("o0c0a2", lambda f, a: _objs(_named(_pos(f), [_a(a)]))
                   | _objs(_named(_pos(f), [_a(a, 1)]))),
    "program_35": ("o0c0a2", lambda f, a: _objs(_named(_pos(f), [_a(a)]))
                   & _objs(_named(_pos(f), [_a(a, 1)]))),
    "program_36": ("o0c0a2", lambda f, a: _objs(_named(_pos(f), [_a(a)]))
                   - _objs(_named(_pos(f), [_a(a, 1)]))),
    "program_37": ("o2c1a0", lambda f, a: _some(_at(_of(_pos(f), [_c(a)]), _o(a)))
                   and _some(_at(_of(_pos(f), [_c(a)]), _o(a, 1)))),
    "program_38": ("o2c1a0", lambda f, a: _some(_at(_of(_pos(f), [_c(a)]), _o(a)))
                   or _some(_at(_of(_pos(f), [_c(a)]), _o(a, 1)))),
    "program_39": ("o0c1a0", lambda f, a: _objs(_of(_pos(f), [_c(a)]))),
    "program_40": ("o0c2a0", lambda f, a: _objs(_of(_pos(f), [_c(a)]))
                   | _objs(_of(_pos(f), [_c(a, 1)]))),
    # NaN == "AP" is False in the published builder, so an unknown view or gender says "no".
    "program_41": ("v1", lambda f, a: _scalar(f, "ViewPosition") == a["viewpos"][0]),
    "program_42": ("", lambda f, a: _known(f, "ViewPosition")),
    "program_43": ("", lambda f, a: _known(f, "ViewPosition")),
    "program_44": ("g1", lambda f, a: _scalar(f, "gender") == a["gender"][0]),
    "program_45": ("g0", lambda f, a: _known(f, "gender")),
    "program_46": ("g0", lambda f, a: _known(f, "gender")),
    "program_47": ("c0a0", lambda f, a: _size_ratio(f, "cardiac silhouette") > 1 / 2),
    "program_48": ("c0a0", lambda f, a: _size_ratio(f, "upper mediastinum") > 1 / 3),
}


def _check_counts(name: str, counts: str, args: Args) -> None:
    for kind, expected in zip(counts[::2], counts[1::2]):
        got = len(args[KINDS[kind]])
        if got != int(expected):
            raise OracleError(f"{name}: expected {expected} {KINDS[kind]} argument(s), got {got}")


def _format(answer: Answer) -> list[str]:
    if answer is True:
        return ["yes"]
    if answer is False:
        return ["no"]
    return sorted(value.lower() for value in answer)


def _in_key_order(kind: str, values: dict[str, str]) -> list[str]:
    """§5: the arguments of a kind are the values of keys "0", "1", ... in that order,
    however the file happens to order the keys."""
    try:
        return [values[str(position)] for position in range(len(values))]
    except KeyError:
        raise OracleError(f"{kind}: argument keys {list(values)} are not 0..{len(values) - 1}"
                          ) from None


def run_program(name: str, features: pd.DataFrame,
                arguments: dict[str, dict[str, str]]) -> list[str]:
    """Answer one question: the program's boolean masks on the image's features, formatted."""
    if name not in PROGRAMS:
        raise OracleError(f"unknown template_program {name!r}")
    counts, program = PROGRAMS[name]
    args = {kind: _in_key_order(kind, arguments[kind]) for kind in KINDS.values()}
    _check_counts(name, counts, args)
    return _format(program(features, args))
