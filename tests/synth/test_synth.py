"""The synthetic PhysioNet tree: formats, invariants of source-formats.md §5, planted cases."""

from __future__ import annotations

import gzip
import json
import re
import struct
import zipfile
import zlib
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from helpers import render_question

from cxrvqa.facts import ImageFacts
from cxrvqa.synth import SynthConfig, SynthManifest, write_questions, write_sources
from cxrvqa.synth.ontology import IMPOSSIBLE_PAIRS, QUESTION_PAIRS
from cxrvqa.synth.report import WALK_TRAPS
from cxrvqa.synth.tree import CIG, CXR, MIV
from cxrvqa.tools.generate import load_templates
from cxrvqa.vocab import (
    ATTRIBUTES_BY_CATEGORY,
    BBOX_NAMES,
    CATEGORIES,
    GOLD_BBOX_NAMES,
    REMOVED_ATTRIBUTES,
    REPORT_OBJECTS,
    category_of,
)

SEMANTICS = CIG / "semantics"
SCENE_TABULAR = CIG / "silver_dataset" / "scene_tabular"
GOLD = CIG / "gold_dataset"
SIZE_BOXES = {"left lung", "right lung", "cardiac silhouette", "upper mediastinum"}
DICOM = re.compile(r"^[0-9a-f]{8}(-[0-9a-f]{8}){4}$")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> SynthManifest:
    """The default demo size, with scene graphs zipped."""
    return write_sources(tmp_path_factory.mktemp("tree"), SynthConfig(scene_graphs="zip"))


@pytest.fixture(scope="module")
def metadata(tree: SynthManifest) -> pd.DataFrame:
    frame = pd.read_csv(tree.root / CXR / "mimic-cxr-2.0.0-metadata.csv",
                        dtype={"dicom_id": str, "ViewPosition": str})
    stamp = pd.to_datetime(frame["StudyDate"].astype(str) + " "
                           + frame["StudyTime"].map(lambda t: "%010.3f" % t),
                           format="%Y%m%d %H%M%S.%f")
    return frame.assign(StudyDateTime=stamp)


@pytest.fixture(scope="module")
def labels(tree: SynthManifest) -> pd.DataFrame:
    return pd.read_csv(tree.root / SCENE_TABULAR / "attribute_relations_tabular.txt", sep="\t",
                       dtype={"image_id": str, "row_id": str}, keep_default_na=False)


@pytest.fixture(scope="module")
def boxes(tree: SynthManifest) -> pd.DataFrame:
    frame = pd.read_csv(tree.root / SCENE_TABULAR / "bbox_objects_tabular.txt", sep="\t",
                        keep_default_na=False)
    return frame.assign(image_id=frame["object_id"].str.split("_").str[0])


@pytest.fixture(scope="module")
def gold_labels(tree: SynthManifest) -> pd.DataFrame:
    return pd.read_csv(tree.root / GOLD / "gold_attributes_relations_500pts_500studies1st.txt",
                       sep="\t", keep_default_na=False)


def study_orders(metadata: pd.DataFrame) -> pd.Series:
    """StudyOrder per study_id: rank by the study's earliest image time, then study_id."""
    first = metadata.groupby(["subject_id", "study_id"], as_index=False)["StudyDateTime"].min()
    first = first.sort_values(["subject_id", "StudyDateTime", "study_id"])
    return first.assign(order=first.groupby("subject_id").cumcount() + 1).set_index(
        "study_id")["order"]


# --- determinism and variants -------------------------------------------------------------


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes()
            for path in sorted(root.rglob("*")) if path.is_file()}


SMALL = SynthConfig(patients=501, scene_graphs="zip", gzip=True)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> SynthManifest:
    """The smallest tree, every file in its packed variant."""
    return write_sources(tmp_path_factory.mktemp("small"), SMALL)


@pytest.fixture(scope="module")
def small_plain(tmp_path_factory: pytest.TempPathFactory) -> SynthManifest:
    """The same tree with plain CSVs and a scene graph folder."""
    config = SMALL.model_copy(update={"gzip": False, "scene_graphs": "dir"})
    return write_sources(tmp_path_factory.mktemp("small_plain"), config)


def test_same_seed_same_bytes(small: SynthManifest, tmp_path: Path) -> None:
    write_sources(tmp_path, SMALL)
    first = _tree_bytes(small.root)
    assert len(first) == 10 and first == _tree_bytes(tmp_path)


def test_gzip_variant_holds_the_plain_bytes(small: SynthManifest,
                                            small_plain: SynthManifest) -> None:
    for relative in (CXR / "mimic-cxr-2.0.0-metadata.csv", MIV / "hosp" / "patients.csv"):
        packed = relative.with_name(relative.name + ".gz")
        assert relative in small_plain.files and packed in small.files
        plain = (small_plain.root / relative).read_bytes()
        assert gzip.decompress((small.root / packed).read_bytes()) == plain
        assert not (small.root / relative).exists()
    for name in ("scene_tabular/attribute_relations_tabular.txt",
                 "scene_tabular/bbox_objects_tabular.txt"):
        silver = Path(CIG, "silver_dataset", name)
        assert (small.root / silver).read_bytes() == (small_plain.root / silver).read_bytes()


