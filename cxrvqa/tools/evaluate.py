"""Score VQA predictions against a built split file: accuracy, F1s and a list of input problems.

Predictions may come in any of three shapes (all keyed by split and idx)::

    [{"split": "test", "idx": 0, "answer": ["yes"]}, ...]     # a JSON list of records
    {"test:0": ["yes"], "test:1": ["left lung", "trachea"]}    # a JSON object "split:idx" -> answers
    {"split": "test", "idx": 0, "answer": ["yes"]}             # JSON Lines: one record per line

An answer is a list of strings; a bare string (``"answer": "yes"``) is malformed,
since it cannot be told apart from a list answer's text. Answers are compared as
sets after ``strip().lower()``, the form the built files use. Problems in the
predictions never stop scoring: missing predictions count as wrong, extra and
malformed ones are skipped, unknown answers (not in ``ans2idx.json``) make their
record wrong and have no F1 column; each is counted and listed in the report. A
predictions, gold or ans2idx file that cannot be read at all raises ``DataError``.

Metrics, over the gold records:

- exact-set accuracy, overall and per content type, semantic type and template program,
  each with its 95 % Wilson interval;
- micro F1 over the answer vocabulary (one binary label per answer);
- macro F1: the unweighted mean of the per-answer F1 over the whole vocabulary
  (an answer with no gold and no predicted occurrence scores 0, as sklearn's default),
  so a perfect prediction scores below 1 when some answers never occur in the split;
- macro F1 over the answers present in the split (gold support > 0), which a
  perfect prediction scores 1 on;
- weighted F1: per-answer F1 weighted by gold support. The original MIMIC-CXR-VQA
  baselines reported this number as "macro F1"; it is labelled as what it is here.

``compare`` scores two models' predictions on the same gold file and pairs them record by
record: the accuracy difference with its 95 % interval and McNemar's exact p-value, overall
and per content type (``cxrvqa evaluate --baseline``).

Example:
    >>> report = evaluate("predictions.json", "mimiccxrvqa/dataset/test.json")  # doctest: +SKIP
    >>> print(report.render())                                                # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxrvqa.build.jsonio import decode_json, not_utf8, refuse_device
from cxrvqa.errors import DataError, printable
from cxrvqa.tools.numbers import plain_int
from cxrvqa.tools.uncertainty import mcnemar_exact, paired_difference, wilson
from cxrvqa.vocab import VQA_ATTRIBUTES, VQA_OBJECTS, answer_vocabulary

__all__ = ["Comparison", "EvaluationReport", "GroupScore", "PairedScore", "compare",
           "default_vocabulary", "evaluate", "score"]

_Key = tuple[str, int]
_SHOWN = 5  # examples listed per kind of problem
_GROUPS = ("content_type", "semantic_type", "template_program")
_PROGRAM_NUMBER = re.compile(r"(\d+)$")
MACRO_NOTE = ("macro F1 averages the F1 of every vocabulary answer; answers absent from the "
              "split (no gold, no prediction) count as 0, so even perfect predictions score "
              "below 1; 'present' averages only the answers the split's gold records contain")


def default_vocabulary(others: Iterable[str] = ()) -> list[str]:
    """The 110 answers of the default vocabulary and ``others``, sorted (what a build's
    ``ans2idx.json`` maps when its questions hold the ``others``)."""
    return answer_vocabulary(VQA_OBJECTS, VQA_ATTRIBUTES, others)


@dataclass(frozen=True)
class GroupScore:
    """Exact-set accuracy of one group of gold records."""

    name: str
    total: int
    correct: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def ci(self) -> tuple[float, float]:
        """The 95 % Wilson interval of the accuracy."""
        return wilson(self.correct, self.total)


@dataclass
class EvaluationReport:
    """What ``evaluate`` found. ``problems`` maps a problem kind to its count and a few examples."""

    total: int
    correct: int
    micro_f1: float
    macro_f1: float
    weighted_f1: float
    vocabulary_size: int
    groups: dict[str, list[GroupScore]]
    present_macro_f1: float = 0.0
    present_answers: int = 0
    problems: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    hint: str | None = None  # why nothing was scored, when the files look mismatched
    # (split, idx) of each gold record -> answered exactly right; what ``compare`` pairs
    outcomes: dict[_Key, bool] = field(default_factory=dict, repr=False)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def accuracy_ci(self) -> tuple[float, float]:
        """The 95 % Wilson interval of the accuracy."""
        return wilson(self.correct, self.total)

    def to_json(self) -> dict[str, Any]:
        """The report as plain JSON data (``json.dumps`` it for ``--json``)."""
        return {
            "total": self.total, "correct": self.correct, "accuracy": self.accuracy,
            "accuracy_ci95": list(self.accuracy_ci),
            "micro_f1": self.micro_f1, "macro_f1": self.macro_f1,
            "weighted_f1": self.weighted_f1,
            "weighted_f1_note": "reported as 'macro F1' by the original baselines",
            "macro_f1_note": MACRO_NOTE,
            "present_macro_f1": self.present_macro_f1, "present_answers": self.present_answers,
            "vocabulary_size": self.vocabulary_size,
            "groups": {name: {g.name: {"total": g.total, "correct": g.correct,
                                       "accuracy": g.accuracy, "accuracy_ci95": list(g.ci)}
                              for g in scores}
                       for name, scores in self.groups.items()},
            "problems": dict(self.problems), "examples": dict(self.examples),
            "hint": self.hint,
        }

    def render(self) -> str:
        """A plain-text table: the headline metrics, each group, then the problems."""
        lines = [f"records             {self.total}",
                 f"exact-set accuracy  {self.accuracy:.4f} ({self.correct}/{self.total}; 95% "
                 f"CI {_interval(self.accuracy_ci)}, Wilson)",
                 f"micro F1            {self.micro_f1:.4f}",
                 f"macro F1            {self.macro_f1:.4f}  (unweighted, all {self.vocabulary_size} "
                 f"answers)",
                 f"macro F1 (present)  {self.present_macro_f1:.4f}  (unweighted, the "
                 f"{self.present_answers} answers present in the split)",
                 f"weighted F1         {self.weighted_f1:.4f}  (the original baselines' 'macro F1')",
                 f"note: {MACRO_NOTE}"]
        for name, scores in self.groups.items():
            width = max([len(name), *(len(g.name) for g in scores)])
            lines += ["", f"{name:<{width}}  {'n':>6}  {'correct':>7}  accuracy  95% CI"]
            lines += [f"{g.name:<{width}}  {g.total:>6}  {g.correct:>7}  {g.accuracy:.4f}    "
                      f"{_interval(g.ci)}" for g in scores]
        lines += ["", "problems: " + (", ".join(f"{kind} {count}" for kind, count in
                                                self.problems.items() if count) or "none")]
        lines += [f"  {kind}: {example}" for kind, shown in self.examples.items() for example in shown]
        if self.hint:
            lines.append(f"hint: {self.hint}")
        # Names come from the files: a line break or terminal escape in one is shown escaped.
        return "\n".join(map(printable, lines))


def _interval(bounds: tuple[float, float]) -> str:
    return f"[{bounds[0]:.4f}, {bounds[1]:.4f}]"


@dataclass(frozen=True)
class PairedScore:
    """Two models on the same ``total`` gold records: each one's correct count, and how many
    records only the first (``only_first``) or only the second answered exactly right."""

    name: str
    total: int
    first_correct: int
    second_correct: int
    only_first: int
    only_second: int

    @property
    def difference(self) -> tuple[float, float, float]:
        """First minus second accuracy, and its 95 % interval (paired, adjusted Wald)."""
        return paired_difference(self.only_first, self.only_second, self.total)

    @property
    def p_value(self) -> float:
        """McNemar's exact two-sided p-value."""
        return mcnemar_exact(self.only_first, self.only_second)

    def to_json(self) -> dict[str, Any]:
        difference, low, high = self.difference
        return {"total": self.total, "first_correct": self.first_correct,
                "second_correct": self.second_correct, "only_first": self.only_first,
                "only_second": self.only_second, "difference": difference,
                "difference_ci95": [low, high], "mcnemar_p": self.p_value}


