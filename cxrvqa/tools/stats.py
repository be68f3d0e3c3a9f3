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

from cxrvqa.build.commit import settle
from cxrvqa.build.jsonio import decode_json, not_utf8
from cxrvqa.build.layout import ANS2IDX_FILE, BUILT_FILES, QUESTION_FILES
from cxrvqa.build.output import write_files_atomically
from cxrvqa.errors import CxrvqaError, DataError, EvaluationError, printable
from cxrvqa.facts import ImageFacts
from cxrvqa.tools.charts import (
    ANSWER_COLOURS,
    SPLIT_COLOURS,
    Chart,
    draw_with_matplotlib,
)
from cxrvqa.vocab import FIXED_ANSWERS

if TYPE_CHECKING:
    from cxrvqa.build.index import SceneIndex
    from cxrvqa.build.layout import SourceLayout

__all__ = ["Agreement", "Overlap", "PLOT_EXTRA_MESSAGE", "Stats", "charts", "compute_stats",
           "gold_silver_facts", "question_paths", "read_records", "render_stats",
           "display_splits", "require_matplotlib", "stats_json", "write_plots"]

REQUIRED_KEYS = ("split", "image_id", "question", "content_type", "semantic_type",
                 "template_program")
PLOT_EXTRA_MESSAGE = "--plot needs matplotlib: pip install 'cxrvqa[plot]'"
_TOP_ANSWERS = 3  # answers named per template in the answer-distribution chart


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
    content_by_split: dict[str, dict[str, int]] = field(default_factory=dict)  # type -> split -> n
    semantic_by_split: dict[str, dict[str, int]] = field(default_factory=dict)
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


def question_paths(paths: Sequence[Path]) -> tuple[list[Path], list[str]]:
    """The question files to audit among ``paths``, and a note on each file skipped.

    A folder stands for its built splits (train/valid/test.json). Named files are read,
    except those that hold no questions (ans2idx.json, checksum lists, non-JSON files)
    and released ``_<split>.json`` files named together with their folder's built split
    (the same questions again, e.g. from ``dataset/*.json``).
    """
    chosen: list[Path] = []
    notes: list[str] = []
    for path in map(Path, paths):
        settle(path if path.is_dir() else path.parent)  # never read a half-committed set
        if path.is_dir():
            built = [path / name for name in BUILT_FILES.values() if (path / name).is_file()]
            if not built:
                raise DataError(f"{path}: no built split files ({', '.join(BUILT_FILES.values())})"
                                f"; run `cxrvqa build` first, or name question files")
            # Hidden files (a build's manifest, a commit journal) are bookkeeping, not data.
            others = sorted(p.name for p in path.iterdir()
                            if p.is_file() and p not in built and not p.name.startswith("."))
            if others:
                notes.append(f"{path}: read the built splits only; skipped {', '.join(others)}")
            chosen += built
        elif not path.is_file():  # a device or FIFO exists, but is no question file
            raise DataError(f"{path}: {'not a regular file' if path.exists() else 'not found'}")
        else:
            chosen.append(path)
    files = []
    for path in chosen:
        reason = _not_questions(path, chosen) or ("named twice" if path in files else None)
        if reason:
            notes.append(f"skipped {path}: {reason}")
        else:
            files.append(path)
    return files, notes


def _not_questions(path: Path, chosen: Sequence[Path]) -> str | None:
    if path.name == ANS2IDX_FILE:
        return "the answer vocabulary, not questions"
    if path.suffix != ".json":
        return "not a JSON question file"
    for split, released in QUESTION_FILES.items():
        if path.name in released and path.with_name(BUILT_FILES[split]) in chosen:
            return f"the released questions of {BUILT_FILES[split]}, which is read"
    return None


