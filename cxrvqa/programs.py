"""Load template programs, keep them by name, and answer question records with them.

This is the few-lines path a pipeline uses::

    programs = load_programs()                      # the 48 bundled programs, checked
    answer(programs, record, facts)                 # -> ["yes"] / ["no"] / sorted list

A record gives ``template_program`` and ``template_arguments``
(``{"object": {"0": ...}, "attribute": {...}, ...}``). Each program is compiled
once and keeps its compiled form, so answering never re-parses.

An author's folder of programs (``load_programs(folder)``) sees the bundled
prelude plus the folder's own ``_prelude.cxr``; ``program_set(folders)`` is what
the commands answer with: the bundled programs plus each folder's.

Arguments are checked against the MIMIC-CXR-VQA vocabulary: an argument that is not
a term of its kind (``"left lugn"``) is an ``EvaluationError`` naming the term, with a
did-you-mean. The check is part of the generated argument binder (one frozenset
lookup per argument), so answering stays as fast as before.
"""

from __future__ import annotations

import difflib
import functools
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TextIO, cast

from cxrvqa.errors import DataError, EvaluationError, ProgramError, UsageError
from cxrvqa.facts import ImageFacts
from cxrvqa.lang import nodes as n
from cxrvqa.lang.answers import render
from cxrvqa.lang.check import check, environment_for, folder_prelude, read_program_text
from cxrvqa.lang.compiler import Evaluator, compile_program
from cxrvqa.lang.diagnostics import Diagnostic, program_error
from cxrvqa.lang.kinds import PARAM_KINDS, Vocabulary
from cxrvqa.lang.parser import parse
from cxrvqa.lang.resources import programs_dir
from cxrvqa.lang.templates import argument_key

__all__ = ["answer", "answer_record", "argument_plan", "bound_arguments", "bundled_programs",
           "check_argument", "checked_arguments", "evaluate", "load_program", "load_programs",
           "program_named", "program_set", "runner"]

# (kind, argument keys, positions in the program's params) for each kind a program declares.
_Plan = tuple[tuple[str, tuple[str, ...], tuple[int, ...]], ...]


def load_program(path: str | os.PathLike[str], vocabulary: Vocabulary | None = None) -> n.Program:
    """Parse and check one program file.

    Raises:
        ProgramError: with every diagnostic of the file.
        DataError: the file is absent, or not a regular UTF-8 text file of at most 1 MiB.
    """
    path = Path(path)
    program = parse(read_program_text(path), path)
    preludes = _preludes(path.parent)
    if preludes:
        program = replace(program, preludes=preludes)
    diagnostics = check(program, vocabulary)
    if diagnostics:
        raise program_error(diagnostics)
    return program


def _preludes(folder: Path) -> tuple[n.Prelude, ...]:
    """The author's prelude of ``folder`` (none for the bundled folder), checked once.

    Raises:
        ProgramError: the folder's prelude does not parse or check.
    """
    prelude = folder_prelude(folder)
    if prelude is None:
        return ()
    environment_for((prelude,))  # raises with the prelude's own diagnostics
    return _PRELUDES.setdefault((str(folder.resolve()), prelude.source.text if prelude.source
                                 else ""), (prelude,))


# One parsed prelude per folder and text, so that every program of a folder shares it (and
# the environment checked for it).
_PRELUDES: dict[tuple[str, str], tuple[n.Prelude, ...]] = {}


