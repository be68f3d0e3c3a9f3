"""Hostile and damaged inputs, OS faults and signals: one line naming the right file, a non-zero exit,
no traceback (issue 16). Each case damages a copy of a small built demo tree."""

from __future__ import annotations

import errno
import gzip
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxrvqa.build import commit
from cxrvqa.build.output import write_files_atomically
from cxrvqa.cli import main
from cxrvqa.errors import DataError
from cxrvqa.synth import SynthConfig, write_sources
from tests.helpers import built_demo

CXR = Path("physionet.org/files/mimic-cxr-jpg/2.0.0")
CIG = Path("physionet.org/files/chest-imagenome/1.0.0")
SEMANTICS = CIG / "semantics"
TABULAR = CIG / "silver_dataset/scene_tabular"
DATASET = Path("mimiccxrvqa/dataset")
METADATA = CXR / "mimic-cxr-2.0.0-metadata.csv"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    return built_demo(tmp_path_factory.mktemp("hostile") / "demo", seed=11)


@pytest.fixture
def tree(demo: SimpleNamespace, tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    shutil.copytree(demo.root, root)
    return root


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def _one_line(err: str, names: str) -> None:
    assert err.count("\n") == 1 and err.startswith("cxrvqa: "), err
    assert names in err, err


def _edit_json(path: Path, edit: Callable[[list], object]) -> None:
    records = json.loads(path.read_text())
    edit(records)
    path.write_text(json.dumps(records))


def _truncated_gz(root: Path) -> str:
    data = gzip.compress((root / METADATA).read_bytes())
    (root / METADATA).unlink()
    (root / f"{METADATA}.gz").write_bytes(data[: len(data) // 2])
    # Before: only Python's "Compressed file ended before the end-of-stream marker was reached".
    return f"{METADATA.name}.gz: cannot read the header: truncated or damaged .gz file"


def _header_only(relative: Path) -> Callable[[Path], str]:
    def damage(root: Path) -> str:
        path = root / relative
        path.write_text(path.read_text().splitlines()[0] + "\n")
        return relative.name
    return damage


def _emptied(relative: Path) -> Callable[[Path], str]:
    def damage(root: Path) -> str:
        (root / relative).write_text("")
        return relative.name
    return damage


def _ontology(edit: Callable[[dict], object], text: str | None = None) -> Callable[[Path], str]:
    def damage(root: Path) -> str:
        path = root / SEMANTICS / "label_to_UMLS_mapping.json"
        if text is not None:
            path.write_text(text)
        else:
            data = json.loads(path.read_text())
            edit(data)
            path.write_text(json.dumps(data))
        return path.name
    return damage


def _question(edit: Callable[[list], object], name: str = "_test.json") -> Callable[[Path], str]:
    def damage(root: Path) -> str:
        _edit_json(root / DATASET / name, edit)
        return name
    return damage


def _deep_questions(root: Path) -> str:
    (root / DATASET / "_valid.json").write_text("[" * 100_000 + "]" * 100_000)
    return "_valid.json:1:201: nested deeper"


def _invalid_x1(root: Path) -> str:
    path = root / TABULAR / "bbox_objects_tabular.txt"
    lines = path.read_text().splitlines()
    column = lines[0].split("\t").index("x1")
    rows = [line.split("\t") for line in lines[1:]]
    for row in rows:
        row[column] = "x"
    path.write_text("\n".join([lines[0], *("\t".join(row) for row in rows)]) + "\n")
    return "bbox_objects_tabular.txt: column 'x1'"


def _set(records: list, key: str, value: object, number: int = 0) -> None:
    records[number][key] = value


BUILD_CASES: dict[str, Callable[[Path], str]] = {
    "truncated csv.gz": _truncated_gz,
    "header-only metadata": _header_only(METADATA),
    "header-only bbox_objects_tabular": _header_only(TABULAR / "bbox_objects_tabular.txt"),
    "all-invalid x1": _invalid_x1,
    "empty objects file": _emptied(SEMANTICS / "objects_extracted_from_reports_v1.txt"),
    "empty attribute_relations_v1": _emptied(SEMANTICS / "attribute_relations_v1.txt"),
    "objects file loses one": lambda root: _drop_line(
        root / SEMANTICS / "objects_extracted_from_reports_v1.txt"),
    "all_children not lists": _ontology(lambda d: d["all_children"].update(lungs="left lung")),
    "deep ontology": _ontology(lambda d: None, text="{" + '"a":[' * 50_000),
    "deep question file": _deep_questions,
    "idx a string": _question(lambda r: _set(r, "idx", "3")),
    "idx a float": _question(lambda r: _set(r, "idx", 3.0)),
    "idx true": _question(lambda r: _set(r, "idx", True)),
    "idx of 400 digits": lambda root: _long_idx(root),
    "duplicate idx": _question(lambda r: _set(r, "idx", r[0]["idx"], 1)),
    "unknown gender": lambda root: _unknown_gender(root),
}


def _unknown_gender(root: Path) -> str:
    path = root / "physionet.org/files/mimiciv/2.2/hosp/patients.csv"
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace(",M,", ",X,").replace(",F,", ",X,")
    path.write_text("\n".join(lines) + "\n")
    return "patients.csv: line 2: gender must be M or F"


def _drop_line(path: Path) -> str:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[1:]))
    return path.name


def _long_idx(root: Path) -> str:
    path = root / DATASET / "_test.json"
    text = path.read_text()
    path.write_text(text.replace('"idx": 0', '"idx": ' + "7" * 400, 1)
                    .replace('"idx":0', '"idx":' + "7" * 400, 1))
    return "_test.json:"


@pytest.mark.parametrize("case", list(BUILD_CASES))
def test_damaged_build_input_names_its_file(case: str, tree: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    names = BUILD_CASES[case](tree)
    before = (tree / DATASET / "train.json").read_bytes()
    code, err = _run(["build", "--physionet-root", str(tree), "--dataset-dir",
                      str(tree / DATASET)], capsys)
    assert code == 3
    _one_line(err, names)
    assert (tree / DATASET / "train.json").read_bytes() == before  # nothing replaced


def _latin1_at_line_4(path: Path) -> str:
    lines = path.read_bytes().splitlines(keepends=True)
    at = lines[3].index(b'"') + 1 if path.suffix == ".json" else 0
    lines[3] = lines[3][:at] + b"\xe9" + lines[3][at:]
    path.write_bytes(b"".join(lines))
    return f"{path}:4:{at + 1}: byte 0xe9 is not UTF-8; expected UTF-8 text"


def test_a_byte_that_is_not_utf8_is_placed_by_line_and_column(
        demo: SimpleNamespace, tree: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Before: "'utf-8' codec can't decode byte 0xe9 in position 2618: invalid continuation
    # byte", where the position counted from the start of the file, or (for tables) of one
    # of read_csv's buffers.
    build = ["build", "--physionet-root", str(tree), "--dataset-dir", str(tree / DATASET)]
    for source in (METADATA, SEMANTICS / "attribute_relations_v1.txt"):
        original = (tree / source).read_bytes()
        expected = _latin1_at_line_4(tree / source)
        code, err = _run(build, capsys)
        assert code == 3
        _one_line(err, expected)
        (tree / source).write_bytes(original)
    gold = tree / DATASET / "test.json"
    expected = _latin1_at_line_4(gold)
    for argv in (["stats", str(gold)], ["evaluate", "--predictions", str(gold), "--gold",
                                        str(demo.dataset / "test.json")],
                 ["evaluate", "--predictions", str(demo.dataset / "test.json"), "--gold",
                  str(gold)],
                 ["download-images", "--dataset-dir", str(gold.parent), "--root",
                  str(tmp_path), "--splits", "test", "--dry-run"]):
        code, err = _run(argv, capsys)
        assert code == 3, argv
        _one_line(err, expected)


def test_mistyped_dataset_dir_leaves_no_folder(demo: SimpleNamespace, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    # Before: the output folder (by default the dataset folder) was made, then the question
    # files were found missing: a typo left an empty folder tree behind.
    typo = tmp_path / "mimiccxrvqa" / "datset"
    code, err = _run(["build", "--physionet-root", str(demo.root), "--dataset-dir", str(typo)],
                     capsys)
    assert code == 3
    _one_line(err, f"{typo / '_train_part1.json'}: file not found")
    assert list(tmp_path.iterdir()) == []


def test_demo_never_writes_over_other_files(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    # Before: `cxrvqa demo --out /data` wrote the synthetic tree over a real download there.
    real = tmp_path / "data"
    (real / METADATA).parent.mkdir(parents=True)
    (real / METADATA).write_text("dicom_id,subject_id\nreal,1\n")
    code, err = _run(["demo", "--out", str(real), "--patients", "501"], capsys)
    assert code == 3
    _one_line(err, f"{real}: holds files and is not an earlier cxrvqa demo")
    assert (real / METADATA).read_text() == "dicom_id,subject_id\nreal,1\n"
    assert [p.name for p in real.iterdir()] == ["physionet.org"]
    # An earlier demo's folder (it carries the marker) is written again.
    demo = tmp_path / "demo"
    for _ in range(2):
        assert main(["demo", "--out", str(demo), "--patients", "501"]) == 0
    assert (demo / DATASET / "test.json").is_file()


def _scene_tabular_refuses(chest: Path, names: str, what: str,
                           capsys: pytest.CaptureFixture[str]) -> None:
    """scene-tabular on ``chest`` stops with one line (exit 3) naming ``names`` and ``what``."""
    code, err = _run(["scene-tabular", "--chest-imagenome-dir", str(chest)], capsys)
    assert code == 3
    _one_line(err, names)
    assert what in err


def _graph_folder(tmp_path: Path, member: bytes) -> Path:
    chest = tmp_path / "cig"
    folder = chest / "silver_dataset" / "scene_graph"
    folder.mkdir(parents=True)
    (folder / "bad_SceneGraph.json").write_bytes(member)
    return chest


@pytest.mark.parametrize("member, what", [
    (b"[" * 100_000 + b"]" * 100_000, "nested deeper than"),
    (b'{"image_id": "x", "study_id": ' + b"9" * 400 + b', "attributes": [], "objects": []}',
     "graph.study_id"),
    (b'{"image_id": "x", "study_id": 1, "attributes": [], "objects": [{"x1": ' + b"9" * 400
     + b"}]}", "objects[0]"),
])
def test_hostile_scene_graph_member_is_named(member: bytes, what: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    _scene_tabular_refuses(_graph_folder(tmp_path, member), "bad_SceneGraph.json", what, capsys)


def _zip_with_a_bad_directory(tmp_path: Path, damage: Callable[[bytes], bytes]) -> Path:
    """A scene_graph.zip of one valid graph whose central directory ``damage`` rewrites."""
    chest = tmp_path / "cig"
    (chest / "silver_dataset").mkdir(parents=True)
    graph = {"image_id": "img", "study_id": 1, "attributes": [], "objects": []}
    member = io.BytesIO()
    with zipfile.ZipFile(member, "w") as archive:  # the é makes zipfile flag the name UTF-8
        archive.writestr("scene_graph/\u00e9_SceneGraph.json", json.dumps(graph))
    data = member.getvalue()
    directory = data.index(b"PK\x01\x02")
    (chest / "silver_dataset" / "scene_graph.zip").write_bytes(
        data[:directory] + damage(data[directory:]))
    return chest


@pytest.mark.parametrize("damage, what", [
    # "version needed to extract" 9.9: zipfile raised NotImplementedError
    (lambda directory: directory[:6] + bytes([99]) + directory[7:], "zip file version"),
    # a name flagged UTF-8 that is not: zipfile raised UnicodeDecodeError
    (lambda directory: directory.replace("\u00e9".encode(), b"\xff\xfe"), "utf-8"),
], ids=["newer zip version", "name not utf-8"])
def test_a_zip_directory_zipfile_cannot_use_is_named(
        damage: Callable[[bytes], bytes], what: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Before: an internal error (exit 70). The local header is intact, so --skip-bad
    # reads the graph from there, as for a truncated archive.
    chest = _zip_with_a_bad_directory(tmp_path, damage)
    _scene_tabular_refuses(chest, "scene_graph.zip: central directory: not readable", what, capsys)
    assert main(["scene-tabular", "--chest-imagenome-dir", str(chest), "--skip-bad"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "read 1 scene graphs (0 skipped)" in captured.out


def _records(demo: SimpleNamespace, split: str = "test") -> list[dict]:
    return json.loads((demo.dataset / f"{split}.json").read_text())


@pytest.mark.parametrize("split", [None, ["test"]])
def test_stats_with_a_wrong_split_value(split: object, demo: SimpleNamespace, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    records = _records(demo)
    records[0]["split"] = split
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(records))
    code, err = _run(["stats", str(path)], capsys)
    assert code == 3
    _one_line(err, "odd.json: record 0")


def test_reports_show_control_characters_of_the_files_escaped(
        demo: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Names in a report come from the files. Before: a terminal escape in a template name,
    # content type or answer reached the terminal as is, and a line break split a table row.
    clean = _records(demo)
    records = _records(demo)
    records[0].update(template_program="program_\x1b[2J\nevil", content_type="x\x1b[31m",
                      answer=["\x1b[31mred"])
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(records))
    (tmp_path / "clean.json").write_text(json.dumps(clean))
    gold = str(demo.dataset / "test.json")
    for argv in (["stats", "{}"], ["evaluate", "--predictions", gold, "--gold", "{}"]):
        shown = {}
        for name in ("clean.json", "odd.json"):
            assert main([part.format(tmp_path / name) for part in argv]) == 0
            shown[name] = capsys.readouterr().out
        assert "\x1b" not in shown["odd.json"], argv
        assert "program_\\x1b[2J\\nevil" in shown["odd.json"], argv
        assert shown["odd.json"].count("\n") <= shown["clean.json"].count("\n") + 2, argv


def test_export_with_a_huge_idx(demo: SimpleNamespace, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pyarrow")
    dataset = tmp_path / "dataset"
    shutil.copytree(demo.dataset, dataset)
    for idx, name in ((10**30, "test.json:"), (10**20, "test.json: record 0")):
        records = _records(demo)
        records[0]["idx"] = idx
        (dataset / "test.json").write_text(json.dumps(records, indent=4))
        code, err = _run(["export", "--format", "parquet", "--out", str(tmp_path / "out"),
                          "--dataset-dir", str(dataset)], capsys)
        assert code == 3
        _one_line(err, name)
    assert not (tmp_path / "out").exists()


def test_export_with_a_lone_surrogate(demo: SimpleNamespace, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    # JSON's "\\udc00" escape spells a string UTF-8 cannot hold; a build copies it from a
    # question file. Before: an internal error (UnicodeEncodeError inside pyarrow).
    pytest.importorskip("pyarrow")
    dataset = tmp_path / "dataset"
    shutil.copytree(demo.dataset, dataset)
    records = _records(demo)
    records[1]["question"] = "is there \udc00?"
    (dataset / "test.json").write_text(json.dumps(records, indent=4))  # ASCII: escaped
    code, err = _run(["export", "--format", "parquet", "--out", str(tmp_path / "out"),
                      "--dataset-dir", str(dataset)], capsys)
    assert code == 3
    _one_line(err, "test.json: record 1 (idx 1): question: holds '\\udc00', a lone surrogate")
    assert not (tmp_path / "out").exists()
    assert [name for name in os.listdir(tmp_path) if name.startswith(".cxrvqa-")] == []


def test_explain_record_with_a_non_ascii_digit(demo: SimpleNamespace,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    for record in ("test:²", "test:" + "9" * 5000, "nosplit:1"):
        code, err = _run(["explain", "--physionet-root", str(demo.root), "--dataset-dir",
                          str(demo.dataset), "--record", record], capsys)
        assert code == 2
        _one_line(err, "--record")


def test_evaluate_hostile_predictions(demo: SimpleNamespace, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    gold = str(demo.dataset / "test.json")
    code, err = _run(["evaluate", "--predictions", str(tmp_path / "absent.json"),
                      "--gold", gold], capsys)
    assert code == 3
    _one_line(err, "absent.json")
    # Readable JSON with unusable keys: each is counted in the report, as other unusable
    # predictions are (scoring goes on).
    (tmp_path / "digit.json").write_text(
        json.dumps({"test:²": ["yes"], "test:" + "9" * 5000: ["no"]}))
    code = main(["evaluate", "--predictions", str(tmp_path / "digit.json"), "--gold", gold,
                 "--json"])
    captured = capsys.readouterr()
    assert code == 0 and captured.err == ""
    assert json.loads(captured.out)["problems"]["malformed"] == 2
    # A file that cannot be read as predictions at all (beyond the integer or nesting bounds,
    # as a whole and line by line) is an error: one line naming it, exit 3 (issue 18).
    for name, text in {"long.json": '[{"split": "test", "idx": ' + "9" * 5000 + ', "answer": []}]',
                       "deep.json": "[" * 100_000 + "]" * 100_000}.items():
        (tmp_path / name).write_text(text)
        code, err = _run(["evaluate", "--predictions", str(tmp_path / name), "--gold", gold],
                         capsys)
        assert code == 3, name
        _one_line(err, name)


def test_devices_named_as_data_files(demo: SimpleNamespace, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    # Before: a link to /dev/zero given as predictions, gold, ans2idx, checksums or a question
    # file was read until memory ran out (an internal error, or the OOM killer for verify).
    # /dev/null stands in here: same kind of file, but ends at once.
    device = tmp_path / "dev.json"
    device.symlink_to(os.devnull)
    gold = str(demo.dataset / "test.json")
    commands = [["evaluate", "--predictions", str(device), "--gold", gold],
                ["evaluate", "--predictions", gold, "--gold", str(device)],
                ["evaluate", "--predictions", gold, "--gold", gold, "--ans2idx", str(device)],
                ["verify", "--dataset-dir", str(demo.dataset), "--checksums", str(device)],
                ["paraphrases", str(device), "--out", str(tmp_path / "out")]]
    for argv in commands:
        code, err = _run(argv, capsys)
        assert code == 3, argv
        _one_line(err, f"{device}: is a device, not a file")
    code, err = _run(["stats", str(device)], capsys)
    assert code == 3
    _one_line(err, f"{device}: not a regular file")  # was "not found"


def test_a_line_break_in_a_path_keeps_the_error_one_line(
        demo: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Before: the message was printed as is, over two lines.
    odd = tmp_path / "new\nline.json"
    for argv in (["stats", str(odd)], ["evaluate", "--predictions", str(odd), "--gold",
                                      str(demo.dataset / "test.json")]):
        code, err = _run(argv, capsys)
        assert code == 3
        _one_line(err, str(tmp_path / "new\\nline.json"))
    # An OS error reaches main as such (mkdir under a file), not as a DataError.
    (tmp_path / "file").write_text("")
    code, err = _run(["demo", "--out", str(tmp_path / "file" / "new\nline")], capsys)
    assert code == 3
    _one_line(err, f"{tmp_path / 'file' / 'new'}\\nline: ")


def test_checksums_with_non_utf8_bytes(demo: SimpleNamespace, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    sums = tmp_path / "SHA256SUMS.txt"
    sums.write_bytes(b"\xff\xfe" + b"0" * 64 + b" train.json\n")
    code, err = _run(["verify", "--dataset-dir", str(demo.dataset), "--checksums", str(sums)],
                     capsys)
    assert code == 3
    _one_line(err, "SHA256SUMS.txt")


def test_unwritable_outputs_are_one_line(demo: SimpleNamespace, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    below = blocker / "below"
    commands = [
        ["generate", "--physionet-root", str(demo.root), "--split", "test", "--per-template",
         "1", "--templates", "program_1", "--out", str(below / "g.json")],
        ["export", "--format", "parquet", "--out", str(below / "out"), "--dataset-dir",
         str(demo.dataset)],
        ["verify", "--dataset-dir", str(blocker), "--write-checksums"],
    ]
    for argv in commands:
        code, err = _run(argv, capsys)
        assert code == 3, argv
        _one_line(err, str(blocker))


_real_staged_open = commit.StagedFiles.open


def _onto_full_disk(self: commit.StagedFiles, name: str) -> object:
    """StagedFiles.open whose file writes to /dev/full: ENOSPC, as a full disk fails."""
    writer = _real_staged_open(self, name)
    writer.stream.close()
    writer.stream = open("/dev/full", "wb")  # closed by StagedFiles
    return writer


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")
def test_disk_full_is_one_line_naming_the_file_and_keeps_the_old_files(
        demo: SimpleNamespace, tree: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Every staged file writes to /dev/full, which fails as a full disk does: ENOSPC with no
    # file name, on a large write at once and on a small one when it is flushed. Before, the
    # line said "cxrvqa: error: cxrvqa: disk full ...", naming no path.
    dataset = tree / DATASET
    before = {path.name: path.read_bytes() for path in dataset.iterdir()}
    monkeypatch.setattr(commit.StagedFiles, "open", _onto_full_disk)
    code, err = _run(["build", "--physionet-root", str(tree), "--dataset-dir", str(dataset)],
                     capsys)
    assert code == 3
    _one_line(err, "disk full")
    assert any(err.startswith(f"cxrvqa: error: {dataset / name}: disk full")
               for name in ("train.json", "valid.json", "test.json", "ans2idx.json")), err
    code, err = _run(["verify", "--dataset-dir", str(dataset), "--write-checksums"], capsys)
    assert code == 3
    _one_line(err, f"error: {dataset / 'SHA256SUMS.txt'}: disk full")
    assert {path.name: path.read_bytes() for path in dataset.iterdir()} == before
    # The dataset card is staged like a build's files: no half-written card is left.
    card = tree / "cards" / "card.html"
    code, err = _run(["stats", str(dataset), "--report", str(card)], capsys)
    assert code == 3
    assert err.splitlines()[-1].startswith(f"cxrvqa: error: {card}: disk full"), err
    assert list(card.parent.iterdir()) == []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")
def test_fmt_on_a_full_disk_keeps_the_program(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    # Before: fmt rewrote a file with Path.write_text, which truncates it first: on a full disk
    # (or killed mid-write) the author's program was left empty. Now it is staged and renamed.
    source = (Path(__file__).parents[2] / "programs" / "program_1.cxr").read_text()
    untidy = source.replace("exists(findings[object = $object, category = $category])",
                            "exists( findings[object=$object,category=$category] )")
    folder = tmp_path / "mine"
    folder.mkdir()
    program = folder / "program_1.cxr"
    program.write_text(untidy)
    program.chmod(0o600)  # an author's private file stays private
    (tmp_path / "program_1.cxr").symlink_to(program)  # fmt through a link keeps the link
    with monkeypatch.context() as patch:
        patch.setattr(commit.StagedFiles, "open", _onto_full_disk)
        code, err = _run(["fmt", str(program)], capsys)
    assert code == 3
    _one_line(err, f"{program}: disk full")
    assert program.read_text() == untidy and os.listdir(folder) == ["program_1.cxr"]
    assert main(["fmt", str(tmp_path / "program_1.cxr")]) == 0
    assert (tmp_path / "program_1.cxr").is_symlink() and program.read_text() == source
    assert program.stat().st_mode & 0o777 == 0o600  # was 0o644: a staged file gets the umask's


def test_a_journal_that_cannot_be_written_leaves_no_temporary(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The disk fills up between the staged files and the journal: the old file stays and
    # neither the staged file nor the journal's temporary is left behind.
    (tmp_path / "a.json").write_bytes(b"old")

    def full(*_args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(commit.os, "replace", full)
    with pytest.raises(DataError, match=f"^{tmp_path}: disk full"):
        write_files_atomically(tmp_path, {"a.json": b"new"})
    monkeypatch.undo()
    assert [(path.name, path.read_bytes()) for path in tmp_path.iterdir()] == [("a.json", b"old")]


def test_internal_errors_are_one_line_and_debug_shows_the_traceback(
        demo: SimpleNamespace, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import cxrvqa.tools.verify as verify

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("a bug\nover two lines")

    monkeypatch.setattr(verify, "verify_checksums", broken)
    monkeypatch.setattr(verify, "verify_manifest", lambda *_: None)
    code, err = _run(["verify", "--dataset-dir", str(demo.dataset)], capsys)
    assert code == 70
    _one_line(err, "internal error: ZeroDivisionError: a bug over two lines")
    assert "--debug" in err
    assert main(["--debug", "verify", "--dataset-dir", str(demo.dataset)]) == 70
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize(("missing", "code"), [("pandas", 3), ("cxrvqa.tools.nope", 70)])
def test_a_missing_dependency_is_an_environment_error_not_a_bug(
        missing: str, code: int, demo: SimpleNamespace, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # build_dataset.sh runs a checkout with whatever python3 PATH has: one without pandas.
    import cxrvqa.tools.verify as verify

    def not_installed(*args: object, **kwargs: object) -> None:
        raise ModuleNotFoundError(f"No module named {missing!r}", name=missing)

    monkeypatch.setattr(verify, "verify_checksums", not_installed)
    monkeypatch.setattr(verify, "verify_manifest", lambda *_: None)
    found, err = _run(["verify", "--dataset-dir", str(demo.dataset)], capsys)
    assert found == code
    if code == 3:
        _one_line(err, f"error: the package 'pandas' is not installed for {sys.executable}; "
                       f"install cxrvqa with its dependencies")
    else:  # cxrvqa's own module missing is a bug of the package
        _one_line(err, "internal error: ModuleNotFoundError")


def test_closed_stdout_ends_quietly(demo: SimpleNamespace, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    class Closed:
        def write(self, text: str) -> int:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

        def flush(self) -> None:
            pass

    monkeypatch.setattr(sys, "stdout", Closed())
    code = main(["stats", str(demo.dataset / "test.json")])
    monkeypatch.undo()
    assert code == 141 and capsys.readouterr().err == ""


def test_a_stdout_that_is_not_utf8_gets_escapes(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # LANG=en_US.ISO-8859-1 or PYTHONIOENCODING=ascii: before, the first character the
    # encoding lacks (check's "…" around a long line, a lone surrogate in a record) ended
    # the command in an internal UnicodeEncodeError.
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "program_1.cxr").write_text(
        'program program_1\ntemplate "Is ${object}?"\nparam object: object\nreturns bool\n\n'
        + "not(" * 150 + "exists(findings[object = $object])" + ")" * 150 + "\n")
    raw = io.BytesIO()
    stdout = io.TextIOWrapper(raw, encoding="ascii")
    monkeypatch.setattr(sys, "stdout", stdout)
    code = main(["check", str(folder)])
    stdout.flush()
    monkeypatch.undo()
    assert code == 1
    assert b"nested more than 100 levels deep" in raw.getvalue()
    assert b"\\u2026not(not(" in raw.getvalue()


def test_sigterm_is_handled_like_an_interrupt(demo: SimpleNamespace, tree: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    import cxrvqa.build.pipeline as pipeline

    real = pipeline.answer_split

    def terminated(*args: object, **kwargs: object) -> object:
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "answer_split", terminated)
    before = (tree / DATASET / "train.json").read_bytes()
    code, err = _run(["build", "--physionet-root", str(tree), "--dataset-dir",
                      str(tree / DATASET)], capsys)
    assert code == 143 and err == "cxrvqa: terminated\n"
    assert (tree / DATASET / "train.json").read_bytes() == before
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


_SLOW_WORKERS = """
import os, sys, time
from pathlib import Path
from cxrvqa.build import scenegraph
from cxrvqa.cli import main

real = scenegraph._Scanner.scan

def slow(self, names):
    if names[0] == first:  # one worker is busy; the other reads the rest, then waits idle
        Path(sys.argv[1], "busy").touch()
        time.sleep(3)
    return real(self, names)

first = min(scenegraph._graph_order(os.listdir(Path(sys.argv[2], "silver_dataset", "scene_graph"))))

scenegraph._Scanner.scan = slow
os.cpu_count = lambda: 2  # a pool of workers even on a one-core machine
sys.exit(main(["scene-tabular", "--chest-imagenome-dir", sys.argv[2]]))
"""


def test_ctrl_c_during_a_parallel_read_is_one_line(tmp_path: Path) -> None:
    # A terminal's Ctrl-C signals the whole process group: the scene-graph workers too.
    # Before: a worker waiting for its next task printed a KeyboardInterrupt traceback from
    # inside multiprocessing.
    root = tmp_path / "tree"
    write_sources(root, SynthConfig(patients=501, seed=3, scene_graphs="dir"))
    chest = root / CIG
    for graph in sorted((chest / "silver_dataset" / "scene_graph").iterdir())[24:]:
        graph.unlink()
    process = subprocess.Popen([sys.executable, "-c", _SLOW_WORKERS, str(tmp_path), str(chest)],
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "busy").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1)  # the other worker reads its graphs and waits for a task
        os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130 and err == "cxrvqa: interrupted\n", err
    assert not (chest / TABULAR).exists()


# --- random byte-level corruption ------------------------------------------------------------

CORRUPTIBLE = [METADATA, CIG / "gold_dataset/gold_attributes_relations_500pts_500studies1st.txt",
               CIG / "gold_dataset/gold_bbox_coordinate_annotations_1000images.csv",
               TABULAR / "attribute_relations_tabular.txt", TABULAR / "bbox_objects_tabular.txt",
               SEMANTICS / "objects_extracted_from_reports_v1.txt",
               SEMANTICS / "attribute_relations_v1.txt", SEMANTICS / "label_to_UMLS_mapping.json",
               Path("physionet.org/files/mimiciv/2.2/hosp/patients.csv"),
               DATASET / "_train_part1.json", DATASET / "_valid.json", DATASET / "_test.json"]


def _corrupt(data: bytes, how: str, where: float, byte: int) -> bytes:
    at = int(where * len(data))
    lines = data.splitlines(keepends=True)
    line = int(where * len(lines)) if lines else 0
    if how == "truncate":
        return data[:at]
    if how == "flip":
        return data[:at] + bytes([data[at] ^ (byte or 1)]) + data[at + 1:] if data else data
    if how == "delete line":
        return b"".join(lines[:line] + lines[line + 1:])
    return b"".join(lines[:line + 1] + lines[line:])  # duplicate a line


@pytest.fixture(scope="module")
def corruptible(demo: SimpleNamespace, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corrupt") / "tree"
    shutil.copytree(demo.root, root)
    return root


@settings(max_examples=15)  # each example is a build (~1 s)
@given(file=st.sampled_from(CORRUPTIBLE),
       how=st.sampled_from(["truncate", "flip", "delete line", "duplicate line"]),
       where=st.floats(0, 0.999), byte=st.integers(0, 255))
def test_corrupted_inputs_never_give_a_traceback(corruptible: Path, file: Path, how: str,
                                                 where: float, byte: int) -> None:
    path = corruptible / file
    original = path.read_bytes()
    path.write_bytes(_corrupt(original, how, where, byte))
    try:
        out, err = _capture(["build", "--physionet-root", str(corruptible), "--dataset-dir",
                             str(corruptible / DATASET), "--output-dir", str(corruptible / "out")])
    finally:
        path.write_bytes(original)
    code, text = out, err
    assert code in (0, 3), text  # built, or a one-line data error
    assert "Traceback" not in text and text.count("\n") <= 1, text


def _capture(argv: list[str]) -> tuple[int, str]:
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()
