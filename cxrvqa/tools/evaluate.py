"""Score VQA predictions against a built split file: accuracy, F1s and a list of input problems.

Predictions may come in either of two shapes (both keyed by split and idx)::

    [{"split": "test", "idx": 0, "answer": ["yes"]}, ...]     # a JSON list of records
    {"test:0": ["yes"], "test:1": ["left lung", "trachea"]}    # a JSON object "split:idx" -> answers

An answer is a list of strings (a single string counts as a one-answer list).
Answers are compared as sets after ``strip().lower()``, the form the built files
use. Problems in the predictions never stop scoring: missing predictions count
as wrong, extra and malformed ones are skipped, unknown answers (not in
``ans2idx.json``) make their record wrong and have no F1 column; each is counted
and listed in the report. Only an unreadable gold file raises.

Metrics, over the gold records:

- exact-set accuracy, overall and per content type, semantic type and template program;
- micro F1 over the answer vocabulary (one binary label per answer);
- macro F1: the unweighted mean of the per-answer F1 over the whole vocabulary
  (an answer with no gold and no predicted occurrence scores 0, as sklearn's default);
- weighted F1: per-answer F1 weighted by gold support. The original MIMIC-CXR-VQA
  baselines reported this number as "macro F1"; it is labelled as what it is here.

Example:
    >>> report = evaluate("predictions.json", "mimiccxrvqa/dataset/test.json")  # doctest: +SKIP
    >>> print(report.render())                                                # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxrvqa.build.jsonio import decode_json
from cxrvqa.errors import DataError
from cxrvqa.vocab import VQA_ATTRIBUTES, VQA_OBJECTS

__all__ = ["EvaluationReport", "GroupScore", "default_vocabulary", "evaluate", "score"]

_Key = tuple[str, int]
_SHOWN = 5  # examples listed per kind of problem
_GROUPS = ("content_type", "semantic_type", "template_program")
_PROGRAM_NUMBER = re.compile(r"(\d+)$")


def default_vocabulary() -> list[str]:
    """The 110 answers of the default vocabulary, sorted (what ``ans2idx.json`` maps)."""
    return sorted({*VQA_OBJECTS, *VQA_ATTRIBUTES, "yes", "no", "ap", "pa", "m", "f"})


@dataclass(frozen=True)
class GroupScore:
    """Exact-set accuracy of one group of gold records."""

    name: str
    total: int
    correct: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


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
    problems: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    def to_json(self) -> dict[str, Any]:
        """The report as plain JSON data (``json.dumps`` it for ``--json``)."""
        return {
            "total": self.total, "correct": self.correct, "accuracy": self.accuracy,
            "micro_f1": self.micro_f1, "macro_f1": self.macro_f1,
            "weighted_f1": self.weighted_f1,
            "weighted_f1_note": "reported as 'macro F1' by the original baselines",
            "vocabulary_size": self.vocabulary_size,
            "groups": {name: {g.name: {"total": g.total, "correct": g.correct,
                                       "accuracy": g.accuracy} for g in scores}
                       for name, scores in self.groups.items()},
            "problems": dict(self.problems), "examples": dict(self.examples),
        }

    def render(self) -> str:
        """A plain-text table: the headline metrics, each group, then the problems."""
        lines = [f"records             {self.total}",
                 f"exact-set accuracy  {self.accuracy:.4f} ({self.correct}/{self.total})",
                 f"micro F1            {self.micro_f1:.4f}",
                 f"macro F1            {self.macro_f1:.4f}  (unweighted, {self.vocabulary_size} answers)",
                 f"weighted F1         {self.weighted_f1:.4f}  (the original baselines' 'macro F1')"]
        for name, scores in self.groups.items():
            width = max([len(name), *(len(g.name) for g in scores)])
            lines += ["", f"{name:<{width}}  {'n':>6}  {'correct':>7}  accuracy"]
            lines += [f"{g.name:<{width}}  {g.total:>6}  {g.correct:>7}  {g.accuracy:.4f}"
                      for g in scores]
        lines += ["", "problems: " + (", ".join(f"{kind} {count}" for kind, count in
                                                self.problems.items() if count) or "none")]
        lines += [f"  {kind}: {example}" for kind, shown in self.examples.items() for example in shown]
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
            file, else the default 110 answers).

    Raises:
        DataError: the gold file or ans2idx file is missing or is not what a build writes.
    """
    gold_path = Path(gold_path)
    gold = _read_gold(gold_path)
    vocabulary = _read_vocabulary(Path(ans2idx_path) if ans2idx_path is not None
                                  else gold_path.with_name("ans2idx.json"), ans2idx_path is None)
    problems = _Problems()
    try:
        raw = Path(predictions_path).read_bytes()
    except OSError as exc:  # no predictions at all is an error, not a report of zeros
        raise DataError(f"{predictions_path}: cannot read the predictions: "
                        f"{exc.strerror or exc}") from None
    try:
        data = decode_json(raw)
    except ValueError as exc:  # not JSON, too deep, too long an integer: reported
        problems.add("unreadable", f"{predictions_path}: {exc}")
        data = []
    return score(_predictions(data, problems), gold, vocabulary, problems)


