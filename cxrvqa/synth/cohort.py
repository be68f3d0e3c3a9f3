"""The synthetic cohort skeleton: patients, studies and images with their ids, times and quirks.

Everything later files say about an image (metadata row, scene graph, gold rows)
hangs off this skeleton. It is drawn from one seeded generator in patient order,
so the same seed gives the same cohort; the per-image content is drawn later from
generators seeded by the image or study id, so files can be streamed in any order.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = [
    "BOX_QUIRKS",
    "FRONTAL_VIEWS",
    "GOLD_PATIENTS",
    "Cohort",
    "Image",
    "Patient",
    "Study",
    "build_cohort",
]

GOLD_PATIENTS = 500
FRONTAL_VIEWS = ("AP", "PA")
_RARE_VIEWS = ("AP AXIAL", "LL", "LAO", "", "XTABLE LATERAL", "AP LLD", "SWIMMERS")
_SIZES = ((3056, 2544), (2544, 3056), (3050, 2539), (2022, 2022), (2828, 2320))
_EPOCH = dt.date(2110, 1, 1)
_LAST_SECOND = 86_000  # keeps every image of a study on the study's day

# Per-image quirks of the silver boxes (share of silver frontal images, minimum count).
BOX_QUIRKS: dict[str, tuple[float, int]] = {
    "no_graph": (0.02, 3),       # frontal image without a scene graph
    "no_boxes": (0.02, 3),       # scene graph without objects: labels but no boxes
    "missing_box": (0.015, 3),   # 35 distinct box names: dropped by the build
    "duplicate_box": (0.015, 3),  # a second row for one box name: the first counts
    "wide_box": (0.01, 2),       # one width above mean + 3 sd: dropped
    "narrow_box": (0.005, 2),    # one zero width, below mean - 3 sd: dropped
}
_NORMAL_SHARE = 0.25
_NOLABEL_SHARE = (0.02, 2)  # share and minimum count among silver studies


@dataclass(slots=True)
class Image:
    """One metadata row: a DICOM image of a study."""

    dicom_id: str
    view: str
    rows: int
    columns: int
    seconds: int          # seconds since the synthetic epoch
    millis: int
    quirk: str = ""

    @property
    def frontal(self) -> bool:
        return self.view in FRONTAL_VIEWS

    @property
    def has_graph(self) -> bool:
        return self.frontal and self.quirk != "no_graph"

    @property
    def study_date(self) -> int:
        day = _EPOCH + dt.timedelta(days=self.seconds // 86_400)
        return day.year * 10_000 + day.month * 100 + day.day

    @property
    def study_time(self) -> float:
        """HHMMSS.fff as the metadata stores it (leading zeros lost once written)."""
        second = self.seconds % 86_400
        hhmmss = second // 3600 * 10_000 + second % 3600 // 60 * 100 + second % 60
        return round(hhmmss + self.millis / 1000, 3)

    @property
    def datetime_text(self) -> str:
        """``YYYY-MM-DD HH:MM:SS`` as scene graphs write StudyDateTime."""
        stamp = dt.datetime.combine(_EPOCH, dt.time()) + dt.timedelta(seconds=self.seconds)
        return stamp.strftime("%Y-%m-%d %H:%M:%S")


@dataclass(slots=True)
class Study:
    """One study: its images (metadata order) and what its report says."""

    study_id: int
    order: int            # 1-based rank among the patient's studies
    kind: str             # "abnormal", "normal" or "nolabels"
    images: list[Image] = field(default_factory=list)

    @property
    def selected(self) -> Image | None:
        """The frontal image the build keeps: earliest, then smallest dicom_id."""
        frontal = [image for image in self.images if image.frontal]
        return min(frontal, key=lambda image: (image.seconds, image.millis, image.dicom_id),
                   default=None)


@dataclass(slots=True)
class Patient:
    """One subject with studies in chronological order."""

    subject_id: int
    gender: str
    listed: bool          # present in patients.csv (else the build sees no gender)
    gold: bool
    age: int
    studies: list[Study] = field(default_factory=list)
    gold_image: str = ""  # the first-study image the gold labels file names


@dataclass(slots=True)
class Cohort:
    """All patients (by subject_id) plus the subject ids only patients.csv knows."""

    patients: list[Patient]
    mimic_iv_only: list[int]

    def images(self) -> Iterator[tuple[Patient, Study, Image]]:
        for patient in self.patients:
            for study in patient.studies:
                for image in study.images:
                    yield patient, study, image

    def quirks(self) -> dict[str, tuple[str, ...]]:
        """Image ids by quirk name, sorted."""
        found: dict[str, list[str]] = {name: [] for name in BOX_QUIRKS}
        for _, _, image in self.images():
            if image.quirk:
                found[image.quirk].append(image.dicom_id)
        return {name: tuple(sorted(ids)) for name, ids in found.items()}


def build_cohort(patients: int, seed: int) -> Cohort:
    """Draw the cohort skeleton for ``patients`` subjects (500 of them gold)."""
    rng = random.Random(f"cxrvqa-synth/cohort/{seed}")
    ids = rng.sample(range(10_000_000, 20_000_000), patients + max(5, patients // 10))
    subject_ids, extra = sorted(ids[:patients]), sorted(ids[patients:])
    gold = set(rng.sample(range(patients), GOLD_PATIENTS))
    many = _pick(rng, [i for i in range(patients) if i not in gold], 0.01, 2)
    unlisted = _pick(rng, range(patients), 0.02, 3)
    dicoms = _DicomIds(rng)
    cohort = Cohort([_patient(rng, dicoms, subject, i in gold, i in many, i not in unlisted)
                     for i, subject in enumerate(subject_ids)], extra)
    _assign_study_ids(rng, cohort)
    _assign_kinds(rng, cohort)
    _assign_quirks(rng, cohort)
    return cohort


def _pick(rng: random.Random, population: range | list[int], share: float,
          minimum: int) -> set[int]:
    items = list(population)
    return set(rng.sample(items, min(len(items), max(minimum, round(share * len(items))))))


class _DicomIds:
    """Unique 44-character ids: five groups of eight lowercase hex digits."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._seen: set[str] = set()

    def next(self) -> str:
        while True:
            value = f"{self._rng.getrandbits(160):040x}"
            dicom = "-".join(value[i:i + 8] for i in range(0, 40, 8))
            if dicom not in self._seen:
                self._seen.add(dicom)
                return dicom