def test_another_seed_differs_and_scene_graphs_are_off_by_default(
        small_plain: SynthManifest, tmp_path: Path) -> None:
    write_sources(tmp_path, SynthConfig(patients=501, seed=1))
    assert sorted(p.name for p in (tmp_path / CIG / "silver_dataset").iterdir()) == [
        "scene_tabular"]
    name = CXR / "mimic-cxr-2.0.0-metadata.csv"
    assert (tmp_path / name).read_bytes() != (small_plain.root / name).read_bytes()


def test_scene_graph_folder_matches_the_tables(small_plain: SynthManifest) -> None:
    folder = small_plain.root / CIG / "silver_dataset" / "scene_graph"
    graphs = {path.name[:-len("_SceneGraph.json")]: json.loads(path.read_text())
              for path in sorted(folder.glob("*_SceneGraph.json"))}
    assert len(graphs) == small_plain.scene_graphs
    _assert_tables_flatten(graphs, small_plain.root)


def test_zip_members_are_the_folder_files_deflated_fast(small: SynthManifest,
                                                         small_plain: SynthManifest) -> None:
    folder = small_plain.root / CIG / "silver_dataset" / "scene_graph"
    path = small.root / CIG / "silver_dataset" / "scene_graph.zip"
    with zipfile.ZipFile(path) as archive, path.open("rb") as raw:
        infos = archive.infolist()
        assert [info.filename for info in infos] == [
            f"scene_graph/{file.name}" for file in sorted(folder.iterdir())]
        for info in infos[:5]:
            data = archive.read(info)
            assert data == (folder / info.filename.split("/")[1]).read_bytes()
            # The member's deflate stream is what zlib's fastest level (1) makes of the data.
            raw.seek(info.header_offset + 26)
            name_length, extra_length = struct.unpack("<HH", raw.read(4))
            raw.seek(info.header_offset + 30 + name_length + extra_length)
            fast = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)
            assert info.compress_type == zipfile.ZIP_DEFLATED
            assert raw.read(info.compress_size) == fast.compress(data) + fast.flush()


# --- scene graphs -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def zip_graphs(tree: SynthManifest) -> dict[str, dict]:
    with zipfile.ZipFile(tree.root / CIG / "silver_dataset" / "scene_graph.zip") as archive:
        names = archive.namelist()
        assert all(re.fullmatch(r"scene_graph/[0-9a-f-]{44}_SceneGraph\.json", n) for n in names)
        return {name[len("scene_graph/"):-len("_SceneGraph.json")]: json.loads(archive.read(name))
                for name in names}


def _assert_tables_flatten(graphs: dict[str, dict], root: Path, image_suffix: str = "") -> None:
    """Each table line is the flattening of the graphs, numbers written as the JSON has them
    (label rows' image ids with ``image_suffix``)."""
    label_lines, box_lines = [], []
    for image_id in sorted(graphs):
        graph = graphs[image_id]
        assert graph["image_id"] == image_id
        for entry in graph["attributes"]:
            for phrase_id, tags in zip(entry["phrase_IDs"], entry["attributes"], strict=True):
                for tag in tags:
                    category, polarity, label = tag.split("|")
                    label_lines.append("\t".join(map(str, (
                        graph["study_id"], image_id + image_suffix, phrase_id,
                        phrase_id.split("|")[-1],
                        entry["bbox_name"], category, label, int(polarity == "yes"), polarity))))
        box_lines += ["\t".join(map(str, obj.values())) for obj in graph["objects"]]
    for name, lines in (("attribute_relations_tabular.txt", label_lines),
                        ("bbox_objects_tabular.txt", box_lines)):
        assert (root / SCENE_TABULAR / name).read_text().splitlines()[1:] == lines


def test_zip_graphs_flatten_to_the_tables(tree: SynthManifest,
                                          zip_graphs: dict[str, dict]) -> None:
    assert len(zip_graphs) == tree.scene_graphs
    _assert_tables_flatten(zip_graphs, tree.root)


@pytest.fixture(scope="module")
def rare(tmp_path_factory: pytest.TempPathFactory) -> SynthManifest:
    """The smallest tree with the rare real-file quirks (``SynthConfig.rare_quirks``)."""
    config = SynthConfig(patients=501, seed=3, scene_graphs="zip", rare_quirks=True)
    return write_sources(tmp_path_factory.mktemp("rare"), config)


def test_rare_quirks_tables_name_images_with_dcm(rare: SynthManifest) -> None:
    # Scene graphs name images without ".dcm" (source-formats.md §3.1.1); the tables may not.
    with zipfile.ZipFile(rare.root / CIG / "silver_dataset" / "scene_graph.zip") as archive:
        graphs = {name[len("scene_graph/"):-len("_SceneGraph.json")]: json.loads(archive.read(name))
                  for name in archive.namelist()}
    assert not any(graph["image_id"].endswith(".dcm") for graph in graphs.values())
    _assert_tables_flatten(graphs, rare.root, image_suffix=".dcm")


def test_rare_quirks_move_boxes_off_the_grid_and_past_the_canvas(rare: SynthManifest) -> None:
    frame = pd.read_csv(rare.root / SCENE_TABULAR / "bbox_objects_tabular.txt", sep="\t")
    image = frame["object_id"].str.split("_").str[0]
    moved = image.isin(rare.quirks["off_grid"])
    fractional = (frame["x2"] % 1 != 0) | (frame["x1"] % 1 != 0)
    assert 0.05 < moved.groupby(image).first().mean() < 0.3
    assert fractional[moved].all() and not fractional[~moved].any()
    # int() truncates toward zero: a negative fraction is where it differs from floor().
    assert ((frame["x1"] < 0) & (frame["x1"] % 1 != 0)).any() and (frame["x2"] > 224).any()
    assert (frame["width"] == (frame["x2"] - frame["x1"]).round(2)).all()


