"""Synthetic scene graphs and their flattening into the scene_tabular rows and gold rows.

A silver scene graph joins an image's boxes to its study's report. The two
``scene_tabular`` files are, by construction, the flattening of exactly these
graphs, so a reader of either source must see the same rows. Gold rows re-annotate
the first-study report (some relations flipped, a few sentences added) and gold
boxes are drawn afresh, so test answers differ from what silver data would give.

Graphs have the real files' density (~40 KB of JSON): every ``attributes[]`` field,
sentence-level cue lists, and, after a previous exam, ``relationships[]`` entries
comparing a region's box with the previous image's (source-formats.md §3.1.4; the
entry keys follow the published comparison tables). The previous image's boxes are
re-drawn from its own seeded generator, so graphs can still be written in any order.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any, NamedTuple

from cxrvqa.synth.cohort import Image, Patient, Study
from cxrvqa.synth.ontology import QUESTION_PAIRS, concept_id, object_display_name
from cxrvqa.synth.report import Mention, Sentence
from cxrvqa.vocab import BBOX_NAMES, GOLD_BBOX_NAMES, category_of

__all__ = [
    "BOX_COLUMNS",
    "GOLD_BOX_COLUMNS",
    "GOLD_LABEL_COLUMNS",
    "LABEL_COLUMNS",
    "SIZE_BOXES",
    "box_rows",
    "gold_box_rows",
    "gold_label_rows",
    "label_lines",
    "label_rows",
    "off_grid_shift",
    "previous_image",
    "scene_graph",
]

LABEL_COLUMNS = ("study_id", "image_id", "row_id", "sent_loc", "bbox", "categoryID",
                 "label_name", "relation", "context")
BOX_COLUMNS = ("object_id", "x1", "y1", "x2", "y2", "width", "height", "bbox_name", "synsets",
               "name", "original_x1", "original_y1", "original_x2", "original_y2",
               "original_width", "original_height")
GOLD_LABEL_COLUMNS = ("patient_id", "study_id", "image_id", "row_id", "bbox", "categoryID",
                      "label_name", "relation", "context", "sentence")
GOLD_BOX_COLUMNS = ("image_id", "x1", "y1", "x2", "y2", "width", "height", "bbox_name",
                    "annot_id", "original_x1", "original_x2", "original_y1", "original_y2",
                    "original_width", "original_height", "annotator", "coord224",
                    "coord_original")
# The four boxes the size programs read; every gold first-study image keeps them.
SIZE_BOXES = ("left lung", "right lung", "cardiac silhouette", "upper mediastinum")

# Right-side regions on the 224 canvas (x1, y1, x2, y2); left ones mirror them.
_RIGHT_SIDE: dict[str, tuple[int, int, int, int]] = {
    "lung": (22, 28, 110, 185), "upper lung zone": (28, 40, 108, 80),
    "mid lung zone": (24, 80, 109, 125), "lower lung zone": (22, 125, 110, 185),
    "hilar structures": (72, 70, 106, 120), "apical zone": (34, 26, 100, 48),
    "costophrenic angle": (20, 160, 52, 192), "cardiophrenic angle": (84, 160, 110, 186),
    "hemidiaphragm": (24, 165, 112, 198), "clavicle": (30, 20, 106, 46),
    "upper abdomen": (14, 186, 108, 222), "cardiac silhouette": (76, 100, 112, 176),
}
_MIDLINE: dict[str, tuple[int, int, int, int]] = {
    "trachea": (104, 8, 120, 72), "spine": (100, 8, 124, 210), "aortic arch": (112, 48, 140, 76),
    "mediastinum": (78, 36, 150, 182), "svc": (90, 48, 108, 100),
    "cavoatrial junction": (88, 96, 108, 116), "right atrium": (78, 108, 110, 166),
    "descending aorta": (116, 70, 136, 172), "carina": (100, 62, 122, 82),
    "abdomen": (14, 186, 210, 222),
    # Drawn per image from a varying half-width (see _coordinates).
    "cardiac silhouette": (76, 100, 164, 176), "upper mediastinum": (84, 30, 140, 92),
}
_WIDE_CANDIDATES = ("trachea", "carina", "svc", "cavoatrial junction", "aortic arch")
_NARROW_CANDIDATES = ("right lung", "left lung", "mediastinum", "abdomen")
_REASONS = ("Evaluate for pneumonia.", "Shortness of breath.", "Line placement.",
            "Preoperative assessment.", "Chest pain, assess for effusion.",
            "___-year-old man with fever and productive cough // evaluate for pneumonia.",
            "___-year-old woman with worsening dyspnea and leg swelling // evaluate for "
            "pulmonary edema or effusion.",
            "___ year old with new right internal jugular line // assess line position, "
            "rule out pneumothorax.",
            "History: ___ with hypoxia after extubation. Question: interval change?")


def _base_box(name: str) -> tuple[int, int, int, int]:
    if name in _MIDLINE:
        return _MIDLINE[name]
    side, _, region = name.partition(" ")
    x1, y1, x2, y2 = _RIGHT_SIDE[region]
    return (x1, y1, x2, y2) if side == "right" else (224 - x2, y1, 224 - x1, y2)


_BASE = {name: _base_box(name) for name in BBOX_NAMES}
# Per region, the parts of an ``objects[]`` entry that never change: concept id, display name.
_OBJECT_NAMES = {name: (concept_id(name), object_display_name(name)) for name in BBOX_NAMES}


def _coordinates(rng: random.Random, names: tuple[str, ...]) -> dict[str, list[int]]:
    """Jittered 224-scale boxes; heart and upper mediastinum widths vary widely."""
    dx, dy = rng.randint(-4, 4), rng.randint(-4, 4)
    heart, upper = rng.randint(38, 56), rng.randint(24, 38)
    # One byte per coordinate gives a jitter in -2..2 (randint per value is too slow).
    jitter = [byte % 5 - 2 for byte in rng.randbytes(4 * len(names))]
    boxes = {}
    for k, name in enumerate(names):
        x1, y1, x2, y2 = _BASE[name]
        if name == "cardiac silhouette":
            x1, x2 = 120 - heart, 120 + heart
        elif name == "upper mediastinum":
            x1, x2 = 112 - upper, 112 + upper
        boxes[name] = [x1 + dx + jitter[4 * k], y1 + dy + jitter[4 * k + 1],
                       x2 + dx + jitter[4 * k + 2], y2 + dy + jitter[4 * k + 3]]
    return boxes


class _Resize(NamedTuple):
    """How an image was resized and padded to the 224 canvas (computed once per image)."""

    ratio: float
    left: float
    top: float

    @classmethod
    def of(cls, image: Image) -> _Resize:
        ratio = 224 / max(image.rows, image.columns)
        return cls(ratio, (224 - image.columns * ratio) / 2, (224 - image.rows * ratio) / 2)

    def original(self, box: list[int]) -> tuple[float, float, float, float]:
        """Undo the resize-and-pad: ``(x1, x2, y1, y2)`` in the image's own pixels."""
        ratio, left, top = self
        x1, y1, x2, y2 = box
        return (float(round((x1 - left) / ratio)), float(round((x2 - left) / ratio)),
                float(round((y1 - top) / ratio)), float(round((y2 - top) / ratio)))