def _patient(rng: random.Random, dicoms: _DicomIds, subject_id: int, gold: bool, many: bool,
             listed: bool) -> Patient:
    patient = Patient(subject_id, rng.choice("MF"), listed, gold, rng.randint(18, 91))
    count = rng.randint(21, 26) if many else rng.choices(
        range(1, 11), weights=(30, 20, 15, 10, 8, 6, 4, 3, 2, 2))[0]
    if gold:
        count = max(count, 2)
    seconds = rng.randint(0, 60 * 365) * 86_400 + rng.randint(6 * 3600, 12 * 3600)
    for order in range(1, count + 1):
        # Gold patients need a frontal first and second study (gold labels and boxes).
        lateral_only = not (gold and order <= 2) and rng.random() < 0.02
        patient.studies.append(Study(0, order, "", _images(rng, dicoms, seconds, lateral_only)))
        seconds = _next_study_time(rng, seconds)
    if gold:
        patient.gold_image = _gold_image(rng, patient.studies[0])
    return patient


def _next_study_time(rng: random.Random, seconds: int) -> int:
    """A later study: usually days later, sometimes the same day (still strictly later)."""
    later = seconds + (rng.randint(3600, 6 * 3600) if rng.random() < 0.1
                       else rng.randint(1, 400) * 86_400 + rng.randint(-6 * 3600, 6 * 3600))
    overflow = later % 86_400 - _LAST_SECOND
    return later - overflow if overflow > 0 else later


def _images(rng: random.Random, dicoms: _DicomIds, seconds: int,
            lateral_only: bool) -> list[Image]:
    millis = 0 if rng.random() < 0.4 else rng.randint(1, 999)
    rows, columns = rng.choice(_SIZES)
    views = ["LATERAL"] if lateral_only else [rng.choice(("AP", "AP", "PA"))]
    if not lateral_only and rng.random() < 0.04:
        views.append(rng.choice(FRONTAL_VIEWS))
    views += [rng.choice(("LATERAL", "LATERAL", "LL"))] * (rng.random() < 0.6)
    views += [rng.choice(_RARE_VIEWS)] * (rng.random() < 0.03)
    images = []
    for position, view in enumerate(views):
        # A second frontal image either ties with the first (smallest dicom_id wins)
        # or lies a little before or after it (earliest wins).
        offset = 0 if position == 0 or rng.random() < 0.5 else rng.randint(-300, 300)
        offset = max(offset, -(seconds % 86_400))  # stay on the study's day
        images.append(Image(dicoms.next(), view, rows, columns, seconds + offset, millis))
    rng.shuffle(images)
    return images


def _gold_image(rng: random.Random, first: Study) -> str:
    """Usually the image the build selects; sometimes the study's other frontal image."""
    frontal = sorted(image.dicom_id for image in first.images if image.frontal)
    selected = first.selected
    assert selected is not None  # gold first studies always have a frontal image
    return rng.choice(frontal) if len(frontal) > 1 and rng.random() < 0.5 else selected.dicom_id


def _assign_study_ids(rng: random.Random, cohort: Cohort) -> None:
    """Random 5xxxxxxx ids, so study_id order differs from chronological order."""
    studies = [study for patient in cohort.patients for study in patient.studies]
    for study, study_id in zip(studies, rng.sample(range(50_000_000, 60_000_000), len(studies))):
        study.study_id = study_id


def _assign_kinds(rng: random.Random, cohort: Cohort) -> None:
    """Abnormal or normal reports; a few silver studies whose tags the build all drops."""
    for patient in cohort.patients:
        for study in patient.studies:
            study.kind = "normal" if rng.random() < _NORMAL_SHARE else "abnormal"
    silver = [study for patient in cohort.patients if not patient.gold
              for study in patient.studies]
    for position in _pick(rng, range(len(silver)), *_NOLABEL_SHARE):
        silver[position].kind = "nolabels"


def _assign_quirks(rng: random.Random, cohort: Cohort) -> None:
    """Spread the box quirks over silver frontal images, each quirk on distinct images."""
    candidates = [image for patient in cohort.patients if not patient.gold
                  for study in patient.studies for image in study.images if image.frontal]
    rng.shuffle(candidates)
    start = 0
    for name, (share, minimum) in BOX_QUIRKS.items():
        count = min(max(minimum, math.ceil(share * len(candidates))), len(candidates) - start)
        for image in candidates[start:start + count]:
            image.quirk = name
        start += count