def test_rare_quirks_quote_gold_sentences_and_drop_whole_seconds_point(
        rare: SynthManifest) -> None:
    gold = rare.root / GOLD / "gold_attributes_relations_500pts_500studies1st.txt"
    assert '\t" ' in gold.read_text() and '""compare with the prior""' in gold.read_text()
    sentences = pd.read_csv(gold, sep="\t", keep_default_na=False)["sentence"]
    quoted = sentences[sentences.str.contains('"compare with the prior"', regex=False)]
    assert len(quoted) and quoted.str.startswith(" ").all() and quoted.str.endswith(" ").all()
    lines = (rare.root / CXR / "mimic-cxr-2.0.0-metadata.csv").read_text().splitlines()[1:]
    times = [line.split(",")[8] for line in lines]
    assert any("." not in time for time in times) and any(time.endswith(".0") for time in times)


def test_scene_graph_keys(zip_graphs: dict[str, dict]) -> None:
    graph = next(g for g in zip_graphs.values() if g["objects"] and g["attributes"])
    assert list(graph) == ["image_id", "viewpoint", "patient_id", "study_id", "gender",
                           "age_decile", "reason_for_exam", "StudyOrder", "StudyDateTime",
                           "objects", "attributes", "relationships"]
    assert graph["viewpoint"] in ("AP", "PA") and isinstance(graph["relationships"], list)
    relation = next(r for g in zip_graphs.values() for r in g["relationships"])
    assert list(relation) == ["relationship_id", "subject_id", "object_id", "bbox_name", "synsets",
                              "name", "relationship_names", "comparison", "attributes",
                              "attributes_ids", "phrase", "phrase_ID", "section",
                              "bbox_coord_224_subject", "bbox_coord_224_object",
                              "bbox_coord_original_subject", "bbox_coord_original_object",
                              "current_image_id", "previous_image_id"]
    assert list(graph["objects"][0]) == ["object_id", "x1", "y1", "x2", "y2", "width", "height",
                                         "bbox_name", "synsets", "name", "original_x1",
                                         "original_y1", "original_x2", "original_y2",
                                         "original_width", "original_height"]
    entry = graph["attributes"][0]
    assert list(entry) == [entry["bbox_name"], "bbox_name", "synsets", "name", "attributes",
                           "attributes_ids", "phrases", "phrase_IDs", "sections",
                           "comparison_cues", "temporal_cues", "severity_cues", "texture_cues",
                           "object_id"]
    assert entry[entry["bbox_name"]] is True
    parallel = ("attributes", "attributes_ids", "phrases", "phrase_IDs", "sections",
                "comparison_cues", "temporal_cues", "severity_cues", "texture_cues")
    assert len({len(entry[key]) for key in parallel}) == 1


# Real density (source-formats.md §3.1, §3.3): 10.3 GB of JSON over 242,072 graphs, and an
# estimated 10^7 attribute_relations rows, i.e. about 41 label rows per graph.
REAL_GRAPH_BYTES = 10.3e9 / 242_072
REAL_LABEL_ROWS_PER_GRAPH = 1e7 / 242_072
PARALLEL = ("attributes", "attributes_ids", "phrases", "phrase_IDs", "sections",
            "comparison_cues", "temporal_cues", "severity_cues", "texture_cues")


def test_scene_graphs_have_the_real_density(tree: SynthManifest) -> None:
    with zipfile.ZipFile(tree.root / CIG / "silver_dataset" / "scene_graph.zip") as archive:
        sizes = [info.file_size for info in archive.infolist()]
    assert sum(sizes) / len(sizes) >= 40_000 > 0.9 * REAL_GRAPH_BYTES
    per_graph = tree.silver_label_rows / tree.scene_graphs
    assert 0.9 * REAL_LABEL_ROWS_PER_GRAPH <= per_graph <= 1.5 * REAL_LABEL_ROWS_PER_GRAPH


def test_every_graph_carries_every_real_field(zip_graphs: dict[str, dict]) -> None:
    cue_lists = {key: 0 for key in PARALLEL[5:]}
    lengths = []
    for graph in zip_graphs.values():
        assert set(graph) >= {"reason_for_exam", "objects", "attributes", "relationships"}
        assert graph["attributes"]  # every report names some region
        for entry in graph["attributes"]:
            assert entry[entry["bbox_name"]] is True
            assert entry["object_id"] == f"{graph['image_id']}_{entry['bbox_name']}"
            assert len({len(entry[key]) for key in PARALLEL}) == 1
            for tags, ids, phrase_id in zip(entry["attributes"], entry["attributes_ids"],
                                            entry["phrase_IDs"]):
                assert tags and len(ids) == len(tags)
                assert all(re.fullmatch(r"CL?\d+", i) for i in ids)
                assert phrase_id.startswith(f"{graph['study_id']}|")
            assert set(entry["sections"]) == {"finalreport"}
            lengths += map(len, entry["phrases"])
            for key in cue_lists:
                cue_lists[key] += sum(map(bool, entry[key]))
                assert all(cue.startswith(key.removesuffix("_cues") + "|yes|")
                           for cues in entry[key] for cue in cues)
    assert all(count > 100 for count in cue_lists.values()), cue_lists
    assert 60 <= sum(lengths) / len(lengths) <= 250  # report sentences, not stubs
    assert max(lengths) >= 150


