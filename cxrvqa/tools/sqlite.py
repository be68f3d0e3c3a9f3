"""Answer ``func_vqa(question_text, study_id)`` calls from SQLite, for EHRXQA-style NeuralSQL.

``register(conn, index)`` adds the function to a connection::

    vqa = register(conn, load_index(layout))
    with vqa.named_errors():
        conn.execute("select s.study_id from studies s "
                     "where func_vqa('is there pleural effusion?', s.study_id) = 1").fetchall()

The question's program is recognised from its text in layers
(``cxrvqa.tools.recognise``): an exact template line of any program (base wording or a
paraphrase, with its terms rendered any way the vocabulary allows: "tubes/lines",
"tube/line", "abnormality"/"abnormalities", AP/PA, male/female), else a slot-first parser
that reads the terms, connectives and question form of wordings never seen (EHRXQA's
lower-case "does a chest x-ray show …", "regarding the …, which … is relevant, … or …?").
A question two programs fit equally is refused as ambiguous, never guessed. Matching
ignores case, repeated spaces and a trailing '?' or '.'; ``cxrvqa match "QUESTION"`` shows
what a question maps to and why.

Results: a yes/no question gives 1 or 0, a list question a JSON list (sorted,
lower-case, as in the built files). A study the index does not hold gives NULL,
so ``= 1`` filters it out; so does a NULL study_id or a NULL question.

Which image answers for a study: a built index holds at most one image per
study (the cohort rule of pipeline.md §3 keeps one image per study), and that
image answers. An index made by hand may hold several images of one study; then
a gold-labelled image is preferred over a silver one, and among equals the
smallest image id answers, so the choice never depends on dict order.

A study whose facts cannot answer the program gives NULL as well: the program reads a
fact the image lacks (no recorded gender for "what is the gender of this patient?" or
"is this patient male?", no view position; the rule ``generate`` uses to not ask such
questions) or its evaluation fails (no box for a size question). So one such study does
not fail a statement over all studies;
``register(..., strict=True)`` makes it fail the statement instead, naming the question.

An unknown or ambiguous question makes the SQL statement fail. SQLite's Python
binding reports any error in a Python function as "user-defined function raised
exception"; inside ``named_errors()`` that error is re-raised as ``sqlite3.OperationalError`` whose message names the
question (``func_vqa: unknown question 'what is this?'; closest template: …``).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cxrvqa.errors import CxrvqaError, EvaluationError
from cxrvqa.facts import ImageFacts
from cxrvqa.lang.check import facts_read
from cxrvqa.lang.nodes import Program
from cxrvqa.programs import answer, bundled_programs
from cxrvqa.tools.numbers import plain_int
from cxrvqa.tools.recognise import Recogniser, Recognition

if TYPE_CHECKING:
    from cxrvqa.build.index import SceneIndex

__all__ = ["FuncVqa", "QuestionMatcher", "register", "study_images"]


class QuestionMatcher:
    """Recognises a question's program and arguments from its text.

    Example:
        >>> QuestionMatcher(bundled_programs()).match("Is there pleural effusion?")
        ('program_22', {'attribute': {'0': 'pleural effusion'}})
    """

    def __init__(self, programs: Mapping[str, Program]) -> None:
        self.recogniser = Recogniser(programs)

    def recognise(self, question: str) -> Recognition:
        """The program, arguments and reason (or the refusal) for one question."""
        return self.recogniser.recognise(question)

    def match(self, question: str) -> tuple[str, dict[str, dict[str, str]]] | None:
        """(program name, template_arguments) of a recognised question, or None."""
        found = self.recogniser.recognise(question)
        return (found.program, found.arguments) if found.program is not None else None


@dataclass
class FuncVqa:
    """The function ``register`` installs: answers (question, study) pairs from an index."""

    # The programs and the facts of every study stay out of the repr: printed in a REPL,
    # they were megabytes for the demo alone.
    matcher: QuestionMatcher = field(repr=False)
    programs: Mapping[str, Program] = field(repr=False)
    images: Mapping[int, ImageFacts] = field(repr=False)
    strict: bool = False
    _facts: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    # Per thread: one FuncVqa may serve connections in several threads, and each thread's
    # named_errors() must report its own statement's error, not the latest one of any thread.
    _errors: threading.local = field(default_factory=threading.local, repr=False)

    @property
    def last_error(self) -> str | None:
        """This thread's last error from the function (None after a call that succeeded)."""
        return getattr(self._errors, "message", None)

    @last_error.setter
    def last_error(self, message: str | None) -> None:
        self._errors.message = message

    def __call__(self, question: object, study_id: object) -> int | str | None:
        self.last_error = None
        if question is None:  # SQL's NULL in, NULL out (as for a NULL study_id)
            return None
        try:
            return self.answer(_question_text(question), study_id)
        except Exception as exc:
            # SQLite only says "user-defined function raised exception"; keep ours for named_errors().
            self.last_error = str(exc)
            raise

    def answer(self, question: str, study_id: object) -> int | str | None:
        """The SQL value for one question on one study (None when the index lacks the study)."""
        program, arguments = self._parse(question)
        number = _study_number(study_id)
        facts = self.images.get(number) if number is not None else None
        if facts is None:
            return None
        try:
            lacking = [fact for fact in self._reads(program) if getattr(facts, fact) is None]
            if lacking:  # "is this patient male?" without a recorded gender is not "no"
                raise EvaluationError(f"{program}: no {lacking[0]} for this study")
            result = answer(self.programs, {"template_program": program,
                                            "template_arguments": arguments}, facts)
        except CxrvqaError as exc:
            if not self.strict:
                return None  # this study has no answer; the statement goes on
            raise ValueError(f"func_vqa: question {question!r}: {exc}") from None
        if self.programs[program].returns == "bool":
            return int(result == ["yes"])
        return json.dumps(result)

    def _reads(self, program: str) -> tuple[str, ...]:
        """The facts besides findings (viewpos, gender) a program reads, once per program."""
        reads = self._facts.get(program)
        if reads is None:
            reads = self._facts[program] = tuple(sorted(
                facts_read(self.programs[program]) - {"findings"}))
        return reads

    def _parse(self, question: str) -> tuple[str, dict[str, dict[str, str]]]:
        # The recogniser caches by text: a NeuralSQL query asks one question for every row.
        found = self.matcher.recognise(question)
        if found.program is None:
            raise ValueError(f"func_vqa: {found.error()}")
        return found.program, found.arguments

    @contextmanager
    def named_errors(self) -> Iterator[None]:
        """Re-raise SQLite's generic error from this function with the message that names the question."""
        # A statement can fail before the function runs (an argument SQLite cannot hand to
        # Python): then an earlier statement's message must not be taken for its own.
        self._errors.message = None
        try:
            yield
        except sqlite3.OperationalError as exc:
            if self.last_error is None or "user-defined function raised exception" not in str(exc):
                raise
            raise sqlite3.OperationalError(self.last_error) from exc


