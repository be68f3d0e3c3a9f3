"""Tests for cxrvqa.build.loaders: the silver box TSV's checks and the label TSV's dtypes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

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


def test_label_text_columns_are_categorical_with_sorted_names(tmp_path: Path) -> None:
    path = tmp_path / "attribute_relations_tabular.txt"
    header = "study_id\timage_id\trow_id\tsent_loc\tbbox\tcategoryID\tlabel_name\trelation\tcontext\n"
    rows = ["50000001\tb.dcm\t50000001|2\t2\tleft lung\tdisease\tpneumonia\t1\tyes",
            "50000001\ta\t50000001|10\t10\tleft lung\tanatomicalfinding\tatelectasis\t0\tno"]
    path.write_text(header + "\n".join(rows) + "\n", encoding="utf-8")
    labels = loaders.read_silver_labels(path)
    for column in ("image_id", "row_id", "bbox", "categoryID", "label_name"):
        assert isinstance(labels[column].dtype, pd.CategoricalDtype)
        assert list(labels[column].cat.categories) == sorted(set(labels[column]))
    assert labels["image_id"].tolist() == ["b", "a"]
    assert labels["relation"].tolist() == [1, 0]