def test_relationships_compare_with_the_previous_exam(zip_graphs: dict[str, dict]) -> None:
    by_study: dict[int, list[dict]] = {}
    for graph in zip_graphs.values():
        by_study.setdefault(graph["study_id"], []).append(graph)
    studies = {(g["patient_id"], g["StudyOrder"]): g["study_id"] for g in zip_graphs.values()}
    compared = 0
    for graph in zip_graphs.values():
        relations = graph["relationships"]
        earlier = studies.get((graph["patient_id"], graph["StudyOrder"] - 1))
        if graph["StudyOrder"] == 1:
            assert relations == []
            continue
        if earlier is None or not graph["objects"] or not all(
                g["objects"] for g in by_study[earlier]):
            continue  # no earlier image with boxes to compare with
        assert relations, graph["image_id"]
        compared += 1
        # A duplicated box's first row is the box (as the build reads it).
        objects = {obj["object_id"]: obj for obj in reversed(graph["objects"])}
        previous = {obj["object_id"]: obj for g in by_study[earlier]
                    for obj in reversed(g["objects"])}
        phrases = {(e["bbox_name"], p) for e in graph["attributes"] for p in e["phrase_IDs"]}
        for relation in relations:
            subject, obj = objects[relation["subject_id"]], previous[relation["object_id"]]
            assert subject["bbox_name"] == obj["bbox_name"] == relation["bbox_name"]
            assert relation["bbox_coord_224_subject"] == [subject[k] for k in
                                                          ("x1", "y1", "x2", "y2")]
            assert relation["bbox_coord_224_object"] == [obj[k] for k in ("x1", "y1", "x2", "y2")]
            assert relation["bbox_coord_original_object"] == [
                obj[k] for k in ("original_x1", "original_y1", "original_x2", "original_y2")]
            assert relation["comparison"] in ("no change", "improved", "worsened")
            assert relation["relationship_names"] == [f"comparison|yes|{relation['comparison']}"]
            assert (relation["bbox_name"], relation["phrase_ID"]) in phrases
            assert relation["attributes"] and relation["phrase"]
    assert compared >= 0.5 * sum(g["StudyOrder"] > 1 for g in zip_graphs.values())


def test_label_rows_repeat_negate_and_tag_normal_and_abnormal(labels: pd.DataFrame) -> None:
    per_image = labels.groupby("image_id").size()
    assert per_image.median() >= 30
    nlp = labels[labels["categoryID"] == "nlp"]
    assert (nlp.groupby("image_id")["label_name"].nunique() == 2).mean() > 0.5
    kept = labels[labels["categoryID"] != "nlp"]
    assert (kept["relation"] == 0).mean() > 0.5  # most mentions are negated
    key = ["image_id", "bbox", "label_name"]
    repeats = kept.groupby(key).agg(sentences=("sent_loc", "nunique"),
                                    relations=("relation", "nunique"))
    same = repeats[(repeats["sentences"] > 1) & (repeats["relations"] == 1)]
    assert same.index.get_level_values("image_id").nunique() > 0.3 * labels["image_id"].nunique()
    regions = labels.groupby(["image_id", "sent_loc"])["bbox"].nunique()
    assert regions.max() >= 8  # a sentence about the lungs names every lung region


def test_scene_graph_study_order_and_datetime_follow_the_metadata(
        zip_graphs: dict[str, dict], metadata: pd.DataFrame) -> None:
    orders = study_orders(metadata)
    times = metadata.set_index("dicom_id")["StudyDateTime"]
    for image_id, graph in zip_graphs.items():
        assert graph["StudyOrder"] == orders[graph["study_id"]]
        assert graph["StudyDateTime"] == times[image_id].strftime("%Y-%m-%d %H:%M:%S")


# --- metadata and patients ----------------------------------------------------------------


def test_metadata_columns_ids_and_study_times(tree: SynthManifest, metadata: pd.DataFrame) -> None:
    header = (tree.root / CXR / "mimic-cxr-2.0.0-metadata.csv").read_text().split("\n", 1)[0]
    assert header == ("dicom_id,subject_id,study_id,PerformedProcedureStepDescription,"
                      "ViewPosition,Rows,Columns,StudyDate,StudyTime,"
                      "ProcedureCodeSequence_CodeMeaning,ViewCodeSequence_CodeMeaning,"
                      "PatientOrientationCodeSequence_CodeMeaning")
    assert metadata["dicom_id"].map(DICOM.match).all() and metadata["dicom_id"].is_unique
    assert metadata["subject_id"].between(10_000_000, 19_999_999).all()
    assert metadata["study_id"].between(50_000_000, 59_999_999).all()
    assert metadata.groupby("study_id")["subject_id"].nunique().max() == 1
    times = metadata["StudyTime"]
    assert times.dtype == "float64"
    assert (times % 1 != 0).any() and (times % 1 == 0).any()  # some milliseconds, some not
    assert (times < 100_000).any()  # leading zeros lost: before 10:00
    assert metadata["StudyDate"].between(21_000_101, 22_001_231).all()