def score(predictions: Mapping[_Key, Sequence[str]], gold: Sequence[Mapping[str, Any]],
          vocabulary: Sequence[str], problems: _Problems | None = None) -> EvaluationReport:
    """Score predictions already keyed by (split, idx) against gold records."""
    problems = problems or _Problems()
    known = set(vocabulary)
    gold_keys = set()
    results: list[tuple[Mapping[str, Any], bool]] = []
    pairs: list[tuple[set[str], set[str]]] = []
    for record in gold:
        key = (str(record["split"]), int(record["idx"]))
        gold_keys.add(key)
        truth = _normalise(record["answer"])
        if key not in predictions:
            problems.add("missing", _name(key))
            guess: set[str] = set()
            results.append((record, False))
        else:
            guess = _normalise(predictions[key])
            for unknown in sorted(guess - known):
                problems.add("unknown_answer", f"{_name(key)}: {unknown!r}")
            results.append((record, guess == truth))
        pairs.append((truth & known, guess & known))
    for key in sorted(predictions.keys() - gold_keys):
        problems.add("extra", _name(key))
    micro, macro, weighted = _f1s(pairs, vocabulary)
    return EvaluationReport(
        total=len(results), correct=sum(ok for _, ok in results), micro_f1=micro,
        macro_f1=macro, weighted_f1=weighted, vocabulary_size=len(vocabulary),
        groups={name: _group_scores(results, name) for name in _GROUPS},
        problems=dict(problems.counts), examples=problems.examples)


def _f1s(pairs: Iterable[tuple[set[str], set[str]]], vocabulary: Sequence[str]
         ) -> tuple[float, float, float]:
    """Micro, macro and support-weighted F1 over one binary label per vocabulary answer."""
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
    return micro, macro, weighted


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

_IDX = re.compile(r"[0-9]{1,18}")  # ASCII digits only ("²" is a digit to str.isdigit), int64


def _predictions(data: object, problems: _Problems) -> dict[_Key, list[str]]:
    """(split, idx) -> answers from either accepted shape; bad entries go to ``problems``."""
    if isinstance(data, dict):
        entries = [(_parse_key(text), value, f"key {text!r}") for text, value in data.items()]
    elif isinstance(data, list):
        entries = [(_record_key(item), item.get("answer") if isinstance(item, dict) else None,
                    f"record {number}") for number, item in enumerate(data)]
    else:
        problems.add("malformed", "predictions must be a JSON list of records or an object "
                                  "mapping 'split:idx' to answers")
        return {}
    predictions: dict[_Key, list[str]] = {}
    for key, value, where in entries:
        answers = [value] if isinstance(value, str) else value
        if key is None or not isinstance(answers, list) or not all(
                isinstance(a, str) for a in answers):
            problems.add("malformed", f"{where}: expected split, idx and a list of answer strings")
        elif key in predictions:
            problems.add("duplicate", f"{where}: {_name(key)} predicted twice; the first counts")
        else:
            predictions[key] = answers
    return predictions


def _parse_key(text: str) -> _Key | None:
    split, _, idx = text.rpartition(":")
    return (split, int(idx)) if split and _IDX.fullmatch(idx.strip()) else None


def _record_key(item: object) -> _Key | None:
    if not isinstance(item, dict):
        return None
    split, idx = item.get("split"), item.get("idx")
    if isinstance(idx, str) and _IDX.fullmatch(idx.strip()):
        idx = int(idx)
    if not isinstance(split, str) or not isinstance(idx, int) or isinstance(idx, bool):
        return None
    return (split, idx)


def _read_gold(path: Path) -> list[dict[str, Any]]:
    from cxrvqa.tools.verify import read_records

    records = read_records(path)
    for number, record in enumerate(records):
        answer = record.get("answer")
        if (not isinstance(record.get("split"), str) or not isinstance(record.get("idx"), int)
                or not isinstance(answer, list) or not all(isinstance(a, str) for a in answer)):
            raise DataError(f"{path}: record {number}: expected split, idx and a list of answers")
    return records


def _read_vocabulary(path: Path, optional: bool) -> list[str]:
    if optional and not path.exists():
        return default_vocabulary()
    from cxrvqa.build.jsonio import read_json

    data = read_json(path, "ans2idx.json")
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise DataError(f"{path}: expected a JSON object mapping answers to indices")
    return sorted(data)
