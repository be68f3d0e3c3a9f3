"""Answer ``func_vqa(question_text, study_id)`` calls from SQLite, for EHRXQA-style NeuralSQL.

``register(conn, index)`` adds the function to a connection::

    vqa = register(conn, load_index(layout))
    with vqa.named_errors():
        conn.execute("select s.study_id from studies s "
                     "where func_vqa('is there pleural effusion?', s.study_id) = 1").fetchall()

The question's template is recognised from its text: every template line of
every program becomes one regular expression whose placeholders are
alternations of vocabulary words, written the way the question files render
them (objects and attributes as named, categories as "anatomical findings",
"tubes/lines", ..., view positions AP/PA, genders male/female). Matching
ignores case, repeated spaces and a trailing '?' or '.'.

Results: a yes/no question gives 1 or 0, a list question a JSON list (sorted,
lower-case, as in the built files). A study the index does not hold gives NULL,
so ``= 1`` filters it out.

Which image answers for a study: a built index holds at most one image per
study (the cohort rule of pipeline.md §3 keeps one image per study), and that
image answers. An index made by hand may hold several images of one study; then
a gold-labelled image is preferred over a silver one, and among equals the
smallest image id answers, so the choice never depends on dict order.

An unknown question, or arguments a program cannot answer, make the SQL
statement fail. SQLite's Python binding reports any error in a Python function
as "user-defined function raised exception"; inside ``named_errors()`` that
error is re-raised as ``sqlite3.OperationalError`` whose message names the
question (``func_vqa: unknown question 'what is this?'``).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cxrvqa.errors import CxrvqaError
from cxrvqa.facts import ImageFacts
from cxrvqa.lang.nodes import Program
from cxrvqa.programs import answer, bundled_programs
from cxrvqa.vocab import CATEGORY_WORDS, VQA_ATTRIBUTES, VQA_OBJECTS

if TYPE_CHECKING:
    from cxrvqa.build.index import SceneIndex

__all__ = ["FuncVqa", "QuestionMatcher", "register", "study_images"]

_SLOT = re.compile(r"\$\{(\w+)\}")
_GENDER_WORDS = {"male": "M", "female": "F"}
_VIEW_WORDS = {"ap": "AP", "pa": "PA"}


class QuestionMatcher:
    """Recognises a question's program and arguments from its text.

    Example:
        >>> QuestionMatcher(bundled_programs()).match("Is there pleural effusion?")
        ('program_22', {'attribute': {'0': 'pleural effusion'}})
    """

    def __init__(self, programs: Mapping[str, Program]) -> None:
        # Each kind: rendered word (lower case) -> the argument value the programs take.
        self.words: dict[str, dict[str, str]] = {
            "object": {o: o for o in VQA_OBJECTS},
            "attribute": {a: a for a in VQA_ATTRIBUTES},
            "category": {**{c: c for c in CATEGORY_WORDS},
                         **{word: c for c, word in CATEGORY_WORDS.items()}},
            "viewpos": _VIEW_WORDS, "gender": _GENDER_WORDS,
        }
        self.patterns = [(program.name, self._pattern(template.text))
                         for program in programs.values() for template in program.templates]

    def _pattern(self, template: str) -> re.Pattern[str]:
        parts = []
        for number, piece in enumerate(_SLOT.split(_clean(template))):
            if number % 2 == 0:
                parts.append(r"\s+".join(map(re.escape, piece.split(" "))))
            else:
                words = sorted(self.words[piece.partition("_")[0]], key=len, reverse=True)
                parts.append(f"(?P<{piece}>{'|'.join(map(re.escape, words))})")
        return re.compile("".join(parts), re.IGNORECASE)

    def match(self, question: str) -> tuple[str, dict[str, dict[str, str]]] | None:
        """(program name, template_arguments) of the first template the question fits, or None."""
        text = _clean(question)
        for name, pattern in self.patterns:
            found = pattern.fullmatch(text)
            if found is not None:
                return name, self._arguments(found.groupdict())
        return None

    def _arguments(self, slots: Mapping[str, str]) -> dict[str, dict[str, str]]:
        arguments: dict[str, dict[str, str]] = {}
        for slot in sorted(slots):  # "x" < "x_1" < "x_2": keys "0", "1" in order
            kind, _, number = slot.partition("_")
            value = self.words[kind][slots[slot].lower()]
            arguments.setdefault(kind, {})[str(int(number or 1) - 1)] = value
        return arguments


def _clean(text: str) -> str:
    return " ".join(text.split()).rstrip("?.").rstrip().lower()


@dataclass
class FuncVqa:
    """The function ``register`` installs: answers (question, study) pairs from an index."""

    matcher: QuestionMatcher
    programs: Mapping[str, Program]
    images: Mapping[int, ImageFacts]
    last_error: str | None = None
    _parsed: dict[str, tuple[str, dict[str, dict[str, str]]]] = field(default_factory=dict)

    def __call__(self, question: object, study_id: object) -> int | str | None:
        self.last_error = None
        try:
            return self.answer(str(question), study_id)
        except Exception as exc:
            # SQLite only says "user-defined function raised exception"; keep ours for named_errors().
            self.last_error = str(exc)
            raise

    def answer(self, question: str, study_id: object) -> int | str | None:
        """The SQL value for one question on one study (None when the index lacks the study)."""
        program, arguments = self._parse(question)
        facts = self.images.get(_study_number(study_id))
        if facts is None:
            return None
        try:
            result = answer(self.programs, {"template_program": program,
                                            "template_arguments": arguments}, facts)
        except CxrvqaError as exc:
            raise ValueError(f"func_vqa: question {question!r}: {exc}") from None
        if self.programs[program].returns == "bool":
            return int(result == ["yes"])
        return json.dumps(result)

    def _parse(self, question: str) -> tuple[str, dict[str, dict[str, str]]]:
        # A NeuralSQL query asks one question for every row: match its text once.
        found = self._parsed.get(question) or self.matcher.match(question)
        if found is None:
            raise ValueError(f"func_vqa: unknown question {question!r}")
        self._parsed[question] = found
        return found

    @contextmanager
    def named_errors(self) -> Iterator[None]:
        """Re-raise SQLite's generic error from this function with the message that names the question."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            if self.last_error is None or "user-defined function raised exception" not in str(exc):
                raise
            raise sqlite3.OperationalError(self.last_error) from exc


