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

A full-size run makes millions of draws, so each does little: what a template may
name after each combination of chosen values is worked out once per template, an
image's sorted findings once per split, and a template without placeholders stops
drawing once every image has been drawn (later draws could only repeat questions).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import random
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from cxrvqa.build.answering import image_identity
from cxrvqa.build.index import ImageMeta
from cxrvqa.build.output import OUTPUT_KEYS, dataset_bytes, write_files_atomically
from cxrvqa.build.splits import SilverIndex, assign_splits
from cxrvqa.build.stages import ignore_interrupt, process_pool
from cxrvqa.errors import DataError, EvaluationError
from cxrvqa.facts import Finding, ImageFacts
from cxrvqa.lang import nodes as n
from cxrvqa.lang.answers import render
from cxrvqa.lang.check import facts_read
from cxrvqa.lang.compiler import compile_program
from cxrvqa.lang.templates import fill, param_kind, slot_order
from cxrvqa.programs import bundled_programs, program_named
from cxrvqa.vocab import (
    ARGUMENT_KINDS,
    CATEGORY_WORDS,
    GENDER_WORDS,
    SPLITS,
    VQA_ATTRIBUTES,
    VQA_CATEGORIES,
    VQA_OBJECTS,
    category_of,
)

if TYPE_CHECKING:
    from cxrvqa.build.layout import SourceLayout
    from cxrvqa.build.ontology import Ontology

__all__ = ["MAX_LIST_SHARE", "BalanceRow", "GenerateOptions",
           "Generated", "Pairs", "Template", "chosen_programs", "complete_records", "generate",
           "generate_split",
           "load_templates",
           "question_bytes", "run_generate", "split_pools"]

MAX_LIST_SHARE = 0.2
YES_TOLERANCE = 0.05
OVERSAMPLING = 4
MAX_OVERSAMPLING = 16
_CHOOSE_TRIES = 8
# Argument order within a kind, asked once per record and parameter: memoised.
_slot_order = cache(slot_order)


@dataclass(frozen=True)
class Template:
    """A program's base wording and its question types, as its header gives them."""

    program: str
    text: str
    content_type: str
    semantic_type: str

    @classmethod
    def of(cls, program: n.Program) -> Template:
        """The header of ``program``.

        Raises:
            DataError: the header lacks ``content_type`` or ``semantic_type``.
        """
        for word in ("content_type", "semantic_type"):
            if getattr(program, word) is None:
                where = program.source.name if program.source else program.name
                raise DataError(f"{where}: program {program.name!r} has no '{word}' header "
                                f"line; generate needs its question types (e.g. "
                                f"'content_type presence', 'semantic_type verify')")
        return cls(program.name, program.templates[0].text, str(program.content_type),
                   str(program.semantic_type))


def load_templates(programs: Mapping[str, n.Program] | None = None) -> tuple[Template, ...]:
    """The templates of ``programs`` (default: the 48 bundled), in program order, from their headers."""
    programs = programs if programs is not None else bundled_programs()
    return tuple(Template.of(program) for program in programs.values())


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

    def __post_init__(self) -> None:
        if self.per_template < 0 or self.workers < 1 or not 0 < self.max_list_share <= 1:
            raise ValueError(f"GenerateOptions needs per_template >= 0, workers >= 1 and "
                             f"0 < max_list_share <= 1, got {self.per_template}, {self.workers} "
                             f"and {self.max_list_share}")


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

    @property
    def status(self) -> str:
        """'ok'; 'flat over N answers' when every answer found is equally often chosen but
        there are too few of them for the cap (a gender or view question has two); else
        'limited by data'."""
        if self.balanced:
            return "ok"
        counts = [count for _, count in self.answers]
        if counts and max(counts) - min(counts) <= 1:
            return f"flat over {len(counts)} answers"
        return "limited by data"

    def render(self, width: int = 12) -> str:
        """One table line; ``width`` is the template column's (an author's names can be long)."""
        name, share = self.top
        shown = name if len(name) <= 28 else name[:25] + "..."
        return (f"{self.program:<{width}}{self.questions:>6}/{self.requested:<6}{self.candidates:>8}"
                f"{len(self.answers):>9}  {shown:<28}{share:>7.1%}  {self.status}")


