"""Checksums of built files and record-by-record comparison of two builds."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from cxrvqa.build.output import ans2idx_bytes, dataset_bytes, write_files_atomically
from cxrvqa.errors import DataError
from cxrvqa.tools.verify import (
    compare_datasets,
    verify_checksums,
    verify_manifest,
    write_checksums,
)

BUILT = ("ans2idx.json", "test.json", "train.json", "valid.json")


def _record(split: str, idx: int, program: str, answer: list[str]) -> dict[str, Any]:
    return {"split": split, "idx": idx, "subject_id": "10000032", "study_id": "50414267",
            "image_id": f"img{idx}", "image_path": f"p10/p10000032/s50414267/img{idx}.jpg",
            "question": "Is there \u00e9?", "semantic_type": "verify", "content_type": "anatomy",
            "template": "Is there ${object}?", "template_program": program,
            "template_arguments": {"object": {"0": "left lung"}, "attribute": {}, "category": {},
                                   "viewpos": {}, "gender": {}},
            "answer": answer}


def _split(split: str) -> list[dict[str, Any]]:
    programs = ("program_1", "program_2", "program_3")
    return [_record(split, idx, programs[idx % 3], ["yes"] if idx % 2 else ["no"])
            for idx in range(9)]


def _write(folder: Path, split: str, records: list[dict[str, Any]]) -> None:
    (folder / f"{split}.json").write_bytes(dataset_bytes(records))


@pytest.fixture
def built(tmp_path: Path) -> Path:
    folder = tmp_path / "ours"
    folder.mkdir()
    for split in ("train", "valid", "test"):
        _write(folder, split, _split(split))
    (folder / "ans2idx.json").write_bytes(ans2idx_bytes(["yes", "no"]))
    (folder / "_test.json").write_text("[]")  # a question file: never checksummed
    return folder


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- manifest ------------------------------------------------------------------------------

def test_manifest_names_built_files_an_earlier_build_left(tmp_path: Path) -> None:
    # A full build, then `--splits test` with other answers: train and valid are the old ones.
    files = {f"{split}.json": dataset_bytes(_split(split)) for split in ("train", "valid", "test")}
    files["ans2idx.json"] = ans2idx_bytes(["yes", "no"])
    write_files_atomically(tmp_path, files, manifest=True)
    assert verify_manifest(tmp_path).ok
    newer = [_record("test", 0, "program_1", ["no"])]
    write_files_atomically(tmp_path, {"test.json": dataset_bytes(newer),
                                      "ans2idx.json": ans2idx_bytes(["yes", "no"])}, manifest=True)
    report = verify_manifest(tmp_path)
    assert [check.status for check in report.files] == ["match", "match"]
    assert report.strays == ("train.json", "valid.json")
    assert not report.ok
    assert "left by an earlier one" in report.render()
    assert "train.json, valid.json" in report.render()


# --- checksums -----------------------------------------------------------------------------

def test_write_checksums_lists_built_files_sorted_physionet_style(built: Path) -> None:
    path = write_checksums(built)
    assert path == built / "SHA256SUMS.txt"
    assert path.read_text() == "".join(f"{_digest(built / name)} {name}\n" for name in BUILT)


def test_own_checksums_match(built: Path) -> None:
    write_checksums(built)
    report = verify_checksums(built, None)
    assert report.ok
    assert [(check.path, check.status) for check in report.files] == [
        (name, "match") for name in BUILT]
    assert "4 of 4 files match" in report.render()


def test_changed_file_is_a_mismatch_and_deleted_file_missing(built: Path) -> None:
    write_checksums(built)
    (built / "valid.json").write_bytes((built / "valid.json").read_bytes() + b"\n")
    (built / "test.json").unlink()
    report = verify_checksums(built, None)
    assert not report.ok
    statuses = {check.path: check.status for check in report.files}
    assert statuses == {"ans2idx.json": "match", "test.json": "missing",
                        "train.json": "match", "valid.json": "mismatch"}
    rendered = report.render()
    assert "mismatch  valid.json" in rendered and "missing   test.json" in rendered


def test_sha256sum_formats_and_release_paths_are_accepted(built: Path, tmp_path: Path) -> None:
    train, valid = _digest(built / "train.json"), _digest(built / "valid.json")
    listing = tmp_path / "release" / "SHA256SUMS.txt"
    listing.parent.mkdir()
    listing.write_bytes(  # with a byte-order mark, as some Windows editors save UTF-8
        f"\ufeff{train.upper()}  dataset/train.json\r\n\n{valid} *./valid.json\n".encode()
        + f"{'0' * 64} README.md\n{'1' * 64} dataset/_train_part1.json\n".encode())
    report = verify_checksums(built, listing)
    assert report.ok
    assert [(check.path, check.status) for check in report.files] == [
        ("dataset/train.json", "match"), ("./valid.json", "match")]
    assert report.ignored == ("README.md", "dataset/_train_part1.json")
    assert "not checked (2): README.md" in report.render()


@pytest.mark.parametrize(("text", "message"), [
    ("abc train.json\n", "line 1: expected '<sha256> <relative path>'"),
    (f"{'0' * 64} README.md\n", "no line names a built file"),
    (f"{'0' * 64} train.json\n{'1' * 64} other/train.json\n", "train.json is listed twice"),
])
def test_bad_checksum_lists_are_data_errors(built: Path, text: str, message: str) -> None:
    (built / "SHA256SUMS.txt").write_text(text)
    with pytest.raises(DataError, match=message):
        verify_checksums(built, None)


def test_absent_checksum_list_and_absent_build_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"SHA256SUMS\.txt: file not found"):
        verify_checksums(tmp_path, None)
    with pytest.raises(DataError, match="no built files"):
        write_checksums(tmp_path)


# --- record comparison ---------------------------------------------------------------------

@pytest.fixture
def other(built: Path) -> Path:
    copy = built.parent / "other"
    shutil.copytree(built, copy)
    return copy


def test_identical_builds_compare_ok(built: Path, other: Path) -> None:
    report = compare_datasets(built, other)
    assert report.ok
    assert [(s.split, s.records, s.differing) for s in report.splits] == [
        ("train", 9, 0), ("valid", 9, 0), ("test", 9, 0)]


def test_compare_finds_first_differences_counts_and_missing_extra(built: Path,
                                                                  other: Path) -> None:
    records = _split("test")
    records[4]["answer"] = ["yes", "no"]
    records[7]["answer"] = []
    records[7]["image_path"] = "elsewhere.jpg"
    records[1]["answer"] = ["maybe"]
    records[2]["study_id"] = 50414267  # same digits, different JSON type
    del records[5]
    records.append(_record("test", 42, "program_9", ["no"]))
    _write(built, "test", records)

    report = compare_datasets(built, other, splits=("valid", "test"))
    assert not report.ok
    valid, test = report.splits
    assert valid.ok
    assert [(d.idx, d.template_program, d.keys) for d in test.first] == [
        (1, "program_2", ("answer",)), (2, "program_3", ("study_id",)),
        (4, "program_2", ("answer",)), (7, "program_2", ("image_path", "answer"))]
    assert test.by_template == {"program_2": 3, "program_3": 1}
    assert test.differing == 4
    assert (test.missing, test.extra, test.order_differs) == ((5,), (42,), False)
    rendered = report.render()
    assert "idx 7 (program_2): image_path, answer" in rendered
    assert "test: missing from ours: idx 5" in rendered
    assert "test: not in other: idx 42" in rendered


def test_compare_keeps_only_the_first_records_but_counts_all(built: Path, other: Path) -> None:
    _write(built, "train", [{**record, "answer": []} for record in _split("train")])
    (train,) = compare_datasets(built, other, splits=("train",), limit=2).splits
    assert [diff.idx for diff in train.first] == [0, 1]
    assert train.by_template == {"program_1": 3, "program_2": 3, "program_3": 3}


def test_compare_reports_key_order_and_record_order(built: Path, other: Path) -> None:
    records = _split("valid")
    records[3] = {key: records[3][key] for key in reversed(list(records[3]))}
    records[0], records[1] = records[1], records[0]
    _write(built, "valid", records)
    (valid,) = compare_datasets(built, other, splits=("valid",)).splits
    assert [(d.idx, d.keys) for d in valid.first] == [(3, ("<key order>",))]
    assert valid.order_differs and not valid.ok
    assert "differs" in compare_datasets(built, other, splits=("valid",)).render()


def test_repeated_idx_values_pair_by_occurrence(built: Path, other: Path) -> None:
    first, second, third = ({"idx": 7, "template_program": "program_1", "answer": [answer]}
                            for answer in ("a", "b", "c"))
    _write(other, "test", [first, second, third])
    _write(built, "test", [first, {**second, "answer": ["x"]}])
    (test,) = compare_datasets(built, other, splits=("test",)).splits
    assert [(d.idx, d.keys) for d in test.first] == [(7, ("answer",))]
    assert (test.missing, test.extra, test.order_differs) == ((7,), (), False)


@pytest.mark.parametrize(("content", "message"), [
    ([{"idx": "1"}], "record 0: expected an integer idx"),
    ({"idx": 1}, "expected a JSON list of records"),
    ([[1]], "record 0: expected a JSON object"),
])
def test_malformed_split_files_are_data_errors(built: Path, other: Path, content: Any,
                                               message: str) -> None:
    (other / "test.json").write_text(json.dumps(content))
    with pytest.raises(DataError, match=message):
        compare_datasets(built, other, splits=("test",))


def test_a_split_in_one_folder_only_is_named_and_the_others_compared(built: Path,
                                                                     other: Path) -> None:
    # Before, the comparison stopped at the first absent file (exit 3) and compared nothing.
    (other / "valid.json").unlink()
    (built / "test.json").unlink()
    report = compare_datasets(built, other)
    assert [split.split for split in report.splits] == ["train"] and report.splits[0].ok
    assert report.unpaired == (("valid", "ours"), ("test", "other")) and not report.ok
    assert "valid: only in ours, not compared" in report.render()
    (other / "test.json").unlink()  # in neither folder: left out, as after two --splits builds
    assert compare_datasets(built, other).unpaired == (("valid", "ours"),)
    (other / "valid.json").write_bytes((built / "valid.json").read_bytes())
    assert compare_datasets(built, other).ok


def test_no_split_in_both_folders_is_a_data_error(built: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no split file in both folders \(looked for train"):
        compare_datasets(built, tmp_path / "nothing here")


def test_invalid_split_file_is_a_data_error(built: Path, other: Path) -> None:
    (other / "valid.json").write_text("[{")
    with pytest.raises(DataError, match=r"valid\.json:1:3: invalid JSON"):
        compare_datasets(built, other, splits=("valid",))


def test_a_checksum_list_that_is_not_utf8_is_placed_by_line_and_column(built: Path) -> None:
    # Before: "cannot read: 'utf-8' codec can't decode byte 0xff in position 70: ...".
    listed = built / "SHA256SUMS.txt"
    listed.write_bytes(b"0" * 64 + b"  train.json\n" + b"0" * 64 + b"  t\xffst.json\n")
    with pytest.raises(DataError) as info:
        verify_checksums(built)
    assert str(info.value) == f"{listed}:2:68: byte 0xff is not UTF-8; expected UTF-8 text"
