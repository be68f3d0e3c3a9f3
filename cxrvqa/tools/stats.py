"""Audit question or dataset files: counts, answer balance, split overlap, duplicates, agreement.

Works on released question files, built dataset files and generated files alike:
answer statistics need an ``answer`` key, patient overlap a ``subject_id`` (or the
sources). With the sources, every test question is answered twice, with the gold
labels and with silver labels computed for the same gold images, and the
agreement is reported per template.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cxrvqa.build.jsonio import decode_json
from cxrvqa.errors import DataError, EvaluationError
from cxrvqa.facts import ImageFacts

if TYPE_CHECKING:
    from cxrvqa.build.index import SceneIndex
    from cxrvqa.build.layout import SourceLayout

__all__ = ["Agreement", "Overlap", "PLOT_EXTRA_MESSAGE", "Stats", "compute_stats",
           "gold_silver_facts", "read_records", "render_stats", "stats_json", "write_plots"]

REQUIRED_KEYS = ("split", "image_id", "question", "content_type", "semantic_type",
                 "template_program")
PLOT_EXTRA_MESSAGE = "cxrvqa: --plot needs matplotlib: pip install 'cxrvqa[plot]'"


@dataclass(frozen=True)
class Overlap:
    """Images and patients two splits share (patients None when no subject ids are known)."""

    splits: str
    images: int
    patients: int | None

    @property
    def flagged(self) -> bool:
        return bool(self.images or self.patients)


@dataclass
class Agreement:
    """Gold vs silver answers of one template's test questions."""

    questions: int = 0
    agree: int = 0
    no_silver_labels: int = 0
    unanswerable: int = 0

    @property
    def rate(self) -> float | None:
        answered = self.questions - self.no_silver_labels - self.unanswerable
        return self.agree / answered if answered else None


@dataclass
class Stats:
    """Everything ``cxrvqa stats`` reports; ``answers`` counts only records with an answer."""

    files: list[str]
    questions: int = 0
    by_split: dict[str, int] = field(default_factory=dict)
    by_template: dict[str, dict[str, int]] = field(default_factory=dict)  # program -> split -> n
    by_content_type: dict[str, int] = field(default_factory=dict)
    by_semantic_type: dict[str, int] = field(default_factory=dict)
    answers: dict[str, dict[str, int]] = field(default_factory=dict)  # program -> answer -> n
    answered: int = 0
    empty: int = 0
    overlaps: list[Overlap] = field(default_factory=list)
    duplicates: dict[str, int] = field(default_factory=dict)  # split -> repeated (image, question)
    agreement: dict[str, Agreement] | None = None

    @property
    def empty_rate(self) -> float | None:
        return self.empty / self.answered if self.answered else None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["empty_rate"] = self.empty_rate
        data["overlaps"] = [{**asdict(o), "flagged": o.flagged} for o in self.overlaps]
        if self.agreement is not None:
            data["agreement"] = {p: {**asdict(a), "rate": a.rate}
                                 for p, a in self.agreement.items()}
        return data