@dataclass(frozen=True)
class Generated:
    """Generated records of one split (idx 0..n-1) and the balance of every template."""

    split: str
    records: list[dict[str, Any]]
    balance: tuple[BalanceRow, ...]

    def render_balance(self) -> str:
        width = max([12, *(len(row.program) + 1 for row in self.balance)])
        header = (f"{'template':<{width}}{'made/asked':>13}{'drawn':>8}{'answers':>9}  "
                  f"{'top answer':<28}{'share':>7}")
        return "\n".join([header, *(row.render(width) for row in self.balance)])


class _Index(SilverIndex, Protocol):
    @property
    def gold(self) -> Mapping[str, ImageFacts]: ...


def split_pools(index: _Index) -> dict[str, dict[str, ImageFacts]]:
    """Images of each split: train/valid by the §7 split of the silver images, test = gold."""
    splits = assign_splits(index)
    return {
        "train": {i: f for i, f in index.silver.items() if splits[i] == "train"},
        "valid": {i: f for i, f in index.silver.items() if splits[i] == "valid"},
        "test": dict(index.gold),
    }


def generate(index: Any, split: str, options: GenerateOptions,
             programs: Mapping[str, n.Program] | None = None) -> Generated:
    """Generate one split from a ``pipeline.SceneIndex``, arguments from its ontology's pairs.

    ``programs`` is the program set (default: the bundled 48).
    """
    if split not in SPLITS:
        raise DataError(f"--split: {split!r}: expected one of {', '.join(SPLITS)}")
    pool = split_pools(index)[split]
    return generate_split(pool, split, Pairs.from_ontology(index.ontology), options, programs)


def generate_split(pool: Mapping[str, ImageFacts], split: str, pairs: Pairs,
                   options: GenerateOptions,
                   programs: Mapping[str, n.Program] | None = None) -> Generated:
    """Generate, answer and balance ``options.per_template`` questions per template on ``pool``."""
    programs = programs if programs is not None else bundled_programs()
    names = chosen_programs(programs, options.templates)
    state = _State(split, {i: pool[i] for i in sorted(pool)}, pairs, programs, options)
    results = list(_map(state, names))
    records = [record for chosen, _ in results for record in chosen]
    random.Random(f"cxrvqa/generate/{options.seed}/{split}/order").shuffle(records)
    for number, record in enumerate(records):
        record["idx"] = number
    return Generated(split, records, tuple(row for _, row in results))


def question_bytes(records: Sequence[Mapping[str, Any]]) -> bytes:
    """A question file's bytes: a JSON list with ``indent=2``, as the released files."""
    return json.dumps(list(records), indent=2).encode("ascii")


def run_generate(layout: SourceLayout, split: str, options: GenerateOptions,
                 out: Path, programs: Mapping[str, n.Program] | None = None, *,
                 complete: bool = False) -> Generated:
    """``cxrvqa generate``: read the sources, generate one split, write ``out`` atomically.

    ``complete`` writes built records instead (see ``complete_records``), in the bytes
    of a built split file.
    """
    from cxrvqa.build.index import load_index

    index = load_index(layout)
    generated = generate(index, split, options, programs)
    data = (dataset_bytes(complete_records(generated.records, index.meta)) if complete
            else question_bytes(generated.records))
    write_files_atomically(out.parent, {out.name: data})
    return generated


def complete_records(records: Sequence[Mapping[str, Any]],
                     meta: Mapping[str, ImageMeta]) -> list[dict[str, Any]]:
    """Question records as a build writes them: with subject_id, study_id and image_path,
    in the built key order, so that training code reads generated and built files alike."""
    completed = []
    for record in records:
        subject_id, study_id, path = image_identity(meta[record["image_id"]], record["image_id"])
        extra = {"subject_id": subject_id, "study_id": study_id, "image_path": path}
        completed.append({key: extra[key] if key in extra else record[key]
                          for key in OUTPUT_KEYS if key in extra or key in record})
    return completed