def read_records(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """The records of every file, in order; each must be a JSON list of question records."""
    records: list[dict[str, Any]] = []
    for path in paths:
        try:
            items = decode_json(Path(path).read_bytes())
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}:{not_utf8(exc.object, exc.start)}") from None
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
    contents: dict[str, Counter[str]] = defaultdict(Counter)
    semantics: dict[str, Counter[str]] = defaultdict(Counter)
    templates: dict[str, Counter[str]] = defaultdict(Counter)
    answers: dict[str, Counter[str]] = defaultdict(Counter)
    seen: set[tuple[str, str, str]] = set()
    duplicates: Counter[str] = Counter()
    for record in records:
        split, program = str(record["split"]), str(record["template_program"])
        splits[split] += 1
        contents[str(record["content_type"])][split] += 1
        semantics[str(record["semantic_type"])][split] += 1
        templates[program][split] += 1
        key = (split, str(record["image_id"]), str(record["question"]))
        duplicates[split] += key in seen
        seen.add(key)
        if isinstance(record.get("answer"), list):
            answers[program][_answer_text(record["answer"])] += 1
            stats.answered += 1
            stats.empty += not record["answer"]
    stats.by_split = dict(sorted(splits.items()))
    stats.by_content_type = {name: sum(contents[name].values()) for name in sorted(contents)}
    stats.by_semantic_type = {name: sum(semantics[name].values()) for name in sorted(semantics)}
    stats.content_by_split = {name: dict(sorted(contents[name].items())) for name in sorted(contents)}
    stats.semantic_by_split = {name: dict(sorted(semantics[name].items()))
                               for name in sorted(semantics)}
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
    # As wide as the longest name (an author's template names are longer than program_NN).
    width = max([12, *(len(program) + 1 for program in stats.by_template)])
    header = f"{'template':<{width}}" + "".join(f"{s:>8}" for s in splits)
    header += f"{'answers':>9}{'empty':>8}  {'top answer':<28}{'share':>7}"
    if stats.agreement is not None:
        header += f"{'gold=silver':>13}"
    lines.append(header)
    for program, counts in stats.by_template.items():
        lines.append(f"{program:<{width}}" + "".join(f"{counts.get(s, 0):>8}" for s in splits)
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
    # Names come from the files: a line break or terminal escape in one is shown escaped.
    return "\n".join(map(printable, lines))


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


def require_matplotlib() -> None:
    """Raise (exit 3, one line) unless matplotlib can be imported; call it before the work."""
    try:
        import matplotlib
    except ImportError:
        raise CxrvqaError(PLOT_EXTRA_MESSAGE) from None
    matplotlib.use("Agg")  # files only: no display needed


def write_plots(stats: Stats, directory: Path) -> str:
    """Every chart of ``charts`` as PNG and SVG files; returns a one-line message for the user.

    Raises:
        CxrvqaError: matplotlib is not installed (nothing is written).
    """
    require_matplotlib()
    made = charts(stats)
    files = {f"{chart.name}.{suffix}": data for chart in made
             for suffix, data in draw_with_matplotlib(chart).items()}
    write_files_atomically(directory, files)  # all charts or none, like the built splits
    return f"wrote {len(made)} charts (PNG and SVG) to {directory}"


# --- charts ---------------------------------------------------------------------------------

def charts(stats: Stats) -> list[Chart]:
    """The charts of the audit, in reading order (the HTML card and ``--plot`` draw these)."""
    splits = display_splits(stats)
    made = [
        Chart("split_sizes", "Questions per split", splits, ["questions"],
              [[stats.by_split[s]] for s in splits], colours=[_split_colour(s) for s in splits]),
        _per_split("content_types", "Questions per content type and split",
                   stats.content_by_split, splits),
        _per_split("semantic_types", "Questions per semantic type and split",
                   stats.semantic_by_split, splits),
        Chart("questions_per_template", "Questions per template, by split",
              list(stats.by_template), splits,
              [[counts.get(s, 0) for s in splits] for counts in stats.by_template.values()],
              mode="stacked"),
    ]
    if stats.answers:
        made += [_answer_chart(stats.answers), _empty_chart(stats.answers)]
    if stats.agreement:
        made.append(_agreement_chart(stats.agreement))
    return made


def display_splits(stats: Stats) -> list[str]:
    """The splits of the files in the usual order: train, valid, test, then any other."""
    order = {split: number for number, split in enumerate(BUILT_FILES)}
    return sorted(stats.by_split, key=lambda split: (order.get(split, len(order)), split))


def _split_colour(split: str) -> str:
    return SPLIT_COLOURS.get(split, "#888")


def _per_split(name: str, title: str, counts: Mapping[str, Mapping[str, int]],
               splits: Sequence[str]) -> Chart:
    return Chart(name, title, list(counts), splits,
                 [[per_split.get(s, 0) for s in splits] for per_split in counts.values()])


def _answer_chart(answers: Mapping[str, Mapping[str, int]]) -> Chart:
    """Per template, the shares of its three most frequent answers (named) and of the rest."""
    values, labels, notes = [], [], []
    for counts in answers.values():
        total = sum(counts.values())
        top = list(counts.items())[:_TOP_ANSWERS]
        top += [("", 0)] * (_TOP_ANSWERS - len(top))
        rest = total - sum(count for _, count in top)
        values.append([count / total for _, count in top] + [rest / total])
        labels.append([answer for answer, _ in top] + [f"{len(counts) - _TOP_ANSWERS} other answers"
                                                       if rest else ""])
        named = "; ".join(f"{_short(answer)} {count / total:.0%}" for answer, count in top if answer)
        notes.append(f"{named} ({len(counts)} answers, {total} q.)")
    series = ["most frequent answer", "2nd", "3rd", "all other answers"]
    return Chart("answer_distribution", "Answer distribution per template (top answers named)",
                 list(answers), series, values, mode="stacked", share=True, axis="share of questions",
                 labels=labels, notes=notes, colours=ANSWER_COLOURS)


def _short(answer: str, width: int = 22) -> str:
    return answer if len(answer) <= width else answer[:width - 1] + "…"


def _empty_chart(answers: Mapping[str, Mapping[str, int]]) -> Chart:
    # Only templates with list answers: a yes/no or choice template cannot answer [].
    rows = [p for p, counts in answers.items() if set(counts) - set(FIXED_ANSWERS)]
    notes = [f"{answers[p].get('[]', 0)} of {sum(answers[p].values())}" for p in rows]
    return Chart("empty_answer_rate", "Empty-answer rate per template with list answers", rows,
                 ["empty answers"],
                 [[answers[p].get("[]", 0) / sum(answers[p].values())] for p in rows],
                 share=True, axis="share of the template's questions with answer []",
                 notes=notes, colours=["#e45756"])


def _agreement_chart(agreement: Mapping[str, Agreement]) -> Chart:
    rows = list(agreement)
    notes = []
    for program in rows:
        tally = agreement[program]
        answered = tally.questions - tally.no_silver_labels - tally.unanswerable
        note = f"{tally.agree} of {answered} agree"
        if tally.no_silver_labels or tally.unanswerable:
            note += (f" ({tally.no_silver_labels} without silver labels, "
                     f"{tally.unanswerable} unanswerable)")
        notes.append(note)
    return Chart("gold_silver_agreement", "Gold vs silver labels: same answer on the test images",
                 rows, ["agreement"], [[agreement[p].rate or 0.0] for p in rows], share=True,
                 axis="share of test questions with the same answer", notes=notes,
                 colours=["#54a24b"])
