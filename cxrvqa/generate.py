"""Generate question records from template programs: sample arguments, answer, balance, write.

Every template is generated on its own. Candidate ``i`` of a template draws its
image and arguments from a random stream seeded by (seed, split, program, i), so
the same seed gives the same candidates in any process and with any number of
workers. Candidates are answered with the program, grouped by answer, and picked
round-robin across the answer groups (in order of first appearance): the answer
distribution of each template is as flat as its candidates allow. When it is not
yet flat enough, more candidates are drawn, up to ``MAX_OVERSAMPLING`` times the
requested count.

Arguments respect the ontology: an object and an attribute named together form a
possible pair, a category named with an object has a possible attribute there,
numbered placeholders of one kind get distinct values, and about half of the
draws are anchored on one of the image's positive findings so that "yes" and
non-empty answers occur. "Choose" questions retry their arguments on the same
image until exactly one option is true, when the image allows it.
"""

from __future__ import annotations

import csv
import json
import math
import multiprocessing
import random
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, fields
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from . import nodes as n
from .errors import DataError, EvaluationError
from .facts import ImageFacts
from .output import write_files_atomically
from .programs import answer, bundled_programs
from .splits import SilverIndex, assign_splits
from .vocab import (ARGUMENT_KINDS, CATEGORY_WORDS, GENDER_WORDS, SPLITS, VQA_ATTRIBUTES,
                    VQA_CATEGORIES, VQA_OBJECTS, category_of)

if TYPE_CHECKING:
    from .ontology import Ontology
    from .sources import SourceLayout

__all__ = ["MAX_LIST_SHARE", "BalanceRow", "GenerateOptions",
           "Generated", "Pairs", "Template", "generate", "generate_split", "load_templates",
           "question_bytes", "run_generate", "split_pools"]

MAX_LIST_SHARE = 0.2
YES_TOLERANCE = 0.05
OVERSAMPLING = 4
MAX_OVERSAMPLING = 16
_CHOOSE_TRIES = 8
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")
_NUMBER = re.compile(r"_(\d+)$")


@dataclass(frozen=True)
class Template:
    """One row of templates.tsv: a program's base wording and its question types."""

    program: str
    text: str
    content_type: str
    semantic_type: str


@cache
def load_templates() -> tuple[Template, ...]:
    """The 48 templates, in program order, from the packaged ``templates.tsv``."""
    text = resources.files("cxrvqa").joinpath("templates.tsv").read_text(encoding="utf-8")
    rows = csv.DictReader(text.splitlines(), delimiter="\t")
    return tuple(Template(row["program"], row["template"], row["content_type"],
                          row["semantic_type"]) for row in rows)


@dataclass(frozen=True)
class Pairs:
    """Possible (object, attribute) pairs of the question vocabulary, indexed both ways."""

    objects_of: Mapping[str, frozenset[str]]
    attributes_at: Mapping[str, frozenset[str]]

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, str]]) -> Pairs:
        """Index (object, attribute) pairs; names outside the question vocabulary are dropped."""
        objects_of: dict[str, set[str]] = {a: set() for a in VQA_ATTRIBUTES}
        attributes_at: dict[str, set[str]] = {o: set() for o in VQA_OBJECTS}
        for obj, attribute in pairs:
            if obj in attributes_at and attribute in objects_of:
                objects_of[attribute].add(obj)
                attributes_at[obj].add(attribute)
        return cls({a: frozenset(o) for a, o in objects_of.items()},
                   {o: frozenset(a) for o, a in attributes_at.items()})

    @classmethod
    def from_ontology(cls, ontology: Ontology) -> Pairs:
        """The ontology's possible pairs (pipeline.md §2, after both growth steps)."""
        return cls.of((obj, attribute) for attribute, objects in ontology.possible.items()
                      for obj in objects)

    def categories_at(self, obj: str) -> set[str]:
        return {category_of(a) for a in self.attributes_at[obj]}


