"""Pin the exact bytes of built files, so that a rebuild can match the published checksums."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from cxrvqa.output import ans2idx_bytes, dataset_bytes, write_files_atomically

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


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4)
    | st.dictionaries(st.integers(), children, max_size=2),
    max_leaves=20,
)


@given(st.lists(_JSON, max_size=4))
def test_dataset_bytes_equal_json_with_indent_4_for_any_json_value(values: list[object]) -> None:
    assert dataset_bytes(values) == json.dumps(values, indent=4).encode("ascii")