def test_views_per_study(metadata: pd.DataFrame) -> None:
    views = metadata["ViewPosition"]
    assert {"AP", "PA", "LATERAL", "LL"} <= set(views.dropna()) and views.isna().any()
    frontal = metadata[views.isin(["AP", "PA"])]
    per_study = frontal.groupby("study_id")["dicom_id"].count()
    assert (per_study == 2).sum() >= 5
    twins = frontal[frontal["study_id"].isin(per_study[per_study == 2].index)]
    tied = twins.groupby("study_id")["StudyDateTime"].nunique()
    assert (tied == 1).any() and (tied == 2).any()  # ties by dicom_id and by time
    assert metadata["study_id"].nunique() > frontal["study_id"].nunique()  # lateral-only studies
    assert (metadata.groupby("study_id").size() > 1).mean() > 0.3


def test_study_order_quirks(tree: SynthManifest, metadata: pd.DataFrame) -> None:
    studies = metadata.groupby("subject_id")["study_id"].nunique()
    assert (studies > 20).sum() >= 2
    # The published StudyOrder recipe parses "<datetime><study_id>" and needs milliseconds.
    keys = pd.to_datetime(metadata["StudyDateTime"].astype(str) + metadata["study_id"].astype(str))
    assert keys.notna().all()


def test_patients_file(tree: SynthManifest, metadata: pd.DataFrame) -> None:
    path = tree.root / MIV / "hosp" / "patients.csv"
    assert path.read_text().split("\n", 1)[0] == (
        "subject_id,gender,anchor_age,anchor_year,anchor_year_group,dod")
    patients = pd.read_csv(path)
    assert patients["subject_id"].is_unique and set(patients["gender"]) == {"M", "F"}
    cohort = set(metadata["subject_id"])
    assert cohort - set(patients["subject_id"]) == set(tree.subjects_without_gender)
    assert len(tree.subjects_without_gender) >= 3
    assert set(patients["subject_id"]) - cohort  # MIMIC-IV patients without X-rays
    assert patients["dod"].notna().any() and patients["dod"].isna().any()


# --- gold files ---------------------------------------------------------------------------


def test_gold_labels_name_500_first_study_frontal_images(
        tree: SynthManifest, metadata: pd.DataFrame, gold_labels: pd.DataFrame) -> None:
    assert list(gold_labels.columns) == ["patient_id", "study_id", "image_id", "row_id", "bbox",
                                         "categoryID", "label_name", "relation", "context",
                                         "sentence"]
    assert gold_labels["patient_id"].nunique() == 500 and len(gold_labels) == tree.gold_label_rows
    assert gold_labels["image_id"].str.endswith(".dcm").all()
    images = gold_labels.groupby("patient_id")["image_id"].unique()
    assert images.map(len).eq(1).all()
    gold_ids = {ids[0].removesuffix(".dcm") for ids in images}
    assert gold_ids == set(tree.gold_images)
    rows = metadata.set_index("dicom_id").loc[sorted(gold_ids)]
    assert rows["ViewPosition"].isin(["AP", "PA"]).all()
    assert (rows["study_id"].map(study_orders(metadata)) == 1).all()
    assert (rows["subject_id"].sort_values().to_numpy()
            == images.index.sort_values().to_numpy()).all()
    assert not gold_labels["sentence"].str.contains("[\t\n]").any()


def test_gold_labels_keep_rows_for_every_image(gold_labels: pd.DataFrame) -> None:
    kept = gold_labels[(gold_labels["categoryID"] != "nlp") & (gold_labels["bbox"] != "unknown")]
    assert kept["patient_id"].nunique() == 500
    assert set(gold_labels["relation"]) == {0, 1}
    assert (gold_labels["relation"] == 1).eq(gold_labels["context"] == "yes").all()


def test_gold_boxes_cover_first_two_studies(tree: SynthManifest, metadata: pd.DataFrame,
                                            gold_labels: pd.DataFrame) -> None:
    frame = pd.read_csv(tree.root / GOLD / "gold_bbox_coordinate_annotations_1000images.csv")
    assert list(frame.columns) == ["image_id", "x1", "y1", "x2", "y2", "width", "height",
                                   "bbox_name", "annot_id", "original_x1", "original_x2",
                                   "original_y1", "original_y2", "original_width",
                                   "original_height", "annotator", "coord224", "coord_original"]
    assert all(frame[c].dtype == "float64" for c in ("x1", "y2", "width", "original_x1"))
    assert frame["image_id"].str.endswith(".dcm").all() and frame["image_id"].nunique() == 1000
    assert set(frame["bbox_name"]) == set(GOLD_BBOX_NAMES)
    assert 25_900 < len(frame) < 26_000  # a few boxes missing, as in the real file
    assert len(frame) == tree.gold_box_rows
    coords = frame["coord224"].map(lambda s: [int(v) for v in s[1:-1].split(",")])
    assert (coords.map(lambda c: c[0]) == frame["x1"]).all()
    assert (coords.map(lambda c: c[3]) == frame["y2"]).all()
    images = frame["image_id"].str.removesuffix(".dcm")
    first = images.isin(tree.gold_images)
    assert images[first].nunique() == 500
    per_first = frame[first].groupby("image_id")["bbox_name"].agg(set)
    assert per_first.map(SIZE_BOXES.issubset).all()
    orders = metadata.set_index("dicom_id")["study_id"].map(study_orders(metadata))
    assert set(orders[images[~first].unique()]) == {2}


# --- silver boxes -------------------------------------------------------------------------


