"""Export to Parquet and to a Hugging Face folder, read both back, compare with the JSON."""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from cxrvqa.build.output import OUTPUT_KEYS, ans2idx_bytes, dataset_bytes
from cxrvqa.errors import DataError
from cxrvqa.tools import export as export_module
from cxrvqa.tools.evaluate import default_vocabulary
from cxrvqa.tools.export import MULTIHOT_COLUMN, ExportError, export_dataset
from cxrvqa.vocab import ARGUMENT_KINDS

ANSWERS = ["yes", "no", "left lung", "right lung", "pleural effusion", "ap", "m"]
SPLITS = ("train", "valid", "test")


def _arguments(**kinds: list[str]) -> dict[str, dict[str, str]]:
    return {kind: {str(i): name for i, name in enumerate(kinds.get(kind, []))}
            for kind in ARGUMENT_KINDS}


def _records(split: str) -> list[dict[str, Any]]:
    cases = [
        (_arguments(object=["left lung"]), ["yes"]),
        (_arguments(object=["left lung", "right lung"], attribute=["pleural effusion"]), ["no"]),
        (_arguments(attribute=["pleural effusion"]), ["left lung", "right lung"]),
        (_arguments(), []),
        (_arguments(viewpos=["AP"], gender=["M"], category=["anatomicalfinding"]), ["ap", "m"]),
    ]
    return [{"split": split, "idx": 10 * idx, "subject_id": "10000032",
             "study_id": "50414267", "image_id": f"img-{idx}",
             "image_path": f"p10/p10000032/s50414267/img-{idx}.jpg",
             "question": f"Is the caf\u00e9 \u2265 {idx}?", "semantic_type": "verify",
             "content_type": "anatomy", "template": "Is there ${object}?",
             "template_program": f"program_{idx}", "template_arguments": arguments,
             "answer": answer}
            for idx, (arguments, answer) in enumerate(cases)]


def _build(folder: Path, splits: tuple[str, ...] = SPLITS) -> Path:
    folder.mkdir(parents=True)
    for split in splits:
        (folder / f"{split}.json").write_bytes(dataset_bytes(_records(split)))
    (folder / "ans2idx.json").write_bytes(ans2idx_bytes(ANSWERS))
    return folder


def _as_json_record(row: dict[str, Any], ans2idx: dict[str, int]) -> dict[str, Any]:
    """A read-back row in the JSON shape, after checking its multi-hot column against answer."""
    multihot = row.pop(MULTIHOT_COLUMN)
    assert len(multihot) == len(ans2idx)
    assert {answer for answer, index in ans2idx.items() if multihot[index]} == set(row["answer"])
    assert set(multihot) <= {0, 1}
    row["template_arguments"] = {kind: {str(i): name for i, name in enumerate(names)}
                                 for kind, names in row["template_arguments"].items()}
    return row