def load_programs(directory: str | os.PathLike[str] | None = None,
                  vocabulary: Vocabulary | None = None) -> dict[str, n.Program]:
    """Load every ``*.cxr`` program of a folder (default: the bundled 48), keyed by program name.

    Files whose name starts with ``_`` (the prelude) are not programs. A folder's own
    ``_prelude.cxr`` adds its constants and definitions to the bundled prelude's.

    Raises:
        ProgramError: with the diagnostics of every file that fails.
        DataError: ``directory`` is not a folder.
    """
    folder = Path(directory) if directory is not None else programs_dir()
    if not folder.is_dir():
        raise DataError(f"{folder}: expected a folder of .cxr program files")
    _preludes(folder)  # a broken folder prelude: its own diagnostics, once
    files = sorted((p for p in folder.glob("*.cxr") if not p.name.startswith("_")),
                   key=lambda p: (len(p.stem), p.stem))
    programs: dict[str, n.Program] = {}
    diagnostics: list[Diagnostic] = []
    for path in files:
        try:
            program = load_program(path, vocabulary)
        except ProgramError as err:
            diagnostics.extend(err.diagnostics)
        else:
            programs[program.name] = program
    if diagnostics:
        raise program_error(diagnostics)
    return programs


@functools.cache
def bundled_programs() -> dict[str, n.Program]:
    """The 48 bundled programs, loaded once per process."""
    return load_programs()


def program_set(folders: Iterable[str | os.PathLike[str]] = (),
                out: TextIO | None = None) -> dict[str, n.Program]:
    """The bundled programs, then each author folder's; a later one replaces one of its name.

    Each replacement is said once, on ``out`` (default stderr).

    Raises:
        ProgramError: a folder's program or prelude does not check.
        DataError: a folder does not exist or holds no program (a mistyped folder would
            silently leave the bundled set alone).
    """
    programs = dict(bundled_programs())
    out = out or sys.stderr
    for folder in folders:
        loaded = load_programs(folder)
        if not loaded:
            raise DataError(f"{folder}: no .cxr program files in this folder")
        # A folder is one set with one prelude; 'check' reads subfolders too, so say why
        # their programs are missing here instead of leaving them out silently.
        for sub in sorted({p.parent for p in Path(folder).glob("*/**/*.cxr")
                           if not p.name.startswith("_")}):
            print(f"note: {sub}: programs in a subfolder are not loaded; add --programs {sub}",
                  file=out)
        reworded = 0
        for name, program in loaded.items():
            if name in programs and _only_wordings_differ(programs[name], program):
                reworded += 1  # e.g. a `cxrvqa paraphrases` copy: all 48, said in one line below
            elif name in programs:
                where = program.source.name if program.source else name
                print(f"note: {where} replaces the program {name!r} loaded before", file=out)
            programs[name] = program
        if reworded:
            print(f"note: {folder}: {reworded} program(s) differ from those loaded before only in "
                  f"their template lines", file=out)
    return programs


def _only_wordings_differ(before: n.Program, after: n.Program) -> bool:
    """Whether ``after`` answers as ``before`` does (same header and body; templates may differ)."""
    return replace(after, templates=before.templates) == before


def evaluate(program: n.Program, facts: ImageFacts, /, **bindings: str) -> list[str]:
    """Answer ``program`` on one image, with parameters bound by name.

    Args:
        program: a parsed program (it is checked and compiled once, on first use).
        facts: the image's facts.
        **bindings: one value per parameter, e.g. ``object="left lung"``
            (``ignored`` parameters may be left out).

    Returns:
        ``["yes"]``, ``["no"]`` or a sorted, lower-cased list.

    Raises:
        ProgramError: the program does not check.
        EvaluationError: a binding is missing or the facts cannot answer it.

    Example:
        >>> p = parse('program p template "Is there ${attribute}?" param attribute: attribute '
        ...           'returns bool exists(findings[attribute = $attribute])')
        >>> evaluate(p, ImageFacts([("left lung", "pneumonia", "disease")]), attribute="pneumonia")
        ['yes']
    """
    evaluator, _, _ = _compiled(program)
    bound = bound_arguments(program, bindings)
    return render(evaluator.run(facts, bound))  # type: ignore[arg-type]


