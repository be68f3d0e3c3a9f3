"""Pin the exact bytes of built files, so that a rebuild can match the published checksums."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from unittest import mock

from hypothesis import example, given, settings
from hypothesis import strategies as st

from cxrvqa.build.output import ans2idx_bytes, dataset_bytes, write_files_atomically

RECORDS = [
    {
        "split": "test",
        "idx": 0,
        "subject_id": "10000032",
        "study_id": "50414267",
        "image_id": "02aa804e-bde0afdd",
        "image_path": "p10/p10000032/s50414267/02aa804e-bde0afdd.jpg",
        "question": "Is the graft/repair \u2265 \"2\" cm in the caf\u00e9 \U0001f600 \\ view?",
        "semantic_type": "verify",
        "content_type": "anatomy",
        "template": "Is there ${object} in the image?",
        "template_program": "program_1",
        "template_arguments": {
            "object": {"0": "left lung", "1": "right lung"},
            "attribute": {},
            "category": {},
            "viewpos": {},
            "gender": {},
        },
        "answer": [],
    },
    {"split": "test", "idx": 1, "answer": ["yes"], "nested": [[], {}, [1, 2.5, True, None]]},
]

# Written by hand from the rules (indent=4, ", " / ": " separators, \uXXXX escapes with
# surrogate pairs, "/" not escaped, empty containers inline, no trailing newline).
EXPECTED = r"""[
    {
        "split": "test",
        "idx": 0,
        "subject_id": "10000032",
        "study_id": "50414267",
        "image_id": "02aa804e-bde0afdd",
        "image_path": "p10/p10000032/s50414267/02aa804e-bde0afdd.jpg",
        "question": "Is the graft/repair \u2265 \"2\" cm in the caf\u00e9 \ud83d\ude00 \\ view?",
        "semantic_type": "verify",
        "content_type": "anatomy",
        "template": "Is there ${object} in the image?",
        "template_program": "program_1",
        "template_arguments": {
            "object": {
                "0": "left lung",
                "1": "right lung"
            },
            "attribute": {},
            "category": {},
            "viewpos": {},
            "gender": {}
        },
        "answer": []
    },
    {
        "split": "test",
        "idx": 1,
        "answer": [
            "yes"
        ],
        "nested": [
            [],
            {},
            [
                1,
                2.5,
                true,
                null
            ]
        ]
    }
]"""


def test_split_file_bytes_are_pinned() -> None:
    assert dataset_bytes(RECORDS) == EXPECTED.encode("ascii")


def test_empty_split_is_an_empty_list_without_newline() -> None:
    assert dataset_bytes([]) == b"[]"


def test_ans2idx_is_one_line_in_sorted_order() -> None:
    answers = ["yes", "pa", "left lung", "no", "ap", "f", "m"]
    assert ans2idx_bytes(answers) == (
        b'{"ap": 0, "f": 1, "left lung": 2, "m": 3, "no": 4, "pa": 5, "yes": 6}')


def test_written_file_holds_exactly_the_bytes(tmp_path: Path) -> None:
    write_files_atomically(tmp_path, {"test.json": dataset_bytes(RECORDS)})
    assert (tmp_path / "test.json").read_bytes() == EXPECTED.encode("ascii")
    assert [path.name for path in tmp_path.iterdir()] == ["test.json"]


# Strings with escapes, non-ASCII, astral characters and a lone surrogate.
_AWKWARD = st.sampled_from('"\\/\b\n\x1f\x7f\u2265\ud83d\U0001f600')
_TEXT = st.text(st.characters(exclude_categories=()) | _AWKWARD, max_size=10)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | _TEXT,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4)
    | st.dictionaries(st.integers(), children, max_size=2),
    max_leaves=20,
)


@settings(deadline=None)
@given(st.lists(_JSON, max_size=4))
def test_dataset_bytes_equal_json_with_indent_4_for_any_json_value(values: list[object]) -> None:
    assert dataset_bytes(values) == json.dumps(values, indent=4).encode("ascii")


# A built record (pipeline.md §6): its keys in order, each value of its usual type.
KEYS = tuple(RECORDS[0])
_KINDS = st.sampled_from(["object", "attribute", "category", "viewpos", "gender"]) | _TEXT
_USUAL = {key: _TEXT for key in KEYS} | {
    "idx": st.integers(),
    "template_arguments": st.dictionaries(_KINDS, st.dictionaries(_TEXT, _TEXT, max_size=3), max_size=5),
    "answer": st.lists(_TEXT, max_size=4),
}


class _Text(str):
    """A str subclass, which json writes as a plain string."""


class _Number(int):
    """An int subclass, which json writes with int's repr."""


