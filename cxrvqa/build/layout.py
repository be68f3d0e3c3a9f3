"""Where every source file lives: the one home of PhysioNet paths and question-file names.

A build reads a download root laid out by ``wget -r`` (``physionet.org/files/<project>/<version>/``).
Each project folder can also be given on its own, as the original builder's shell script allowed.
Compressed ``.csv.gz`` copies stand in for the plain CSV files. The synthetic tree writes,
``cxrvqa download`` fetches and ``cxrvqa build`` reads the paths named here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Literal

__all__ = [
    "ANS2IDX_FILE",
    "BUILT_FILES",
    "CHEST_IMAGENOME",
    "GRAPH_SUFFIX",
    "DATASET_SUBDIR",
    "LOCAL_PREFIX",
    "MIMIC_CXR_JPG",
    "MIMIC_IV",
    "QUESTION_FILES",
    "Project",
    "SceneGraphSource",
    "SourceLayout",
    "find_scene_graphs",
    "is_graph_name",
    "source_files",
]

LOCAL_PREFIX = "physionet.org/files"
"""Where ``wget -r`` puts ``https://physionet.org/files/...`` under the download root."""

DATASET_SUBDIR = Path("mimiccxrvqa/dataset")
"""The released question files' folder, relative to the repository root (and the default output)."""

QUESTION_FILES: dict[str, tuple[str, ...]] = {
    "train": ("_train_part1.json", "_train_part2.json"),
    "valid": ("_valid.json",),
    "test": ("_test.json",),
}
"""The released question files of each split; a split is its files concatenated in this order."""

BUILT_FILES: dict[str, str] = {"train": "train.json", "valid": "valid.json", "test": "test.json"}
"""The file ``cxrvqa build`` writes for each split, beside ``ANS2IDX_FILE``."""
ANS2IDX_FILE = "ans2idx.json"


@dataclass(frozen=True)
class Project:
    """A PhysioNet project version, e.g. ``Project("chest-imagenome", "1.0.0")``."""

    slug: str
    version: str

    def __str__(self) -> str:
        return f"{self.slug}/{self.version}"

    @property
    def folder(self) -> Path:
        """The project's folder under a download root: ``physionet.org/files/<slug>/<version>``."""
        return Path(LOCAL_PREFIX) / self.slug / self.version

    @property
    def sign_dua_url(self) -> str:
        return f"https://physionet.org/sign-dua/{self.slug}/{self.version}/"


MIMIC_CXR_JPG = Project("mimic-cxr-jpg", "2.0.0")
CHEST_IMAGENOME = Project("chest-imagenome", "1.0.0")
MIMIC_IV = Project("mimiciv", "2.2")

# Paths inside each project (source-formats.md §1). The CSVs are published as .csv.gz.
METADATA = "mimic-cxr-2.0.0-metadata.csv"
SCENE_GRAPH_ZIP = "silver_dataset/scene_graph.zip"
SCENE_TABULAR = "silver_dataset/scene_tabular"
SILVER_LABELS = f"{SCENE_TABULAR}/attribute_relations_tabular.txt"
SILVER_BOXES = f"{SCENE_TABULAR}/bbox_objects_tabular.txt"
SKIPPED_GRAPHS = f"{SCENE_TABULAR}/skipped_scene_graphs.txt"
"""Ours, not PhysioNet's: the graphs `scene-tabular --skip-bad` left out of the two tables."""
GOLD_LABELS = "gold_dataset/gold_attributes_relations_500pts_500studies1st.txt"
GOLD_BOXES = "gold_dataset/gold_bbox_coordinate_annotations_1000images.csv"
OBJECTS_FILE = "semantics/objects_extracted_from_reports_v1.txt"
ATTRIBUTES_FILE = "semantics/attribute_relations_v1.txt"
ONTOLOGY_FILE = "semantics/label_to_UMLS_mapping.json"
PATIENTS = "hosp/patients.csv"
GRAPH_SUFFIX = "_SceneGraph.json"
"""Scene graphs are ``<dicom_id>_SceneGraph.json``, in the zip under ``scene_graph/``."""