def read_records(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """The records of every file, in order; each must be a JSON list of question records."""
    records: list[dict[str, Any]] = []
    for path in paths:
        try:
            items = decode_json(Path(path).read_bytes())
        except (OSError, ValueError) as exc:  # ValueError: not JSON, too deep, too long an int
            raise DataError(f"{path}: cannot read a JSON list of records ("
                            f"{getattr(exc, 'strerror', None) or exc})") from None
        if not isinstance(items, list):
            raise DataError(f"{path}: expected a JSON list of question records")
        for number, item in enumerate(items):
            if not isinstance(item, dict) or any(type(item.get(key)) is not str
                                                 for key in REQUIRED_KEYS):
                raise DataError(f"{path}: record {number}: expected an object with keys "
                                f"{', '.join(REQUIRED_KEYS)} (strings)")
        records += items
    return records


def compute_stats(paths: Sequence[Path], layout: SourceLayout | None = None) -> Stats:
    """Audit the files; ``layout`` adds subjects from the metadata and gold/silver agreement."""
    records = read_records(paths)
    stats = Stats(files=[str(p) for p in paths], questions=len(records))
    _count(stats, records)
    subjects: Mapping[str, object] = {}
    if layout is not None:
        from cxrvqa.build.index import load_index

        index = load_index(layout)
        subjects = {image: meta.subject_id for image, meta in index.meta.items()}
        stats.agreement = _agreement([r for r in records if r["split"] == "test"], index,
                                     gold_silver_facts(layout, index))
    stats.overlaps = _overlaps(records, subjects)
    return stats


def _count(stats: Stats, records: Iterable[Mapping[str, Any]]) -> None:
    splits: Counter[str] = Counter()
    contents: Counter[str] = Counter()
    semantics: Counter[str] = Counter()
    templates: dict[str, Counter[str]] = defaultdict(Counter)
    answers: dict[str, Counter[str]] = defaultdict(Counter)
    seen: set[tuple[str, str, str]] = set()
    duplicates: Counter[str] = Counter()
    for record in records:
        split, program = str(record["split"]), str(record["template_program"])
        splits[split] += 1
        contents[str(record["content_type"])] += 1
        semantics[str(record["semantic_type"])] += 1
        templates[program][split] += 1
        key = (split, str(record["image_id"]), str(record["question"]))
        duplicates[split] += key in seen
        seen.add(key)
        if isinstance(record.get("answer"), list):
            answers[program][_answer_text(record["answer"])] += 1
            stats.answered += 1
            stats.empty += not record["answer"]
    stats.by_split = dict(sorted(splits.items()))
    stats.by_content_type = dict(sorted(contents.items()))
    stats.by_semantic_type = dict(sorted(semantics.items()))
    stats.by_template = {p: dict(sorted(templates[p].items())) for p in _program_order(templates)}
    stats.answers = {p: dict(answers[p].most_common()) for p in _program_order(answers)}
    stats.duplicates = {split: duplicates[split] for split in stats.by_split}


def _answer_text(answer: Sequence[object]) -> str:
    return ", ".join(map(str, answer)) if answer else "[]"


def _program_order(programs: Iterable[str]) -> list[str]:
    return sorted(programs, key=lambda p: (len(p), p))  # program_2 before program_10


def _overlaps(records: Sequence[Mapping[str, Any]],
              subjects: Mapping[str, object]) -> list[Overlap]:
    images: dict[str, set[str]] = defaultdict(set)
    patients: dict[str, set[str]] = defaultdict(set)
    known = True
    for record in records:
        image = str(record["image_id"])
        images[record["split"]].add(image)
        subject = record.get("subject_id", subjects.get(image))
        known &= subject is not None
        patients[record["split"]].add(str(subject))
    return [Overlap(f"{a}/{b}", len(images[a] & images[b]),
                    len(patients[a] & patients[b]) if known else None)
            for a, b in combinations(sorted(images), 2)]


# --- gold vs silver ---------------------------------------------------------------------------

def gold_silver_facts(layout: SourceLayout, index: SceneIndex) -> dict[str, ImageFacts]:
    """Facts of the gold images computed from the silver label and box rows (pipeline.md §4).

    View position and gender are the image's own (they do not depend on the labels).
    """
    from cxrvqa.build.index import first_boxes, load_silver_rows
    from cxrvqa.build.labels import image_labels

    rows, boxes, source = load_silver_rows(layout)
    labels = image_labels(rows, frozenset(index.gold), index.ontology, source)
    found_boxes = first_boxes(boxes, labels.labelled)
    return {image: ImageFacts(labels.positives.get(image, ()), index.gold[image].viewpos,
                              index.gold[image].gender, found_boxes.get(image))
            for image in sorted(labels.labelled)}


def _agreement(records: Sequence[Mapping[str, Any]], index: SceneIndex,
               silver: Mapping[str, ImageFacts]) -> dict[str, Agreement]:
    from cxrvqa.programs import answer, bundled_programs

    programs = bundled_programs()
    result: dict[str, Agreement] = defaultdict(Agreement)
    for number, record in enumerate(records):
        image, tally = str(record["image_id"]), result[str(record["template_program"])]
        if image not in index.gold:
            raise DataError(f"test record {number} (idx {record.get('idx')!r}): image {image!r} "
                            f"has no labels in the gold cohort")
        tally.questions += 1
        if image not in silver:
            tally.no_silver_labels += 1
            continue
        try:
            silver_answer = answer(programs, record, silver[image])
        except EvaluationError:  # e.g. a size question without the silver boxes
            tally.unanswerable += 1
            continue
        tally.agree += silver_answer == answer(programs, record, index.gold[image])
    return {p: result[p] for p in _program_order(result)}


# --- output ---------------------------------------------------------------------------------

def stats_json(stats: Stats) -> str:
    """Machine output of ``cxrvqa stats --json``."""
    return json.dumps(stats.to_json(), indent=2, sort_keys=False)


def render_stats(stats: Stats) -> str:
    """The table ``cxrvqa stats`` prints."""
    splits = list(stats.by_split)
    lines = [f"{stats.questions} questions in {len(stats.files)} file(s): "
             + ", ".join(f"{s} {n}" for s, n in stats.by_split.items()),
             "content types: " + _pairs(stats.by_content_type),
             "semantic types: " + _pairs(stats.by_semantic_type), ""]
    header = f"{'template':<12}" + "".join(f"{s:>8}" for s in splits)
    header += f"{'answers':>9}{'empty':>8}  {'top answer':<28}{'share':>7}"
    if stats.agreement is not None:
        header += f"{'gold=silver':>13}"
    lines.append(header)
    for program, counts in stats.by_template.items():
        lines.append(f"{program:<12}" + "".join(f"{counts.get(s, 0):>8}" for s in splits)
                     + _answer_columns(stats.answers.get(program, {}))
                     + _agreement_column(stats.agreement, program))
    rate = stats.empty_rate
    lines += ["", "empty answers: " + ("no answers in the files" if rate is None
                                       else f"{stats.empty} of {stats.answered} ({rate:.1%})")]
    for overlap in stats.overlaps:
        patients = "unknown" if overlap.patients is None else overlap.patients
        flag = "  <- OVERLAP" if overlap.flagged else ""
        lines.append(f"shared {overlap.splits}: {overlap.images} images, {patients} patients{flag}")
    lines.append("duplicate questions on one image: " + _pairs(stats.duplicates))
    return "\n".join(lines)


def _pairs(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in counts.items()) or "none"


def _answer_columns(answers: Mapping[str, int]) -> str:
    total = sum(answers.values())
    if not total:
        return f"{'-':>9}{'-':>8}  {'':<28}{'':>7}"
    top, count = next(iter(answers.items()))
    shown = top if len(top) <= 28 else top[:25] + "..."
    empty = answers.get("[]", 0) / total
    return f"{len(answers):>9}{empty:>8.1%}  {shown:<28}{count / total:>7.1%}"


def _agreement_column(agreement: Mapping[str, Agreement] | None, program: str) -> str:
    if agreement is None:
        return ""
    rate = agreement[program].rate if program in agreement else None
    return f"{'-' if rate is None else f'{rate:.1%}':>13}"


def write_plots(stats: Stats, directory: Path) -> str:
    """Bar charts of the distributions as PNGs; returns a one-line message for the user."""
    try:
        import matplotlib
    except ImportError:
        return PLOT_EXTRA_MESSAGE
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    charts: dict[str, tuple[str, Mapping[str, float]]] = {
        "questions_per_template": ("questions", {p: sum(c.values())
                                                 for p, c in stats.by_template.items()}),
        "content_types": ("questions", stats.by_content_type),
        "semantic_types": ("questions", stats.by_semantic_type),
    }
    if stats.answers:
        charts["top_answer_share"] = ("share of the most frequent answer", {
            p: next(iter(a.values())) / sum(a.values()) for p, a in stats.answers.items()})
    if stats.agreement:
        charts["gold_silver_agreement"] = ("gold = silver", {
            p: a.rate for p, a in stats.agreement.items() if a.rate is not None})
    directory.mkdir(parents=True, exist_ok=True)
    for name, (label, values) in charts.items():
        figure, axes = plt.subplots(figsize=(max(4.0, 0.25 * len(values) + 2), 4))
        axes.bar(list(values), list(values.values()))
        axes.set_ylabel(label)
        axes.set_title(name.replace("_", " "))
        axes.tick_params(axis="x", labelrotation=90, labelsize=7)
        figure.tight_layout()
        figure.savefig(directory / f"{name}.png", dpi=100)
        plt.close(figure)
    return f"wrote {len(charts)} charts to {directory}"