def chosen_programs(programs: Mapping[str, n.Program] | None,
                    wanted: Sequence[str] | None) -> list[str]:
    """The names of the programs (default: the bundled 48) to generate for (``wanted``, else
    all), each checked.

    The command line calls it before reading the sources, so that a wrong name stops at once.

    Raises:
        UsageError: a wanted name is no program (said with a did-you-mean).
        DataError: a chosen program's header lacks the question types.
    """
    programs = programs if programs is not None else bundled_programs()
    names = list(dict.fromkeys(wanted)) if wanted else list(programs)  # named twice: once
    for name in names:
        Template.of(program_named(programs, name, "--templates"))  # its header gives the types
    return names


# --- one template ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _State:
    split: str
    pool: Mapping[str, ImageFacts]
    pairs: Pairs
    programs: Mapping[str, n.Program]
    options: GenerateOptions
    images: dict[str, _Image] = field(default_factory=dict, compare=False)

    def image(self, image_id: str) -> _Image:
        """The pool image ``image_id``, its orderings made on first use and shared by templates."""
        if image_id not in self.images:
            self.images[image_id] = _Image(image_id, self.pool[image_id])
        return self.images[image_id]


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
        with process_pool(workers, mp_context=multiprocessing.get_context("fork"),
                          initializer=ignore_interrupt) as pool:
            return iter(list(pool.map(_forked_template_records, names)))
    finally:
        _FORKED = None


def _forked_template_records(name: str) -> tuple[list[dict[str, Any]], BalanceRow]:
    assert _FORKED is not None  # set by _map before the fork
    return _template_records(_FORKED, name)


class _Candidate(NamedTuple):
    image_id: str
    values: tuple[tuple[str, str], ...]  # (param name, value), in param order
    wording: str
    answer: tuple[str, ...]


def _template_records(state: _State, name: str) -> tuple[list[dict[str, Any]], BalanceRow]:
    program = state.programs[name]
    template = Template.of(program)
    wanted = state.options.per_template
    draw = _Drawer(state, program, template.semantic_type == "choose")
    candidates: dict[tuple[str, tuple[tuple[str, str], ...]], _Candidate] = {}
    drawn = 0
    chosen: list[_Candidate] = []
    for target in _draw_targets(wanted):
        for number in range(drawn, target):
            if draw.exhausted:  # later draws would only repeat questions: count them as drawn
                break
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
    return [_record(state.split, template, program, c, state.options.answers)
            for c in chosen], row


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


def _record(split: str, template: Template, program: n.Program, candidate: _Candidate,
            with_answer: bool) -> dict[str, Any]:
    """A question record; its ``idx`` is set once the split's records are shuffled."""
    values = dict(candidate.values)
    question = fill(candidate.wording, lambda slot: _words(slot, values[slot]))
    record = {"split": split, "idx": -1, "image_id": candidate.image_id, "question": question,
              "content_type": template.content_type, "semantic_type": template.semantic_type,
              "template": candidate.wording, "template_program": program.name,
              "template_arguments": _arguments(values)}
    if with_answer:
        record["answer"] = list(candidate.answer)
    return record


def _words(name: str, value: str) -> str:
    kind = param_kind(name)
    if kind == "category":
        return CATEGORY_WORDS[value]
    return GENDER_WORDS[value] if kind == "gender" else value