def _question_text(question: object) -> str:
    """The question as text; a BLOB is read as UTF-8 (its Python repr would be matched instead)."""
    if isinstance(question, bytes):
        try:
            return question.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"func_vqa: question {question[:40]!r}: a BLOB that is not UTF-8 "
                             f"text") from None
    return str(question)


def _study_number(study_id: object) -> int | None:
    # study ids arrive as integers or as the strings the built files hold ("50000001" or
    # "s50000001"), or as a REAL from a column without integer affinity (50000001.0).
    if isinstance(study_id, float) and study_id.is_integer():
        study_id = int(study_id)
    return plain_int(str(study_id).strip().lstrip("sS"))


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
             programs: Mapping[str, Program] | None = None, name: str = "func_vqa",
             strict: bool = False) -> FuncVqa:
    """Register ``func_vqa(question_text, study_id)`` on ``conn``.

    Args:
        conn: the SQLite connection.
        index: from ``cxrvqa.build.index.load_index`` (or any object with ``silver``,
            ``gold`` and ``meta``).
        programs: the programs to recognise and answer with (default: the bundled 48).
        name: the SQL function name.
        strict: fail the statement when a study's facts cannot answer a question
            (default: that study gives NULL).

    Returns:
        The registered function; use its ``named_errors()`` around ``execute`` to get
        errors that name the question.
    """
    programs = programs if programs is not None else bundled_programs()
    function = FuncVqa(QuestionMatcher(programs), programs, study_images(index), strict)
    conn.create_function(name, 2, function, deterministic=True)
    return function