def bound_arguments(program: n.Program, bindings: Mapping[str, str | None]) -> list[str | None]:
    """The program's arguments in param order from ``bindings`` by param name, checked.

    Raises:
        EvaluationError: a name that is no param, a missing or non-string value, or a term
            outside the vocabulary (with a did-you-mean).
    """
    for name in bindings.keys() - {p.name for p in program.params}:
        raise EvaluationError(f"{program.name}: no param named '{name}'")
    args: list[str | None] = []
    for param in program.params:
        value = bindings.get(param.name)
        if not param.ignored and not isinstance(value, str):
            raise EvaluationError(f"{program.name}: param '{param.name}' needs a name, "
                                  f"got {value!r}")
        if value is not None:
            check_argument(program.name, param.kind, value, f"param '{param.name}'")
        args.append(value)
    return args


def answer(programs: Mapping[str, n.Program], record: Mapping[str, object],
           facts: ImageFacts) -> list[str]:
    """Answer one question record on its image's facts.

    Args:
        programs: from ``load_programs``.
        record: with ``template_program`` and ``template_arguments``; argument kinds
            the program does not declare are ignored.
        facts: the facts of the record's image.

    Raises:
        EvaluationError: unknown program, wrong arguments, or facts that cannot answer.

    Example:
        >>> facts = ImageFacts([("left lung", "pneumonia", "disease")], "AP", "F", {})
        >>> answer(bundled_programs(), {"template_program": "program_22",
        ...        "template_arguments": {"attribute": {"0": "pneumonia"}}}, facts)
        ['yes']
    """
    name = record.get("template_program")
    program = programs.get(name) if isinstance(name, str) else None
    if program is None:
        raise EvaluationError(f"unknown template program {name!r}")
    evaluator, plan, bind = _compiled(program)
    arguments = record.get("template_arguments")
    args = bind(arguments)
    if args is None:
        args = checked_arguments(program, plan, arguments)
    return render(evaluator.run(facts, args))  # type: ignore[arg-type]  # checked: bool or set


def runner(program: n.Program) -> tuple[Callable[[ImageFacts, list[str | None]], object], _Binder]:
    """The compiled ``run(facts, args)`` of ``program`` and its binder from ``template_arguments``.

    ``answer`` is ``render(run(facts, bind(arguments)))`` when ``bind`` returns a list; when it
    returns None, ``answer`` says what is wrong. A bulk caller looks both up once per program
    instead of once per question.
    """
    evaluator, _, bind = _compiled(program)
    return evaluator.run, bind


def checked_arguments(program: n.Program, plan: _Plan, arguments: object) -> list[str | None]:
    """The program's args from ``template_arguments``, or the error that says what is wrong."""
    args: list[str | None] = [None] * len(program.params)
    arguments = arguments or {}
    try:
        for kind, keys, positions in plan:
            given = arguments.get(kind) or {}  # type: ignore[attr-defined]
            if len(given) != len(keys):
                raise EvaluationError(f"{program.name}: expected {len(keys)} {kind} "
                                      f"argument(s), got {len(given)}")
            for key, position in zip(keys, positions):
                value = given.get(key)
                if not isinstance(value, str):
                    raise EvaluationError(f"{program.name}: {kind} argument '{key}' "
                                          f"needs a name, got {value!r}")
                check_argument(program.name, kind, value, f"{kind} argument '{key}'")
                args[position] = value
    except (AttributeError, TypeError):
        raise EvaluationError(f"{program.name}: template_arguments must map kinds to "
                              f"{{\"0\": name, ...}}, got {arguments!r}") from None
    return args


def program_named(programs: Mapping[str, n.Program], name: str, option: str) -> n.Program:
    """The program ``name`` of ``programs``, asked for by a command line's ``option``.

    Raises:
        UsageError: no program has that name (said with a did-you-mean, or an example name).
    """
    found = programs.get(name)
    if found is not None:
        return found
    close = difflib.get_close_matches(name, sorted(programs), n=1)
    raise UsageError(f"{option}: {name!r}: no such template program"
                     + (f"; did you mean {close[0]!r}?" if close else
                        f"; expected a program name such as {min(programs, default='program_1')}"))


