"""Tests for cxrvqa.build.scenegraph: scene graphs -> attribute/box tables, and the TSV writer."""

from __future__ import annotations

import copy
import io
import json
import os
import signal
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxrvqa.build import scenegraph
from cxrvqa.build.index import load_silver_rows
from cxrvqa.build.layout import SceneGraphSource, SourceLayout, find_scene_graphs
from cxrvqa.build.scenegraph import (
    ATTRIBUTE_COLUMNS,
    ATTRIBUTE_DTYPES,
    ATTRIBUTES_FILE,
    BOX_COLUMNS,
    BOX_DTYPES,
    BOXES_FILE,
    read_scene_graphs,
    write_scene_tabular,
)
from cxrvqa.build.zipsalvage import Salvaged, read_member
from cxrvqa.cli import main
from cxrvqa.errors import DataError

IMAGE_A = "4f0c2a9e-7d1b33c0-9a6e5f21-0b8d4c77-e2f19a30"
IMAGE_B = "0a1b2c3d-4e5f6071-8293a4b5-c6d7e8f9-0a1b2c3d"
MEMBER_A = f"scene_graph/{IMAGE_A}_SceneGraph.json"
MEMBER_B = f"scene_graph/{IMAGE_B}_SceneGraph.json"
CUES = ("comparison_cues", "temporal_cues", "severity_cues", "texture_cues")


def region(image_id: str, bbox: str, phrases: list[tuple[str, list[str]]]) -> dict[str, Any]:
    """An attributes[] entry with every key a real one has."""
    entry: dict[str, Any] = {
        bbox: True, "bbox_name": bbox, "synsets": ["C0000001"], "name": bbox.capitalize(),
        "attributes": [labels for _, labels in phrases],
        "attributes_ids": [["C0000002"] * len(labels) for _, labels in phrases],
        "phrases": [f"FINDINGS: sentence {row_id}.\n" for row_id, _ in phrases],
        "phrase_IDs": [row_id for row_id, _ in phrases],
        "sections": ["finalreport"] * len(phrases),
    }
    entry.update({cue: [[] for _ in phrases] for cue in CUES})
    entry["object_id"] = f"{image_id}_{bbox}"
    return entry


def box(image_id: str, name: str, coords: tuple[Any, ...], originals: tuple[Any, ...]
        ) -> dict[str, Any]:
    x1, y1, x2, y2 = coords
    ox1, oy1, ox2, oy2 = originals
    return {"object_id": f"{image_id}_{name}", "x1": x1, "y1": y1, "x2": x2, "y2": y2,
            "width": x2 - x1, "height": y2 - y1, "bbox_name": name, "synsets": ["C0000003"],
            "name": name.capitalize(), "original_x1": ox1, "original_y1": oy1,
            "original_x2": ox2, "original_y2": oy2, "original_width": ox2 - ox1,
            "original_height": oy2 - oy1}


def graph(image_id: str, study_id: int, regions: list[dict[str, Any]],
          boxes: list[dict[str, Any]]) -> dict[str, Any]:
    return {"image_id": image_id, "viewpoint": "AP", "patient_id": 19000123,
            "study_id": study_id, "gender": "F", "age_decile": "60-70",
            "reason_for_exam": "Evaluate for pneumonia.", "StudyOrder": 1,
            "StudyDateTime": "2184-03-12 14:05:30", "objects": boxes, "attributes": regions,
            "relationships": []}


GRAPH_A = graph(IMAGE_A, 58000456, [
    region(IMAGE_A, "left lower lung zone", [
        ("58000456|6", ["anatomicalfinding|yes|lung opacity", "nlp|yes|abnormal"]),
        ("58000456|9", ["anatomicalfinding|no|pneumothorax"]),
    ]),
    region(IMAGE_A, "cardiac silhouette", [
        ("58000456|2", ["anatomicalfinding|yes|enlarged cardiac silhouette"]),
    ]),
], [
    box(IMAGE_A, "left lower lung zone", (120, 100, 190, 160), (1640.0, 1365.5, 2595.0, 2184.0)),
    box(IMAGE_A, "cardiac silhouette", (80, 90, 150, 170), (1092.0, 1228.0, 2048.0, 2320.0)),
])
GRAPH_B = graph(IMAGE_B, 58000999, [
    region(IMAGE_B, "right lung", [
        ("58000999|3", ["disease|yes|pneumonia", "nlp|yes|abnormal"]),
        ("58000999|11", []),
    ]),
], [box(IMAGE_B, "right lung", (25, 11, 110, 134), (80.0, 150.0, 1250.0, 1830.0))])