def test_silver_boxes_36_names_and_planted_box_quirks(tree: SynthManifest,
                                                      boxes: pd.DataFrame) -> None:
    assert set(boxes["bbox_name"]) == set(BBOX_NAMES) and len(boxes) == tree.silver_box_rows
    assert (boxes["object_id"].str.split("_").str[-1] == boxes["bbox_name"]).all()
    names = boxes.groupby("image_id")["bbox_name"].nunique()
    rows = boxes.groupby("image_id").size()
    quirks = tree.quirks
    assert set(names[names == 35].index) == set(quirks["missing_box"])
    assert set(rows[rows == 37].index) == set(quirks["duplicate_box"])
    assert (names == 36).mean() > 0.9
    assert not set(quirks["no_boxes"]) & set(boxes["image_id"])
    assert all(len(quirks[name]) >= 2 for name in quirks)


def test_outlier_widths_are_beyond_three_sd(tree: SynthManifest, boxes: pd.DataFrame) -> None:
    stats = boxes.groupby("bbox_name")["width"].agg(["mean", "std"])
    bounds = boxes["bbox_name"].map(stats["mean"] - 3 * stats["std"]), boxes["bbox_name"].map(
        stats["mean"] + 3 * stats["std"])
    wide = set(boxes.loc[boxes["width"] > bounds[1], "image_id"])
    narrow = set(boxes.loc[boxes["width"] < bounds[0], "image_id"])
    assert wide == set(tree.quirks["wide_box"]) and narrow == set(tree.quirks["narrow_box"])


def test_frontal_images_without_scene_graphs(tree: SynthManifest, metadata: pd.DataFrame,
                                             labels: pd.DataFrame, boxes: pd.DataFrame) -> None:
    frontal = set(metadata.loc[metadata["ViewPosition"].isin(["AP", "PA"]), "dicom_id"])
    graphs = set(labels["image_id"]) | set(boxes["image_id"])
    assert graphs <= frontal
    assert frontal - graphs == set(tree.quirks["no_graph"])
    assert len(graphs) == tree.scene_graphs


# --- silver labels ------------------------------------------------------------------------


def test_label_table_format(tree: SynthManifest, labels: pd.DataFrame) -> None:
    assert list(labels.columns) == ["study_id", "image_id", "row_id", "sent_loc", "bbox",
                                    "categoryID", "label_name", "relation", "context"]
    assert (labels["row_id"].str.split("|").str[-1].astype(int) == labels["sent_loc"]).all()
    assert (labels["row_id"].str.split("|").str[0].astype(int) == labels["study_id"]).all()
    assert (labels["relation"] == 1).eq(labels["context"] == "yes").all()
    assert labels["image_id"].is_monotonic_increasing
    assert set(labels["bbox"]) <= set(REPORT_OBJECTS) | {"unknown"}
    nlp = labels[labels["categoryID"] == "nlp"]
    assert set(nlp["label_name"]) == {"normal", "abnormal"}
    others = labels[labels["categoryID"] != "nlp"]
    categories = {label: category_of(label) for label in others["label_name"].unique()}
    assert (others["label_name"].map(categories) == others["categoryID"]).all()
    assert len(labels) == tree.silver_label_rows


def test_labels_plant_every_rule_case(labels: pd.DataFrame) -> None:
    kept = labels[labels["categoryID"] != "nlp"]
    key = ["image_id", "bbox", "label_name"]
    mentions = kept.groupby(key).agg(sentences=("sent_loc", "nunique"),
                                     relations=("relation", "nunique"))
    flips = mentions[(mentions["sentences"] > 1) & (mentions["relations"] == 2)]
    assert flips.index.get_level_values("image_id").nunique() >= 20
    ties = kept.groupby([*key, "sent_loc"])["relation"].nunique()
    assert (ties == 2).sum() >= 10
    pairs = set(zip(kept["bbox"], kept["label_name"]))
    assert pairs & set(IMPOSSIBLE_PAIRS) and pairs & set(WALK_TRAPS)
    assert set(kept["label_name"]) & REMOVED_ATTRIBUTES
    assert {"left arm", "unknown"} & set(kept["bbox"]) == {"left arm", "unknown"}
    assert (kept["relation"] == 0).any()
    sentence = ["image_id", "sent_loc", "bbox"]
    family = kept[kept["label_name"].isin(["lung opacity", "consolidation"])]
    assert (family.groupby(sentence)["label_name"].nunique() == 2).any()
    sentence = ["image_id", "sent_loc", "label_name"]
    for side in ("left", "right"):
        regions = kept[kept["bbox"].isin([f"{side} lung", f"{side} lower lung zone"])]
        if (regions.groupby(sentence)["bbox"].nunique() == 2).any():
            break
    else:
        raise AssertionError("no lung and lower lung zone in one sentence")


def test_some_studies_are_normal_and_some_have_no_usable_label(labels: pd.DataFrame) -> None:
    kept = labels[(labels["categoryID"] != "nlp") & (labels["bbox"] != "unknown")
                  & ~labels["label_name"].isin(REMOVED_ATTRIBUTES)
                  & ~labels["bbox"].isin(["left arm", "right arm"])]
    positives = kept.groupby("image_id")["relation"].max()
    assert (positives == 0).sum() >= 50
    assert set(labels["image_id"]) - set(kept["image_id"])  # nlp, unknown, removed rows only


# --- semantics ----------------------------------------------------------------------------