@dataclass
class Comparison:
    """What ``compare`` found: both reports and the paired scores (all, then by content type)."""

    first_path: Path
    second_path: Path
    first: EvaluationReport
    second: EvaluationReport
    paired: list[PairedScore]

    def to_json(self) -> dict[str, Any]:
        return {"predictions": self.first.to_json(), "baseline": self.second.to_json(),
                "paired": {score.name: score.to_json() for score in self.paired}}

    def render(self) -> str:
        """The first model's report, then the paired table."""
        # Names come from the gold file: control characters are shown escaped, as in render()
        names = [printable(score.name) for score in self.paired]
        width = max(map(len, names))
        lines = [self.first.render(), "",
                 f"paired with the baseline {printable(str(self.second_path))}: difference = "
                 f"predictions - baseline; 'only' counts the records exactly one of the two "
                 f"answers right; p: McNemar's exact test",
                 f"{'group':<{width}}  {'n':>6}  {'pred.':>6}  {'base.':>6}  difference  "
                 f"95% CI              {'only pred.':>10}  {'only base.':>10}  p"]
        for name, score in zip(names, self.paired):
            difference, low, high = score.difference
            lines.append(
                f"{name:<{width}}  {score.total:>6}  {score.first_correct / score.total:.4f}  "
                f"{score.second_correct / score.total:.4f}  {difference:+.4f}     "
                f"[{low:+.4f}, {high:+.4f}]  {score.only_first:>10}  {score.only_second:>10}  "
                f"{score.p_value:.3g}")
        return "\n".join(lines)


