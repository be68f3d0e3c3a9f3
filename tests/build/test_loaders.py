"""Tests for cxrvqa.build.loaders: the silver box TSV's checks and the label TSV's dtypes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxrvqa.build import loaders
from cxrvqa.errors import DataError

HEADER = "object_id\tx1\ty1\tx2\ty2\twidth\theight\tbbox_name\n"


def _boxes(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "bbox_objects_tabular.txt"
    path.write_text(HEADER + "".join(row + "\n" for row in rows), encoding="utf-8")
    return path


def _row(object_id: str, name: str, x1: int = 10) -> str:
    return f"{object_id}\t{x1}\t5\t{x1 + 40}\t60\t40\t55\t{name}"


def test_boxes_are_coded_by_first_appearance(tmp_path: Path) -> None:
    path = _boxes(tmp_path, [_row("b_left lung", "left lung"), _row("a_right lung", "right lung"),
                             _row("b_right lung", "right lung", 20), _row("svc", "svc")])
    boxes = loaders.read_silver_boxes(path)
    assert boxes["image_id"].tolist() == ["b", "a", "b", "svc"]
    assert list(boxes["image_id"].cat.categories) == ["b", "a", "svc"]
    assert boxes["bbox_name"].tolist() == ["left lung", "right lung", "right lung", "svc"]
    assert boxes["x1"].tolist() == [10, 10, 20, 10]


LAST = "object_id 'd_svc' does not end with its bbox_name 'left lung'"


@pytest.mark.parametrize(("bad", "line", "shown"), [
    (_row("c_left lung", "right lung"), 4,
     "object_id 'c_left lung' does not end with its bbox_name 'right lung'"),
    (_row("", "left lung"), 4, "object_id nan does not end with its bbox_name 'left lung'"),
    (_row("c_left_lung", "lung"), 5, LAST),  # the part after the last "_" is the name
])
def test_first_box_whose_id_does_not_end_with_its_name_is_named_by_line(
        tmp_path: Path, bad: str, line: int, shown: str) -> None:
    path = _boxes(tmp_path, [_row("a_left lung", "left lung"), _row("a_svc", "svc"), bad,
                             _row("d_svc", "left lung")])
    with pytest.raises(DataError) as info:
        loaders.read_silver_boxes(path)
    assert str(info.value) == f"{path}: line {line}: {shown}"


def test_label_text_columns_are_categorical(tmp_path: Path) -> None:
    path = tmp_path / "attribute_relations_tabular.txt"
    header = "study_id\timage_id\trow_id\tsent_loc\tbbox\tcategoryID\tlabel_name\trelation\tcontext\n"
    rows = ["50000001\tb.dcm\t50000001|2\t2\tleft lung\tdisease\tpneumonia\t1\tyes",
            "50000001\ta\t50000001|10\t10\tleft lung\tanatomicalfinding\tatelectasis\t0\tno"]
    path.write_text(header + "\n".join(rows) + "\n", encoding="utf-8")
    labels = loaders.read_silver_labels(path)
    for column in ("image_id", "row_id", "bbox", "categoryID", "label_name"):
        assert isinstance(labels[column].dtype, pd.CategoricalDtype)
        assert sorted(labels[column].cat.categories) == sorted(set(labels[column]))
    assert labels["image_id"].tolist() == ["b", "a"]
    assert labels["relation"].tolist() == [1, 0]
    assert labels["study_id"].dtype == "int64"


# Two readers read the large TSVs: pyarrow's (fast) and read_csv's (exact, and the one whose
# errors name the line). Whenever the fast one reads a file, it must read what read_csv reads.
_CELLS = st.sampled_from(["a", "b.dcm", "left lung", "NA", "", "null", "None", '"q"', '"t\tab"',
                          "x_y", "7", "7.0", "-3", " 8", "1e2", "2|3", "é", "nan", "<NA>", "#N/A"])
LABEL_HEADER = "study_id\timage_id\trow_id\tbbox\tcategoryID\tlabel_name\trelation"


def _both(read, path: Path, monkeypatch: pytest.MonkeyPatch):
    """(outcome of the fast reader, outcome of read_csv): a frame's values, or the error."""
    def outcome():
        try:
            frame = read(path)
        except DataError as exc:
            return str(exc)
        return {column: frame[column].astype(object).where(frame[column].notna(), None).tolist()
                for column in frame}

    fast = outcome()
    with monkeypatch.context() as patch:
        patch.setattr(loaders, "_read_arrow", lambda *args, **kwargs: None)
        exact = outcome()
    return fast, exact


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(*[_CELLS] * 7), min_size=1, max_size=6))
def test_fast_label_reader_reads_what_read_csv_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    rows: list[tuple[str, ...]]) -> None:
    path = tmp_path / "labels.txt"
    path.write_text(LABEL_HEADER + "\n" + "".join("\t".join(row) + "\n" for row in rows),
                    encoding="utf-8")
    fast, exact = _both(loaders.read_silver_labels, path, monkeypatch)
    assert fast == exact


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["img1", "img2", "im_3", "", "img4.dcm"]),
                          st.sampled_from(["left lung", "svc", "a_b", ""]),
                          st.sampled_from(["_", "", "__"]),
                          st.sampled_from(["10", "10.5", "", "x", "NA", "-4"])), min_size=1, max_size=6))
