"""Locate the PhysioNet source files a build reads.

A build reads a download root laid out by ``wget -r`` (``physionet.org/files/<project>/<version>/``).
Each project folder can also be given on its own, as the original builder's shell script allowed.
Compressed ``.csv.gz`` copies stand in for the plain CSV files.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

__all__ = ["SourceLayout", "DATASET_SUBDIR"]

CXR_SUBDIR = Path("physionet.org/files/mimic-cxr-jpg/2.0.0")
CIG_SUBDIR = Path("physionet.org/files/chest-imagenome/1.0.0")
MIV_SUBDIR = Path("physionet.org/files/mimiciv/2.2")
DATASET_SUBDIR = Path("mimiccxrvqa/dataset")


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
        return cls(root / CXR_SUBDIR, root / CIG_SUBDIR, root / MIV_SUBDIR)

    def with_dirs(self, *, mimic_cxr_jpg: Path | str | None = None,
                  chest_imagenome: Path | str | None = None,
                  mimic_iv: Path | str | None = None) -> SourceLayout:
        """A copy with some project folders replaced (None keeps the current one)."""
        changes = {name: Path(value) for name, value in (
            ("mimic_cxr_jpg", mimic_cxr_jpg), ("chest_imagenome", chest_imagenome),
            ("mimic_iv", mimic_iv)) if value is not None}
        return replace(self, **changes)

    @property
    def metadata(self) -> Path:
        return _plain_or_gz(self.mimic_cxr_jpg / "mimic-cxr-2.0.0-metadata.csv")

    @property
    def scene_tabular(self) -> Path:
        return self.chest_imagenome / "silver_dataset" / "scene_tabular"

    @property
    def silver_labels(self) -> Path:
        return self.scene_tabular / "attribute_relations_tabular.txt"

    @property
    def silver_boxes(self) -> Path:
        return self.scene_tabular / "bbox_objects_tabular.txt"

    @property
    def gold_labels(self) -> Path:
        return (self.chest_imagenome / "gold_dataset"
                / "gold_attributes_relations_500pts_500studies1st.txt")

    @property
    def gold_boxes(self) -> Path:
        return (self.chest_imagenome / "gold_dataset"
                / "gold_bbox_coordinate_annotations_1000images.csv")

    @property
    def objects_file(self) -> Path:
        return self.chest_imagenome / "semantics" / "objects_extracted_from_reports_v1.txt"

    @property
    def attributes_file(self) -> Path:
        return self.chest_imagenome / "semantics" / "attribute_relations_v1.txt"

    @property
    def ontology_file(self) -> Path:
        return self.chest_imagenome / "semantics" / "label_to_UMLS_mapping.json"

    @property
    def patients(self) -> Path:
        return _plain_or_gz(self.mimic_iv / "hosp" / "patients.csv")

    def has_scene_tabular(self) -> bool:
        """True when both silver tabular files exist (the builder then skips the scene graphs)."""
        return self.silver_labels.exists() and self.silver_boxes.exists()

    def missing(self) -> list[Path]:
        """Required source files that are absent.

        The silver tabular files count as present when scene graphs can stand in for them.
        """
        # Imported here: the scene-graph reader pulls in pandas, which most commands never need.
        from .scenegraph import find_scene_graphs

        required = [self.metadata, self.gold_labels, self.gold_boxes, self.objects_file,
                    self.attributes_file, self.ontology_file, self.patients]
        if not self.has_scene_tabular() and find_scene_graphs(self.chest_imagenome) is None:
            required += [self.silver_labels, self.silver_boxes]
        return [path for path in required if not path.exists()]