def source_files() -> tuple[tuple[Project, str], ...]:
    """(project, path) of every file a build needs from PhysioNet, as published.

    The scene-graph zip stands in for the two scene_tabular files, which only a
    credentialed post-processing script produces; the CSVs stay compressed.
    """
    return ((MIMIC_CXR_JPG, f"{METADATA}.gz"), (CHEST_IMAGENOME, SCENE_GRAPH_ZIP),
            (CHEST_IMAGENOME, GOLD_LABELS), (CHEST_IMAGENOME, GOLD_BOXES),
            (CHEST_IMAGENOME, ONTOLOGY_FILE), (CHEST_IMAGENOME, ATTRIBUTES_FILE),
            (CHEST_IMAGENOME, OBJECTS_FILE), (MIMIC_IV, f"{PATIENTS}.gz"))


def _plain_or_gz(path: Path) -> Path:
    """The plain file when present, else its ``.gz`` twin when present, else the plain path."""
    if path.exists():
        return path
    gz = path.with_name(path.name + ".gz")
    return gz if gz.exists() else path


@dataclass(frozen=True)
class SourceLayout:
    """Where the three PhysioNet projects live.

    Example:
        >>> layout = SourceLayout.from_root(Path("."))
        >>> layout.gold_labels.name
        'gold_attributes_relations_500pts_500studies1st.txt'
    """

    mimic_cxr_jpg: Path
    chest_imagenome: Path
    mimic_iv: Path

    @classmethod
    def from_root(cls, root: Path | str) -> SourceLayout:
        """The layout under a download root that contains ``physionet.org/``."""
        root = Path(root)
        return cls(root / MIMIC_CXR_JPG.folder, root / CHEST_IMAGENOME.folder,
                   root / MIMIC_IV.folder)

    def with_dirs(self, *, mimic_cxr_jpg: Path | str | None = None,
                  chest_imagenome: Path | str | None = None,
                  mimic_iv: Path | str | None = None) -> SourceLayout:
        """A copy with some project folders replaced (None keeps the current one)."""
        changes = {name: Path(value) for name, value in (
            ("mimic_cxr_jpg", mimic_cxr_jpg), ("chest_imagenome", chest_imagenome),
            ("mimic_iv", mimic_iv)) if value is not None}
        return replace(self, **changes)

    def project_dir(self, project: Project) -> Path:
        """The folder of one of the three projects."""
        return {MIMIC_CXR_JPG: self.mimic_cxr_jpg, CHEST_IMAGENOME: self.chest_imagenome,
                MIMIC_IV: self.mimic_iv}[project]

    def path(self, project: Project, relative: str) -> Path:
        """A file of a project, e.g. ``layout.path(CHEST_IMAGENOME, GOLD_LABELS)``."""
        return self.project_dir(project) / PurePosixPath(relative)

    @property
    def metadata(self) -> Path:
        return _plain_or_gz(self.path(MIMIC_CXR_JPG, METADATA))

    @property
    def scene_tabular(self) -> Path:
        return self.path(CHEST_IMAGENOME, SCENE_TABULAR)

    @property
    def scene_graph_zip(self) -> Path:
        return self.path(CHEST_IMAGENOME, SCENE_GRAPH_ZIP)

    @property
    def silver_labels(self) -> Path:
        return self.path(CHEST_IMAGENOME, SILVER_LABELS)

    @property
    def silver_boxes(self) -> Path:
        return self.path(CHEST_IMAGENOME, SILVER_BOXES)

    @property
    def skipped_graphs(self) -> Path:
        return self.path(CHEST_IMAGENOME, SKIPPED_GRAPHS)

    @property
    def gold_labels(self) -> Path:
        return self.path(CHEST_IMAGENOME, GOLD_LABELS)

    @property
    def gold_boxes(self) -> Path:
        return self.path(CHEST_IMAGENOME, GOLD_BOXES)

    @property
    def objects_file(self) -> Path:
        return self.path(CHEST_IMAGENOME, OBJECTS_FILE)

    @property
    def attributes_file(self) -> Path:
        return self.path(CHEST_IMAGENOME, ATTRIBUTES_FILE)

    @property
    def ontology_file(self) -> Path:
        return self.path(CHEST_IMAGENOME, ONTOLOGY_FILE)

    @property
    def patients(self) -> Path:
        return _plain_or_gz(self.path(MIMIC_IV, PATIENTS))

    def has_scene_tabular(self) -> bool:
        """True when both silver tabular files exist (the builder then skips the scene graphs)."""
        return self.silver_labels.exists() and self.silver_boxes.exists()

    def missing(self) -> list[Path]:
        """Required source files that are absent.

        The silver tabular files count as present when scene graphs can stand in for them.
        """
        required = [self.metadata, self.gold_labels, self.gold_boxes, self.objects_file,
                    self.attributes_file, self.ontology_file, self.patients]
        if not self.has_scene_tabular() and find_scene_graphs(self.chest_imagenome) is None:
            required += [self.silver_labels, self.silver_boxes]
        return [path for path in required if not path.exists()]

    def mix_up(self, missing: Path) -> str | None:
        """What stands in a missing source file's place, when it is a known mix-up, or None.

        An early build_dataset.sh ran ``gzip -f`` on the downloaded ``.csv.gz``, compressing it
        again (source-formats.md §7); the VQA repository's develop branch downloads MIMIC-IV
        2.0 (§1). Neither is read unasked: the message says what to do.
        """
        twice = missing.with_name(missing.name + ".gz.gz")
        if twice.exists():
            return (f"{twice} is compressed twice (an early build_dataset.sh ran `gzip -f` on the "
                    f"download): run `gzip -d` on it once")
        if missing == self.path(MIMIC_IV, PATIENTS) and self.mimic_iv.parent.is_dir():
            found = sorted(self.mimic_iv.parent.glob(f"*/{PATIENTS}*"))
            if found:
                return (f"{found[0]}: another MIMIC-IV version than {MIMIC_IV.version}; to use "
                        f"it, pass --mimic-iv-dir {found[0].parent.parent}")
        return None