def _arguments(values: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """Released argument layout: every kind, numbered placeholders as keys "0", "1" in order."""
    arguments: dict[str, dict[str, str]] = {kind: {} for kind in ARGUMENT_KINDS}
    for name in sorted(values, key=_slot_order):
        kind, number = _slot_order(name)
        arguments[kind][str(number)] = values[name]
    return arguments


class _Drawer:
    """Draws candidate ``i`` of one template: an image, arguments, the answer (or None)."""

    def __init__(self, state: _State, program: n.Program, choose: bool) -> None:
        self.state, self.program = state, program
        self.seed_prefix = f"cxrvqa/generate/{state.options.seed}/{state.split}/{program.name}/"
        self.choose = choose and bool(program.params)
        reads = facts_read(program)
        # Questions about a fact the image lacks (no view position, unknown gender) are not asked.
        self.images = [i for i, facts in state.pool.items()
                       if ("viewpos" not in reads or facts.viewpos is not None)
                       and ("gender" not in reads or facts.gender is not None)]
        self.params = tuple(p.name for p in program.params)
        # Compiled here, not answered through ``programs.evaluate``: every draw binds all
        # params by construction, so its per-call checks would only cost time.
        self.run = compile_program(program).run
        self.choices = _Choices(state.pairs, {
            kind: sorted((p.name for p in program.params if p.kind == kind), key=_slot_order)
            for kind in ARGUMENT_KINDS})
        self.wordings = [t.text for t in program.templates] if state.options.paraphrases \
            else [program.templates[0].text]
        # Without placeholders an image has one question: once every image is drawn, no
        # further draw can add a candidate.
        self.undrawn = set(self.images) if not self.params else None

    @property
    def exhausted(self) -> bool:
        """Whether every question this template can ask has been drawn."""
        return self.undrawn is not None and not self.undrawn

    def __call__(self, number: int) -> _Candidate | None:
        if not self.images:
            return None
        rng = random.Random(f"{self.seed_prefix}{number}")
        image = self.state.image(rng.choice(self.images))
        if self.undrawn is not None:
            self.undrawn.discard(image.image_id)
        wording = rng.choice(self.wordings)
        best = None
        for _ in range(_CHOOSE_TRIES if self.choose else 1):
            # Without placeholders nothing else is drawn: the image and wording make the question.
            values = _fill(rng, image, self.choices, anchored=rng.random() < 0.5) \
                if self.params else {}
            if values is None:
                continue
            args = [values[name] for name in self.params]
            try:
                result = render(self.run(image.facts, args))  # type: ignore[arg-type]
            except EvaluationError:  # e.g. a size question on an image without its boxes
                return None
            best = _Candidate(image.image_id, tuple(zip(self.params, args)), wording,
                              tuple(result))
            if len(result) == 1:  # a choice with exactly one true option
                break
        return best


_FINDING_KINDS = ("object", "attribute", "category")  # the order of a finding's fields


class _Image:
    """One image's facts, its findings sorted, those that share an object, the names in them."""

    __slots__ = ("image_id", "facts", "findings", "crowded", "observed")

    def __init__(self, image_id: str, facts: ImageFacts) -> None:
        self.image_id, self.facts = image_id, facts
        self.findings = tuple(sorted(facts.findings))
        self.crowded = tuple(f for f in self.findings if len(facts.at_object(f[0])) > 1)
        # The objects, attributes and categories of all its findings.
        self.observed = tuple(frozenset(f[i] for f in self.findings)
                              for i in range(len(_FINDING_KINDS)))


_Values = tuple[tuple[str, str], ...]  # (placeholder, value) in the order they were chosen


class _Possible(NamedTuple):
    """The values a placeholder may take, and what agreeing findings must match."""

    values: list[str]  # sorted
    as_set: frozenset[str]
    position: int  # of the placeholder's kind in a finding; -1 for viewpos and gender
    agree: tuple[tuple[int, frozenset[str]], ...]  # (finding position, values chosen there)


class _Choices:
    """Values one template's next placeholder may take, given those chosen so far.

    What does not depend on the image is kept: a template meets the same few
    combinations again and again.
    """

    def __init__(self, pairs: Pairs, slots: Mapping[str, Sequence[str]]) -> None:
        self.pairs, self.slots = pairs, slots
        self.position = {slot: i for i, kind in enumerate(_FINDING_KINDS) for slot in slots[kind]}
        self.possible: dict[tuple[str, _Values], _Possible] = {}
        # An anchor finding fills the first placeholder of each of its kinds.
        self.anchors = tuple((i, slots[kind][0]) for i, kind in enumerate(_FINDING_KINDS)
                             if slots[kind])
        # Two objects must share their attribute or category: choose those first.
        kinds = (("category", "attribute", "object") if len(slots["object"]) > 1
                 else ("object", "category", "attribute"))
        self.order = tuple((kind, slot) for kind in (*kinds, "viewpos", "gender")
                           for slot in slots[kind])

    def on(self, image: _Image, kind: str,
           values: Mapping[str, str]) -> tuple[list[str], list[str]]:
        """Possible values of ``kind`` besides those taken, and those of them the image shows.

        Both are sorted.
        """
        key = (kind, tuple(values.items()))
        if key not in self.possible:
            self.possible[key] = self._possible(kind, values)
        possible = self.possible[key]
        return possible.values, sorted(possible.as_set & self._observed(image, kind, possible))

    def _possible(self, kind: str, values: Mapping[str, str]) -> _Possible:
        allowed = self._candidates(kind, values) - set(self._assigned(kind, values))
        position = _FINDING_KINDS.index(kind) if kind in _FINDING_KINDS else -1
        agree: dict[int, set[str]] = {}
        for slot, value in values.items():
            other = self.position.get(slot, position)
            if other != position:
                agree.setdefault(other, set()).add(value)
        return _Possible(sorted(allowed), frozenset(allowed), position,
                         tuple((i, frozenset(chosen)) for i, chosen in agree.items()))

    @staticmethod
    def _observed(image: _Image, kind: str, possible: _Possible) -> Set[str]:
        """Values of ``kind`` in the image's facts, from findings that agree with those chosen.

        Agreeing findings make "both" and "common" questions come out yes or non-empty too.
        """
        if possible.position < 0:
            value = getattr(image.facts, kind)
            return {value} if value else set()
        if not possible.agree:
            return image.observed[possible.position]
        agreeing: Sequence[Finding] = image.findings
        for i, chosen in possible.agree:
            agreeing = [f for f in agreeing if f[i] in chosen]
        return {f[possible.position] for f in agreeing} or image.observed[possible.position]

    def _assigned(self, kind: str, values: Mapping[str, str]) -> list[str]:
        return [values[s] for s in self.slots[kind] if s in values]

    def _candidates(self, kind: str, values: Mapping[str, str]) -> set[str]:
        if kind == "viewpos":
            return {"AP", "PA"}
        if kind == "gender":
            return set(GENDER_WORDS)
        return {"object": self._objects, "attribute": self._attributes,
                "category": self._categories}[kind](values)

    def _objects(self, values: Mapping[str, str]) -> set[str]:
        result = set(VQA_OBJECTS)
        for attribute in self._assigned("attribute", values):
            result &= self.pairs.objects_of[attribute]
        if not self.slots["attribute"]:
            for category in self._assigned("category", values):
                result = {o for o in result if category in self.pairs.categories_at(o)}
        return result

    def _attributes(self, values: Mapping[str, str]) -> set[str]:
        result = set(VQA_ATTRIBUTES)
        for obj in self._assigned("object", values):
            result &= self.pairs.attributes_at[obj]
        for category in self._assigned("category", values):
            result = {a for a in result if category_of(a) == category}
        return result

    def _categories(self, values: Mapping[str, str]) -> set[str]:
        result = set(VQA_CATEGORIES)
        if self.slots["attribute"]:
            # The category names the attributes still to choose: it needs enough of them.
            attributes = self._attributes(values)
            return {c for c in result if sum(category_of(a) == c for a in attributes)
                    >= len(self.slots["attribute"])}
        for obj in self._assigned("object", values):
            result &= self.pairs.categories_at(obj)
        return result


def _fill(rng: random.Random, image: _Image, choices: _Choices,
          anchored: bool) -> dict[str, str] | None:
    """One template's placeholder values for one image, or None when some has no value left."""
    values: dict[str, str] = {}
    findings = image.findings
    if image.crowded and rng.random() < 0.5:  # room for a second finding at the same object
        findings = image.crowded
    if anchored and findings:
        anchor = rng.choice(findings)
        for position, slot in choices.anchors:
            values[slot] = anchor[position]
    for kind, slot in choices.order:
        if slot not in values:
            candidates, seen = choices.on(image, kind, values)
            if not candidates:
                return None
            values[slot] = rng.choice(seen if seen and rng.random() < 0.6 else candidates)
    return values