def test_fast_box_reader_reads_what_read_csv_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  rows: list[tuple[str, str, str, str]]) -> None:
    path = _boxes(tmp_path, [f"{image}{sep}{name}\t{x}\t5\t{x}\t60\t{x}\t55\t{name}"
                             for image, name, sep, x in rows])
    fast, exact = _both(loaders.read_silver_boxes, path, monkeypatch)
    assert fast == exact


def test_boxes_with_image_ids_of_different_lengths_are_read_exactly(tmp_path: Path) -> None:
    path = _boxes(tmp_path, [_row("img1_left lung", "left lung"), _row("image2_svc", "svc")])
    boxes = loaders.read_silver_boxes(path)
    assert boxes["image_id"].tolist() == ["img1", "image2"]
    assert boxes["bbox_name"].tolist() == ["left lung", "svc"]


@pytest.mark.parametrize(("second", "shown"), [
    (b"1\ta\t1|1\tsvc\n", "line 3: column 'relation' must be an integer, got nan"),
    # Placed by line and column (read_csv's "position 10" counted from its buffer's start).
    (b"1\ta\t1|1\tsvc\tdis\xffease\tpneumonia\t1\n", ":3:16: byte 0xff is not UTF-8"),
])
def test_a_file_the_fast_reader_refuses_is_read_by_read_csv(tmp_path: Path, second: bytes,
                                                           shown: str) -> None:
    path = tmp_path / "labels.txt"
    path.write_bytes(LABEL_HEADER.encode() + b"\n1\ta\t1|1\tsvc\tdisease\tpneumonia\t1\n" + second)
    assert loaders._read_arrow(path, loaders.LABEL_COLUMNS) is None
    with pytest.raises(DataError) as info:
        loaders.read_silver_labels(path)
    assert str(info.value).startswith(f"{path}:") and shown in str(info.value)


# Integer columns: anything pd.to_numeric reads that int64 cannot hold is one DataError naming
# the line (found by a differential review: "inf" used to escape as IntCastingNaNError, and
# 2**64 - 1 wrapped to -1).
_HEADER7 = LABEL_HEADER + "\n"
_ROW7 = ["10", "img1.dcm", "img1|s|3", "left lung", "anatomicalfinding", "lung opacity", "1"]


def _labels_with(tmp_path: Path, column: str, value: str, extra: str = "") -> Path:
    row = list(_ROW7)
    row[_HEADER7.strip().split("\t").index(column)] = value
    path = tmp_path / "labels.txt"
    path.write_text(extra + _HEADER7 + "\t".join(_ROW7) + "\n" + "\t".join(row) + "\n",
                    encoding="utf-8")
    return path


@pytest.mark.parametrize("column", ["study_id", "relation"])
@pytest.mark.parametrize("value", ["inf", "-inf", "Infinity", "1e400", "9223372036854775808",
                                   "18446744073709551615", "18446744073709551616", "1.5"])