class _Problems:
    """Counts problems of each kind and keeps the first few examples."""

    KINDS = ("unreadable", "malformed", "duplicate", "missing", "extra", "unknown_answer")

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter({kind: 0 for kind in self.KINDS})
        self.examples: dict[str, list[str]] = {}

    def add(self, kind: str, example: str) -> None:
        self.counts[kind] += 1
        shown = self.examples.setdefault(kind, [])
        if len(shown) < _SHOWN:
            shown.append(example)


def evaluate(predictions_path: str | os.PathLike[str], gold_path: str | os.PathLike[str],
             ans2idx_path: str | os.PathLike[str] | None = None) -> EvaluationReport:
    """Score a predictions file against a built split file.

    Args:
        predictions_path: predictions in one of the two shapes of the module docstring.
        gold_path: a built ``train/valid/test.json``.
        ans2idx_path: the answer vocabulary (default: ``ans2idx.json`` beside the gold
            file, else the default 110 answers and any other answer of the gold records).

    Raises:
        DataError: the gold file or ans2idx file is missing or is not what a build writes.
    """
    gold, vocabulary = _gold_and_vocabulary(Path(gold_path), ans2idx_path)
    return _score_file(Path(predictions_path), gold, vocabulary)


def compare(predictions_path: str | os.PathLike[str], baseline_path: str | os.PathLike[str],
            gold_path: str | os.PathLike[str],
            ans2idx_path: str | os.PathLike[str] | None = None) -> Comparison:
    """Score two models' predictions on one gold file and pair them record by record.

    Args:
        predictions_path: the model to report on.
        baseline_path: the model it is compared with.
        gold_path, ans2idx_path: as for ``evaluate``.

    Returns:
        Both reports, and for all records and each content type: how many records only one
        of the two answers exactly right, the accuracy difference (predictions minus
        baseline) with its 95 % interval, and McNemar's exact p-value.

    Raises:
        DataError: as ``evaluate``.
    """
    gold, vocabulary = _gold_and_vocabulary(Path(gold_path), ans2idx_path)
    first = _score_file(Path(predictions_path), gold, vocabulary)
    second = _score_file(Path(baseline_path), gold, vocabulary)
    groups: dict[str, list[_Key]] = {"all": []}
    for record in gold:
        key = _gold_key(record)
        groups["all"].append(key)
        groups.setdefault(f"content_type={record.get('content_type', '?')}", []).append(key)
    return Comparison(Path(predictions_path), Path(baseline_path), first, second,
                      [_paired(name, groups[name], first.outcomes, second.outcomes)
                       for name in sorted(groups, key=lambda name: (name != "all", name))])