@dataclass(frozen=True)
class GenerateOptions:
    """What to generate: questions per template, seed, templates, answers, wording, workers."""

    per_template: int
    seed: int = 0
    templates: tuple[str, ...] | None = None
    answers: bool = True
    paraphrases: bool = True
    workers: int = 1
    max_list_share: float = MAX_LIST_SHARE


@dataclass(frozen=True)
class BalanceRow:
    """The achieved answer distribution of one template."""

    program: str
    requested: int
    questions: int
    candidates: int
    answers: tuple[tuple[str, int], ...]  # rendered answer ("yes", "a, b", "[]") -> count
    boolean: bool
    balanced: bool

    @property
    def top(self) -> tuple[str, float]:
        """The most frequent answer and its share (("", 0.0) without questions)."""
        if not self.answers:
            return "", 0.0
        name, count = max(self.answers, key=lambda item: item[1])
        return name, count / self.questions

    def render(self) -> str:
        name, share = self.top
        shown = name if len(name) <= 28 else name[:25] + "..."
        return (f"{self.program:<12}{self.questions:>6}/{self.requested:<6}{self.candidates:>8}"
                f"{len(self.answers):>9}  {shown:<28}{share:>7.1%}  "
                f"{'ok' if self.balanced else 'limited by data'}")


@dataclass(frozen=True)
class Generated:
    """Generated records of one split (idx 0..n-1) and the balance of every template."""

    split: str
    records: list[dict[str, Any]]
    balance: tuple[BalanceRow, ...]

    def render_balance(self) -> str:
        header = (f"{'template':<12}{'made/asked':>13}{'drawn':>8}{'answers':>9}  "
                  f"{'top answer':<28}{'share':>7}")
        return "\n".join([header, *(row.render() for row in self.balance)])


class _Index(SilverIndex, Protocol):
    gold: Mapping[str, ImageFacts]


def split_pools(index: _Index) -> dict[str, dict[str, ImageFacts]]:
    """Images of each split: train/valid by the §7 split of the silver images, test = gold."""
    splits = assign_splits(index)
    return {
        "train": {i: f for i, f in index.silver.items() if splits[i] == "train"},
        "valid": {i: f for i, f in index.silver.items() if splits[i] == "valid"},
        "test": dict(index.gold),
    }


def generate(index: Any, split: str, options: GenerateOptions) -> Generated:
    """Generate one split from a ``pipeline.SceneIndex``, arguments from its ontology's pairs."""
    if split not in SPLITS:
        raise DataError(f"--split: {split!r}: expected one of {', '.join(SPLITS)}")
    pool = split_pools(index)[split]
    return generate_split(pool, split, Pairs.from_ontology(index.ontology), options)


def generate_split(pool: Mapping[str, ImageFacts], split: str, pairs: Pairs,
                   options: GenerateOptions,
                   programs: Mapping[str, n.Program] | None = None) -> Generated:
    """Generate, answer and balance ``options.per_template`` questions per template on ``pool``."""
    programs = programs if programs is not None else bundled_programs()
    names = _chosen_programs(programs, options.templates)
    state = _State(split, {i: pool[i] for i in sorted(pool)}, pairs, programs, options)
    results = list(_map(state, names))
    records = [record for chosen, _ in results for record in chosen]
    random.Random(f"cxrvqa/generate/{options.seed}/{split}/order").shuffle(records)
    records = [{"split": split, "idx": number, **record} for number, record in enumerate(records)]
    return Generated(split, records, tuple(row for _, row in results))


def question_bytes(records: Sequence[Mapping[str, Any]]) -> bytes:
    """A question file's bytes: a JSON list with ``indent=2``, as the released files."""
    return json.dumps(list(records), indent=2).encode("ascii")


def run_generate(layout: SourceLayout, split: str, options: GenerateOptions,
                 out: Path) -> Generated:
    """``cxrvqa generate``: read the sources, generate one split, write ``out`` atomically."""
    from .pipeline import load_index

    generated = generate(load_index(layout), split, options)
    write_files_atomically(out.parent, {out.name: question_bytes(generated.records)})
    return generated