def _boxes(rng: random.Random, image: Image) -> tuple[dict[str, list[int]], list[Any] | None]:
    """An image's boxes with its quirk applied, and a duplicate box's twin (draws in file order)."""
    if image.quirk == "no_boxes":
        return {}, None
    names = BBOX_NAMES
    if image.quirk == "missing_box":
        dropped = rng.choice(names)
        names = tuple(name for name in names if name != dropped)
    boxes = _coordinates(rng, names)
    if image.quirk == "wide_box":
        boxes[rng.choice(_WIDE_CANDIDATES)][2] += 70
    elif image.quirk == "narrow_box":
        box = boxes[rng.choice(_NARROW_CANDIDATES)]
        box[2] = box[0]
    twin = None
    if image.quirk == "duplicate_box":
        name = rng.choice(names)
        # Shifted, not resized: the twin's width is ordinary, only its x1/x2 differ.
        dx, dy = rng.choice((-3, -2, 2, 3)), rng.choice((-3, -2, 2, 3))
        x1, y1, x2, y2 = boxes[name]
        twin = [name, x1 + dx, y1 + dy, x2 + dx, y2 + dy]
    return boxes, twin


def off_grid_shift(image: Image, seed: int) -> tuple[float, float] | None:
    """(shift of every x, extra width) of an image whose silver boxes are off the integer grid,
    or None (about one image in seven; only for ``SynthConfig(rare_quirks=True)``).

    Real boxes can reach past the 224 canvas (source-formats.md §3.1.2) and the builder
    truncates x1/x2 with ``int()``: a shift of ~20 pixels gives negative x1 on the right side
    and x2 beyond 224 on the left, fractional everywhere. A generator of its own keeps the
    default tree's draws (and bytes) as they were.
    """
    rng = random.Random(f"cxrvqa-synth/off-grid/{seed}/{image.dicom_id}")
    if rng.random() >= 0.15:
        return None
    return rng.choice((-1, 1)) * round(rng.uniform(18.0, 26.0), 1), rng.choice((0.25, 0.5, 0.75))