def _gold_and_vocabulary(gold_path: Path, ans2idx_path: str | os.PathLike[str] | None
                         ) -> tuple[list[dict[str, Any]], list[str]]:
    gold = _read_gold(gold_path)
    return gold, _read_vocabulary(Path(ans2idx_path) if ans2idx_path is not None
                                  else gold_path.with_name("ans2idx.json"),
                                  ans2idx_path is None, gold)


def _score_file(path: Path, gold: Sequence[Mapping[str, Any]], vocabulary: Sequence[str]
                ) -> EvaluationReport:
    problems = _Problems()
    data, names = _read_predictions(path, problems)
    return score(_predictions(data, problems, names), gold, vocabulary, problems)


def _paired(name: str, keys: Sequence[_Key], first: Mapping[_Key, bool],
            second: Mapping[_Key, bool]) -> PairedScore:
    return PairedScore(
        name, len(keys), sum(first[key] for key in keys), sum(second[key] for key in keys),
        only_first=sum(first[key] and not second[key] for key in keys),
        only_second=sum(second[key] and not first[key] for key in keys))


def _read_predictions(path: Path, problems: _Problems) -> tuple[object, list[str] | None]:
    """The predictions as JSON data: the whole file, else a list of its JSON lines (then also
    each list item's name, "line N")."""
    refuse_device(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a BOM is allowed, as read_json allows it
    except OSError as exc:  # no predictions at all is an error, not a report of zeros
        raise DataError(f"{path}: cannot read the predictions: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}:{not_utf8(exc.object, exc.start)}") from None
    try:
        data = decode_json(text)
        # JSON Lines of a single record parse as one object; no 'split:idx' key is "idx".
        if isinstance(data, dict) and "idx" in data:
            number = next(n for n, line in enumerate(text.splitlines(), 1) if line.strip())
            return [data], [f"line {number}"]
        return (_first_wins(text, problems) if isinstance(data, dict) else data), None
    except ValueError as whole_error:
        lines = [(number, line) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
        records: list[object] = []
        for number, line in lines:
            try:
                records.append(decode_json(line))
            except ValueError:
                problems.add("unreadable", f"{path}: line {number} is not JSON")
                records.append(_UNREADABLE)
        if not lines or len(lines) == problems.counts["unreadable"]:
            raise DataError(f"{path}: expected a JSON list, a JSON object or JSON Lines of "
                            f"predictions ({whole_error})") from None
        return records, [f"line {number}" for number, _ in lines]


_UNREADABLE = object()  # a JSON Lines line that is not JSON (a line "null" is JSON: malformed)


class _LastPairs:
    """``object_pairs_hook`` that remembers the pairs of the last object to end: the top level."""

    def __init__(self) -> None:
        self.last: list[tuple[str, Any]] = []

    def __call__(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        self.last = pairs
        return dict(pairs)


def _first_wins(text: str, problems: _Problems) -> dict[str, Any]:
    """The top-level object of ``text`` with the first value of a repeated key (json keeps the
    last), each repeat counted as a duplicate, as repeated records are."""
    pairs = _LastPairs()
    decode_json(text, object_pairs_hook=pairs)
    kept: dict[str, Any] = {}
    for key, value in pairs.last:
        if key in kept:
            problems.add("duplicate", f"key {key!r}: given twice; the first counts")
        else:
            kept[key] = value
    return kept


def score(predictions: Mapping[_Key, Sequence[str]], gold: Sequence[Mapping[str, Any]],
          vocabulary: Sequence[str], problems: _Problems | None = None) -> EvaluationReport:
    """Score predictions already keyed by (split, idx) against gold records."""
    problems = problems or _Problems()
    known = set(vocabulary)
    outcomes: dict[_Key, bool] = {}  # gold key -> answered exactly right, in gold order
    results: list[tuple[Mapping[str, Any], bool]] = []
    pairs: list[tuple[set[str], set[str]]] = []
    for record in gold:
        key = _gold_key(record)
        truth = _normalise(record["answer"])
        if key not in predictions:
            problems.add("missing", _name(key))
            guess: set[str] = set()
        else:
            guess = _normalise(predictions[key])
            for unknown in sorted(guess - known):
                problems.add("unknown_answer", f"{_name(key)}: {unknown!r}")
        outcomes[key] = key in predictions and guess == truth
        results.append((record, outcomes[key]))
        pairs.append((truth & known, guess & known))
    for key in sorted(predictions.keys() - outcomes.keys()):
        problems.add("extra", _name(key))
    micro, macro, weighted, present = _f1s(pairs, vocabulary)
    return EvaluationReport(
        total=len(results), correct=sum(ok for _, ok in results), micro_f1=micro,
        macro_f1=macro, weighted_f1=weighted, vocabulary_size=len(vocabulary),
        present_macro_f1=present[0], present_answers=present[1],
        groups={name: _group_scores(results, name) for name in _GROUPS},
        problems=dict(problems.counts), examples=problems.examples,
        hint=_split_hint(predictions.keys(), outcomes.keys()), outcomes=outcomes)


def _gold_key(record: Mapping[str, Any]) -> _Key:
    """(split, idx) of a gold record (checked by ``_read_gold``)."""
    return str(record["split"]), int(record["idx"])


def _split_hint(predicted: Collection[_Key], gold: Collection[_Key]) -> str | None:
    """Why every prediction missed, when they are all for other splits than the gold file's."""
    theirs, ours = {split for split, _ in predicted}, {split for split, _ in gold}
    if not predicted or not ours or theirs & ours:
        return None
    return (f"every prediction is for split {', '.join(sorted(theirs))}, the gold file holds "
            f"split {', '.join(sorted(ours))}: give the matching split's file as --gold")


def _f1s(pairs: Iterable[tuple[set[str], set[str]]], vocabulary: Sequence[str]
         ) -> tuple[float, float, float, tuple[float, int]]:
    """Micro, macro and support-weighted F1 over one binary label per vocabulary answer,
    and the macro F1 over the answers with gold support (with their number)."""
    true_pos: Counter[str] = Counter()
    false_pos: Counter[str] = Counter()
    false_neg: Counter[str] = Counter()
    for truth, guess in pairs:
        true_pos.update(truth & guess)
        false_pos.update(guess - truth)
        false_neg.update(truth - guess)
    per_answer = {a: _f1(true_pos[a], false_pos[a], false_neg[a]) for a in vocabulary}
    support = {a: true_pos[a] + false_neg[a] for a in vocabulary}
    total_support = sum(support.values())
    micro = _f1(sum(true_pos.values()), sum(false_pos.values()), sum(false_neg.values()))
    macro = sum(per_answer.values()) / len(vocabulary) if vocabulary else 0.0
    weighted = (sum(per_answer[a] * support[a] for a in vocabulary) / total_support
                if total_support else 0.0)
    present = [per_answer[a] for a in vocabulary if support[a]]
    return micro, macro, weighted, (sum(present) / len(present) if present else 0.0, len(present))


def _f1(true_pos: int, false_pos: int, false_neg: int) -> float:
    denominator = 2 * true_pos + false_pos + false_neg
    return 2 * true_pos / denominator if denominator else 0.0


def _group_scores(results: Sequence[tuple[Mapping[str, Any], bool]], column: str) -> list[GroupScore]:
    totals: Counter[str] = Counter()
    correct: Counter[str] = Counter()
    for record, ok in results:
        name = str(record.get(column, "?"))
        totals[name] += 1
        correct[name] += ok
    return [GroupScore(name, totals[name], correct[name]) for name in sorted(totals, key=_order)]


def _order(name: str) -> tuple[int, str]:
    # program_2 before program_10
    number = _PROGRAM_NUMBER.search(name)
    return (int(number.group(1)) if number else -1, name)


def _normalise(answers: Iterable[str]) -> set[str]:
    return {answer.strip().lower() for answer in answers}


def _name(key: _Key) -> str:
    return f"{key[0]}:{key[1]}"



def _predictions(data: object, problems: _Problems,
                 names: Sequence[str] | None = None) -> dict[_Key, list[str]]:
    """(split, idx) -> answers from any accepted shape; bad entries go to ``problems``.

    ``names`` names the items of a list (default "record N"); ``_UNREADABLE`` items were
    unreadable lines.
    """
    if isinstance(data, dict):
        entries = [(_parse_key(text), value, f"key {text!r}") for text, value in data.items()]
    elif isinstance(data, list):
        names = names or [f"record {number}" for number in range(len(data))]
        entries = [(_record_key(item), item.get("answer") if isinstance(item, dict) else None,
                    name) for name, item in zip(names, data)
                   if item is not _UNREADABLE]  # already counted
    else:
        problems.add("malformed", "predictions must be a JSON list of records, an object "
                                  "mapping 'split:idx' to answers, or JSON Lines of records")
        return {}
    predictions: dict[_Key, list[str]] = {}
    for key, answers, where in entries:
        if key is not None and isinstance(answers, str):
            problems.add("malformed", f"{where}: answer {answers!r} is a string; expected a list "
                                      f"of answer strings such as [{answers!r}]")
        elif key is None or not isinstance(answers, list) or not all(
                isinstance(a, str) for a in answers):
            problems.add("malformed", f"{where}: expected split, idx and a list of answer strings")
        elif key in predictions:
            problems.add("duplicate", f"{where}: {_name(key)} predicted twice; the first counts")
        else:
            predictions[key] = answers
    return predictions


def _parse_key(text: str) -> _Key | None:
    split, _, idx = text.rpartition(":")
    number = plain_int(idx)
    return (split, number) if split and number is not None else None


def _record_key(item: object) -> _Key | None:
    if not isinstance(item, dict):
        return None
    split, idx = item.get("split"), item.get("idx")
    if isinstance(idx, str):
        idx = plain_int(idx)
    if not isinstance(split, str) or not isinstance(idx, int) or isinstance(idx, bool):
        return None
    return (split, idx)


def _read_gold(path: Path) -> list[dict[str, Any]]:
    from cxrvqa.tools.verify import read_records

    records = read_records(path)
    if not records:  # every score would be 0 of 0 questions, printed as 0.0000
        raise DataError(f"{path}: no records; expected a built split to score against")
    seen: set[_Key] = set()
    for number, record in enumerate(records):
        answer, idx = record.get("answer"), record.get("idx")
        if (not isinstance(record.get("split"), str) or not isinstance(idx, int)
                or isinstance(idx, bool)
                or not isinstance(answer, list) or not all(isinstance(a, str) for a in answer)):
            raise DataError(f"{path}: record {number}: expected split, idx and a list of answers")
        key = (record["split"], idx)
        if key in seen:  # it would be scored twice, as if it were two questions
            raise DataError(f"{path}: record {number}: {_name(key)} repeats an earlier record")
        seen.add(key)
    return records


def _read_vocabulary(path: Path, optional: bool, gold: Sequence[Mapping[str, Any]]) -> list[str]:
    if optional and not path.exists():  # the ans2idx.json a build of these records would write
        return default_vocabulary(answer for record in gold
                                  for answer in _normalise(record["answer"]))
    from cxrvqa.tools.verify import read_ans2idx

    return sorted(read_ans2idx(path))  # an empty or ill-formed one would score against nothing