def _chosen_programs(programs: Mapping[str, n.Program],
                     wanted: Sequence[str] | None) -> list[str]:
    known = {t.program for t in load_templates()}
    names = list(wanted) if wanted else [name for name in programs if name in known]
    for name in names:
        if name not in programs:
            raise DataError(f"--templates: {name!r}: expected a program name such as program_1")
        if name not in known:
            raise DataError(f"templates.tsv: {name!r}: expected a row giving its question types")
    return names


# --- one template ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _State:
    split: str
    pool: Mapping[str, ImageFacts]
    pairs: Pairs
    programs: Mapping[str, n.Program]
    options: GenerateOptions


# Set in the parent before forking workers, which inherit it: facts hold mapping proxies that
# do not pickle, and copying the pool once per fork is cheaper than once per task.
_FORKED: _State | None = None


def _map(state: _State, names: list[str]) -> Iterator[tuple[list[dict[str, Any]], BalanceRow]]:
    workers = min(state.options.workers, len(names))
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return (_template_records(state, name) for name in names)
    global _FORKED
    _FORKED = state
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            return iter(list(pool.map(_forked_template_records, names)))
    finally:
        _FORKED = None


def _forked_template_records(name: str) -> tuple[list[dict[str, Any]], BalanceRow]:
    assert _FORKED is not None  # set by _map before the fork
    return _template_records(_FORKED, name)


@dataclass(frozen=True)
class _Candidate:
    image_id: str
    values: tuple[tuple[str, str], ...]  # (param name, value), in param order
    wording: str
    answer: tuple[str, ...]


def _template_records(state: _State, name: str) -> tuple[list[dict[str, Any]], BalanceRow]:
    program = state.programs[name]
    template = {t.program: t for t in load_templates()}[name]
    wanted = state.options.per_template
    draw = _Drawer(state, program, template.semantic_type == "choose")
    candidates: dict[tuple[str, tuple[tuple[str, str], ...]], _Candidate] = {}
    drawn = 0
    chosen: list[_Candidate] = []
    for target in _draw_targets(wanted):
        for number in range(drawn, target):
            candidate = draw(number)
            if candidate is not None:
                # The first draw of a question wins: no duplicate question on one image.
                candidates.setdefault((candidate.image_id, candidate.values), candidate)
        drawn = target
        previous, chosen = chosen, _flatten(list(candidates.values()), wanted)
        if len(chosen) == wanted and (
                _balanced(chosen, state.options.max_list_share, strict=True)
                or _profile(chosen) == _profile(previous)):  # more draws did not help
            break
    row = _balance_row(name, wanted, drawn, chosen, program.returns == "bool",
                       state.options.max_list_share)
    return [_record(template, program, c, state.options.answers) for c in chosen], row


def _draw_targets(wanted: int) -> list[int]:
    """Candidate counts after each round: 4x, then doubling up to 16x the request."""
    targets, factor = [], OVERSAMPLING
    while wanted and factor <= MAX_OVERSAMPLING:
        targets.append(factor * wanted)
        factor *= 2
    return targets


def _flatten(candidates: list[_Candidate], wanted: int) -> list[_Candidate]:
    """Round-robin over answer groups (first-seen order): the flattest pick of ``wanted``."""
    groups: dict[tuple[str, ...], list[_Candidate]] = {}
    for candidate in candidates:
        groups.setdefault(candidate.answer, []).append(candidate)
    chosen: list[_Candidate] = []
    depth = 0
    while len(chosen) < wanted and any(len(g) > depth for g in groups.values()):
        chosen += [g[depth] for g in groups.values() if len(g) > depth][: wanted - len(chosen)]
        depth += 1
    return chosen


def _profile(chosen: Sequence[_Candidate]) -> list[int]:
    return sorted(Counter(c.answer for c in chosen).values())