def check_argument(program: str, kind: str, value: str, what: str,
                   vocabulary: Vocabulary | None = None) -> None:
    """Raise EvaluationError if ``value`` is not a term of ``kind`` (with a did-you-mean)."""
    terms = (vocabulary or Vocabulary.default()).terms(PARAM_KINDS[kind])
    if value in terms:
        return
    close = difflib.get_close_matches(value, sorted(terms), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else \
        f"; expected one of {', '.join(sorted(terms))}" if len(terms) <= 5 else ""
    raise EvaluationError(f"{program}: {what} {value!r} is not a known {kind}{hint}")


def answer_record(record: Mapping[str, object], facts: ImageFacts) -> list[str]:
    """``answer`` with the bundled programs."""
    return answer(bundled_programs(), record, facts)


_Binder = Callable[[object], "list[str | None] | None"]


# Compiled forms by program identity. An entry holds its program, so the id cannot be reused
# while the entry lives; programs are few (48 bundled plus an author's), the bound is a safety net.
_COMPILED: dict[int, tuple[n.Program, Evaluator, _Plan, _Binder]] = {}
_MAX_COMPILED = 4096


def _compiled(program: n.Program) -> tuple[Evaluator, _Plan, _Binder]:
    entry = _COMPILED.get(id(program))
    if entry is None:
        if len(_COMPILED) >= _MAX_COMPILED:
            _COMPILED.pop(next(iter(_COMPILED)))
        plan = argument_plan(program)
        entry = _COMPILED[id(program)] = (program, compile_program(program), plan,
                                          _binder(program, plan))
    return entry[1], entry[2], entry[3]


def _binder(program: n.Program, plan: _Plan) -> _Binder:
    """A function from well-formed ``template_arguments`` straight to the program's args.

    Binding runs once per question, so it is generated like the program itself. On
    anything unusual it returns None and ``checked_arguments`` says what is wrong.
    """
    names = ["None"] * len(program.params)
    lines = []
    terms: dict[str, frozenset[str]] = {}
    for number, (kind, keys, positions) in enumerate(plan):
        lines += [f"given = arguments[{kind!r}]", f"if len(given) != {len(keys)}: return None"]
        terms[f"terms_{kind}"] = Vocabulary.default().terms(PARAM_KINDS[kind])
        for key, position in zip(keys, positions):
            lines.append(f"a{position} = given[{key!r}]")
            names[position] = f"a{position}"
    bound = [(name, program.params[i].kind) for i, name in enumerate(names) if name != "None"]
    # A non-string or a term outside the vocabulary: the slow path says which and where.
    checks = " or ".join(f"type({name}) is not str or {name} not in terms_{kind}"
                         for name, kind in bound) or "False"
    source = ("def bind(arguments):\n    try:\n"
              + "".join(f"        {line}\n" for line in lines or ["pass"])
              + "    except (KeyError, TypeError, AttributeError):\n        return None\n"
              + f"    return None if {checks} else [{', '.join(names)}]\n")
    namespace: dict[str, object] = dict(terms)
    exec(compile(source, f"<cxrvqa {program.name} arguments>", "exec"), namespace)  # noqa: S102
    return cast(_Binder, namespace["bind"])


def argument_plan(program: n.Program) -> _Plan:
    """(kind, argument keys, parameter positions) for each kind the program declares."""
    plan = []
    for kind in dict.fromkeys(p.kind for p in program.params):
        entries = sorted((argument_key(p.name), i)
                         for i, p in enumerate(program.params) if p.kind == kind)
        plan.append((kind, tuple(k for k, _ in entries), tuple(i for _, i in entries)))
    return tuple(plan)


n.RUNTIME["evaluate"] = evaluate  # serves the deprecated Program.evaluate (see lang/nodes.py)