# Values a record may still hold, copied as they are from the input files.
_UNUSUAL = (st.booleans() | st.none() | st.floats() | st.integers() | _TEXT
            | _TEXT.map(_Text) | st.integers().map(_Number)
            | st.lists(st.lists(_TEXT, max_size=2), max_size=2)
            | st.dictionaries(_TEXT, st.dictionaries(_TEXT, _JSON, max_size=2), max_size=2)
            | st.dictionaries(_TEXT, st.lists(_TEXT, max_size=2), max_size=2)
            | _JSON)


@st.composite
def _records(draw: st.DrawFn, unusual: bool) -> dict[str, Any]:
    """A built record; if ``unusual``, maybe with unusual values, keys reordered, dropped or added."""
    record = {key: draw(strategy) for key, strategy in _USUAL.items()}
    if not unusual:
        return record
    for key in draw(st.lists(st.sampled_from(KEYS), max_size=2, unique=True)):
        record[key] = draw(_UNUSUAL)
    keys = draw(st.sampled_from([KEYS, KEYS[:-1], KEYS[::-1], (*KEYS, "extra")]))
    return {key: record.get(key, []) for key in keys}


def _with(**changes: object) -> list[dict[str, Any]]:
    """A split of the first pinned record with some values replaced."""
    return [RECORDS[0] | changes]


# Records take 13 strings each to generate: fewer examples keep these tests to seconds.
@settings(deadline=None, max_examples=40)
@given(st.lists(_records(unusual=False), min_size=1, max_size=2))
def test_usual_records_take_the_fast_path_and_equal_json(records: list[dict[str, Any]]) -> None:
    # The generic walk is what made the writer slow: a built record must never need it.
    with mock.patch("cxrvqa.build.output._indented", side_effect=AssertionError("generic path taken")):
        data = dataset_bytes(records)
    assert data == json.dumps(records, indent=4).encode("ascii")


@settings(deadline=None, max_examples=40)
@given(st.lists(_records(unusual=True), min_size=1, max_size=2))
@example(_with(idx=True))
@example(_with(idx="5"))
@example(_with(idx=5.0))
@example(_with(idx=None, answer=None))
@example(_with(answer=[["left lung"], []]))
@example(_with(answer=["yes", 1, False]))
@example(_with(template_arguments={}))
@example(_with(answer="yes"))
@example(_with(answer={"yes": "no"}))
@example(_with(template_arguments=""))
@example(_with(template_arguments={"object": {}, "gender": None}))
@example(_with(template_arguments={"object": [], "gender": "m"}))
@example(_with(template_arguments={"object": {"0": ["left lung"]}}))
@example(_with(template_arguments={"object": {0: "left lung"}}))
@example(_with(template_arguments={1: {}}))
@example(_with(question="caf\u00e9 \ud83d \u2265"))
def test_records_with_unusual_values_or_keys_equal_json(records: list[dict[str, Any]]) -> None:
    assert dataset_bytes(records) == json.dumps(records, indent=4).encode("ascii")


# Rows (question, subject_id, study_id, image_path, answer), as a build keeps them.
_QUESTION_KEYS = [key for key in KEYS if key not in ("subject_id", "study_id", "image_path", "answer")]


@settings(deadline=None, max_examples=40)
@given(st.lists(_records(unusual=True), min_size=0, max_size=3))
@example([RECORDS[0]])
@example(_with(idx=True))
@example(_with(answer="yes"))
def test_rows_bytes_equal_json_of_the_records_they_stand_for(records: list[dict[str, Any]]) -> None:
    from cxrvqa.build.output import row_record, rows_bytes

    rows = [({key: record.get(key) for key in _QUESTION_KEYS}, record.get("subject_id"),
             record.get("study_id"), record.get("image_path"), record.get("answer"))
            for record in records]
    expected = [row_record(row) for row in rows]
    assert all(tuple(record) == KEYS for record in expected)
    assert rows_bytes(rows) == json.dumps(expected, indent=4).encode("ascii")