def _off_grid(boxes: dict[str, list[Any]], twin: list[Any] | None,
              shift: tuple[float, float]) -> None:
    """Move every box of an image by ``shift`` (see ``off_grid_shift``), in place."""
    dx, wider = shift
    for box in boxes.values():
        box[0], box[2] = round(box[0] + dx, 2), round(box[2] + dx + wider, 2)
    if twin:
        twin[1], twin[3] = round(twin[1] + dx, 2), round(twin[3] + dx + wider, 2)


def _image_rng(image: Image, seed: int) -> random.Random:
    return random.Random(f"cxrvqa-synth/boxes/{seed}/{image.dicom_id}")


def _objects(boxes: dict[str, list[int]], twin: list[Any] | None,
             image: Image) -> list[dict[str, Any]]:
    resize = _Resize.of(image)
    objects = [_object(image.dicom_id, name, box, resize) for name, box in boxes.items()]
    if twin is not None:
        objects.append(_object(image.dicom_id, twin[0], twin[1:], resize))
    return objects


def _object(dicom_id: str, name: str, box: list[int], resize: _Resize) -> dict[str, Any]:
    x1, y1, x2, y2 = box
    ox1, ox2, oy1, oy2 = resize.original(box)
    synset, display = _OBJECT_NAMES[name]
    # round(): an off-grid width is 113.85, not 113.85000000000001 (integers stay integers).
    return {"object_id": f"{dicom_id}_{name}", "x1": x1, "y1": y1, "x2": x2, "y2": y2,
            "width": round(x2 - x1, 2), "height": y2 - y1, "bbox_name": name, "synsets": [synset],
            "name": display, "original_x1": ox1, "original_y1": oy1, "original_x2": ox2,
            "original_y2": oy2, "original_width": ox2 - ox1, "original_height": oy2 - oy1}


_CUE_KEYS = ("comparison_cues", "temporal_cues", "severity_cues", "texture_cues")
_NO_CUES: dict[str, list[str]] = {key: [] for key in _CUE_KEYS}


def _cues(sentence: Sentence) -> dict[str, list[str]]:
    """The sentence's cue tags by cue list (shared by every region of the sentence)."""
    if not sentence.cues:
        return _NO_CUES
    cues: dict[str, list[str]] = {key: [] for key in _CUE_KEYS}
    for cue in sentence.cues:
        cues[cue.partition("|")[0] + "_cues"].append(cue)
    return cues


def _ids(tags: tuple[str, ...]) -> list[str]:
    return [concept_id(tag.rsplit("|", 1)[-1]) for tag in tags]


def _attributes(image: Image, study: Study, report: list[Sentence]) -> list[dict[str, Any]]:
    """One entry per region in order of first mention, with parallel per-phrase lists."""
    entries: dict[str, dict[str, Any]] = {}
    for sentence in report:
        cues = _cues(sentence)
        phrase_id = f"{study.study_id}|{sentence.index}"
        for mention in sentence.mentions:
            entry = entries.get(mention.bbox)
            if entry is None:
                entry = entries[mention.bbox] = _entry(image, mention.bbox)
            entry["attributes"].append(list(mention.tags))
            entry["attributes_ids"].append(_ids(mention.tags))
            entry["phrases"].append(sentence.text)
            entry["phrase_IDs"].append(phrase_id)
            entry["sections"].append("finalreport")
            for key in _CUE_KEYS:
                entry[key].append(cues[key])
    return list(entries.values())


def _entry(image: Image, bbox: str) -> dict[str, Any]:
    known = bbox != "unknown"
    return {bbox: True, "bbox_name": bbox, "synsets": [concept_id(bbox)] if known else [],
            "name": object_display_name(bbox) if known else "unknown",
            "attributes": [], "attributes_ids": [], "phrases": [], "phrase_IDs": [],
            "sections": [], "comparison_cues": [], "temporal_cues": [], "severity_cues": [],
            "texture_cues": [], "object_id": f"{image.dicom_id}_{bbox}"}