def _study_number(study_id: object) -> int | None:
    # study ids arrive as integers or as the strings the built files hold ("50000001" or "s50000001").
    text = str(study_id).strip().lstrip("sS")
    return int(text) if text.isdigit() else None


def study_images(index: SceneIndex) -> dict[int, ImageFacts]:
    """study_id -> the facts of the image that answers for it (rule in the module docstring)."""
    chosen: dict[int, tuple[int, str, ImageFacts]] = {}
    for rank, pool in ((0, index.gold), (1, index.silver)):
        for image, facts in pool.items():
            study = index.meta[image].study_id
            candidate = (rank, image, facts)
            if study not in chosen or candidate[:2] < chosen[study][:2]:
                chosen[study] = candidate
    return {study: facts for study, (_, _, facts) in chosen.items()}


def register(conn: sqlite3.Connection, index: SceneIndex,
             programs: Mapping[str, Program] | None = None, name: str = "func_vqa") -> FuncVqa:
    """Register ``func_vqa(question_text, study_id)`` on ``conn``.

    Args:
        conn: the SQLite connection.
        index: from ``cxrvqa.pipeline.load_index`` (or any object with ``silver``,
            ``gold`` and ``meta``).
        programs: the programs to recognise and answer with (default: the bundled 48).
        name: the SQL function name.

    Returns:
        The registered function; use its ``named_errors()`` around ``execute`` to get
        errors that name the question.
    """
    programs = programs if programs is not None else bundled_programs()
    function = FuncVqa(QuestionMatcher(programs), programs, study_images(index))
    conn.create_function(name, 2, function, deterministic=True)
    return function