ROWS_A = [
    (58000456, IMAGE_A, "58000456|6", 6, "left lower lung zone", "anatomicalfinding",
     "lung opacity", 1, "yes"),
    (58000456, IMAGE_A, "58000456|6", 6, "left lower lung zone", "nlp", "abnormal", 1, "yes"),
    (58000456, IMAGE_A, "58000456|9", 9, "left lower lung zone", "anatomicalfinding",
     "pneumothorax", 0, "no"),
    (58000456, IMAGE_A, "58000456|2", 2, "cardiac silhouette", "anatomicalfinding",
     "enlarged cardiac silhouette", 1, "yes"),
]
ROWS_B = [
    (58000999, IMAGE_B, "58000999|3", 3, "right lung", "disease", "pneumonia", 1, "yes"),
    (58000999, IMAGE_B, "58000999|3", 3, "right lung", "nlp", "abnormal", 1, "yes"),
]
BOXES_A = [
    (f"{IMAGE_A}_left lower lung zone", 120, 100, 190, 160, 70, 60, "left lower lung zone",
     "['C0000003']", "Left lower lung zone", 1640.0, 1365.5, 2595.0, 2184.0, 955.0, 818.5),
    (f"{IMAGE_A}_cardiac silhouette", 80, 90, 150, 170, 70, 80, "cardiac silhouette",
     "['C0000003']", "Cardiac silhouette", 1092.0, 1228.0, 2048.0, 2320.0, 956.0, 1092.0),
]
BOXES_B = [
    (f"{IMAGE_B}_right lung", 25, 11, 110, 134, 85, 123, "right lung", "['C0000003']",
     "Right lung", 80.0, 150.0, 1250.0, 1830.0, 1170.0, 1680.0),
]
TEXT_DTYPE = str(pd.Series(["a"]).astype("str").dtype)  # "str" from pandas 3 on, "object" before
EXPECTED_ATTRIBUTE_DTYPES = {
    "study_id": "int64", "sent_loc": "int64", "relation": "int64",
    **dict.fromkeys(("image_id", "row_id", "bbox", "categoryID", "label_name", "context"),
                    TEXT_DTYPE)}
EXPECTED_BOX_DTYPES = {
    "object_id": TEXT_DTYPE, **dict.fromkeys(("x1", "y1", "x2", "y2", "width", "height"), "int64"),
    "bbox_name": TEXT_DTYPE, "synsets": TEXT_DTYPE, "name": TEXT_DTYPE,
    **dict.fromkeys(("original_x1", "original_y1", "original_x2", "original_y2",
                     "original_width", "original_height"), "float64")}