def _balanced(chosen: Sequence[_Candidate], max_share: float, strict: bool) -> bool:
    """yes/no within 50±5 % (or one apart); no list answer above ``max_share`` (or above one)."""
    counts = Counter(c.answer for c in chosen)
    if not counts:
        return not strict
    total = sum(counts.values())
    if set(counts) <= {("yes",), ("no",)}:
        yes = counts[("yes",)]
        return abs(yes / total - 0.5) <= YES_TOLERANCE or abs(2 * yes - total) <= 1
    return max(counts.values()) <= max(1, math.floor(max_share * total))


def _balance_row(name: str, wanted: int, drawn: int, chosen: list[_Candidate], boolean: bool,
                 max_share: float) -> BalanceRow:
    counts = Counter(", ".join(c.answer) if c.answer else "[]" for c in chosen)
    return BalanceRow(name, wanted, len(chosen), drawn, tuple(sorted(counts.items())), boolean,
                      _balanced(chosen, max_share, strict=False))


def _record(template: Template, program: n.Program, candidate: _Candidate,
            with_answer: bool) -> dict[str, Any]:
    values = dict(candidate.values)
    question = _PLACEHOLDER.sub(lambda m: _words(m.group(1), values[m.group(1)]),
                                candidate.wording)
    record = {"image_id": candidate.image_id, "question": question,
              "content_type": template.content_type, "semantic_type": template.semantic_type,
              "template": candidate.wording, "template_program": program.name,
              "template_arguments": _arguments(values)}
    if with_answer:
        record["answer"] = list(candidate.answer)
    return record


def _words(name: str, value: str) -> str:
    kind = name.partition("_")[0]
    if kind == "category":
        return CATEGORY_WORDS[value]
    return GENDER_WORDS[value] if kind == "gender" else value