def _lines(path: Path) -> list[str]:
    text = path.read_text()
    assert not text.endswith("\n") and "\n\n" not in text
    lines = text.split("\n")
    assert all(line.endswith(",") for line in lines[:-1]) and not lines[-1].endswith(",")
    return [line.rstrip(",") for line in lines]


def test_vocabulary_files_use_comma_terminated_lines(tree: SynthManifest) -> None:
    assert _lines(tree.root / SEMANTICS / "objects_extracted_from_reports_v1.txt") == list(
        REPORT_OBJECTS)
    lines = [line.split("|") for line in _lines(tree.root / SEMANTICS
                                               / "attribute_relations_v1.txt")]
    assert all(len(parts) == 3 and parts[1] == "yes" for parts in lines)
    for category in (*CATEGORIES, "nlp"):
        assert [label for cat, _, label in lines if cat == category] == list(
            ATTRIBUTES_BY_CATEGORY[category])
    assert {cat for cat, _, _ in lines} - {*CATEGORIES, "nlp"}  # cue lines builders must skip


def _build_pairs(ontology: dict) -> set[tuple[str, str]]:
    """Possible pairs after the published ontology edits (pipeline.md §2), restricted."""
    objects = list(REPORT_OBJECTS)
    attributes = [a for c in CATEGORIES for a in ATTRIBUTES_BY_CATEGORY[c]
                  if a != "sternotomy wires"]
    children = {k: list(v) for k, v in ontology["all_children"].items()}
    children["lungs"] += ["hilar structures", "right hilar structures", "left hilar structures"]
    children["left lung"] += ["left hilar structures"]
    children["right lung"] += ["right hilar structures"]
    children["hilar structures"] = ["right hilar structures", "left hilar structures"]
    children["mediastinum"] += ["aortic arch", "svc"]
    object_parents: dict[str, list[str]] = {}
    attribute_parents: dict[str, list[str]] = {}
    for parent, kids in children.items():
        for kid in kids:
            if parent in objects and kid in objects:
                object_parents.setdefault(kid, []).append(parent)
            if parent in attributes and kid in attributes:
                attribute_parents.setdefault(kid, []).append(parent)
    possible = {k: list(v) for k, v in ontology["possible_attribute_of"].items()}
    for attribute, where in possible.items():
        if attribute in attributes:
            for kid, parents in object_parents.items():
                where += [p for p in parents if kid in where and p not in where]
    for kid, where in possible.items():
        for parent in attribute_parents.get(kid, []):
            possible[parent] += [o for o in where if o not in possible[parent]]
    return {(o, a) for a in attributes for o in possible[a] if o in objects}


def test_ontology_shape(tree: SynthManifest) -> None:
    ontology = json.loads((tree.root / SEMANTICS / "label_to_UMLS_mapping.json").read_text())
    children = ontology["all_children"]
    assert all(isinstance(children[k], list) for k in ("lungs", "left lung", "right lung",
                                                        "mediastinum", "hilar structures"))
    assert {"lung opacity", "left lung"} <= set(children)  # attribute and object parents
    assert "consolidation" in children["lung opacity"]
    assert "left lower lung zone" in children["left lung"]
    labels = [label for c, labels in ATTRIBUTES_BY_CATEGORY.items() if c != "nlp"
              for label in labels]
    assert set(ontology["possible_attribute_of"]) == set(labels)
    assert set(ontology) - {"all_children", "possible_attribute_of"}
    pairs = _build_pairs(ontology)
    assert 560 <= len(pairs) <= 660
    assert set(QUESTION_PAIRS) <= pairs
    assert not pairs & (set(IMPOSSIBLE_PAIRS) | set(WALK_TRAPS))


def test_published_cohort_asserts_hold(tree: SynthManifest, metadata: pd.DataFrame,
                                       gold_labels: pd.DataFrame) -> None:
    """§5.1-2: 500 gold first images in the metadata; StudyOrder-1 rows equal their number."""
    orders = metadata["study_id"].map(study_orders(metadata))
    frontal = metadata[metadata["ViewPosition"].isin(["AP", "PA"])].sort_values(
        ["study_id", "StudyDateTime", "dicom_id"]).drop_duplicates("study_id")
    gold_patients = set(gold_labels["patient_id"])
    gold_cohort = frontal[frontal["subject_id"].isin(gold_patients)
                          & (orders[frontal.index] <= 20)]
    first_images = set(gold_labels["image_id"].str.removesuffix(".dcm"))
    assert metadata["dicom_id"].isin(first_images).sum() == 500
    assert (orders[gold_cohort.index] == 1).sum() == 500
    chosen = set(gold_cohort.loc[orders[gold_cohort.index] == 1, "dicom_id"])
    assert chosen != first_images  # some gold images are their study's later frontal image


# --- questions ----------------------------------------------------------------------------