def previous_image(patient: Patient, study: Study) -> Image | None:
    """The image of the previous study that a comparison refers to (one with a scene graph)."""
    if study.order < 2:
        return None
    previous = patient.studies[study.order - 2]
    selected = previous.selected
    if selected is not None and selected.has_graph:
        return selected
    return next((image for image in previous.images if image.has_graph), None)


def _relationships(image: Image, study: Study, report: list[Sentence],
                   objects: list[dict[str, Any]], previous: Image | None,
                   seed: int) -> list[dict[str, Any]]:
    """Comparison relations: per comparing sentence, each region boxed in both images."""
    if previous is None or not objects:
        return []
    compared = [sentence for sentence in report
                if any(cue.startswith("comparison|") for cue in sentence.cues)]
    if not compared:
        return []
    rng = _image_rng(previous, seed)
    rng.choice(_REASONS)
    before, _ = _boxes(rng, previous)
    current = {obj["bbox_name"]: obj for obj in reversed(objects)}  # the first one counts
    resize = _Resize.of(previous)
    relations = []
    for sentence in compared:
        names = [cue for cue in sentence.cues if cue.startswith("comparison|")]
        comparison = ";;".join(name.rsplit("|", 1)[-1] for name in names)
        for mention in sentence.mentions:
            obj, box = current.get(mention.bbox), before.get(mention.bbox)
            if obj is None or box is None:
                continue
            ox1, ox2, oy1, oy2 = resize.original(box)
            relations.append({
                "relationship_id": f"{image.dicom_id}|{previous.dicom_id}|{mention.bbox}|"
                                   f"{sentence.index}",
                "subject_id": obj["object_id"], "object_id": f"{previous.dicom_id}_{mention.bbox}",
                "bbox_name": mention.bbox, "synsets": obj["synsets"], "name": obj["name"],
                "relationship_names": names, "comparison": comparison,
                "attributes": list(mention.tags), "attributes_ids": _ids(mention.tags),
                "phrase": sentence.text, "phrase_ID": f"{study.study_id}|{sentence.index}",
                "section": "finalreport",
                "bbox_coord_224_subject": [obj["x1"], obj["y1"], obj["x2"], obj["y2"]],
                "bbox_coord_224_object": list(box),
                "bbox_coord_original_subject": [obj["original_x1"], obj["original_y1"],
                                                obj["original_x2"], obj["original_y2"]],
                "bbox_coord_original_object": [ox1, oy1, ox2, oy2],
                "current_image_id": image.dicom_id, "previous_image_id": previous.dicom_id,
            })
    return relations


