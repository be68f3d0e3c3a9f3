"""Layout variants of the PhysioNet files that carry the same data build the same bytes.

source-formats.md describes the files as published; a real download can differ in ways that
carry no data: line ends, a byte-order mark, quoting, column order, extra columns and files,
gzip or not, ``.dcm`` suffixes (pipeline.md §1: "strip it everywhere"), a ``sent_loc`` column
that the build must not read (it reparses ``row_id``), scene graphs zipped another way. Each
case below edits a copy of one synthetic tree and builds it: the output must be exactly the
independent oracle's output for the unedited tree. Variants of one file are combined into one
case where they do not interfere, to keep the number of builds small.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import random
import re
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from oracle import reference_ans2idx
from oracle.builder import answer_questions, load_reference

from cxrvqa.cli import main

CXR = Path("physionet.org/files/mimic-cxr-jpg/2.0.0")
CIG = Path("physionet.org/files/chest-imagenome/1.0.0")
MIV = Path("physionet.org/files/mimiciv/2.2")
METADATA = CXR / "mimic-cxr-2.0.0-metadata.csv"
PATIENTS = MIV / "hosp/patients.csv"
TABULAR = CIG / "silver_dataset/scene_tabular"
SILVER_LABELS = TABULAR / "attribute_relations_tabular.txt"
SILVER_BOXES = TABULAR / "bbox_objects_tabular.txt"
GOLD_LABELS = CIG / "gold_dataset/gold_attributes_relations_500pts_500studies1st.txt"
GOLD_BOXES = CIG / "gold_dataset/gold_bbox_coordinate_annotations_1000images.csv"
SEMANTICS = CIG / "semantics"
GRAPHS = CIG / "silver_dataset/scene_graph.zip"
DATASET = Path("mimiccxrvqa/dataset")
OUTPUTS = ("train.json", "valid.json", "test.json", "ans2idx.json")
BOM = b"\xef\xbb\xbf"
DICOM = re.compile(r"[0-9a-f]{8}(?:-[0-9a-f]{8}){4}")
GRAPH_SUFFIX = "_SceneGraph.json"
ZIP64_MEMBERS = 65_600

Edit = Callable[[Path], None]


@dataclass(frozen=True)
class Base:
    """The unedited tree and what a build of it writes (checked against the oracle)."""

    root: Path
    expected: dict[str, bytes]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    from cxrvqa.build.index import load_index
    from cxrvqa.build.layout import SourceLayout
    from cxrvqa.synth import SynthConfig, write_questions, write_sources

    root = tmp_path_factory.mktemp("variants")
    config = SynthConfig(patients=620, seed=31, questions_per_template=2, scene_graphs="zip")
    write_sources(root, config)
    write_questions(root, load_index(SourceLayout.from_root(root)), config)
    records = answer_questions(load_reference(root), root / DATASET)
    assert all(records.values()), "every split must have questions"
    expected = _build(root)
    for split, rows in records.items():
        assert expected[f"{split}.json"] == json.dumps(rows, indent=4).encode("ascii"), split
    assert json.loads(expected["ans2idx.json"]) == reference_ans2idx(root)
    return Base(root, expected)


def _build(root: Path) -> dict[str, bytes]:
    out = root / "built"
    argv = ["build", "--physionet-root", str(root), "--dataset-dir", str(root / DATASET),
            "--output-dir", str(out)]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(argv) == 0
    return {name: (out / name).read_bytes() for name in OUTPUTS}


def _copy(base: Base, target: Path, graphs: bool) -> Path:
    """The tree without built files (and without the graph zip unless asked for)."""
    skip = shutil.ignore_patterns("built", *(() if graphs else ("scene_graph.zip",)))
    shutil.copytree(base.root, target, ignore=skip)
    return target


# --- edits of one delimited file -----------------------------------------------------------------

def _table(path: Path, sep: str) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle, delimiter=sep))


def _write(path: Path, table: list[list[str]], sep: str, **options: Any) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, delimiter=sep, lineterminator="\n", **options).writerows(table)


def _rewrite(relative: Path, sep: str, edit: Callable[[list[list[str]]], list[list[str]]],
             **options: Any) -> Edit:
    def apply(root: Path) -> None:
        path = root / relative
        _write(path, edit(_table(path, sep)), sep, **options)
    return apply


def _quoted(relative: Path, sep: str) -> Edit:
    return _rewrite(relative, sep, lambda table: table, quoting=csv.QUOTE_ALL)


def _column(relative: Path, sep: str, name: str, change: Callable[[str], str]) -> Edit:
    def edit(table: list[list[str]]) -> list[list[str]]:
        at = table[0].index(name)
        return [table[0], *([*row[:at], change(row[at]), *row[at + 1:]] for row in table[1:])]
    return _rewrite(relative, sep, edit)


def _reversed_plus(relative: Path, sep: str, extra: dict[str, str] | None = None) -> Edit:
    """Columns in reverse order, then ``extra`` columns (name: the value of every row)."""
    def edit(table: list[list[str]]) -> list[list[str]]:
        names, values = list((extra or {}).keys()), list((extra or {}).values())
        return [[*table[0][::-1], *names], *([*row[::-1], *values] for row in table[1:])]
    return _rewrite(relative, sep, edit)


def _without(relative: Path, sep: str, *names: str) -> Edit:
    def edit(table: list[list[str]]) -> list[list[str]]:
        keep = [i for i, name in enumerate(table[0]) if name not in names]
        return [[row[i] for i in keep] for row in table]
    return _rewrite(relative, sep, edit)


def _shuffled(relative: Path, sep: str) -> Edit:
    """Rows in another order (only for files whose row order carries no rule)."""
    def edit(table: list[list[str]]) -> list[list[str]]:
        rows = table[1:]
        random.Random(5).shuffle(rows)
        return [table[0], *rows]
    return _rewrite(relative, sep, edit)


def _crlf(relative: Path) -> Edit:
    def apply(root: Path) -> None:
        path = root / relative
        path.write_bytes(path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    return apply


def _bom(relative: Path) -> Edit:
    def apply(root: Path) -> None:
        path = root / relative
        path.write_bytes(BOM + path.read_bytes())
    return apply


def _final_newline(relative: Path) -> Edit:
    def apply(root: Path) -> None:
        path = root / relative
        path.write_bytes(path.read_bytes() + b"\r\n")
    return apply


def _gzipped(relative: Path) -> Edit:
    def apply(root: Path) -> None:
        path = root / relative
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(path.read_bytes(), mtime=0))
        path.unlink()
    return apply


def _stale_gz_beside(relative: Path) -> Edit:
    """A .gz twin that is not the plain file (a cut download): the plain file is read."""
    def apply(root: Path) -> None:
        path = root / relative
        data = gzip.compress(path.read_bytes(), mtime=0)
        path.with_name(path.name + ".gz").write_bytes(data[: len(data) // 3])
    return apply


def _misleading_sent_loc(relative: Path) -> Edit:
    """A sent_loc column (added or replaced) ordering sentences backwards: a build that read it
    instead of reparsing row_id would let earlier sentences win."""
    def edit(table: list[list[str]]) -> list[list[str]]:
        header = [name for name in table[0] if name != "sent_loc"]
        keep = [i for i, name in enumerate(table[0]) if name != "sent_loc"]
        row_id = table[0].index("row_id")
        return [[*header, "sent_loc"], *([*(row[i] for i in keep),
                                          str(1000 - float(row[row_id].rsplit("|", 1)[-1]))]
                                         for row in table[1:])]
    return _rewrite(relative, "\t", edit)


def _flipped(context: str) -> str:
    """The other polarity word: only ``relation`` decides (pipeline.md §1 lists no context)."""
    return {"yes": "no", "no": "yes"}[context]


def _whole_seconds_without_point(value: str) -> str:
    return value[:-2] if value.endswith(".0") else value


# --- edits of the tree ---------------------------------------------------------------------------

def _project_files(root: Path) -> None:
    """Files of the real projects that a build does not read (source-formats.md §3, §6)."""
    for relative in (
            CIG / "SHA256SUMS.txt", CIG / "LICENSE.txt", CIG / "silver_dataset/splits/train.csv",
            CIG / "silver_dataset/splits/images_to_avoid.csv",
            CIG / "gold_dataset/gold_bbox_scaling_factors_original_to_224x224.csv",
            CIG / "gold_dataset/gold_object_attribute_with_coordinates.txt",
            CIG / "utils/scene_postprocessing/scenegraph_postprocessing.py",
            CIG / "utils/cxr-record-list_view.csv", TABULAR / "comparison_relations_tabular.txt",
            CXR / "SHA256SUMS.txt", CXR / "mimic-cxr-2.0.0-chexpert.csv.gz",
            MIV / "hosp/admissions.csv.gz", MIV / "SHA256SUMS.txt"):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text("not read by a build\n", encoding="utf-8")


def _questions_reformatted(root: Path) -> None:
    """Question files with a BOM, CRLF line ends and another indentation."""
    for path in (root / DATASET).glob("_*.json"):
        records = json.loads(path.read_bytes())
        text = json.dumps(records, indent="\t").replace("\n", "\r\n")
        path.write_bytes(BOM + text.encode("utf-8"))


def _graphs_repacked(root: Path) -> None:
    """Scene graphs only (no tabular files), zipped at the archive's top level with directory
    entries and macOS twins, ``image_id`` with ``.dcm`` and ``study_id`` as a string; over
    65,535 members, as the real archive's ~240 K, so that it needs ZIP64 records."""
    shutil.rmtree(root / TABULAR)
    path = root / GRAPHS
    with zipfile.ZipFile(path) as archive:
        members = [(info.filename, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("graphs/", b"")
        for name, data in members:
            graph = json.loads(data)
            graph["image_id"] += ".dcm"
            graph["study_id"] = str(graph["study_id"])
            base_name = name.rsplit("/", 1)[-1]
            archive.writestr(base_name, json.dumps(graph, indent=1))
            archive.writestr(f"__MACOSX/._{base_name}", b"\x00\x05\x16\x07")
        for number in range(ZIP64_MEMBERS - 2 * len(members)):
            archive.writestr(f"__MACOSX/._{number}{GRAPH_SUFFIX}", b"", zipfile.ZIP_STORED)
    with path.open("rb") as handle:  # the ZIP64 end-of-central-directory locator is there
        handle.seek(-22 - 20, 2)
        assert handle.read(4) == b"PK\x06\x07"


VARIANTS: dict[str, tuple[Edit, ...]] = {
    "metadata: reordered, extra column, quoted, shuffled, whole StudyTime, NaN, CRLF, BOM": (
        _reversed_plus(METADATA, ",", {"Note": 'a, "quoted" note'}),
        _column(METADATA, ",", "StudyTime", _whole_seconds_without_point),
        _column(METADATA, ",", "ViewPosition", lambda value: value or "NaN"),
        _shuffled(METADATA, ","), _quoted(METADATA, ","), _crlf(METADATA), _bom(METADATA)),
    "metadata and patients gzipped, with CRLF and BOM inside": (
        _crlf(METADATA), _bom(METADATA), _gzipped(METADATA),
        _crlf(PATIENTS), _bom(PATIENTS), _gzipped(PATIENTS)),
    "plain CSVs beside damaged .gz twins": (
        _stale_gz_beside(METADATA), _stale_gz_beside(PATIENTS)),
    "patients: reordered, quoted, shuffled, CRLF, BOM": (
        _reversed_plus(PATIENTS, ","), _shuffled(PATIENTS, ","), _quoted(PATIENTS, ","),
        _crlf(PATIENTS), _bom(PATIENTS)),
    "silver labels: .dcm, reordered, extras, quoted, sent_loc, 1.0, context, CRLF, BOM": (
        _column(SILVER_LABELS, "\t", "image_id", lambda value: value + ".dcm"),
        _misleading_sent_loc(SILVER_LABELS),
        _column(SILVER_LABELS, "\t", "row_id", lambda value: f"s|{value}.0"),
        _column(SILVER_LABELS, "\t", "relation", lambda value: f"{value}.0"),
        _column(SILVER_LABELS, "\t", "context", _flipped),
        _reversed_plus(SILVER_LABELS, "\t", {"patient_id": "10000001",
                                             "sentence": 'FINDINGS: \nHe said "no",\tthen left.'}),
        _quoted(SILVER_LABELS, "\t"), _crlf(SILVER_LABELS), _bom(SILVER_LABELS)),
    "silver labels without sent_loc and context": (
        _without(SILVER_LABELS, "\t", "sent_loc", "context"),),
    "silver boxes: float x, JSON synsets, ;; names, reordered, quoted, CRLF, BOM": (
        _column(SILVER_BOXES, "\t", "x1", lambda value: f"{float(value)!r}"),
        _column(SILVER_BOXES, "\t", "x2", lambda value: f"{float(value)!r}"),
        _column(SILVER_BOXES, "\t", "synsets", lambda value: value.replace("'", '"')),
        _column(SILVER_BOXES, "\t", "name", lambda value: f"{value};;{value.upper()}"),
        _reversed_plus(SILVER_BOXES, "\t"), _quoted(SILVER_BOXES, "\t"),
        _crlf(SILVER_BOXES), _bom(SILVER_BOXES)),
    "gold labels: sentences with quotes and line breaks, sent_loc, context, CRLF, BOM": (
        _column(GOLD_LABELS, "\t", "sentence", lambda value: f'"{value}"\n  said  the "reader".'),
        _misleading_sent_loc(GOLD_LABELS), _column(GOLD_LABELS, "\t", "context", _flipped),
        _reversed_plus(GOLD_LABELS, "\t"),
        _crlf(GOLD_LABELS), _bom(GOLD_LABELS)),
    "gold labels and boxes: image ids without .dcm": (
        _column(GOLD_LABELS, "\t", "image_id", lambda value: value.removesuffix(".dcm")),
        _column(GOLD_BOXES, ",", "image_id", lambda value: value.removesuffix(".dcm"))),
    "gold boxes: spaced coord224, reordered, quoted, CRLF, BOM": (
        _column(GOLD_BOXES, ",", "coord224",
                lambda value: value.replace("[", "[ ").replace(", ", " ,  ").replace("]", " ]")),
        _reversed_plus(GOLD_BOXES, ","), _quoted(GOLD_BOXES, ","),
        _crlf(GOLD_BOXES), _bom(GOLD_BOXES)),
    "semantics: CRLF, a final newline, BOM": tuple(
        edit for name in ("objects_extracted_from_reports_v1.txt", "attribute_relations_v1.txt",
                          "label_to_UMLS_mapping.json")
        for edit in (_crlf(SEMANTICS / name), _final_newline(SEMANTICS / name),
                     _bom(SEMANTICS / name))),
    "question files: BOM, CRLF, tab indentation": (_questions_reformatted,),
    "project files a build does not read": (_project_files,),
    "scene graphs only, repacked": (_graphs_repacked,),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variant_builds_the_oracle_bytes(variant: str, base: Base, tmp_path: Path) -> None:
    edits = VARIANTS[variant]
    root = _copy(base, tmp_path / "tree", graphs=_graphs_repacked in edits)
    for edit in edits:
        edit(root)
    built = _build(root)
    for name, expected in base.expected.items():
        assert built[name] == expected, f"{variant}: {name} differs from the oracle's"


def _upper_ids(data: bytes) -> bytes:
    return DICOM.sub(lambda match: match.group(0).upper(), data.decode("utf-8")).encode("utf-8")


def test_upper_case_ids_are_kept_as_written(base: Base, tmp_path: Path) -> None:
    # Real dicom_ids are lower-case hex (source-formats.md §2.1). Ids are compared as exact
    # strings, as the original builder compares them: a tree written in upper case throughout
    # builds the same records with its ids as written (a mixed-case tree would not join).
    root = _copy(base, tmp_path / "tree", graphs=False)
    for path in [*(root / "physionet.org").rglob("*.*"), *(root / DATASET).glob("_*.json")]:
        if path.is_dir():
            continue
        path.write_bytes(_upper_ids(path.read_bytes()))
    built = _build(root)
    for name, expected in base.expected.items():
        assert built[name] == _upper_ids(expected), f"{name} differs"


def _compressed_twice(relative: Path) -> Edit:
    """What `gzip -f` on the downloaded .gz left (early build_dataset.sh, source-formats.md §7)."""
    def apply(root: Path) -> None:
        path = root / relative
        twice = gzip.compress(gzip.compress(path.read_bytes(), mtime=0), mtime=0)
        path.with_name(path.name + ".gz.gz").write_bytes(twice)
        path.unlink()
    return apply


def _other_mimic_iv_version(root: Path) -> None:
    """MIMIC-IV 2.0, as the VQA repository's develop branch downloads it (source-formats.md §1)."""
    (root / MIV).rename(root / MIV.parent / "2.0")


@pytest.mark.parametrize(("edit", "said"), [
    (_compressed_twice(METADATA), "mimic-cxr-2.0.0-metadata.csv.gz.gz is compressed twice"),
    (_other_mimic_iv_version, "mimiciv/2.0/hosp/patients.csv: another MIMIC-IV version"),
], ids=["csv.gz.gz", "mimiciv-2.0"])
def test_a_known_mix_up_is_named_in_the_missing_file_error(
        edit: Edit, said: str, base: Base, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Refused, not guessed: one line that names the file found instead and what to do.
    root = _copy(base, tmp_path / "tree", graphs=False)
    edit(root)
    argv = ["build", "--physionet-root", str(root), "--dataset-dir", str(root / DATASET),
            "--output-dir", str(root / "built")]
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and said in err and "cxrvqa download" not in err, err
    # Another file missing besides: the download advice is kept for it (it was dropped).
    (root / SILVER_BOXES).unlink()
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and said in err and "get them with `cxrvqa download`" in err, err