def _assert_same_as_json(dataset: Path, out: Path, rows: dict[str, list[dict[str, Any]]]) -> None:
    ans2idx = json.loads((out / "ans2idx.json").read_text())
    assert ans2idx == json.loads((dataset / "ans2idx.json").read_text())
    for split in SPLITS:
        expected = json.loads((dataset / f"{split}.json").read_text())
        got = [_as_json_record(row, ans2idx) for row in rows[split]]
        assert got == expected
        assert [list(row) for row in got] == [list(OUTPUT_KEYS)] * len(expected)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One build exported once per format (importing datasets is slow)."""
    pytest.importorskip("pyarrow")
    pytest.importorskip("datasets")
    root = tmp_path_factory.mktemp("export")
    dataset = _build(root / "dataset")
    reports = {fmt: export_dataset(dataset, root / fmt, fmt) for fmt in ("parquet", "hf")}
    return {"dataset": dataset, "root": root, "reports": reports}


def test_parquet_round_trip_keeps_every_field(exported: dict[str, Any]) -> None:
    import pyarrow.parquet as pq

    out = exported["root"] / "parquet"
    assert sorted(path.name for path in out.iterdir()) == [
        "ans2idx.json", "test.parquet", "train.parquet", "valid.parquet"]
    rows = {split: pq.read_table(out / f"{split}.parquet").to_pylist() for split in SPLITS}
    _assert_same_as_json(exported["dataset"], out, rows)


def test_parquet_schema_has_struct_arguments_and_fixed_multihot(exported: dict[str, Any]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(exported["root"] / "parquet" / "train.parquet")
    assert schema.names == [*OUTPUT_KEYS, MULTIHOT_COLUMN]
    assert schema.field("template_arguments").type == pa.struct(
        [(kind, pa.list_(pa.string())) for kind in ARGUMENT_KINDS])
    assert schema.field("answer").type == pa.list_(pa.string())
    assert schema.field("idx").type == pa.int64()
    assert schema.field(MULTIHOT_COLUMN).type == pa.list_(pa.int8(), len(ANSWERS))


def test_hf_folder_loads_with_load_from_disk(exported: dict[str, Any]) -> None:
    import datasets

    loaded = datasets.load_from_disk(str(exported["root"] / "hf"))
    assert isinstance(loaded, datasets.DatasetDict)
    assert sorted(loaded) == sorted(SPLITS)
    assert [loaded[split].split for split in SPLITS] == list(SPLITS)
    features = loaded["test"].features
    assert features["answer"] == datasets.List(datasets.Value("string"))
    assert features[MULTIHOT_COLUMN] == datasets.List(datasets.Value("int8"), length=len(ANSWERS))
    assert set(features["template_arguments"]) == set(ARGUMENT_KINDS)
    rows = {split: loaded[split].to_list() for split in SPLITS}
    _assert_same_as_json(exported["dataset"], exported["root"] / "hf", rows)


def test_reports_count_rows_read_back(exported: dict[str, Any]) -> None:
    for fmt, report in exported["reports"].items():
        assert report.ok
        assert report.exported == {"train": 5, "valid": 5, "test": 5}
        assert report.render().splitlines()[0] == f"{fmt} export: {exported['root'] / fmt}"


def test_only_built_splits_are_exported_into_an_empty_folder(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    dataset = _build(tmp_path / "dataset", splits=("test",))
    (tmp_path / "out").mkdir()
    report = export_dataset(dataset, tmp_path / "out", "parquet")
    assert report.records == report.exported == {"test": 5}
    assert sorted(path.name for path in tmp_path.iterdir()) == ["dataset", "out"]


def test_answer_outside_ans2idx_is_a_data_error_and_writes_nothing(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    dataset = _build(tmp_path / "dataset")
    records = _records("valid")
    records[2]["answer"] = ["maybe"]
    (dataset / "valid.json").write_bytes(dataset_bytes(records))
    with pytest.raises(DataError, match=r"valid\.json: record 2 \(idx 20\): answer 'maybe' is not"):
        export_dataset(dataset, tmp_path / "out", "parquet")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["dataset"]


@pytest.mark.parametrize(("change", "message"), [
    ({"template_arguments": {**_arguments(), "object": {"1": "left lung"}}}, "template_arguments"),
    ({"idx": "0"}, "idx: expected an integer"),
    ({"answer": "yes"}, "answer: expected a list of strings"),
    ({"extra": 1}, "expected exactly the keys"),
])
def test_records_that_would_not_round_trip_are_data_errors(tmp_path: Path, change: dict[str, Any],
                                                           message: str) -> None:
    pytest.importorskip("pyarrow")
    dataset = _build(tmp_path / "dataset")
    records = _records("test")
    records[0].update(change)
    (dataset / "test.json").write_bytes(dataset_bytes(records))
    with pytest.raises(DataError, match=message):
        export_dataset(dataset, tmp_path / "out", "parquet")


def test_failed_write_leaves_no_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pyarrow")
    dataset = _build(tmp_path / "dataset")

    def fail(*_args: object) -> None:  # as pyarrow's writer fails on a full disk: no file name
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(export_module, "_write_parquet", fail)
    # Before: a bare OSError, which the command line showed as "cxrvqa: disk full ...".
    with pytest.raises(DataError, match=f"^{tmp_path / 'out'}: disk full"):
        export_dataset(dataset, tmp_path / "out", "parquet")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["dataset"]


def test_non_empty_output_folder_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    dataset = _build(tmp_path / "dataset")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="is not an empty folder"):
        export_dataset(dataset, tmp_path / "out", "parquet")
    assert [path.name for path in (tmp_path / "out").iterdir()] == ["keep.txt"]


def test_a_linked_output_folder_receives_the_export_and_stays_a_link(tmp_path: Path) -> None:
    # The link itself used to be the rename target: "linkd: Not a directory".
    pytest.importorskip("pyarrow")
    dataset = _build(tmp_path / "dataset", splits=("test",))
    (tmp_path / "disk").mkdir()
    (tmp_path / "out").symlink_to(tmp_path / "disk")
    report = export_dataset(dataset, tmp_path / "out", "parquet")
    assert report.ok and (tmp_path / "out").is_symlink()
    assert sorted(path.name for path in (tmp_path / "disk").iterdir()) == ["ans2idx.json",
                                                                           "test.parquet"]


@pytest.mark.parametrize("target", ["nowhere", "out"])
def test_a_dangling_or_looping_link_as_output_is_refused_by_name(tmp_path: Path, target: str
                                                                 ) -> None:
    # It used to fail naming the temporary folder: ".cxrvqa-...out.tmp: Not a directory".
    pytest.importorskip("pyarrow")
    dataset = _build(tmp_path / "dataset", splits=("test",))
    (tmp_path / "out").symlink_to(tmp_path / target)
    with pytest.raises(ExportError) as caught:
        export_dataset(dataset, tmp_path / "out", "parquet")
    assert str(caught.value) == (f"{tmp_path / 'out'}: is a link to nowhere (dangling, or a "
                                 f"loop); choose a new output folder")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["dataset", "out"]


def test_missing_build_is_a_data_error(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    with pytest.raises(DataError, match="no built split files"):
        export_dataset(tmp_path, tmp_path / "out", "parquet")


@pytest.mark.parametrize(("blocked", "fmt"), [("pyarrow", "parquet"), ("pyarrow", "hf"),
                                              ("datasets", "hf")])
def test_without_the_extra_the_error_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              blocked: str, fmt: str) -> None:
    monkeypatch.setitem(sys.modules, blocked, None)
    with pytest.raises(ExportError) as caught:
        export_dataset(_build(tmp_path / "dataset"), tmp_path / "out", fmt)
    message = str(caught.value)
    assert message == (f"{blocked} is not installed; install the export extra: "
                       f"pip install 'cxrvqa[export]'")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content", ['{"yes": 0, "no": 0}', '{"yes": 1}', "{}", '["yes"]'])
def test_ans2idx_must_number_answers_from_zero(tmp_path: Path, content: str) -> None:
    pytest.importorskip("pyarrow")
    dataset = _build(tmp_path / "dataset")
    (dataset / "ans2idx.json").write_text(content)
    with pytest.raises(DataError, match=r"ans2idx\.json: expected an object mapping each answer"):
        export_dataset(dataset, tmp_path / "out", "parquet")
    assert not (tmp_path / "out").exists()


def test_a_generated_complete_file_without_ans2idx_gets_the_builds_vocabulary(tmp_path: Path) -> None:
    # README: 'generate --complete' files are read by export like a built split; before,
    # export stopped with "ans2idx.json: file not found" since generate writes no vocabulary.
    pq = pytest.importorskip("pyarrow.parquet")
    dataset = _build(tmp_path / "dataset", splits=("test",))
    (dataset / "ans2idx.json").unlink()
    records = _records("test")
    records[0]["answer"] = ["3"]  # an author's 'returns number' answer
    (dataset / "test.json").write_bytes(dataset_bytes(records))
    export_dataset(dataset, tmp_path / "out", "parquet")
    written = (tmp_path / "out" / "ans2idx.json").read_bytes()
    assert written == ans2idx_bytes(default_vocabulary(["3"]))  # what a build writes for them
    ans2idx = json.loads(written)
    rows = pq.read_table(tmp_path / "out" / "test.parquet").to_pylist()
    assert [_as_json_record(row, ans2idx) for row in rows] == records


def test_an_empty_split_exports_and_loads_back(tmp_path: Path) -> None:
    # A small build's train.json is [] (the 501-patient demo has no train images). Before,
    # datasets wrote no data shard for it, so the published hf folder did not load and the
    # export ended in an internal error (IndexError from load_from_disk).
    datasets = pytest.importorskip("datasets")
    dataset = _build(tmp_path / "dataset")
    (dataset / "train.json").write_bytes(dataset_bytes([]))
    for fmt in ("hf", "parquet"):
        report = export_dataset(dataset, tmp_path / fmt, fmt)
        assert report.ok and report.exported == {"train": 0, "valid": 5, "test": 5}
    loaded = datasets.load_from_disk(str(tmp_path / "hf"))
    assert loaded["train"].num_rows == 0
    assert loaded["train"].column_names == loaded["test"].column_names