def write_zip(path: Path, members: dict[str, Any], *, compression: int = zipfile.ZIP_STORED
              ) -> Path:
    """Members in the given order; dict values are dumped as JSON, bytes are written as is."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, content in members.items():
            archive.writestr(name, content if isinstance(content, bytes) else json.dumps(content))
    return path


def write_folder(folder: Path, members: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in members.items():
        data = content if isinstance(content, bytes) else json.dumps(content).encode()
        (folder / name.rsplit("/", 1)[-1]).write_bytes(data)
    return folder


def silver(root: Path) -> Path:
    return root / "silver_dataset"


def rows(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    return list(frame.itertuples(index=False, name=None))


def dtypes(frame: pd.DataFrame) -> dict[str, str]:
    return {name: str(dtype) for name, dtype in frame.dtypes.items()}


def zip_source(tmp_path: Path, members: dict[str, Any], **kwargs: Any) -> SceneGraphSource:
    return SceneGraphSource(write_zip(tmp_path / "scene_graph.zip", members, **kwargs), "zip")


# --- finding and reading -------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["zip", "dir", "doubled"])
def test_every_layout_gives_the_exact_rows_in_file_name_order(tmp_path: Path, layout: str) -> None:
    # A is written first but B's file name sorts first.
    members = {MEMBER_A: GRAPH_A, MEMBER_B: GRAPH_B}
    expected = {"zip": silver(tmp_path) / "scene_graph.zip",
                "dir": silver(tmp_path) / "scene_graph",
                "doubled": silver(tmp_path) / "scene_graph" / "scene_graph"}[layout]
    if layout == "zip":
        write_zip(expected, members)
    else:
        write_folder(expected, members)

    source = find_scene_graphs(tmp_path)
    result = read_scene_graphs(source, workers=1)

    assert source == SceneGraphSource(expected, "zip" if layout == "zip" else "dir")
    assert rows(result.attributes) == ROWS_B + ROWS_A
    assert rows(result.boxes) == BOXES_B + BOXES_A
    assert dtypes(result.attributes) == EXPECTED_ATTRIBUTE_DTYPES
    assert dtypes(result.boxes) == EXPECTED_BOX_DTYPES
    assert list(result.attributes.columns) == list(ATTRIBUTE_COLUMNS)
    assert list(result.boxes.columns) == list(BOX_COLUMNS)
    assert (result.files, result.skipped) == (2, [])


def test_source_prints_as_its_path(tmp_path: Path) -> None:
    assert str(SceneGraphSource(tmp_path / "scene_graph.zip", "zip")) == str(
        tmp_path / "scene_graph.zip")


def test_zip_is_preferred_over_an_extracted_folder(tmp_path: Path) -> None:
    write_folder(silver(tmp_path) / "scene_graph", {MEMBER_A: GRAPH_A})
    archive = write_zip(silver(tmp_path) / "scene_graph.zip", {MEMBER_B: GRAPH_B})

    assert find_scene_graphs(tmp_path) == SceneGraphSource(archive, "zip")


def test_no_scene_graphs_is_none(tmp_path: Path) -> None:
    (silver(tmp_path) / "scene_graph" / "scene_graph").mkdir(parents=True)
    (silver(tmp_path) / "scene_graph" / "notes.txt").write_text("not a graph")

    assert find_scene_graphs(tmp_path) is None
    assert find_scene_graphs(tmp_path / "elsewhere") is None


def test_non_graph_members_are_ignored(tmp_path: Path) -> None:
    source = zip_source(tmp_path, {
        "scene_graph/": b"", "scene_graph/README.txt": b"hello",
        f"__MACOSX/scene_graph/._{IMAGE_B}_SceneGraph.json": b"\x00\x05\x16\x07",
        f"scene_graph/._{IMAGE_A}_SceneGraph.json": b"\x00\x05\x16\x07",
        MEMBER_A: GRAPH_A,
    })

    result = read_scene_graphs(source, workers=1)

    assert (rows(result.attributes), result.files) == (ROWS_A, 1)


def test_integer_and_float_coordinates_merge_to_float(tmp_path: Path) -> None:
    floating = copy.deepcopy(GRAPH_B)
    floating["objects"][0]["x1"] = 25.5
    source = zip_source(tmp_path, {MEMBER_A: GRAPH_A, MEMBER_B: floating})

    boxes = read_scene_graphs(source, workers=1).boxes

    assert str(boxes["x1"].dtype) == "float64"
    assert boxes["x1"].tolist() == [25.5, 120.0, 80.0]
    assert str(boxes["y1"].dtype) == "int64"


def test_study_id_given_as_digits_is_read_as_integer(tmp_path: Path) -> None:
    text_id = copy.deepcopy(GRAPH_B)
    text_id["study_id"] = "58000999"
    source = zip_source(tmp_path, {MEMBER_B: text_id})

    assert rows(read_scene_graphs(source, workers=1).attributes) == ROWS_B


def test_progress_bar_goes_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    read_scene_graphs(zip_source(tmp_path, {MEMBER_B: GRAPH_B}), progress=True, workers=1)

    captured = capsys.readouterr()
    assert "scene graphs" in captured.err and "1/1" in captured.err
    assert captured.out == ""


def test_workers_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="workers must be at least 1, got 0"):
        read_scene_graphs(zip_source(tmp_path, {MEMBER_B: GRAPH_B}), workers=0)


def many_graphs(count: int) -> dict[str, Any]:
    """Graphs whose rows differ, some with float boxes, for comparing worker counts."""
    members: dict[str, Any] = {}
    for i in range(count):
        image_id = f"{i:08x}-00000000-00000000-00000000-00000000"
        study_id = 50000000 + i
        phrases = [(f"{study_id}|{k}", [f"disease|{'yes' if (i + k) % 2 else 'no'}|pneumonia"]
                    * (k % 3)) for k in range(i % 4 + 1)]
        coords = (i, 2 * i, i + 10, 2 * i + 10)
        originals = tuple(float(c) * 10 for c in coords) if i % 3 else coords
        members[f"scene_graph/{image_id}_SceneGraph.json"] = graph(
            image_id, study_id, [region(image_id, "left lung", phrases)],
            [box(image_id, "left lung", coords, originals)])
    return members


def test_one_and_two_workers_give_equal_results(tmp_path: Path) -> None:
    members = many_graphs(24)
    members["scene_graph/0000000c-00000000-00000000-00000000-00000000_SceneGraph.json"] = b"{"
    source = zip_source(tmp_path, members, compression=zipfile.ZIP_DEFLATED)

    one = read_scene_graphs(source, workers=1, skip_bad=True)
    two = read_scene_graphs(source, workers=2, skip_bad=True)

    pd.testing.assert_frame_equal(one.attributes, two.attributes, check_exact=True)
    pd.testing.assert_frame_equal(one.boxes, two.boxes, check_exact=True)
    assert (one.files, one.skipped) == (two.files, two.skipped)
    assert one.files == 23 and len(one.skipped) == 1
    assert len(one.attributes) == sum((k % 3) for i in range(24) if i != 12
                                      for k in range(i % 4 + 1))


def test_two_workers_raise_the_first_bad_graph_in_file_order(tmp_path: Path) -> None:
    members = many_graphs(16)
    for i in (5, 11):
        members[f"scene_graph/{i:08x}-00000000-00000000-00000000-00000000_SceneGraph.json"] = b"["
    source = zip_source(tmp_path, members)

    with pytest.raises(DataError, match=r"scene_graph/00000005-0+-0+-0+-0+_SceneGraph\.json: "):
        read_scene_graphs(source, workers=2)


def test_a_worker_that_dies_stops_the_read_with_one_line(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # multiprocessing.Pool would wait forever for the dead worker's pieces (an OOM kill on a
    # small machine); the read must end with an error instead.
    source = zip_source(tmp_path, many_graphs(16))
    parent = os.getpid()

    def killed(*args: object) -> None:
        if os.getpid() != parent:  # in a worker: die as the OOM killer would kill it
            os.kill(os.getpid(), signal.SIGKILL)

    monkeypatch.setattr(scenegraph, "_fast_rows", killed)
    with pytest.raises(DataError) as info:
        read_scene_graphs(source, workers=2)
    assert str(info.value) == (f"{source.path}: a scene-graph reading process ended without "
                               f"finishing its graphs (killed, or out of memory?); nothing was "
                               f"written")


# The columns a build needs, in an order of their own.
CHOSEN_LABELS = ["relation", "image_id", "row_id", "bbox", "categoryID", "label_name"]
CHOSEN_BOXES = ["object_id", "bbox_name", "x1", "x2", "width", "original_x1"]


@pytest.mark.parametrize("workers", [1, 2])
def test_chosen_columns_equal_those_of_the_full_tables(tmp_path: Path, workers: int) -> None:
    members = many_graphs(24)
    # Whole tasks of integer originals, then tasks of fractional ones: joined, they are float.
    for member in list(members.values())[:12]:
        for obj in member["objects"]:
            obj.update({key: int(value) for key, value in obj.items()
                        if key.startswith("original_")})
    source = zip_source(tmp_path, members)

    full = read_scene_graphs(source, workers=1)
    chosen = read_scene_graphs(source, workers=workers, attribute_columns=CHOSEN_LABELS,
                               box_columns=CHOSEN_BOXES)

    pd.testing.assert_frame_equal(chosen.attributes, full.attributes[CHOSEN_LABELS],
                                  check_exact=True)
    pd.testing.assert_frame_equal(chosen.boxes, full.boxes[CHOSEN_BOXES], check_exact=True)
    assert str(chosen.boxes["original_x1"].dtype) == "float64"
    assert chosen.boxes["original_x1"].tolist()[::13] == [0.0, 130.0]
    assert (chosen.files, chosen.skipped) == (24, [])


def test_categorical_columns_hold_the_same_values_however_the_work_is_cut(tmp_path: Path
                                                                         ) -> None:
    source = zip_source(tmp_path, many_graphs(24))
    coded = ["image_id", "row_id", "label_name", "bbox_name"]
    chosen = {"attribute_columns": CHOSEN_LABELS, "box_columns": CHOSEN_BOXES}

    plain = read_scene_graphs(source, workers=1, **chosen)
    one, two = (read_scene_graphs(source, workers=workers, categorical=coded, **chosen)
                for workers in (1, 2))

    # Tasks of 6 and of 3 graphs each: the pieces' categories differ, the joined ones do not.
    pd.testing.assert_frame_equal(one.attributes, two.attributes, check_exact=True)
    pd.testing.assert_frame_equal(one.boxes, two.boxes, check_exact=True)
    assert dtypes(one.attributes) == {**dtypes(plain.attributes), **dict.fromkeys(
        ["image_id", "row_id", "label_name"], "category")}
    assert list(one.attributes["row_id"].cat.categories) == sorted(set(plain.attributes["row_id"]))
    for table in ("attributes", "boxes"):
        decoded = getattr(one, table).astype({name: "str" for name in coded
                                              if name in getattr(one, table)})
        pd.testing.assert_frame_equal(decoded, getattr(plain, table), check_exact=True)


def test_only_text_columns_can_be_categorical(tmp_path: Path) -> None:
    source = zip_source(tmp_path, {MEMBER_B: GRAPH_B})

    with pytest.raises(ValueError, match=r"^categorical column\(s\) 'x1' are not text columns; "
                                         r"expected some of image_id, row_id, bbox, "):
        read_scene_graphs(source, categorical=["bbox", "x1"])


def test_no_columns_still_count_the_rows(tmp_path: Path) -> None:
    source = zip_source(tmp_path, {MEMBER_A: GRAPH_A, MEMBER_B: GRAPH_B})

    result = read_scene_graphs(source, workers=1, attribute_columns=[], box_columns=())

    assert (len(result.attributes), len(result.boxes)) == (6, 3)
    assert list(result.attributes.columns) == list(result.boxes.columns) == []


def test_unknown_column_is_refused(tmp_path: Path) -> None:
    source = zip_source(tmp_path, {MEMBER_B: GRAPH_B})

    with pytest.raises(ValueError, match=r"^unknown box column\(s\) 'image_id'; expected some "
                                         r"of object_id, x1, y1, "):
        read_scene_graphs(source, box_columns=["bbox_name", "image_id"])


# --- bad input ---------------------------------------------------------------------------------


def broken(change: str) -> Any:
    """GRAPH_A with one defect; returns a graph, or bytes for undecodable content."""
    bad = copy.deepcopy(GRAPH_A)
    first = bad["attributes"][0]
    if change == "json":
        return b'{"image_id": '
    if change == "not utf-8":
        return b'{"image_id": "\xff"}'
    if change == "array":
        return [bad]
    if change == "no objects":
        del bad["objects"]
    elif change == "study_id":
        bad["study_id"] = "abc"
    elif change == "unequal":
        first["phrase_IDs"].pop()
    elif change == "label":
        first["attributes"][1][0] = "anatomicalfinding|maybe|pneumothorax"
    elif change == "label type":
        first["attributes"][0][1] = None
    elif change == "phrase id":
        first["phrase_IDs"][1] = "58000456|nine"
    elif change == "region bbox":
        del bad["attributes"][1]["bbox_name"]
    elif change == "box key":
        del bad["objects"][0]["original_height"]
    elif change == "box bool":
        bad["objects"][1]["x1"] = True
    elif change == "box text":
        bad["objects"][1]["name"] = 7
    elif change == "box nan":
        return json.dumps(bad).replace('"y2": 160', '"y2": NaN').encode()
    return bad


BAD_GRAPHS = {
    "json": "not valid JSON (Expecting value: line 1 column 14 (char 13))",
    "not utf-8": "not valid JSON ('utf-8' codec can't decode byte 0xff in position 14: "
                 "invalid start byte)",
    "array": "graph: expected an object, got an array",
    "no objects": "graph: missing key 'objects'",
    "study_id": "graph.study_id: expected an integer, got a string 'abc'",
    "unequal": "attributes[0]: expected 'attributes' and 'phrase_IDs' of equal length, got 2 and 1",
    "label": "attributes[0].attributes[1][0]: expected 'category|yes/no|label', "
             "got a string 'anatomicalfinding|maybe|pneumothorax'",
    "label type": "attributes[0].attributes[0][1]: expected 'category|yes/no|label', got null",
    "phrase id": "attributes[0].phrase_IDs[1]: expected '<study_id>|<sentence index>', "
                 "got a string '58000456|nine'",
    "region bbox": "attributes[1]: missing key 'bbox_name'",
    "box key": "objects[0]: missing key 'original_height'",
    "box bool": "objects[1].x1: expected an integer or a number, got a boolean True",
    "box text": "objects[1].name: expected a string, got an integer 7",
    "box nan": "objects[0].y2: expected a finite number, got nan",
}


@pytest.mark.parametrize("change", BAD_GRAPHS)
def test_bad_graph_in_zip_is_named_in_one_line(tmp_path: Path, change: str) -> None:
    source = zip_source(tmp_path, {MEMBER_A: broken(change), MEMBER_B: GRAPH_B})

    with pytest.raises(DataError) as caught:
        read_scene_graphs(source, workers=1)

    assert str(caught.value) == f"{source.path}: {MEMBER_A}: {BAD_GRAPHS[change]}"


@pytest.mark.parametrize("change", BAD_GRAPHS)
def test_skip_bad_leaves_out_the_whole_bad_graph(tmp_path: Path, change: str) -> None:
    source = zip_source(tmp_path, {MEMBER_A: broken(change), MEMBER_B: GRAPH_B})

    result = read_scene_graphs(source, workers=1, skip_bad=True)

    assert rows(result.attributes) == ROWS_B
    assert rows(result.boxes) == BOXES_B
    assert (result.files, result.skipped) == (1, [(MEMBER_A, BAD_GRAPHS[change])])


def test_bad_graph_in_folder_names_the_file(tmp_path: Path) -> None:
    folder = write_folder(silver(tmp_path) / "scene_graph",
                          {MEMBER_A: broken("unequal"), MEMBER_B: GRAPH_B})

    with pytest.raises(DataError) as caught:
        read_scene_graphs(SceneGraphSource(folder, "dir"), workers=1)

    assert str(caught.value) == (f"{folder / f'{IMAGE_A}_SceneGraph.json'}: "
                                 f"{BAD_GRAPHS['unequal']}")


def test_corrupt_member_is_named_and_skippable(tmp_path: Path) -> None:
    source = zip_source(tmp_path, {MEMBER_A: GRAPH_A, MEMBER_B: GRAPH_B})
    data = source.path.read_bytes()
    at = data.index(b"lung opacity")  # inside A's stored JSON: the CRC no longer matches
    source.path.write_bytes(data[:at] + b"lung_opacity" + data[at + 12:])
    what = f"unreadable zip member (Bad CRC-32 for file {MEMBER_A!r})"

    with pytest.raises(DataError) as caught:
        read_scene_graphs(source, workers=1)
    result = read_scene_graphs(source, workers=1, skip_bad=True)

    assert str(caught.value) == f"{source.path}: {MEMBER_A}: {what}"
    assert (rows(result.attributes), result.files, result.skipped) == (ROWS_B, 1,
                                                                       [(MEMBER_A, what)])


def truncated_zip(tmp_path: Path, cut: int, **kwargs: Any) -> tuple[SceneGraphSource, int]:
    """A zip of A then B, cut ``cut`` bytes before B's data ends; returns where B's data ends."""
    source = zip_source(tmp_path, {MEMBER_A: GRAPH_A, MEMBER_B: GRAPH_B}, **kwargs)
    data = source.path.read_bytes()
    end = data.index(b"PK\x01\x02")  # B is the last member: its data ends at the directory
    source.path.write_bytes(data[:end - cut])
    return source, end


def test_truncated_zip_is_named_in_one_line(tmp_path: Path) -> None:
    source, _ = truncated_zip(tmp_path, 100)

    with pytest.raises(DataError) as caught:
        read_scene_graphs(source, workers=1)

    assert str(caught.value) == (
        f"{source.path}: central directory: not readable (File is not a zip file), the zip is "
        f"truncated or corrupt; download it again, or run `cxrvqa scene-tabular --skip-bad` to "
        f"read the members before the damage")


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_skip_bad_reads_a_truncated_zip_up_to_the_damage(tmp_path: Path, compression: int
                                                         ) -> None:
    source, end = truncated_zip(tmp_path, 100, compression=compression)

    result = read_scene_graphs(source, workers=2, skip_bad=True)

    assert (rows(result.attributes), rows(result.boxes)) == (ROWS_A, BOXES_A)
    assert result.files == 1
    assert result.skipped == [(MEMBER_B, f"truncated: its data ends at byte {end}, "
                                         f"the file has {end - 100} bytes")]


def test_skip_bad_on_a_zip_cut_between_members_reads_them_all(tmp_path: Path) -> None:
    source, end = truncated_zip(tmp_path, 0)

    result = read_scene_graphs(source, workers=1, skip_bad=True)

    assert rows(result.attributes) == ROWS_B + ROWS_A
    assert (result.files, result.skipped) == (2, [(f"<byte {end}>", (
        f"no zip member header at byte {end} of {end}: the archive is truncated or corrupt "
        f"from here on"))])


def test_salvaged_member_with_bad_data_is_skipped(tmp_path: Path) -> None:
    source, end = truncated_zip(tmp_path, 100)
    data = source.path.read_bytes()
    at = data.index(b"lung opacity")
    source.path.write_bytes(data[:at] + b"lung_opacity" + data[at + 12:])

    result = read_scene_graphs(source, workers=1, skip_bad=True)

    assert (result.files, rows(result.attributes)) == (0, [])
    assert result.skipped == [
        (MEMBER_B, f"truncated: its data ends at byte {end}, the file has {end - 100} bytes"),
        (MEMBER_A, f"unreadable zip member (Bad CRC-32 for file {MEMBER_A!r})"),
    ]


class _Unseekable(io.RawIOBase):
    """A write-only stream: zipfile then puts sizes in data descriptors after the data."""

    def __init__(self) -> None:
        self.data = io.BytesIO()

    def writable(self) -> bool:
        return True

    def write(self, chunk: Any) -> int:
        return self.data.write(chunk)


def test_salvage_stops_at_a_data_descriptor(tmp_path: Path) -> None:
    stream = _Unseekable()
    with zipfile.ZipFile(stream, "w") as archive:
        archive.writestr(MEMBER_A, json.dumps(GRAPH_A))
    path = tmp_path / "scene_graph.zip"
    path.write_bytes(stream.data.getvalue()[:-30])

    result = read_scene_graphs(SceneGraphSource(path, "zip"), workers=1, skip_bad=True)

    assert result.files == 0
    assert result.skipped == [(MEMBER_A, "its sizes are in a data descriptor, so neither it nor "
                                         "later members can be found without the central "
                                         "directory")]


def test_salvage_reads_zip64_local_headers(tmp_path: Path) -> None:
    path = tmp_path / "scene_graph.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in ((MEMBER_A, GRAPH_A), (MEMBER_B, GRAPH_B)):
            with archive.open(name, "w", force_zip64=True) as member:
                member.write(json.dumps(content).encode())
    path.write_bytes(path.read_bytes()[:-40])

    result = read_scene_graphs(SceneGraphSource(path, "zip"), workers=1, skip_bad=True)

    assert rows(result.attributes) == ROWS_B + ROWS_A
    assert result.files == 2


@pytest.mark.parametrize("layout", ["dir", "zip", "salvaged stored", "salvaged deflated"])
def test_an_oversized_member_is_a_bad_graph(tmp_path: Path, layout: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # Before: a member of any size was read whole: a zip bomb's 2.5 GB member was an internal
    # error (MemoryError) or an out-of-memory kill.
    big = json.dumps(GRAPH_B).encode() + b" " * 5000  # still a valid graph, just large
    limit = len(json.dumps(GRAPH_A)) + 100
    monkeypatch.setattr(scenegraph, "MAX_GRAPH_BYTES", limit)
    members = {MEMBER_A: GRAPH_A, MEMBER_B: big}
    if layout == "dir":
        source = SceneGraphSource(write_folder(silver(tmp_path) / "scene_graph", members), "dir")
    else:
        compression = zipfile.ZIP_DEFLATED if layout.endswith("deflated") else zipfile.ZIP_STORED
        source = zip_source(tmp_path, members, compression=compression)
        if layout.startswith("salvaged"):  # no central directory: read by local headers
            data = source.path.read_bytes()
            source.path.write_bytes(data[:data.index(b"PK\x01\x02")])
    result = read_scene_graphs(source, workers=1, skip_bad=True)
    assert rows(result.attributes) == ROWS_A
    skipped = [(name, why) for name, why in result.skipped if not name.startswith("<byte")]
    assert [name.rsplit("/", 1)[-1] for name, _ in skipped] == [MEMBER_B.rsplit("/", 1)[-1]]
    assert "bytes" in skipped[0][1] and str(limit) in skipped[0][1]


@pytest.mark.parametrize("content", [json.dumps(GRAPH_A).encode(), b""])
def test_salvage_refuses_a_deflate_stream_that_stops_short(content: bytes) -> None:
    # The size bound inflates step by step, and a step returns what a cut stream holds where
    # zlib.decompress failed: an empty member cut to nothing even passed its CRC (0).
    deflater = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    raw = deflater.compress(content) + deflater.flush()
    cut = raw[:len(raw) // 2]
    entry = Salvaged(0, len(cut), zipfile.ZIP_DEFLATED, zlib.crc32(content))
    with pytest.raises(zlib.error, match="incomplete or truncated stream"):
        read_member(io.BytesIO(cut), MEMBER_A, entry, 1 << 20)
    whole = Salvaged(0, len(raw), zipfile.ZIP_DEFLATED, zlib.crc32(content))
    assert read_member(io.BytesIO(raw), MEMBER_A, whole, 1 << 20) == content


def test_zip_without_graphs_is_an_error(tmp_path: Path) -> None:
    source = zip_source(tmp_path, {"scene_graph/README.txt": b"hello"})

    with pytest.raises(DataError) as caught:
        read_scene_graphs(source, workers=1)

    assert str(caught.value) == f"{source.path}: expected *_SceneGraph.json files, found none"


# --- writing the tabular files -------------------------------------------------------------------


def read_back(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    options: dict[str, Any] = {"sep": "\t", "keep_default_na": False}
    return (pd.read_csv(folder / ATTRIBUTES_FILE, dtype=ATTRIBUTE_DTYPES, **options),
            pd.read_csv(folder / BOXES_FILE, dtype=BOX_DTYPES, **options))


def test_written_tables_read_back_equal_to_the_frames(tmp_path: Path) -> None:
    write_zip(silver(tmp_path) / "scene_graph.zip", {MEMBER_A: GRAPH_A, MEMBER_B: GRAPH_B})
    folder = silver(tmp_path) / "scene_tabular"

    result = write_scene_tabular(tmp_path, workers=1)
    attributes, boxes = read_back(folder)

    pd.testing.assert_frame_equal(attributes, result.attributes, check_exact=True)
    pd.testing.assert_frame_equal(boxes, result.boxes, check_exact=True)
    assert rows(attributes) == ROWS_B + ROWS_A
    assert sorted(path.name for path in folder.iterdir()) == [ATTRIBUTES_FILE, BOXES_FILE]
    assert (folder / ATTRIBUTES_FILE).read_text().splitlines()[:2] == [
        "study_id\timage_id\trow_id\tsent_loc\tbbox\tcategoryID\tlabel_name\trelation\tcontext",
        f"58000999\t{IMAGE_B}\t58000999|3\t3\tright lung\tdisease\tpneumonia\t1\tyes"]
    assert (folder / BOXES_FILE).read_text().splitlines()[1] == (
        f"{IMAGE_B}_right lung\t25\t11\t110\t134\t85\t123\tright lung\t['C0000003']\t"
        f"Right lung\t80.0\t150.0\t1250.0\t1830.0\t1170.0\t1680.0")


def test_skipped_graphs_are_listed_beside_the_tables_until_a_complete_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_zip(silver(tmp_path) / "scene_graph.zip", {MEMBER_A: broken("box nan"), MEMBER_B: GRAPH_B})
    folder = silver(tmp_path) / "scene_tabular"
    listing = folder / "skipped_scene_graphs.txt"
    layout = SourceLayout(tmp_path / "mimic-cxr-jpg", tmp_path, tmp_path / "mimiciv")

    assert main(["scene-tabular", "--chest-imagenome-dir", str(tmp_path), "--skip-bad"]) == 0
    said = capsys.readouterr().out.splitlines()
    labels, _, _ = load_silver_rows(layout)  # a build reading the tables says what they lack

    assert listing.read_text() == f"{MEMBER_A}\t{BAD_GRAPHS['box nan']}\n"
    assert said[-1] == f"the tables lack the skipped graphs; all 1 are listed in {listing}"
    assert capsys.readouterr().err == (
        f"cxrvqa: note: {folder}: the tables lack 1 unreadable scene graph(s) that scene-tabular "
        f"--skip-bad left out (listed in {listing.name}); those images have no silver labels "
        f"here, so a question on one of them fails\n")
    assert set(labels["image_id"]) == {IMAGE_B}
    write_zip(silver(tmp_path) / "scene_graph.zip", {MEMBER_A: GRAPH_A, MEMBER_B: GRAPH_B})
    write_scene_tabular(tmp_path, workers=1)
    load_silver_rows(layout)
    assert sorted(path.name for path in folder.iterdir()) == [ATTRIBUTES_FILE, BOXES_FILE]
    assert capsys.readouterr().err == ""


def test_writing_without_scene_graphs_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError) as caught:
        write_scene_tabular(tmp_path)

    assert str(caught.value) == (
        f"{silver(tmp_path)}: scene_graph.zip or scene_graph/: expected Chest ImaGenome scene "
        f"graphs (*_SceneGraph.json), found neither")
    assert not silver(tmp_path).exists()


def test_tables_written_by_two_workers_read_back_equal(tmp_path: Path) -> None:
    # Coordinates are integers in some tasks and fractions in others.
    write_zip(silver(tmp_path) / "scene_graph.zip", many_graphs(24))

    result = write_scene_tabular(tmp_path, workers=2)
    attributes, boxes = read_back(silver(tmp_path) / "scene_tabular")

    pd.testing.assert_frame_equal(attributes, result.attributes, check_exact=True)
    pd.testing.assert_frame_equal(boxes, result.boxes, check_exact=True)
    assert str(boxes["original_x1"].dtype) == "float64" and len(boxes) == 24


def test_writer_returns_the_chosen_columns_and_writes_them_all(tmp_path: Path) -> None:
    write_zip(silver(tmp_path) / "scene_graph.zip", many_graphs(24))

    result = write_scene_tabular(tmp_path, workers=2, attribute_columns=["image_id"],
                                 box_columns=[])
    attributes, boxes = read_back(silver(tmp_path) / "scene_tabular")

    full = read_scene_graphs(find_scene_graphs(tmp_path), workers=1)
    pd.testing.assert_frame_equal(attributes, full.attributes, check_exact=True)
    pd.testing.assert_frame_equal(boxes, full.boxes, check_exact=True)
    pd.testing.assert_frame_equal(result.attributes, attributes[["image_id"]], check_exact=True)
    assert len(result.boxes) == 24 and list(result.boxes.columns) == []


@pytest.mark.parametrize("previous", [None, "old table\n"])
def test_failed_write_leaves_no_partial_file(tmp_path: Path, previous: str | None) -> None:
    members = many_graphs(24)
    # Sorts last, so the tasks before it have already been written when it fails.
    members["scene_graph/ffffffff-00000000-00000000-00000000-00000000_SceneGraph.json"] = b"{"
    write_zip(silver(tmp_path) / "scene_graph.zip", members)
    folder = silver(tmp_path) / "scene_tabular"
    folder.mkdir()
    if previous is not None:
        for name in (ATTRIBUTES_FILE, BOXES_FILE):
            (folder / name).write_text(previous)

    with pytest.raises(DataError, match="ffffffff-0+-0+-0+-0+_SceneGraph.json: not valid JSON"):
        write_scene_tabular(tmp_path, workers=1)

    expected = [] if previous is None else [ATTRIBUTES_FILE, BOXES_FILE]
    assert sorted(path.name for path in folder.iterdir()) == expected
    assert all((folder / name).read_text() == previous for name in expected)


# Every character but a carriage return and NUL: Python's csv writer leaves a lone "\r"
# unquoted and pandas then reads it as a line end; pandas 2.0's reader (which this test reads
# back with) cuts a text at NUL. No Chest ImaGenome name, label or id contains either.
TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\r\x00"),
               max_size=6)
NUMBER = st.integers(-5000, 5000) | st.floats(-5000, 5000, allow_nan=False).map(
    lambda value: round(value, 2))


@st.composite
def random_graph(draw: st.DrawFn, index: int) -> dict[str, Any]:
    image_id = f"{index:08x}-ffffffff-ffffffff-ffffffff-ffffffff"
    # A category never holds "|"; a label may (everything after the second "|").
    labels = draw(st.lists(st.tuples(TEXT.filter(lambda text: text and "|" not in text),
                                     st.sampled_from(["yes", "no"]), TEXT.filter(bool)),
                           max_size=3))
    entry = region(image_id, draw(TEXT), [(f"{draw(TEXT)}|{draw(st.integers(0, 99))}",
                                           ["|".join(label) for label in labels])])
    obj = {name: draw(NUMBER) for name in BOX_COLUMNS if name not in BOX_DTYPES}
    obj.update(object_id=draw(TEXT), bbox_name=draw(TEXT), name=draw(TEXT),
               synsets=draw(st.lists(TEXT, max_size=2)))
    return graph(image_id, draw(st.integers(1, 10**9)), [entry], [obj])


@settings(deadline=None, max_examples=30)
@given(st.integers(1, 4).flatmap(lambda count: st.tuples(*map(random_graph, range(count)))))
def test_any_text_survives_the_tsv_round_trip(graphs: tuple[dict[str, Any], ...]) -> None:
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        write_folder(silver(root) / "scene_graph",
                     {f"{g['image_id']}_SceneGraph.json": g for g in graphs})

        result = write_scene_tabular(root, workers=1)
        attributes, boxes = read_back(silver(root) / "scene_tabular")

    pd.testing.assert_frame_equal(attributes, result.attributes, check_exact=True)
    pd.testing.assert_frame_equal(boxes, result.boxes, check_exact=True)


# --- the msgspec fast path and the checked path agree ---------------------------------------------

def both_paths(data: bytes) -> tuple[Any, Any]:
    """(fast rows or None, checked rows or the checked path's error message) of one graph."""
    from cxrvqa.build import scenegraph

    fast = scenegraph._fast_rows(data, {}, {})
    try:
        checked_graph = scenegraph._decode(data)
        checked: Any = (scenegraph._label_rows(checked_graph, {}),
                        scenegraph._box_rows(checked_graph, {}))
    except scenegraph._BadGraph as bad:
        checked = str(bad)
    return fast, checked


def extra_keys(graph: dict[str, Any]) -> dict[str, Any]:
    """A graph with unknown keys at every level the fast path decodes."""
    graph = copy.deepcopy(graph)
    graph["unknown"] = {"nested": [1, 2.5, None]}
    graph["attributes"][0]["unknown"] = [[]]
    graph["objects"][0]["unknown"] = "x"
    return graph


GOOD_GRAPHS = {
    "a": GRAPH_A, "b": GRAPH_B, "study_id digits": GRAPH_A | {"study_id": "58000456"},
    "unknown keys": extra_keys(GRAPH_A),
    "nested synsets": {**GRAPH_B, "objects": [GRAPH_B["objects"][0] | {
        "synsets": [1.5, -0.0, {"b": [True, None]}, "\u2265"]}]},
}


@pytest.mark.parametrize("name", GOOD_GRAPHS)
def test_fast_path_gives_the_checked_rows(name: str) -> None:
    fast, checked = both_paths(json.dumps(GOOD_GRAPHS[name], indent=2).encode())
    assert fast is not None and fast == checked


def test_a_number_beyond_2_53_is_refused_by_both_paths() -> None:
    huge = {**GRAPH_B, "objects": [GRAPH_B["objects"][0] | {"x1": 10**30}]}
    fast, checked = both_paths(json.dumps(huge).encode())
    assert fast is None
    assert checked == "objects[0].x1: expected a number of magnitude below 2**53, got one of 31 digits"


@pytest.mark.parametrize("change", BAD_GRAPHS)
def test_fast_path_hands_every_bad_graph_to_the_checked_path(change: str) -> None:
    bad = broken(change)
    fast, checked = both_paths(bad if isinstance(bad, bytes) else json.dumps(bad).encode())
    assert fast is None and checked == BAD_GRAPHS[change]


def test_a_float_beyond_2_53_is_refused_by_both_paths() -> None:
    big = {**GRAPH_B, "objects": [GRAPH_B["objects"][0] | {"x1": 1e308, "y1": 1e308}]}
    fast, checked = both_paths(json.dumps(big).encode())
    assert fast is None and checked.startswith("objects[0].x1: expected a number of magnitude "
                                               "below 2**53")


@settings(deadline=None, max_examples=40)
@given(st.integers(0, 50).flatmap(random_graph))
def test_fast_and_checked_paths_agree_on_any_graph(graph_value: dict[str, Any]) -> None:
    fast, checked = both_paths(json.dumps(graph_value).encode())
    assert fast == checked or (fast is None and isinstance(checked, str))