def _fake_index() -> SimpleNamespace:
    """A hand-made index: 40 silver images over 20 subjects, 10 gold images."""
    boxes = {"left lung": (114, 202), "right lung": (22, 110), "cardiac silhouette": (70, 170),
             "upper mediastinum": (80, 140)}
    findings = [[("left lower lung zone", "pneumonia", "disease"),
                 ("left lung", "pneumonia", "disease"),
                 ("left lung", "lung opacity", "anatomicalfinding")],
                [("trachea", "endotracheal tube", "tubesandlines")], []]
    silver, gold, meta = {}, {}, {}
    for n in range(50):
        image = f"{n:08x}-00000000-00000000-00000000-00000000"
        facts = ImageFacts(findings[n % 3], ("AP", "PA")[n % 2], (None, "M", "F")[n % 3],
                           boxes if n % 4 else {})
        (gold if n >= 40 else silver)[image] = facts
        meta[image] = SimpleNamespace(subject_id=10_000_000 + n // 2, study_id=50_000_000 + n,
                                      viewpos=facts.viewpos)
    return SimpleNamespace(silver=silver, gold=gold, meta=meta)


def _questions(root: Path) -> dict[str, list[dict]]:
    folder = root / "mimiccxrvqa" / "dataset"
    return {name: json.loads((folder / name).read_text())
            for name in ("_train_part1.json", "_train_part2.json", "_valid.json", "_test.json")}


def test_question_files_format(tmp_path: Path) -> None:
    index = _fake_index()
    counts = write_questions(tmp_path, index, SynthConfig(questions_per_template=3))
    files = _questions(tmp_path)
    assert counts == {name: len(items) for name, items in files.items()}
    assert counts["_test.json"] == 48 * 3 and counts["_valid.json"] > 0
    train = files["_train_part1.json"] + files["_train_part2.json"]
    assert [r["idx"] for r in train] == list(range(len(train)))
    assert abs(counts["_train_part1.json"] - counts["_train_part2.json"]) <= 1
    templates = {t.program: t for t in load_templates()}
    for name, records in files.items():
        split = name.strip("_").split("_")[0].split(".")[0]
        pool = index.gold if split == "test" else index.silver
        for record in records:
            assert list(record) == ["split", "idx", "image_id", "question", "content_type",
                                    "semantic_type", "template", "template_program",
                                    "template_arguments"]
            template = templates[record["template_program"]]
            assert record["split"] == split and record["image_id"] in pool
            assert (record["template"], record["content_type"], record["semantic_type"]) == (
                template.text, template.content_type, template.semantic_type)
            assert list(record["template_arguments"]) == ["object", "attribute", "category",
                                                           "viewpos", "gender"]
            assert record["question"] == _render(record)
    assert (tmp_path / "mimiccxrvqa" / "dataset" / "_test.json").read_text().startswith("[\n  {")


_render = render_question


def test_question_arguments_respect_ontology_and_images(tmp_path: Path) -> None:
    index = _fake_index()
    write_questions(tmp_path, index, SynthConfig(questions_per_template=8))
    records = [r for items in _questions(tmp_path).values() for r in items]
    facts = {**index.silver, **index.gold}
    possible = set(QUESTION_PAIRS) | {(o, a) for f in facts.values() for o, a, _ in f.findings}
    for record in records:
        arguments = {k: list(v.values()) for k, v in record["template_arguments"].items()}
        placeholders = re.findall(r"\$\{(\w+)\}", record["template"])
        assert sum(map(len, arguments.values())) == len(placeholders)
        for values in arguments.values():
            assert len(set(values)) == len(values)
        assert all((o, a) in possible for o in arguments["object"] for a in arguments["attribute"])
        if arguments["category"] and arguments["attribute"]:
            assert {category_of(a) for a in arguments["attribute"]} == set(arguments["category"])
        image = facts[record["image_id"]]
        if record["template_program"] in ("program_45", "program_46"):
            assert image.gender is not None
        if record["template_program"] in ("program_47", "program_48"):
            assert SIZE_BOXES <= set(image.boxes)


def test_questions_mix_answers_and_are_reproducible(tmp_path: Path) -> None:
    index = _fake_index()
    config = SynthConfig(questions_per_template=20)
    write_questions(tmp_path / "a", index, config)
    write_questions(tmp_path / "b", index, config)
    first = _tree_bytes(tmp_path / "a")
    assert first == _tree_bytes(tmp_path / "b")
    facts = {**index.silver, **index.gold}
    answers = []
    for items in _questions(tmp_path / "a").values():
        for record in items:
            if record["template_program"] == "program_2":
                arguments = record["template_arguments"]
                obj, attribute = arguments["object"]["0"], arguments["attribute"]["0"]
                answers.append((obj, attribute) in {(o, a) for o, a, _ in
                                                    facts[record["image_id"]].findings})
    assert 0.2 < sum(answers) / len(answers) < 0.8


def test_generated_tree_feeds_the_pipeline_and_question_files(tree: SynthManifest,
                                                              tmp_path: Path) -> None:
    from cxrvqa.build.index import load_index
    from cxrvqa.build.layout import SourceLayout

    index = load_index(SourceLayout.from_root(tree.root))
    assert set(index.gold) == set(tree.gold_images)
    dropped = {i for name in ("missing_box", "wide_box", "narrow_box", "no_graph")
               for i in tree.quirks[name]}
    assert not dropped & set(index.silver)
    assert any(not facts.boxes for facts in index.silver.values())  # "no_boxes" images stay
    assert any(not facts.findings for facts in index.silver.values())
    assert any(facts.gender is None for facts in index.silver.values())
    counts = write_questions(tmp_path, index, SynthConfig(questions_per_template=2))
    assert counts["_test.json"] == 96 and counts["_valid.json"] == 96
    files = _questions(tmp_path)
    for name, records in files.items():
        pool = index.gold if name == "_test.json" else index.silver
        assert all(record["image_id"] in pool for record in records)