def scene_graph(patient: Patient, study: Study, image: Image, report: list[Sentence],
                seed: int, relationships: bool = True, rare: bool = False) -> dict[str, Any]:
    """The ``<dicom_id>_SceneGraph.json`` document of a frontal image.

    ``relationships=False`` leaves ``relationships`` empty (for graphs only flattened, never
    written: no table row comes from them). ``rare=True`` moves some images' boxes off the
    integer grid (``off_grid_shift``).
    """
    rng = _image_rng(image, seed)
    decade = min(patient.age // 10 * 10, 90)
    reason = rng.choice(_REASONS)
    boxes, twin = _boxes(rng, image)
    shift = off_grid_shift(image, seed) if rare else None
    if shift is not None:
        _off_grid(boxes, twin, shift)
    objects = _objects(boxes, twin, image)
    return {
        "image_id": image.dicom_id, "viewpoint": image.view, "patient_id": patient.subject_id,
        "study_id": study.study_id, "gender": patient.gender,
        "age_decile": f"{decade}-{decade + 10}", "reason_for_exam": reason,
        "StudyOrder": study.order, "StudyDateTime": image.datetime_text,
        "objects": objects, "attributes": _attributes(image, study, report),
        "relationships": _relationships(image, study, report, objects,
                                        previous_image(patient, study), seed)
        if relationships else [],
    }


def label_rows(graph: dict[str, Any]) -> Iterator[tuple[object, ...]]:
    """attribute_relations_tabular rows: entry x phrase x tag, in that order."""
    for entry in graph["attributes"]:
        for phrase_id, tags in zip(entry["phrase_IDs"], entry["attributes"]):
            sent_loc = phrase_id.rsplit("|", 1)[-1]
            for tag in tags:
                category, polarity, label = tag.split("|")
                yield (graph["study_id"], graph["image_id"], phrase_id, sent_loc,
                       entry["bbox_name"], category, label, int(polarity == "yes"), polarity)


# "category|yes/no|label" -> the last four TSV columns of its rows (few distinct tags).
_TAG_COLUMNS: dict[str, str] = {}


def _tag_columns(tag: str) -> str:
    category, polarity, label = tag.split("|")
    text = _TAG_COLUMNS[tag] = f"{category}\t{label}\t{int(polarity == 'yes')}\t{polarity}"
    return text


def label_lines(graph: dict[str, Any], image_suffix: str = "") -> list[str]:
    """``label_rows`` as TSV lines (tab-joined ``str`` values), without a tuple per row;
    ``image_suffix`` (``.dcm``) is appended to every image_id."""
    lines = []
    head = f"{graph['study_id']}\t{graph['image_id']}{image_suffix}\t"
    columns = _TAG_COLUMNS.get
    for entry in graph["attributes"]:
        bbox = entry["bbox_name"]
        for phrase_id, tags in zip(entry["phrase_IDs"], entry["attributes"]):
            prefix = f"{head}{phrase_id}\t{phrase_id.rsplit('|', 1)[-1]}\t{bbox}\t"
            lines += [prefix + (columns(tag) or _tag_columns(tag)) for tag in tags]
    return lines


def box_rows(graph: dict[str, Any]) -> Iterator[tuple[object, ...]]:
    """bbox_objects_tabular rows: one per ``objects[]`` entry (its keys are in column order)."""
    for obj in graph["objects"]:
        yield tuple(obj.values())


def gold_label_rows(patient: Patient, study: Study, image_id: str, report: list[Sentence],
                    seed: int, rare: bool = False) -> Iterator[tuple[object, ...]]:
    """Gold rows for a first-study image: the report re-annotated, sentences kept as text.

    ``rare=True`` gives every fifth sentence a quoted remark and stray spaces at its ends (the
    file then quotes that cell, doubling the quotes).
    """
    rng = random.Random(f"cxrvqa-synth/gold/{seed}/{image_id}")
    sentences = list(report)
    if rng.random() < 0.4:  # a finding only the gold annotators saw
        obj, attribute = QUESTION_PAIRS[rng.randrange(len(QUESTION_PAIRS))]
        tag = f"{category_of(attribute)}|yes|{attribute}"
        sentences.append(Sentence(sentences[-1].index + 1, f"Also {attribute} in the {obj}.",
                                  (Mention(obj, (tag,)),)))
    # A flip is drawn per tag of the report's own sentences; a sentence added for density
    # (see synth_report) follows the last draw for its region and label, or is kept.
    flipped: dict[tuple[str, str], bool] = {}
    for sentence in sentences:
        text = sentence.text.replace("\n", " ")
        if rare and sentence.index % 5 == 0:
            text = f' {text}  Reader: "compare with the prior", see above. '
        for mention in sentence.mentions:
            for tag in mention.tags:
                category, polarity, label = tag.split("|")
                if category == "nlp":
                    flip = False
                elif sentence.added:
                    flip = flipped.get((mention.bbox, label), False)
                else:
                    flip = flipped[mention.bbox, label] = rng.random() < 0.1
                if flip:
                    polarity = "no" if polarity == "yes" else "yes"
                yield (patient.subject_id, study.study_id, f"{image_id}.dcm",
                       f"{study.study_id}|{sentence.index}", mention.bbox, category, label,
                       int(polarity == "yes"), polarity, text)


def gold_box_rows(image: Image, first_study: bool, seed: int) -> Iterator[list[object]]:
    """Gold box CSV rows of one image: the 26 gold names, a rare one missing."""
    rng = random.Random(f"cxrvqa-synth/gold-boxes/{seed}/{image.dicom_id}")
    names = GOLD_BBOX_NAMES
    if rng.random() < (0.005 if first_study else 0.02):
        dropped = rng.choice([name for name in names if not first_study or name not in SIZE_BOXES])
        names = tuple(name for name in names if name != dropped)
    annotator = rng.choice("CWJS")
    image_id = f"{image.dicom_id}.dcm"
    resize = _Resize.of(image)
    for name, box in _coordinates(rng, names).items():
        x1, y1, x2, y2 = box
        ox1, ox2, oy1, oy2 = resize.original(box)
        yield [image_id, float(x1), float(y1), float(x2), float(y2), float(x2 - x1),
               float(y2 - y1), name, f"{image_id}|{name}", ox1, ox2, oy1, oy2, ox2 - ox1,
               oy2 - oy1, annotator, f"[{x1}, {y1}, {x2}, {y2}]",
               f"[{int(ox1)}, {int(oy1)}, {int(ox2)}, {int(oy2)}]"]