# --- scene graphs -----------------------------------------------------------------------------

@dataclass(frozen=True)
class SceneGraphSource:
    """Where the scene graphs are: a zip archive, or a folder of ``*_SceneGraph.json`` files."""

    path: Path
    kind: Literal["zip", "dir"]

    def __str__(self) -> str:
        """The path, for messages."""
        return str(self.path)


def find_scene_graphs(chest_imagenome_dir: Path | str) -> SceneGraphSource | None:
    """Locate the scene graphs under a ``chest-imagenome/1.0.0`` folder, or None when absent.

    Looks for ``silver_dataset/scene_graph.zip``, then a ``silver_dataset/scene_graph/`` folder
    holding ``*_SceneGraph.json`` files, then the doubled ``scene_graph/scene_graph/`` that
    unzipping into ``scene_graph/`` produces.
    """
    archive = Path(chest_imagenome_dir) / SCENE_GRAPH_ZIP
    silver = archive.parent
    if archive.is_file():
        return SceneGraphSource(archive, "zip")
    for folder in (silver / "scene_graph", silver / "scene_graph" / "scene_graph"):
        if folder.is_dir() and _has_graphs(folder):
            return SceneGraphSource(folder, "dir")
    return None


def is_graph_name(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    # Archives made on macOS carry AppleDouble twins (__MACOSX/, ._name) that are not JSON.
    return (base.endswith(GRAPH_SUFFIX) and not base.startswith(".")
            and not name.startswith("__MACOSX/"))


def _has_graphs(folder: Path) -> bool:
    with os.scandir(folder) as entries:
        return any(is_graph_name(entry.name) for entry in entries)