def _arguments(values: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """Released argument layout: every kind, numbered placeholders as keys "0", "1" in order."""
    arguments: dict[str, dict[str, str]] = {kind: {} for kind in ARGUMENT_KINDS}
    for name in sorted(values, key=_slot_order):
        arguments[name.partition("_")[0]][str(_slot_order(name)[1])] = values[name]
    return arguments


def _slot_order(name: str) -> tuple[str, int]:
    number = _NUMBER.search(name)
    return name.partition("_")[0], int(number.group(1)) - 1 if number else 0


def _facts_read(node: object) -> set[str]:
    """Names of the image facts (findings, viewpos, gender) a program reads."""
    if isinstance(node, n.Fact):
        return {node.name}
    found: set[str] = set()
    if isinstance(node, n.Node):
        for item in fields(node):
            value = getattr(node, item.name)
            for child in value if isinstance(value, tuple) else (value,):
                found |= _facts_read(child)
    return found


class _Drawer:
    """Draws candidate ``i`` of one template: an image, arguments, the answer (or None)."""

    def __init__(self, state: _State, program: n.Program, choose: bool) -> None:
        self.state, self.program = state, program
        self.choose = choose and bool(program.params)
        reads = _facts_read(program)
        # Questions about a fact the image lacks (no view position, unknown gender) are not asked.
        self.images = [i for i, facts in state.pool.items()
                       if ("viewpos" not in reads or facts.viewpos is not None)
                       and ("gender" not in reads or facts.gender is not None)]
        self.slots = {kind: sorted((p.name for p in program.params if p.kind == kind),
                                   key=_slot_order) for kind in ARGUMENT_KINDS}
        self.wordings = [t.text for t in program.templates] if state.options.paraphrases \
            else [program.templates[0].text]

    def __call__(self, number: int) -> _Candidate | None:
        if not self.images:
            return None
        options = self.state.options
        rng = random.Random(f"cxrvqa/generate/{options.seed}/{self.state.split}/"
                            f"{self.program.name}/{number}")
        image_id = rng.choice(self.images)
        facts = self.state.pool[image_id]
        wording = rng.choice(self.wordings)
        best = None
        for _ in range(_CHOOSE_TRIES if self.choose else 1):
            values = _Filler(rng, facts, self.state.pairs, self.slots,
                             anchored=rng.random() < 0.5).fill()
            if values is None:
                continue
            try:
                result = answer(self.state.programs, {
                    "template_program": self.program.name,
                    "template_arguments": _arguments(values)}, facts)
            except EvaluationError:  # e.g. a size question on an image without its boxes
                return None
            chosen = tuple((p.name, values[p.name]) for p in self.program.params)
            best = _Candidate(image_id, chosen, wording, tuple(result))
            if len(result) == 1:  # a choice with exactly one true option
                break
        return best


class _Filler:
    """Fills one template's placeholders for one image, or fails (returns None)."""

    def __init__(self, rng: random.Random, facts: ImageFacts, pairs: Pairs,
                 slots: Mapping[str, Sequence[str]], anchored: bool) -> None:
        self.rng, self.facts, self.pairs, self.slots = rng, facts, pairs, slots
        self.values: dict[str, str] = {}
        findings = sorted(facts.findings)
        crowded = [f for f in findings if len(facts.at_object(f[0])) > 1]
        if crowded and rng.random() < 0.5:  # room for a second finding at the same object
            findings = crowded
        if anchored and findings:
            obj, attribute, category = rng.choice(findings)
            for kind, value in (("object", obj), ("attribute", attribute),
                                ("category", category)):
                if self.slots[kind]:
                    self.values[self.slots[kind][0]] = value

    def fill(self) -> dict[str, str] | None:
        # Two objects must share their attribute or category: choose those first.
        kinds = (("category", "attribute", "object") if len(self.slots["object"]) > 1
                 else ("object", "category", "attribute"))
        for kind in (*kinds, "viewpos", "gender"):
            for slot in self.slots[kind]:
                if slot not in self.values:
                    value = self._choose(kind)
                    if value is None:
                        return None
                    self.values[slot] = value
        return self.values

    def assigned(self, kind: str) -> list[str]:
        return [self.values[s] for s in self.slots[kind] if s in self.values]

    def _choose(self, kind: str) -> str | None:
        candidates = sorted(self._candidates(kind) - set(self.assigned(kind)))
        if not candidates:
            return None
        observed = self._observed(kind)
        seen = [c for c in candidates if c in observed]
        return self.rng.choice(seen if seen and self.rng.random() < 0.6 else candidates)

    def _observed(self, kind: str) -> set[str]:
        if kind == "viewpos":
            return {self.facts.viewpos} if self.facts.viewpos else set()
        if kind == "gender":
            return {self.facts.gender} if self.facts.gender else set()
        # Prefer findings that agree with the values chosen so far, so that "both"
        # and "common" questions can come out yes or non-empty too.
        kinds = ("object", "attribute", "category")
        chosen = [(k, set(self.assigned(k))) for k in kinds if k != kind and self.assigned(k)]
        agreeing = [f for f in self.facts.findings
                    if all(f[kinds.index(k)] in values for k, values in chosen)]
        return {f[kinds.index(kind)] for f in agreeing or self.facts.findings}

    def _candidates(self, kind: str) -> set[str]:
        if kind == "viewpos":
            return {"AP", "PA"}
        if kind == "gender":
            return set(GENDER_WORDS)
        return {"object": self._objects, "attribute": self._attributes,
                "category": self._categories}[kind]()

    def _objects(self) -> set[str]:
        result = set(VQA_OBJECTS)
        for attribute in self.assigned("attribute"):
            result &= self.pairs.objects_of[attribute]
        if not self.slots["attribute"]:
            for category in self.assigned("category"):
                result = {o for o in result if category in self.pairs.categories_at(o)}
        return result

    def _attributes(self) -> set[str]:
        result = set(VQA_ATTRIBUTES)
        for obj in self.assigned("object"):
            result &= self.pairs.attributes_at[obj]
        for category in self.assigned("category"):
            result = {a for a in result if category_of(a) == category}
        return result

    def _categories(self) -> set[str]:
        result = set(VQA_CATEGORIES)
        if self.slots["attribute"]:
            # The category names the attributes still to choose: it needs enough of them.
            return {c for c in result if sum(category_of(a) == c for a in self._attributes())
                    >= len(self.slots["attribute"])}
        for obj in self.assigned("object"):
            result &= self.pairs.categories_at(obj)
        return result
