"""The generated argument binder agrees with the checked binding it short-cuts (issue 6)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cxrvqa.errors import EvaluationError
from cxrvqa.programs import argument_plan, bundled_programs, checked_arguments, runner
from cxrvqa.vocab import ARGUMENT_KINDS

PROGRAMS = bundled_programs()
VALUES = st.one_of(st.sampled_from(["left lung", "pneumonia", "disease", "AP", "F"]),
                   st.integers(), st.none(), st.lists(st.text(max_size=2), max_size=1))
KIND_ARGUMENTS = st.one_of(st.dictionaries(st.sampled_from(["0", "1", "2", "x"]), VALUES, max_size=3),
                           st.lists(st.text(max_size=3), max_size=2), st.text(max_size=2), st.none())
ARGUMENTS = st.one_of(
    st.dictionaries(st.sampled_from([*ARGUMENT_KINDS, "other"]), KIND_ARGUMENTS, max_size=6),
    st.none(), st.lists(st.integers(), max_size=2))


def _well_formed(program_name: str, data: st.DataObject) -> dict[str, dict[str, str]]:
    plan = argument_plan(PROGRAMS[program_name])
    arguments: dict[str, dict[str, str]] = {kind: {} for kind in ARGUMENT_KINDS}
    for kind, keys, _positions in plan:
        arguments[kind] = {key: data.draw(st.sampled_from(["left lung", "pneumonia", "AP"]))
                           for key in keys}
    return arguments


def _nearly_well_formed(program_name: str, data: st.DataObject) -> dict[str, object]:
    """Well-formed arguments with one kind's entry changed: a key added or dropped, a value
    of another type, or the kind's mapping replaced."""
    arguments: dict[str, object] = dict(_well_formed(program_name, data))
    kind = data.draw(st.sampled_from(ARGUMENT_KINDS))
    entry = dict(arguments[kind])  # type: ignore[call-overload]
    change = data.draw(st.sampled_from(["add", "drop", "value", "replace"]))
    if change == "add":
        entry[data.draw(st.sampled_from(["0", "1", "2", "x"]))] = "pneumonia"
    elif change == "drop" and entry:
        del entry[data.draw(st.sampled_from(sorted(entry)))]
    elif change == "value" and entry:
        entry[data.draw(st.sampled_from(sorted(entry)))] = data.draw(VALUES)
    arguments[kind] = data.draw(KIND_ARGUMENTS) if change == "replace" else entry
    return arguments


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(PROGRAMS)), arguments=ARGUMENTS, data=st.data())
def test_binder_gives_the_checked_args_or_defers(name: str, arguments: object,
                                                 data: st.DataObject) -> None:
    program = PROGRAMS[name]
    plan, (_, bind) = argument_plan(program), runner(program)
    for candidate in (arguments, _well_formed(name, data), _nearly_well_formed(name, data)):
        fast = bind(candidate)
        try:
            checked = checked_arguments(program, plan, candidate)
        except EvaluationError:
            assert fast is None
        else:
            assert fast is None or fast == checked


def test_binder_takes_the_fast_path_for_released_arguments() -> None:
    arguments = {"object": {"0": "left lung", "1": "right lung"}, "attribute": {"0": "pneumonia"},
                 "category": {}, "viewpos": {}, "gender": {}}
    plan, (_, bind) = argument_plan(PROGRAMS["program_30"]), runner(PROGRAMS["program_30"])
    assert bind(arguments) == checked_arguments(PROGRAMS["program_30"], plan, arguments)
    assert bind(arguments) == ["left lung", "right lung", "pneumonia"]


def test_both_binders_read_arguments_by_key_not_by_file_order() -> None:
    # pipeline.md §5: values bind in key order "0", "1" however the file orders the keys.
    arguments = {"object": {"1": "right lung", "0": "left lung"}, "attribute": {"0": "pneumonia"},
                 "category": {}, "viewpos": {}, "gender": {}}
    program = PROGRAMS["program_30"]
    expected = ["left lung", "right lung", "pneumonia"]
    assert checked_arguments(program, argument_plan(program), arguments) == expected
    assert runner(program)[1](arguments) == expected
