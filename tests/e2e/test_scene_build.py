"""Building from scene graphs alone gives the same bytes as building from the tabular files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cxrvqa.build.index import load_index
from cxrvqa.build.layout import SourceLayout
from cxrvqa.cli import main
from cxrvqa.synth import SynthConfig, write_questions, write_sources

OUTPUTS = ("train.json", "valid.json", "test.json", "ans2idx.json")


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One synthetic tree written two ways: tabular files beside a scene-graph zip, and a folder."""
    config = SynthConfig(patients=560, seed=5, questions_per_template=4)
    roots = {}
    for kind in ("zip", "dir"):
        root = tmp_path_factory.mktemp(kind)
        write_sources(root, config.model_copy(update={"scene_graphs": kind}))
        roots[kind] = root
    roots["tabular"] = roots["zip"]
    write_questions(roots["zip"], load_index(SourceLayout.from_root(roots["zip"])), config)
    shutil.copytree(roots["zip"] / "mimiccxrvqa", roots["dir"] / "mimiccxrvqa")
    return roots


def _build(root: Path, out: Path) -> dict[str, bytes]:
    argv = ["build", "--physionet-root", str(root), "--dataset-dir",
            str(root / "mimiccxrvqa" / "dataset"), "--output-dir", str(out)]
    assert main(argv) == 0
    return {name: (out / name).read_bytes() for name in OUTPUTS}


def _drop_tabular(root: Path) -> None:
    shutil.rmtree(SourceLayout.from_root(root).scene_tabular)


def test_zip_and_tabular_builds_are_byte_identical(trees: dict[str, Path], tmp_path: Path) -> None:
    expected = _build(trees["tabular"], tmp_path / "from-tabular")
    scene_tabular = SourceLayout.from_root(trees["zip"]).scene_tabular
    kept = tmp_path / "kept"
    shutil.copytree(scene_tabular, kept)
    _drop_tabular(trees["zip"])
    try:
        assert _build(trees["zip"], tmp_path / "from-zip") == expected
    finally:
        shutil.copytree(kept, scene_tabular)


def test_doubled_graph_folder_build_is_byte_identical(trees: dict[str, Path], tmp_path: Path) -> None:
    expected = _build(trees["tabular"], tmp_path / "from-tabular")
    root = trees["dir"]
    _drop_tabular(root)
    silver = SourceLayout.from_root(root).chest_imagenome / "silver_dataset"
    # Unzipping into silver_dataset/scene_graph/ leaves scene_graph/scene_graph/.
    (silver / "outer").mkdir()
    (silver / "scene_graph").rename(silver / "outer" / "scene_graph")
    (silver / "outer").rename(silver / "scene_graph")
    assert _build(root, tmp_path / "from-dir") == expected


def test_scene_tabular_command_rewrites_the_tabular_files(trees: dict[str, Path], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    layout = SourceLayout.from_root(trees["zip"])
    original = {path.name: path.read_bytes() for path in layout.scene_tabular.iterdir()}
    copy = tmp_path / "cig"
    shutil.copytree(layout.chest_imagenome, copy, ignore=shutil.ignore_patterns("scene_tabular"))
    assert main(["scene-tabular", "--chest-imagenome-dir", str(copy)]) == 0
    written = {path.name: path.read_bytes()
               for path in (copy / "silver_dataset" / "scene_tabular").iterdir()}
    assert written == original
    out = capsys.readouterr().out
    assert "0 skipped" in out
    rows = {name: data.count(b"\n") - 1 for name, data in original.items()}
    assert (f"{rows['attribute_relations_tabular.txt']} label rows, "
            f"{rows['bbox_objects_tabular.txt']} box rows") in out