def test_an_integer_column_takes_only_what_int64_holds(tmp_path: Path, column: str,
                                                       value: str) -> None:
    path = _labels_with(tmp_path, column, value)
    with pytest.raises(DataError) as info:
        loaders.read_silver_labels(path)
    assert str(info.value) == (f"{path}: line 3: column {column!r} must be an integer, "
                               f"got {value!r}")


def test_integers_at_the_ends_of_int64_are_read(tmp_path: Path) -> None:
    path = tmp_path / "labels.txt"
    rows = [["9223372036854775807", *_ROW7[1:6], "1"], ["-9223372036854775808", *_ROW7[1:6], "2.0"]]
    path.write_text(_HEADER7 + "".join("\t".join(row) + "\n" for row in rows), encoding="utf-8")
    labels = loaders.read_silver_labels(path)
    assert labels["study_id"].tolist() == [2 ** 63 - 1, -(2 ** 63)]
    assert labels["relation"].tolist() == [1, 2]


@pytest.mark.parametrize("value", ["inf", "18446744073709551615"])
def test_metadata_ids_take_only_what_int64_holds(tmp_path: Path, value: str) -> None:
    path = tmp_path / "mimic-cxr-2.0.0-metadata.csv"
    path.write_text("dicom_id,subject_id,study_id,ViewPosition,StudyDate,StudyTime\n"
                    f"a,1,2,PA,21000101,1.0\nb,1,{value},PA,21000101,1.0\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        loaders.read_metadata(path)
    # The value as the file has it, not numpy's repr (np.float64(inf), np.uint64(...)).
    assert str(info.value) == f"{path}: line 3: column 'study_id' must be an integer, got {value}"


# The semantics files as published: "<item>," lines, the last without comma or newline
# (source-formats.md §3.5). Windows line ends, a final newline and a UTF-8 byte-order mark are
# not content: a BOM used to become part of the first name ("no object 'right lung'").
@pytest.mark.parametrize("head", [b"", b"\xef\xbb\xbf"], ids=["plain", "bom"])
@pytest.mark.parametrize("newline", [b"\n", b"\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize("tail", [b"", b"\n"], ids=["no-final-newline", "final-newline"])
def test_semantics_lines_ignore_bom_crlf_and_a_final_newline(tmp_path: Path, head: bytes,
                                                             newline: bytes, tail: bytes) -> None:
    objects, attributes = tmp_path / "objects.txt", tmp_path / "attributes.txt"
    objects.write_bytes(head + (b"," + newline).join([b"right lung", b"svc"]) + tail)
    attributes.write_bytes(head + (b"," + newline).join(
        [b"anatomicalfinding|yes|lung opacity", b"nlp|yes|normal"]) + tail)
    assert loaders.read_objects_file(objects) == ["right lung", "svc"]
    assert loaders.read_attributes_file(attributes) == [
        ("anatomicalfinding", "yes", "lung opacity"), ("nlp", "yes", "normal")]


def test_quoted_line_breaks_across_arrow_blocks_stay_on_the_fast_reader(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Scene-graph phrases may hold line breaks (source-formats.md §3.1.3); a table written with
    # a sentence column quotes them. Pyarrow splits a file into blocks at line breaks and, unless
    # told that values hold some, a block ending inside a quoted value fails to parse: the ~GB
    # silver table then fell back to read_csv (4x the CPU, 3x the memory).
    path = tmp_path / "labels.txt"
    rows = [f'5000000{i % 10}\timg{i % 7}.dcm\t5000000{i % 10}|{i % 13}\tleft lung\tdisease\t'
            f'pneumonia\t{i % 2}\t"FINDINGS: \nThe lung is ""clear"".\n{"x" * (i % 50)}"\n'
            for i in range(400)]
    path.write_text(LABEL_HEADER + "\tsentence\n" + "".join(rows), encoding="utf-8")
    monkeypatch.setattr(loaders, "ARROW_BLOCK_BYTES", 4096)
    assert loaders._read_arrow(path, loaders.LABEL_COLUMNS) is not None
    fast, exact = _both(loaders.read_silver_labels, path, monkeypatch)
    assert fast == exact and len(fast["row_id"]) == 400
